//! The SQLite backend: one file in the data dir, WAL, every commit on disk before
//! it is answered (group commit, see [`WriteGroup`]), schema by
//! append-only migrations tracked in `PRAGMA user_version`.
//!
//! Writes go through one connection (SQLite has one writer at a time); reads use a
//! small pool, so readers never wait for a writer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::sql::{Dialect, Engine};
use super::*;

mod anchors;
mod assistant;

/// The migrations, in order. Never edit or remove a shipped one: append.
pub const MIGRATIONS: &[&str] = &[
    // 1: identities, permission assignments, credentials, the audit log.
    r#"
    CREATE TABLE objectos_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE objectos_users (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL UNIQUE COLLATE NOCASE,
        name TEXT,
        password_hash TEXT,
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );
    CREATE TABLE objectos_orgs (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
    );
    CREATE TABLE objectos_memberships (
        user_id TEXT NOT NULL REFERENCES objectos_users(id),
        org_id TEXT NOT NULL REFERENCES objectos_orgs(id),
        created_at TEXT NOT NULL,
        PRIMARY KEY (user_id, org_id)
    );
    CREATE TABLE objectos_teams (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
    );
    CREATE TABLE objectos_team_members (
        team_id TEXT NOT NULL REFERENCES objectos_teams(id),
        user_id TEXT NOT NULL REFERENCES objectos_users(id),
        PRIMARY KEY (team_id, user_id)
    );
    CREATE INDEX objectos_team_members_user ON objectos_team_members(user_id);
    CREATE TABLE objectos_assignments (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES objectos_users(id),
        permset TEXT NOT NULL,
        org_id TEXT NOT NULL DEFAULT '',
        valid_until TEXT,
        created_at TEXT NOT NULL,
        UNIQUE (user_id, permset, org_id)
    );
    CREATE TABLE objectos_api_keys (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES objectos_users(id),
        org_id TEXT NOT NULL REFERENCES objectos_orgs(id),
        kind TEXT NOT NULL CHECK (kind IN ('user', 'agent')),
        read_only INTEGER NOT NULL DEFAULT 0,
        name TEXT,
        prefix TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        expires_at TEXT,
        revoked_at TEXT
    );
    CREATE TABLE objectos_sessions (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES objectos_users(id),
        org_id TEXT NOT NULL REFERENCES objectos_orgs(id),
        hash TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        revoked_at TEXT
    );
    CREATE TABLE objectos_audit (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        time TEXT NOT NULL,
        actor TEXT NOT NULL,
        via TEXT NOT NULL,
        client TEXT,
        credential TEXT,
        action TEXT NOT NULL,
        object TEXT,
        record_id TEXT,
        changes TEXT,
        outcome TEXT NOT NULL,
        code TEXT,
        request_id TEXT,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TRIGGER objectos_audit_no_update BEFORE UPDATE ON objectos_audit
    BEGIN SELECT RAISE(ABORT, 'audit rows are immutable'); END;
    CREATE TRIGGER objectos_audit_no_delete BEFORE DELETE ON objectos_audit
    BEGIN SELECT RAISE(ABORT, 'audit rows are immutable'); END;
    "#,
    // 2: applied artifacts and settings.
    r#"
    CREATE TABLE objectos_artifacts (
        seq INTEGER PRIMARY KEY,
        sha256 TEXT NOT NULL,
        id TEXT NOT NULL,
        version TEXT NOT NULL,
        signer_key_id TEXT NOT NULL,
        bytes BLOB NOT NULL,
        applied_at TEXT NOT NULL
    );
    CREATE TABLE objectos_settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        secret INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL
    );
    "#,
    // 3: explicit shares of records.
    r#"
    CREATE TABLE objectos_shares (
        id TEXT PRIMARY KEY,
        object TEXT NOT NULL,
        record_id TEXT NOT NULL,
        grantee_kind TEXT NOT NULL CHECK (grantee_kind IN ('user', 'team')),
        grantee TEXT NOT NULL,
        edit INTEGER NOT NULL DEFAULT 0,
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (object, record_id, grantee_kind, grantee)
    );
    CREATE INDEX objectos_shares_grantee ON objectos_shares(object, grantee_kind, grantee, record_id);
    "#,
    // 4: the applied artifact's signature (so every load re-verifies it), a change
    // counter every change to identities, grants, credentials, shares, settings
    // and the applied artifact bumps in its own transaction (the one signal a
    // cache may key on, across processes), and sign-in throttling counted in the
    // database (so it holds across processes and instances).
    r#"
    ALTER TABLE objectos_artifacts ADD COLUMN signature TEXT;
    ALTER TABLE objectos_artifacts ADD COLUMN signer_public_key TEXT;
    CREATE TABLE objectos_changes (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        counter INTEGER NOT NULL
    );
    INSERT INTO objectos_changes (id, counter) VALUES (1, 0);
    CREATE TRIGGER objectos_count_users_insert AFTER INSERT ON objectos_users BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_users_update AFTER UPDATE ON objectos_users BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_users_delete AFTER DELETE ON objectos_users BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_orgs_insert AFTER INSERT ON objectos_orgs BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_orgs_update AFTER UPDATE ON objectos_orgs BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_orgs_delete AFTER DELETE ON objectos_orgs BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_memberships_insert AFTER INSERT ON objectos_memberships BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_memberships_update AFTER UPDATE ON objectos_memberships BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_memberships_delete AFTER DELETE ON objectos_memberships BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_teams_insert AFTER INSERT ON objectos_teams BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_teams_update AFTER UPDATE ON objectos_teams BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_teams_delete AFTER DELETE ON objectos_teams BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_team_members_insert AFTER INSERT ON objectos_team_members BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_team_members_update AFTER UPDATE ON objectos_team_members BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_team_members_delete AFTER DELETE ON objectos_team_members BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_assignments_insert AFTER INSERT ON objectos_assignments BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_assignments_update AFTER UPDATE ON objectos_assignments BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_assignments_delete AFTER DELETE ON objectos_assignments BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_api_keys_insert AFTER INSERT ON objectos_api_keys BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_api_keys_update AFTER UPDATE ON objectos_api_keys BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_api_keys_delete AFTER DELETE ON objectos_api_keys BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_sessions_insert AFTER INSERT ON objectos_sessions BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_sessions_update AFTER UPDATE ON objectos_sessions BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_sessions_delete AFTER DELETE ON objectos_sessions BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_shares_insert AFTER INSERT ON objectos_shares BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_shares_update AFTER UPDATE ON objectos_shares BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_shares_delete AFTER DELETE ON objectos_shares BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_artifacts_insert AFTER INSERT ON objectos_artifacts BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_artifacts_update AFTER UPDATE ON objectos_artifacts BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_artifacts_delete AFTER DELETE ON objectos_artifacts BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_settings_insert AFTER INSERT ON objectos_settings BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_settings_update AFTER UPDATE ON objectos_settings BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_settings_delete AFTER DELETE ON objectos_settings BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_meta_insert AFTER INSERT ON objectos_meta BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_meta_update AFTER UPDATE ON objectos_meta BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TRIGGER objectos_count_meta_delete AFTER DELETE ON objectos_meta BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END;
    CREATE TABLE objectos_signin_throttle (
        key TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        window_start TEXT NOT NULL,
        blocked_until TEXT,
        reported INTEGER NOT NULL DEFAULT 0
    );
    CREATE TRIGGER objectos_audit_append_only BEFORE INSERT ON objectos_audit WHEN NEW.seq <= (SELECT coalesce(max(seq), 0) FROM objectos_audit) OR EXISTS (SELECT 1 FROM objectos_audit WHERE id = NEW.id) BEGIN SELECT RAISE(ABORT, 'audit rows are immutable: rows are only appended'); END;
    CREATE TRIGGER objectos_artifacts_no_update BEFORE UPDATE ON objectos_artifacts BEGIN SELECT RAISE(ABORT, 'applied artifacts are immutable'); END;
    CREATE TRIGGER objectos_artifacts_no_delete BEFORE DELETE ON objectos_artifacts BEGIN SELECT RAISE(ABORT, 'applied artifacts are immutable'); END;
    CREATE INDEX objectos_audit_action ON objectos_audit(action, seq);
    "#,
    // 5: the pending-action queue: changes agents proposed, waiting for a
    // reviewer (docs/agents.md).
    r#"
    CREATE TABLE objectos_pending_actions (
        id TEXT PRIMARY KEY,
        org_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        requester_id TEXT NOT NULL,
        key_id TEXT,
        client TEXT,
        tool TEXT NOT NULL,
        input TEXT NOT NULL,
        object TEXT,
        record_id TEXT,
        before_hash TEXT,
        proposal TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        decided_by TEXT,
        decided_at TEXT,
        reason TEXT,
        result TEXT
    );
    CREATE INDEX objectos_pending_org ON objectos_pending_actions(org_id, status, created_at);
    CREATE INDEX objectos_pending_key ON objectos_pending_actions(key_id, status);
    CREATE INDEX objectos_pending_requester ON objectos_pending_actions(requester_id, status);
    "#,
    // 6: archived ranges: anchors, and rows that leave the audit table only
    // together with theirs (docs/audit-evidence.md; see `anchors`).
    anchors::MIGRATION,
    // 7: the assistant's conversations and messages (docs/assistant.md; see
    // `assistant`).
    assistant::MIGRATION,
    // 8: a seal on every row that grants power (see `sql::seal`).
    super::sql::seal::MIGRATION,
    // 9: the version (`row_version`) of the record a pending action was
    // proposed against: approval applies only to that version.
    "ALTER TABLE objectos_pending_actions ADD COLUMN before_version INTEGER;",
];

fn map_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match &e {
        rusqlite::Error::SqliteFailure(err, msg) => match err.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => StoreError::Busy,
            ErrorCode::ConstraintViolation => {
                let text = msg.clone().unwrap_or_default();
                if text.contains("immutable") {
                    StoreError::Immutable(text)
                } else if let Some(cols) = text.strip_prefix("UNIQUE constraint failed: ") {
                    StoreError::Unique(cols.to_string())
                } else {
                    StoreError::Backend(text)
                }
            }
            ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => {
                StoreError::Corrupt(e.to_string())
            }
            ErrorCode::ReadOnly => StoreError::ReadOnly,
            ErrorCode::CannotOpen | ErrorCode::PermissionDenied => {
                StoreError::CannotOpen(e.to_string())
            }
            _ if msg.as_deref().is_some_and(|m| m.contains("immutable")) => {
                StoreError::Immutable(msg.clone().unwrap_or_default())
            }
            _ => StoreError::Backend(e.to_string()),
        },
        _ => StoreError::Backend(e.to_string()),
    }
}

trait Sql<T> {
    fn db(self) -> StoreResult<T>;
}

impl<T> Sql<T> for rusqlite::Result<T> {
    fn db(self) -> StoreResult<T> {
        self.map_err(map_err)
    }
}

