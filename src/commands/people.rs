//! `objectos user|org|member|team`: the people and groups of the instance.

use schemars::JsonSchema;
use serde::Serialize;

use crate::audit::Origin;
use crate::cli::{MemberCommand, OrgCommand, TeamCommand, UserCommand};
use crate::commands::Ctx;
use crate::commands::runtime::{KeyView, OrgView, UserView, table};
use crate::error::Exit;
use crate::identity::{self, NewUser};
use crate::prompt;

#[derive(Serialize, JsonSchema)]
pub struct UserList {
    pub users: Vec<UserView>,
}

#[derive(Serialize, JsonSchema)]
pub struct UserDetail {
    pub user: UserView,
    pub organizations: Vec<String>,
    pub teams: Vec<String>,
    pub permission_sets: Vec<AssignmentView>,
    pub api_keys: Vec<KeyView>,
}

#[derive(Serialize, JsonSchema)]
pub struct AssignmentView {
    pub permission_set: String,
    pub organization: Option<String>,
    pub valid_until: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct OrgList {
    pub organizations: Vec<OrgListEntry>,
}

#[derive(Serialize, JsonSchema)]
pub struct OrgListEntry {
    #[serde(flatten)]
    pub org: OrgView,
    pub members: u64,
}

#[derive(Serialize, JsonSchema)]
pub struct TeamList {
    pub teams: Vec<TeamView>,
}

#[derive(Serialize, JsonSchema)]
pub struct TeamView {
    pub id: String,
    pub name: String,
    pub members: Vec<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct Done {
    /// What was done, as a sentence
    pub message: String,
    pub changed: bool,
}

fn done(ctx: &Ctx, command: &str, message: String, changed: bool) -> anyhow::Result<Exit> {
    if ctx.out.json {
        ctx.out.json_doc(command, &Done { message, changed })?;
    } else {
        ctx.out.status(message);
    }
    Ok(Exit::Success)
}

pub fn user(cmd: UserCommand, ctx: &Ctx) -> anyhow::Result<Exit> {
    let instance =
        ctx.instance_reading(matches!(cmd, UserCommand::List | UserCommand::Show { .. }))?;
    let origin = Origin::operator();
    match cmd {
        UserCommand::Add {
            email,
            name,
            org,
            password_file,
            no_password,
        } => {
            let password = if no_password {
                None
            } else {
                Some(prompt::password_or_file(
                    password_file.as_deref(),
                    &format!("Password for {email}"),
                    true,
                    "--password-file FILE` or `--no-password",
                )?)
            };
            let user = identity::add_user(
                &instance,
                &origin,
                NewUser {
                    email: &email,
                    name: name.as_deref(),
                    org: org.as_deref(),
                    password,
                },
            )?;
            if ctx.out.json {
                ctx.out.json_doc("user.add", &UserView::from(&user))?;
            } else {
                ctx.out.data(&user.id)?;
                ctx.out.status(format!("added {}", user.email));
            }
            Ok(Exit::Success)
        }
        UserCommand::List => {
            let users = instance.store.read(|tx| Ok(tx.users()?))?;
            if ctx.out.json {
                return ctx
                    .out
                    .json_doc(
                        "user.list",
                        &UserList {
                            users: users.iter().map(UserView::from).collect(),
                        },
                    )
                    .map(|_| Exit::Success);
            }
            table(
                ctx,
                &["email", "name", "status", "password", "id"],
                users
                    .iter()
                    .map(|u| {
                        vec![
                            u.email.clone(),
                            u.name.clone().unwrap_or_default(),
                            if u.disabled {
                                "disabled".into()
                            } else {
                                "active".into()
                            },
                            if u.password_hash.is_some() {
                                "yes".into()
                            } else {
                                "no".into()
                            },
                            u.id.clone(),
                        ]
                    })
                    .collect(),
            )?;
            Ok(Exit::Success)
        }
        UserCommand::Show { email } => {
            let detail = instance.store.read(|tx| {
                let user = identity::user_by_email(tx, &email)?;
                let orgs = tx.orgs_of_user(&user.id)?;
                let teams = tx.teams_of_user(&user.id)?;
                let all_orgs = tx.orgs()?;
                let org_name = |id: &str| {
                    all_orgs
                        .iter()
                        .find(|o| o.id == id)
                        .map(|o| o.name.clone())
                        .unwrap_or_else(|| id.to_string())
                };
                let assignments = tx.assignments_of_user(&user.id)?;
                let keys = tx.apikeys()?;
                Ok(UserDetail {
                    user: UserView::from(&user),
                    organizations: orgs.iter().map(|o| o.name.clone()).collect(),
                    teams: teams.iter().map(|t| t.name.clone()).collect(),
                    permission_sets: assignments
                        .iter()
                        .map(|a| AssignmentView {
                            permission_set: a.permset.clone(),
                            organization: a.org_id.as_deref().map(org_name),
                            valid_until: a.valid_until.clone(),
                        })
                        .collect(),
                    api_keys: keys
                        .iter()
                        .filter(|k| k.user_id == user.id)
                        .map(|k| KeyView::new(k, &user.email, &org_name(&k.org_id)))
                        .collect(),
                })
            })?;
            if ctx.out.json {
                ctx.out.json_doc("user.show", &detail)?;
                return Ok(Exit::Success);
            }
            let u = &detail.user;
            ctx.out.data(format!("{} ({})", u.email, u.id))?;
            ctx.out.data(format!(
                "  name:           {}",
                u.name.clone().unwrap_or_default()
            ))?;
            ctx.out.data(format!(
                "  status:         {}",
                if u.disabled { "disabled" } else { "active" }
            ))?;
            ctx.out.data(format!(
                "  organizations:  {}",
                detail.organizations.join(", ")
            ))?;
            ctx.out
                .data(format!("  teams:          {}", detail.teams.join(", ")))?;
            for a in &detail.permission_sets {
                ctx.out.data(format!(
                    "  permission set: {}{}{}",
                    a.permission_set,
                    a.organization
                        .as_ref()
                        .map(|o| format!(" in {o}"))
                        .unwrap_or_default(),
                    a.valid_until
                        .as_ref()
                        .map(|v| format!(" until {v}"))
                        .unwrap_or_default()
                ))?;
            }
            for k in &detail.api_keys {
                ctx.out.data(format!(
                    "  api key:        {} {} {}{}",
                    k.prefix,
                    k.kind,
                    k.organization,
                    if k.revoked_at.is_some() {
                        " (revoked)"
                    } else {
                        ""
                    }
                ))?;
            }
            Ok(Exit::Success)
        }
        UserCommand::Disable { email, force } => {
            let user = identity::set_disabled(&instance, &origin, &email, true, force)?;
            done(
                ctx,
                "user.disable",
                format!(
                    "disabled {}: their keys and sessions are refused from now on",
                    user.email
                ),
                true,
            )
        }
        UserCommand::Enable { email } => {
            let user = identity::set_disabled(&instance, &origin, &email, false, false)?;
            done(ctx, "user.enable", format!("enabled {}", user.email), true)
        }
        UserCommand::SetPassword {
            email,
            password_file,
        } => {
            let password = prompt::password_or_file(
                password_file.as_deref(),
                &format!("New password for {email}"),
                true,
                "--password-file FILE",
            )?;
            identity::set_password(&instance, &origin, &email, &password)?;
            done(
                ctx,
                "user.set-password",
                format!("set the password of {email}"),
                true,
            )
        }
    }
}

pub fn org(cmd: OrgCommand, ctx: &Ctx) -> anyhow::Result<Exit> {
    let instance = ctx.instance_reading(matches!(cmd, OrgCommand::List))?;
    match cmd {
        OrgCommand::Add { name } => {
            let org = identity::add_org(&instance, &Origin::operator(), &name)?;
            if ctx.out.json {
                ctx.out.json_doc("org.add", &OrgView::from(&org))?;
            } else {
                ctx.out.data(&org.id)?;
                ctx.out.status(format!("added organization `{}`", org.name));
            }
            Ok(Exit::Success)
        }
        OrgCommand::List => {
            let orgs = instance.store.read(|tx| {
                let mut out = Vec::new();
                for o in tx.orgs()? {
                    let members = tx.member_count(&o.id)?;
                    out.push(OrgListEntry {
                        org: OrgView::from(&o),
                        members,
                    });
                }
                Ok(out)
            })?;
            if ctx.out.json {
                ctx.out.json_doc(
                    "org.list",
                    &OrgList {
                        organizations: orgs,
                    },
                )?;
            } else {
                table(
                    ctx,
                    &["name", "members", "id"],
                    orgs.iter()
                        .map(|o| vec![o.org.name.clone(), o.members.to_string(), o.org.id.clone()])
                        .collect(),
                )?;
            }
            Ok(Exit::Success)
        }
    }
}

pub fn member(cmd: MemberCommand, ctx: &Ctx) -> anyhow::Result<Exit> {
    let instance = ctx.instance()?;
    match cmd {
        MemberCommand::Add { email, org } => {
            let changed = identity::member(&instance, &Origin::operator(), &email, &org, true)?;
            done(
                ctx,
                "member.add",
                if changed {
                    format!("{email} is now a member of `{org}`")
                } else {
                    format!("{email} was already a member of `{org}`")
                },
                changed,
            )
        }
        MemberCommand::Remove { email, org } => {
            identity::member(&instance, &Origin::operator(), &email, &org, false)?;
            done(
                ctx,
                "member.remove",
                format!("{email} is no longer a member of `{org}`"),
                true,
            )
        }
    }
}

pub fn team(cmd: TeamCommand, ctx: &Ctx) -> anyhow::Result<Exit> {
    let instance = ctx.instance_reading(matches!(cmd, TeamCommand::List))?;
    let origin = Origin::operator();
    match cmd {
        TeamCommand::Add { name } => {
            let team = identity::add_team(&instance, &origin, &name)?;
            if ctx.out.json {
                ctx.out.json_doc(
                    "team.add",
                    &TeamView {
                        id: team.id,
                        name: team.name,
                        members: Vec::new(),
                    },
                )?;
            } else {
                ctx.out.data(&team.id)?;
                ctx.out.status(format!("added team `{name}`"));
            }
            Ok(Exit::Success)
        }
        TeamCommand::List => {
            let teams = instance.store.read(|tx| {
                let mut out = Vec::new();
                for t in tx.teams()? {
                    let members = tx
                        .team_members(&t.id)?
                        .into_iter()
                        .map(|u| u.email)
                        .collect();
                    out.push(TeamView {
                        id: t.id,
                        name: t.name,
                        members,
                    });
                }
                Ok(out)
            })?;
            if ctx.out.json {
                ctx.out.json_doc("team.list", &TeamList { teams })?;
            } else {
                table(
                    ctx,
                    &["name", "members"],
                    teams
                        .iter()
                        .map(|t| vec![t.name.clone(), t.members.join(", ")])
                        .collect(),
                )?;
            }
            Ok(Exit::Success)
        }
        TeamCommand::AddMember { team, email } => {
            let changed = identity::team_member(&instance, &origin, &team, &email, true)?;
            done(
                ctx,
                "team.add-member",
                if changed {
                    format!("{email} is now in team `{team}`")
                } else {
                    format!("{email} was already in team `{team}`")
                },
                changed,
            )
        }
        TeamCommand::RemoveMember { team, email } => {
            identity::team_member(&instance, &origin, &team, &email, false)?;
            done(
                ctx,
                "team.remove-member",
                format!("{email} is no longer in team `{team}`"),
                true,
            )
        }
    }
}
