//! The database behind one interface. SQLite (`sqlite.rs`) is the first backend;
//! nothing outside `store` writes SQL, and nothing here assumes SQLite, so that a
//! PostgreSQL backend can implement the same traits for multi-instance sites.
//!
//! Work happens in transactions: [`Store::write`] and [`Store::read`] run a closure
//! against a [`Tx`]; the closure's changes commit together or not at all.

pub mod assistant;
pub mod postgres;
pub mod sql;
pub mod sqlite;

pub use sql::{RowKey, UnsealedRow};

/// Copy every row of `src` into `dst` (a new store of another engine, its
/// record tables made), unchanged; how many rows each table held.
pub fn copy(src: &mut dyn Tx, dst: &mut dyn Tx) -> StoreResult<sql::copy::Copied> {
    sql::copy::copy_all(src.engine(), dst.engine())
}

use std::fmt;

use serde_json::Value;

use crate::model::Storage;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is busy (another process holds its write lock)")]
    Busy,
    #[error("`{0}` would collide with an existing value")]
    Unique(String),
    #[error("the database file is not an objectos database or is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "this database was written by a newer objectos (schema version {found}, this build knows up to {known})"
    )]
    TooNew { found: i64, known: i64 },
    #[error("audit rows are immutable: {0}")]
    Immutable(String),
    #[error("the database is read-only here")]
    ReadOnly,
    #[error("the database cannot be opened: {0}")]
    CannotOpen(String),
    #[error("database error: {0}")]
    Backend(String),
    #[error("a text value holds the NUL character, which this database cannot store")]
    NulInText,
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub password_hash: Option<String>,
    pub disabled: bool,
    pub created_at: String,
}

impl fmt::Debug for UserRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("name", &self.name)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "<redacted>"),
            )
            .field("disabled", &self.disabled)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRow {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamRow {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignmentRow {
    pub id: String,
    pub user_id: String,
    pub permset: String,
    /// `None`: in every organization of the user
    pub org_id: Option<String>,
    pub valid_until: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    User,
    Agent,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::User => "user",
            KeyKind::Agent => "agent",
        }
    }
}

/// An API key as stored: never the key, only its SHA-256 and a display prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub id: String,
    pub user_id: String,
    pub org_id: String,
    pub kind: KeyKind,
    pub read_only: bool,
    pub name: Option<String>,
    pub prefix: String,
    pub hash: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub org_id: String,
    pub hash: String,
    pub created_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
}

/// A change an agent proposed, waiting for (or past) a reviewer's decision.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingRow {
    pub id: String,
    pub org_id: String,
    /// `create`, `update`, `delete`, `action`, `grant`, `revoke`, `metadata`
    pub kind: String,
    /// `pending`, `approved`, `applied`, `failed`, `rejected`, `cancelled`, `expired`
    pub status: String,
    pub requester_id: String,
    /// The agent key that proposed it.
    pub key_id: Option<String>,
    /// The MCP client (`{name, version}`).
    pub client: Option<Value>,
    pub tool: String,
    /// The tool's arguments as the agent sent them.
    pub input: Value,
    pub object: Option<String>,
    pub record_id: Option<String>,
    /// The target's before-image hash when proposed (stale check).
    pub before_hash: Option<String>,
    /// What applying it does: the change and its diff, by kind.
    pub proposal: Value,
    pub created_at: String,
    pub expires_at: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub reason: Option<String>,
    /// Why it failed, or what applying it made.
    pub result: Option<String>,
    /// The target's `row_version` when proposed: approval applies only to
    /// that version (`stale` otherwise). Absent for a create, and for actions
    /// proposed before objectos recorded it.
    pub before_version: Option<i64>,
}

/// Failed sign-ins counted for one account or one client address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleRow {
    /// `account:<email>` or `address:<ip>`
    pub key: String,
    pub failures: i64,
    pub window_start: String,
    pub blocked_until: Option<String>,
    /// A refusal during the current wait was already audited.
    pub reported: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingRow {
    pub key: String,
    /// The value, or for a secret its age ciphertext (base64).
    pub value: String,
    pub secret: bool,
    pub updated_at: String,
}

/// One audit row as stored (docs/audit-log.md, "The row").
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub seq: i64,
    pub id: String,
    pub time: String,
    pub actor: Value,
    pub via: String,
    pub client: Option<Value>,
    pub credential: Option<String>,
    pub action: String,
    pub object: Option<String>,
    pub record_id: Option<String>,
    pub changes: Option<Value>,
    pub outcome: String,
    pub code: Option<String>,
    pub request_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// The oldest audit rows `audit archive` moved out of the table, as the database
