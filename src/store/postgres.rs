//! The PostgreSQL backend: several instances on one database. The statements
//! are those of `sql.rs`; what is PostgreSQL's own lives here: the connection
//! pool, the schema (migrations tracked in `objectos_schema_migrations`), DDL
//! for the record tables, the guards that keep audit rows immutable (plpgsql
//! triggers), and how values are bound.
//!
//! Write transactions are serialised across every instance by an advisory
//! transaction lock taken first: the audit chain's head is read and extended
//! under it (one chain, no fork, no gap), and every rule that SQLite's single
//! writer gives (a version check and its update, a pending action decided once)
//! holds the same way. Reads run in `REPEATABLE READ READ ONLY` snapshots and
//! scale with the instances.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::time::Duration;

use ::postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use ::postgres::{Client, NoTls, Statement};

use super::sql::{Dialect, Engine, quote, table_of};

pub mod tls;
use super::*;
pub use tls::{RootCert, SslMode, Tls};

/// The key of the advisory lock that serialises write transactions ("objectos").
pub const WRITE_LOCK: i64 = 0x6f62_6a65_6374_6f73;

static POSTGRES: Dialect = Dialect {
    name: "postgres",
    // A unique index on `lower(email)` serves it.
    email_eq: "lower(email) = lower(?1)",
    distinct: "IS DISTINCT FROM",
    like: "ILIKE",
    selective_order: "",
};

/// Record and name columns sort byte-wise, as SQLite's do, whatever the
/// database's default collation: the same query answers in the same order on
/// both backends.
const TEXT: &str = "text COLLATE \"C\"";

/// The migrations, in order. Never edit or remove a shipped one: append.
pub const MIGRATIONS: &[&str] = &[
    // 1: the whole schema of SQLite's migrations 1–6, at once.
    r#"
    CREATE TABLE objectos_meta (
        key text PRIMARY KEY,
        value text NOT NULL
    );
    CREATE TABLE objectos_users (
        id text PRIMARY KEY,
        email text COLLATE "C" NOT NULL,
        name text,
        password_hash text,
        disabled boolean NOT NULL DEFAULT false,
        created_at text NOT NULL
    );
    CREATE UNIQUE INDEX objectos_users_email ON objectos_users (lower(email));
    CREATE TABLE objectos_orgs (
        id text PRIMARY KEY,
        name text COLLATE "C" NOT NULL UNIQUE,
        created_at text NOT NULL
    );
    CREATE TABLE objectos_memberships (
        user_id text NOT NULL REFERENCES objectos_users(id),
        org_id text NOT NULL REFERENCES objectos_orgs(id),
        created_at text NOT NULL,
        PRIMARY KEY (user_id, org_id)
    );
    CREATE TABLE objectos_teams (
        id text PRIMARY KEY,
        name text COLLATE "C" NOT NULL UNIQUE,
        created_at text NOT NULL
    );
    CREATE TABLE objectos_team_members (
        team_id text NOT NULL REFERENCES objectos_teams(id),
        user_id text NOT NULL REFERENCES objectos_users(id),
        PRIMARY KEY (team_id, user_id)
    );
    CREATE INDEX objectos_team_members_user ON objectos_team_members(user_id);
    CREATE TABLE objectos_assignments (
        id text PRIMARY KEY,
        user_id text COLLATE "C" NOT NULL REFERENCES objectos_users(id),
        permset text COLLATE "C" NOT NULL,
        org_id text COLLATE "C" NOT NULL DEFAULT '',
        valid_until text,
        created_at text NOT NULL,
        UNIQUE (user_id, permset, org_id)
    );
    CREATE TABLE objectos_api_keys (
        id text COLLATE "C" PRIMARY KEY,
        user_id text NOT NULL REFERENCES objectos_users(id),
        org_id text NOT NULL REFERENCES objectos_orgs(id),
        kind text NOT NULL CHECK (kind IN ('user', 'agent')),
        read_only boolean NOT NULL DEFAULT false,
        name text,
        prefix text NOT NULL,
        hash text NOT NULL UNIQUE,
        created_at text COLLATE "C" NOT NULL,
        expires_at text,
        revoked_at text
    );
    CREATE TABLE objectos_sessions (
        id text COLLATE "C" PRIMARY KEY,
        user_id text NOT NULL REFERENCES objectos_users(id),
        org_id text NOT NULL REFERENCES objectos_orgs(id),
        hash text NOT NULL UNIQUE,
        created_at text COLLATE "C" NOT NULL,
        expires_at text NOT NULL,
        revoked_at text
    );
    CREATE TABLE objectos_audit (
        seq bigint PRIMARY KEY,
        id text NOT NULL UNIQUE,
        time text COLLATE "C" NOT NULL,
        actor text NOT NULL,
        via text NOT NULL,
        client text,
        credential text,
        action text NOT NULL,
        object text,
        record_id text,
        changes text,
        outcome text NOT NULL,
        code text,
        request_id text,
        prev_hash text NOT NULL,
        hash text NOT NULL
    );
    CREATE INDEX objectos_audit_action ON objectos_audit(action, seq);
    CREATE TABLE objectos_artifacts (
        seq bigserial PRIMARY KEY,
        sha256 text NOT NULL,
        id text NOT NULL,
        version text NOT NULL,
        signer_key_id text NOT NULL,
        bytes bytea NOT NULL,
        applied_at text NOT NULL,
        signature text,
        signer_public_key text
    );
    CREATE TABLE objectos_settings (
        key text COLLATE "C" PRIMARY KEY,
        value text NOT NULL,
        secret boolean NOT NULL DEFAULT false,
        updated_at text NOT NULL
    );
    CREATE TABLE objectos_shares (
        id text PRIMARY KEY,
        object text NOT NULL,
        record_id text NOT NULL,
        grantee_kind text COLLATE "C" NOT NULL CHECK (grantee_kind IN ('user', 'team')),
        grantee text COLLATE "C" NOT NULL,
        edit boolean NOT NULL DEFAULT false,
        created_by text NOT NULL,
        created_at text NOT NULL,
        UNIQUE (object, record_id, grantee_kind, grantee)
    );
    CREATE INDEX objectos_shares_grantee ON objectos_shares(object, grantee_kind, grantee, record_id);
    CREATE TABLE objectos_changes (
        id integer PRIMARY KEY CHECK (id = 1),
        counter bigint NOT NULL
    );
    INSERT INTO objectos_changes (id, counter) VALUES (1, 0);
    CREATE TABLE objectos_signin_throttle (
        key text PRIMARY KEY,
        failures bigint NOT NULL,
        window_start text NOT NULL,
        blocked_until text,
        reported boolean NOT NULL DEFAULT false
    );
    CREATE TABLE objectos_pending_actions (
        id text PRIMARY KEY,
        org_id text NOT NULL,
        kind text NOT NULL,
        status text NOT NULL,
        requester_id text NOT NULL,
        key_id text,
        client text,
        tool text NOT NULL,
        input text NOT NULL,
        object text,
        record_id text,
        before_hash text,
        proposal text NOT NULL,
        created_at text COLLATE "C" NOT NULL,
        expires_at text COLLATE "C" NOT NULL,
        decided_by text,
        decided_at text,
        reason text,
        result text
    );
    CREATE INDEX objectos_pending_org ON objectos_pending_actions(org_id, status, created_at);
    CREATE INDEX objectos_pending_key ON objectos_pending_actions(key_id, status);
    CREATE INDEX objectos_pending_requester ON objectos_pending_actions(requester_id, status);
    CREATE TABLE objectos_audit_anchors (
        last_seq bigint PRIMARY KEY,
        first_seq bigint NOT NULL,
        first_prev_hash text NOT NULL,
        last_hash text NOT NULL,
        count bigint NOT NULL,
        archive_sha256 text NOT NULL,
        archived_at text NOT NULL,
        last_artifact_apply text,
        removing boolean NOT NULL DEFAULT true
    );
    "#,
    // 2: the assistant's conversations and messages (SQLite's migration 7).
    r#"
    CREATE TABLE objectos_assistant_conversations (
        id text PRIMARY KEY,
        user_id text NOT NULL,
        org_id text NOT NULL,
        title text,
        tools text NOT NULL,
        created_at text NOT NULL,
        updated_at text NOT NULL
    );
    CREATE INDEX objectos_assistant_conversations_user
        ON objectos_assistant_conversations (user_id, org_id, updated_at);
    CREATE TABLE objectos_assistant_messages (
        conversation_id text NOT NULL REFERENCES objectos_assistant_conversations (id),
        idx bigint NOT NULL,
        role text NOT NULL,
        body text NOT NULL,
        sha256 text NOT NULL,
        audit_seq bigint NOT NULL,
        created_at text NOT NULL,
        response bytea,
        PRIMARY KEY (conversation_id, idx)
    );
    "#,
    // 3: a seal on every row that grants power (SQLite's migration 8; see
    // `sql::seal`).
    super::sql::seal::MIGRATION,
    // 4: the version of the record a pending action was proposed against
    // (SQLite's migration 9).
    "ALTER TABLE objectos_pending_actions ADD COLUMN before_version bigint;",
];

