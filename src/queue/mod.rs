//! The pending-action queue (docs/agents.md): changes an agent proposed wait here for
//! a human reviewer. A proposal is checked as if it ran at once (what the user
//! could not do is refused, never queued); approving applies it as the
//! requester, with their rights re-checked at that moment, in one transaction
//! with the status change and every audit row; a target that changed since the
//! proposal makes the apply fail as `stale`, writing nothing else.
//!
//! Who sees an action: its requester, and holders of `approve_actions` in its
//! organization who can read its target; anyone else gets 404. Who decides: a
//! holder of `approve_actions` (and `manage_permissions` for a grant) who is not
//! the requester and can read every field and record the change touches.

pub mod metadata;
pub mod prepare;

use serde_json::{Map, Value, json};

use crate::audit::{self, Event, Origin, Outcome, Via};
use crate::authz::Principal;
use crate::authz::access::ObjectAccess;
use crate::error::ApiError;
use crate::records::{Caller, Expect, Records, to_api};
use crate::store::{PendingRow, Tx};
use crate::timefmt;

/// The setting that caps the open proposals of one agent key.
pub const MAX_PENDING_SETTING: &str = "agents.max_pending";
/// Open proposals one agent key may have when the setting is not set.
pub const DEFAULT_MAX_PENDING: u64 = 100;

/// What kind of change an action proposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Create,
    Update,
    Delete,
    /// An `update` action with a patch.
    Action,
    Grant,
    Revoke,
    Metadata,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Create => "create",
            Kind::Update => "update",
            Kind::Delete => "delete",
            Kind::Action => "action",
            Kind::Grant => "grant",
            Kind::Revoke => "revoke",
            Kind::Metadata => "metadata",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Some(match text {
            "create" => Kind::Create,
            "update" => Kind::Update,
            "delete" => Kind::Delete,
            "action" => Kind::Action,
            "grant" => Kind::Grant,
            "revoke" => Kind::Revoke,
            "metadata" => Kind::Metadata,
            _ => return None,
        })
    }

    /// A change to records (rather than to grants or metadata).
    fn on_records(self) -> bool {
        matches!(
            self,
            Kind::Create | Kind::Update | Kind::Delete | Kind::Action
        )
    }
}

/// A change checked as if it ran now, ready to wait for a reviewer.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub kind: Kind,
    pub tool: String,
    pub input: Value,
    pub object: Option<String>,
    pub record_id: Option<String>,
    pub before_hash: Option<String>,
    /// The target's `row_version` when proposed (its `ETag`): approval
    /// applies only to that version.
    pub before_version: Option<i64>,
    /// What applying it does, by kind: `data`, `diff` (`[{field, before,
    /// after}]`), `cascade` (`[{object, id}]`), `action`, `permissionSet`,
    /// `user`, `artifact` …
    pub body: Value,
}

/// Whose open proposals the pending-action quota counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaScope {
    /// The credential's (an agent key's, or the user key the assistant was
    /// called with).
    Credential,
    /// The user's, whatever made them: for a session, which signing in again
    /// replaces, so that the count cannot start over.
    User,
}

/// The agent a proposal comes from.
#[derive(Debug, Clone)]
pub struct Requester<'c> {
    pub caller: &'c Caller,
    pub key_id: &'c str,
    pub client: Option<Value>,
    pub quota: QuotaScope,
}

fn now() -> String {
    timefmt::rfc3339_micros(timefmt::now())
}

fn not_found() -> ApiError {
    ApiError::not_found("no pending action with that id")
}

fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(409, code, message)
}

/// The queue, over the records service of one model.
pub struct Queue<'r, 'a> {
    pub records: &'r Records<'a>,
}

impl<'r, 'a> Queue<'r, 'a> {
    pub fn new(records: &'r Records<'a>) -> Queue<'r, 'a> {
        Queue { records }
    }

    fn store(&self) -> &crate::store::Store {
        &self.records.instance.store
    }

