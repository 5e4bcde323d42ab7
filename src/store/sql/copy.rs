//! Moving a whole store from one engine to another, row by row and unchanged:
//! a backup of a PostgreSQL instance is taken as a SQLite database (the one
//! backup format), and a backup is restored into PostgreSQL. Every column is
//! copied as the source holds it, so audit hashes, seals and secrets stay what
//! they were; the target's own guards are lifted only for the copy and put
//! back in the same transaction.

use super::{Engine, quote};
use crate::store::{SqlValue, StoreError, StoreResult};

/// objectos's own tables, in an order that satisfies their references, each
/// with the columns that order its rows.
pub const TABLES: [(&str, &str); 18] = [
    ("objectos_meta", "key"),
    ("objectos_users", "id"),
    ("objectos_orgs", "id"),
    ("objectos_memberships", "user_id, org_id"),
    ("objectos_teams", "id"),
    ("objectos_team_members", "team_id, user_id"),
    ("objectos_assignments", "id"),
    ("objectos_api_keys", "id"),
    ("objectos_sessions", "id"),
    ("objectos_settings", "key"),
    ("objectos_artifacts", "seq"),
    ("objectos_audit_anchors", "last_seq"),
    ("objectos_audit", "seq"),
    ("objectos_shares", "id"),
    ("objectos_signin_throttle", "key"),
    ("objectos_pending_actions", "id"),
    ("objectos_assistant_conversations", "id"),
    ("objectos_assistant_messages", "conversation_id, idx"),
];

/// Rows read or written per statement.
const PAGE: usize = 2_000;
/// Parameters per insert statement (SQLite allows 32,766, PostgreSQL 65,535).
const PARAMS: usize = 16_000;

/// What was copied: table → rows.
pub type Copied = Vec<(String, u64)>;

/// Copy every row of `src` into `dst`, whose schema is made (objectos's tables
/// by its migrations, the record tables by `dst.schema_apply`) and empty.
pub fn copy_all<S: Engine + ?Sized, D: Engine + ?Sized>(
    src: &mut S,
    dst: &mut D,
) -> StoreResult<Copied> {
    let mut tables: Vec<(String, String)> = TABLES
        .iter()
        .map(|(t, order)| (t.to_string(), order.to_string()))
        .collect();
    let mut records = src.record_tables()?;
    records.sort();
    let wanted = dst.record_tables()?;
    if let Some(extra) = records.iter().find(|t| !wanted.contains(t)) {
        return Err(StoreError::Backend(format!(
            "the source holds the table `{extra}`, which the applied artifact does not make"
        )));
    }
    tables.extend(records.into_iter().map(|t| (t, "\"id\"".to_string())));
    // The counter row the migrations made starts the target's own count.
    dst.copy_suspend_guards()?;
    let mut copied = Vec::new();
    for (table, order) in &tables {
        let cols = dst.columns(table)?;
        if cols.is_empty() {
            return Err(StoreError::Backend(format!(
                "the target has no table `{table}`"
            )));
        }
        let have = src.columns(table)?;
        if let Some(missing) = cols.iter().find(|c| !have.contains(c)) {
            return Err(StoreError::Backend(format!(
                "the source's `{table}` has no column `{missing}`: its schema is older than this objectos"
            )));
        }
        if let Some(extra) = have.iter().find(|c| !cols.contains(c)) {
            return Err(StoreError::Backend(format!(
                "the source's `{table}` has a column `{extra}` the target lacks"
            )));
        }
        let list = cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
        let per_insert = (PARAMS / cols.len()).clamp(1, PAGE);
        let mut offset = 0u64;
        loop {
            let rows = src.rows(
                &format!(
                    "SELECT {list} FROM {} ORDER BY {order} LIMIT {PAGE} OFFSET {offset}",
                    quote(table)
                ),
                &[],
            )?;
            let n = rows.len();
            for chunk in rows.chunks(per_insert) {
                insert(dst, table, &list, cols.len(), chunk)?;
            }
            offset += n as u64;
            if n < PAGE {
                break;
            }
        }
        copied.push((table.clone(), offset));
    }
    dst.copy_sequences()?;
    dst.audit_guards_restore()?;
    Ok(copied)
}

fn insert<D: Engine + ?Sized>(
    dst: &mut D,
    table: &str,
    list: &str,
    width: usize,
    rows: &[Vec<SqlValue>],
) -> StoreResult<()> {
    let one = format!("({})", vec!["?"; width].join(", "));
    let values = vec![one; rows.len()].join(", ");
    let params: Vec<SqlValue> = rows.iter().flatten().cloned().collect();
    dst.exec(
        &format!("INSERT INTO {} ({list}) VALUES {values}", quote(table)),
        &params,
    )?;
    Ok(())
}
