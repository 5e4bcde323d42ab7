//! `objectos permset|apikey|session`: who holds what, and their credentials.

use schemars::JsonSchema;
use serde::Serialize;

use crate::audit::Origin;
use crate::authz;
use crate::cli::{ApikeyCommand, PermsetCommand, SessionCommand};
use crate::commands::Ctx;
use crate::commands::runtime::{KeyView, SessionView, current_model, table};
use crate::error::{Exit, Failure};
use crate::identity::{self, NewKey};
use crate::model::{Model, PermissionSetDef};
use crate::timefmt;

#[derive(Serialize, JsonSchema)]
pub struct PermsetList {
    pub permission_sets: Vec<PermsetSummary>,
}

#[derive(Serialize, JsonSchema)]
pub struct PermsetSummary {
    pub name: String,
    pub label: String,
    pub builtin: bool,
    /// Applies to every user (upstream `isDefault`)
    pub default: bool,
    pub objects: usize,
    pub system_permissions: Vec<String>,
    /// Emails of the users it is assigned to
    pub holders: Vec<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct PermsetDetail {
    pub name: String,
    pub label: String,
    pub description: Option<String>,
    pub builtin: bool,
    pub default: bool,
    pub objects: Vec<crate::artifact::inspect::AccessRow>,
    pub fields: Vec<crate::artifact::inspect::FieldRow>,
    pub system_permissions: Vec<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct Assigned {
    pub permission_set: String,
    pub user: String,
    pub organization: Option<String>,
    pub valid_until: Option<String>,
}

fn all_sets(model: Option<&Model>) -> Vec<PermissionSetDef> {
    let mut sets = vec![authz::builtin_admin()];
    if let Some(m) = model {
        sets.extend(m.permission_sets.iter().cloned());
    }
    sets
}

pub fn permset(cmd: PermsetCommand, ctx: &Ctx) -> anyhow::Result<Exit> {
    let instance = ctx.instance_reading(matches!(
        cmd,
        PermsetCommand::List | PermsetCommand::Show { .. }
    ))?;
    let model = current_model(&instance)?;
    let origin = Origin::operator();
    match cmd {
        PermsetCommand::List => {
            let (assignments, users) = instance
                .store
                .read(|tx| Ok((tx.assignments()?, tx.users()?)))?;
            let email = |id: &str| {
                users
                    .iter()
                    .find(|u| u.id == id)
                    .map(|u| u.email.clone())
                    .unwrap_or_default()
            };
            let list: Vec<PermsetSummary> = all_sets(model.as_ref())
                .into_iter()
                .map(|s| PermsetSummary {
                    builtin: s.name == authz::ADMIN_SET,
                    default: s.is_default,
                    objects: s.objects.len(),
                    system_permissions: s.system_permissions.iter().cloned().collect(),
                    holders: assignments
                        .iter()
                        .filter(|a| a.permset == s.name)
                        .map(|a| email(&a.user_id))
                        .collect(),
                    label: s.label,
                    name: s.name,
                })
                .collect();
            if ctx.out.json {
                ctx.out.json_doc(
                    "permset.list",
                    &PermsetList {
                        permission_sets: list,
                    },
                )?;
            } else {
                table(
                    ctx,
                    &["name", "objects", "system permissions", "holders"],
                    list.iter()
                        .map(|s| {
                            vec![
                                format!("{}{}", s.name, if s.default { " (default)" } else { "" }),
                                s.objects.to_string(),
                                s.system_permissions.join(","),
                                s.holders.join(", "),
                            ]
                        })
                        .collect(),
                )?;
            }
        }
        PermsetCommand::Show { name } => {
            let set = all_sets(model.as_ref())
                .into_iter()
                .find(|s| s.name == name)
                .ok_or_else(|| {
                    Failure::error(format!("no permission set `{name}`"))
                        .with_hint("see `objectos permset list`")
                })?;
            let (objects, fields) = crate::artifact::inspect::set_rows(&set);
            let detail = PermsetDetail {
                builtin: set.name == authz::ADMIN_SET,
                default: set.is_default,
                system_permissions: set.system_permissions.iter().cloned().collect(),
                name: set.name,
                label: set.label,
                description: set.description,
                objects,
                fields,
            };
            if ctx.out.json {
                ctx.out.json_doc("permset.show", &detail)?;
            } else {
                ctx.out.data(format!(
                    "{} ({}){}",
                    detail.name,
                    detail.label,
                    if detail.builtin { ", built in" } else { "" }
                ))?;
                if let Some(d) = &detail.description {
                    ctx.out.data(format!("  {d}"))?;
                }
                ctx.out.data(format!(
                    "  system permissions: {}",
                    if detail.system_permissions.is_empty() {
                        "none".to_string()
                    } else {
                        detail.system_permissions.join(", ")
                    }
                ))?;
                for r in &detail.objects {
                    let flags: Vec<&str> = [
                        (r.read, "read"),
                        (r.create, "create"),
                        (r.edit, "edit"),
                        (r.delete, "delete"),
                        (r.view_all, "viewAll"),
                        (r.modify_all, "modifyAll"),
                        (r.export, "export"),
                    ]
                    .into_iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, n)| n)
                    .collect();
                    ctx.out.data(format!(
                        "  {}: {} (read scope {}, write scope {})",
                        r.object,
                        flags.join(" "),
                        r.read_scope,
                        r.write_scope
                    ))?;
                }
                for f in &detail.fields {
                    ctx.out.data(format!(
                        "  {}.{}: {}, {}",
                        f.object,
                        f.field,
                        if f.readable {
                            "readable"
                        } else {
                            "not readable"
                        },
                        if f.editable {
                            "editable"
                        } else {
                            "not editable"
                        }
                    ))?;
                }
                if detail.objects.is_empty() {
                    ctx.out.data("  no rights on business objects")?;
                }
            }
        }
        PermsetCommand::Assign {
            name,
            email,
            org,
            valid_until,
        } => {
            let until = valid_until
                .as_deref()
                .map(|t| {
                    let now = timefmt::now();
                    let at = timefmt::parse_when(t, now).map_err(Failure::error)?;
                    if at <= now {
                        return Err(Failure::error(format!("`{t}` is already in the past")));
                    }
                    Ok(timefmt::rfc3339(at))
                })
                .transpose()?;
            let row = identity::assign(
                &instance,
                &origin,
                model.as_ref(),
                &name,
                &email,
                org.as_deref(),
                until.as_deref(),
            )?;
            let report = Assigned {
                permission_set: name.clone(),
                user: email.clone(),
                organization: org.clone(),
                valid_until: row.valid_until,
            };
            if ctx.out.json {
                ctx.out.json_doc("permset.assign", &report)?;
            } else {
                ctx.out.status(format!(
                    "assigned `{name}` to {email}{}{}",
                    org.map(|o| format!(" in `{o}`")).unwrap_or_default(),
                    report
                        .valid_until
                        .map(|v| format!(" until {v}"))
                        .unwrap_or_default()
                ));
            }
        }
        PermsetCommand::Revoke {
            name,
            email,
            org,
            force,
        } => {
            identity::revoke(&instance, &origin, &name, &email, org.as_deref(), force)?;
            if ctx.out.json {
                ctx.out.json_doc(
                    "permset.revoke",
                    &Assigned {
                        permission_set: name,
                        user: email,
                        organization: org,
                        valid_until: None,
                    },
                )?;
            } else {
                ctx.out.status(format!("revoked `{name}` from {email}"));
            }
        }
    }
    Ok(Exit::Success)
}

