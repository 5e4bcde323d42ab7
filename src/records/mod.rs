//! The one enforcement path. REST, the query endpoint, MCP tools, the review flow,
//! import and export all call this service and nothing else touches records: every
//! read is filtered by the caller's record access inside the SQL, every field
//! passes field security, and every write (and every refused write) is audited.

pub mod audit_view;
pub mod convert;
pub mod meta;
pub mod transfer;

use serde_json::{Map, Value, json};

use crate::audit::{self, Changes, Event, Origin, Outcome};
use crate::authz::Principal;
use crate::authz::access::{ObjectAccess, Op, record_access};
use crate::error::ApiError;
use crate::instance::Instance;
use crate::model::values::check_value;
use crate::model::*;
use crate::query::compile::{access_cond, column_storage, filter_cond, json_to_sql, sql_to_json};
use crate::query::request::QuerySpec;
use crate::store::*;
use crate::timefmt;

/// An explicit share: to a user (by email) or a team, at read or edit.
#[derive(Debug, Clone, Copy)]
pub struct Share<'s> {
    pub kind: &'s str,
    pub grantee: &'s str,
    pub edit: bool,
}

/// Who is asking, and through what.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub origin: Origin,
}

impl Caller {
    /// The host operator (the CLI) acting as a user: that user's rights in one
    /// organization (their only one, or `org`), audited as both.
    pub fn operator_as(
        instance: &Instance,
        model: &Model,
        email: &str,
        org: Option<&str>,
    ) -> anyhow::Result<Caller> {
        instance.store.read(|tx| {
            let user = crate::identity::user_by_email(tx, email)?;
            if user.disabled {
                return Err(
                    crate::error::Failure::denied(format!("`{}` is disabled", user.email)).into(),
                );
            }
            let org = crate::identity::credential_org(tx, &user, org)?;
            let principal = Principal::load(tx, Some(model), &user, &org.id, &timefmt::now())?;
            Ok(Caller {
                principal,
                origin: Origin::operator_as(&user.id, &user.email, &org.id),
            })
        })
    }
}

/// A page of audit rows and where the next page starts.
#[derive(Debug)]
pub struct AuditPage {
    pub events: Vec<Value>,
    pub next_from: Option<i64>,
}

/// Rolls a checked batch back.
#[derive(Debug)]
struct DryRun;

impl std::fmt::Display for DryRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dry run")
    }
}

impl std::error::Error for DryRun {}

/// What a bulk create did.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub created: Vec<String>,
    /// (index in the batch, why)
    pub skipped: Vec<(usize, ApiError)>,
}

/// A page of a list.
#[derive(Debug, Clone)]
pub struct Page {
    pub records: Vec<Map<String, Value>>,
    pub total: Option<u64>,
}

pub struct Records<'a> {
    pub instance: &'a Instance,
    pub model: &'a Model,
}

/// An error raised inside a transaction, back as the refusal it carries (or an
/// internal error, logged, with nothing of its detail sent to the caller).
pub fn to_api(err: anyhow::Error) -> ApiError {
    if let Some(api) = err.downcast_ref::<ApiError>() {
        return api.clone();
    }
    if let Some(StoreError::Busy) = err.downcast_ref::<StoreError>() {
        return ApiError::new(503, "busy", "the database is busy; retry");
    }
    tracing::error!(error = %format!("{err:#}"), "request failed");
    ApiError::internal()
}

fn not_found_object(name: &str) -> ApiError {
    ApiError::not_found(format!("no object `{name}`"))
}

fn not_found_record(object: &str) -> ApiError {
    ApiError::not_found(format!("no `{object}` record with that id"))
}

const SYSTEM_COLUMNS: [&str; 7] = [
    "id",
    "owner_id",
    "organization_id",
    "created_by",
    "created_at",
    "updated_by",
    "updated_at",
];

fn now() -> String {
    timefmt::rfc3339_micros(timefmt::now())
}