/// The tables whose every change bumps the change counter (caches key on it).
const COUNTED: [&str; 12] = [
    "objectos_users",
    "objectos_orgs",
    "objectos_memberships",
    "objectos_teams",
    "objectos_team_members",
    "objectos_assignments",
    "objectos_api_keys",
    "objectos_sessions",
    "objectos_shares",
    "objectos_artifacts",
    "objectos_settings",
    "objectos_meta",
];

/// The trigger functions that make audit rows, anchors and applied artifacts
/// immutable, exactly as objectos makes them (name, body). The anchor
/// mechanism is SQLite's (see `sqlite/anchors.rs`): rows leave the audit
/// table only in the statement that writes the anchor naming them.
const GUARD_FUNCTIONS: [(&str, &str); 6] = [
    (
        "objectos_audit_guard",
        "BEGIN
            IF TG_OP = 'INSERT' THEN
                IF NEW.seq <= (SELECT coalesce(max(seq), 0) FROM objectos_audit)
                   OR EXISTS (SELECT 1 FROM objectos_audit WHERE id = NEW.id) THEN
                    RAISE EXCEPTION 'audit rows are immutable: rows are only appended';
                END IF;
                RETURN NEW;
            ELSIF TG_OP = 'DELETE' THEN
                IF NOT EXISTS (SELECT 1 FROM objectos_audit_anchors
                               WHERE removing AND OLD.seq BETWEEN first_seq AND last_seq) THEN
                    RAISE EXCEPTION 'audit rows are immutable: only `objectos audit archive` removes them, together with their anchor';
                END IF;
                RETURN OLD;
            END IF;
            RAISE EXCEPTION 'audit rows are immutable';
        END",
    ),
    (
        "objectos_immutable",
        "BEGIN
            RAISE EXCEPTION '% rows are immutable', TG_TABLE_NAME;
        END",
    ),
    (
        "objectos_audit_anchor_check",
        "BEGIN
            IF NEW.removing IS NOT TRUE
               OR NEW.first_seq IS DISTINCT FROM coalesce((SELECT max(last_seq) FROM objectos_audit_anchors), 0) + 1
               OR NEW.last_seq < NEW.first_seq
               OR NEW.count IS DISTINCT FROM NEW.last_seq - NEW.first_seq + 1
               OR NEW.last_seq >= (SELECT coalesce(max(seq), 0) FROM objectos_audit)
               OR (SELECT count(*) FROM objectos_audit WHERE seq BETWEEN NEW.first_seq AND NEW.last_seq) IS DISTINCT FROM NEW.count
               OR NOT EXISTS (SELECT 1 FROM objectos_audit WHERE seq = NEW.first_seq AND prev_hash = NEW.first_prev_hash)
               OR NOT EXISTS (SELECT 1 FROM objectos_audit WHERE seq = NEW.last_seq AND hash = NEW.last_hash)
               OR NEW.last_artifact_apply IS DISTINCT FROM coalesce(
                    (SELECT record_id FROM objectos_audit WHERE action = 'artifact.apply' AND outcome = 'success' AND seq <= NEW.last_seq ORDER BY seq DESC LIMIT 1),
                    (SELECT last_artifact_apply FROM objectos_audit_anchors ORDER BY last_seq DESC LIMIT 1)) THEN
                RAISE EXCEPTION 'audit rows are immutable: an anchor must name exactly the oldest rows, whole, with their hashes, and leave the newest';
            END IF;
            RETURN NEW;
        END",
    ),
    (
        "objectos_audit_anchor_remove",
        "BEGIN
            DELETE FROM objectos_audit WHERE seq BETWEEN NEW.first_seq AND NEW.last_seq;
            UPDATE objectos_audit_anchors SET removing = false WHERE last_seq = NEW.last_seq;
            RETURN NULL;
        END",
    ),
    (
        "objectos_audit_anchor_update",
        "BEGIN
            IF NOT (OLD.removing AND NOT NEW.removing
                    AND NEW.first_seq = OLD.first_seq AND NEW.last_seq = OLD.last_seq
                    AND NEW.first_prev_hash = OLD.first_prev_hash AND NEW.last_hash = OLD.last_hash
                    AND NEW.count = OLD.count AND NEW.archive_sha256 = OLD.archive_sha256
                    AND NEW.archived_at = OLD.archived_at
                    AND NEW.last_artifact_apply IS NOT DISTINCT FROM OLD.last_artifact_apply) THEN
                RAISE EXCEPTION 'audit anchors are immutable';
            END IF;
            RETURN NEW;
        END",
    ),
    (
        "objectos_count_change",
        "BEGIN
            UPDATE objectos_changes SET counter = counter + 1 WHERE id = 1;
            RETURN NULL;
        END",
    ),
];

