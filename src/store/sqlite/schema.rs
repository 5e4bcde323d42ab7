//! The SQLite schema: the migrations, the triggers that keep audit rows and
//! applied artifacts immutable, and the version column of record tables made
//! before objectos kept versions.

use rusqlite::Connection;

use super::*;

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
pub(super) const GUARDED_TABLES: &str =
    "('objectos_audit', 'objectos_artifacts', 'objectos_audit_anchors')";

pub(super) fn squash_whitespace(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The version column every record table has (added to tables made before it).
pub(super) const ROW_VERSION_COLUMN: &str = "\"row_version\" INTEGER NOT NULL DEFAULT 1";

/// Give every record table made before objectos kept versions its version
/// column (each existing record starts at version 1). Idempotent.
pub(super) fn ensure_row_versions(conn: &Connection) -> StoreResult<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