/// keeps them: the range, and the hashes that let the chain after it verify
/// (docs/audit-evidence.md). Immutable once written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditAnchor {
    pub first_seq: i64,
    pub last_seq: i64,
    /// The `prev_hash` of the first archived row (the previous anchor's
    /// `last_hash`, or 32 zero bytes).
    pub first_prev_hash: String,
    /// The hash of the last archived row: the next row's `prev_hash`.
    pub last_hash: String,
    pub count: i64,
    /// The SHA-256 of the archive file the rows went to.
    pub archive_sha256: String,
    pub archived_at: String,
    /// The artifact (its sha256) the newest successful `artifact.apply` row up
    /// to `last_seq` applied, carried over so that the check "the artifact in
    /// force is the one the audit log last recorded applying" survives the
    /// archiving of that row.
    pub last_artifact_apply: Option<String>,
}

/// Which row of a time a seq is looked up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBound {
    /// The first row at or after the time.
    FirstAtOrAfter,
    /// The last row at or before the time.
    LastAtOrBefore,
    /// The last row strictly before the time.
    LastBefore,
}

/// An audit row with its JSON columns (`actor`, `client`, `changes`) as the
/// database holds them, as text: for walks that copy a million rows rather
/// than read them (export), which need not parse what they only pass on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRowText {
    pub seq: i64,
    pub id: String,
    pub time: String,
    pub actor: String,
    pub via: String,
    pub client: Option<String>,
    pub credential: Option<String>,
    pub action: String,
    pub object: Option<String>,
    pub record_id: Option<String>,
    pub changes: Option<String>,
    pub outcome: String,
    pub code: Option<String>,
    pub request_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRowText {
    /// The row with its JSON columns read (text that is not JSON is read as a
    /// string, as every other read of the table reads it).
    pub fn parse(&self) -> AuditRow {
        let json =
            |t: &str| serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_string()));
        AuditRow {
            seq: self.seq,
            id: self.id.clone(),
            time: self.time.clone(),
            actor: json(&self.actor),
            via: self.via.clone(),
            client: self.client.as_deref().map(json),
            credential: self.credential.clone(),
            action: self.action.clone(),
            object: self.object.clone(),
            record_id: self.record_id.clone(),
            changes: self.changes.as_deref().map(json),
            outcome: self.outcome.clone(),
            code: self.code.clone(),
            request_id: self.request_id.clone(),
            prev_hash: self.prev_hash.clone(),
            hash: self.hash.clone(),
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct AppliedArtifact {
    pub seq: i64,
    pub sha256: String,
    pub id: String,
    pub version: String,
    pub signer_key_id: String,
    /// The signer's public key (its base64 line): a key id alone names a key but
    /// does not identify it.
    pub signer_public_key: Option<String>,
    /// The `.minisig` text the artifact was applied with; `None` only for rows
    /// written before objectos stored it.
    pub signature: Option<String>,
    pub bytes: Vec<u8>,
    pub applied_at: String,
}

impl fmt::Debug for AppliedArtifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AppliedArtifact({} {} {})",
            self.id, self.version, self.sha256
        )
    }
}

/// A column of a business object's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub storage: Storage,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct IndexSpec {
    pub name: String,
    pub columns: Vec<String>,
    pub unique: bool,
}

/// One step of an apply plan, in backend-neutral terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaChange {
    CreateTable {
        object: String,
        columns: Vec<Column>,
    },
    AddColumn {
        object: String,
        column: Column,
    },
    DropColumn {
        object: String,
        column: String,
    },
    DropTable {
        object: String,
    },
    /// Replace every index of the object's table with these.
    SetIndexes {
        object: String,
        indexes: Vec<IndexSpec>,
    },
}

/// One transaction's view of the database.
pub trait Tx: RecordTx + assistant::AssistantTx {
    // Instance metadata (key/value).
    fn meta_get(&mut self, key: &str) -> StoreResult<Option<String>>;
    fn meta_set(&mut self, key: &str, value: &str) -> StoreResult<()>;

    // Users.
    fn user_insert(&mut self, user: &UserRow) -> StoreResult<()>;
    fn user_by_email(&mut self, email: &str) -> StoreResult<Option<UserRow>>;
    fn user_by_id(&mut self, id: &str) -> StoreResult<Option<UserRow>>;
    fn users(&mut self) -> StoreResult<Vec<UserRow>>;
    fn user_set_disabled(&mut self, id: &str, disabled: bool) -> StoreResult<()>;
    fn user_set_password(&mut self, id: &str, hash: &str) -> StoreResult<()>;

