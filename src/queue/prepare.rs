//! Turning an agent's call into a proposal: the change is run in a transaction
//! that is always rolled back, so that exactly what would be refused now is
//! refused now (never queued), and the proposal records what it would change.

use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::queue::{Kind, Proposal, diff_of};
use crate::records::{Caller, Expect, Records, before_hash};

/// An update (or an update action's patch) of one record.
#[allow(clippy::too_many_arguments)]
pub fn update(
    records: &Records<'_>,
    caller: &Caller,
    object: &str,
    id: &str,
    data: &Map<String, Value>,
    tool: &str,
    input: &Value,
    action: Option<&str>,
) -> Result<Proposal, ApiError> {
    let access = records.writable_object(caller, object)?;
    let o = access.object;
    let before = records.dry_run(|tx| {
        let before = Records::fetch_raw(tx, o, id)?;
        records.update_in(tx, caller, &access, id, data, &Expect::Any)?;
        Ok(before.unwrap_or_default())
    })?;
    Ok(Proposal {
        kind: if action.is_some() {
            Kind::Action
        } else {
            Kind::Update
        },
        tool: tool.to_string(),
        input: input.clone(),
        object: Some(o.name.clone()),
        record_id: Some(id.to_string()),
        before_hash: Some(before_hash(&before)),
        before_version: before.get("row_version").and_then(Value::as_i64),
        body: json!({
            "data": data,
            "diff": diff_of(&access, Some(&before), data),
            "action": action,
        }),
    })
}

/// A delete of one record, with every record its cascade would remove.
pub fn delete(
    records: &Records<'_>,
    caller: &Caller,
    object: &str,
    id: &str,
    tool: &str,
    input: &Value,
) -> Result<Proposal, ApiError> {
    let access = records.writable_object(caller, object)?;
    let o = access.object;
    let (before, removed) = records.dry_run(|tx| {
        let before = Records::fetch_raw(tx, o, id)?;
        let removed = records.delete_in(tx, caller, &access, id, &Expect::Any)?;
        Ok((before.unwrap_or_default(), removed))
    })?;
    // What the record holds now, each field going away.
    let diff: Vec<Value> = o
        .fields
        .iter()
        .filter_map(|f| {
            before
                .get(&f.name)
                .filter(|v| !v.is_null())
                .map(|v| json!({"field": f.name, "before": v, "after": null}))
        })
        .collect();
    Ok(Proposal {
        kind: Kind::Delete,
        tool: tool.to_string(),
        input: input.clone(),
        object: Some(o.name.clone()),
        record_id: Some(id.to_string()),
        before_hash: Some(before_hash(&before)),
        before_version: before.get("row_version").and_then(Value::as_i64),
        body: json!({
            "diff": diff,
            "cascade": removed
                .iter()
                .map(|(object, id)| json!({"object": object, "id": id}))
                .collect::<Vec<_>>(),
        }),
    })
}

/// A create of one record.
pub fn create(
    records: &Records<'_>,
    caller: &Caller,
    object: &str,
    data: &Map<String, Value>,
    tool: &str,
    input: &Value,
) -> Result<Proposal, ApiError> {
    let access = records.writable_object(caller, object)?;
    if !access.can_create() {
        return Err(ApiError::forbidden(
            "forbidden",
            format!("you may not create `{object}` records"),
        ));
    }
    records.dry_run(|tx| {
        records.insert_one(tx, caller, &access, data)?;
        Ok(())
    })?;
    Ok(Proposal {
        kind: Kind::Create,
        tool: tool.to_string(),
        input: input.clone(),
        object: Some(access.object.name.clone()),
        record_id: None,
        before_hash: None,
        before_version: None,
        body: json!({
            "data": data,
            "diff": diff_of(&access, None, data),
        }),
    })
}
