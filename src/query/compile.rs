//! Compiling filters and record access into backend-neutral conditions.

use serde_json::Value;

use crate::authz::Principal;
use crate::authz::access::{Grant, RecordAccess};
use crate::model::filter::{Filter, Op};
use crate::model::{ObjectDef, SYSTEM_FIELDS, Storage};
use crate::store::{CmpOp, Cond, SqlValue, TextMatch};

/// The storage of a column: a field's, or a system field's.
pub fn column_storage(object: &ObjectDef, column: &str) -> Option<Storage> {
    match column {
        "created_at" | "updated_at" => Some(Storage::DateTime),
        "row_version" => Some(Storage::Number),
        c if SYSTEM_FIELDS.contains(&c) => Some(Storage::Text),
        c => object.field(c).map(|f| f.storage),
    }
}

/// A JSON value as stored in a column of `storage`.
pub fn json_to_sql(storage: Storage, value: &Value) -> Result<SqlValue, String> {
    Ok(match (storage, value) {
        (_, Value::Null) => SqlValue::Null,
        (Storage::Number, Value::Number(n)) => {
            SqlValue::Real(n.as_f64().ok_or("not a finite number")?)
        }
        (Storage::Boolean, Value::Bool(b)) => SqlValue::Integer(i64::from(*b)),
        (Storage::Json, v) => {
            SqlValue::Text(crate::crypto::canonical::to_string(v).map_err(|e| e.to_string())?)
        }
        (Storage::Text | Storage::Date | Storage::DateTime | Storage::Time, Value::String(s)) => {
            SqlValue::Text(s.clone())
        }
        (Storage::Number, _) => return Err("expects a number".into()),
        (Storage::Boolean, _) => return Err("expects `true` or `false`".into()),
        (_, _) => return Err("expects a string".into()),
    })
}