    // Organizations and memberships.
    fn org_insert(&mut self, org: &OrgRow) -> StoreResult<()>;
    fn org_by_name(&mut self, name: &str) -> StoreResult<Option<OrgRow>>;
    fn org_by_id(&mut self, id: &str) -> StoreResult<Option<OrgRow>>;
    fn orgs(&mut self) -> StoreResult<Vec<OrgRow>>;
    fn member_add(&mut self, user_id: &str, org_id: &str, at: &str) -> StoreResult<bool>;
    fn member_remove(&mut self, user_id: &str, org_id: &str) -> StoreResult<bool>;
    fn orgs_of_user(&mut self, user_id: &str) -> StoreResult<Vec<OrgRow>>;
    fn member_count(&mut self, org_id: &str) -> StoreResult<u64>;

    // Teams.
    fn team_insert(&mut self, team: &TeamRow) -> StoreResult<()>;
    fn team_by_name(&mut self, name: &str) -> StoreResult<Option<TeamRow>>;
    fn teams(&mut self) -> StoreResult<Vec<TeamRow>>;
    fn team_member_add(&mut self, team_id: &str, user_id: &str) -> StoreResult<bool>;
    fn team_member_remove(&mut self, team_id: &str, user_id: &str) -> StoreResult<bool>;
    fn team_members(&mut self, team_id: &str) -> StoreResult<Vec<UserRow>>;
    fn teams_of_user(&mut self, user_id: &str) -> StoreResult<Vec<TeamRow>>;

    // Permission set assignments.
    fn assignment_insert(&mut self, row: &AssignmentRow) -> StoreResult<()>;
    fn assignment_delete(
        &mut self,
        user_id: &str,
        permset: &str,
        org_id: Option<&str>,
    ) -> StoreResult<bool>;
    fn assignments_of_user(&mut self, user_id: &str) -> StoreResult<Vec<AssignmentRow>>;
    fn assignments(&mut self) -> StoreResult<Vec<AssignmentRow>>;

    // API keys and sessions.
    fn apikey_insert(&mut self, key: &ApiKeyRow) -> StoreResult<()>;
    fn apikey_by_hash(&mut self, hash: &str) -> StoreResult<Option<ApiKeyRow>>;
    fn apikey_by_id(&mut self, id: &str) -> StoreResult<Option<ApiKeyRow>>;
    fn apikeys(&mut self) -> StoreResult<Vec<ApiKeyRow>>;
    fn apikey_revoke(&mut self, id: &str, at: &str) -> StoreResult<bool>;
    fn session_insert(&mut self, session: &SessionRow) -> StoreResult<()>;
    fn session_by_hash(&mut self, hash: &str) -> StoreResult<Option<SessionRow>>;
    fn session_by_id(&mut self, id: &str) -> StoreResult<Option<SessionRow>>;
    fn sessions(&mut self) -> StoreResult<Vec<SessionRow>>;
    fn session_revoke(&mut self, id: &str, at: &str) -> StoreResult<bool>;

    // Settings.
    fn setting_put(&mut self, row: &SettingRow) -> StoreResult<()>;
    fn setting_get(&mut self, key: &str) -> StoreResult<Option<SettingRow>>;
    fn settings(&mut self) -> StoreResult<Vec<SettingRow>>;
    fn setting_delete(&mut self, key: &str) -> StoreResult<bool>;

    // Artifacts and the shape of the business tables.
    fn artifact_current(&mut self) -> StoreResult<Option<AppliedArtifact>>;
    fn artifact_record(&mut self, artifact: &AppliedArtifact) -> StoreResult<()>;
    fn schema_apply(&mut self, changes: &[SchemaChange]) -> StoreResult<()>;
    /// The names of the indexes of an object's table.
    fn record_index_names(&mut self, object: &str) -> StoreResult<Vec<String>>;

    // The audit log: append-only, read in seq order.
    fn audit_head(&mut self) -> StoreResult<Option<(i64, String)>>;
    fn audit_insert(&mut self, row: &AuditRow) -> StoreResult<()>;
    /// Rows with `seq >= from`, at most `limit`, in seq order.
    fn audit_page(&mut self, from: i64, limit: usize) -> StoreResult<Vec<AuditRow>>;
    /// The same rows with their JSON columns as text.
    fn audit_page_text(&mut self, from: i64, limit: usize) -> StoreResult<Vec<AuditRowText>>;
    fn audit_last(&mut self, n: usize) -> StoreResult<Vec<AuditRow>>;
    fn audit_by_seq(&mut self, seq: i64) -> StoreResult<Option<AuditRow>>;
    fn audit_first_seq(&mut self) -> StoreResult<Option<i64>>;
    /// The seq of a row found by its time (RFC 3339 with microseconds, UTC, as
    /// rows store it).
    fn audit_seq_by_time(&mut self, time: &str, bound: TimeBound) -> StoreResult<Option<i64>>;

