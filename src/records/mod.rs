//! The one enforcement path. REST, the query endpoint, MCP tools, the review flow,
//! import and export all call this service and nothing else touches records: every
//! read is filtered by the caller's record access inside the SQL, every field
//! passes field security, and every write (and every refused write) is audited.

pub mod audit_view;
pub mod convert;
pub mod meta;
mod read;
pub mod transfer;
mod write;

use serde_json::{Map, Value, json};

use crate::audit::{self, Event, Origin, Outcome};
use crate::authz::Principal;
use crate::authz::access::{ObjectAccess, Op, record_access};
use crate::error::ApiError;
use crate::instance::Instance;
use crate::model::*;
use crate::query::compile::{access_cond, column_storage, sql_to_json};
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

impl Page {
    /// The page as upstream shapes a list: `{object, records, hasMore, total?}`.
    pub fn into_json(self, object: &str) -> Value {
        let mut body =
            json!({ "object": object, "records": self.records, "hasMore": self.has_more });
        if let Some(total) = self.total {
            body["total"] = json!(total);
        }
        body
    }
}

/// What a write expects of the record it changes (optimistic concurrency).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Whatever version it is.
    Any,
    /// `If-Match`: the record's `row_version` (the `ETag`), or, as upstream's
    /// clients send it, its `updated_at`; `*` matches any. A mismatch is 412.
    Version(String),
    /// A pending action's before-image hash, and the `row_version` it was
    /// proposed against; a mismatch of either is 409 `stale`. Checked once the
    /// record is found readable, so a record the requester can no longer read
    /// fails as a missing one, telling nothing of its versions.
    BeforeImage { hash: String, version: Option<i64> },
}

impl Expect {
    /// Whether the record, as stored now, is the one expected; the refusal if not.
    fn check(&self, before: &Map<String, Value>) -> Result<(), ApiError> {
        match self {
            Expect::Any => Ok(()),
            Expect::BeforeImage { version, .. }
                if version.is_some_and(|v| {
                    before.get("row_version").and_then(Value::as_i64) != Some(v)
                }) =>
            {
                let now = before
                    .get("row_version")
                    .and_then(Value::as_i64)
                    .map_or("unknown".to_string(), |n| n.to_string());
                Err(ApiError::new(
                    409,
                    "stale",
                    format!(
                        "the record changed since the change was proposed (proposed against version {}, now {now})",
                        version.unwrap_or_default()
                    ),
                ))
            }
            Expect::BeforeImage { hash, .. } if before_hash(before) == *hash => Ok(()),
            Expect::BeforeImage { .. } => Err(ApiError::new(
                409,
                "stale",
                "the record changed since the change was proposed",
            )),
            Expect::Version(tag) => {
                let matches = tag.split(',').map(str::trim).any(|tag| {
                    let tag = tag.strip_prefix("W/").unwrap_or(tag).trim_matches('"');
                    if tag == "*" {
                        return true;
                    }
                    if let Ok(version) = tag.parse::<i64>() {
                        return before.get("row_version").and_then(Value::as_i64) == Some(version);
                    }
                    let updated = before.get("updated_at").and_then(Value::as_str);
                    match (
                        timefmt::parse_rfc3339(tag),
                        updated.and_then(timefmt::parse_rfc3339),
                    ) {
                        (Some(a), Some(b)) => a == b,
                        _ => updated == Some(tag),
                    }
                });
                if matches {
                    Ok(())
                } else {
                    Err(ApiError::new(
                        412,
                        "precondition_failed",
                        "the record changed since you read it (`If-Match` names another version); read it again",
                    ))
                }
            }
        }
    }
}

/// The `ETag` of a record as the API shows it: its version, quoted.
pub fn etag(record: &Map<String, Value>) -> Option<String> {
    record
        .get("row_version")
        .and_then(Value::as_i64)
        .map(|v| format!("\"{v}\""))
}

/// A page of a list.
#[derive(Debug, Clone)]
pub struct Page {
    pub records: Vec<Map<String, Value>>,
    pub total: Option<u64>,
    /// More records follow this page.
    pub has_more: bool,
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
    if let Some(StoreError::NulInText) = err.downcast_ref::<StoreError>() {
        return ApiError::bad_request(
            "invalid_value",
            "a text value holds the NUL character (U+0000), which is not accepted",
        );
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

    /// The caller's read access ANDed with their own condition, with the
    /// access branches that condition contradicts folded away (so the SQL keeps
    /// only what can match, and indexes serve it).
    pub(crate) fn narrowed(&self, caller: &Caller, object: &'a ObjectDef, user_cond: Cond) -> Cond {
        let access = self
            .read_cond(caller, object)
            .assuming(&user_cond.equalities());
        Cond::and(vec![access, user_cond])
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

    /// Columns to read and return: every system field and readable field, or,
    /// when fields are named (`select`), the id and those only.
    fn columns(
        access: &ObjectAccess<'_>,
        wanted: Option<&Vec<String>>,
    ) -> Result<Vec<String>, ApiError> {
        match wanted {
            Some(list) => {
                let mut columns = vec!["id".to_string()];
                for f in list {
                    Self::check_field(access, f, false)?;
                    if !columns.contains(f) {
                        columns.push(f.clone());
                    }
                }
                Ok(columns)
            }
            None => {
                let mut columns: Vec<String> =
                    SYSTEM_FIELDS.iter().map(|s| s.to_string()).collect();
                columns.extend(access.readable_fields().map(|f| f.name.clone()));
                Ok(columns)
            }
        }
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
    pub(crate) fn fetch_raw(
        tx: &mut dyn Tx,
        object: &ObjectDef,
        id: &str,
    ) -> anyhow::Result<Option<Map<String, Value>>> {
        let mut columns: Vec<String> = SYSTEM_FIELDS.iter().map(|s| s.to_string()).collect();
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

    /// A read refused as denied (403: a filter on a field the caller may not
    /// read, a missing permission) leaves its row; a record or object that is
    /// not there for the caller (404) and malformed input (400) do not.
    pub(crate) fn refused_read(
        &self,
        caller: &Caller,
        object: &str,
        id: Option<&str>,
        err: &ApiError,
    ) {
        if err.status == 403 {
            self.refused(caller, "record.read", object, id, err);
        }
    }

    /// A refused write leaves its row after the refusal.
    pub(crate) fn refused(
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
        on_object: Option<&str>,
        record_id: Option<&str>,
    ) -> Result<Map<String, Value>, ApiError> {
        let no_action = || ApiError::not_found(format!("no action `{name}`"));
        // Upstream's route names the object too (`global` for an action of none):
        // an action of another object is not this one.
        let action = self
            .model
            .action(name)
            .filter(|a| match on_object {
                None => true,
                Some("global") => a.object.is_none(),
                Some(o) => a.object.as_deref() == Some(o),
            })
            .ok_or_else(no_action)?;
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
            let id = record_id.ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_body",
                    format!("`{name}` runs on one record: `recordId` is missing"),
                )
            })?;
            Ok((patch.clone(), id))
        })();
        let (patch, id) =
            result.inspect_err(|e| self.refused(caller, "action.run", &object, record_id, e))?;
        self.update(caller, &object, id, &patch)
    }
}

/// A stable hash of a record's stored values (its before-image).
pub fn before_hash(record: &Map<String, Value>) -> String {
    crate::crypto::signing::sha256_hex(
        &crate::crypto::canonical::to_vec(&Value::Object(record.clone())).unwrap_or_default(),
    )
}