/// The guard triggers: (name, table, the rest of `CREATE TRIGGER name …`).
const GUARD_TRIGGERS: [(&str, &str, &str); 9] = [
    (
        "objectos_audit_guard",
        "objectos_audit",
        "BEFORE INSERT OR UPDATE OR DELETE ON objectos_audit FOR EACH ROW EXECUTE FUNCTION objectos_audit_guard()",
    ),
    (
        "objectos_audit_no_truncate",
        "objectos_audit",
        "BEFORE TRUNCATE ON objectos_audit FOR EACH STATEMENT EXECUTE FUNCTION objectos_immutable()",
    ),
    (
        "objectos_artifacts_immutable",
        "objectos_artifacts",
        "BEFORE UPDATE OR DELETE ON objectos_artifacts FOR EACH ROW EXECUTE FUNCTION objectos_immutable()",
    ),
    (
        "objectos_artifacts_no_truncate",
        "objectos_artifacts",
        "BEFORE TRUNCATE ON objectos_artifacts FOR EACH STATEMENT EXECUTE FUNCTION objectos_immutable()",
    ),
    (
        "objectos_count_artifacts",
        "objectos_artifacts",
        "AFTER INSERT OR UPDATE OR DELETE ON objectos_artifacts FOR EACH STATEMENT EXECUTE FUNCTION objectos_count_change()",
    ),
    (
        "objectos_audit_anchor_check",
        "objectos_audit_anchors",
        "BEFORE INSERT ON objectos_audit_anchors FOR EACH ROW EXECUTE FUNCTION objectos_audit_anchor_check()",
    ),
    (
        "objectos_audit_anchor_remove",
        "objectos_audit_anchors",
        "AFTER INSERT ON objectos_audit_anchors FOR EACH ROW EXECUTE FUNCTION objectos_audit_anchor_remove()",
    ),
    (
        "objectos_audit_anchor_update",
        "objectos_audit_anchors",
        "BEFORE UPDATE ON objectos_audit_anchors FOR EACH ROW EXECUTE FUNCTION objectos_audit_anchor_update()",
    ),
    (
        "objectos_audit_anchor_no_delete",
        "objectos_audit_anchors",
        "BEFORE DELETE OR TRUNCATE ON objectos_audit_anchors FOR EACH STATEMENT EXECUTE FUNCTION objectos_immutable()",
    ),
];

