//! Ownership transfer (`objectos transfer`): the host operator gives every record
//! one user owns (of one object, or of all) to another user, in one transaction,
//! each move audited. Only the records service selects and moves records.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

use crate::audit::{self, Event, Origin};
use crate::error::Failure;
use crate::identity;
use crate::instance::Instance;
use crate::model::{Model, ObjectDef};
use crate::store::{CmpOp, Cond, Select, SqlValue};
use crate::timefmt;

#[derive(Serialize, JsonSchema)]
pub struct TransferReport {
    pub from: String,
    pub to: String,
    pub objects: Vec<TransferredObject>,
    pub total: usize,
}

#[derive(Serialize, JsonSchema)]
pub struct TransferredObject {
    pub object: String,
    pub records: usize,
}

/// Move the records `from` owns to `to`. The receiver must be enabled and belong
/// to every organization the records live in; nothing moves otherwise.
pub fn transfer(
    instance: &Instance,
    model: &Model,
    origin: &Origin,
    from: &str,
    to: &str,
    object: Option<&str>,
) -> anyhow::Result<TransferReport> {
    if let Some(name) = object
        && model.object(name).is_none()
    {
        return Err(Failure::error(format!("no object `{name}`")).into());
    }
    let objects: Vec<&ObjectDef> = model
        .objects
        .iter()
        .filter(|o| o.has_owner() && object.is_none_or(|n| n == o.name))
        .collect();
    instance.change(origin, "transfer", Some("record"), |tx| {
        let from = identity::user_by_email(tx, from)?;
        let to = identity::user_by_email(tx, to)?;
        if from.id == to.id {
            return Err(Failure::error("`--from` and `--to` are the same user").into());
        }
        if to.disabled {
            return Err(Failure::error(format!(
                "`{}` is disabled; records cannot be given to them",
                to.email
            ))
            .into());
        }
        let to_orgs: Vec<String> = tx.orgs_of_user(&to.id)?.into_iter().map(|o| o.id).collect();
        let at = timefmt::rfc3339_micros(timefmt::now());
        let mut moved = Vec::new();
        for object in &objects {
            // The new owner must belong to every organization the records live in.
            let orgs = tx.record_select(&Select {
                object: object.name.clone(),
                columns: vec!["organization_id".into()],
                cond: Cond::Cmp {
                    column: "owner_id".into(),
                    op: CmpOp::Eq,
                    value: SqlValue::Text(from.id.clone()),
                },
                order: Vec::new(),
                limit: None,
                offset: 0,
                selective: true,
            })?;
            for row in orgs {
                if let Some(SqlValue::Text(org)) = row.first()
                    && !to_orgs.contains(org)
                {
                    return Err(Failure::error(format!(
                        "`{}` owns `{}` records in an organization `{}` is not a member of",
                        from.email, object.name, to.email
                    ))
                    .with_hint("add them as a member first (`objectos member add`)")
                    .into());
                }
            }
            let ids = tx.record_transfer(&object.name, &from.id, &to.id, &at)?;
            for id in &ids {
                audit::append(
                    tx,
                    origin,
                    Event::new("record.transfer")
                        .object(&object.name)
                        .record(id)
                        .changes(json!({"owner_id": {"before": from.id, "after": to.id}})),
                )?;
            }
            moved.push(TransferredObject {
                object: object.name.clone(),
                records: ids.len(),
            });
        }
        let total = moved.iter().map(|m| m.records).sum();
        Ok(TransferReport {
            from: from.email,
            to: to.email,
            objects: moved,
            total,
        })
    })
}
