//! Users, organizations, memberships, teams, permission set assignments, API keys
//! and sessions: each change audited in its own transaction.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde_json::json;
use sha2::Digest;

pub mod signin;

use crate::audit::{self, Changes, Event, Origin};
use crate::authz;
use crate::error::Failure;
use crate::instance::Instance;
use crate::model::Model;
use crate::store::*;
use crate::timefmt;

pub const API_KEY_PREFIX: &str = "osk_";
pub const SESSION_PREFIX: &str = "oss_";

fn now() -> String {
    timefmt::rfc3339(timefmt::now())
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A lower-cased email, or a refusal saying why it is not one.
pub fn normalize_email(email: &str) -> anyhow::Result<String> {
    let email = email.trim();
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
        });
    if !valid {
        return Err(Failure::error(format!("`{email}` is not an email address")).into());
    }
    Ok(email.to_ascii_lowercase())
}

/// Refuse passwords that are empty or weak.
pub fn check_password(password: &str) -> anyhow::Result<()> {
    let chars: Vec<char> = password.chars().collect();
    let distinct: std::collections::BTreeSet<char> = chars.iter().copied().collect();
    if chars.len() < 12 {
        return Err(Failure::error("the password is shorter than 12 characters")
            .with_hint("use a passphrase of several words")
            .into());
    }
    if distinct.len() < 5 {
        return Err(Failure::error("the password repeats too few characters to be safe").into());
    }
    Ok(())
}

/// argon2id, PHC string format.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    use argon2::PasswordHasher;
    use argon2::password_hash::SaltString;
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

pub fn verify_password(hash: &str, password: &str) -> bool {
    use argon2::PasswordVerifier;
    argon2::password_hash::PasswordHash::new(hash)
        .map(|parsed| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A new secret token: `prefix` + 32 random bytes, base64url. Returns (token, sha256 hex).
pub fn new_token(prefix: &str) -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// What a key is shown as once the key itself is gone: `osk_AbCdEfGh…`.
pub fn display_prefix(token: &str) -> String {
    token.chars().take(API_KEY_PREFIX.len() + 8).collect()
}

pub fn user_by_email(tx: &mut dyn Tx, email: &str) -> anyhow::Result<UserRow> {
    let email = normalize_email(email)?;
    tx.user_by_email(&email)?.ok_or_else(|| {
        Failure::error(format!("no user `{email}`"))
            .with_hint("see `objectos user list`")
            .into()
    })
}

pub fn org_by_name(tx: &mut dyn Tx, name: &str) -> anyhow::Result<OrgRow> {
    tx.org_by_name(name)?.ok_or_else(|| {
        Failure::error(format!("no organization `{name}`"))
            .with_hint("see `objectos org list`")
            .into()
    })
}

pub fn team_by_name(tx: &mut dyn Tx, name: &str) -> anyhow::Result<TeamRow> {
    tx.team_by_name(name)?.ok_or_else(|| {
        Failure::error(format!("no team `{name}`"))
            .with_hint("see `objectos team list`")
            .into()
    })
}

pub fn validate_name(what: &str, name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Failure::error(format!(
            "`{name}` is not a valid {what} name; use letters, digits, `_`, `-` and `.`"
        ))
        .into())
    }
}

/// The organization a credential of `user` works in: the named one (a member's),
/// or the user's only one.
pub fn credential_org(
    tx: &mut dyn Tx,
    user: &UserRow,
    org: Option<&str>,
) -> anyhow::Result<OrgRow> {
    let orgs = tx.orgs_of_user(&user.id)?;
    match org {
        Some(name) => orgs.into_iter().find(|o| o.name == name).ok_or_else(|| {
            Failure::error(format!("`{}` is not a member of `{name}`", user.email))
                .with_hint(format!("`objectos member add {} {name}` first", user.email))
                .into()
        }),
        None => match orgs.len() {
            1 => Ok(orgs.into_iter().next().unwrap_or_else(|| unreachable!())),
            0 => Err(
                Failure::error(format!("`{}` belongs to no organization", user.email))
                    .with_hint(format!("`objectos member add {} ORG` first", user.email))
                    .into(),
            ),
            _ => Err(Failure::error(format!(
                "`{}` belongs to several organizations; say which",
                user.email
            ))
            .with_hint("pass `--org NAME`")
            .into()),
        },
    }
}

