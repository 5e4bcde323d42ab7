//! Writing records: create (one or a batch), update and delete, each checked
//! against the caller's object, record and field rights, validated, and audited
//! in the same transaction; a refused write leaves its own row.

use serde_json::{Map, Value, json};

use crate::audit::{self, Changes, Event, Outcome};
use crate::authz::access::{ObjectAccess, Op};
use crate::error::ApiError;
use crate::model::values::check_value;
use crate::model::*;
use crate::query::compile::{column_storage, json_to_sql, sql_to_json};
use crate::records::*;
use crate::store::*;
use crate::timefmt;

/// A check of a value written that needs the database: made in the write's
/// own transaction, so that what it found still holds at the commit.
pub(crate) enum Lookup<'a> {
    /// `owner_id` names a user of the caller's organization.
    Owner(String),
    /// A reference field names what the caller may use (see
    /// [`Records::check_reference`]).
    Reference(&'a FieldDef, Value),
}

/// A record to insert, checked and converted before the write's transaction
/// (which then holds only the database's part of the work): its row, its
/// audit row's changes, and the lookups left to check.
pub(crate) struct Insert<'a> {
    id: String,
    row: Vec<(String, SqlValue)>,
    changes: Value,
    lookups: Vec<Lookup<'a>>,
}

impl<'a> Records<'a> {
    pub(crate) fn writable_object(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<ObjectAccess<'a>, ApiError> {
        let access = self.object_access(caller, name)?;
        if access.object.read_only {
            return Err(ApiError::forbidden(
                "read_only_object",
                format!("`{name}` is a read-only data source"),
            ));
        }
        Ok(access)
    }

    /// Check and convert the values a write assigns; the whole write is refused if
    /// any field may not be written. What needs the database (that a user or a
    /// referenced record exists and may be used) goes into `lookups`, for
    /// [`Records::check_lookups`] inside the write's transaction.
    fn prepare(
        &self,
        access: &ObjectAccess<'a>,
        values: &Map<String, Value>,
        create: bool,
        lookups: &mut Vec<Lookup<'a>>,
    ) -> anyhow::Result<Vec<(String, SqlValue)>> {
        let object = access.object;
        let mut out = Vec::new();
        for (name, value) in values {
            if SYSTEM_FIELDS.contains(&name.as_str()) && name != "owner_id" {
                return Err(ApiError::forbidden(
                    "field_not_editable",
                    format!("`{name}` is set by objectos only"),
                )
                .into());
            }
            let allowed = if create {
                access.field_creatable(name)
            } else {
                access.field_updatable(name)
            };
            if name == "owner_id" {
                if !allowed {
                    return Err(ApiError::forbidden(
                        "field_not_editable",
                        "only holders of modifyAllRecords may set `owner_id`",
                    )
                    .into());
                }
                let owner = value.as_str().ok_or_else(|| {
                    ApiError::bad_request("invalid_value", "`owner_id` is a user id")
                })?;
                lookups.push(Lookup::Owner(owner.to_string()));
                out.push(("owner_id".into(), SqlValue::Text(owner.to_string())));
                continue;
            }
            let Some(field) = object.field(name) else {
                return Err(ApiError::bad_request(
                    "unknown_field",
                    format!("`{}` has no field `{name}`", object.name),
                )
                .into());
            };
            if !allowed {
                return Err(ApiError::forbidden(
                    "field_not_editable",
                    format!("you may not write `{name}`"),
                )
                .into());
            }
            if let Err(why) = check_value(field, value) {
                return Err(
                    ApiError::bad_request("invalid_value", format!("`{name}` {why}")).into(),
                );
            }
            if !value.is_null() && Self::is_reference(field) {
                lookups.push(Lookup::Reference(field, value.clone()));
            }
            if field.required && value.is_null() {
                return Err(ApiError::bad_request(
                    "required_field",
                    format!("`{name}` is required"),
                )
                .into());
            }
            out.push((
                name.clone(),
                json_to_sql(field.storage, value)
                    .map_err(|e| ApiError::bad_request("invalid_value", format!("`{name}` {e}")))?,
            ));
        }
        Ok(out)
    }