#[derive(Serialize, JsonSchema)]
pub struct KeyCreated {
    /// The key itself; shown only this once
    pub key: String,
    #[serde(flatten)]
    pub record: KeyView,
}

#[derive(Serialize, JsonSchema)]
pub struct KeyList {
    pub api_keys: Vec<KeyView>,
}

#[derive(Serialize, JsonSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
}

/// Emails and organization names by id, for the lists of credentials.
struct Names {
    users: Vec<crate::store::UserRow>,
    orgs: Vec<crate::store::OrgRow>,
}

impl Names {
    fn load(tx: &mut dyn crate::store::Tx) -> anyhow::Result<Names> {
        Ok(Names {
            users: tx.users()?,
            orgs: tx.orgs()?,
        })
    }

    fn email(&self, user_id: &str) -> String {
        self.users
            .iter()
            .find(|u| u.id == user_id)
            .map(|u| u.email.clone())
            .unwrap_or_default()
    }

    fn org(&self, org_id: &str) -> String {
        self.orgs
            .iter()
            .find(|o| o.id == org_id)
            .map(|o| o.name.clone())
            .unwrap_or_default()
    }

    /// Views of credentials, only `filter`'s when given (an email).
    fn views<T, V>(
        &self,
        rows: &[T],
        filter: Option<&str>,
        ids: impl Fn(&T) -> (&str, &str),
        view: impl Fn(&T, &str, &str) -> V,
    ) -> Vec<V> {
        rows.iter()
            .filter_map(|row| {
                let (user_id, org_id) = ids(row);
                let email = self.email(user_id);
                if filter.is_some_and(|f| f != email) {
                    return None;
                }
                Some(view(row, &email, &self.org(org_id)))
            })
            .collect()
    }
}