/// The organization `bootstrap` made, where `user add` puts users by default.
pub fn bootstrap_org(tx: &mut dyn Tx) -> anyhow::Result<OrgRow> {
    let id = tx.meta_get("bootstrap_org")?.ok_or_else(|| {
        Failure::error("the instance has not been bootstrapped")
            .with_hint("run `objectos bootstrap --admin-email EMAIL` first")
    })?;
    tx.org_by_id(&id)?
        .ok_or_else(|| anyhow::anyhow!("the bootstrap organization is gone"))
}

pub struct NewUser<'a> {
    pub email: &'a str,
    pub name: Option<&'a str>,
    pub org: Option<&'a str>,
    pub password: Option<String>,
}

pub fn add_user(instance: &Instance, origin: &Origin, new: NewUser<'_>) -> anyhow::Result<UserRow> {
    instance.audited(origin, "user.add", Some("user"), || {
        let email = normalize_email(new.email)?;
        if let Some(pw) = &new.password {
            check_password(pw)?;
        }
        let hash = new.password.as_deref().map(hash_password).transpose()?;
        instance.store.write(|tx| {
            if tx.user_by_email(&email)?.is_some() {
                return Err(Failure::error(format!("a user `{email}` already exists")).into());
            }
            let org = match new.org {
                Some(name) => org_by_name(tx, name)?,
                None => bootstrap_org(tx)?,
            };
            let user = UserRow {
                id: new_id(),
                email: email.clone(),
                name: new.name.map(str::to_string),
                password_hash: hash.clone(),
                disabled: false,
                created_at: now(),
            };
            tx.user_insert(&user)?;
            tx.member_add(&user.id, &org.id, &user.created_at)?;
            audit::append(
                tx,
                origin,
                Event::new("user.add")
                    .object("user")
                    .record(&user.id)
                    .changes(json!({
                        "email": {"before": null, "after": email},
                        "name": {"before": null, "after": user.name},
                        "organization": {"before": null, "after": org.name},
                        "password": {"changed": hash.is_some()},
                    })),
            )?;
            Ok(user)
        })
    })
}

/// Refuse (unless `force`) a change that would leave no enabled user holding
/// `admin`: nobody could manage people, permissions or evidence afterwards. Run
/// after the change, inside its transaction, so a refusal rolls it back.
fn keep_an_admin(tx: &mut dyn Tx, force: bool, what: &str) -> anyhow::Result<()> {
    if force {
        return Ok(());
    }
    let now = timefmt::now();
    let mut admins = 0;
    for a in tx.assignments()? {
        let in_force = a
            .valid_until
            .as_deref()
            .is_none_or(|t| timefmt::parse_rfc3339(t).is_some_and(|u| u > now));
        if a.permset != authz::ADMIN_SET || !in_force {
            continue;
        }
        if tx.user_by_id(&a.user_id)?.is_some_and(|u| !u.disabled) {
            admins += 1;
        }
    }
    if admins == 0 {
        return Err(Failure::error(format!(
            "{what} would leave no enabled administrator; nothing was changed"
        ))
        .with_hint("make someone else an administrator first (`objectos permset assign admin EMAIL`), or pass `--force`")
        .into());
    }
    Ok(())
}

