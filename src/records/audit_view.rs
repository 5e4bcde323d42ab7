//! `GET /api/v1/audit/events`: audit rows as a `view_audit` holder may see them.
//!
//! Rows are the caller's organization's only. A row about an object the viewer
//! cannot read is not shown at all (its name would be an existence oracle). In the
//! rows that are shown, a value survives only where the viewer could read it now:
//! the redaction is a whitelist over every place a value can sit in a row —
//! changed fields (an unreadable one leaves only a count, not even its name), the filter, group keys and aggregates of a read, the ids a read
//! returned, a cascade's parent, a share's grantee, and error messages that name
//! fields or objects. Anything not recognised is redacted. The complete,
//! unredacted trail is the host operator's (`objectos audit tail`, the signed
//! export).

use serde_json::{Map, Value, json};

use crate::authz::access::ObjectAccess;
use crate::error::ApiError;
use crate::model::ObjectDef;
use crate::model::filter::Filter;
use crate::records::{AuditPage, Caller, Records, to_api};
use crate::store::{AuditRow, Cond, SqlValue};

use crate::limits::MAX_AUDIT_SCAN as MAX_SCAN;

fn redacted() -> Value {
    json!({ "redacted": true })
}

/// Names written in backticks in a message (`` `name` ``).
fn quoted_names(message: &str) -> Vec<&str> {
    message.split('`').skip(1).step_by(2).collect()
}

impl<'a> Records<'a> {
    /// A page of audit rows from `from`, as the caller may see them; needs
    /// `view_audit`.
    pub fn audit_events(
        &self,
        caller: &Caller,
        from: i64,
        limit: usize,
    ) -> Result<AuditPage, ApiError> {
        if !caller.principal.has("view_audit") {
            return Err(ApiError::forbidden(
                "missing_permission",
                "reading the audit log needs `view_audit`",
            ));
        }
        let mut out = Vec::new();
        let mut next = from;
        let mut scanned = 0usize;
        let mut exhausted = false;
        while out.len() < limit && scanned < MAX_SCAN {
            let page = self
                .instance
                .store
                .read(|tx| Ok(tx.audit_page(next, 500)?))
                .map_err(to_api)?;
            let Some(last) = page.last() else {
                exhausted = true;
                break;
            };
            let page_end = last.seq + 1;
            for row in page {
                scanned += 1;
                next = row.seq + 1;
                // Only the caller's organization: the host operator's rows, sign-in
                // attempts and other organizations' rows are not theirs to read.
                if row.actor.get("organization_id").and_then(Value::as_str)
                    != Some(caller.principal.org_id.as_str())
                {
                    continue;
                }
                if let Some(doc) = self.audit_view(caller, &row)? {
                    out.push(doc);
                }
                if out.len() >= limit {
                    break;
                }
            }
            if out.len() < limit {
                next = page_end;
            }
        }
        Ok(AuditPage {
            events: out,
            next_from: if exhausted { None } else { Some(next) },
        })
    }

    /// One row as the caller may see it, or `None` when the row is about an
    /// object they cannot read.
    fn audit_view(&self, caller: &Caller, row: &AuditRow) -> Result<Option<Value>, ApiError> {
        let mut doc = crate::audit::row_document(row);
        doc["hash"] = json!(row.hash);
        let object = row.object.as_deref().and_then(|n| self.model.object(n));
        let Some(object) = object else {
            // Not a business object (users, sessions, settings …): the row is the
            // organization's administration, shown as it is — unless it claims to
            // be about records, of an object that is gone.
            if is_record_action(&row.action)
                && let Some(changes) = doc.get_mut("changes").filter(|c| !c.is_null())
            {
                *changes = redacted();
            }
            return Ok(Some(doc));
        };
        let access = ObjectAccess::new(self.model, &caller.principal, object);
        if !access.can_read_object() {
            return Ok(None);
        }
        let record_readable = match row.record_id.as_deref() {
            Some(id) => !self
                .readable_ids(caller, object, &[id.to_string()])?
                .is_empty(),
            None => true,
        };
        match doc.get("changes") {
            Some(Value::Object(changes)) => {
                let kept = self.redact_changes(caller, &access, record_readable, changes)?;
                doc["changes"] = kept;
            }
            None | Some(Value::Null) => {}
            // No writer makes another shape; if one ever does, it shows nothing.
            Some(_) => doc["changes"] = redacted(),
        }
        Ok(Some(doc))
    }