    /// Put a checked proposal in the queue (at most the quota of open ones, per
    /// key or per user), audited; the agent gets `{status: "pending_approval",
    /// …}`.
    pub fn propose(&self, from: &Requester<'_>, p: Proposal) -> Result<Value, ApiError> {
        self.expire_due()?;
        let limit = self.max_pending()?;
        let caller = from.caller;
        let expires = timefmt::now()
            + time::Duration::try_from(self.records.model.approvals_expire_after)
                .unwrap_or(time::Duration::days(7));
        let row = PendingRow {
            id: uuid::Uuid::now_v7().to_string(),
            org_id: caller.principal.org_id.clone(),
            kind: p.kind.as_str().to_string(),
            status: "pending".into(),
            requester_id: caller.principal.user_id.clone(),
            key_id: Some(from.key_id.to_string()),
            client: from.client.clone(),
            tool: p.tool.clone(),
            input: p.input.clone(),
            object: p.object.clone(),
            record_id: p.record_id.clone(),
            before_hash: p.before_hash.clone(),
            before_version: p.before_version,
            proposal: p.body.clone(),
            created_at: now(),
            expires_at: timefmt::rfc3339_micros(expires),
            decided_by: None,
            decided_at: None,
            reason: None,
            result: None,
        };
        let id = row.id.clone();
        let result = self
            .store()
            .write(|tx| {
                let (open, whose) = match from.quota {
                    QuotaScope::Credential => {
                        (tx.pending_count_for_key(from.key_id)?, "this agent key has")
                    }
                    QuotaScope::User => (
                        tx.pending_of_user(&caller.principal.user_id, "pending")?
                            .len() as u64,
                        "you have",
                    ),
                };
                if open >= limit {
                    return Err(ApiError::new(
                        429,
                        "too_many_pending",
                        format!(
                            "{whose} {open} actions waiting for review, the most allowed (setting `{MAX_PENDING_SETTING}`); wait for reviewers"
                        ),
                    )
                    .into());
                }
                tx.pending_insert(&row)?;
                let mut event = Event::new("pending.propose")
                    .object(p.object.clone().unwrap_or_else(|| "pending_action".into()))
                    .changes(json!({
                        "pending_action": id,
                        "kind": row.kind,
                        "tool": row.tool,
                        "expires_at": row.expires_at,
                    }));
                if let Some(rid) = &p.record_id {
                    event = event.record(rid);
                }
                audit::append(tx, &caller.origin, event)?;
                Ok(())
            })
            .map_err(to_api);
        result?;
        Ok(json!({
            "status": "pending_approval",
            "pendingActionId": id,
            "expiresAt": row.expires_at,
            "message": "a reviewer must approve this change before it happens",
        }))
    }

    fn max_pending(&self) -> Result<u64, ApiError> {
        let set = self
            .store()
            .read(|tx| Ok(tx.setting_get(MAX_PENDING_SETTING)?))
            .map_err(to_api)?;
        Ok(set
            .and_then(|s| s.value.trim().parse::<u64>().ok())
            .unwrap_or(DEFAULT_MAX_PENDING))
    }

    /// Mark every action past its expiry `expired`, each with its audit row.
    pub fn expire_due(&self) -> Result<usize, ApiError> {
        let at = now();
        let due = self
            .store()
            .read(|tx| Ok(tx.pending_expired(&at)?))
            .map_err(to_api)?;
        let mut n = 0;
        for row in due {
            let expired = self
                .store()
                .write(|tx| {
                    if !tx.pending_transition(
                        &row.id,
                        &["pending"],
                        "expired",
                        None,
                        &at,
                        None,
                        None,
                    )? {
                        return Ok(false);
                    }
                    let email = tx.user_by_id(&row.requester_id)?.map(|u| u.email);
                    audit::append(
                        tx,
                        &expiry_origin(&row, email.as_deref()),
                        Event::new("pending.expire")
                            .object("pending_action")
                            .record(&row.id)
                            .changes(json!({
                                "kind": row.kind,
                                "requester": row.requester_id,
                                "expires_at": row.expires_at,
                            })),
                    )?;
                    Ok(true)
                })
                .map_err(to_api)?;
            n += usize::from(expired);
        }
        Ok(n)
    }

