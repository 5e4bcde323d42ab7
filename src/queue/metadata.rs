//! Proposals that change who may do what or what the app is: granting or
//! revoking a permission set, adding a field, changing a select's options. Their
//! proposer needs `manage_metadata`. An approved grant applies at once; an
//! approved change to the app is written out as a new, unsigned artifact (the
//! applied one plus the change, naming the digest it was based on) beside its
//! diff, and takes effect only when an operator signs and applies it. Only
//! signed artifacts shape the database.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::audit::{self, Event};
use crate::error::ApiError;
use crate::queue::{Kind, Proposal};
use crate::records::{Caller, Records, to_api};
use crate::store::{AssignmentRow, PendingRow, Tx};
use crate::timefmt;

/// Where approved metadata changes are written, inside the data dir.
pub const PROPOSALS_DIR: &str = "proposals";

fn needs_manage_metadata(caller: &Caller) -> Result<(), ApiError> {
    if caller.principal.has("manage_metadata") {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "missing_permission",
            "proposing a change to the app or to permissions needs `manage_metadata`",
        ))
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_value", message)
}

/// Grant (or revoke) a permission set to a user of the caller's organization.
pub fn grant(
    records: &Records<'_>,
    caller: &Caller,
    change: &Value,
    revoke: bool,
    input: &Value,
) -> Result<Proposal, ApiError> {
    needs_manage_metadata(caller)?;
    let set = change
        .get("permissionSet")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("`permissionSet` names the permission set"))?;
    let email = change
        .get("user")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("`user` is the user's email"))?;
    crate::identity::known_permset(Some(records.model), set)
        .map_err(|e| ApiError::bad_request("invalid_value", e.to_string()))?;
    let org = caller.principal.org_id.clone();
    let user = records
        .instance
        .store
        .read(|tx| {
            let user = match crate::identity::normalize_email(email) {
                Ok(e) => tx.user_by_email(&e)?,
                Err(_) => None,
            };
            Ok(match user {
                Some(u) if tx.orgs_of_user(&u.id)?.iter().any(|o| o.id == org) => {
                    let holds = tx
                        .assignments_of_user(&u.id)?
                        .iter()
                        .any(|a| a.permset == set && a.org_id.as_deref() == Some(org.as_str()));
                    Some((u, holds))
                }
                _ => None,
            })
        })
        .map_err(to_api)?;
    let Some((user, holds)) = user else {
        return Err(ApiError::bad_request(
            "invalid_reference",
            "no user of this organization has that email",
        ));
    };
    if revoke && !holds {
        return Err(bad(format!(
            "`{}` holds no assignment of `{set}` in this organization",
            user.email
        )));
    }
    Ok(Proposal {
        kind: if revoke { Kind::Revoke } else { Kind::Grant },
        tool: "propose_metadata_change".into(),
        input: input.clone(),
        object: None,
        record_id: None,
        before_hash: None,
        before_version: None,
        body: json!({
            "permissionSet": set,
            "user": {"id": user.id, "email": user.email},
        }),
    })
}

/// Apply an approved grant or revocation, in the caller's transaction.
pub fn apply_grant(
    tx: &mut dyn Tx,
    requester: &Caller,
    row: &PendingRow,
    grant: bool,
) -> anyhow::Result<String> {
    let set = row.proposal["permissionSet"].as_str().unwrap_or_default();
    let user_id = row.proposal["user"]["id"].as_str().unwrap_or_default();
    let email = row.proposal["user"]["email"].as_str().unwrap_or_default();
    if !tx.orgs_of_user(user_id)?.iter().any(|o| o.id == row.org_id) {
        return Err(ApiError::new(
            409,
            "apply_failed",
            "the user is no longer a member of the organization",
        )
        .into());
    }
    let action = if grant {
        tx.assignment_insert(&AssignmentRow {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: user_id.to_string(),
            permset: set.to_string(),
            org_id: Some(row.org_id.clone()),
            valid_until: None,
            created_at: timefmt::rfc3339(timefmt::now()),
        })?;
        "permset.assign"
    } else {
        if !tx.assignment_delete(user_id, set, Some(&row.org_id))? {
            return Err(ApiError::new(409, "stale", "the assignment is already gone").into());
        }
        "permset.revoke"
    };
    audit::append(
        tx,
        &requester.origin,
        Event::new(action)
            .object("permission_set")
            .record(set)
            .changes(
                json!({"user": email, "organization_id": row.org_id, "pending_action": row.id}),
            ),
    )?;
    Ok(format!(
        "{} `{set}` {} {email}",
        if grant { "granted" } else { "revoked" },
        if grant { "to" } else { "from" }
    ))
}

/// The applied artifact as a document, and its sha256.
fn base(records: &Records<'_>) -> Result<(Value, String), ApiError> {
    let applied = crate::instance::applied::require(records.instance).map_err(|e| {
        tracing::error!(error = %format!("{e:#}"), "cannot load the applied artifact");
        ApiError::new(503, "not_ready", "the applied artifact cannot be loaded")
    })?;
    let doc = serde_json::from_slice(&applied.row.bytes).map_err(|_| ApiError::internal())?;
    Ok((doc, applied.row.sha256))
}