/// The triggers that make audit rows and applied artifacts immutable, exactly as
/// the migrations made them (name, table, SQL): checked whenever a data dir is
/// opened (and by a running server every minute), and put back if dropped or
/// altered. Any other trigger on those tables is someone else's, and removed.
pub const AUDIT_GUARDS: [(&str, &str, &str); 12] = [
    (
        "objectos_audit_no_update",
        "objectos_audit",
        "CREATE TRIGGER objectos_audit_no_update BEFORE UPDATE ON objectos_audit BEGIN SELECT RAISE(ABORT, 'audit rows are immutable'); END",
    ),
    (
        "objectos_audit_no_delete",
        "objectos_audit",
        anchors::AUDIT_NO_DELETE,
    ),
    (
        "objectos_audit_append_only",
        "objectos_audit",
        "CREATE TRIGGER objectos_audit_append_only BEFORE INSERT ON objectos_audit WHEN NEW.seq <= (SELECT coalesce(max(seq), 0) FROM objectos_audit) OR EXISTS (SELECT 1 FROM objectos_audit WHERE id = NEW.id) BEGIN SELECT RAISE(ABORT, 'audit rows are immutable: rows are only appended'); END",
    ),
    (
        "objectos_artifacts_no_update",
        "objectos_artifacts",
        "CREATE TRIGGER objectos_artifacts_no_update BEFORE UPDATE ON objectos_artifacts BEGIN SELECT RAISE(ABORT, 'applied artifacts are immutable'); END",
    ),
    (
        "objectos_artifacts_no_delete",
        "objectos_artifacts",
        "CREATE TRIGGER objectos_artifacts_no_delete BEFORE DELETE ON objectos_artifacts BEGIN SELECT RAISE(ABORT, 'applied artifacts are immutable'); END",
    ),
    // The change counter's own triggers on the artifacts table (migration 4).
    (
        "objectos_count_artifacts_insert",
        "objectos_artifacts",
        "CREATE TRIGGER objectos_count_artifacts_insert AFTER INSERT ON objectos_artifacts BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END",
    ),
    (
        "objectos_count_artifacts_update",
        "objectos_artifacts",
        "CREATE TRIGGER objectos_count_artifacts_update AFTER UPDATE ON objectos_artifacts BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END",
    ),
    (
        "objectos_count_artifacts_delete",
        "objectos_artifacts",
        "CREATE TRIGGER objectos_count_artifacts_delete AFTER DELETE ON objectos_artifacts BEGIN UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1; END",
    ),
    // Archived ranges (migration 6).
    (
        "objectos_audit_anchor_check",
        "objectos_audit_anchors",
        anchors::ANCHOR_CHECK,
    ),
    (
        "objectos_audit_anchor_remove",
        "objectos_audit_anchors",
        anchors::ANCHOR_REMOVE,
    ),
    (
        "objectos_audit_anchor_no_update",
        "objectos_audit_anchors",
        anchors::ANCHOR_NO_UPDATE,
    ),
    (
        "objectos_audit_anchor_no_delete",
        "objectos_audit_anchors",
        anchors::ANCHOR_NO_DELETE,
    ),
];

/// The tables whose triggers are all objectos's own (those of `AUDIT_GUARDS`).
const GUARDED_TABLES: &str = "('objectos_audit', 'objectos_artifacts', 'objectos_audit_anchors')";

fn squash_whitespace(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The version column every record table has (added to tables made before it).
const ROW_VERSION_COLUMN: &str = "\"row_version\" INTEGER NOT NULL DEFAULT 1";

/// Give every record table made before objectos kept versions its version
/// column (each existing record starts at version 1). Idempotent.
fn ensure_row_versions(conn: &Connection) -> StoreResult<()> {
    let tables: Vec<String> = {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'rec\\_%' ESCAPE '\\'")
            .db()?;
        let names = stmt.query_map([], |r| r.get::<_, String>(0)).db()?;
        names.collect::<rusqlite::Result<Vec<_>>>().db()?
    };
    for table in tables {
        let has: i64 = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info(?1) WHERE name = 'row_version'",
                [&table],
                |r| r.get(0),
            )
            .db()?;
        if has == 0 {
            conn.execute_batch(&format!(
                "ALTER TABLE {} ADD COLUMN {ROW_VERSION_COLUMN}",
                quote(&table)
            ))
            .db()?;
        }
    }
    Ok(())
}

pub use super::sql::{quote, table_of};

/// A group key as SQL: the column, or its UTC date bucket as text.
///
/// Dates are stored `YYYY-MM-DD` and date-times as RFC 3339 text with any
/// offset; SQLite's date functions read both and turn an offset into UTC. Two
/// spellings RFC 3339 allows and SQLite does not read are mended first: a
/// lower-case `t`/`z` (upper-cased) and a leap second `:60` (read as `:59`, in
/// the same bucket). The ISO week is the week of its Thursday (`-3 days`, then
/// on to the next Thursday unless already one), numbered in the Thursday's
/// year: so 2021-01-01 (a Friday) is `2020-W53` and 2024-12-30 `2025-W01`.
fn group_expr(key: &GroupKey) -> String {
    let column = quote(&key.field);
    let Some(granularity) = key.granularity else {
        return column;
    };
    let t = format!(
        "upper(CASE WHEN substr({column}, 18, 2) = '60' \
         THEN substr({column}, 1, 17) || '59' || substr({column}, 20) ELSE {column} END)"
    );
    match granularity {
        DateGranularity::Day => format!("strftime('%Y-%m-%d', {t})"),
        DateGranularity::Month => format!("strftime('%Y-%m', {t})"),
        DateGranularity::Year => format!("strftime('%Y', {t})"),
        DateGranularity::Quarter => format!(
            "(strftime('%Y', {t}) || '-Q' || ((CAST(strftime('%m', {t}) AS INTEGER) + 2) / 3))"
        ),
        DateGranularity::Week => {
            let thursday = format!("date({t}, '-3 days', 'weekday 4')");
            format!(
                "(strftime('%Y', {thursday}) || '-W' || \
                 printf('%02d', (CAST(strftime('%j', {thursday}) AS INTEGER) + 6) / 7))"
            )
        }
    }
}

fn column_type(storage: Storage) -> &'static str {
    match storage {
        Storage::Number => "REAL",
        Storage::Boolean => "INTEGER",
        _ => "TEXT",
    }
}

pub struct SqliteBackend {
    path: PathBuf,
    writer: Mutex<Connection>,
    /// Writers sharing a commit, and the signal that it happened.
    group: Mutex<WriteGroup>,
    committed: std::sync::Condvar,
    durability: Durability,
    /// In a server's way of writing (see `serve_mode`).
    serving: std::sync::atomic::AtomicBool,
    readers: Mutex<Readers>,
    /// Signalled when a reader comes back to the pool.
    reader_back: std::sync::Condvar,
    /// Opened read-only (for commands that write nothing): how connections open.
    read_only: Option<ReadOnly>,
}

/// The read connections: those idle, and how many exist. At most
/// `max_readers()` exist at once; a reader waits for one to come back rather
/// than open another (each holds a page cache, so their number bounds memory).
#[derive(Default)]
struct Readers {
    idle: Vec<Connection>,
    open: usize,
}

/// Two per core (readers wait on I/O a little), at least 2, at most 16.
fn max_readers() -> usize {
    // Asked once: `available_parallelism` reads the cgroup files on every call
    // (a fifth of a busy server's time when it was asked per read).
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() * 2)
            .unwrap_or(4)
            .clamp(2, 16)
    })
}

/// The page cache of each connection, in KiB. Reads do not go through a memory
/// map: the operating system's file cache holds the database for every process
/// without counting against this one, and the process's memory stays what its
/// connections need.
///
/// Each connection has a page cache of its own (the bundled SQLite is built
/// without `SQLITE_ENABLE_MEMORY_MANAGEMENT`, see `.cargo/config.toml`: with
/// it, the caches of all connections formed one pool behind one lock, which
/// the writer waited on behind the readers). At 4 MiB, a rep's list at
/// 240,000 records (3,500 rows to sort, on some 2,900 pages) no longer fitted:
/// every call read each page again from the file (2,900 `pread`s, 3–4 times
/// the time of the same query on a cache that held them). At 16 MiB a
/// server's connections (the writer, the checkpointer and up to
/// `max_readers()` readers) hold at most 96 MiB on 2 cores. Pages are only
/// allocated once read, so a short command stays small.
pub const PAGE_CACHE_KIB: i64 = 16384;

/// A read connection lent out of the pool; it goes back when dropped (after a
/// rollback if a transaction was left open).
struct Lease<'b> {
    backend: &'b SqliteBackend,
    conn: Option<Connection>,
}

impl std::ops::Deref for Lease<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("a leased connection")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            self.backend.give_back(conn);
        }
    }
}

/// How often the background checkpoint runs: often enough that the log stays
/// a few megabytes under a steady stream of writes.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// The log's length, in pages, past which the background checkpoint makes it
/// start again from its beginning (16 MiB of 4 KiB pages).
const RESTART_FRAMES: i64 = 4096;

/// How long the background checkpoint waits, once it holds the writer's lock,
/// for readers of an older snapshot to finish before it gives up on starting
/// the log again (it then does what a passive checkpoint does, and tries again
/// at its next turn). Writers wait while it does: with SQLite's usual busy
/// handler, which sleeps for up to tens of milliseconds at a time, each of
/// these waits showed as the slowest creates of a run.
const CHECKPOINT_BUSY: Duration = Duration::from_millis(3);

/// SQLite's own checkpoint threshold, in pages, given back to the writer when
/// the background checkpoints stop.
const AUTOCHECKPOINT_PAGES: i64 = 1000;

/// A server's way of writing (see [`SqliteBackend::serve_mode`]); dropping this
/// stops the checkpoint thread, and each commit syncs and checkpoints by
/// itself again.
pub struct ServeMode {
    backend: Arc<SqliteBackend>,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ServeMode {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Err(e) = self.backend.set_serving(false) {
            tracing::warn!(error = %e, "could not restore the writer's own syncs and checkpoints");
        }
    }
}

/// How a read-only database is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOnly {
    /// Read-only, still seeing other processes' writes.
    Shared,
    /// On read-only media: the file is taken as unchanging (SQLite's
    /// `immutable`), since no lock or WAL index can be made beside it.
    Immutable,
}

fn open_read_only_conn(path: &Path, how: ReadOnly) -> StoreResult<Connection> {
    let conn = match how {
        ReadOnly::Shared => Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ),
        ReadOnly::Immutable => {
            let uri = format!(
                "file:{}?immutable=1",
                path.display()
                    .to_string()
                    .replace('%', "%25")
                    .replace('?', "%3f")
                    .replace('#', "%23")
            );
            Connection::open_with_flags(
                uri,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI,
            )
        }
    }
    .db()?;
    conn.busy_timeout(Duration::from_secs(5)).db()?;
    plan_by_statement(&conn)?;
    conn.execute_batch(&format!(
        "PRAGMA cache_size = -{PAGE_CACHE_KIB}; PRAGMA mmap_size = 0;"
    ))
    .db()?;
    Ok(conn)
}