fn squash_whitespace(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The SQL that (re)makes every guard function and trigger.
fn guards_sql() -> String {
    let mut sql = String::new();
    for (name, body) in GUARD_FUNCTIONS {
        sql.push_str(&format!(
            "CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $f${body}$f$;\n"
        ));
    }
    for (name, table, rest) in GUARD_TRIGGERS {
        sql.push_str(&format!(
            "DROP TRIGGER IF EXISTS {name} ON {table};\nCREATE TRIGGER {name} {rest};\n"
        ));
    }
    for table in COUNTED {
        if table == "objectos_artifacts" {
            continue;
        }
        sql.push_str(&format!(
            "DROP TRIGGER IF EXISTS objectos_count_change ON {table};\nCREATE TRIGGER objectos_count_change AFTER INSERT OR UPDATE OR DELETE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION objectos_count_change();\n"
        ));
    }
    sql
}

/// The tables whose triggers are all objectos's own.
const GUARDED_TABLES: [&str; 3] = [
    "objectos_audit",
    "objectos_artifacts",
    "objectos_audit_anchors",
];

/// A connection and the statements it has prepared.
pub struct PgConn {
    client: Client,
    /// Statements on objectos's own tables, whose shape only a migration
    /// changes; statements on record tables are prepared each time, since an
    /// apply through another instance may change a table under them.
    prepared: HashMap<String, Statement>,
}

/// Where and how to connect: the driver's settings and TLS.
#[derive(Clone)]
pub struct Connect {
    pub config: ::postgres::Config,
    pub tls: Tls,
}

/// Opens connections for the pool, each in UTC.
#[derive(Clone)]
struct Manager {
    config: ::postgres::Config,
    /// `None`: no TLS (`sslmode=disable`).
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl Manager {
    fn new(connect: Connect) -> StoreResult<Manager> {
        let tls = connect
            .tls
            .client_config()
            .map_err(|e| StoreError::CannotOpen(format!("TLS to PostgreSQL: {e}")))?
            .map(tokio_postgres_rustls::MakeRustlsConnect::new);
        Ok(Manager {
            config: connect.config,
            tls,
        })
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = PgConn;
    type Error = ::postgres::Error;

    fn connect(&self) -> Result<PgConn, ::postgres::Error> {
        let mut client = match &self.tls {
            Some(tls) => self.config.connect(tls.clone())?,
            None => self.config.connect(NoTls)?,
        };
        client.batch_execute("SET TIME ZONE 'UTC'; SET client_min_messages = warning")?;
        Ok(PgConn {
            client,
            prepared: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut PgConn) -> Result<(), ::postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.client.is_closed()
    }
}

/// Work done in the transaction that creates the schema (the instance's rows).
pub type Setup<'a> = &'a mut dyn FnMut(&mut dyn Tx) -> anyhow::Result<()>;

pub struct PgBackend {
    /// Always `Some` but while being dropped.
    pool: Option<r2d2::Pool<Manager>>,
}

impl Drop for PgBackend {
    /// Closing a connection blocks on the driver's runtime: done outside the
    /// server's (a server drops its store inside its runtime).
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            blocking(move || drop(pool));
        }
    }
}

/// Where a connection goes, for messages (never a password).
pub fn describe(config: &::postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            ::postgres::config::Host::Tcp(name) => name.clone(),
            ::postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        config.get_user().unwrap_or("?"),
        config.get_dbname().unwrap_or("?")
    )
}

/// The error of a failed connection, with the cause named.
pub fn connect_error(config: &::postgres::Config, e: &::postgres::Error) -> StoreError {
    let target = describe(config);
    if let Some(db) = e.as_db_error() {
        use ::postgres::error::SqlState;
        let code = db.code();
        let why = if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            "wrong credentials"
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            "no such database"
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            "the role may not connect"
        } else {
            "refused"
        };
        return StoreError::CannotOpen(format!(
            "PostgreSQL at `{target}`: {why}: {}",
            db.message()
        ));
    }
    let cause = e
        .source()
        .map(|s| s.to_string())
        .unwrap_or_else(|| e.to_string());
    let text = format!("{e} {cause}");
    if text.contains("TLS") || text.contains("certificate") || text.contains("tls") {
        return StoreError::CannotOpen(format!(
            "no TLS connection to PostgreSQL at `{target}`: {cause}"
        ));
    }
    StoreError::CannotOpen(format!("cannot reach PostgreSQL at `{target}`: {cause}"))
}

/// PostgreSQL's text cannot hold the NUL character (SQLite's can): a value
/// with one is refused as bad input, before the server answers with an error.
fn refuse_nul(params: &[SqlValue]) -> StoreResult<()> {
    if params
        .iter()
        .any(|p| matches!(p, SqlValue::Text(t) if t.contains('\0')))
    {
        return Err(StoreError::NulInText);
    }
    Ok(())
}

fn map_err(e: ::postgres::Error) -> StoreError {
    use ::postgres::error::SqlState;
    let Some(db) = e.as_db_error() else {
        if e.is_closed() {
            return StoreError::CannotOpen(format!("the connection to PostgreSQL closed: {e}"));
        }
        return StoreError::Backend(e.to_string());
    };
    let message = db.message().to_string();
    let code = db.code();
    if message.contains("immutable") {
        StoreError::Immutable(message)
    } else if *code == SqlState::UNIQUE_VIOLATION {
        // As SQLite names them: `table.column, table.column` (never the values).
        let table = db.table().unwrap_or("");
        let columns = db
            .detail()
            .and_then(|d| d.strip_prefix("Key ("))
            .and_then(|d| d.split(")=(").next())
            .map(|cols| {
                cols.split(", ")
                    .map(|c| format!("{table}.{}", c.trim_matches('"')))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|| db.constraint().unwrap_or("").to_string());
        StoreError::Unique(columns)
    } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        StoreError::Backend(format!(
            "{message} (the role objectos connects as lacks a privilege; see `objectos init`'s GRANTs)"
        ))
    } else if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
        StoreError::ReadOnly
    } else if *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
    {
        StoreError::Busy
    } else {
        StoreError::Backend(format!("PostgreSQL: {message}"))
    }
}

trait Pg<T> {
    fn db(self) -> StoreResult<T>;
}

impl<T> Pg<T> for Result<T, ::postgres::Error> {
    fn db(self) -> StoreResult<T> {
        self.map_err(map_err)
    }
}

/// Apply the migrations not yet applied, in the caller's transaction. The
/// version is read first without a lock (every command opens the database,
/// and the runtime's role may not create tables); only a migration takes the
/// write lock (instances starting at once migrate once) and reads it again.
fn migrate(client: &mut Client) -> StoreResult<bool> {
    let known = MIGRATIONS.len() as i64;
    let version = current_version(client)?;
    if version > known {
        return Err(StoreError::TooNew {
            found: version,
            known,
        });
    }
    if version == known {
        return Ok(false);
    }
    client
        .batch_execute(&format!(
            "SELECT pg_advisory_xact_lock({WRITE_LOCK});
             CREATE TABLE IF NOT EXISTS objectos_schema_migrations (
                 version bigint PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );"
        ))
        .db()?;
    let version = current_version(client)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        client.batch_execute(sql).db()?;
        client
            .execute(
                "INSERT INTO objectos_schema_migrations (version) VALUES ($1)",
                &[&((i + 1) as i64)],
            )
            .db()?;
    }
    if version < known {
        client.batch_execute(&guards_sql()).db()?;
    }
    Ok(true)
}

fn current_version(client: &mut Client) -> StoreResult<i64> {
    let row = client
        .query_one(
            "SELECT to_regclass('objectos_schema_migrations') IS NOT NULL",
            &[],
        )
        .db()?;
    if !row.get::<_, bool>(0) {
        return Ok(0);
    }
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM objectos_schema_migrations",
            &[],
        )
        .db()?;
    Ok(row.get(0))
}