/// `base` with `change` made: a field added, or a select's options replaced.
fn changed(mut doc: Value, change: &Value, base_sha: &str) -> Result<Value, ApiError> {
    let op = change.get("kind").and_then(Value::as_str).unwrap_or("");
    let object = change
        .get("objectName")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("`objectName` names the object"))?;
    let field = change
        .get("fieldName")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("`fieldName` names the field"))?;
    let objects = doc
        .get_mut("objects")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| ApiError::not_found(format!("no object `{object}`")))?;
    let target = objects
        .iter_mut()
        .find(|o| o.get("name").and_then(Value::as_str) == Some(object))
        .ok_or_else(|| ApiError::not_found(format!("no object `{object}`")))?;
    let fields = target
        .as_object_mut()
        .ok_or_else(ApiError::internal)?
        .entry("fields")
        .or_insert_with(|| json!({}));
    let fields = fields.as_object_mut().ok_or_else(ApiError::internal)?;
    match op {
        "add_field" => {
            if fields.contains_key(field) {
                return Err(bad(format!("`{object}` already has a field `{field}`")));
            }
            let definition = change
                .get("field")
                .filter(|d| d.is_object())
                .ok_or_else(|| bad("`field` is the new field's definition (`{\"type\": …}`)"))?;
            fields.insert(field.to_string(), definition.clone());
        }
        "change_options" => {
            let options = change
                .get("options")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("`options` is the select's new list of options"))?;
            let def = fields
                .get_mut(field)
                .and_then(Value::as_object_mut)
                .ok_or_else(|| bad(format!("`{object}` has no field `{field}`")))?;
            if !def.contains_key("options") {
                return Err(bad(format!("`{field}` is not a field with options")));
            }
            def.insert("options".into(), Value::Array(options.clone()));
        }
        other => {
            return Err(bad(format!(
                "`{other}` is not a change objectos proposes; use add_field, change_options, grant_permission_set or revoke_permission_set"
            )));
        }
    }
    let x = doc
        .as_object_mut()
        .ok_or_else(ApiError::internal)?
        .entry("x-objectos")
        .or_insert_with(|| json!({}));
    if let Some(map) = x.as_object_mut() {
        map.insert("basedOn".into(), json!(base_sha));
    }
    Ok(doc)
}

/// The canonical bytes of a changed artifact, checked by the validator.
fn artifact_of(doc: &Value) -> Result<Vec<u8>, ApiError> {
    let bytes = crate::artifact::artifact_bytes(doc).map_err(|_| ApiError::internal())?;
    let checked = crate::artifact::check_bytes(&bytes, std::path::Path::new("<proposed>"), false)
        .map_err(|e| bad(format!("the changed app would not be valid: {e}")))?;
    if let Some(first) = checked.report.errors.first() {
        return Err(bad(format!(
            "the changed app would not be valid: at `{}`: {}",
            first.pointer, first.message
        )));
    }
    Ok(bytes)
}

fn pretty(bytes: &[u8]) -> String {
    serde_json::from_slice::<Value>(bytes)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_default()
}

/// A unified diff of two artifacts, as text.
fn unified(old: &[u8], new: &[u8]) -> String {
    similar::TextDiff::from_lines(&pretty(old), &pretty(new))
        .unified_diff()
        .context_radius(3)
        .header("applied", "proposed")
        .to_string()
}

/// Add a field or change a select's options: checked now against the applied
/// artifact (the result must validate).
pub fn change(
    records: &Records<'_>,
    caller: &Caller,
    change: &Value,
    input: &Value,
) -> Result<Proposal, ApiError> {
    needs_manage_metadata(caller)?;
    // The object must be one the proposer can read: an unreadable object is
    // answered as a missing one.
    if let Some(object) = change.get("objectName").and_then(Value::as_str) {
        records.object_access(caller, object)?;
    }
    let (doc, base_sha) = base(records)?;
    let old = crate::artifact::artifact_bytes(&doc).map_err(|_| ApiError::internal())?;
    let new = artifact_of(&changed(doc, change, &base_sha)?)?;
    Ok(Proposal {
        kind: Kind::Metadata,
        tool: "propose_metadata_change".into(),
        input: input.clone(),
        object: change
            .get("objectName")
            .and_then(Value::as_str)
            .map(str::to_string),
        record_id: None,
        before_hash: None,
        before_version: None,
        body: json!({
            "change": change,
            "baseSha256": base_sha,
            "artifactSha256": crate::crypto::signing::sha256_hex(&new),
            "unifiedDiff": unified(&old, &new),
        }),
    })
}

/// Write an approved change out as an unsigned artifact and its diff; refused
/// (stale) when the applied artifact is no longer the one it was based on.
/// Returns the artifact's path.
pub fn write_proposal(records: &Records<'_>, row: &PendingRow) -> Result<String, ApiError> {
    let (doc, base_sha) = base(records)?;
    let expected = row.proposal["baseSha256"].as_str().unwrap_or_default();
    if base_sha != expected {
        return Err(ApiError::new(
            409,
            "stale",
            "another artifact was applied since the change was proposed",
        ));
    }
    let change = &row.proposal["change"];
    let old = crate::artifact::artifact_bytes(&doc).map_err(|_| ApiError::internal())?;
    let new = artifact_of(&changed(doc, change, &base_sha)?)?;
    let dir: PathBuf = records.instance.dir.join(PROPOSALS_DIR);
    let write = || -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(&dir)?;
        let artifact = dir.join(format!("{}.objectstack.json", row.id));
        crate::crypto::signing::write_atomic(&artifact, &new, Some(0o644), false)?;
        crate::crypto::signing::write_atomic(
            &dir.join(format!("{}.diff", row.id)),
            unified(&old, &new).as_bytes(),
            Some(0o644),
            false,
        )?;
        Ok(artifact)
    };
    let artifact = write().map_err(|e| {
        tracing::error!(error = %format!("{e:#}"), "cannot write the proposed artifact");
        ApiError::internal()
    })?;
    Ok(artifact.display().to_string())
}