/// Plan each statement once, whatever its parameters (SQLite's query planner
/// stability guarantee). Without it, a statement whose parameter meets an index
/// with `sqlite_stat4` samples is planned again every time it is bound to new
/// values, so a cached statement is parsed and planned anew on every request:
/// over a quarter of a server's CPU on the get of one record by id. The plan
/// still weighs the index statistics `PRAGMA optimize` gathers (row counts per
/// key prefix), and samples against the literals a statement spells out.
fn plan_by_statement(conn: &Connection) -> StoreResult<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .db()?;
    Ok(())
}

fn configure(conn: &Connection) -> StoreResult<()> {
    conn.busy_timeout(Duration::from_secs(5)).db()?;
    plan_by_statement(conn)?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA cache_size = -{PAGE_CACHE_KIB};
         PRAGMA mmap_size = 0;
         PRAGMA temp_store = MEMORY;"
    ))
    .db()?;
    Ok(())
}

impl SqliteBackend {
    /// Open (creating when `create`) and migrate the database.
    pub fn open(path: &Path, create: bool) -> StoreResult<SqliteBackend> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let mut conn = Connection::open_with_flags(path, flags).db()?;
        configure(&conn)?;
        migrate(&mut conn, MIGRATIONS.len())?;
        ensure_row_versions(&conn)?;
        Ok(SqliteBackend {
            path: path.to_path_buf(),
            writer: Mutex::new(conn),
            group: Mutex::new(WriteGroup::default()),
            committed: std::sync::Condvar::new(),
            durability: Durability::default(),
            serving: Default::default(),
            readers: Mutex::new(Readers::default()),
            reader_back: std::sync::Condvar::new(),
            read_only: None,
        })
    }

    /// Open for reading only: nothing is migrated or written. On read-only
    /// media the file is read as unchanging. A database that needs migrating
    /// cannot be read this way.
    pub fn open_read_only(path: &Path) -> StoreResult<SqliteBackend> {
        let mut last = None;
        for how in [ReadOnly::Shared, ReadOnly::Immutable] {
            let attempt = open_read_only_conn(path, how).and_then(|conn| {
                let version: i64 = conn
                    .query_row("PRAGMA user_version", [], |r| r.get(0))
                    .db()?;
                Ok((conn, version))
            });
            match attempt {
                Ok((conn, version)) => {
                    if version > MIGRATIONS.len() as i64 {
                        return Err(StoreError::TooNew {
                            found: version,
                            known: MIGRATIONS.len() as i64,
                        });
                    }
                    if version < MIGRATIONS.len() as i64 {
                        return Err(StoreError::Backend(format!(
                            "the database is at schema version {version} and needs migrating to {}, which a read-only open cannot do; run a command that writes (e.g. `objectos doctor` on a writable copy)",
                            MIGRATIONS.len()
                        )));
                    }
                    return Ok(SqliteBackend {
                        path: path.to_path_buf(),
                        writer: Mutex::new(conn),
                        group: Mutex::new(WriteGroup::default()),
                        committed: std::sync::Condvar::new(),
                        durability: Durability::default(),
                        serving: Default::default(),
                        readers: Mutex::new(Readers::default()),
                        reader_back: std::sync::Condvar::new(),
                        read_only: Some(how),
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| StoreError::Backend("cannot open the database".into())))
    }

    /// How the database was opened read-only, if it was.
    pub fn read_only(&self) -> Option<ReadOnly> {
        self.read_only
    }

    /// A read connection: an idle one, a new one while fewer than
    /// `max_readers()` exist, or the next one given back.
    fn reader(&self) -> StoreResult<Lease<'_>> {
        let poisoned = || StoreError::Backend("reader pool poisoned".into());
        let mut pool = self.readers.lock().map_err(|_| poisoned())?;
        let since = std::time::Instant::now();
        loop {
            if let Some(conn) = pool.idle.pop() {
                return Ok(Lease {
                    backend: self,
                    conn: Some(conn),
                });
            }
            // Past a second of waiting, one more is opened all the same: a
            // reader that needs a second connection while every one is lent
            // (a read inside a read) must not wait for ever.
            if pool.open < max_readers() || since.elapsed() > Duration::from_secs(1) {
                pool.open += 1;
                break;
            }
            pool = self
                .reader_back
                .wait_timeout(pool, Duration::from_millis(100))
                .map_err(|_| poisoned())?
                .0;
        }
        drop(pool);
        let opened = match self.read_only {
            Some(how) => open_read_only_conn(&self.path, how),
            None => Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .db()
            .and_then(|conn| configure(&conn).map(|()| conn)),
        };
        match opened {
            Ok(conn) => Ok(Lease {
                backend: self,
                conn: Some(conn),
            }),
            Err(e) => {
                if let Ok(mut pool) = self.readers.lock() {
                    pool.open -= 1;
                }
                self.reader_back.notify_one();
                Err(e)
            }
        }
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut pool) = self.readers.lock() {
            if pool.open <= max_readers() {
                pool.idle.push(conn);
            } else {
                // One opened past the limit: closed.
                pool.open -= 1;
            }
        }
        self.reader_back.notify_one();
    }

    /// How a long-running server writes, until the answer is dropped: each
    /// group's fsync is made after the writer is handed to the next group
    /// (see [`WriteGroup`]), and the write-ahead log is copied back into the
    /// database on a thread of its own rather than in the commit that crosses
    /// SQLite's threshold (one held the writer for milliseconds, every few
    /// commits). The checkpoints are SQLite's passive ones, which never block a
    /// reader or a writer and copy only what no reader still needs; past
    /// [`RESTART_FRAMES`], one that starts the log again, which holds writers
    /// back for at most [`CHECKPOINT_BUSY`] while readers of an older snapshot
    /// finish.
    pub fn serve_mode(self: &Arc<Self>) -> StoreResult<ServeMode> {
        if self.read_only.is_some() {
            return Err(StoreError::ReadOnly);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .db()?;
        configure(&conn)?;
        conn.busy_timeout(CHECKPOINT_BUSY).db()?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                use std::sync::mpsc::RecvTimeoutError;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
                    let checkpoint = |mode: &str| {
                        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
                            r.get::<_, i64>(1)
                        })
                    };
                    // Under a steady stream of writes a passive checkpoint never
                    // catches up with the end of the log, and the log only
                    // restarts from its beginning once one has: past a size, the
                    // next one waits for the writer (briefly: most is copied).
                    let outcome = checkpoint("PASSIVE").and_then(|frames| {
                        if frames > RESTART_FRAMES {
                            checkpoint("RESTART").map(|_| ())
                        } else {
                            Ok(())
                        }
                    });
                    if let Err(e) = outcome {
                        tracing::warn!(error = %e, "could not checkpoint the write-ahead log");
                    }
                }
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the checkpoint thread: {e}")))?;
        self.set_serving(true)?;
        Ok(ServeMode {
            backend: Arc::clone(self),
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Enter or leave the serving mode's way of writing. Changed under the
    /// writer's lock, so that each group commits one way or the other whole.
    fn set_serving(&self, serving: bool) -> StoreResult<()> {
        let conn = self
            .writer
            .lock()
            .map_err(|_| StoreError::Backend("the writer connection is poisoned".into()))?;
        let (sync, pages) = if serving {
            ("NORMAL", 0)
        } else {
            ("FULL", AUTOCHECKPOINT_PAGES)
        };
        conn.pragma_update(None, "synchronous", sync).db()?;
        conn.pragma_update(None, "wal_autocheckpoint", pages).db()?;
        self.serving
            .store(serving, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// A consistent copy of the database into `target`, taken with SQLite's online
    /// backup while others keep writing.
    pub fn backup_to(&self, target: &Path) -> StoreResult<()> {
        let source = self.reader()?;
        let mut dest = Connection::open(target).db()?;
        let backup = rusqlite::backup::Backup::new(&source, &mut dest).db()?;
        backup
            .run_to_completion(256, Duration::from_millis(5), None)
            .db()?;
        // A copy holds nothing that is not on disk here.
        self.sync_seen_here()
    }
}

/// Apply migrations up to `target` (tests migrate part way to fake an older database).
pub fn migrate(conn: &mut Connection, target: usize) -> StoreResult<()> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .db()?;
    if version > MIGRATIONS.len() as i64 {
        return Err(StoreError::TooNew {
            found: version,
            known: MIGRATIONS.len() as i64,
        });
    }
    if version >= target as i64 {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
        .db()?;
    // Read again inside the lock: another process may have migrated meanwhile.
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).db()?;
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .take(target)
        .skip(version.max(0) as usize)
    {
        tx.execute_batch(sql).db()?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .db()?;
    }
    tx.commit().db()?;
    Ok(())
}

/// Group commit: writers that arrive while another writes join its
/// transaction, each in a savepoint of its own (a failing one undoes only its
/// own work), and the last of the group commits for all: one fsync for many
/// writes, and nobody is answered before the commit that holds their write is
/// on disk.
///
/// In a server (see [`SqliteBackend::serve_mode`]) the fsync is not made
/// inside the commit (the writer runs SQLite's `synchronous = NORMAL`): the
/// last of the group commits, hands the writer to the next group, and only
/// then syncs the log and answers its group. The
/// next group's work overlaps this group's fsync, and an answer still waits
/// for the disk: what `synchronous = FULL` promises, at the cost of one fsync
/// per group instead of one per group in series with the next. Log frames are
/// appended in commit order, so a sync that completes covers every commit
/// made before it began.
///
/// A commit is then visible to readers before its fsync completes; so that
/// nothing read leaves a process before it is on disk, every read waits,
/// before it answers, for the syncs of the commits it may have seen (see
/// [`SqliteBackend::wait_durable`]). Elsewhere (commands run once) each commit
/// syncs before it ends (`synchronous = FULL`).
///
/// The members learn the commit's outcome as soon as it is made. A write
/// answered with a read of what it wrote ([`Mode::WriteThenRead`]: a create
/// answers with the record) reads then, while the log syncs, and the read
/// waits for the sync before it returns; the other members wait for the sync,
/// and the one that committed makes it. Reading after the sync instead made
/// each such answer wait for the next group's sync as well, as the read saw
/// that group's commit.
#[derive(Default)]
struct WriteGroup {
    /// A transaction is open on the writer connection, holding the work of
    /// `members` writers of batch `epoch`, not yet committed.
    open: bool,
    epoch: u64,
    members: usize,
    /// Writers waiting for the connection (they will join the open batch).
    waiting: usize,
    /// The outcome of committed batches not yet read by all their members:
    /// epoch → (error, members left to read it).
    outcomes: std::collections::HashMap<u64, (Option<String>, usize)>,
}

/// Which commits are on disk: `committing` is the latest batch whose commit
/// was started, `durable` the latest known synced (with every one before it).
/// A sync that fails leaves the database unusable until restarted, as a
/// commit may be visible that is not on disk.
#[derive(Default)]
struct Durability {
    committing: std::sync::atomic::AtomicU64,
    durable: std::sync::atomic::AtomicU64,
    failed: Mutex<Option<String>>,
    synced: std::sync::Condvar,
    /// Syncs of the log under way.
    syncing: std::sync::atomic::AtomicUsize,
}

/// At most this many writers share one commit.
const MAX_GROUP: usize = 64;

/// A group this large commits even with writers waiting, when no sync is under
/// way (see [`WriteGroup::ends`]).
const EARLY_GROUP: usize = 16;

impl WriteGroup {
    /// Whether the writer that just did its work commits the group now. It
    /// does when nobody waits to join, at [`MAX_GROUP`], and when its own work
    /// could not be kept. In a server it also does at [`EARLY_GROUP`] when the
    /// disk is idle (no sync of the log under way): the group's sync starts at
    /// once, rather than after the work of every writer that keeps arriving,
    /// each of whom its first members wait for. While a sync is under way the
    /// group keeps growing: its own sync would queue behind that one.
    fn ends(&self, kept: bool, disk_idle: bool) -> bool {
        !kept
            || self.waiting == 0
            || self.members >= MAX_GROUP
            || (disk_idle && self.members >= EARLY_GROUP)
    }
}

/// One statement without parameters, prepared once per connection: the
/// statements that open, mark and end a transaction run on every write.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

impl SqliteBackend {
    /// Run `work` in the writer's open group (see [`WriteGroup`]). With
    /// `synced`, return once the commit that holds it is on disk; without, as
    /// soon as it is committed, visible to readers ([`Mode::WriteThenRead`]).
    fn write_grouped(
        &self,
        key: Option<&RowKey>,
        work: &mut dyn FnMut(&mut dyn Tx) -> anyhow::Result<()>,
        synced: bool,
    ) -> anyhow::Result<()> {
        let poisoned = || anyhow::anyhow!("the writer connection is poisoned");
        {
            let mut g = self.group.lock().map_err(|_| poisoned())?;
            g.waiting += 1;
        }
        let conn = self.writer.lock();
        let mut g = self.group.lock().map_err(|_| poisoned())?;
        g.waiting -= 1;
        let conn = conn.map_err(|_| poisoned())?;
        if let Some(why) = self
            .durability
            .failed
            .lock()
            .map_err(|_| poisoned())?
            .clone()
        {
            return Err(StoreError::Backend(why).into());
        }
        if !g.open {
            run_cached(&conn, "BEGIN IMMEDIATE").db()?;
            g.open = true;
            g.epoch += 1;
            g.members = 0;
        }
        let epoch = g.epoch;
        g.members += 1;
        drop(g);

        run_cached(&conn, "SAVEPOINT objectos_write").db()?;
        let mut tx = SqliteTx { conn: &conn, key };
        let mine = work(&mut tx);
        let kept = if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (an I/O error, say): the
            // batch is lost, for every member.
            false
        } else {
            (mine.is_ok() || run_cached(&conn, "ROLLBACK TO objectos_write").is_ok())
                && run_cached(&conn, "RELEASE objectos_write").is_ok()
        };

        let disk_idle = self.serving.load(std::sync::atomic::Ordering::SeqCst)
            && self
                .durability
                .syncing
                .load(std::sync::atomic::Ordering::SeqCst)
                == 0;
        let mut g = self.group.lock().map_err(|_| poisoned())?;
        if g.ends(kept, disk_idle) {
            // The last of the group (or a broken batch): commit for everyone.
            let committed = if !kept {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                Err("the transaction was rolled back by the database".to_string())
            } else {
                // Counted before the commit shows: a reader that may see it
                // waits for its sync.
                self.durability
                    .committing
                    .fetch_max(epoch, std::sync::atomic::Ordering::SeqCst);
                run_cached(&conn, "COMMIT").map_err(|e| {
                    let _ = conn.execute_batch("ROLLBACK");
                    format!("the commit failed: {e}")
                })
            };
            g.open = false;
            let others = g.members - 1;
            let serving = self.serving.load(std::sync::atomic::Ordering::SeqCst);
            drop(conn);
            if !serving {
                // The commit synced (`synchronous = FULL`), as did every one
                // before it; one that failed shows nothing to wait for.
                self.durability
                    .durable
                    .fetch_max(epoch, std::sync::atomic::Ordering::SeqCst);
            }
            // The others learn the commit's outcome now, before its sync: a
            // member that reads before it answers ([`Mode::WriteThenRead`])
            // reads while the log syncs, and waits for the sync after.
            if others > 0 {
                g.outcomes.insert(epoch, (committed.clone().err(), others));
            }
            drop(g);
            self.committed.notify_all();
            // Serving, the writer is free for the next group while this one
            // syncs.
            let outcome = match committed {
                Ok(()) if serving => self.sync_log(epoch).err(),
                Ok(()) => None,
                // A commit that failed was counted: the log is synced all the
                // same, so that no reader waits for ever for its sync.
                Err(why) => {
                    if serving && kept {
                        let _ = self.sync_log(epoch);
                    }
                    Some(why)
                }
            };
            return match (mine, outcome) {
                (Err(e), _) => Err(e),
                (Ok(()), None) => Ok(()),
                (Ok(()), Some(why)) => Err(StoreError::Backend(why).into()),
            };
        }
        // Others are about to write: leave the transaction open for them and
        // wait for the commit that holds this write.
        drop(conn);
        let committed = loop {
            if let Some(entry) = g.outcomes.get_mut(&epoch) {
                let outcome = entry.0.clone();
                entry.1 -= 1;
                if entry.1 == 0 {
                    g.outcomes.remove(&epoch);
                }
                break outcome;
            }
            g = self.committed.wait(g).map_err(|_| poisoned())?;
        };
        drop(g);
        mine?;
        if let Some(why) = committed {
            return Err(StoreError::Backend(why).into());
        }
        if synced {
            self.wait_synced(epoch)?;
        }
        Ok(())
    }

    /// Put the write-ahead log on disk, holding at least batch `epoch`'s commit.
    fn sync_log(&self, epoch: u64) -> Result<(), String> {
        use std::sync::atomic::Ordering;
        self.durability.syncing.fetch_add(1, Ordering::SeqCst);
        #[cfg(test)]
        tests::slow_sync(&self.path);
        let failure = self
            .sync_files()
            .err()
            .map(|e| format!("the commit could not be put on disk: {e}"));
        self.durability.syncing.fetch_sub(1, Ordering::SeqCst);
        let mut failed = self
            .durability
            .failed
            .lock()
            .map_err(|_| "the durability record is poisoned".to_string())?;
        match &failure {
            None => {
                self.durability.durable.fetch_max(epoch, Ordering::SeqCst);
            }
            Some(why) => {
                tracing::error!(error = %why, "the database is unusable until objectos restarts");
                failed.get_or_insert_with(|| why.clone());
            }
        }
        drop(failed);
        self.durability.synced.notify_all();
        failure.map_or(Ok(()), Err)
    }

    /// [`Backend::sync_seen`]: in a server, its own syncs (other processes
    /// commit with `synchronous = FULL`); in any other process (a command run
    /// beside a server), a sync of the log, which covers every commit made
    /// before it began, whoever made it.
    fn sync_seen_here(&self) -> StoreResult<()> {
        if self.serving.load(std::sync::atomic::Ordering::SeqCst) {
            return self.wait_durable();
        }
        if self.read_only.is_some() {
            return Ok(());
        }
        self.sync_files()
            .map_err(|e| StoreError::Backend(format!("cannot sync the write-ahead log: {e}")))
    }

    /// Sync the write-ahead log, which covers every commit written to it
    /// before, by any process. Without a log (the last connection to close
    /// copied it into the database and removed it), the database instead.
    fn sync_files(&self) -> std::io::Result<()> {
        match std::fs::File::open(wal_path(&self.path)) {
            Ok(file) => file.sync_data(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::File::open(&self.path).and_then(|f| f.sync_data())
            }
            Err(e) => Err(e),
        }
    }

    /// Wait until every commit of this process a read may have seen is on
    /// disk: called after the read, before its answer leaves. Without writes
    /// in flight (and outside a server) this is two atomic loads.
    fn wait_durable(&self) -> StoreResult<()> {
        self.wait_synced(
            self.durability
                .committing
                .load(std::sync::atomic::Ordering::SeqCst),
        )
    }

    /// Wait until batch `target`'s commit, and every one before it, is on disk.
    fn wait_synced(&self, target: u64) -> StoreResult<()> {
        use std::sync::atomic::Ordering;
        let d = &self.durability;
        if d.durable.load(Ordering::SeqCst) >= target {
            return Ok(());
        }
        let poisoned = || StoreError::Backend("the durability record is poisoned".into());
        let mut failed = d.failed.lock().map_err(|_| poisoned())?;
        loop {
            if let Some(why) = failed.as_ref() {
                return Err(StoreError::Backend(why.clone()));
            }
            if d.durable.load(Ordering::SeqCst) >= target {
                return Ok(());
            }
            failed = d.synced.wait(failed).map_err(|_| poisoned())?;
        }
    }
}

/// The write-ahead log beside a database file.
fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_os_string();
    name.push("-wal");
    PathBuf::from(name)
}