/// What the runtime's role may do, granted by the owner: read and write
/// everything but audit rows, anchors and applied artifacts, which it may only
/// read and append to (archiving and applying run as the owner); tables the
/// owner makes later (records, migrations) the same. The role comes in as a
/// setting, never spliced into the SQL.
fn grant_runtime(client: &mut Client, role: &str) -> StoreResult<()> {
    client
        .execute(
            "SELECT set_config('objectos.runtime_role', $1, true)",
            &[&role],
        )
        .db()?;
    client
        .batch_execute(
            "DO $grant$
             DECLARE
                 s text := current_schema();
                 r text := current_setting('objectos.runtime_role');
             BEGIN
                 EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', s, r);
                 EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I', s, r);
                 EXECUTE format('GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %I TO %I', s, r);
                 EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I', s, r);
                 EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO %I', s, r);
                 EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON objectos_audit, objectos_artifacts, objectos_audit_anchors FROM %I', r);
                 EXECUTE format('REVOKE INSERT ON objectos_artifacts, objectos_audit_anchors FROM %I', r);
             END
             $grant$",
        )
        .db()
}

/// Whether the database already holds objectos's tables.
fn has_schema(client: &mut Client) -> StoreResult<bool> {
    let row = client
        .query_one(
            "SELECT to_regclass('objectos_meta') IS NOT NULL OR to_regclass('objectos_schema_migrations') IS NOT NULL",
            &[],
        )
        .db()?;
    Ok(row.get(0))
}

impl PgBackend {
    /// Connect and check the schema: an empty database when `create` (made in
    /// the same transaction as `setup`, so that a failure leaves nothing);
    /// otherwise one at this build's version, migrated forward if older.
    pub fn open(
        connect: Connect,
        create: bool,
        setup: Option<Setup<'_>>,
    ) -> anyhow::Result<PgBackend> {
        blocking(|| PgBackend::open_here(connect, create, setup, None))
    }

    /// Connect once, and nothing more: that the role reaches the database.
    pub fn check_connect(connect: Connect) -> anyhow::Result<()> {
        blocking(|| {
            let manager = Manager::new(connect)?;
            r2d2::ManageConnection::connect(&manager)
                .map(drop)
                .map_err(|e| connect_error(&manager.config, &e).into())
        })
    }

    /// As `open`, connected as the role that owns the schema (the
    /// administrative URL): whenever it makes or migrates tables, it grants
    /// `runtime_role` what the runtime needs and nothing that alters audit
    /// rows, in the same transaction.
    pub fn open_as_owner(
        connect: Connect,
        create: bool,
        setup: Option<Setup<'_>>,
        runtime_role: &str,
    ) -> anyhow::Result<PgBackend> {
        blocking(|| PgBackend::open_here(connect, create, setup, Some(runtime_role)))
    }

    fn open_here(
        connect: Connect,
        create: bool,
        setup: Option<Setup<'_>>,
        grant_to: Option<&str>,
    ) -> anyhow::Result<PgBackend> {
        let manager = Manager::new(connect)?;
        let mut conn = r2d2::ManageConnection::connect(&manager)
            .map_err(|e| connect_error(&manager.config, &e))?;
        {
            let client = &mut conn.client;
            client.batch_execute("BEGIN").db()?;
            let outcome = (|| -> anyhow::Result<()> {
                let exists = has_schema(client)?;
                if create && exists {
                    return Err(StoreError::Backend(format!(
                        "the database `{}` already holds objectos tables (another instance's, or an earlier init's)",
                        describe(&manager.config)
                    ))
                    .into());
                }
                if !create && !exists {
                    return Err(StoreError::Corrupt(format!(
                        "the database `{}` holds no objectos tables",
                        describe(&manager.config)
                    ))
                    .into());
                }
                let migrated = migrate(client)?;
                if let Some(role) = grant_to
                    && (create || migrated)
                {
                    grant_runtime(client, role)?;
                }
                if let Some(setup) = setup {
                    let mut tx = PgTx {
                        conn: &mut conn_parts(client),
                        failed: false,
                        key: None,
                    };
                    setup(&mut tx)?;
                }
                Ok(())
            })();
            match outcome {
                Ok(()) => client.batch_execute("COMMIT").db()?,
                Err(e) => {
                    let _ = client.batch_execute("ROLLBACK");
                    return Err(e);
                }
            }
        }
        let pool = r2d2::Pool::builder()
            .max_size(8)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(15))
            .build_unchecked(manager);
        Ok(PgBackend { pool: Some(pool) })
    }

    /// The server's version and settings, for `doctor`.
    pub fn server_info(&self) -> anyhow::Result<Vec<(String, String)>> {
        blocking(|| self.server_info_here())
    }

    fn server_info_here(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut conn = self.connection()?;
        let mut out = Vec::new();
        for (label, sql) in [
            ("server version", "SELECT current_setting('server_version')"),
            ("role", "SELECT current_user::text"),
            ("database", "SELECT current_database()::text"),
            (
                "connection encrypted",
                "SELECT coalesce((SELECT CASE WHEN ssl THEN 'yes' ELSE 'no' END FROM pg_stat_ssl WHERE pid = pg_backend_pid()), 'unknown')",
            ),
            (
                "role is superuser",
                "SELECT CASE WHEN rolsuper THEN 'yes' ELSE 'no' END FROM pg_roles WHERE rolname = current_user",
            ),
            (
                "role owns the audit table",
                "SELECT CASE WHEN pg_get_userbyid(relowner) = current_user THEN 'yes' ELSE 'no' END FROM pg_class WHERE oid = to_regclass('objectos_audit')",
            ),
            (
                "role may update audit rows",
                "SELECT CASE WHEN has_table_privilege('objectos_audit', 'UPDATE') OR has_table_privilege('objectos_audit', 'DELETE') OR has_table_privilege('objectos_audit', 'TRUNCATE') THEN 'yes' ELSE 'no' END",
            ),
        ] {
            let row = conn.client.query_one(sql, &[]).db()?;
            out.push((label.to_string(), row.get::<_, String>(0)));
        }
        Ok(out)
    }

    fn connection(&self) -> StoreResult<r2d2::PooledConnection<Manager>> {
        self.pool
            .as_ref()
            .ok_or_else(|| StoreError::CannotOpen("the connection pool is closed".into()))?
            .get()
            .map_err(|e| StoreError::CannotOpen(format!("no connection to PostgreSQL: {e}")))
    }
}