impl<'a> Records<'a> {
    pub fn new(instance: &'a Instance, model: &'a Model) -> Records<'a> {
        Records { instance, model }
    }

    /// The object, if the caller can read it at all; otherwise 404, exactly as if it
    /// did not exist.
    pub fn object_access(&self, caller: &Caller, name: &str) -> Result<ObjectAccess<'a>, ApiError> {
        let object = self
            .model
            .object(name)
            .ok_or_else(|| not_found_object(name))?;
        let access = ObjectAccess::new(self.model, &caller.principal, object);
        if !access.can_read_object() {
            return Err(not_found_object(name));
        }
        Ok(access)
    }

    pub(crate) fn read_cond(&self, caller: &Caller, object: &'a ObjectDef) -> Cond {
        access_cond(
            &caller.principal,
            object,
            &record_access(self.model, &caller.principal, object, Op::Read),
        )
    }

    /// Whether the caller reads every record of the object in their organization.
    fn sees_all(&self, caller: &Caller, object: &'a ObjectDef) -> bool {
        match record_access(self.model, &caller.principal, object, Op::Read) {
            crate::authz::access::RecordAccess::Any { grants, .. } => grants
                .iter()
                .any(|g| matches!(g, crate::authz::access::Grant::All)),
            crate::authz::access::RecordAccess::None => false,
        }
    }

    fn op_cond(&self, caller: &Caller, object: &'a ObjectDef, op: Op) -> Cond {
        access_cond(
            &caller.principal,
            object,
            &record_access(self.model, &caller.principal, object, op),
        )
    }

    pub(crate) fn id_cond(id: &str) -> Cond {
        Cond::Cmp {
            column: "id".into(),
            op: CmpOp::Eq,
            value: SqlValue::Text(id.to_string()),
        }
    }

    /// Fields a caller names must exist, and be readable; a filter, sort, group or
    /// aggregate on an unreadable field is refused (no filter oracle).
    fn check_field(
        access: &ObjectAccess<'_>,
        field: &str,
        predicate: bool,
    ) -> Result<(), ApiError> {
        if column_storage(access.object, field).is_none() {
            return Err(ApiError::bad_request(
                "unknown_field",
                format!("`{}` has no field `{field}`", access.object.name),
            ));
        }
        if !access.field_readable(field) {
            return Err(if predicate {
                ApiError::forbidden(
                    "field_predicate_denied",
                    format!("you may not filter, sort, group or aggregate on `{field}`"),
                )
            } else {
                // Selecting a field one may not read answers like a field that does
                // not exist: no oracle of which fields there are.
                ApiError::bad_request(
                    "unknown_field",
                    format!("`{}` has no field `{field}`", access.object.name),
                )
            });
        }
        Ok(())
    }

    /// Columns to read and return: the system fields and the readable fields asked for.
    fn columns(
        access: &ObjectAccess<'_>,
        wanted: Option<&Vec<String>>,
    ) -> Result<Vec<String>, ApiError> {
        let mut columns: Vec<String> = SYSTEM_COLUMNS.iter().map(|s| s.to_string()).collect();
        match wanted {
            Some(list) => {
                for f in list {
                    Self::check_field(access, f, false)?;
                    if !columns.contains(f) {
                        columns.push(f.clone());
                    }
                }
            }
            None => columns.extend(access.readable_fields().map(|f| f.name.clone())),
        }
        Ok(columns)
    }

    fn row_to_record(
        object: &ObjectDef,
        columns: &[String],
        row: Vec<SqlValue>,
    ) -> Map<String, Value> {
        let mut map = Map::new();
        for (column, value) in columns.iter().zip(row) {
            let storage = column_storage(object, column).unwrap_or(Storage::Text);
            map.insert(column.clone(), sql_to_json(storage, value));
        }
        map
    }

    /// Records visible to the caller, filtered, sorted and paged in SQL.
    pub fn list(&self, caller: &Caller, spec: &QuerySpec) -> Result<Page, ApiError> {
        let access = self.object_access(caller, &spec.object)?;
        let object = access.object;
        let columns = Self::columns(&access, spec.fields.as_ref())?;
        for field in spec.filter.fields() {
            Self::check_field(&access, field, true)?;
        }
        for (field, _) in &spec.sort {
            Self::check_field(&access, field, true)?;
        }
        let user_cond = filter_cond(object, &spec.filter)
            .map_err(|e| ApiError::bad_request("invalid_query", e))?;
        let cond = Cond::and(vec![self.read_cond(caller, object), user_cond]);
        let mut order = spec.sort.clone();
        if !order.iter().any(|(f, _)| f == "id") {
            order.push(("id".into(), false));
        }
        let select = Select {
            object: object.name.clone(),
            columns: columns.clone(),
            cond: cond.clone(),
            order,
            limit: Some(spec.limit),
            offset: spec.offset,
            selective: !self.sees_all(caller, object),
        };
        let (rows, total) = self
            .instance
            .store
            .read(|tx| {
                let rows = tx.record_select(&select)?;
                let total = if spec.total {
                    Some(tx.record_count(&object.name, &cond)?)
                } else {
                    None
                };
                Ok((rows, total))
            })
            .map_err(to_api)?;
        let records: Vec<Map<String, Value>> = rows
            .into_iter()
            .map(|r| Self::row_to_record(object, &columns, r))
            .collect();
        self.audit_reads(caller, object, &records, "list")?;
        Ok(Page { records, total })
    }

    /// Aggregates (`count sum avg min max`, optionally grouped) over visible records.
    pub fn aggregate(
        &self,
        caller: &Caller,
        spec: &QuerySpec,
    ) -> Result<Vec<Map<String, Value>>, ApiError> {
        let access = self.object_access(caller, &spec.object)?;
        let object = access.object;
        for field in spec.filter.fields() {
            Self::check_field(&access, field, true)?;
        }
        for field in &spec.group_by {
            Self::check_field(&access, field, true)?;
        }
        for agg in &spec.aggregations {
            if let Some(field) = &agg.field {
                Self::check_field(&access, field, true)?;
                let storage = column_storage(object, field);
                if matches!(agg.function, AggFn::Sum | AggFn::Avg)
                    && storage != Some(Storage::Number)
                {
                    return Err(ApiError::bad_request(
                        "invalid_query",
                        format!("`{field}` is not numeric; sum and avg need a number field"),
                    ));
                }
            }
        }
        let user_cond = filter_cond(object, &spec.filter)
            .map_err(|e| ApiError::bad_request("invalid_query", e))?;
        let agg = Aggregate {
            object: object.name.clone(),
            cond: Cond::and(vec![self.read_cond(caller, object), user_cond]),
            group_by: spec.group_by.clone(),
            aggs: spec
                .aggregations
                .iter()
                .map(|a| (a.function, a.field.clone()))
                .collect(),
            limit: spec.limit,
        };
        let rows = self
            .instance
            .store
            .read(|tx| Ok(tx.record_aggregate(&agg)?))
            .map_err(to_api)?;
        self.audit_aggregate(caller, object, spec)?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut out = Map::new();
                let mut values = row.into_iter();
                for g in &spec.group_by {
                    let storage = column_storage(object, g).unwrap_or(Storage::Text);
                    out.insert(
                        g.clone(),
                        sql_to_json(storage, values.next().unwrap_or(SqlValue::Null)),
                    );
                }
                for a in &spec.aggregations {
                    let storage = match (a.function, &a.field) {
                        (AggFn::Min | AggFn::Max, Some(f)) => {
                            column_storage(object, f).unwrap_or(Storage::Number)
                        }
                        _ => Storage::Number,
                    };
                    out.insert(
                        a.alias.clone(),
                        sql_to_json(storage, values.next().unwrap_or(SqlValue::Null)),
                    );
                }
                out
            })
            .collect())
    }

    /// One record, or 404 when it does not exist or the caller cannot read it.
    pub fn get(
        &self,
        caller: &Caller,
        object: &str,
        id: &str,
    ) -> Result<Map<String, Value>, ApiError> {
        let access = self.object_access(caller, object)?;
        let record = self
            .instance
            .store
            .read(|tx| self.fetch(tx, caller, &access, id, Op::Read))
            .map_err(to_api)?;
        let record = record.ok_or_else(|| not_found_record(object))?;
        self.audit_reads(caller, access.object, std::slice::from_ref(&record), "get")?;
        Ok(record)
    }

    /// The record if `op` may touch it, with the caller's readable fields.
    fn fetch(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        access: &ObjectAccess<'a>,
        id: &str,
        op: Op,
    ) -> anyhow::Result<Option<Map<String, Value>>> {
        let object = access.object;
        let columns = Self::columns(access, None)?;
        let cond = Cond::and(vec![Self::id_cond(id), self.op_cond(caller, object, op)]);
        let rows = tx.record_select(&Select {
            object: object.name.clone(),
            columns: columns.clone(),
            cond,
            order: Vec::new(),
            limit: Some(1),
            offset: 0,
            selective: true,
        })?;
        Ok(rows
            .into_iter()
            .next()
            .map(|r| Self::row_to_record(object, &columns, r)))
    }

    /// Find a record for a write: 404 when the caller cannot read it (as if it did
    /// not exist), 403 when they can read it but `op` may not touch it.
    fn locate(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        access: &ObjectAccess<'a>,
        id: &str,
        op: Op,
    ) -> anyhow::Result<()> {
        if self.fetch(tx, caller, access, id, Op::Read)?.is_none() {
            return Err(not_found_record(&access.object.name).into());
        }
        let allowed = match op {
            Op::Read => true,
            Op::Edit => access.can_edit(),
            Op::Delete => access.can_delete(),
        };
        if !allowed || self.fetch(tx, caller, access, id, op)?.is_none() {
            let verb = if op == Op::Delete { "delete" } else { "edit" };
            return Err(ApiError::forbidden(
                "forbidden",
                format!("you may not {verb} this record"),
            )
            .into());
        }
        Ok(())
    }

    /// Every stored column of a record (for before-images), no access check.
    fn fetch_raw(
        tx: &mut dyn Tx,
        object: &ObjectDef,
        id: &str,
    ) -> anyhow::Result<Option<Map<String, Value>>> {
        let mut columns: Vec<String> = SYSTEM_COLUMNS.iter().map(|s| s.to_string()).collect();
        columns.extend(object.fields.iter().map(|f| f.name.clone()));
        let rows = tx.record_select(&Select {
            object: object.name.clone(),
            columns: columns.clone(),
            cond: Self::id_cond(id),
            order: Vec::new(),
            limit: Some(1),
            offset: 0,
            selective: true,
        })?;
        Ok(rows
            .into_iter()
            .next()
            .map(|r| Self::row_to_record(object, &columns, r)))
    }

    fn audit_reads(
        &self,
        caller: &Caller,
        object: &ObjectDef,
        records: &[Map<String, Value>],
        how: &str,
    ) -> Result<(), ApiError> {
        if !object.audit_reads {
            return Ok(());
        }
        let ids: Vec<Value> = records
            .iter()
            .filter_map(|r| r.get("id").cloned())
            .collect();
        self.instance
            .store
            .write(|tx| {
                audit::append(
                    tx,
                    &caller.origin,
                    Event::new("record.read").object(&object.name).changes(
                        json!({"read": how, "surface": caller.origin.via.as_str(), "ids": ids}),
                    ),
                )?;
                Ok(())
            })
            .map_err(to_api)
    }

    /// An aggregate over an `auditReads` object reads its values too: audited with
    /// the query's shape.
    fn audit_aggregate(
        &self,
        caller: &Caller,
        object: &ObjectDef,
        spec: &QuerySpec,
    ) -> Result<(), ApiError> {
        if !object.audit_reads {
            return Ok(());
        }
        let shape = json!({
            "read": "aggregate",
            "surface": caller.origin.via.as_str(),
            "filter": crate::model::filter::to_json(&spec.filter),
            "groupBy": spec.group_by,
            "aggregations": spec.aggregations.iter().map(|a| json!({"function": format!("{:?}", a.function).to_lowercase(), "field": a.field})).collect::<Vec<_>>(),
        });
        self.instance
            .store
            .write(|tx| {
                audit::append(
                    tx,
                    &caller.origin,
                    Event::new("record.read")
                        .object(&object.name)
                        .changes(shape),
                )?;
                Ok(())
            })
            .map_err(to_api)
    }

    /// A refused write leaves its row after the refusal.
    fn refused(
        &self,
        caller: &Caller,
        action: &str,
        object: &str,
        id: Option<&str>,
        err: &ApiError,
    ) {
        let outcome = if err.status == 403 || err.status == 401 {
            Outcome::Denied
        } else {
            Outcome::Error
        };
        let mut event = Event::new(action)
            .object(object)
            .outcome(outcome, err.code)
            .changes(json!({"error": err.message}));
        if let Some(id) = id {
            event = event.record(id);
        }
        if let Err(e) = self
            .instance
            .store
            .write(|tx| audit::append(tx, &caller.origin, event).map(|_| ()))
        {
            tracing::error!(error = %e, "could not audit a refused write");
        }
    }

    fn writable_object(&self, caller: &Caller, name: &str) -> Result<ObjectAccess<'a>, ApiError> {
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
    /// any field may not be written.
    fn prepare(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        access: &ObjectAccess<'a>,
        values: &Map<String, Value>,
        create: bool,
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
                self.check_user_in_org(tx, caller, owner, "owner_id")?;
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
            if !value.is_null() {
                self.check_reference(tx, caller, field, value)?;
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
        let target = match field.field_type.as_str() {
            "user" => {
                for id in ids {
                    self.check_user_in_org(tx, caller, id, &field.name)?;
                }
                return Ok(());
            }
            "lookup" if field.reference.as_deref() == Some("sys_user") => {
                for id in ids {
                    self.check_user_in_org(tx, caller, id, &field.name)?;
                }
                return Ok(());
            }
            "lookup" | "master_detail" => field
                .reference
                .as_deref()
                .and_then(|r| self.model.object(r)),
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
        let result = (|| {
            let access = self.writable_object(caller, object)?;
            if !access.can_create() {
                return Err(ApiError::forbidden(
                    "forbidden",
                    format!("you may not create `{object}` records"),
                ));
            }
            self.instance
                .store
                .write(|tx| self.insert_one(tx, caller, &access, values, true))
                .map_err(to_api)
        })();
        result.inspect_err(|e| self.refused(caller, "record.create", object, None, e))
    }

    /// Insert one record as the caller, in the caller's transaction: defaults,
    /// field rights, validation, references, uniqueness, and its audit row.
    fn insert_one(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        access: &ObjectAccess<'a>,
        values: &Map<String, Value>,
        read_back: bool,
    ) -> anyhow::Result<Map<String, Value>> {
        let o = access.object;
        // What the caller sent goes through field rights and validation, all of it.
        let mut columns = self.prepare(tx, caller, access, values, true)?;
        let mut values = values.clone();
        // Defaults are the app's, not the caller's: they fill only fields the
        // caller left out, bypassing field rights but not validation.
        for field in &o.fields {
            if values.contains_key(&field.name) {
                continue;
            }
            let Some(default) = &field.default_value else {
                continue;
            };
            let v = match default {
                DefaultValue::Literal(v) => v.clone(),
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
        tx.record_insert(&o.name, &row)
            .map_err(|e| Self::unique_error(o, e.into()))?;
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
        audit::append(
            tx,
            &caller.origin,
            Event::new("record.create")
                .object(&o.name)
                .record(&id)
                .changes(self.changes(o, None, &assigned)),
        )?;
        let record = if read_back {
            self.fetch(tx, caller, access, &id, Op::Read)?
        } else {
            None
        };
        // A record the creator cannot read back (a rule-less private object
        // without ownership, say) answers with its id only.
        Ok(record.unwrap_or_else(|| {
            let mut m = Map::new();
            m.insert("id".into(), json!(id));
            m
        }))
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
                match self.insert_one(tx, caller, &access, values, false) {
                    Ok(record) => outcome.created.push(
                        record
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                    ),
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
        self.update_guarded(caller, object, id, values, None)
    }

    /// Update only if the record still has `expected` (a hash of its before-image);
    /// used when an approved change is applied.
    pub fn update_guarded(
        &self,
        caller: &Caller,
        object: &str,
        id: &str,
        values: &Map<String, Value>,
        expected: Option<&str>,
    ) -> Result<Map<String, Value>, ApiError> {
        let result = (|| {
            let access = self.writable_object(caller, object)?;
            let o = access.object;
            self.instance
                .store
                .write(|tx| {
                    self.locate(tx, caller, &access, id, Op::Edit)?;
                    let before =
                        Self::fetch_raw(tx, o, id)?.ok_or_else(|| not_found_record(object))?;
                    if let Some(expected) = expected
                        && before_hash(&before) != expected
                    {
                        return Err(ApiError::new(
                            409,
                            "stale",
                            "the record changed since the change was proposed",
                        )
                        .into());
                    }
                    let mut columns = self.prepare(tx, caller, &access, values, false)?;
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
                                sql_to_json(
                                    column_storage(o, c).unwrap_or(Storage::Text),
                                    v.clone(),
                                ),
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
                        .fetch(tx, caller, &access, id, Op::Read)?
                        .unwrap_or_default())
                })
                .map_err(to_api)
        })();
        result.inspect_err(|e| self.refused(caller, "record.update", object, Some(id), e))
    }

    pub fn delete(&self, caller: &Caller, object: &str, id: &str) -> Result<(), ApiError> {
        let result = (|| {
            let access = self.writable_object(caller, object)?;
            let o = access.object;
            self.instance
                .store
                .write(|tx| {
                    self.locate(tx, caller, &access, id, Op::Delete)?;
                    self.delete_tree(tx, caller, o, id, None, 0)?;
                    Ok(())
                })
                .map_err(to_api)
        })();
        result.inspect_err(|e| self.refused(caller, "record.delete", object, Some(id), e))
    }

    /// Delete a record and, under master-detail relationships, its children (and
    /// theirs), each with its before-image in its own audit row. The caller must be
    /// allowed to delete every child object; a read-only child object refuses.
    fn delete_tree(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        o: &'a ObjectDef,
        id: &str,
        parent: Option<(&str, &str)>,
        depth: usize,
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
                f.field_type == "master_detail" && f.reference.as_deref() == Some(o.name.as_str())
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
                        )?;
                    }
                }
            }
        }
        tx.record_delete(&o.name, id)?;
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

    /// Share a record with a user (by email) or a team, or take the share back. Only
    /// the owner or a modifyAllRecords holder may.
    pub fn share(
        &self,
        caller: &Caller,
        object: &str,
        id: &str,
        share: &Share<'_>,
        add: bool,
    ) -> Result<Value, ApiError> {
        let (kind, grantee, edit) = (share.kind, share.grantee, share.edit);
        let action = if add { "share.add" } else { "share.remove" };
        let result = (|| {
            let access = self.object_access(caller, object)?;
            let o = access.object;
            if o.sharing_model == SharingModel::ControlledByParent {
                return Err(ApiError::bad_request(
                    "not_shareable",
                    format!("`{object}` records follow their parent's access; share the parent"),
                ));
            }
            self.instance
                .store
                .write(|tx| {
                    let Some(record) = self.fetch(tx, caller, &access, id, Op::Read)? else {
                        return Err(not_found_record(object).into());
                    };
                    let owner = record.get("owner_id").and_then(Value::as_str) == Some(caller.principal.user_id.as_str());
                    if !(owner || access.rights.modify_all) {
                        return Err(ApiError::forbidden("forbidden", "only the record's owner or a modifyAllRecords holder may share it").into());
                    }
                    let (kind, grantee_key, label) = match kind {
                        "user" => {
                            let email = crate::identity::normalize_email(grantee).map_err(|_| ApiError::bad_request("invalid_value", "`value` must be a user's email"))?;
                            let user = tx.user_by_email(&email)?.filter(|u| tx.orgs_of_user(&u.id).map(|orgs| orgs.iter().any(|o| o.id == caller.principal.org_id)).unwrap_or(false));
                            let user = user.ok_or_else(|| ApiError::bad_request("invalid_reference", "no user of this organization has that email"))?;
                            ("user", user.id, email)
                        }
                        "team" | "position" => {
                            tx.team_by_name(grantee)?.ok_or_else(|| ApiError::bad_request("invalid_reference", "no team has that name"))?;
                            ("team", grantee.to_string(), grantee.to_string())
                        }
                        _ => return Err(ApiError::bad_request("invalid_value", "`type` is `user` or `team`").into()),
                    };
                    if add {
                        tx.share_insert(&ShareRow {
                            id: uuid::Uuid::now_v7().to_string(),
                            object: o.name.clone(),
                            record_id: id.to_string(),
                            grantee_kind: kind.into(),
                            grantee: grantee_key,
                            edit,
                            created_by: caller.principal.user_id.clone(),
                            created_at: now(),
                        })?;
                    } else if !tx.share_delete(&o.name, id, kind, &grantee_key)? {
                        return Err(ApiError::not_found("the record is not shared with them").into());
                    }
                    let level = if edit { "edit" } else { "read" };
                    audit::append(tx, &caller.origin, Event::new(action).object(&o.name).record(id).changes(json!({"type": kind, "value": label, "accessLevel": level})))?;
                    Ok(json!({"object": o.name, "id": id, "type": kind, "value": label, "accessLevel": level, "shared": add}))
                })
                .map_err(to_api)
        })();
        result.inspect_err(|e| self.refused(caller, action, object, Some(id), e))
    }

    /// Run an action: only `update` actions with a patch run, for callers who hold
    /// its `requiredPermissions`, checked as an update of the one record.
    pub fn run_action(
        &self,
        caller: &Caller,
        name: &str,
        record_id: &str,
    ) -> Result<Map<String, Value>, ApiError> {
        let no_action = || ApiError::not_found(format!("no action `{name}`"));
        let action = self.model.action(name).ok_or_else(no_action)?;
        let object = action.object.clone().unwrap_or_default();
        let result = (|| {
            // An action on an object the caller cannot read does not exist for them,
            // exactly like one that is not there.
            if let Some(o) = &action.object {
                self.object_access(caller, o).map_err(|_| no_action())?;
            }
            let missing: Vec<&String> = action
                .required_permissions
                .iter()
                .filter(|p| !caller.principal.has(p))
                .collect();
            if !missing.is_empty() {
                return Err(ApiError::forbidden(
                    "missing_permission",
                    format!(
                        "running `{name}` needs {}",
                        missing
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            let (Some(patch), Some(_)) = (&action.patch, &action.object) else {
                return Err(ApiError::bad_request(
                    "action_not_executable",
                    format!("`{name}` is carried from the app but objectos does not run it"),
                ));
            };
            Ok(patch.clone())
        })();
        let patch = result
            .inspect_err(|e| self.refused(caller, "action.run", &object, Some(record_id), e))?;
        self.update(caller, &object, record_id, &patch)
    }
}

/// A stable hash of a record's stored values (its before-image).
pub fn before_hash(record: &Map<String, Value>) -> String {
    crate::crypto::signing::sha256_hex(
        &crate::crypto::canonical::to_vec(&Value::Object(record.clone())).unwrap_or_default(),
    )
}