impl Backend for SqliteBackend {
    fn sync_seen(&self) -> StoreResult<()> {
        self.sync_seen_here()
    }

    fn transaction(
        &self,
        mode: Mode,
        key: Option<&RowKey>,
        work: &mut dyn FnMut(&mut dyn Tx) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        match mode {
            Mode::Write | Mode::WriteThenRead => {
                if self.read_only.is_some() {
                    return Err(StoreError::ReadOnly.into());
                }
                self.write_grouped(key, work, mode == Mode::Write)
            }
            Mode::Scan => {
                // A connection of its own, with no memory map and a small page
                // cache: a walk over the whole log reads each page once, and
                // a mapped or cached page would stay resident.
                let conn = match self.read_only {
                    Some(how) => open_read_only_conn(&self.path, how)?,
                    None => {
                        let conn = Connection::open_with_flags(
                            &self.path,
                            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                        )
                        .db()?;
                        conn.busy_timeout(Duration::from_secs(5)).db()?;
                        conn
                    }
                };
                conn.execute_batch("PRAGMA mmap_size = 0; PRAGMA cache_size = -2048; BEGIN")
                    .db()?;
                let result = {
                    let mut tx = SqliteTx { conn: &conn, key };
                    work(&mut tx)
                };
                let _ = conn.execute_batch(if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
                result?;
                // A scan exports or checks the audit log: evidence.
                Ok(self.sync_seen_here()?)
            }
            Mode::Read | Mode::Peek => {
                let conn = self.reader()?;
                // Prepared once per connection: a read is often one small query.
                run_cached(&conn, "BEGIN").db()?;
                let result = {
                    let mut tx = SqliteTx { conn: &conn, key };
                    work(&mut tx)
                };
                let _ = run_cached(&conn, if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
                drop(conn);
                result?;
                if mode == Mode::Read {
                    self.wait_durable()?;
                }
                Ok(())
            }
        }
    }
}

pub struct SqliteTx<'c> {
    pub(crate) conn: &'c Connection,
    pub(crate) key: Option<&'c RowKey>,
}

static SQLITE: Dialect = Dialect {
    name: "sqlite",
    // The column is `COLLATE NOCASE`: the unique index serves the lookup.
    email_eq: "email = ?1",
    distinct: "IS NOT",
    like: "LIKE",
    // `+column` keeps SQLite from walking an index in sort order when the
    // condition is selective: it finds the few rows by the condition's own
    // indexes (an OR of them is planned as a union) and sorts those.
    selective_order: "+",
};

impl SqliteTx<'_> {
    /// The first column of a catalog query's rows, nulls left out.
    fn texts(&self, sql: &str, args: impl rusqlite::Params) -> StoreResult<Vec<String>> {
        let mut stmt = self.conn.prepare(sql).db()?;
        let rows = stmt
            .query_map(args, |r| r.get::<_, Option<String>>(0))
            .db()?;
        let rows = rows.collect::<rusqlite::Result<Vec<_>>>().db()?;
        Ok(rows.into_iter().flatten().collect())
    }