    /// Whether `viewer` may know the action exists: its requester, or a holder
    /// of `approve_actions` of its organization who can read its target.
    fn visible(&self, viewer: &Caller, row: &PendingRow) -> Result<bool, ApiError> {
        if row.org_id != viewer.principal.org_id {
            return Ok(false);
        }
        if row.requester_id == viewer.principal.user_id {
            return Ok(true);
        }
        // Whoever decided it keeps seeing it (an applied delete's record is gone).
        if row.decided_by.as_deref() == Some(viewer.principal.user_id.as_str()) {
            return Ok(true);
        }
        if !viewer.principal.has("approve_actions") {
            return Ok(false);
        }
        let kind = Kind::parse(&row.kind).unwrap_or(Kind::Metadata);
        if !kind.on_records() {
            return Ok(true);
        }
        let Some(object) = row.object.as_deref() else {
            return Ok(false);
        };
        let Ok(access) = self.records.object_access(viewer, object) else {
            return Ok(false);
        };
        match row.record_id.as_deref() {
            // A create has no record yet: reading the object is reading the target.
            None => Ok(true),
            Some(id) => Ok(!self
                .records
                .readable_ids(viewer, access.object, &[id.to_string()])?
                .is_empty()),
        }
    }

    fn load(&self, viewer: &Caller, id: &str) -> Result<PendingRow, ApiError> {
        self.expire_due()?;
        let row = self
            .store()
            .read(|tx| Ok(tx.pending_get(id)?))
            .map_err(to_api)?
            .ok_or_else(not_found)?;
        if !self.visible(viewer, &row)? {
            return Err(not_found());
        }
        Ok(row)
    }

    /// The actions `viewer` may see, of one status (or all).
    pub fn list(&self, viewer: &Caller, status: Option<&str>) -> Result<Vec<Value>, ApiError> {
        self.expire_due()?;
        let rows = self
            .store()
            .read(|tx| Ok(tx.pending_list(&viewer.principal.org_id, status)?))
            .map_err(to_api)?;
        let mut out = Vec::new();
        for row in rows {
            if self.visible(viewer, &row)? {
                out.push(self.view(viewer, &row)?);
            }
        }
        Ok(out)
    }

    pub fn get(&self, viewer: &Caller, id: &str) -> Result<Value, ApiError> {
        let row = self.load(viewer, id)?;
        self.view(viewer, &row)
    }

    /// An action as `viewer` may see it: its diff keeps only the fields they can
    /// read (the others are counted, not named), its cascade only the records
    /// they can read.
    fn view(&self, viewer: &Caller, row: &PendingRow) -> Result<Value, ApiError> {
        let requester = self
            .store()
            .read(|tx| Ok(tx.user_by_id(&row.requester_id)?))
            .map_err(to_api)?;
        let mut body = row.proposal.clone();
        let mut hidden_fields = 0usize;
        let mut hidden_records = 0usize;
        let access = row
            .object
            .as_deref()
            .and_then(|o| self.records.object_access(viewer, o).ok());
        if let Some(diff) = body.get_mut("diff").and_then(Value::as_array_mut) {
            diff.retain(|entry| {
                let field = entry.get("field").and_then(Value::as_str).unwrap_or("");
                let shown = access.as_ref().is_some_and(|a| a.field_readable(field));
                hidden_fields += usize::from(!shown);
                shown
            });
        }
        if let Some(data) = body.get_mut("data").and_then(Value::as_object_mut) {
            data.retain(|field, _| access.as_ref().is_some_and(|a| a.field_readable(field)));
        }
        if let Some(cascade) = body.get("cascade").and_then(Value::as_array).cloned() {
            let mut shown = Vec::new();
            for entry in cascade {
                let (Some(o), Some(id)) = (
                    entry.get("object").and_then(Value::as_str),
                    entry.get("id").and_then(Value::as_str),
                ) else {
                    continue;
                };
                let readable = match self.records.object_access(viewer, o) {
                    Ok(a) => !self
                        .records
                        .readable_ids(viewer, a.object, &[id.to_string()])?
                        .is_empty(),
                    Err(_) => false,
                };
                if readable {
                    shown.push(entry);
                } else {
                    hidden_records += 1;
                }
            }
            body["cascade"] = Value::Array(shown);
        }
        Ok(json!({
            "id": row.id,
            "status": row.status,
            "kind": row.kind,
            "tool": row.tool,
            "object": row.object,
            "recordId": row.record_id,
            "recordVersion": row.before_version,
            "requester": requester.map(|u| json!({"id": u.id, "email": u.email})),
            "keyId": row.key_id,
            "client": row.client,
            "createdAt": row.created_at,
            "expiresAt": row.expires_at,
            "decidedBy": row.decided_by,
            "decidedAt": row.decided_at,
            "reason": row.reason,
            "result": row.result,
            "change": body,
            "hiddenFields": hidden_fields,
            "hiddenRecords": hidden_records,
        }))
    }