/// A connection borrowed for the one transaction of `open`.
fn conn_parts(client: &mut Client) -> Borrowed<'_> {
    Borrowed {
        client,
        prepared: None,
    }
}

struct Borrowed<'c> {
    client: &'c mut Client,
    prepared: Option<&'c mut HashMap<String, Statement>>,
}

/// Run `f`, which blocks on the driver's own runtime, also when called from a
/// task of the server's runtime (the driver would refuse to nest runtimes).
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread => {
            f()
        }
        _ => tokio::task::block_in_place(f),
    }
}

impl Backend for PgBackend {
    fn transaction(
        &self,
        mode: Mode,
        key: Option<&RowKey>,
        work: &mut dyn FnMut(&mut dyn Tx) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        blocking(|| self.transaction_here(mode, key, work))
    }
}

impl PgBackend {
    fn transaction_here(
        &self,
        mode: Mode,
        key: Option<&RowKey>,
        work: &mut dyn FnMut(&mut dyn Tx) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut conn = self.connection()?;
        let conn = &mut *conn;
        let begin = match mode {
            Mode::Write | Mode::WriteThenRead => format!(
                "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock({WRITE_LOCK})"
            ),
            Mode::Read | Mode::Peek | Mode::Scan => {
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY".into()
            }
        };
        conn.client.batch_execute(&begin).db()?;
        let (result, failed) = {
            let mut parts = Borrowed {
                client: &mut conn.client,
                prepared: Some(&mut conn.prepared),
            };
            let mut tx = PgTx {
                conn: &mut parts,
                failed: false,
                key,
            };
            let result = work(&mut tx);
            (result, tx.failed)
        };
        match result {
            Ok(()) if failed => {
                // A statement failed and the work went on: PostgreSQL has
                // aborted the transaction, and a COMMIT would roll it back
                // quietly. Say so instead of answering as if it were written.
                let _ = conn.client.batch_execute("ROLLBACK");
                Err(StoreError::Backend(
                    "a statement failed inside the transaction, which was rolled back".into(),
                )
                .into())
            }
            Ok(()) => {
                conn.client.batch_execute("COMMIT").db()?;
                Ok(())
            }
            Err(e) => {
                let _ = conn.client.batch_execute("ROLLBACK");
                Err(e)
            }
        }
    }
}

pub struct PgTx<'a, 'c> {
    conn: &'a mut Borrowed<'c>,
    failed: bool,
    key: Option<&'a RowKey>,
}

/// `?1` and `?` placeholders as PostgreSQL's `$1`, outside quotes.
fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut next = 0;
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                out.push('$');
                if digits.is_empty() {
                    next += 1;
                    out.push_str(&next.to_string());
                } else {
                    out.push_str(&digits);
                }
            }
            (None, c) => out.push(c),
        }
    }
    out
}

/// A value bound as the parameter's own type: SQLite's integer flags as
/// booleans, numbers as the column's numeric type.
struct Param<'a>(&'a SqlValue);

impl std::fmt::Debug for Param<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may be secrets' ciphertexts or personal data: never printed.
        f.write_str("Param")
    }
}