    fn index_names(&self, table: &str) -> StoreResult<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL")
            .db()?;
        let names = stmt.query_map([table], |r| r.get::<_, String>(0)).db()?;
        names.collect::<rusqlite::Result<Vec<_>>>().db()
    }
}

impl Engine for SqliteTx<'_> {
    fn dialect(&self) -> &'static Dialect {
        &SQLITE
    }

    fn rows(&mut self, sql: &str, params: &[SqlValue]) -> StoreResult<Vec<Vec<SqlValue>>> {
        let mut stmt = self.conn.prepare_cached(sql).db()?;
        let width = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter())).db()?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().db()? {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(value_of(row.get_ref(i).db()?));
            }
            out.push(values);
        }
        Ok(out)
    }

    fn exec(&mut self, sql: &str, params: &[SqlValue]) -> StoreResult<usize> {
        let mut stmt = self.conn.prepare_cached(sql).db()?;
        stmt.execute(rusqlite::params_from_iter(params.iter())).db()
    }

    fn lock_audit_head(&mut self) -> StoreResult<()> {
        // A write transaction holds SQLite's one write lock already.
        Ok(())
    }

    fn group_expr(&self, key: &GroupKey) -> String {
        group_expr(key)
    }

    fn row_key(&self) -> Option<&RowKey> {
        self.key
    }

    fn schema_apply(&mut self, changes: &[SchemaChange]) -> StoreResult<()> {
        for change in changes {
            match change {
                SchemaChange::CreateTable { object, columns } => {
                    let mut cols = vec![
                        "\"id\" TEXT PRIMARY KEY".to_string(),
                        "\"owner_id\" TEXT".to_string(),
                        "\"organization_id\" TEXT NOT NULL".to_string(),
                        "\"created_by\" TEXT".to_string(),
                        "\"created_at\" TEXT NOT NULL".to_string(),
                        "\"updated_by\" TEXT".to_string(),
                        "\"updated_at\" TEXT NOT NULL".to_string(),
                        ROW_VERSION_COLUMN.to_string(),
                    ];
                    for c in columns {
                        cols.push(format!("{} {}", quote(&c.name), column_type(c.storage)));
                    }
                    self.conn
                        .execute_batch(&format!(
                            "CREATE TABLE {} ({})",
                            table_of(object),
                            cols.join(", ")
                        ))
                        .db()?;
                }
                SchemaChange::AddColumn { object, column } => {
                    self.conn
                        .execute_batch(&format!(
                            "ALTER TABLE {} ADD COLUMN {} {}",
                            table_of(object),
                            quote(&column.name),
                            column_type(column.storage)
                        ))
                        .db()?;
                }
                SchemaChange::DropColumn { object, column } => {
                    // An index on the column would block the drop; indexes are reset after.
                    for name in self.index_names(&format!("rec_{object}"))? {
                        self.conn
                            .execute_batch(&format!("DROP INDEX {}", quote(&name)))
                            .db()?;
                    }
                    self.conn
                        .execute_batch(&format!(
                            "ALTER TABLE {} DROP COLUMN {}",
                            table_of(object),
                            quote(column)
                        ))
                        .db()?;
                }
                SchemaChange::DropTable { object } => {
                    self.conn
                        .execute_batch(&format!("DROP TABLE {}", table_of(object)))
                        .db()?;
                }
                SchemaChange::SetIndexes { object, indexes } => {
                    for name in self.index_names(&format!("rec_{object}"))? {
                        self.conn
                            .execute_batch(&format!("DROP INDEX {}", quote(&name)))
                            .db()?;
                    }
                    for index in indexes {
                        let cols: Vec<String> = index.columns.iter().map(|c| quote(c)).collect();
                        self.conn
                            .execute_batch(&format!(
                                "CREATE {}INDEX {} ON {} ({})",
                                if index.unique { "UNIQUE " } else { "" },
                                quote(&index.name),
                                table_of(object),
                                cols.join(", ")
                            ))
                            .db()?;
                    }
                }
            }
        }
        Ok(())
    }

    fn record_index_names(&mut self, object: &str) -> StoreResult<Vec<String>> {
        self.index_names(&format!("rec_{object}"))
    }

    fn audit_guards_missing(&mut self) -> StoreResult<Vec<String>> {
        let mut missing = Vec::new();
        for (name, _, sql) in AUDIT_GUARDS {
            let found = self.texts(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?1",
                [name],
            )?;
            let intact = found
                .into_iter()
                .next()
                .is_some_and(|text| squash_whitespace(&text) == squash_whitespace(sql));
            if !intact {
                missing.push(name.to_string());
            }
        }
        // A trigger of someone else's on a guarded table can silently drop or
        // rewrite rows (`RAISE(IGNORE)`): it is tampering too.
        let foreign = self.texts(
            &format!("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN {GUARDED_TABLES} ORDER BY name"),
            [],
        )?;
        for name in foreign {
            if !AUDIT_GUARDS.iter().any(|(n, _, _)| *n == name) {
                missing.push(format!("{name} (not objectos's)"));
            }
        }
        Ok(missing)
    }

    fn audit_guards_restore(&mut self) -> StoreResult<()> {
        let foreign = self.texts(
            &format!("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN {GUARDED_TABLES}"),
            [],
        )?;
        for name in foreign {
            if !AUDIT_GUARDS.iter().any(|(n, _, _)| *n == name) {
                self.conn
                    .execute_batch(&format!("DROP TRIGGER {}", quote(&name)))
                    .db()?;
            }
        }
        for name in Engine::audit_guards_missing(self)? {
            if let Some((_, _, sql)) = AUDIT_GUARDS.iter().find(|(n, _, _)| *n == name) {
                self.conn
                    .execute_batch(&format!("DROP TRIGGER IF EXISTS {}; {sql};", quote(&name)))
                    .db()?;
            }
        }
        Ok(())
    }

    fn integrity_check(&mut self) -> StoreResult<Vec<String>> {
        let mut stmt = self.conn.prepare("PRAGMA integrity_check").db()?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).db()?;
        let lines = rows.collect::<rusqlite::Result<Vec<_>>>().db()?;
        Ok(lines.into_iter().filter(|l| l != "ok").collect())
    }

    fn optimize(&mut self) -> StoreResult<()> {
        // Gathers the statistics the planner needs to prefer the selective index
        // (owner over stage, say) once tables have grown.
        self.conn.execute_batch("PRAGMA optimize = 0x10002;").db()
    }

    fn schema_version(&mut self) -> StoreResult<i64> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .db()
    }

    fn columns(&mut self, table: &str) -> StoreResult<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
            .db()?;
        let names = stmt.query_map([table], |r| r.get::<_, String>(0)).db()?;
        names.collect::<rusqlite::Result<Vec<_>>>().db()
    }

    fn record_tables(&mut self) -> StoreResult<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'rec\\_%' ESCAPE '\\' ORDER BY name")
            .db()?;
        let names = stmt.query_map([], |r| r.get::<_, String>(0)).db()?;
        names.collect::<rusqlite::Result<Vec<_>>>().db()
    }

    fn copy_suspend_guards(&mut self) -> StoreResult<()> {
        self.conn
            .execute_batch(
                "DROP TRIGGER IF EXISTS objectos_audit_anchor_check;
                 DROP TRIGGER IF EXISTS objectos_audit_anchor_remove;",
            )
            .db()
    }

    fn copy_sequences(&mut self) -> StoreResult<()> {
        // `INTEGER PRIMARY KEY` goes on from the largest.
        Ok(())
    }
}

impl rusqlite::ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            SqlValue::Null => ValueRef::Null,
            SqlValue::Integer(i) => ValueRef::Integer(*i),
            SqlValue::Real(r) => ValueRef::Real(*r),
            SqlValue::Text(t) => ValueRef::Text(t.as_bytes()),
            SqlValue::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