pub fn set_disabled(
    instance: &Instance,
    origin: &Origin,
    email: &str,
    disabled: bool,
    force: bool,
) -> anyhow::Result<UserRow> {
    let action = if disabled {
        "user.disable"
    } else {
        "user.enable"
    };
    instance.change(origin, action, Some("user"), |tx| {
        let user = user_by_email(tx, email)?;
        if user.disabled == disabled {
            return Ok(user);
        }
        tx.user_set_disabled(&user.id, disabled)?;
        if disabled {
            keep_an_admin(tx, force, &format!("disabling `{}`", user.email))?;
            // What they asked agents to do waits for nobody now.
            crate::queue::cancel_for_user(tx, origin, &user.id)?;
        }
        let mut changes = Changes::new();
        changes.field("disabled", Some(&json!(!disabled)), Some(&json!(disabled)));
        audit::append(
            tx,
            origin,
            Event::new(action)
                .object("user")
                .record(&user.id)
                .changes(changes.into_value()),
        )?;
        Ok(UserRow { disabled, ..user })
    })
}

pub fn set_password(
    instance: &Instance,
    origin: &Origin,
    email: &str,
    password: &str,
) -> anyhow::Result<()> {
    instance.audited(origin, "user.set_password", Some("user"), || {
        check_password(password)?;
        let hash = hash_password(password)?;
        instance.store.write(|tx| {
            let user = user_by_email(tx, email)?;
            tx.user_set_password(&user.id, &hash)?;
            audit::append(
                tx,
                origin,
                Event::new("user.set_password")
                    .object("user")
                    .record(&user.id)
                    .changes(json!({"password": {"changed": true}})),
            )?;
            Ok(())
        })
    })
}

pub fn add_org(instance: &Instance, origin: &Origin, name: &str) -> anyhow::Result<OrgRow> {
    instance.audited(origin, "org.add", Some("organization"), || {
        validate_name("organization", name)?;
        instance.store.write(|tx| {
            if tx.org_by_name(name)?.is_some() {
                return Err(
                    Failure::error(format!("an organization `{name}` already exists")).into(),
                );
            }
            let org = OrgRow {
                id: new_id(),
                name: name.to_string(),
                created_at: now(),
            };
            tx.org_insert(&org)?;
            audit::append(
                tx,
                origin,
                Event::new("org.add")
                    .object("organization")
                    .record(&org.id)
                    .changes(json!({"name": {"before": null, "after": name}})),
            )?;
            Ok(org)
        })
    })
}

pub fn member(
    instance: &Instance,
    origin: &Origin,
    email: &str,
    org: &str,
    add: bool,
) -> anyhow::Result<bool> {
    let action = if add { "member.add" } else { "member.remove" };
    instance.change(origin, action, Some("membership"), |tx| {
        let user = user_by_email(tx, email)?;
        let org = org_by_name(tx, org)?;
        let changed = if add {
            tx.member_add(&user.id, &org.id, &now())?
        } else {
            tx.member_remove(&user.id, &org.id)?
        };
        if !add && !changed {
            return Err(Failure::error(format!(
                "`{}` is not a member of `{}`",
                user.email, org.name
            ))
            .into());
        }
        if changed {
            audit::append(
                tx,
                origin,
                Event::new(action)
                    .object("membership")
                    .record(&user.id)
                    .changes(json!({"user": user.email, "organization": org.name})),
            )?;
        }
        Ok(changed)
    })
}

pub fn add_team(instance: &Instance, origin: &Origin, name: &str) -> anyhow::Result<TeamRow> {
    instance.audited(origin, "team.add", Some("team"), || {
        validate_name("team", name)?;
        instance.store.write(|tx| {
            if tx.team_by_name(name)?.is_some() {
                return Err(Failure::error(format!("a team `{name}` already exists")).into());
            }
            let team = TeamRow {
                id: new_id(),
                name: name.to_string(),
                created_at: now(),
            };
            tx.team_insert(&team)?;
            audit::append(
                tx,
                origin,
                Event::new("team.add")
                    .object("team")
                    .record(&team.id)
                    .changes(json!({"name": {"before": null, "after": name}})),
            )?;
            Ok(team)
        })
    })
}