    // Archived ranges: the only way rows leave the audit table.
    /// Every anchor, oldest first.
    fn audit_anchors(&mut self) -> StoreResult<Vec<AuditAnchor>>;
    /// Write an anchor; the database removes the rows it names in the same
    /// statement, and refuses (`StoreError::Immutable`) an anchor that does not
    /// name exactly the oldest rows, whole, with their hashes, or that would
    /// leave the table empty. Returns how many rows left the table.
    fn audit_anchor_insert(&mut self, anchor: &AuditAnchor) -> StoreResult<u64>;

    // Sign-in throttling.
    fn throttle_get(&mut self, key: &str) -> StoreResult<Option<ThrottleRow>>;
    fn throttle_put(&mut self, row: &ThrottleRow) -> StoreResult<()>;
    fn throttle_delete(&mut self, key: &str) -> StoreResult<()>;
    /// Forget counts whose window began before `before` and that wait no longer.
    fn throttle_prune(&mut self, before: &str) -> StoreResult<()>;

    /// The guards that make audit rows immutable (SQLite triggers) that are
    /// missing or not as objectos made them, by name.
    fn audit_guards_missing(&mut self) -> StoreResult<Vec<String>>;
    /// Put the audit guards back exactly as objectos makes them, and remove any
    /// other trigger on the guarded tables.
    fn audit_guards_restore(&mut self) -> StoreResult<()>;
    // The pending-action queue.
    fn pending_insert(&mut self, row: &PendingRow) -> StoreResult<()>;
    fn pending_get(&mut self, id: &str) -> StoreResult<Option<PendingRow>>;
    /// An organization's actions, of one status or all, oldest first.
    fn pending_list(&mut self, org_id: &str, status: Option<&str>) -> StoreResult<Vec<PendingRow>>;
    fn pending_of_user(&mut self, user_id: &str, status: &str) -> StoreResult<Vec<PendingRow>>;
    fn pending_count_for_key(&mut self, key_id: &str) -> StoreResult<u64>;
    /// Pending actions whose expiry has passed.
    fn pending_expired(&mut self, now: &str) -> StoreResult<Vec<PendingRow>>;
    /// Move an action from one of `from` to `to`; false when it was in none of
    /// them (someone else decided first).
    #[allow(clippy::too_many_arguments)]
    fn pending_transition(
        &mut self,
        id: &str,
        from: &[&str],
        to: &str,
        decided_by: Option<&str>,
        at: &str,
        reason: Option<&str>,
        result: Option<&str>,
    ) -> StoreResult<bool>;

    /// The newest successful row of an action.
    fn audit_last_success(&mut self, action: &str) -> StoreResult<Option<AuditRow>>;
    /// The `n` most recently applied artifacts, newest first.
    fn artifacts_recent(&mut self, n: usize) -> StoreResult<Vec<AppliedArtifact>>;

    /// The backend's own consistency check (`PRAGMA integrity_check` on SQLite).
    fn integrity_check(&mut self) -> StoreResult<Vec<String>>;
    /// The engine underneath, for the store's own whole-database work
    /// ([`copy`]); nothing outside `store` writes SQL.
    fn engine(&mut self) -> &mut dyn sql::Engine;
    /// Every row that grants power whose seal is missing or wrong.
    fn rows_unsealed(&mut self) -> StoreResult<Vec<UnsealedRow>>;
    /// Seal rows with `to`: those that verify under `from`, or without `from`
    /// those that carry no seal yet. How many were sealed.
    fn rows_reseal(&mut self, from: Option<&RowKey>, to: &RowKey) -> StoreResult<u64>;
    fn schema_version(&mut self) -> StoreResult<i64>;
    /// Refresh the planner's statistics where they are stale (cheap when they are not).
    fn optimize(&mut self) -> StoreResult<()>;
}