    /// Only holders of `approve_actions` decide anything: refused before the id
    /// is looked at, so the answer says nothing about which actions exist.
    fn is_reviewer(reviewer: &Caller) -> Result<(), ApiError> {
        if reviewer.principal.has("approve_actions") {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "missing_permission",
                "deciding pending actions needs `approve_actions`",
            ))
        }
    }

    /// The reviewer may decide this action: `approve_actions` (and
    /// `manage_permissions` for a grant), not their own request.
    fn may_decide(&self, reviewer: &Caller, row: &PendingRow) -> Result<(), ApiError> {
        if !reviewer.principal.has("approve_actions") {
            return Err(ApiError::forbidden(
                "missing_permission",
                "deciding pending actions needs `approve_actions`",
            ));
        }
        let kind = Kind::parse(&row.kind).unwrap_or(Kind::Metadata);
        if matches!(kind, Kind::Grant | Kind::Revoke)
            && !reviewer.principal.has("manage_permissions")
        {
            return Err(ApiError::forbidden(
                "missing_permission",
                "deciding a permission grant needs `manage_permissions` too",
            ));
        }
        if row.requester_id == reviewer.principal.user_id {
            return Err(ApiError::forbidden(
                "separation_of_duties",
                "you may not decide a change you asked for",
            ));
        }
        Ok(())
    }

    fn still_pending(row: &PendingRow) -> Result<(), ApiError> {
        match row.status.as_str() {
            "pending" => Ok(()),
            "expired" => Err(conflict(
                "expired",
                "the action expired before it was decided",
            )),
            other => Err(conflict(
                "already_decided",
                format!("the action was already decided (it is `{other}`)"),
            )),
        }
    }

    /// Nobody approves what they cannot see: every field the change writes and
    /// every record a delete would remove must be readable by the reviewer.
    fn reviewer_sees_all(&self, reviewer: &Caller, row: &PendingRow) -> Result<(), ApiError> {
        let kind = Kind::parse(&row.kind).unwrap_or(Kind::Metadata);
        if !kind.on_records() {
            return Ok(());
        }
        let blind = || {
            ApiError::forbidden(
                "cannot_see_change",
                "the change touches fields or records you may not read, so you may not approve it",
            )
        };
        let object = row.object.as_deref().unwrap_or("");
        let access = self
            .records
            .object_access(reviewer, object)
            .map_err(|_| blind())?;
        let touched: Vec<String> = row
            .proposal
            .get("diff")
            .and_then(Value::as_array)
            .map(|d| {
                d.iter()
                    .filter_map(|e| e.get("field").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if touched.iter().any(|f| !access.field_readable(f)) {
            return Err(blind());
        }
        if let Some(cascade) = row.proposal.get("cascade").and_then(Value::as_array) {
            for entry in cascade {
                let (Some(o), Some(id)) = (
                    entry.get("object").and_then(Value::as_str),
                    entry.get("id").and_then(Value::as_str),
                ) else {
                    return Err(blind());
                };
                let a = self
                    .records
                    .object_access(reviewer, o)
                    .map_err(|_| blind())?;
                if self
                    .records
                    .readable_ids(reviewer, a.object, &[id.to_string()])?
                    .is_empty()
                {
                    return Err(blind());
                }
            }
        }
        Ok(())
    }

    /// The requester as they are now, acting as an agent through the key that
    /// proposed the change, checked exactly as the proposal was: a requester
    /// who was disabled, left the organization, no longer holds `agent_access`
    /// (and `api_access`, for the assistant's proposals), or lost the right
    /// the proposal itself needed, cannot have anything applied.
    fn requester_now(&self, tx: &mut dyn Tx, row: &PendingRow) -> anyhow::Result<Caller> {
        let model = self.records.model;
        let failed =
            |message: String| -> anyhow::Error { conflict("apply_failed", message).into() };
        let caller = (|| {
            let user = tx
                .user_by_id(&row.requester_id)?
                .filter(|u| !u.disabled)
                .ok_or_else(|| failed("the requester is disabled or gone".into()))?;
            if !tx
                .orgs_of_user(&user.id)?
                .iter()
                .any(|o| o.id == row.org_id)
            {
                return Err(failed(
                    "the requester is no longer a member of the organization".into(),
                ));
            }
            let principal = Principal::load(tx, Some(model), &user, &row.org_id, &timefmt::now())?;
            // An agent key reaches MCP with `agent_access`; anything else that
            // proposes (the assistant, on a user key or a session) needs
            // `api_access` too.
            let through_agent_key = match row.key_id.as_deref() {
                Some(key) => tx
                    .apikey_by_id(key)?
                    .is_some_and(|k| k.kind == crate::store::KeyKind::Agent),
                None => false,
            };
            let needed: &[&str] = if through_agent_key {
                &["agent_access"]
            } else {
                &["api_access", "agent_access"]
            };
            if let Some(lost) = needed.iter().find(|p| !principal.has(p)) {
                return Err(failed(format!("the requester no longer holds `{lost}`")));
            }
            let mut origin = Origin::user(&user.id, &user.email, Via::Agent);
            origin.actor["organization_id"] = json!(row.org_id);
            origin.credential = row.key_id.clone();
            origin.client = row.client.clone();
            Ok::<_, anyhow::Error>(Caller {
                principal: principal.as_agent(),
                origin,
            })
        })()?;
        self.still_may_propose(&caller, row)?;
        Ok(caller)
    }

    /// What proposing the change needed beyond the change itself, held still:
    /// `manage_metadata` for a grant, revocation or change to the app (and
    /// reading the object it changes), an action's `requiredPermissions`. The
    /// record change itself is re-checked when it is applied.
    fn still_may_propose(&self, requester: &Caller, row: &PendingRow) -> anyhow::Result<()> {
        let lost = |what: String| -> anyhow::Error {
            conflict(
                "apply_failed",
                format!("the requester no longer holds {what}"),
            )
            .into()
        };
        match Kind::parse(&row.kind).unwrap_or(Kind::Metadata) {
            Kind::Grant | Kind::Revoke | Kind::Metadata => {
                if !requester.principal.has("manage_metadata") {
                    return Err(lost("`manage_metadata`".into()));
                }
                if let Some(object) = row.object.as_deref()
                    && self.records.object_access(requester, object).is_err()
                {
                    return Err(conflict(
                        "apply_failed",
                        format!("the requester may no longer read `{object}`"),
                    )
                    .into());
                }
            }
            Kind::Action => {
                let name = row.proposal["action"].as_str().unwrap_or_default();
                let Some(action) = self.records.model.action(name) else {
                    return Err(conflict(
                        "apply_failed",
                        format!("the app no longer has the action `{name}`"),
                    )
                    .into());
                };
                if !action.ai_exposed {
                    return Err(conflict(
                        "apply_failed",
                        format!("the action `{name}` is no longer offered to agents"),
                    )
                    .into());
                }
                let missing: Vec<&str> = action
                    .required_permissions
                    .iter()
                    .map(String::as_str)
                    .filter(|p| !requester.principal.has(p))
                    .collect();
                if !missing.is_empty() {
                    return Err(lost(format!("`{}`", missing.join("`, `"))));
                }
            }
            Kind::Create | Kind::Update | Kind::Delete => {}
        }
        // Every change in the queue came from an agent (or the assistant, under
        // the same rules): an object closed to agents since is closed to it.
        if matches!(
            Kind::parse(&row.kind),
            Some(Kind::Create | Kind::Update | Kind::Delete | Kind::Action)
        ) && let Some(object) = row.object.as_deref()
            && self
                .records
                .model
                .object(object)
                .is_some_and(|o| o.agent_writes == crate::model::AgentWrites::Deny)
        {
            return Err(conflict(
                "apply_failed",
                format!("agents may no longer write `{object}` records"),
            )
            .into());
        }
        Ok(())
    }

    /// Approve: apply as the requester, in one transaction with the status change
    /// and the audit rows; a failure leaves the action `failed` with its reason
    /// and one error row, and nothing else written.
    pub fn approve(&self, reviewer: &Caller, id: &str) -> Result<Value, ApiError> {
        self.approve_unaudited(reviewer, id)
            .inspect_err(|e| self.refused(reviewer, "pending.approve", id, e))
    }

    /// A decision refused (403) or come too late (409) leaves its row; a failed
    /// apply has written its own.
    fn refused(&self, caller: &Caller, action: &str, id: &str, e: &ApiError) {
        if e.status == 403 || (e.status == 409 && !matches!(e.code, "stale" | "apply_failed")) {
            self.records
                .refused(caller, action, "pending_action", Some(id), e);
        }
    }

    fn approve_unaudited(&self, reviewer: &Caller, id: &str) -> Result<Value, ApiError> {
        Self::is_reviewer(reviewer)?;
        let row = self.load(reviewer, id)?;
        self.may_decide(reviewer, &row)?;
        Self::still_pending(&row)?;
        if let Err(blind) = self.reviewer_sees_all(reviewer, &row) {
            // Decided meanwhile by someone else (an applied delete takes its
            // records with it): say that, not that the change is out of sight.
            Self::still_pending(&self.load(reviewer, id)?)?;
            return Err(blind);
        }
        let kind = Kind::parse(&row.kind).unwrap_or(Kind::Metadata);
        let at = now();
        let decided_by = reviewer.principal.user_id.clone();
        let outcome: Result<(String, &'static str), ApiError> = (|| {
            if kind == Kind::Metadata {
                self.store()
                    .read(|tx| self.requester_now(tx, &row))
                    .map_err(to_api)?;
                // Written out as an unsigned artifact; it takes effect when an
                // operator signs and applies it.
                let written = metadata::write_proposal(self.records, &row)?;
                let result = self.store().write(|tx| {
                    // Again in the transaction that decides: nothing about the
                    // requester changes between this check and the decision.
                    self.requester_now(tx, &row)?;
                    if !tx.pending_transition(
                        &row.id,
                        &["pending"],
                        "approved",
                        Some(&decided_by),
                        &at,
                        None,
                        Some(&written),
                    )? {
                        return Err(conflict(
                            "already_decided",
                            "someone decided the action first",
                        )
                        .into());
                    }
                    audit::append(
                        tx,
                        &reviewer.origin,
                        Event::new("pending.approve")
                            .object("pending_action")
                            .record(&row.id)
                            .changes(json!({"kind": row.kind, "artifact": written})),
                    )?;
                    Ok(())
                });
                let result = result.map_err(to_api);
                if let Err(e) = &result
                    && e.code != "already_decided"
                {
                    // Not approved (and nobody else approved it: that file would
                    // be theirs): the artifact written for it is not left behind.
                    let _ = std::fs::remove_file(&written);
                    let _ = std::fs::remove_file(written.replace(".objectstack.json", ".diff"));
                }
                result?;
                return Ok((written, "approved"));
            }
            let result = self.store().write(|tx| {
                if !tx.pending_transition(
                    &row.id,
                    &["pending"],
                    "applied",
                    Some(&decided_by),
                    &at,
                    None,
                    None,
                )? {
                    return Err(
                        conflict("already_decided", "someone decided the action first").into(),
                    );
                }
                // In the apply's own transaction: nothing about the requester
                // can change between this check and the write.
                let requester = self.requester_now(tx, &row)?;
                audit::append(
                    tx,
                    &reviewer.origin,
                    Event::new("pending.approve")
                        .object("pending_action")
                        .record(&row.id)
                        .changes(json!({"kind": row.kind, "requester": row.requester_id})),
                )?;
                let result = self.apply_in(tx, &requester, &row, kind)?;
                tx.pending_transition(
                    &row.id,
                    &["applied"],
                    "applied",
                    None,
                    &at,
                    None,
                    Some(&result),
                )?;
                audit::append(
                    tx,
                    &requester.origin,
                    Event::new("pending.apply")
                        .object("pending_action")
                        .record(&row.id)
                        .changes(
                            json!({"kind": row.kind, "approved_by": decided_by, "result": result}),
                        ),
                )?;
                Ok(result)
            });
            let result = result.map_err(to_api)?;
            Ok((result, "applied"))
        })();
        match outcome {
            Ok(_) => self.get(reviewer, id),
            Err(e) if e.code == "already_decided" => Err(e),
            Err(e) => {
                // Stale, or the requester lost a right: the action fails, with one
                // error row, and nothing else is written.
                let code = if e.code == "stale" {
                    "stale"
                } else {
                    "apply_failed"
                };
                let reason = e.message.clone();
                let failed = self.store().write(|tx| {
                    if tx.pending_transition(
                        &row.id,
                        &["pending"],
                        "failed",
                        Some(&decided_by),
                        &at,
                        None,
                        Some(&reason),
                    )? {
                        audit::append(
                            tx,
                            &reviewer.origin,
                            Event::new("pending.apply")
                                .object("pending_action")
                                .record(&row.id)
                                .outcome(Outcome::Error, code)
                                .changes(json!({"error": reason, "code": e.code})),
                        )?;
                    }
                    Ok(())
                });
                failed.map_err(to_api)?;
                Err(conflict(
                    if code == "stale" {
                        "stale"
                    } else {
                        "apply_failed"
                    },
                    format!("the change could not be applied and the action failed: {reason}"),
                ))
            }
        }
    }

    /// Apply a record or grant change as the requester, in the caller's
    /// transaction; returns a short summary of what was done.
    fn apply_in(
        &self,
        tx: &mut dyn Tx,
        requester: &Caller,
        row: &PendingRow,
        kind: Kind,
    ) -> anyhow::Result<String> {
        let records = self.records;
        let object = row.object.as_deref().unwrap_or("");
        // The record is still at the version the proposal was made against (the
        // `row_version` behind its `ETag`), and the whole stored record as
        // proposed: nothing changed since, whatever wrote it. Checked where the
        // record is found readable by the requester, in this transaction.
        let expect = match &row.before_hash {
            Some(hash) => Expect::BeforeImage {
                hash: hash.clone(),
                version: row.before_version,
            },
            None => Expect::Any,
        };
        let data: Map<String, Value> = row
            .proposal
            .get("data")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        match kind {
            Kind::Create => {
                let access = records.writable_object(requester, object)?;
                if !access.can_create() {
                    return Err(ApiError::forbidden(
                        "forbidden",
                        format!("the requester may no longer create `{object}` records"),
                    )
                    .into());
                }
                let id = records.insert_one(tx, requester, &access, &data)?;
                Ok(format!("created {object} {id}"))
            }
            Kind::Update | Kind::Action => {
                let access = records.writable_object(requester, object)?;
                let id = row.record_id.as_deref().unwrap_or("");
                records.update_in(tx, requester, &access, id, &data, &expect)?;
                Ok(format!("updated {object} {id}"))
            }
            Kind::Delete => {
                let access = records.writable_object(requester, object)?;
                let id = row.record_id.as_deref().unwrap_or("");
                let removed = records.delete_in(tx, requester, &access, id, &expect)?;
                Ok(format!("deleted {} record(s)", removed.len()))
            }
            Kind::Grant | Kind::Revoke => {
                metadata::apply_grant(tx, requester, row, kind == Kind::Grant)
            }
            Kind::Metadata => Err(anyhow::anyhow!(
                "metadata changes are applied by `objectos apply`"
            )),
        }
    }

    /// Reject, with the reason; nothing of the change is written.
    pub fn reject(&self, reviewer: &Caller, id: &str, reason: &str) -> Result<Value, ApiError> {
        self.reject_unaudited(reviewer, id, reason)
            .inspect_err(|e| self.refused(reviewer, "pending.reject", id, e))
    }

    fn reject_unaudited(
        &self,
        reviewer: &Caller,
        id: &str,
        reason: &str,
    ) -> Result<Value, ApiError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_body",
                "a rejection needs a `reason`",
            ));
        }
        Self::is_reviewer(reviewer)?;
        let row = self.load(reviewer, id)?;
        self.may_decide(reviewer, &row)?;
        Self::still_pending(&row)?;
        self.decide(reviewer, &row, "rejected", "pending.reject", Some(reason))?;
        self.get(reviewer, id)
    }

    /// Cancel: the requester takes back their own proposal.
    pub fn cancel(&self, requester: &Caller, id: &str) -> Result<Value, ApiError> {
        self.cancel_unaudited(requester, id)
            .inspect_err(|e| self.refused(requester, "pending.cancel", id, e))
    }

    fn cancel_unaudited(&self, requester: &Caller, id: &str) -> Result<Value, ApiError> {
        let row = self.load(requester, id)?;
        if row.requester_id != requester.principal.user_id {
            return Err(ApiError::forbidden(
                "not_requester",
                "only the requester may cancel a pending action",
            ));
        }
        Self::still_pending(&row)?;
        self.decide(requester, &row, "cancelled", "pending.cancel", None)?;
        self.get(requester, id)
    }

    fn decide(
        &self,
        who: &Caller,
        row: &PendingRow,
        to: &str,
        action: &str,
        reason: Option<&str>,
    ) -> Result<(), ApiError> {
        let at = now();
        self.store()
            .write(|tx| {
                if !tx.pending_transition(
                    &row.id,
                    &["pending"],
                    to,
                    Some(&who.principal.user_id),
                    &at,
                    reason,
                    None,
                )? {
                    return Err(
                        conflict("already_decided", "someone decided the action first").into(),
                    );
                }
                audit::append(
                    tx,
                    &who.origin,
                    Event::new(action)
                        .object("pending_action")
                        .record(&row.id)
                        .changes(json!({"kind": row.kind, "reason": reason})),
                )?;
                Ok(())
            })
            .map_err(to_api)
    }
}