pub fn team_member(
    instance: &Instance,
    origin: &Origin,
    team: &str,
    email: &str,
    add: bool,
) -> anyhow::Result<bool> {
    let action = if add {
        "team.add_member"
    } else {
        "team.remove_member"
    };
    instance.change(origin, action, Some("team"), |tx| {
        let team = team_by_name(tx, team)?;
        let user = user_by_email(tx, email)?;
        let changed = if add {
            tx.team_member_add(&team.id, &user.id)?
        } else {
            tx.team_member_remove(&team.id, &user.id)?
        };
        if !add && !changed {
            return Err(
                Failure::error(format!("`{}` is not in team `{}`", user.email, team.name)).into(),
            );
        }
        if changed {
            audit::append(
                tx,
                origin,
                Event::new(action)
                    .object("team")
                    .record(&team.id)
                    .changes(json!({"team": team.name, "user": user.email})),
            )?;
        }
        Ok(changed)
    })
}

/// The permission sets that can be assigned: the built-in `admin` and the applied artifact's.
pub fn known_permset(model: Option<&Model>, name: &str) -> anyhow::Result<()> {
    if name == authz::ADMIN_SET || model.and_then(|m| m.permission_set(name)).is_some() {
        return Ok(());
    }
    Err(Failure::error(format!("no permission set `{name}`"))
        .with_hint(if model.is_some() {
            "see `objectos permset list`"
        } else {
            "apply an artifact first (`objectos apply`)"
        })
        .into())
}

pub fn assign(
    instance: &Instance,
    origin: &Origin,
    model: Option<&Model>,
    permset: &str,
    email: &str,
    org: Option<&str>,
    valid_until: Option<&str>,
) -> anyhow::Result<AssignmentRow> {
    instance.audited(origin, "permset.assign", Some("permission_set"), || {
        known_permset(model, permset)?;
        instance.store.write(|tx| {
            let user = user_by_email(tx, email)?;
            let org_id = match org {
                Some(name) => {
                    let org = org_by_name(tx, name)?;
                    if !tx.orgs_of_user(&user.id)?.iter().any(|o| o.id == org.id) {
                        return Err(Failure::error(format!(
                            "`{}` is not a member of `{name}`",
                            user.email
                        ))
                        .into());
                    }
                    Some(org.id)
                }
                None => None,
            };
            let row = AssignmentRow {
                id: new_id(),
                user_id: user.id.clone(),
                permset: permset.to_string(),
                org_id: org_id.clone(),
                valid_until: valid_until.map(str::to_string),
                created_at: now(),
            };
            tx.assignment_insert(&row)?;
            audit::append(
                tx,
                origin,
                Event::new("permset.assign")
                    .object("permission_set")
                    .record(permset)
                    .changes(json!({
                        "user": user.email,
                        "organization": org,
                        "valid_until": valid_until,
                    })),
            )?;
            Ok(row)
        })
    })
}

pub fn revoke(
    instance: &Instance,
    origin: &Origin,
    permset: &str,
    email: &str,
    org: Option<&str>,
    force: bool,
) -> anyhow::Result<()> {
    instance.change(origin, "permset.revoke", Some("permission_set"), |tx| {
        let user = user_by_email(tx, email)?;
        let org_id = org
            .map(|name| org_by_name(tx, name).map(|o| o.id))
            .transpose()?;
        if !tx.assignment_delete(&user.id, permset, org_id.as_deref())? {
            return Err(Failure::error(format!(
                "`{}` has no assignment of `{permset}`{}",
                user.email,
                org.map(|o| format!(" in `{o}`")).unwrap_or_default()
            ))
            .into());
        }
        if permset == authz::ADMIN_SET {
            keep_an_admin(
                tx,
                force,
                &format!("revoking `admin` from `{}`", user.email),
            )?;
        }
        audit::append(
            tx,
            origin,
            Event::new("permset.revoke")
                .object("permission_set")
                .record(permset)
                .changes(json!({"user": user.email, "organization": org})),
        )?;
        Ok(())
    })
}