/// Whether a transaction writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Read,
    /// A read whose result stays in the process (which version of the model
    /// to serve with, say): it may see a commit whose sync to disk is still
    /// under way, where [`Mode::Read`] waits for that sync before it returns.
    Peek,
    /// A read that walks a large part of the audit log once (export, verify):
    /// memory stays flat however large the log, at the cost of no cache.
    Scan,
    Write,
    /// A write whose outcome leaves the process only after a [`Mode::Read`]
    /// that follows it (see [`Store::write_then_read`]): it returns once
    /// committed and visible, before its sync to disk, which that read waits
    /// for. Where a commit shows only once it is on disk, a [`Mode::Write`].
    WriteThenRead,
}

/// A database backend: runs a closure in one transaction.
pub trait Backend: Send + Sync {
    /// `key` seals and checks the rows that grant power (see `sql::seal`).
    fn transaction(
        &self,
        mode: Mode,
        key: Option<&RowKey>,
        work: &mut dyn FnMut(&mut dyn Tx) -> anyhow::Result<()>,
    ) -> anyhow::Result<()>;

    /// Make sure every commit this process has read is on disk, whichever
    /// process made it: before something read is kept as evidence (a
    /// checkpoint line). A no-op where a commit shows only once it is on disk.
    fn sync_seen(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// The database, whatever its backend.
pub struct Store {
    backend: Box<dyn Backend>,
    /// Without it, no row that grants power reads as valid, and none can be
    /// written: only tools that read the audit log open a store so.
    key: Option<RowKey>,
}

impl Store {
    pub fn new(backend: Box<dyn Backend>) -> Store {
        Store { backend, key: None }
    }

    /// The store with the instance's row key, as the runtime uses it.
    pub fn with_row_key(mut self, key: RowKey) -> Store {
        self.key = Some(key);
        self
    }

    pub fn row_key(&self) -> Option<&RowKey> {
        self.key.as_ref()
    }

    /// Run `work` in one write transaction: everything it did commits, or nothing.
    pub fn write<T>(
        &self,
        work: impl FnOnce(&mut dyn Tx) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.run(Mode::Write, work)
    }

    /// Run `write` in one write transaction, then `read` in a read transaction
    /// that sees it: a write answered with what a read of it gives (a record
    /// as its writer may see it). The read runs while the write's commit is
    /// put on disk, and returns after that (as every read waits for the syncs
    /// of what it saw); so does a failed read. The outer error is the write's
    /// (nothing was read); the inner one, the read's after a write that
    /// stands.
    pub fn write_then_read<T, U>(
        &self,
        write: impl FnOnce(&mut dyn Tx) -> anyhow::Result<T>,
        read: impl FnOnce(&mut dyn Tx, &T) -> anyhow::Result<U>,
    ) -> anyhow::Result<(T, anyhow::Result<U>)> {
        let written = self.run(Mode::WriteThenRead, write)?;
        let read = self.run(Mode::Read, |tx| read(tx, &written));
        if read.is_err() {
            // The write stays unanswered until it is on disk all the same.
            if let Err(e) = self.backend.sync_seen() {
                return Ok((written, Err(e.into())));
            }
        }
        Ok((written, read))
    }

    /// Run `work` in one read transaction (a consistent snapshot) that walks
    /// much of the database once: nothing it reads is kept in memory.
    pub fn scan<T>(
        &self,
        work: impl FnOnce(&mut dyn Tx) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.run(Mode::Scan, work)
    }

    /// See [`Backend::sync_seen`].
    pub fn sync_seen(&self) -> StoreResult<()> {
        self.backend.sync_seen()
    }

    /// [`Store::read`] for a result that never leaves the process: it does not
    /// wait for the sync of a commit it may see (see [`Mode::Peek`]).
    pub fn peek<T>(
        &self,
        work: impl FnOnce(&mut dyn Tx) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.run(Mode::Peek, work)
    }

    /// Run `work` in one read transaction (a consistent snapshot).
    pub fn read<T>(
        &self,
        work: impl FnOnce(&mut dyn Tx) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.run(Mode::Read, work)
    }

    fn run<T>(
        &self,
        mode: Mode,
        work: impl FnOnce(&mut dyn Tx) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut work = Some(work);
        let mut out = None;
        self.backend
            .transaction(mode, self.key.as_ref(), &mut |tx| {
                let work = work
                    .take()
                    .ok_or_else(|| anyhow::anyhow!("a transaction closure ran twice"))?;
                out = Some(work(tx)?);
                Ok(())
            })?;
        out.ok_or_else(|| anyhow::anyhow!("a transaction ended without a result"))
    }
}

/// A value bound to a statement parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    /// Bytes (an applied artifact); never a record's value.
    Blob(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// How a `LIKE` pattern is anchored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextMatch {
    Contains,
    StartsWith,
    EndsWith,
}

/// A backend-neutral condition on one object's records. Column names come from
/// the validated model only; every value is a parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    True,
    False,
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Cmp {
        column: String,
        op: CmpOp,
        value: SqlValue,
    },
    In {
        column: String,
        values: Vec<SqlValue>,
        negate: bool,
    },
    Text {
        column: String,
        mode: TextMatch,
        needle: String,
    },
    Null {
        column: String,
        is_null: bool,
    },
    /// The record is explicitly shared with the user or one of their teams, at
    /// least at `access` (`read` or `edit`).
    SharedWith {
        object: String,
        user_id: String,
        teams: Vec<String>,
        edit: bool,
    },
    /// The record's `column` names a parent (of `parent`) that satisfies `cond`.
    ParentIn {
        column: String,
        parent: String,
        cond: Box<Cond>,
    },
}

impl Cond {
    pub fn and(items: Vec<Cond>) -> Cond {
        let mut flat = Vec::new();
        for item in items {
            match item {
                Cond::True => {}
                Cond::False => return Cond::False,
                Cond::And(inner) => flat.extend(inner),
                other => flat.push(other),
            }
        }
        match flat.len() {
            0 => Cond::True,
            1 => flat.pop().unwrap_or(Cond::True),
            _ => Cond::And(flat),
        }
    }