/// A stored value back as JSON.
pub fn sql_to_json(storage: Storage, value: SqlValue) -> Value {
    match (storage, value) {
        (_, SqlValue::Null) => Value::Null,
        (Storage::Boolean, SqlValue::Integer(i)) => Value::Bool(i != 0),
        (Storage::Json, SqlValue::Text(t)) => serde_json::from_str(&t).unwrap_or(Value::String(t)),
        (_, SqlValue::Integer(i)) => Value::from(i),
        (_, SqlValue::Real(r)) => {
            if r.fract() == 0.0 && r.abs() < 9.0e15 {
                Value::from(r as i64)
            } else {
                serde_json::Number::from_f64(r)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        (_, SqlValue::Text(t)) => Value::String(t),
        (_, SqlValue::Blob(b)) => Value::String(String::from_utf8_lossy(&b).into_owned()),
    }
}

/// Compile a filter on `object`. Field names must exist; readability is the
/// caller's check (sharing rules compile without one).
pub fn filter_cond(object: &ObjectDef, filter: &Filter) -> Result<Cond, String> {
    Ok(match filter {
        Filter::All => Cond::True,
        Filter::And(items) => Cond::and(
            items
                .iter()
                .map(|f| filter_cond(object, f))
                .collect::<Result<_, _>>()?,
        ),
        Filter::Or(items) => Cond::or(
            items
                .iter()
                .map(|f| filter_cond(object, f))
                .collect::<Result<_, _>>()?,
        ),
        Filter::Not(inner) => Cond::Not(Box::new(filter_cond(object, inner)?)),
        Filter::Cmp { field, op } => {
            let storage = column_storage(object, field)
                .ok_or_else(|| format!("`{}` has no field `{field}`", object.name))?;
            let value = |v: &Value| {
                json_to_sql(storage, v)
                    .map_err(|e| format!("the value compared with `{field}` {e}"))
            };
            let column = field.clone();
            if storage == Storage::Json && !matches!(op, Op::Null(_) | Op::Contains(_)) {
                return Err(format!(
                    "`{field}` holds structured values; filter it with `$null` or `$contains`"
                ));
            }
            let cmp = |op: CmpOp, v: &Value| -> Result<Cond, String> {
                if v.is_null() {
                    return match op {
                        CmpOp::Eq => Ok(Cond::Null {
                            column: column.clone(),
                            is_null: true,
                        }),
                        CmpOp::Ne => Ok(Cond::Null {
                            column: column.clone(),
                            is_null: false,
                        }),
                        _ => Err(format!("`{field}` cannot be ordered against null")),
                    };
                }
                Ok(Cond::Cmp {
                    column: column.clone(),
                    op,
                    value: value(v)?,
                })
            };
            match op {
                Op::Eq(v) => cmp(CmpOp::Eq, v)?,
                Op::Ne(v) => cmp(CmpOp::Ne, v)?,
                Op::Gt(v) => cmp(CmpOp::Gt, v)?,
                Op::Gte(v) => cmp(CmpOp::Gte, v)?,
                Op::Lt(v) => cmp(CmpOp::Lt, v)?,
                Op::Lte(v) => cmp(CmpOp::Lte, v)?,
                Op::Between(a, b) => Cond::and(vec![cmp(CmpOp::Gte, a)?, cmp(CmpOp::Lte, b)?]),
                Op::In(vs) | Op::Nin(vs) => Cond::In {
                    column: column.clone(),
                    values: vs.iter().map(value).collect::<Result<_, _>>()?,
                    negate: matches!(op, Op::Nin(_)),
                },
                Op::Contains(s) | Op::StartsWith(s) | Op::EndsWith(s) => {
                    if matches!(storage, Storage::Number | Storage::Boolean) {
                        return Err(format!(
                            "`{}` matches text, and `{field}` is not text",
                            op.name()
                        ));
                    }
                    let mode = match op {
                        Op::Contains(_) => TextMatch::Contains,
                        Op::StartsWith(_) => TextMatch::StartsWith,
                        _ => TextMatch::EndsWith,
                    };
                    Cond::Text {
                        column,
                        mode,
                        needle: s.clone(),
                    }
                }
                Op::Null(is_null) => Cond::Null {
                    column,
                    is_null: *is_null,
                },
            }
        }
    })
}

/// Record access as a condition: inside the principal's organization, any grant.
pub fn access_cond(principal: &Principal, object: &ObjectDef, access: &RecordAccess<'_>) -> Cond {
    let RecordAccess::Any {
        grants,
        also_readable,
    } = access
    else {
        return Cond::False;
    };
    let org = Cond::Cmp {
        column: "organization_id".into(),
        op: CmpOp::Eq,
        value: SqlValue::Text(principal.org_id.clone()),
    };
    let mut branches = Vec::new();
    for grant in grants {
        let branch = match grant {
            Grant::All => Cond::True,
            Grant::Owner(user) => Cond::Cmp {
                column: "owner_id".into(),
                op: CmpOp::Eq,
                value: SqlValue::Text(user.clone()),
            },
            // A rule that cannot be compiled shares nothing (rules are validated, so
            // this does not happen; fail closed if it does).
            Grant::Rule(rule) => filter_cond(object, &rule.condition).unwrap_or(Cond::False),
            Grant::Shared { edit } => Cond::SharedWith {
                object: object.name.clone(),
                user_id: principal.user_id.clone(),
                teams: principal.teams.iter().cloned().collect(),
                edit: *edit,
            },
            Grant::Parent {
                field,
                parent,
                access,
            } => Cond::ParentIn {
                column: field.clone(),
                parent: parent.name.clone(),
                cond: Box::new(access_cond(principal, parent, access)),
            },
        };
        // Each branch carries the organization test, so that an index on
        // (organization_id, x) serves it and the OR can be planned as a union.
        branches.push(Cond::and(vec![org.clone(), branch]));
    }
    let mut cond = Cond::or(branches);
    if let Some(readable) = also_readable {
        cond = Cond::and(vec![cond, access_cond(principal, object, readable)]);
    }
    cond
}
