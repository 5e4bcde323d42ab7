//! The SQLite side of `audit archive` (migration 6): the anchors table, and the
//! triggers that let audit rows leave their table only together with the
//! anchor that keeps the chain verifiable.
//!
//! The mechanism, so that another backend can express it the same way (in
//! PostgreSQL: the same checks in plpgsql trigger functions, `BEFORE INSERT`
//! and `AFTER INSERT FOR EACH ROW` on the anchors, `BEFORE DELETE FOR EACH ROW`
//! on the audit rows):
//!
//! - an anchor is written with `removing = 1`; a `BEFORE INSERT` trigger
//!   refuses it unless it names exactly the oldest rows, whole (every seq from
//!   the previous anchor's end, or 1, to `last_seq`), with the `prev_hash` of
//!   the first and the `hash` of the last, and leaves at least one row (so the
//!   head, and the append-only guard that reads it, stay in the table);
//! - an `AFTER INSERT` trigger deletes exactly those rows, then sets
//!   `removing = 0`: both happen inside the one `INSERT` statement, so no
//!   anchor is ever seen "removing" outside it;
//! - the audit table's `BEFORE DELETE` trigger refuses every row not covered
//!   by an anchor that is removing: a bare `DELETE` is refused, whatever it
//!   names, before and after any archive;
//! - anchors are immutable (the one update allowed is `removing` 1 → 0).

macro_rules! audit_no_delete {
    () => {
        "CREATE TRIGGER objectos_audit_no_delete BEFORE DELETE ON objectos_audit WHEN NOT EXISTS (SELECT 1 FROM objectos_audit_anchors WHERE removing = 1 AND OLD.seq BETWEEN first_seq AND last_seq) BEGIN SELECT RAISE(ABORT, 'audit rows are immutable: only `objectos audit archive` removes them, together with their anchor'); END"
    };
}

macro_rules! anchor_check {
    () => {
        "CREATE TRIGGER objectos_audit_anchor_check BEFORE INSERT ON objectos_audit_anchors WHEN NEW.removing IS NOT 1 OR NEW.first_seq IS NOT coalesce((SELECT max(last_seq) FROM objectos_audit_anchors), 0) + 1 OR NEW.last_seq < NEW.first_seq OR NEW.count IS NOT NEW.last_seq - NEW.first_seq + 1 OR NEW.last_seq >= (SELECT coalesce(max(seq), 0) FROM objectos_audit) OR (SELECT count(*) FROM objectos_audit WHERE seq BETWEEN NEW.first_seq AND NEW.last_seq) IS NOT NEW.count OR NOT EXISTS (SELECT 1 FROM objectos_audit WHERE seq = NEW.first_seq AND prev_hash = NEW.first_prev_hash) OR NOT EXISTS (SELECT 1 FROM objectos_audit WHERE seq = NEW.last_seq AND hash = NEW.last_hash) OR NEW.last_artifact_apply IS NOT coalesce((SELECT record_id FROM objectos_audit WHERE action = 'artifact.apply' AND outcome = 'success' AND seq <= NEW.last_seq ORDER BY seq DESC LIMIT 1), (SELECT last_artifact_apply FROM objectos_audit_anchors ORDER BY last_seq DESC LIMIT 1)) BEGIN SELECT RAISE(ABORT, 'audit rows are immutable: an anchor must name exactly the oldest rows, whole, with their hashes, and leave the newest'); END"
    };
}

macro_rules! anchor_remove {
    () => {
        "CREATE TRIGGER objectos_audit_anchor_remove AFTER INSERT ON objectos_audit_anchors BEGIN DELETE FROM objectos_audit WHERE seq BETWEEN NEW.first_seq AND NEW.last_seq; UPDATE objectos_audit_anchors SET removing = 0 WHERE last_seq = NEW.last_seq; END"
    };
}