    pub fn or(items: Vec<Cond>) -> Cond {
        let mut flat = Vec::new();
        for item in items {
            match item {
                Cond::False => {}
                Cond::True => return Cond::True,
                Cond::Or(inner) => flat.extend(inner),
                other => flat.push(other),
            }
        }
        match flat.len() {
            0 => Cond::False,
            1 => flat.pop().unwrap_or(Cond::False),
            _ => Cond::Or(flat),
        }
    }

    /// The equalities `column = value` that hold for every row `self` admits:
    /// its top-level conjuncts of that form (a one-value `IN` included).
    pub fn equalities(&self) -> Vec<(String, SqlValue)> {
        let single = |c: &Cond| match c {
            Cond::Cmp {
                column,
                op: CmpOp::Eq,
                value,
            } if *value != SqlValue::Null => Some((column.clone(), value.clone())),
            Cond::In {
                column,
                values,
                negate: false,
            } if values.len() == 1 && values[0] != SqlValue::Null => {
                Some((column.clone(), values[0].clone()))
            }
            _ => None,
        };
        match self {
            Cond::And(items) => items.iter().filter_map(single).collect(),
            other => single(other).into_iter().collect(),
        }
    }

    /// `self` for rows where every equality of `facts` holds (a condition ANDed
    /// with `self`): tests those equalities decide are folded to true or false,
    /// so an access branch that contradicts the caller's own filter (`stage =
    /// 'closed_won'` under `stage = 'prospecting'`) disappears from the SQL and
    /// the planner can use an index for the rest. Only values of the same kind
    /// are compared (SQL's own conversions are never second-guessed); the
    /// conditions of a parent table are left alone.
    pub fn assuming(self, facts: &[(String, SqlValue)]) -> Cond {
        if facts.is_empty() {
            return self;
        }
        let fact = |column: &str| facts.iter().find(|(c, _)| c == column).map(|(_, v)| v);
        // Some(true/false) when `a` and `b` are of one kind; None otherwise.
        let same = |a: &SqlValue, b: &SqlValue| match (a, b) {
            (SqlValue::Integer(x), SqlValue::Integer(y)) => Some(x == y),
            (SqlValue::Text(x), SqlValue::Text(y)) => Some(x == y),
            _ => None,
        };
        let decided = |known: Option<bool>, otherwise: Cond| match known {
            Some(true) => Cond::True,
            Some(false) => Cond::False,
            None => otherwise,
        };
        match self {
            Cond::And(items) => Cond::and(items.into_iter().map(|c| c.assuming(facts)).collect()),
            Cond::Or(items) => Cond::or(items.into_iter().map(|c| c.assuming(facts)).collect()),
            Cond::Not(inner) => match inner.assuming(facts) {
                Cond::True => Cond::False,
                Cond::False => Cond::True,
                other => Cond::Not(Box::new(other)),
            },
            Cond::Cmp { column, op, value } => {
                let known = match (fact(&column), op) {
                    (Some(v), CmpOp::Eq) => same(v, &value),
                    (Some(v), CmpOp::Ne) => same(v, &value).map(|eq| !eq),
                    _ => None,
                };
                decided(known, Cond::Cmp { column, op, value })
            }
            Cond::In {
                column,
                values,
                negate,
            } => {
                let known = fact(&column).and_then(|v| {
                    let mut any_unknown = false;
                    let mut found = false;
                    for candidate in &values {
                        match same(v, candidate) {
                            Some(true) => found = true,
                            Some(false) => {}
                            None => any_unknown = true,
                        }
                    }
                    if found {
                        Some(!negate)
                    } else if any_unknown {
                        None
                    } else {
                        Some(negate)
                    }
                });
                decided(
                    known,
                    Cond::In {
                        column,
                        values,
                        negate,
                    },
                )
            }
            Cond::Null { column, is_null } => {
                // A column equal to a value is not null.
                let known = fact(&column).map(|_| !is_null);
                decided(known, Cond::Null { column, is_null })
            }
            other => other,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    pub object: String,
    pub columns: Vec<String>,
    pub cond: Cond,
    /// (column, descending)
    pub order: Vec<(String, bool)>,
    pub limit: Option<u64>,
    pub offset: u64,
    /// The condition keeps a small part of the table (record access narrows it):
    /// find the rows through the condition's indexes and sort them, rather than
    /// walk an index in sort order testing every row.
    pub selective: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFn {
    Count,
    /// The number of different non-null values of a column.
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
}

impl AggFn {
    /// The name the API spells it with.
    pub fn as_str(self) -> &'static str {
        match self {
            AggFn::Count => "count",
            AggFn::CountDistinct => "count_distinct",
            AggFn::Sum => "sum",
            AggFn::Avg => "avg",
            AggFn::Min => "min",
            AggFn::Max => "max",
        }
    }

    pub fn parse(name: &str) -> Option<AggFn> {
        [
            AggFn::Count,
            AggFn::CountDistinct,
            AggFn::Sum,
            AggFn::Avg,
            AggFn::Min,
            AggFn::Max,
        ]
        .into_iter()
        .find(|f| f.as_str() == name)
    }
}

/// The bucket a date or date-time falls in when grouped, always in UTC. Each
/// backend renders the bucket as text: day `YYYY-MM-DD`, ISO week `YYYY-Www`
/// (the ISO week-numbering year, so 2021-01-01 is in `2020-W53`), month
/// `YYYY-MM`, quarter `YYYY-Qn`, year `YYYY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateGranularity {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl DateGranularity {
    pub const ALL: [DateGranularity; 5] = [
        DateGranularity::Day,
        DateGranularity::Week,
        DateGranularity::Month,
        DateGranularity::Quarter,
        DateGranularity::Year,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DateGranularity::Day => "day",
            DateGranularity::Week => "week",
            DateGranularity::Month => "month",
            DateGranularity::Quarter => "quarter",
            DateGranularity::Year => "year",
        }
    }