pub fn apikey(cmd: ApikeyCommand, ctx: &Ctx) -> anyhow::Result<Exit> {
    let instance = ctx.instance_reading(matches!(cmd, ApikeyCommand::List { .. }))?;
    let origin = Origin::operator();
    match cmd {
        ApikeyCommand::Create {
            email,
            agent,
            read_only,
            org,
            name,
            expires,
        } => {
            let expires_at = expires
                .as_deref()
                .map(|t| {
                    timefmt::parse_when(t, timefmt::now())
                        .map(timefmt::rfc3339)
                        .map_err(Failure::error)
                })
                .transpose()?;
            let model = current_model(&instance)?;
            let (key, row) = identity::create_key(
                &instance,
                &origin,
                model.as_ref(),
                NewKey {
                    email: &email,
                    agent,
                    read_only,
                    org: org.as_deref(),
                    name: name.as_deref(),
                    expires_at,
                },
            )?;
            if ctx.out.json {
                let org_name = instance
                    .store
                    .read(|tx| Ok(tx.org_by_id(&row.org_id)?))?
                    .map(|o| o.name)
                    .unwrap_or_default();
                ctx.out.json_doc(
                    "apikey.create",
                    &KeyCreated {
                        key,
                        record: KeyView::new(&row, &email, &org_name),
                    },
                )?;
            } else {
                ctx.out.data(&key)?;
                ctx.out.status(format!(
                    "created {} key {} for {email}; it is shown only this once",
                    row.kind.as_str(),
                    row.prefix
                ));
            }
        }
        ApikeyCommand::List { user } => {
            let (keys, names) = instance
                .store
                .read(|tx| Ok((tx.apikeys()?, Names::load(tx)?)))?;
            let filter = user.as_deref().map(identity::normalize_email).transpose()?;
            let views = names.views(
                &keys,
                filter.as_deref(),
                |k| (&k.user_id, &k.org_id),
                KeyView::new,
            );
            if ctx.out.json {
                ctx.out
                    .json_doc("apikey.list", &KeyList { api_keys: views })?;
            } else {
                table(
                    ctx,
                    &["prefix", "user", "org", "kind", "status", "expires", "id"],
                    views
                        .iter()
                        .map(|k| {
                            let status = if k.revoked_at.is_some() {
                                "revoked".to_string()
                            } else if k.read_only {
                                "read-only".to_string()
                            } else {
                                "active".to_string()
                            };
                            vec![
                                k.prefix.clone(),
                                k.user.clone(),
                                k.organization.clone(),
                                k.kind.clone(),
                                status,
                                k.expires_at.clone().unwrap_or_else(|| "never".into()),
                                k.id.clone(),
                            ]
                        })
                        .collect(),
                )?;
            }
        }
        ApikeyCommand::Revoke { key } => {
            let row = identity::revoke_key(&instance, &origin, &key)?;
            if ctx.out.json {
                ctx.out.json_doc(
                    "apikey.revoke",
                    &crate::commands::people::Done {
                        message: format!("revoked key {}", row.prefix),
                        changed: true,
                    },
                )?;
            } else {
                ctx.out.status(format!(
                    "revoked key {} ({}); it is refused from the next request",
                    row.prefix, row.id
                ));
            }
        }
    }
    Ok(Exit::Success)
}

pub fn session(cmd: SessionCommand, ctx: &Ctx) -> anyhow::Result<Exit> {
    let instance = ctx.instance_reading(matches!(cmd, SessionCommand::List { .. }))?;
    match cmd {
        SessionCommand::List { user } => {
            let (sessions, names) = instance
                .store
                .read(|tx| Ok((tx.sessions()?, Names::load(tx)?)))?;
            let filter = user.as_deref().map(identity::normalize_email).transpose()?;
            let views = names.views(
                &sessions,
                filter.as_deref(),
                |s| (&s.user_id, &s.org_id),
                SessionView::new,
            );
            if ctx.out.json {
                ctx.out
                    .json_doc("session.list", &SessionList { sessions: views })?;
            } else {
                table(
                    ctx,
                    &["id", "user", "org", "created", "expires", "status"],
                    views
                        .iter()
                        .map(|s| {
                            vec![
                                s.id.clone(),
                                s.user.clone(),
                                s.organization.clone(),
                                s.created_at.clone(),
                                s.expires_at.clone(),
                                if s.revoked_at.is_some() {
                                    "revoked".into()
                                } else {
                                    "active".into()
                                },
                            ]
                        })
                        .collect(),
                )?;
            }
        }
        SessionCommand::Revoke { id } => {
            identity::revoke_session(&instance, &Origin::operator(), &id)?;
            if ctx.out.json {
                ctx.out.json_doc(
                    "session.revoke",
                    &crate::commands::people::Done {
                        message: format!("revoked session {id}"),
                        changed: true,
                    },
                )?;
            } else {
                ctx.out.status(format!(
                    "revoked session {id}; it is refused from the next request"
                ));
            }
        }
    }
    Ok(Exit::Success)
}