type BoxError = Box<dyn StdError + Sync + Send>;

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        let mismatch =
            |what: &str| -> BoxError { format!("cannot bind {what} to a {ty} parameter").into() };
        match self.0 {
            SqlValue::Null => Ok(IsNull::Yes),
            SqlValue::Integer(i) => match *ty {
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT8 => i.to_sql(ty, out),
                Type::FLOAT4 => (*i as f32).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::UNKNOWN | Type::BPCHAR => {
                    i.to_string().as_str().to_sql(ty, out)
                }
                _ => Err(mismatch("an integer")),
            },
            SqlValue::Real(r) => match *ty {
                Type::FLOAT8 => r.to_sql(ty, out),
                Type::FLOAT4 => (*r as f32).to_sql(ty, out),
                Type::INT8 if r.fract() == 0.0 => (*r as i64).to_sql(ty, out),
                Type::INT4 if r.fract() == 0.0 => i32::try_from(*r as i64)?.to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::UNKNOWN | Type::BPCHAR => {
                    r.to_string().as_str().to_sql(ty, out)
                }
                _ => Err(mismatch("a number")),
            },
            SqlValue::Text(t) => match *ty {
                Type::BYTEA => t.as_bytes().to_sql(ty, out),
                Type::BOOL => match t.as_str() {
                    "true" | "1" => true.to_sql(ty, out),
                    "false" | "0" => false.to_sql(ty, out),
                    _ => Err(mismatch("text")),
                },
                Type::FLOAT8 => t.parse::<f64>()?.to_sql(ty, out),
                Type::INT8 => t.parse::<i64>()?.to_sql(ty, out),
                _ => t.as_str().to_sql(ty, out),
            },
            SqlValue::Blob(b) => match *ty {
                Type::BYTEA => b.as_slice().to_sql(ty, out),
                _ => String::from_utf8_lossy(b).as_ref().to_sql(ty, out),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A column read back as one of the values SQLite would give.
struct Cell(SqlValue);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Cell, BoxError> {
        Ok(Cell(match *ty {
            Type::BOOL => SqlValue::Integer(i64::from(bool::from_sql(ty, raw)?)),
            Type::INT2 => SqlValue::Integer(i64::from(i16::from_sql(ty, raw)?)),
            Type::INT4 => SqlValue::Integer(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT8 => SqlValue::Integer(i64::from_sql(ty, raw)?),
            Type::OID => SqlValue::Integer(i64::from(u32::from_sql(ty, raw)?)),
            Type::FLOAT4 => SqlValue::Real(f64::from(f32::from_sql(ty, raw)?)),
            Type::FLOAT8 => SqlValue::Real(f64::from_sql(ty, raw)?),
            Type::BYTEA => SqlValue::Blob(raw.to_vec()),
            _ => SqlValue::Text(String::from_utf8(raw.to_vec())?),
        }))
    }

    fn from_sql_null(_: &Type) -> Result<Cell, BoxError> {
        Ok(Cell(SqlValue::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

impl PgTx<'_, '_> {
    fn statement(&mut self, sql: &str) -> StoreResult<Statement> {
        let cacheable = !sql.contains("\"rec_");
        if cacheable
            && let Some(cache) = self.conn.prepared.as_deref()
            && let Some(stmt) = cache.get(sql)
        {
            return Ok(stmt.clone());
        }
        let stmt = self
            .conn
            .client
            .prepare(&placeholders(sql))
            .map_err(|e| self.fail(e))?;
        if cacheable && let Some(cache) = self.conn.prepared.as_deref_mut() {
            if cache.len() > 512 {
                cache.clear();
            }
            cache.insert(sql.to_string(), stmt.clone());
        }
        Ok(stmt)
    }

    fn fail(&mut self, e: ::postgres::Error) -> StoreError {
        self.failed = true;
        map_err(e)
    }

    fn batch(&mut self, sql: &str) -> StoreResult<()> {
        self.conn
            .client
            .batch_execute(sql)
            .map_err(|e| self.fail(e))
    }

    fn strings(&mut self, sql: &str, params: &[SqlValue]) -> StoreResult<Vec<String>> {
        Ok(self
            .rows(sql, params)?
            .into_iter()
            .filter_map(|r| match r.into_iter().next() {
                Some(SqlValue::Text(t)) => Some(t),
                _ => None,
            })
            .collect())
    }
}

fn column_type(storage: Storage) -> &'static str {
    match storage {
        Storage::Number => "double precision",
        Storage::Boolean => "boolean",
        _ => TEXT,
    }
}

impl Engine for PgTx<'_, '_> {
    fn dialect(&self) -> &'static Dialect {
        &POSTGRES
    }

    fn rows(&mut self, sql: &str, params: &[SqlValue]) -> StoreResult<Vec<Vec<SqlValue>>> {
        refuse_nul(params)?;
        let stmt = self.statement(sql)?;
        let bound: Vec<Param<'_>> = params.iter().map(Param).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|p| p as _).collect();
        let rows = self
            .conn
            .client
            .query(&stmt, &refs)
            .map_err(|e| self.fail(e))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut values = Vec::with_capacity(row.len());
            for i in 0..row.len() {
                let cell: Cell = row.try_get(i).map_err(|e| self.fail(e))?;
                values.push(cell.0);
            }
            out.push(values);
        }
        Ok(out)
    }

    fn exec(&mut self, sql: &str, params: &[SqlValue]) -> StoreResult<usize> {
        refuse_nul(params)?;
        let stmt = self.statement(sql)?;
        let bound: Vec<Param<'_>> = params.iter().map(Param).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|p| p as _).collect();
        let n = self
            .conn
            .client
            .execute(&stmt, &refs)
            .map_err(|e| self.fail(e))?;
        Ok(n as usize)
    }

    fn lock_audit_head(&mut self) -> StoreResult<()> {
        // Write transactions hold the write lock from their first statement;
        // a read only reads the head of its snapshot.
        Ok(())
    }

    /// Dates are stored `YYYY-MM-DD` and date-times as RFC 3339 text with any
    /// offset: read as `timestamptz` in UTC (the session's zone). A leap
    /// second `:60` is read as `:59`, in the same bucket (as on SQLite).
    fn row_key(&self) -> Option<&RowKey> {
        self.key
    }

    fn group_expr(&self, key: &GroupKey) -> String {
        let column = quote(&key.field);
        let Some(granularity) = key.granularity else {
            return column;
        };
        let t = format!(
            "(CASE WHEN substr({column}, 18, 2) = '60' \
             THEN substr({column}, 1, 17) || '59' || substr({column}, 20) ELSE {column} END)::timestamptz"
        );
        let pattern = match granularity {
            DateGranularity::Day => "YYYY-MM-DD",
            DateGranularity::Month => "YYYY-MM",
            DateGranularity::Year => "YYYY",
            DateGranularity::Quarter => "YYYY-\"Q\"Q",
            DateGranularity::Week => "IYYY-\"W\"IW",
        };
        format!("to_char({t}, '{pattern}')")
    }

    fn schema_apply(&mut self, changes: &[SchemaChange]) -> StoreResult<()> {
        for change in changes {
            match change {
                SchemaChange::CreateTable { object, columns } => {
                    let mut cols = vec![
                        format!("\"id\" {TEXT} PRIMARY KEY"),
                        format!("\"owner_id\" {TEXT}"),
                        format!("\"organization_id\" {TEXT} NOT NULL"),
                        format!("\"created_by\" {TEXT}"),
                        format!("\"created_at\" {TEXT} NOT NULL"),
                        format!("\"updated_by\" {TEXT}"),
                        format!("\"updated_at\" {TEXT} NOT NULL"),
                        "\"row_version\" bigint NOT NULL DEFAULT 1".to_string(),
                    ];
                    for c in columns {
                        cols.push(format!("{} {}", quote(&c.name), column_type(c.storage)));
                    }
                    self.batch(&format!(
                        "CREATE TABLE {} ({})",
                        table_of(object),
                        cols.join(", ")
                    ))?;
                }
                SchemaChange::AddColumn { object, column } => {
                    self.batch(&format!(
                        "ALTER TABLE {} ADD COLUMN {} {}",
                        table_of(object),
                        quote(&column.name),
                        column_type(column.storage)
                    ))?;
                }
                SchemaChange::DropColumn { object, column } => {
                    self.batch(&format!(
                        "ALTER TABLE {} DROP COLUMN {}",
                        table_of(object),
                        quote(column)
                    ))?;
                }
                SchemaChange::DropTable { object } => {
                    self.batch(&format!("DROP TABLE {}", table_of(object)))?;
                }
                SchemaChange::SetIndexes { object, indexes } => {
                    for name in Engine::record_index_names(self, object)? {
                        self.batch(&format!("DROP INDEX {}", quote(&name)))?;
                    }
                    for index in indexes {
                        let cols: Vec<String> = index.columns.iter().map(|c| quote(c)).collect();
                        self.batch(&format!(
                            "CREATE {}INDEX {} ON {} ({})",
                            if index.unique { "UNIQUE " } else { "" },
                            quote(&index.name),
                            table_of(object),
                            cols.join(", ")
                        ))?;
                    }
                }
            }
        }
        Ok(())
    }

    fn record_index_names(&mut self, object: &str) -> StoreResult<Vec<String>> {
        // The indexes objectos made: not the primary key's.
        self.strings(
            "SELECT i.relname::text FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
             WHERE x.indrelid = to_regclass(quote_ident(?1)) AND NOT x.indisprimary ORDER BY 1",
            &[SqlValue::Text(format!("rec_{object}"))],
        )
    }

    fn audit_guards_missing(&mut self) -> StoreResult<Vec<String>> {
        let mut missing = Vec::new();
        for (name, body) in GUARD_FUNCTIONS {
            let found = self.strings(
                "SELECT prosrc FROM pg_proc WHERE proname = ?1 AND pronamespace = current_schema()::regnamespace",
                &[name.into()],
            )?;
            let intact = found
                .first()
                .is_some_and(|src| squash_whitespace(src) == squash_whitespace(body));
            if !intact {
                missing.push(format!("{name}()"));
            }
        }
        // Each guard present, enabled, and calling its function.
        let mut expected: Vec<(String, String)> = GUARD_TRIGGERS
            .iter()
            .map(|(name, table, _)| (name.to_string(), table.to_string()))
            .collect();
        for table in COUNTED {
            if table != "objectos_artifacts" {
                expected.push(("objectos_count_change".into(), table.to_string()));
            }
        }
        for (name, table) in &expected {
            let found = self.strings(
                "SELECT t.tgenabled::text FROM pg_trigger t WHERE t.tgname = ?1 AND t.tgrelid = to_regclass(?2) AND NOT t.tgisinternal",
                &[name.into(), table.into()],
            )?;
            if found.first().map(String::as_str) != Some("O")
                && found.first().map(String::as_str) != Some("A")
            {
                missing.push(
                    if table == "objectos_audit" || !name.starts_with("objectos_count") {
                        name.clone()
                    } else {
                        format!("{name} on {table}")
                    },
                );
            }
        }
        // Someone else's trigger on a guarded table can drop or rewrite rows:
        // it is tampering too.
        for table in GUARDED_TABLES {
            let names = self.strings(
                "SELECT tgname::text FROM pg_trigger WHERE tgrelid = to_regclass(?1) AND NOT tgisinternal ORDER BY 1",
                &[table.into()],
            )?;
            for name in names {
                if !expected.iter().any(|(n, t)| *n == name && t == table) {
                    missing.push(format!("{name} (not objectos's)"));
                }
            }
        }
        Ok(missing)
    }

    fn audit_guards_restore(&mut self) -> StoreResult<()> {
        for table in GUARDED_TABLES {
            let names = self.strings(
                "SELECT tgname::text FROM pg_trigger WHERE tgrelid = to_regclass(?1) AND NOT tgisinternal",
                &[table.into()],
            )?;
            for name in names {
                let ours = GUARD_TRIGGERS
                    .iter()
                    .any(|(n, t, _)| *n == name && *t == table);
                if !ours {
                    self.batch(&format!("DROP TRIGGER {} ON {table}", quote(&name)))?;
                }
            }
        }
        self.batch(&guards_sql())
    }

    fn integrity_check(&mut self) -> StoreResult<Vec<String>> {
        // PostgreSQL checks its own pages; what is objectos's to check is that
        // its tables and the counter row are there.
        let mut problems = Vec::new();
        for table in COUNTED.iter().chain(&[
            "objectos_audit",
            "objectos_audit_anchors",
            "objectos_changes",
        ]) {
            let present = self.strings(
                "SELECT CASE WHEN to_regclass(?1) IS NULL THEN 'no' ELSE 'yes' END",
                &[SqlValue::from(*table)],
            )?;
            if present.first().map(String::as_str) != Some("yes") {
                problems.push(format!("table `{table}` is missing"));
            }
        }
        if problems.is_empty() && self.change_counter_row()? != 1 {
            problems.push("the change counter's row is missing".into());
        }
        Ok(problems)
    }

    fn schema_version(&mut self) -> StoreResult<i64> {
        let rows = self.rows(
            "SELECT coalesce(max(version), 0) FROM objectos_schema_migrations",
            &[],
        )?;
        Ok(match rows.first().and_then(|r| r.first()) {
            Some(SqlValue::Integer(v)) => *v,
            _ => 0,
        })
    }

    fn optimize(&mut self) -> StoreResult<()> {
        // Autovacuum keeps the planner's statistics; the database team tunes it.
        Ok(())
    }

    fn columns(&mut self, table: &str) -> StoreResult<Vec<String>> {
        self.strings(
            "SELECT column_name::text FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?1 ORDER BY ordinal_position",
            &[table.into()],
        )
    }

    fn record_tables(&mut self) -> StoreResult<Vec<String>> {
        self.strings(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() AND table_name LIKE 'rec\\_%' ORDER BY table_name",
            &[],
        )
    }

    fn copy_suspend_guards(&mut self) -> StoreResult<()> {
        self.batch(
            "DROP TRIGGER IF EXISTS objectos_audit_anchor_check ON objectos_audit_anchors;
             DROP TRIGGER IF EXISTS objectos_audit_anchor_remove ON objectos_audit_anchors;",
        )
    }

    fn copy_sequences(&mut self) -> StoreResult<()> {
        self.batch(
            "SELECT setval(pg_get_serial_sequence('objectos_artifacts', 'seq'), coalesce(max(seq), 0) + 1, false) FROM objectos_artifacts",
        )
    }
}

impl PgTx<'_, '_> {
    fn change_counter_row(&mut self) -> StoreResult<usize> {
        Ok(self
            .rows("SELECT 1 FROM objectos_changes WHERE id = 1", &[])?
            .len())
    }
}

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[test]
    fn placeholders_become_numbered_outside_quotes() {
        assert_eq!(
            placeholders("SELECT a FROM t WHERE b = ?1 AND c = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = $12"
        );
        assert_eq!(
            placeholders("x LIKE ? ESCAPE '\\' AND \"q?\" = ? AND y = '?'"),
            "x LIKE $1 ESCAPE '\\' AND \"q?\" = $2 AND y = '?'"
        );
    }
}