    pub fn parse(name: &str) -> Option<DateGranularity> {
        Self::ALL.into_iter().find(|g| g.as_str() == name)
    }
}

/// One key an aggregate groups by: a column, or the date bucket of a date or
/// date-time column; the result calls it `alias`, or else by the column's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupKey {
    pub field: String,
    pub granularity: Option<DateGranularity>,
    pub alias: Option<String>,
}

impl GroupKey {
    /// The column itself, under its own name.
    pub fn plain(field: impl Into<String>) -> GroupKey {
        GroupKey {
            field: field.into(),
            granularity: None,
            alias: None,
        }
    }

    /// What the result calls this key.
    pub fn name(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.field)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub object: String,
    pub cond: Cond,
    /// The group keys; rows come back ordered by them, each row's group values
    /// first, in this order.
    pub group_by: Vec<GroupKey>,
    /// (function, column; `None` counts rows)
    pub aggs: Vec<(AggFn, Option<String>)>,
    pub limit: u64,
}

/// An explicit share of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRow {
    pub id: String,
    pub object: String,
    pub record_id: String,
    /// `user` (grantee is a user id) or `team` (a team name)
    pub grantee_kind: String,
    pub grantee: String,
    pub edit: bool,
    pub created_by: String,
    pub created_at: String,
}