    /// The ids, of those given, of records the caller can read now.
    pub(crate) fn readable_ids(
        &self,
        caller: &Caller,
        object: &'a ObjectDef,
        ids: &[String],
    ) -> Result<Vec<String>, ApiError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut readable = Vec::new();
        for chunk in ids.chunks(500) {
            let cond = Cond::and(vec![
                Cond::In {
                    column: "id".into(),
                    values: chunk.iter().map(|i| SqlValue::Text(i.clone())).collect(),
                    negate: false,
                },
                self.read_cond(caller, object),
            ]);
            let rows = self
                .instance
                .store
                .read(|tx| {
                    Ok(tx.record_select(&crate::store::Select {
                        object: object.name.clone(),
                        columns: vec!["id".into()],
                        cond,
                        order: Vec::new(),
                        limit: None,
                        offset: 0,
                        selective: true,
                    })?)
                })
                .map_err(to_api)?;
            readable.extend(rows.into_iter().filter_map(|r| match r.into_iter().next() {
                Some(SqlValue::Text(id)) => Some(id),
                _ => None,
            }));
        }
        Ok(readable)
    }

    /// Whether every field these names are is readable by the viewer.
    fn all_readable<'n>(
        access: &ObjectAccess<'_>,
        mut names: impl Iterator<Item = &'n str>,
    ) -> bool {
        names.all(|n| access.field_readable(n))
    }

    /// Whether a message names nothing the viewer may not know exists: no field
    /// of the object they cannot read, no object they cannot read.
    fn message_visible(&self, caller: &Caller, access: &ObjectAccess<'_>, message: &str) -> bool {
        quoted_names(message).into_iter().all(|name| {
            if access.object.field(name).is_some() {
                return access.field_readable(name);
            }
            match self.model.object(name) {
                Some(o) => ObjectAccess::new(self.model, &caller.principal, o).can_read_object(),
                None => true,
            }
        })
    }

    fn redact_changes(
        &self,
        caller: &Caller,
        access: &ObjectAccess<'a>,
        record_readable: bool,
        changes: &Map<String, Value>,
    ) -> Result<Value, ApiError> {
        let mut out = Map::new();
        let mut hidden_fields = 0usize;
        for (name, value) in changes {
            let is_field = access.object.field(name).is_some()
                || crate::model::SYSTEM_FIELDS.contains(&name.as_str());
            if is_field {
                // A field the viewer may not read leaves no trace but a count:
                // neither its value nor its name.
                if record_readable && access.field_readable(name) {
                    out.insert(name.clone(), value.clone());
                } else {
                    hidden_fields += 1;
                }
                continue;
            }
            let shown = {
                match name.as_str() {
                    // The shape of a read, not values.
                    "read" | "surface" | "row" | "imported" | "skipped" | "exported" | "tool"
                    | "status" | "pending_action" | "kind" | "expires_at" => true,
                    "error" => value
                        .as_str()
                        .is_some_and(|m| self.message_visible(caller, access, m)),
                    "ids" => {
                        let ids: Vec<String> = value
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(Value::as_str)
                                    .map(str::to_string)
                                    .collect()
                            })
                            .unwrap_or_default();
                        let readable = self.readable_ids(caller, access.object, &ids)?;
                        out.insert(
                            name.clone(),
                            json!(
                                ids.iter()
                                    .filter(|i| readable.contains(i))
                                    .collect::<Vec<_>>()
                            ),
                        );
                        if readable.len() < ids.len() {
                            out.insert("ids_redacted".into(), json!(ids.len() - readable.len()));
                        }
                        continue;
                    }
                    "filter" => Filter::from_json(value)
                        .is_ok_and(|f| Self::all_readable(access, f.fields().into_iter())),
                    // Field names, or `{"field", "dateGranularity"}` for a date bucket.
                    "groupBy" => value.as_array().is_some_and(|a| {
                        a.iter().all(|v| {
                            v.as_str()
                                .or_else(|| v.get("field").and_then(Value::as_str))
                                .is_some_and(|n| access.field_readable(n))
                        })
                    }),
                    "aggregations" => value.as_array().is_some_and(|a| {
                        a.iter().all(|agg| match agg.get("field") {
                            None | Some(Value::Null) => true,
                            Some(Value::String(f)) => access.field_readable(f),
                            Some(_) => false,
                        })
                    }),
                    "cascade_from" => value
                        .get("object")
                        .and_then(Value::as_str)
                        .and_then(|o| self.model.object(o))
                        .is_some_and(|o| {
                            ObjectAccess::new(self.model, &caller.principal, o).can_read_object()
                        }),
                    // A share's grantee and level: as visible as the record.
                    "type" | "value" | "accessLevel" => record_readable,
                    _ => false,
                }
            };
            out.insert(name.clone(), if shown { value.clone() } else { redacted() });
        }
        if hidden_fields > 0 {
            out.insert("redacted_fields".into(), json!(hidden_fields));
        }
        Ok(Value::Object(out))
    }
}

fn is_record_action(action: &str) -> bool {
    ["record.", "share.", "action.", "import", "export"]
        .iter()
        .any(|p| action.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_names_are_the_backticked_words() {
        assert_eq!(
            quoted_names("you may not write `ssn` on `crm_x`"),
            vec!["ssn", "crm_x"]
        );
        assert!(quoted_names("no names here").is_empty());
    }
}