pub struct NewKey<'a> {
    pub email: &'a str,
    pub agent: bool,
    pub read_only: bool,
    pub org: Option<&'a str>,
    pub name: Option<&'a str>,
    pub expires_at: Option<String>,
}

/// Create an API key; returns the key itself (shown once) and its row.
pub fn create_key(
    instance: &Instance,
    origin: &Origin,
    model: Option<&Model>,
    new: NewKey<'_>,
) -> anyhow::Result<(String, ApiKeyRow)> {
    instance.audited(origin, "apikey.create", Some("api_key"), || {
        if new.read_only && !new.agent {
            return Err(Failure::error("`--read-only` applies to agent keys")
                .with_hint("add `--agent`")
                .into());
        }
        let (token, hash) = new_token(API_KEY_PREFIX);
        instance.store.write(|tx| {
            let user = user_by_email(tx, new.email)?;
            if user.disabled {
                return Err(Failure::denied(format!("`{}` is disabled", user.email)).into());
            }
            let org = credential_org(tx, &user, new.org)?;
            if new.agent {
                let rights = authz::Principal::load(tx, model, &user, &org.id, &timefmt::now())?;
                if !rights.has("agent_access") {
                    return Err(Failure::denied(format!(
                        "`{}` does not hold `agent_access`, which agent keys need",
                        user.email
                    ))
                    .with_hint("assign a permission set that grants `agent_access`")
                    .into());
                }
            }
            let row = ApiKeyRow {
                id: new_id(),
                user_id: user.id.clone(),
                org_id: org.id.clone(),
                kind: if new.agent {
                    KeyKind::Agent
                } else {
                    KeyKind::User
                },
                read_only: new.read_only,
                name: new.name.map(str::to_string),
                prefix: display_prefix(&token),
                hash: hash.clone(),
                created_at: now(),
                expires_at: new.expires_at.clone(),
                revoked_at: None,
            };
            tx.apikey_insert(&row)?;
            audit::append(
                tx,
                origin,
                Event::new("apikey.create")
                    .object("api_key")
                    .record(&row.id)
                    .changes(json!({
                        "user": user.email,
                        "organization": org.name,
                        "kind": row.kind.as_str(),
                        "read_only": row.read_only,
                        "prefix": row.prefix,
                        "expires_at": row.expires_at,
                    })),
            )?;
            Ok((token.clone(), row))
        })
    })
}

/// Find a key by id or displayed prefix.
pub fn find_key(tx: &mut dyn Tx, id_or_prefix: &str) -> anyhow::Result<ApiKeyRow> {
    if let Some(row) = tx.apikey_by_id(id_or_prefix)? {
        return Ok(row);
    }
    let matches: Vec<ApiKeyRow> = tx
        .apikeys()?
        .into_iter()
        .filter(|k| {
            k.prefix == id_or_prefix
                || k.prefix.starts_with(id_or_prefix) && id_or_prefix.len() >= 8
        })
        .collect();
    match matches.len() {
        1 => Ok(matches.into_iter().next().unwrap_or_else(|| unreachable!())),
        0 => Err(Failure::error(format!("no API key `{id_or_prefix}`"))
            .with_hint("see `objectos apikey list`")
            .into()),
        _ => Err(Failure::error(format!(
            "`{id_or_prefix}` names several keys; use the key id"
        ))
        .into()),
    }
}

pub fn revoke_key(
    instance: &Instance,
    origin: &Origin,
    id_or_prefix: &str,
) -> anyhow::Result<ApiKeyRow> {
    instance.change(origin, "apikey.revoke", Some("api_key"), |tx| {
        let key = find_key(tx, id_or_prefix)?;
        if !tx.apikey_revoke(&key.id, &now())? {
            return Err(
                Failure::error(format!("the key `{}` is already revoked", key.prefix)).into(),
            );
        }
        audit::append(
            tx,
            origin,
            Event::new("apikey.revoke")
                .object("api_key")
                .record(&key.id)
                .changes(json!({"prefix": key.prefix})),
        )?;
        Ok(key)
    })
}