macro_rules! anchor_no_update {
    () => {
        "CREATE TRIGGER objectos_audit_anchor_no_update BEFORE UPDATE ON objectos_audit_anchors WHEN NOT (OLD.removing = 1 AND NEW.removing = 0 AND NEW.first_seq IS OLD.first_seq AND NEW.last_seq IS OLD.last_seq AND NEW.first_prev_hash IS OLD.first_prev_hash AND NEW.last_hash IS OLD.last_hash AND NEW.count IS OLD.count AND NEW.archive_sha256 IS OLD.archive_sha256 AND NEW.archived_at IS OLD.archived_at AND NEW.last_artifact_apply IS OLD.last_artifact_apply) BEGIN SELECT RAISE(ABORT, 'audit anchors are immutable'); END"
    };
}

macro_rules! anchor_no_delete {
    () => {
        "CREATE TRIGGER objectos_audit_anchor_no_delete BEFORE DELETE ON objectos_audit_anchors BEGIN SELECT RAISE(ABORT, 'audit anchors are immutable'); END"
    };
}

/// Migration 6: the anchors table, the audit table's delete guard replaced by
/// one that lets an anchor's rows go, and the anchors' own guards.
pub const MIGRATION: &str = concat!(
    "CREATE TABLE objectos_audit_anchors (
        last_seq INTEGER PRIMARY KEY,
        first_seq INTEGER NOT NULL,
        first_prev_hash TEXT NOT NULL,
        last_hash TEXT NOT NULL,
        count INTEGER NOT NULL,
        archive_sha256 TEXT NOT NULL,
        archived_at TEXT NOT NULL,
        last_artifact_apply TEXT,
        removing INTEGER NOT NULL DEFAULT 1
    );
    DROP TRIGGER IF EXISTS objectos_audit_no_delete;
    ",
    audit_no_delete!(),
    ";\n",
    anchor_check!(),
    ";\n",
    anchor_remove!(),
    ";\n",
    anchor_no_update!(),
    ";\n",
    anchor_no_delete!(),
    ";\n",
);