/// Records: the operations the records service composes. Kept apart from [`Tx`]
/// only for reading; every [`Tx`] implements both.
pub trait RecordTx {
    fn record_select(&mut self, select: &Select) -> StoreResult<Vec<Vec<SqlValue>>>;
    fn record_count(&mut self, object: &str, cond: &Cond) -> StoreResult<u64>;
    fn record_aggregate(&mut self, agg: &Aggregate) -> StoreResult<Vec<Vec<SqlValue>>>;
    fn record_insert(&mut self, object: &str, values: &[(String, SqlValue)]) -> StoreResult<()>;
    fn record_update(
        &mut self,
        object: &str,
        id: &str,
        values: &[(String, SqlValue)],
    ) -> StoreResult<()>;
    fn record_delete(&mut self, object: &str, id: &str) -> StoreResult<bool>;
    /// Move every record of `object` (or of all objects) owned by `from` to `to`;
    /// returns the ids moved.
    fn record_transfer(
        &mut self,
        object: &str,
        from: &str,
        to: &str,
        at: &str,
    ) -> StoreResult<Vec<String>>;
    fn share_insert(&mut self, share: &ShareRow) -> StoreResult<()>;
    fn share_delete(
        &mut self,
        object: &str,
        record_id: &str,
        grantee_kind: &str,
        grantee: &str,
    ) -> StoreResult<bool>;
    fn shares_of(&mut self, object: &str, record_id: &str) -> StoreResult<Vec<ShareRow>>;
    /// The applied artifact's sequence number, cheap enough to ask per request.
    fn artifact_seq(&mut self) -> StoreResult<Option<i64>>;
    /// A counter that every change to identities, memberships, teams, grants,
    /// keys, sessions, shares, settings and the applied artifact bumps in the same
    /// transaction: the one signal a cache of any of them may key on.
    fn change_counter(&mut self) -> StoreResult<i64>;
}

#[cfg(test)]
mod cond_tests {
    use super::*;

    fn eq(column: &str, value: SqlValue) -> Cond {
        Cond::Cmp {
            column: column.into(),
            op: CmpOp::Eq,
            value,
        }
    }

    fn text(s: &str) -> SqlValue {
        SqlValue::Text(s.into())
    }

    #[test]
    fn a_branch_that_contradicts_the_filter_is_dropped() {
        let access = Cond::or(vec![
            Cond::and(vec![
                eq("organization_id", text("o")),
                eq("owner_id", text("u")),
            ]),
            Cond::and(vec![
                eq("organization_id", text("o")),
                eq("stage", text("closed_won")),
            ]),
        ]);
        let filter = Cond::and(vec![
            eq("stage", text("prospecting")),
            eq("region", text("emea")),
        ]);
        let folded = access.clone().assuming(&filter.equalities());
        assert_eq!(
            folded,
            Cond::and(vec![
                eq("organization_id", text("o")),
                eq("owner_id", text("u"))
            ])
        );
        // Under `stage = 'closed_won'` the rule's branch is simply true.
        let won = access.assuming(&[("stage".into(), text("closed_won"))]);
        assert_eq!(
            won,
            Cond::or(vec![
                Cond::and(vec![
                    eq("organization_id", text("o")),
                    eq("owner_id", text("u"))
                ]),
                eq("organization_id", text("o")),
            ])
        );
    }

    #[test]
    fn only_what_is_certain_is_folded() {
        let facts = [
            ("n".to_string(), SqlValue::Integer(5)),
            ("s".to_string(), text("a")),
        ];
        // Another kind of value: SQL may convert, so it is left to SQL.
        let mixed = eq("n", SqlValue::Real(5.0));
        assert_eq!(mixed.clone().assuming(&facts), mixed);
        let mixed_text = eq("n", text("5"));
        assert_eq!(mixed_text.clone().assuming(&facts), mixed_text);
        // Ranges, text matches, shares and parents are kept.
        let gt = Cond::Cmp {
            column: "n".into(),
            op: CmpOp::Gt,
            value: SqlValue::Integer(1),
        };
        assert_eq!(gt.clone().assuming(&facts), gt);
        let parent = Cond::ParentIn {
            column: "p".into(),
            parent: "q".into(),
            cond: Box::new(eq("s", text("b"))),
        };
        assert_eq!(parent.clone().assuming(&facts), parent);
        // IN, NOT IN, NOT, IS NULL.
        let inside = Cond::In {
            column: "s".into(),
            values: vec![text("a"), text("b")],
            negate: false,
        };
        assert_eq!(inside.assuming(&facts), Cond::True);
        let outside = Cond::In {
            column: "s".into(),
            values: vec![text("b")],
            negate: true,
        };
        assert_eq!(outside.assuming(&facts), Cond::True);
        let not = Cond::Not(Box::new(eq("s", text("a"))));
        assert_eq!(not.assuming(&facts), Cond::False);
        let null = Cond::Null {
            column: "s".into(),
            is_null: true,
        };
        assert_eq!(null.assuming(&facts), Cond::False);
        // A null fact is no fact.
        assert!(eq("s", SqlValue::Null).equalities().is_empty());
    }
}