pub fn revoke_session(
    instance: &Instance,
    origin: &Origin,
    id: &str,
) -> anyhow::Result<SessionRow> {
    instance.change(origin, "session.revoke", Some("session"), |tx| {
        let session = tx.session_by_id(id)?.ok_or_else(|| {
            Failure::error(format!("no session `{id}`")).with_hint("see `objectos session list`")
        })?;
        if !tx.session_revoke(&session.id, &now())? {
            return Err(Failure::error(format!("the session `{id}` is already revoked")).into());
        }
        audit::append(
            tx,
            origin,
            Event::new("session.revoke")
                .object("session")
                .record(&session.id),
        )?;
        Ok(session)
    })
}

/// First organization, first admin, the built-in `admin` set, and the admin's
/// first user API key (returned, shown once). Refuses to run twice.
pub fn bootstrap(
    instance: &Instance,
    origin: &Origin,
    email: &str,
    org_name: &str,
    password: &str,
) -> anyhow::Result<(String, UserRow, OrgRow)> {
    instance.audited(origin, "bootstrap", Some("instance"), || {
        let email = normalize_email(email)?;
        validate_name("organization", org_name)?;
        check_password(password)?;
        let hash = hash_password(password)?;
        let (token, key_hash) = new_token(API_KEY_PREFIX);
        instance.store.write(|tx| {
            if tx.meta_get("bootstrap_org")?.is_some() {
                return Err(Failure::error("this instance is already bootstrapped")
                    .with_hint("add more people with `objectos user add`")
                    .into());
            }
            let at = now();
            let org = match tx.org_by_name(org_name)? {
                Some(org) => org,
                None => {
                    let org = OrgRow {
                        id: new_id(),
                        name: org_name.to_string(),
                        created_at: at.clone(),
                    };
                    tx.org_insert(&org)?;
                    org
                }
            };
            if tx.user_by_email(&email)?.is_some() {
                return Err(Failure::error(format!("a user `{email}` already exists")).into());
            }
            let user = UserRow {
                id: new_id(),
                email: email.clone(),
                name: Some("Administrator".into()),
                password_hash: Some(hash.clone()),
                disabled: false,
                created_at: at.clone(),
            };
            tx.user_insert(&user)?;
            tx.member_add(&user.id, &org.id, &at)?;
            tx.assignment_insert(&AssignmentRow {
                id: new_id(),
                user_id: user.id.clone(),
                permset: authz::ADMIN_SET.into(),
                org_id: None,
                valid_until: None,
                created_at: at.clone(),
            })?;
            let key = ApiKeyRow {
                id: new_id(),
                user_id: user.id.clone(),
                org_id: org.id.clone(),
                kind: KeyKind::User,
                read_only: false,
                name: Some("bootstrap".into()),
                prefix: display_prefix(&token),
                hash: key_hash.clone(),
                created_at: at.clone(),
                expires_at: None,
                revoked_at: None,
            };
            tx.apikey_insert(&key)?;
            tx.meta_set("bootstrap_org", &org.id)?;
            // One command, one row: everything bootstrap made, in its changes.
            audit::append(
                tx,
                origin,
                Event::new("bootstrap")
                    .object("instance")
                    .record(&instance.id)
                    .changes(json!({
                        "organization": {"id": org.id, "name": org.name},
                        "admin": {"id": user.id, "email": email, "password": {"changed": true}},
                        "permission_set": authz::ADMIN_SET,
                        "api_key": {"id": key.id, "prefix": key.prefix, "kind": "user"},
                    })),
            )?;
            Ok((token.clone(), user, org))
        })
    })
}