/// The guards of migration 6, exactly as it makes them.
pub const AUDIT_NO_DELETE: &str = audit_no_delete!();
pub const ANCHOR_CHECK: &str = anchor_check!();
pub const ANCHOR_REMOVE: &str = anchor_remove!();
pub const ANCHOR_NO_UPDATE: &str = anchor_no_update!();
pub const ANCHOR_NO_DELETE: &str = anchor_no_delete!();

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::super::{SqliteBackend, migrate};
    use crate::audit::{Event, Origin, ZERO_HASH, append};
    use crate::store::{AuditAnchor, Store, StoreError};

    fn store_with_rows(n: usize) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(Box::new(
            SqliteBackend::open(&dir.path().join("db"), true).unwrap(),
        ));
        store
            .write(|tx| {
                for i in 0..n {
                    let mut event = Event::new(if i == 2 { "artifact.apply" } else { "test" });
                    if i == 2 {
                        event = event.record("sha-of-artifact");
                    }
                    append(tx, &Origin::system(), event)?;
                }
                Ok(())
            })
            .unwrap();
        (dir, store)
    }

    fn anchor_for(store: &Store, first: i64, last: i64) -> AuditAnchor {
        store
            .read(|tx| {
                let first_row = tx.audit_by_seq(first)?.unwrap();
                let last_row = tx.audit_by_seq(last)?.unwrap();
                Ok(AuditAnchor {
                    first_seq: first,
                    last_seq: last,
                    first_prev_hash: first_row.prev_hash,
                    last_hash: last_row.hash,
                    count: last - first + 1,
                    archive_sha256: "ab".repeat(32),
                    archived_at: "2026-01-01T00:00:00.000000Z".into(),
                    last_artifact_apply: (last >= 3).then(|| "sha-of-artifact".to_string()),
                })
            })
            .unwrap()
    }

    fn immutable(result: anyhow::Result<u64>) -> bool {
        matches!(
            result.map_err(|e| e.downcast::<StoreError>()),
            Err(Ok(StoreError::Immutable(_)))
        )
    }

    #[test]
    fn an_anchor_removes_exactly_its_rows_in_the_same_statement() {
        let (_dir, store) = store_with_rows(10);
        let anchor = anchor_for(&store, 1, 4);
        assert_eq!(anchor.first_prev_hash, ZERO_HASH);
        let removed = store.write(|tx| Ok(tx.audit_anchor_insert(&anchor)?));
        assert_eq!(removed.unwrap(), 4);
        let (first, anchors) = store
            .read(|tx| Ok((tx.audit_first_seq()?, tx.audit_anchors()?)))
            .unwrap();
        assert_eq!(first, Some(5));
        assert_eq!(anchors, vec![anchor]);
        // The next one continues where it ended.
        let next = anchor_for(&store, 5, 6);
        assert_eq!(
            store
                .write(|tx| Ok(tx.audit_anchor_insert(&next)?))
                .unwrap(),
            2
        );
    }

    #[test]
    fn an_anchor_that_does_not_name_the_oldest_rows_whole_is_refused() {
        let (_dir, store) = store_with_rows(10);
        let good = anchor_for(&store, 1, 4);
        let mut cases = Vec::new();
        // Not from the start, a wrong hash at either end, a wrong count, the
        // whole table (the head must stay), a forged carried artifact.
        cases.push(anchor_for(&store, 2, 4));
        cases.push(AuditAnchor {
            last_hash: "00".repeat(32),
            ..good.clone()
        });
        cases.push(AuditAnchor {
            first_prev_hash: "11".repeat(32),
            ..good.clone()
        });
        cases.push(AuditAnchor {
            count: 3,
            ..good.clone()
        });
        cases.push(anchor_for(&store, 1, 10));
        cases.push(AuditAnchor {
            last_artifact_apply: Some("another".into()),
            ..good.clone()
        });
        cases.push(AuditAnchor {
            last_artifact_apply: None,
            ..good.clone()
        });
        for bad in cases {
            assert!(
                immutable(store.write(|tx| Ok(tx.audit_anchor_insert(&bad)?))),
                "{bad:?}"
            );
            assert_eq!(
                store.read(|tx| Ok(tx.audit_first_seq()?)).unwrap(),
                Some(1),
                "nothing left: {bad:?}"
            );
        }
    }

    #[test]
    fn a_bare_delete_stays_refused_before_and_after_an_archive() {
        let (dir, store) = store_with_rows(10);
        let anchor = anchor_for(&store, 1, 4);
        let conn = Connection::open(dir.path().join("db")).unwrap();
        for sql in [
            "DELETE FROM objectos_audit WHERE seq = 1",
            "DELETE FROM objectos_audit",
        ] {
            let err = conn.execute(sql, []).unwrap_err().to_string();
            assert!(err.contains("immutable"), "{err}");
        }
        store
            .write(|tx| Ok(tx.audit_anchor_insert(&anchor)?))
            .unwrap();
        for sql in [
            "DELETE FROM objectos_audit WHERE seq = 5",
            "DELETE FROM objectos_audit",
            "UPDATE objectos_audit_anchors SET removing = 1",
            "UPDATE objectos_audit_anchors SET last_hash = 'x'",
            "DELETE FROM objectos_audit_anchors",
            "INSERT INTO objectos_audit_anchors (first_seq, last_seq, first_prev_hash, last_hash, count, archive_sha256, archived_at, removing) SELECT 5, 5, prev_hash, hash, 1, 'x', 'now', 0 FROM objectos_audit WHERE seq = 5",
        ] {
            let err = conn.execute(sql, []).unwrap_err().to_string();
            assert!(err.contains("immutable"), "{sql}: {err}");
        }
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM objectos_audit", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 6);
    }

    #[test]
    fn a_database_of_schema_5_gets_the_anchor_guards() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let mut conn = Connection::open(&path).unwrap();
            migrate(&mut conn, 5).unwrap();
        }
        let store = Store::new(Box::new(SqliteBackend::open(&path, false).unwrap()));
        let missing = store.read(|tx| Ok(tx.audit_guards_missing()?)).unwrap();
        assert!(missing.is_empty(), "{missing:?}");
    }
}