fn value_of(v: rusqlite::types::ValueRef<'_>) -> SqlValue {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Integer(i) => SqlValue::Integer(i),
        ValueRef::Real(r) => SqlValue::Real(r),
        ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bundled SQLite is built as `.cargo/config.toml` says: no shared page
    /// cache behind one lock, no global lock around every allocation. A build
    /// that lost those flags (cargo run from outside the repository, say)
    /// fails here rather than serving slower unnoticed.
    #[test]
    fn sqlite_is_built_without_process_wide_locks() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let options: Vec<String> = conn
            .prepare("PRAGMA compile_options")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
        // The control: the list is the build's.
        assert!(options.iter().any(|o| o == "THREADSAFE=1"), "{options:?}");
    }

    /// Databases whose log syncs take this long (to hold a sync open in a test).
    static SLOW_SYNCS: Mutex<Vec<(PathBuf, Duration)>> = Mutex::new(Vec::new());

    pub(super) fn slow_sync(path: &Path) {
        let delay = SLOW_SYNCS
            .lock()
            .unwrap()
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, d)| *d);
        if let Some(delay) = delay {
            std::thread::sleep(delay);
        }
    }

    /// A new database holding `k` = "before", serving, whose log syncs take
    /// `delay` until [`fast_syncs`].
    fn serving_with_slow_syncs(
        delay: Duration,
    ) -> (tempfile::TempDir, PathBuf, Arc<SqliteBackend>, ServeMode) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let b = Arc::new(SqliteBackend::open(&path, true).unwrap());
        set_meta(&b, "k", "before");
        let serving = b.serve_mode().unwrap();
        SLOW_SYNCS.lock().unwrap().push((path.clone(), delay));
        (dir, path, b, serving)
    }

    fn fast_syncs(path: &Path) {
        SLOW_SYNCS.lock().unwrap().retain(|(p, _)| p != path);
    }

    fn set_meta(b: &SqliteBackend, key: &str, value: &str) {
        b.transaction(Mode::Write, None, &mut |tx| Ok(tx.meta_set(key, value)?))
            .unwrap();
    }

    fn get_meta(b: &SqliteBackend, mode: Mode, key: &str) -> Option<String> {
        let mut out = None;
        b.transaction(mode, None, &mut |tx| {
            out = tx.meta_get(key)?;
            Ok(())
        })
        .unwrap();
        out
    }

    /// A commit's sync runs after the writer is handed on: the next write
    /// commits while it runs; a read that may see the commit answers only once
    /// it is on disk; a peek (whose result stays in the process) does not wait.
    #[test]
    fn reads_wait_for_the_sync_of_what_they_see_and_writers_do_not() {
        let delay = Duration::from_millis(1200);
        let (_dir, path, b, _serving) = serving_with_slow_syncs(delay);

        let started = std::time::Instant::now();
        let first = std::thread::spawn({
            let b = Arc::clone(&b);
            move || {
                set_meta(&b, "k", "first");
                started.elapsed()
            }
        });
        // The first write has committed; its sync is under way.
        let mut seen = None;
        while started.elapsed() < delay / 2 {
            seen = get_meta(&b, Mode::Peek, "k");
            if seen.as_deref() == Some("first") {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(seen.as_deref(), Some("first"), "the commit is not visible");
        let peeked_at = started.elapsed();
        assert!(peeked_at < delay, "the peek waited for the sync");
        assert!(
            b.durability
                .durable
                .load(std::sync::atomic::Ordering::SeqCst)
                < 2,
            "the first write's sync is already done: the test proves nothing"
        );

        // The writer is free: a second write commits while the first syncs.
        let second = std::thread::spawn({
            let b = Arc::clone(&b);
            move || set_meta(&b, "other", "second")
        });
        let mut second_seen = false;
        while started.elapsed() < delay {
            if get_meta(&b, Mode::Peek, "other").is_some() {
                second_seen = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            second_seen,
            "the second write waited for the first one's sync"
        );

        // A read answers only once what it saw is on disk.
        assert_eq!(get_meta(&b, Mode::Read, "k").as_deref(), Some("first"));
        let read_at = started.elapsed();
        assert!(
            b.durability
                .durable
                .load(std::sync::atomic::Ordering::SeqCst)
                >= b.durability
                    .committing
                    .load(std::sync::atomic::Ordering::SeqCst),
            "a read answered before the commits it may have seen were synced"
        );
        assert!(read_at >= delay, "the read did not wait: {read_at:?}");
        let written_at = first.join().unwrap();
        assert!(written_at >= delay, "the write answered before its sync");
        second.join().unwrap();
        fast_syncs(&path);
    }

    /// While a server runs, checkpoints run on their own thread: the writer's
    /// own are off, the log is copied into the database without a write
    /// crossing SQLite's threshold, and dropping the guard gives the writer its
    /// checkpoints back.
    #[test]
    fn background_checkpoints_copy_the_log_and_hand_back_to_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let b = Arc::new(SqliteBackend::open(&path, true).unwrap());
        let threshold = |b: &SqliteBackend| -> i64 {
            b.writer
                .lock()
                .unwrap()
                .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(threshold(&b), AUTOCHECKPOINT_PAGES);
        let guard = b.serve_mode().unwrap();
        assert_eq!(threshold(&b), 0);
        for i in 0..50 {
            set_meta(&b, &format!("k{i}"), &"x".repeat(3000));
        }
        // Far fewer pages than SQLite's threshold: only the thread copies them.
        let since = std::time::Instant::now();
        let wal = wal_path(&path);
        let mut copied = false;
        while since.elapsed() < Duration::from_secs(5) {
            // The database file grows as the log is copied into it.
            let db_len = std::fs::metadata(&path).unwrap().len();
            if db_len > 50 * 3000 {
                copied = true;
                break;
            }
            std::thread::sleep(CHECKPOINT_EVERY);
        }
        assert!(wal.exists());
        assert!(copied, "the log was not copied into the database");
        drop(guard);
        assert_eq!(threshold(&b), AUTOCHECKPOINT_PAGES);
    }

    /// When the writer that just did its work commits for its group.
    #[test]
    fn a_group_commits_when_nobody_waits_when_full_and_early_when_the_disk_is_idle() {
        let group = |waiting: usize, members: usize| WriteGroup {
            open: true,
            epoch: 1,
            members,
            waiting,
            outcomes: Default::default(),
        };
        // (waiting, members, kept, disk idle) → commits now
        let table = [
            ((0, 1, true, false), true),
            ((0, 1, true, true), true),
            ((3, 1, true, true), false),
            ((3, EARLY_GROUP - 1, true, true), false),
            ((3, EARLY_GROUP, true, true), true),
            ((3, EARLY_GROUP, true, false), false),
            ((3, MAX_GROUP - 1, true, false), false),
            ((3, MAX_GROUP, true, false), true),
            ((3, 2, false, false), true),
        ];
        for ((waiting, members, kept, idle), commits) in table {
            assert_eq!(
                group(waiting, members).ends(kept, idle),
                commits,
                "waiting {waiting}, members {members}, kept {kept}, disk idle {idle}"
            );
        }
    }

    /// A write then a read of it ([`Mode::WriteThenRead`]): the write returns
    /// once committed, while its sync runs; the read that follows sees it and
    /// returns only once that sync is done. A plain write returns after it.
    #[test]
    fn a_write_then_read_reads_during_the_sync_and_answers_after_it() {
        let delay = Duration::from_millis(800);
        let (_dir, path, b, _serving) = serving_with_slow_syncs(delay);

        // A group of two: the first member waits for the second to commit
        // (and sync) for both.
        let started = std::time::Instant::now();
        let (joined_tx, joined_rx) = std::sync::mpsc::channel::<()>();
        let member = std::thread::spawn({
            let store = crate::store::Store::new(Box::new(crate::instance::Database::Sqlite(
                Arc::clone(&b),
            )));
            move || {
                let out = store.write_then_read(
                    |tx| {
                        tx.meta_set("k", "member")?;
                        // Another writer joins before this one leaves the writer.
                        joined_rx.recv_timeout(Duration::from_secs(5))?;
                        Ok(())
                    },
                    |tx, _| {
                        let read_at = started.elapsed();
                        Ok((tx.meta_get("k")?, read_at))
                    },
                );
                (out.unwrap().1.unwrap(), started.elapsed())
            }
        });
        let committer = std::thread::spawn({
            let b = Arc::clone(&b);
            move || {
                // Wait until the member's group is open, then queue behind it.
                while !b.group.lock().unwrap().open {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let waiting = std::thread::spawn({
                    let b = Arc::clone(&b);
                    move || {
                        set_meta(&b, "other", "x");
                        started.elapsed()
                    }
                });
                while b.group.lock().unwrap().waiting == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                joined_tx.send(()).unwrap();
                waiting.join().unwrap()
            }
        });
        let ((seen, read_at), answered_at) = member.join().unwrap();
        let written_at = committer.join().unwrap();
        fast_syncs(&path);
        // The member read its own write before the group's sync was done...
        assert_eq!(seen.as_deref(), Some("member"));
        assert!(read_at < delay, "the read waited for the sync: {read_at:?}");
        // ...and answered only after it, as the plain write did.
        assert!(
            answered_at >= delay,
            "answered before the sync: {answered_at:?}"
        );
        assert!(
            written_at >= delay,
            "the write returned before its sync: {written_at:?}"
        );
        assert_eq!(
            crate::store::Store::new(Box::new(crate::instance::Database::Sqlite(Arc::clone(&b))))
                .read(|tx| Ok(tx.meta_get("other")?))
                .unwrap()
                .as_deref(),
            Some("x")
        );
    }

    /// A checkpoint that would start the log again holds the writer's lock
    /// while it waits for readers of an older snapshot: with a reader that
    /// never leaves, it gives up within milliseconds instead of holding every
    /// writer for the connection's busy timeout (five seconds).
    #[test]
    fn a_checkpoint_waiting_for_a_reader_holds_no_writer_for_long() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let b = Arc::new(SqliteBackend::open(&path, true).unwrap());
        set_meta(&b, "k", "before");
        let reader = Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let before: String = reader
            .query_row("SELECT value FROM objectos_meta WHERE key = 'k'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(before, "before");
        let _serving = b.serve_mode().unwrap();
        // Past the length at which the checkpoint starts the log again.
        let big = "x".repeat(64 * 1024);
        for i in 0..(RESTART_FRAMES as usize / 16 + 16) {
            set_meta(&b, &format!("big{i}"), &big);
        }
        // While the background checkpoint holds the checkpoint lock (its
        // restart waits for the reader), another checkpoint is refused as busy
        // and counts no frames (-1): ask again once it has let go.
        let frames = |conn: &Connection| -> Option<i64> {
            (0..1000).find_map(|_| {
                let log: i64 = conn
                    .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
                    .unwrap();
                if log < 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
                (log >= 0).then_some(log)
            })
        };
        let log =
            frames(&b.writer.lock().unwrap()).expect("another checkpoint held the lock for 5 s");
        assert!(
            log > RESTART_FRAMES,
            "the log is too short for the test: {log}"
        );
        // Each of the checkpoint's turns now waits for the reader.
        let started = std::time::Instant::now();
        let mut slowest = Duration::ZERO;
        let mut writes = 0;
        while started.elapsed() < CHECKPOINT_EVERY * 15 {
            let write = std::time::Instant::now();
            set_meta(&b, "k", &format!("after {writes}"));
            slowest = slowest.max(write.elapsed());
            writes += 1;
        }
        assert!(
            slowest < Duration::from_secs(2),
            "a write waited {slowest:?} for the checkpoint"
        );
        assert!(
            writes > 15,
            "only {writes} writes in {:?}",
            started.elapsed()
        );
        // The reader still sees its snapshot; writers went on around it.
        let still: String = reader
            .query_row("SELECT value FROM objectos_meta WHERE key = 'k'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(still, "before");
        assert_eq!(
            get_meta(&b, Mode::Read, "k"),
            Some(format!("after {}", writes - 1))
        );
    }

    fn user(id: &str, email: &str) -> UserRow {
        UserRow {
            id: id.into(),
            email: email.into(),
            name: None,
            password_hash: None,
            disabled: false,
            created_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    /// The bucket each granularity puts a stored value in.
    fn bucket(value: &str, granularity: DateGranularity) -> Option<String> {
        let conn = Connection::open_in_memory().unwrap();
        let key = GroupKey {
            field: "d".into(),
            granularity: Some(granularity),
            alias: None,
        };
        conn.query_row(
            &format!("SELECT {} FROM (SELECT ?1 AS \"d\")", group_expr(&key)),
            [value],
            |r| r.get(0),
        )
        .unwrap()
    }

    /// How often a cached statement was planned again after `SELECT … WHERE
    /// owner = ?1` ran for each of 20 owners, on a table whose index has
    /// `sqlite_stat4` samples.
    fn replans(conn: &Connection) -> i32 {
        let mut stmt = conn
            .prepare_cached("SELECT count(*) FROM t WHERE owner = ?1 AND stage = ?2")
            .unwrap();
        for owner in 0..20 {
            let _: i64 = stmt
                .query_row(rusqlite::params![format!("u{owner}"), "won"], |r| r.get(0))
                .unwrap();
        }
        stmt.get_status(rusqlite::StatementStatus::RePrepare)
    }

    #[test]
    fn cached_statements_are_not_planned_again_for_each_new_parameter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE t (id INTEGER PRIMARY KEY, owner TEXT, stage TEXT);
                 CREATE INDEX t_owner_stage ON t (owner, stage);
                 WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 4999)
                 INSERT INTO t (owner, stage)
                   SELECT 'u' || (i % 50), CASE WHEN i % 10 = 0 THEN 'won' ELSE 'open' END FROM n;
                 ANALYZE;",
            )
            .unwrap();
            let samples: i64 = conn
                .query_row("SELECT count(*) FROM sqlite_stat4", [], |r| r.get(0))
                .unwrap();
            assert!(samples > 0, "the index has no stat4 samples to plan with");
        }
        // Positive control: a connection as SQLite opens it plans the statement
        // again for new values.
        assert!(replans(&Connection::open(&path).unwrap()) > 0);
        // objectos's connections (writer and readers alike) keep the first plan.
        let conn = Connection::open(&path).unwrap();
        configure(&conn).unwrap();
        assert_eq!(replans(&conn), 0);
        let conn = open_read_only_conn(&path, ReadOnly::Shared).unwrap();
        assert_eq!(replans(&conn), 0);
    }

    /// A `rec_deal` table as `apply` makes it for an object with an owner and a
    /// sharing rule on `stage`, with the indexes `indexes_for` chooses there,
    /// holding 20,000 deals of 50 owners in 5 stages.
    fn deal_table() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("db")).unwrap();
        configure(&conn).unwrap();
        let model = crate::artifact::model_from_bytes(
            br#"{"manifest": {"id": "com.example.deals", "name": "Deals", "version": "1.0.0",
                              "engines": {"protocol": "^17"}},
                 "objects": [{"name": "deal", "label": "Deal", "ownership": "user",
                              "sharingModel": "private",
                              "fields": {"stage": {"type": "text", "label": "Stage"}}}],
                 "sharingRules": [{"name": "won", "label": "Won deals", "object": "deal",
                                   "active": true, "condition": {"stage": "won"},
                                   "accessLevel": "read",
                                   "sharedWith": {"type": "team", "value": "everyone"}}]}"#,
        )
        .unwrap();
        let indexes = crate::instance::apply::indexes_for(&model, model.object("deal").unwrap());
        Engine::schema_apply(
            &mut SqliteTx {
                conn: &conn,
                key: None,
            },
            &[
                SchemaChange::CreateTable {
                    object: "deal".into(),
                    columns: vec![Column {
                        name: "stage".into(),
                        storage: Storage::Text,
                    }],
                },
                SchemaChange::SetIndexes {
                    object: "deal".into(),
                    indexes,
                },
            ],
        )
        .unwrap();
        conn.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 19999)
             INSERT INTO rec_deal (id, owner_id, organization_id, created_at, updated_at, stage)
               SELECT printf('d%05d', (i * 7919) % 20000), 'u' || (i % 50), 'o1', '2026', '2026',
                      CASE i % 10 WHEN 0 THEN 'won' WHEN 1 THEN 'lost' WHEN 2 THEN 'proposal'
                                  WHEN 3 THEN 'negotiation' ELSE 'open' END
               FROM n;",
        )
        .unwrap();
        (dir, conn)
    }

    fn eq(column: &str, value: &str) -> Cond {
        Cond::Cmp {
            column: column.into(),
            op: CmpOp::Eq,
            value: SqlValue::Text(value.into()),
        }
    }

    /// A page of 21 deals from `offset`, as a caller who sees only some of them.
    fn deal_page(cond: Cond, order: &[(&str, bool)], offset: u64) -> Select {
        Select {
            object: "deal".into(),
            columns: ["id", "owner_id", "stage", "created_at"]
                .map(String::from)
                .to_vec(),
            cond,
            order: order.iter().map(|(c, d)| (c.to_string(), *d)).collect(),
            limit: Some(21),
            offset,
            selective: true,
        }
    }

    /// The statement of a page of `select`, its plan, and the ids it reads.
    fn page(conn: &Connection, select: &Select) -> (String, String, Vec<String>) {
        let mut tx = SqliteTx { conn, key: None };
        let (sql, params) = super::sql::select_sql(&mut tx, select).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(rusqlite::params_from_iter(params.iter()), |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let ids = tx
            .record_select(select)
            .unwrap()
            .into_iter()
            .map(|row| match &row[0] {
                SqlValue::Text(id) => id.clone(),
                other => panic!("an id that is not text: {other:?}"),
            })
            .collect();
        (sql, plan.join("; "), ids)
    }

    #[test]
    fn a_page_of_an_equality_only_condition_is_read_in_order_from_its_index() {
        let (_dir, conn) = deal_table();
        let select = |cond: Cond, order: &[(&str, bool)]| deal_page(cond, order, 20);
        // The first ids of `u7`'s open deals, as a plain sort of all of them gives.
        let mut expected: Vec<String> = (0..20000)
            .filter(|i| i % 50 == 7 && i % 10 >= 4)
            .map(|i| format!("d{:05}", (i * 7919) % 20000))
            .collect();
        expected.sort();
        let mine_open = Cond::And(vec![
            eq("organization_id", "o1"),
            eq("owner_id", "u7"),
            eq("stage", "open"),
        ]);
        // Without statistics, and with those `PRAGMA optimize` gathers.
        for analyzed in [false, true] {
            if analyzed {
                conn.execute_batch("ANALYZE").unwrap();
            }
            let (sql, plan, ids) = page(&conn, &select(mine_open.clone(), &[("id", false)]));
            assert!(!sql.contains('+'), "{sql}");
            assert!(!plan.contains("TEMP B-TREE"), "sorted every match: {plan}");
            assert!(
                plan.contains("ix_deal_organization_id_owner_id_stage_id"),
                "{plan}"
            );
            assert_eq!(ids, expected[20..41], "{sql}");
            let (_, _, newest) = page(&conn, &select(mine_open.clone(), &[("id", true)]));
            let mut descending = expected.clone();
            descending.reverse();
            assert_eq!(newest, descending[20..41]);

            // The control: an order by another column sorts the matches.
            let (sql, _, _) = page(
                &conn,
                &select(mine_open.clone(), &[("stage", true), ("id", false)]),
            );
            assert!(sql.contains("+\"stage\" DESC, +\"id\""), "{sql}");
        }
    }

    #[test]
    fn a_page_of_an_or_is_read_branch_by_branch_from_their_indexes() {
        let (_dir, conn) = deal_table();
        let select = |cond: Cond, desc: bool, offset: u64| deal_page(cond, &[("id", desc)], offset);
        let id = |i: u32| format!("d{:05}", (i * 7919) % 20000);
        // `u7`'s deals or won ones (a rep's list under a sharing rule on won
        // deals): the rows of two lookups, 40 of them in both.
        let mine_or_won = Cond::And(vec![
            eq("organization_id", "o1"),
            Cond::Or(vec![eq("owner_id", "u7"), eq("stage", "won")]),
        ]);
        let mut mine_or_won_ids: Vec<String> = (0..20000)
            .filter(|i| i % 50 == 7 || i % 10 == 0)
            .map(id)
            .collect();
        mine_or_won_ids.sort();
        for analyzed in [false, true] {
            if analyzed {
                conn.execute_batch("ANALYZE").unwrap();
            }
            for offset in [0, 20, 2380, 2390] {
                let (sql, plan, ids) = page(&conn, &select(mine_or_won.clone(), false, offset));
                let at = offset as usize;
                let end = (at + 21).min(mine_or_won_ids.len());
                assert_eq!(ids, mine_or_won_ids[at..end], "{sql}");
                assert!(sql.contains("UNION ALL"), "{sql}");
                // Each branch from its index, in order; only the few rows
                // they give are sorted.
                assert!(!plan.contains("SCAN rec_deal"), "{plan}");
                assert!(plan.matches("TEMP B-TREE").count() <= 1, "{plan}");
                assert!(
                    plan.contains("ix_deal_organization_id_owner_id_id"),
                    "{plan}"
                );
                assert!(plan.contains("ix_deal_organization_id_stage_id"), "{plan}");
                let (_, _, newest) = page(&conn, &select(mine_or_won.clone(), true, offset));
                let mut descending = mine_or_won_ids.clone();
                descending.reverse();
                assert_eq!(newest, descending[at..end]);
            }
            // A branch that is not a plain conjunction (explicit shares, say) is
            // sorted on its own, beside a branch read in order.
            let shared: Vec<u32> = vec![3, 4, 19999, 10];
            let mine_or_shared = Cond::And(vec![
                eq("organization_id", "o1"),
                Cond::Or(vec![
                    eq("owner_id", "u7"),
                    Cond::In {
                        column: "id".into(),
                        values: shared.iter().map(|i| SqlValue::Text(id(*i))).collect(),
                        negate: false,
                    },
                ]),
            ]);
            let mut expected: Vec<String> = (0..20000)
                .filter(|i| i % 50 == 7 || shared.contains(i))
                .map(id)
                .collect();
            expected.sort();
            let (sql, _, ids) = page(&conn, &select(mine_or_shared, false, 0));
            assert!(sql.contains("UNION ALL"), "{sql}");
            assert_eq!(ids, expected[..21], "{sql}");

            // The controls: without a branch an index holds in order, with
            // more branches than are read one by one, or without a page, the
            // matches are found by the condition and sorted.
            let neither = Cond::Or(vec![
                Cond::In {
                    column: "owner_id".into(),
                    values: vec![SqlValue::Text("u1".into()), SqlValue::Text("u2".into())],
                    negate: false,
                },
                Cond::Not(Box::new(eq("stage", "open"))),
            ]);
            let many = Cond::Or(
                (0..=super::sql::MAX_BRANCHES)
                    .map(|u| eq("owner_id", &format!("u{u}")))
                    .collect(),
            );
            for cond in [neither, many] {
                let (sql, _, _) = page(&conn, &select(cond, false, 0));
                assert!(!sql.contains("UNION"), "{sql}");
                assert!(sql.contains("+\"id\""), "{sql}");
            }
            let mut tx = SqliteTx {
                conn: &conn,
                key: None,
            };
            let whole = Select {
                limit: None,
                offset: 0,
                ..select(mine_or_won.clone(), false, 0)
            };
            let (sql, _) = super::sql::select_sql(&mut tx, &whole).unwrap();
            assert!(!sql.contains("UNION"), "{sql}");
            assert_eq!(
                tx.record_select(&whole).unwrap().len(),
                mine_or_won_ids.len()
            );
        }
    }

    #[test]
    fn date_buckets_are_utc_text_and_iso_weeks_use_the_iso_year() {
        use DateGranularity::*;
        for (value, week) in [
            ("2020-12-31", "2020-W53"),
            ("2021-01-01", "2020-W53"),
            ("2021-01-03", "2020-W53"),
            ("2021-01-04", "2021-W01"),
            ("2024-12-29", "2024-W52"),
            ("2024-12-30", "2025-W01"),
            ("2026-01-01", "2026-W01"),
            ("2027-01-01", "2026-W53"),
            ("2021-06-15", "2021-W24"),
        ] {
            assert_eq!(bucket(value, Week).as_deref(), Some(week), "{value}");
        }
        let cases = [
            ("2021-01-01", ["2021-01-01", "2021-01", "2021-Q1", "2021"]),
            ("2024-12-30", ["2024-12-30", "2024-12", "2024-Q4", "2024"]),
            ("2021-07-01", ["2021-07-01", "2021-07", "2021-Q3", "2021"]),
            ("2021-06-30", ["2021-06-30", "2021-06", "2021-Q2", "2021"]),
            // Date-times are bucketed in UTC, whatever offset they were written with.
            (
                "2021-01-01T00:30:00+02:00",
                ["2020-12-31", "2020-12", "2020-Q4", "2020"],
            ),
            (
                "2020-12-31T23:30:00-01:00",
                ["2021-01-01", "2021-01", "2021-Q1", "2021"],
            ),
            (
                "2021-03-31T12:00:00.123456Z",
                ["2021-03-31", "2021-03", "2021-Q1", "2021"],
            ),
            // RFC 3339 allows lower case and leap seconds; SQLite needs them mended.
            (
                "2021-09-30t10:00:00z",
                ["2021-09-30", "2021-09", "2021-Q3", "2021"],
            ),
            (
                "2016-12-31T23:59:60Z",
                ["2016-12-31", "2016-12", "2016-Q4", "2016"],
            ),
        ];
        for (value, [day, month, quarter, year]) in cases {
            for (granularity, want) in
                [(Day, day), (Month, month), (Quarter, quarter), (Year, year)]
            {
                assert_eq!(
                    bucket(value, granularity).as_deref(),
                    Some(want),
                    "{value} by {granularity:?}"
                );
            }
        }
        assert_eq!(
            bucket("2021-01-01T00:30:00+02:00", Week).as_deref(),
            Some("2020-W53")
        );
        assert_eq!(
            bucket("2016-12-31T23:59:60Z", Week).as_deref(),
            Some("2016-W52")
        );
        // No value, no bucket.
        let conn = Connection::open_in_memory().unwrap();
        for granularity in DateGranularity::ALL {
            let key = GroupKey {
                field: "d".into(),
                granularity: Some(granularity),
                alias: None,
            };
            let got: Option<String> = conn
                .query_row(
                    &format!("SELECT {} FROM (SELECT NULL AS \"d\")", group_expr(&key)),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(got, None, "{granularity:?}");
        }
    }

    #[test]
    fn every_table_of_the_schema_is_moved_by_a_copy_between_engines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        drop(SqliteBackend::open(&path, true).unwrap());
        let conn = Connection::open(&path).unwrap();
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'objectos\\_%' ESCAPE '\\' ORDER BY name")
            .unwrap();
        let tables: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let mut copied: Vec<String> = crate::store::sql::copy::TABLES
            .iter()
            .map(|(t, _)| t.to_string())
            // The change counter is each database's own.
            .chain(["objectos_changes".to_string()])
            .collect();
        copied.sort();
        assert_eq!(
            tables, copied,
            "a table the copy does not know (store::sql::copy::TABLES)"
        );
    }

    #[test]
    fn migrations_applied_twice_are_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let backend = SqliteBackend::open(&path, true).unwrap();
        drop(backend);
        let backend = SqliteBackend::open(&path, false).unwrap();
        let store = Store::new(Box::new(backend));
        let v = store.read(|tx| Ok(tx.schema_version()?)).unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
    }

    #[test]
    fn an_older_database_is_migrated_forward_keeping_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let mut conn = Connection::open(&path).unwrap();
            migrate(&mut conn, 1).unwrap();
            conn.execute(
                "INSERT INTO objectos_users (id, email, created_at) VALUES ('u1', 'a@example.com', 'now')",
                [],
            )
            .unwrap();
            let v: i64 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(v, 1);
        }
        let key = RowKey::derive(b"test");
        let store = Store::new(Box::new(SqliteBackend::open(&path, false).unwrap()))
            .with_row_key(key.clone());
        // Rows from before seals read as absent until sealed (as the first
        // open of the instance does).
        let unsealed = store
            .read(|tx| Ok(tx.user_by_email("A@example.com")?))
            .unwrap();
        assert!(unsealed.is_none());
        let sealed = store.write(|tx| Ok(tx.rows_reseal(None, &key)?)).unwrap();
        assert_eq!(sealed, 1);
        let (v, user) = store
            .read(|tx| Ok((tx.schema_version()?, tx.user_by_email("A@example.com")?)))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        assert_eq!(user.unwrap().id, "u1");
        // And the later tables exist.
        store.read(|tx| Ok(tx.settings()?)).unwrap();
    }

    #[test]
    fn a_database_from_a_newer_objectos_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", 999).unwrap();
        }
        assert!(matches!(
            SqliteBackend::open(&path, false),
            Err(StoreError::TooNew { .. })
        ));
    }

    #[test]
    fn audit_rows_cannot_be_updated_or_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(Box::new(
            SqliteBackend::open(&dir.path().join("db"), true).unwrap(),
        ));
        store
            .write(|tx| {
                tx.audit_insert(&AuditRow {
                    seq: 1,
                    id: "a".into(),
                    time: "t".into(),
                    actor: serde_json::json!({"os_user": "x"}),
                    via: "cli".into(),
                    client: None,
                    credential: None,
                    action: "test".into(),
                    object: None,
                    record_id: None,
                    changes: None,
                    outcome: "success".into(),
                    code: None,
                    request_id: None,
                    prev_hash: "0".repeat(64),
                    hash: "1".repeat(64),
                })?;
                Ok(())
            })
            .unwrap();
        drop(store);
        // Behind the tool's back, with a plain connection: the triggers still refuse.
        let conn = Connection::open(dir.path().join("db")).unwrap();
        let update = conn.execute("UPDATE objectos_audit SET action = 'x'", []);
        assert!(update.unwrap_err().to_string().contains("immutable"));
        let delete = conn.execute("DELETE FROM objectos_audit", []);
        assert!(delete.unwrap_err().to_string().contains("immutable"));
    }

    #[test]
    fn every_change_to_identities_grants_credentials_and_shares_bumps_the_counter() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(Box::new(
            SqliteBackend::open(&dir.path().join("db"), true).unwrap(),
        ))
        .with_row_key(RowKey::derive(b"test"));
        let counter = || store.read(|tx| Ok(tx.change_counter()?)).unwrap();
        let mut last = counter();
        let mut bumped = |what: &str, work: &dyn Fn(&mut dyn Tx) -> StoreResult<()>| {
            store.write(|tx| Ok(work(tx)?)).unwrap();
            let now = counter();
            assert!(now > last, "{what} did not bump the change counter");
            last = now;
        };
        bumped("a user", &|tx| tx.user_insert(&user("u1", "a@example.com")));
        bumped("a disabled user", &|tx| tx.user_set_disabled("u1", true));
        bumped("an organization", &|tx| {
            tx.org_insert(&OrgRow {
                id: "o1".into(),
                name: "acme".into(),
                created_at: "t".into(),
            })
        });
        bumped("a membership", &|tx| {
            tx.member_add("u1", "o1", "t").map(|_| ())
        });
        bumped("a team", &|tx| {
            tx.team_insert(&TeamRow {
                id: "t1".into(),
                name: "ops".into(),
                created_at: "t".into(),
            })
        });
        bumped("a team member", &|tx| {
            tx.team_member_add("t1", "u1").map(|_| ())
        });
        bumped("a grant", &|tx| {
            tx.assignment_insert(&AssignmentRow {
                id: "a1".into(),
                user_id: "u1".into(),
                permset: "admin".into(),
                org_id: None,
                valid_until: None,
                created_at: "t".into(),
            })
        });
        bumped("a revoked grant", &|tx| {
            tx.assignment_delete("u1", "admin", None).map(|_| ())
        });
        bumped("a key", &|tx| {
            tx.apikey_insert(&ApiKeyRow {
                id: "k1".into(),
                user_id: "u1".into(),
                org_id: "o1".into(),
                kind: KeyKind::User,
                read_only: false,
                name: None,
                prefix: "osk_".into(),
                hash: "h".into(),
                created_at: "t".into(),
                expires_at: None,
                revoked_at: None,
            })
        });
        bumped("a revoked key", &|tx| {
            tx.apikey_revoke("k1", "t").map(|_| ())
        });
        bumped("a session", &|tx| {
            tx.session_insert(&SessionRow {
                id: "s1".into(),
                user_id: "u1".into(),
                org_id: "o1".into(),
                hash: "sh".into(),
                created_at: "t".into(),
                expires_at: "t".into(),
                revoked_at: None,
            })
        });
        bumped("a share", &|tx| {
            tx.share_insert(&ShareRow {
                id: "sh1".into(),
                object: "x".into(),
                record_id: "r".into(),
                grantee_kind: "user".into(),
                grantee: "u1".into(),
                edit: false,
                created_by: "u1".into(),
                created_at: "t".into(),
            })
        });
        bumped("a setting", &|tx| {
            tx.setting_put(&SettingRow {
                key: "k".into(),
                value: "v".into(),
                secret: false,
                updated_at: "t".into(),
            })
        });
        bumped("an applied artifact", &|tx| {
            tx.artifact_record(&AppliedArtifact {
                seq: 0,
                sha256: "s".into(),
                id: "i".into(),
                version: "1.0.0".into(),
                signer_key_id: "k".into(),
                signer_public_key: None,
                signature: None,
                bytes: b"{}".to_vec(),
                applied_at: "t".into(),
            })
        });
        // Reads and audit rows do not.
        let before = counter();
        store.read(|tx| Ok(tx.users()?)).unwrap();
        assert_eq!(counter(), before);
    }

    #[test]
    fn unique_emails_ignore_case() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(Box::new(
            SqliteBackend::open(&dir.path().join("db"), true).unwrap(),
        ))
        .with_row_key(RowKey::derive(b"test"));
        store
            .write(|tx| Ok(tx.user_insert(&user("1", "a@example.com"))?))
            .unwrap();
        let err = store
            .write(|tx| Ok(tx.user_insert(&user("2", "A@Example.com"))?))
            .unwrap_err();
        assert!(err.to_string().contains("collide"), "{err}");
    }
}