/// Who an expiry is recorded as: objectos itself, on behalf of the requester,
/// through their key and client, as the action's other rows name them.
fn expiry_origin(row: &PendingRow, email: Option<&str>) -> Origin {
    let mut origin = Origin::system();
    origin.actor["requester"] = json!({"user_id": row.requester_id, "email": email});
    origin.actor["organization_id"] = json!(row.org_id);
    origin.credential = row.key_id.clone();
    origin.client = row.client.clone();
    origin
}

/// Cancel every pending action of a user (they were disabled), in the caller's
/// transaction, each with its audit row.
pub fn cancel_for_user(tx: &mut dyn Tx, origin: &Origin, user_id: &str) -> anyhow::Result<usize> {
    let at = now();
    let rows = tx.pending_of_user(user_id, "pending")?;
    for row in &rows {
        if tx.pending_transition(
            &row.id,
            &["pending"],
            "cancelled",
            None,
            &at,
            Some("the requester was disabled"),
            None,
        )? {
            audit::append(
                tx,
                origin,
                Event::new("pending.cancel")
                    .object("pending_action")
                    .record(&row.id)
                    .changes(json!({"kind": row.kind, "reason": "the requester was disabled"})),
            )?;
        }
    }
    Ok(rows.len())
}

/// The fields of `object` a caller could see, for building diffs.
pub(crate) fn diff_of(
    access: &ObjectAccess<'_>,
    before: Option<&Map<String, Value>>,
    after: &Map<String, Value>,
) -> Value {
    let mut out = Vec::new();
    for (field, value) in after {
        let old = before
            .and_then(|b| b.get(field))
            .cloned()
            .unwrap_or(Value::Null);
        if before.is_some() && old == *value {
            continue;
        }
        let _ = access;
        out.push(json!({"field": field, "before": old, "after": value}));
    }
    Value::Array(out)
}