    /// Check, in the write's transaction, what [`Records::prepare`] left for it.
    fn check_lookups(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        lookups: &[Lookup<'a>],
    ) -> anyhow::Result<()> {
        for lookup in lookups {
            match lookup {
                Lookup::Owner(owner) => self.check_user_in_org(tx, caller, owner, "owner_id")?,
                Lookup::Reference(field, value) => {
                    self.check_reference(tx, caller, field, value)?
                }
            }
        }
        Ok(())
    }

    /// Whether [`Records::check_reference`] has anything to check for a field.
    fn is_reference(field: &FieldDef) -> bool {
        matches!(field.field_type, "user" | "lookup" | "master_detail")
    }

    fn check_user_in_org(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        user_id: &str,
        field: &str,
    ) -> anyhow::Result<()> {
        let ok = tx.user_by_id(user_id)?.is_some()
            && tx
                .orgs_of_user(user_id)?
                .iter()
                .any(|o| o.id == caller.principal.org_id);
        if !ok {
            return Err(ApiError::bad_request(
                "invalid_reference",
                format!("`{field}` names no user of this organization"),
            )
            .into());
        }
        Ok(())
    }

    /// A reference must name a record the caller can read (for a controlled-by-
    /// parent child: edit) in the same organization; otherwise the write is refused
    /// exactly as for an id that does not exist.
    fn check_reference(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        field: &FieldDef,
        value: &Value,
    ) -> anyhow::Result<()> {
        let ids: Vec<&str> = match value {
            Value::String(s) => vec![s.as_str()],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let target = match field.field_type {
            "user" => {
                for id in ids {
                    self.check_user_in_org(tx, caller, id, &field.name)?;
                }
                return Ok(());
            }
            "lookup" if field.reference() == Some("sys_user") => {
                for id in ids {
                    self.check_user_in_org(tx, caller, id, &field.name)?;
                }
                return Ok(());
            }
            "lookup" | "master_detail" => field.reference().and_then(|r| self.model.object(r)),
            _ => return Ok(()),
        };
        let Some(target) = target else { return Ok(()) };
        let op = if field.field_type == "master_detail" {
            Op::Edit
        } else {
            Op::Read
        };
        for id in ids {
            let cond = Cond::and(vec![Self::id_cond(id), self.op_cond(caller, target, op)]);
            if tx.record_count(&target.name, &cond)? == 0 {
                return Err(ApiError::bad_request(
                    "invalid_reference",
                    // The target object stays unnamed: the caller may not know it.
                    format!("`{}` names no record you may use", field.name),
                )
                .into());
            }
        }
        Ok(())
    }

    fn unique_error(object: &ObjectDef, err: anyhow::Error) -> anyhow::Error {
        if let Some(StoreError::Unique(columns)) = err.downcast_ref::<StoreError>() {
            // "rec_x.organization_id, rec_x.email": name the field, and only the field.
            let field = columns
                .rsplit(", ")
                .next()
                .and_then(|c| c.rsplit('.').next())
                .unwrap_or("");
            if object.field(field).is_some() {
                return ApiError::new(
                    409,
                    "unique_violation",
                    format!("another record already has this `{field}`"),
                )
                .into();
            }
        }
        err
    }

    fn changes(
        &self,
        object: &ObjectDef,
        before: Option<&Map<String, Value>>,
        after: &[(String, Value)],
    ) -> Value {
        let mut changes = Changes::new();
        for (name, value) in after {
            let old = before.and_then(|b| b.get(name));
            if old == Some(value) {
                continue;
            }
            if object.field(name).is_some_and(|f| f.sensitive) {
                changes.sensitive(name, Some(value), &self.instance.hmac);
            } else {
                changes.field(name, old, Some(value));
            }
        }
        changes.into_value()
    }

    /// Create a record as the caller; 201 with the record as they may read it.
    pub fn create(
        &self,
        caller: &Caller,
        object: &str,
        values: &Map<String, Value>,
    ) -> Result<Map<String, Value>, ApiError> {
        let refused = |e: &ApiError| self.refused(caller, "record.create", object, None, e);
        let access = self.writable_object(caller, object).inspect_err(refused)?;
        if !access.can_create() {
            let e = ApiError::forbidden(
                "forbidden",
                format!("you may not create `{object}` records"),
            );
            refused(&e);
            return Err(e);
        }
        // Checked and built before the writer is taken: it is held only for
        // the database's part.
        let insert = self
            .plan_insert(caller, &access, values)
            .map_err(to_api)
            .inspect_err(refused)?;
        // Read back after the commit, on a read connection, while the commit
        // is put on disk: the writer is free for the next write meanwhile. A
        // record the creator cannot read back (a rule-less private object
        // without ownership, say) answers with its id only.
        let (id, record) = self
            .instance
            .store
            .write_then_read(
                |tx| self.apply_insert(tx, caller, &access, insert),
                |tx, id| self.fetch(tx, caller, &access, id, Op::Read),
            )
            .map_err(to_api)
            .inspect_err(refused)?;
        let record = record.map_err(to_api)?;
        Ok(record.unwrap_or_else(|| {
            let mut m = Map::new();
            m.insert("id".into(), json!(id));
            m
        }))
    }

    /// Insert one record as the caller, in the caller's transaction: defaults,
    /// field rights, validation, references, uniqueness, and its audit row.
    /// Answers the new record's id.
    pub(crate) fn insert_one(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        access: &ObjectAccess<'a>,
        values: &Map<String, Value>,
    ) -> anyhow::Result<String> {
        let insert = self.plan_insert(caller, access, values)?;
        self.apply_insert(tx, caller, access, insert)
    }

    /// The part of [`Records::insert_one`] that needs no database: defaults,
    /// field rights, validation, the new row and its audit changes. Done
    /// before a create's transaction, so the writer is held only for the rest.
    pub(crate) fn plan_insert(
        &self,
        caller: &Caller,
        access: &ObjectAccess<'a>,
        values: &Map<String, Value>,
    ) -> anyhow::Result<Insert<'a>> {
        let o = access.object;
        // What the caller sent goes through field rights and validation, all of it.
        let mut lookups = Vec::new();
        let mut columns = self.prepare(access, values, true, &mut lookups)?;
        let mut values = values.clone();
        // Defaults are the app's, not the caller's: they fill only fields the
        // caller left out, bypassing field rights but not validation.
        for field in &o.fields {
            if values.contains_key(&field.name) {
                continue;
            }
            let Some(default) = field.default_value() else {
                continue;
            };
            let v = match default {
                DefaultValue::Literal(v) => (**v).clone(),
                DefaultValue::Now => json!(match field.storage {
                    Storage::Date => timefmt::now().date().to_string(),
                    Storage::Time => {
                        let t = timefmt::now().time();
                        format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
                    }
                    _ => timefmt::rfc3339(timefmt::now()),
                }),
                DefaultValue::CurrentUser => json!(caller.principal.user_id),
            };
            if check_value(field, &v).is_ok() {
                columns.push((
                    field.name.clone(),
                    json_to_sql(field.storage, &v)
                        .map_err(|e| ApiError::bad_request("invalid_value", e))?,
                ));
                values.insert(field.name.clone(), v);
            }
        }
        for field in o.fields.iter().filter(|f| f.required) {
            if values.get(&field.name).is_none_or(|v| v.is_null()) {
                return Err(ApiError::bad_request(
                    "required_field",
                    if access.field_readable(&field.name) {
                        format!("`{}` is required", field.name)
                    } else {
                        "a required field is missing".to_string()
                    },
                )
                .into());
            }
        }
        let id = uuid::Uuid::now_v7().to_string();
        let at = now();
        let owner = columns
            .iter()
            .find(|(c, _)| c == "owner_id")
            .map(|(_, v)| v.clone());
        columns.retain(|(c, _)| c != "owner_id");
        let owner = if o.has_owner() {
            owner.unwrap_or(SqlValue::Text(caller.principal.user_id.clone()))
        } else {
            SqlValue::Null
        };
        let mut row = vec![
            ("id".to_string(), SqlValue::Text(id.clone())),
            ("owner_id".to_string(), owner),
            (
                "organization_id".to_string(),
                SqlValue::Text(caller.principal.org_id.clone()),
            ),
            (
                "created_by".to_string(),
                SqlValue::Text(caller.principal.user_id.clone()),
            ),
            ("created_at".to_string(), SqlValue::Text(at.clone())),
            (
                "updated_by".to_string(),
                SqlValue::Text(caller.principal.user_id.clone()),
            ),
            ("updated_at".to_string(), SqlValue::Text(at)),
        ];
        row.extend(columns);
        let assigned: Vec<(String, Value)> = row
            .iter()
            .filter(|(c, _)| !SYSTEM_FIELDS.contains(&c.as_str()) || c == "owner_id")
            .map(|(c, v)| {
                (
                    c.clone(),
                    sql_to_json(column_storage(o, c).unwrap_or(Storage::Text), v.clone()),
                )
            })
            .collect();
        Ok(Insert {
            changes: self.changes(o, None, &assigned),
            id,
            row,
            lookups,
        })
    }

    /// The database's part of [`Records::insert_one`], in the caller's
    /// transaction: lookups, the row (uniqueness), and its audit row.
    pub(crate) fn apply_insert(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        access: &ObjectAccess<'a>,
        insert: Insert<'a>,
    ) -> anyhow::Result<String> {
        let o = access.object;
        self.check_lookups(tx, caller, &insert.lookups)?;
        tx.record_insert(&o.name, &insert.row)
            .map_err(|e| Self::unique_error(o, e.into()))?;
        audit::append(
            tx,
            &caller.origin,
            Event::new("record.create")
                .object(&o.name)
                .record(&insert.id)
                .changes(insert.changes),
        )?;
        Ok(insert.id)
    }

    /// Create many records as the caller in one transaction (bulk import). Each
    /// gets its own audit row. An invalid row is skipped with its error when
    /// `skip_invalid`; otherwise it refuses the whole batch, naming its index.
    pub fn create_batch(
        &self,
        caller: &Caller,
        object: &str,
        rows: &[Map<String, Value>],
        skip_invalid: bool,
    ) -> Result<BatchOutcome, (usize, ApiError)> {
        self.create_batch_mode(caller, object, rows, skip_invalid, false)
    }

    /// Check a batch as `create_batch` would, writing nothing.
    pub fn check_batch(
        &self,
        caller: &Caller,
        object: &str,
        rows: &[Map<String, Value>],
    ) -> Result<(), (usize, ApiError)> {
        self.create_batch_mode(caller, object, rows, false, true)
            .map(|_| ())
    }

    fn create_batch_mode(
        &self,
        caller: &Caller,
        object: &str,
        rows: &[Map<String, Value>],
        skip_invalid: bool,
        dry_run: bool,
    ) -> Result<BatchOutcome, (usize, ApiError)> {
        let access = self.writable_object(caller, object).map_err(|e| (0, e))?;
        if !access.can_create() {
            return Err((
                0,
                ApiError::forbidden(
                    "forbidden",
                    format!("you may not create `{object}` records"),
                ),
            ));
        }
        let mut failed_at = None;
        let result = self.instance.store.write(|tx| {
            let mut outcome = BatchOutcome::default();
            for (i, values) in rows.iter().enumerate() {
                match self.insert_one(tx, caller, &access, values) {
                    Ok(id) => outcome.created.push(id),
                    Err(e) => {
                        let api = to_api(e);
                        if skip_invalid && api.status < 500 {
                            // A skipped row is a refused write: it leaves its row.
                            let outcome_kind = if api.status == 403 {
                                Outcome::Denied
                            } else {
                                Outcome::Error
                            };
                            audit::append(
                                tx,
                                &caller.origin,
                                Event::new("record.create")
                                    .object(object)
                                    .outcome(outcome_kind, api.code)
                                    .changes(json!({"error": api.message, "row": i})),
                            )?;
                            outcome.skipped.push((i, api));
                        } else {
                            failed_at = Some(i);
                            return Err(api.into());
                        }
                    }
                }
            }
            if dry_run {
                return Err(DryRun.into());
            }
            Ok(outcome)
        });
        if dry_run {
            return match result {
                Err(e) if e.downcast_ref::<DryRun>().is_some() => Ok(BatchOutcome::default()),
                Err(e) => Err((failed_at.unwrap_or(0), to_api(e))),
                Ok(outcome) => Ok(outcome),
            };
        }
        // The caller (the import) writes the one row of a refused batch.
        result.map_err(|e| (failed_at.unwrap_or(0), to_api(e)))
    }

    /// Update a record: 404 if the caller cannot read it, 403 if they cannot edit it
    /// or any field they write.
    pub fn update(
        &self,
        caller: &Caller,
        object: &str,
        id: &str,
        values: &Map<String, Value>,
    ) -> Result<Map<String, Value>, ApiError> {
        self.update_guarded(caller, object, id, values, &Expect::Any)
    }

    /// Update only if the record is still as `expect` says (`If-Match`, or a
    /// pending action's before-image).
    pub fn update_guarded(
        &self,
        caller: &Caller,
        object: &str,
        id: &str,
        values: &Map<String, Value>,
        expect: &Expect,
    ) -> Result<Map<String, Value>, ApiError> {
        let result = (|| {
            let access = self.writable_object(caller, object)?;
            self.instance
                .store
                .write(|tx| self.update_in(tx, caller, &access, id, values, expect))
                .map_err(to_api)
        })();
        result.inspect_err(|e| self.refused(caller, "record.update", object, Some(id), e))
    }

    /// An update inside the caller's transaction: located (404 unreadable, 403
    /// not editable), checked against `expect`, every field checked, written and
    /// audited. Returns the record as the caller may read it.
    pub(crate) fn update_in(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        access: &ObjectAccess<'a>,
        id: &str,
        values: &Map<String, Value>,
        expect: &Expect,
    ) -> anyhow::Result<Map<String, Value>> {
        let o = access.object;
        self.locate(tx, caller, access, id, Op::Edit)?;
        let before = Self::fetch_raw(tx, o, id)?.ok_or_else(|| not_found_record(&o.name))?;
        expect.check(&before)?;
        let mut lookups = Vec::new();
        let mut columns = self.prepare(access, values, false, &mut lookups)?;
        self.check_lookups(tx, caller, &lookups)?;
        for field in o.fields.iter().filter(|f| f.required) {
            if values.get(&field.name).is_some_and(Value::is_null) {
                return Err(ApiError::bad_request(
                    "required_field",
                    format!("`{}` is required", field.name),
                )
                .into());
            }
        }
        let assigned: Vec<(String, Value)> = columns
            .iter()
            .map(|(c, v)| {
                (
                    c.clone(),
                    sql_to_json(column_storage(o, c).unwrap_or(Storage::Text), v.clone()),
                )
            })
            .collect();
        let changes = self.changes(o, Some(&before), &assigned);
        columns.push((
            "updated_by".into(),
            SqlValue::Text(caller.principal.user_id.clone()),
        ));
        columns.push(("updated_at".into(), SqlValue::Text(now())));
        tx.record_update(&o.name, id, &columns)
            .map_err(|e| Self::unique_error(o, e.into()))?;
        audit::append(
            tx,
            &caller.origin,
            Event::new("record.update")
                .object(&o.name)
                .record(id)
                .changes(changes),
        )?;
        Ok(self
            .fetch(tx, caller, access, id, Op::Read)?
            .unwrap_or_default())
    }

    pub fn delete(&self, caller: &Caller, object: &str, id: &str) -> Result<(), ApiError> {
        self.delete_guarded(caller, object, id, &Expect::Any)
    }

    /// Delete only if the record is still as `expect` says.
    pub fn delete_guarded(
        &self,
        caller: &Caller,
        object: &str,
        id: &str,
        expect: &Expect,
    ) -> Result<(), ApiError> {
        let result = (|| {
            let access = self.writable_object(caller, object)?;
            self.instance
                .store
                .write(|tx| self.delete_in(tx, caller, &access, id, expect).map(|_| ()))
                .map_err(to_api)
        })();
        result.inspect_err(|e| self.refused(caller, "record.delete", object, Some(id), e))
    }

    /// A delete inside the caller's transaction, cascading over master-detail
    /// children the caller may delete; returns every record removed (object, id),
    /// the record itself last.
    pub(crate) fn delete_in(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        access: &ObjectAccess<'a>,
        id: &str,
        expect: &Expect,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let o = access.object;
        self.locate(tx, caller, access, id, Op::Delete)?;
        let before = Self::fetch_raw(tx, o, id)?.ok_or_else(|| not_found_record(&o.name))?;
        expect.check(&before)?;
        let mut removed = Vec::new();
        self.delete_tree(tx, caller, o, id, None, 0, &mut removed)?;
        Ok(removed)
    }

    /// Run `work` in a write transaction that is always rolled back: what it would
    /// do, checked exactly as if it were done, with nothing written.
    pub(crate) fn dry_run<T>(
        &self,
        work: impl FnOnce(&mut dyn Tx) -> anyhow::Result<T>,
    ) -> Result<T, ApiError> {
        let mut out = None;
        let result = self.instance.store.write(|tx| {
            out = Some(work(tx)?);
            Err::<(), _>(DryRun.into())
        });
        match result {
            Err(e) if e.downcast_ref::<DryRun>().is_some() => out.ok_or_else(ApiError::internal),
            Err(e) => Err(to_api(e)),
            Ok(()) => out.ok_or_else(ApiError::internal),
        }
    }

    /// Delete a record and, under master-detail relationships, its children (and
    /// theirs), each with its before-image in its own audit row. The caller must be
    /// allowed to delete every child object; a read-only child object refuses.
    #[allow(clippy::too_many_arguments)]
    fn delete_tree(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        o: &'a ObjectDef,
        id: &str,
        parent: Option<(&str, &str)>,
        depth: usize,
        removed: &mut Vec<(String, String)>,
    ) -> anyhow::Result<()> {
        if depth > 8 {
            return Err(ApiError::bad_request(
                "too_deep",
                "the master-detail chain under this record is too deep to delete",
            )
            .into());
        }
        let before = Self::fetch_raw(tx, o, id)?.unwrap_or_default();
        for child in self.model.objects.iter() {
            for f in child.fields.iter().filter(|f| {
                f.field_type == "master_detail" && f.reference() == Some(o.name.as_str())
            }) {
                let rows = tx.record_select(&Select {
                    object: child.name.clone(),
                    columns: vec!["id".into()],
                    cond: Cond::Cmp {
                        column: f.name.clone(),
                        op: CmpOp::Eq,
                        value: SqlValue::Text(id.to_string()),
                    },
                    order: Vec::new(),
                    limit: None,
                    offset: 0,
                    selective: true,
                })?;
                if rows.is_empty() {
                    continue;
                }
                // A cascade removes only what the caller could delete on its own:
                // every dependent record must pass the caller's delete check, or
                // nothing is deleted. The refusal names no object, since the caller
                // may not know the dependent object exists.
                let child_access = ObjectAccess::new(self.model, &caller.principal, child);
                let deletable = if child.read_only || !child_access.can_delete() {
                    0
                } else {
                    tx.record_count(
                        &child.name,
                        &Cond::and(vec![
                            Cond::Cmp {
                                column: f.name.clone(),
                                op: CmpOp::Eq,
                                value: SqlValue::Text(id.to_string()),
                            },
                            self.op_cond(caller, child, Op::Delete),
                        ]),
                    )? as usize
                };
                if deletable < rows.len() {
                    return Err(ApiError::forbidden(
                        "dependent_records",
                        "other records depend on this record and you may not delete them all; nothing was deleted",
                    )
                    .into());
                }
                for row in rows {
                    if let Some(SqlValue::Text(child_id)) = row.into_iter().next() {
                        self.delete_tree(
                            tx,
                            caller,
                            child,
                            &child_id,
                            Some((&o.name, id)),
                            depth + 1,
                            removed,
                        )?;
                    }
                }
            }
        }
        tx.record_delete(&o.name, id)?;
        removed.push((o.name.clone(), id.to_string()));
        let mut changes = Changes::new();
        for field in &o.fields {
            if let Some(v) = before.get(&field.name).filter(|v| !v.is_null()) {
                if field.sensitive {
                    changes.sensitive(&field.name, Some(v), &self.instance.hmac);
                } else {
                    changes.field(&field.name, Some(v), None);
                }
            }
        }
        if let Some((parent_object, parent_id)) = parent {
            changes.note(
                "cascade_from",
                json!({"object": parent_object, "id": parent_id}),
            );
        }
        audit::append(
            tx,
            &caller.origin,
            Event::new("record.delete")
                .object(&o.name)
                .record(id)
                .changes(changes.into_value()),
        )?;
        Ok(())
    }
}
