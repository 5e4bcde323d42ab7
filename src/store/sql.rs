//! The SQL both engines speak, written once: identities, credentials, settings,
//! the audit log, the queue and the records CRUD are the same statements on
//! SQLite and PostgreSQL. A backend implements [`Engine`] (run a statement, and
//! the few operations whose SQL truly differs: DDL, catalog reads, guards) and
//! gets [`Tx`] and [`RecordTx`] from here.
//!
//! Statements are written with numbered placeholders (`?1`) or plain ones
//! (`?`, in order); each engine binds them its own way (PostgreSQL's `$1`).
//! Flags are written `TRUE`/`FALSE`, which both engines read (SQLite as 1/0).

use serde_json::Value;

use super::*;

/// What differs in the SQL text itself between engines.
pub struct Dialect {
    pub name: &'static str,
    /// The test that finds a user by email, ignoring case (`?1` is the email).
    pub email_eq: &'static str,
    /// `a <op> b` true when they differ, a null differing from a value.
    pub distinct: &'static str,
    /// Case-insensitive pattern match (`LIKE` ignores ASCII case on SQLite).
    pub like: &'static str,
    /// Put before an `ORDER BY` column when the condition is selective, to keep
    /// the planner from walking an index in sort order (SQLite's unary `+`).
    pub selective_order: &'static str,
}

/// A database connection inside one transaction, as the shared SQL needs it.
pub trait Engine {
    fn dialect(&self) -> &'static Dialect;
    /// Run a statement and return its rows.
    fn rows(&mut self, sql: &str, params: &[SqlValue]) -> StoreResult<Vec<Vec<SqlValue>>>;
    /// Run a statement and return how many rows it changed.
    fn exec(&mut self, sql: &str, params: &[SqlValue]) -> StoreResult<usize>;
    /// Called before the audit head is read in a transaction that will append
    /// to it: where several processes append at once, this takes the lock that
    /// serialises appends until the transaction ends.
    fn lock_audit_head(&mut self) -> StoreResult<()>;
    /// A group key as SQL: the column, or its UTC date bucket as text.
    fn group_expr(&self, key: &GroupKey) -> String;
    /// The key that seals power-granting rows (see `seal`), when the store
    /// was opened with one.
    fn row_key(&self) -> Option<&RowKey>;

    // What is the engine's own: DDL, the catalog, guards, maintenance.
    fn schema_apply(&mut self, changes: &[SchemaChange]) -> StoreResult<()>;
    fn record_index_names(&mut self, object: &str) -> StoreResult<Vec<String>>;
    fn audit_guards_missing(&mut self) -> StoreResult<Vec<String>>;
    fn audit_guards_restore(&mut self) -> StoreResult<()>;
    fn integrity_check(&mut self) -> StoreResult<Vec<String>>;
    fn schema_version(&mut self) -> StoreResult<i64>;
    fn optimize(&mut self) -> StoreResult<()>;

    // Moving a whole store to another engine (see `copy`).
    /// A table's columns, in order; none when there is no such table.
    fn columns(&mut self, table: &str) -> StoreResult<Vec<String>>;
    /// The tables that hold records (`rec_…`).
    fn record_tables(&mut self) -> StoreResult<Vec<String>>;
    /// Lift, for this transaction, the guards that refuse an anchor whose rows
    /// are not in the table (they were archived before the copy);
    /// `audit_guards_restore` puts them back.
    fn copy_suspend_guards(&mut self) -> StoreResult<()>;
    /// Move sequences past the copied rows.
    fn copy_sequences(&mut self) -> StoreResult<()>;
}

/// Quote an identifier that comes from validated metadata.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// The table holding an object's records.
pub fn table_of(object: &str) -> String {
    quote(&format!("rec_{object}"))
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> SqlValue {
        SqlValue::Text(v.to_string())
    }
}

impl From<&String> for SqlValue {
    fn from(v: &String) -> SqlValue {
        SqlValue::Text(v.clone())
    }
}

impl From<String> for SqlValue {
    fn from(v: String) -> SqlValue {
        SqlValue::Text(v)
    }
}

impl From<i64> for SqlValue {
    fn from(v: i64) -> SqlValue {
        SqlValue::Integer(v)
    }
}

impl From<bool> for SqlValue {
    fn from(v: bool) -> SqlValue {
        SqlValue::Integer(i64::from(v))
    }
}

impl From<&[u8]> for SqlValue {
    fn from(v: &[u8]) -> SqlValue {
        SqlValue::Blob(v.to_vec())
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> SqlValue {
        v.map_or(SqlValue::Null, Into::into)
    }
}

/// Statement parameters from values of mixed types.
macro_rules! args {
    ($($v:expr),* $(,)?) => { &[$(SqlValue::from($v)),*] };
}

/// One row read column by column, in the order of the statement's columns.
struct Cols(std::vec::IntoIter<SqlValue>);

impl Cols {
    fn next(&mut self) -> SqlValue {
        self.0.next().unwrap_or(SqlValue::Null)
    }

    fn opt_text(&mut self) -> Option<String> {
        match self.next() {
            SqlValue::Null => None,
            SqlValue::Text(t) => Some(t),
            SqlValue::Integer(i) => Some(i.to_string()),
            SqlValue::Real(r) => Some(r.to_string()),
            SqlValue::Blob(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        }
    }

    fn text(&mut self) -> StoreResult<String> {
        self.opt_text()
            .ok_or_else(|| StoreError::Backend("a required column is null".into()))
    }

    fn opt_int(&mut self) -> StoreResult<Option<i64>> {
        match self.next() {
            SqlValue::Null => Ok(None),
            SqlValue::Integer(i) => Ok(Some(i)),
            SqlValue::Real(r) if r.fract() == 0.0 => Ok(Some(r as i64)),
            other => Err(StoreError::Backend(format!(
                "expected an integer column, found {other:?}"
            ))),
        }
    }

    fn int(&mut self) -> StoreResult<i64> {
        self.opt_int()?
            .ok_or_else(|| StoreError::Backend("a required column is null".into()))
    }

    fn flag(&mut self) -> StoreResult<bool> {
        Ok(self.opt_int()?.unwrap_or(0) != 0)
    }

    fn bytes(&mut self) -> Vec<u8> {
        match self.next() {
            SqlValue::Blob(b) => b,
            SqlValue::Text(t) => t.into_bytes(),
            _ => Vec::new(),
        }
    }
}

type Map<T> = fn(&mut Cols) -> StoreResult<T>;

mod assistant;
pub mod copy;
pub mod seal;

use seal::Sealing;
pub use seal::{RowKey, UnsealedRow};

fn user_from(r: &mut Cols) -> StoreResult<UserRow> {
    Ok(UserRow {
        id: r.text()?,
        email: r.text()?,
        name: r.opt_text(),
        password_hash: r.opt_text(),
        disabled: r.flag()?,
        created_at: r.text()?,
    })
}

const USER_COLS: &str = "id, email, name, password_hash, disabled, created_at";

fn org_from(r: &mut Cols) -> StoreResult<OrgRow> {
    Ok(OrgRow {
        id: r.text()?,
        name: r.text()?,
        created_at: r.text()?,
    })
}

fn team_from(r: &mut Cols) -> StoreResult<TeamRow> {
    Ok(TeamRow {
        id: r.text()?,
        name: r.text()?,
        created_at: r.text()?,
    })
}

const ASSIGNMENT_COLS: &str = "id, user_id, permset, org_id, valid_until, created_at";

fn assignment_from(r: &mut Cols) -> StoreResult<AssignmentRow> {
    let id = r.text()?;
    let user_id = r.text()?;
    let permset = r.text()?;
    let org = r.text()?;
    Ok(AssignmentRow {
        id,
        user_id,
        permset,
        org_id: if org.is_empty() { None } else { Some(org) },
        valid_until: r.opt_text(),
        created_at: r.text()?,
    })
}

const KEY_COLS: &str =
    "id, user_id, org_id, kind, read_only, name, prefix, hash, created_at, expires_at, revoked_at";

fn key_from(r: &mut Cols) -> StoreResult<ApiKeyRow> {
    Ok(ApiKeyRow {
        id: r.text()?,
        user_id: r.text()?,
        org_id: r.text()?,
        kind: if r.text()? == "agent" {
            KeyKind::Agent
        } else {
            KeyKind::User
        },
        read_only: r.flag()?,
        name: r.opt_text(),
        prefix: r.text()?,
        hash: r.text()?,
        created_at: r.text()?,
        expires_at: r.opt_text(),
        revoked_at: r.opt_text(),
    })
}

const SESSION_COLS: &str = "id, user_id, org_id, hash, created_at, expires_at, revoked_at";

fn session_from(r: &mut Cols) -> StoreResult<SessionRow> {
    Ok(SessionRow {
        id: r.text()?,
        user_id: r.text()?,
        org_id: r.text()?,
        hash: r.text()?,
        created_at: r.text()?,
        expires_at: r.text()?,
        revoked_at: r.opt_text(),
    })
}

const SETTING_COLS: &str = "key, value, secret, updated_at";

fn setting_from(r: &mut Cols) -> StoreResult<SettingRow> {
    Ok(SettingRow {
        key: r.text()?,
        value: r.text()?,
        secret: r.flag()?,
        updated_at: r.text()?,
    })
}

const AUDIT_COLS: &str = "seq, id, time, actor, via, client, credential, action, object, record_id, changes, outcome, code, request_id, prev_hash, hash";

fn audit_text_from(r: &mut Cols) -> StoreResult<AuditRowText> {
    Ok(AuditRowText {
        seq: r.int()?,
        id: r.text()?,
        time: r.text()?,
        actor: r.text()?,
        via: r.text()?,
        client: r.opt_text(),
        credential: r.opt_text(),
        action: r.text()?,
        object: r.opt_text(),
        record_id: r.opt_text(),
        changes: r.opt_text(),
        outcome: r.text()?,
        code: r.opt_text(),
        request_id: r.opt_text(),
        prev_hash: r.text()?,
        hash: r.text()?,
    })
}

fn audit_from(r: &mut Cols) -> StoreResult<AuditRow> {
    audit_text_from(r).map(|t| t.parse())
}

const ARTIFACT_COLS: &str =
    "seq, sha256, id, version, signer_key_id, bytes, applied_at, signer_public_key, signature";

fn artifact_from(r: &mut Cols) -> StoreResult<AppliedArtifact> {
    Ok(AppliedArtifact {
        seq: r.int()?,
        sha256: r.text()?,
        id: r.text()?,
        version: r.text()?,
        signer_key_id: r.text()?,
        bytes: r.bytes(),
        applied_at: r.text()?,
        signer_public_key: r.opt_text(),
        signature: r.opt_text(),
    })
}

const THROTTLE_COLS: &str = "key, failures, window_start, blocked_until, reported";

fn throttle_from(r: &mut Cols) -> StoreResult<ThrottleRow> {
    Ok(ThrottleRow {
        key: r.text()?,
        failures: r.int()?,
        window_start: r.text()?,
        blocked_until: r.opt_text(),
        reported: r.flag()?,
    })
}

const PENDING_COLS: &str = "id, org_id, kind, status, requester_id, key_id, client, tool, input, object, record_id, before_hash, proposal, created_at, expires_at, decided_by, decided_at, reason, result, before_version";

fn pending_from(r: &mut Cols) -> StoreResult<PendingRow> {
    let json = |t: Option<String>| t.and_then(|t| serde_json::from_str(&t).ok());
    Ok(PendingRow {
        id: r.text()?,
        org_id: r.text()?,
        kind: r.text()?,
        status: r.text()?,
        requester_id: r.text()?,
        key_id: r.opt_text(),
        client: json(r.opt_text()),
        tool: r.text()?,
        input: json(r.opt_text()).unwrap_or(Value::Null),
        object: r.opt_text(),
        record_id: r.opt_text(),
        before_hash: r.opt_text(),
        proposal: json(r.opt_text()).unwrap_or(Value::Null),
        created_at: r.text()?,
        expires_at: r.text()?,
        decided_by: r.opt_text(),
        decided_at: r.opt_text(),
        reason: r.opt_text(),
        result: r.opt_text(),
        before_version: r.opt_int()?,
    })
}

const SHARE_COLS: &str =
    "id, object, record_id, grantee_kind, grantee, edit, created_by, created_at";

fn share_from(r: &mut Cols) -> StoreResult<ShareRow> {
    Ok(ShareRow {
        id: r.text()?,
        object: r.text()?,
        record_id: r.text()?,
        grantee_kind: r.text()?,
        grantee: r.text()?,
        edit: r.flag()?,
        created_by: r.text()?,
        created_at: r.text()?,
    })
}

const ANCHOR_COLS: &str = "first_seq, last_seq, first_prev_hash, last_hash, count, archive_sha256, archived_at, last_artifact_apply";

fn anchor_from(r: &mut Cols) -> StoreResult<AuditAnchor> {
    Ok(AuditAnchor {
        first_seq: r.int()?,
        last_seq: r.int()?,
        first_prev_hash: r.text()?,
        last_hash: r.text()?,
        count: r.int()?,
        archive_sha256: r.text()?,
        archived_at: r.text()?,
        last_artifact_apply: r.opt_text(),
    })
}

fn canonical_text(value: &Value) -> String {
    crate::crypto::canonical::value_to_string(value).unwrap_or_else(|_| value.to_string())
}

fn like_pattern(mode: TextMatch, needle: &str) -> String {
    let escaped = needle
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    match mode {
        TextMatch::Contains => format!("%{escaped}%"),
        TextMatch::StartsWith => format!("{escaped}%"),
        TextMatch::EndsWith => format!("%{escaped}"),
    }
}

/// Render a condition as SQL, pushing its values as parameters.
pub fn render(dialect: &Dialect, cond: &Cond, sql: &mut String, params: &mut Vec<SqlValue>) {
    match cond {
        Cond::True => sql.push_str("TRUE"),
        Cond::False => sql.push_str("FALSE"),
        Cond::And(items) | Cond::Or(items) => {
            let joiner = if matches!(cond, Cond::And(_)) {
                " AND "
            } else {
                " OR "
            };
            sql.push('(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    sql.push_str(joiner);
                }
                render(dialect, item, sql, params);
            }
            sql.push(')');
        }
        Cond::Not(inner) => {
            sql.push_str("NOT (");
            render(dialect, inner, sql, params);
            sql.push(')');
        }
        Cond::Cmp { column, op, value } => {
            let op = match op {
                CmpOp::Eq => "=",
                CmpOp::Ne => dialect.distinct,
                CmpOp::Gt => ">",
                CmpOp::Gte => ">=",
                CmpOp::Lt => "<",
                CmpOp::Lte => "<=",
            };
            sql.push_str(&format!("{} {op} ?", quote(column)));
            params.push(value.clone());
        }
        Cond::In {
            column,
            values,
            negate,
        } => {
            if values.is_empty() {
                sql.push_str(if *negate { "TRUE" } else { "FALSE" });
                return;
            }
            let marks = vec!["?"; values.len()].join(", ");
            if *negate {
                sql.push_str(&format!(
                    "({c} NOT IN ({marks}) OR {c} IS NULL)",
                    c = quote(column)
                ));
            } else {
                sql.push_str(&format!("{} IN ({marks})", quote(column)));
            }
            params.extend(values.iter().cloned());
        }
        Cond::Text {
            column,
            mode,
            needle,
        } => {
            sql.push_str(&format!("{} {} ? ESCAPE '\\'", quote(column), dialect.like));
            params.push(SqlValue::Text(like_pattern(*mode, needle)));
        }
        Cond::Null { column, is_null } => {
            sql.push_str(&format!(
                "{} IS {}NULL",
                quote(column),
                if *is_null { "" } else { "NOT " }
            ));
        }
        Cond::SharedWith {
            object,
            user_id,
            teams,
            edit,
        } => {
            sql.push_str("\"id\" IN (SELECT ");
            shared_ids(object, user_id, teams, *edit, sql, params);
            sql.push(')');
        }
        Cond::ParentIn {
            column,
            parent,
            cond,
        } => {
            sql.push_str(&format!(
                "{} IN (SELECT \"id\" FROM {} WHERE ",
                quote(column),
                table_of(parent)
            ));
            render(dialect, cond, sql, params);
            sql.push(')');
        }
    }
}

/// More explicitly shared records than this stay a subquery: a statement has
/// at most 32,766 parameters on SQLite, and one condition may test shares of
/// several objects (a record's own, its parents').
const INLINE: usize = 4_000;

/// The ids of an object's records shared with a user or their teams (after
/// `SELECT `).
fn shared_ids(
    object: &str,
    user_id: &str,
    teams: &[String],
    edit: bool,
    sql: &mut String,
    params: &mut Vec<SqlValue>,
) {
    sql.push_str("record_id FROM objectos_shares WHERE object = ? AND ((grantee_kind = 'user' AND grantee = ?)");
    params.push(SqlValue::Text(object.to_string()));
    params.push(SqlValue::Text(user_id.to_string()));
    if !teams.is_empty() {
        sql.push_str(&format!(
            " OR (grantee_kind = 'team' AND grantee IN ({}))",
            vec!["?"; teams.len()].join(", ")
        ));
        params.extend(teams.iter().map(|t| SqlValue::Text(t.clone())));
    }
    sql.push(')');
    if edit {
        sql.push_str(" AND edit = TRUE");
    }
}

/// The shared statements, as helpers on every engine.
trait Statements: Engine {
    fn all<T>(&mut self, sql: &str, params: &[SqlValue], map: Map<T>) -> StoreResult<Vec<T>> {
        self.rows(sql, params)?
            .into_iter()
            .map(|row| map(&mut Cols(row.into_iter())))
            .collect()
    }

    fn one<T>(&mut self, sql: &str, params: &[SqlValue], map: Map<T>) -> StoreResult<Option<T>> {
        match self.rows(sql, params)?.into_iter().next() {
            Some(row) => map(&mut Cols(row.into_iter())).map(Some),
            None => Ok(None),
        }
    }

    fn count(&mut self, sql: &str, params: &[SqlValue]) -> StoreResult<i64> {
        Ok(self
            .one(sql, params, |r| r.opt_int())?
            .flatten()
            .unwrap_or(0))
    }

    /// `cond` with each explicit-share test replaced by the ids it admits, read
    /// in this transaction from the share rows whose seal verifies (a forged
    /// share admits nothing): none (the usual case) makes the branch false,
    /// the others become `id IN (…)`. The planner then sees only branches its
    /// indexes serve. Past [`INLINE`] shared records, with every row sound,
    /// the test stays a subquery.
    fn inline_shares(&mut self, cond: &Cond) -> StoreResult<Cond> {
        Ok(match cond {
            Cond::And(items) => Cond::and(
                items
                    .iter()
                    .map(|c| self.inline_shares(c))
                    .collect::<StoreResult<_>>()?,
            ),
            Cond::Or(items) => Cond::or(
                items
                    .iter()
                    .map(|c| self.inline_shares(c))
                    .collect::<StoreResult<_>>()?,
            ),
            Cond::Not(inner) => Cond::Not(Box::new(self.inline_shares(inner)?)),
            Cond::ParentIn {
                column,
                parent,
                cond,
            } => Cond::ParentIn {
                column: column.clone(),
                parent: parent.clone(),
                cond: Box::new(self.inline_shares(cond)?),
            },
            Cond::SharedWith {
                object,
                user_id,
                teams,
                edit,
            } => {
                let mut sql = format!("SELECT {SHARE_COLS}, mac, ");
                let mut params = Vec::new();
                shared_ids(object, user_id, teams, *edit, &mut sql, &mut params);
                let mut bad = 0;
                let mut ids: Vec<String> = Vec::new();
                for mut row in self.rows(&sql, &params)? {
                    // The row's own record id comes after its MAC.
                    let record_id = row.pop();
                    match record_id {
                        Some(SqlValue::Text(id)) if self.unseal(&seal::SHARES, &mut row, 0) => {
                            ids.push(id)
                        }
                        _ => bad += 1,
                    }
                }
                ids.sort();
                ids.dedup();
                let ids: Vec<SqlValue> = ids.into_iter().map(SqlValue::Text).collect();
                if ids.is_empty() {
                    Cond::False
                } else if ids.len() <= INLINE {
                    Cond::In {
                        column: "id".into(),
                        values: ids,
                        negate: false,
                    }
                } else if bad == 0 {
                    cond.clone()
                } else {
                    return Err(StoreError::Backend(format!(
                        "more than {INLINE} records of `{object}` are shared with this user and some share rows are not sealed by this instance; run `objectos doctor`"
                    )));
                }
            }
            other => other.clone(),
        })
    }
}

impl<E: Engine + ?Sized> Statements for E {}

impl<E: Engine> Tx for E {
    fn engine(&mut self) -> &mut dyn Engine {
        self
    }

    fn rows_unsealed(&mut self) -> StoreResult<Vec<UnsealedRow>> {
        self.unsealed_rows()
    }

    fn rows_reseal(&mut self, from: Option<&RowKey>, to: &RowKey) -> StoreResult<u64> {
        self.reseal_all(from, to)
    }

    fn meta_get(&mut self, key: &str) -> StoreResult<Option<String>> {
        self.one(
            "SELECT value FROM objectos_meta WHERE key = ?1",
            args![key],
            |r| r.text(),
        )
    }

    fn meta_set(&mut self, key: &str, value: &str) -> StoreResult<()> {
        self.exec(
            "INSERT INTO objectos_meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            args![key, value],
        )?;
        Ok(())
    }

    fn user_insert(&mut self, u: &UserRow) -> StoreResult<()> {
        self.exec(
            &format!("INSERT INTO objectos_users ({USER_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
            args![
                &u.id,
                &u.email,
                u.name.as_ref(),
                u.password_hash.as_ref(),
                u.disabled,
                &u.created_at
            ],
        )?;
        self.reseal(&seal::USERS, args![&u.id])
    }

    fn user_by_email(&mut self, email: &str) -> StoreResult<Option<UserRow>> {
        let cond = format!("WHERE {}", self.dialect().email_eq);
        Ok(self
            .sealed(&seal::USERS, &cond, args![email], user_from)?
            .into_iter()
            .next())
    }

    fn user_by_id(&mut self, id: &str) -> StoreResult<Option<UserRow>> {
        Ok(self
            .sealed(&seal::USERS, "WHERE id = ?1", args![id], user_from)?
            .into_iter()
            .next())
    }

    fn users(&mut self) -> StoreResult<Vec<UserRow>> {
        self.sealed(&seal::USERS, "ORDER BY email", &[], user_from)
    }

    fn user_set_disabled(&mut self, id: &str, disabled: bool) -> StoreResult<()> {
        // A user whose row is not sealed does not exist for objectos.
        if !self.sound(&seal::USERS, args![id])? {
            return Ok(());
        }
        self.exec(
            "UPDATE objectos_users SET disabled = ?2 WHERE id = ?1",
            args![id, disabled],
        )?;
        self.reseal(&seal::USERS, args![id])
    }

    fn user_set_password(&mut self, id: &str, hash: &str) -> StoreResult<()> {
        if !self.sound(&seal::USERS, args![id])? {
            return Ok(());
        }
        self.exec(
            "UPDATE objectos_users SET password_hash = ?2 WHERE id = ?1",
            args![id, hash],
        )?;
        self.reseal(&seal::USERS, args![id])
    }

    fn org_insert(&mut self, o: &OrgRow) -> StoreResult<()> {
        self.exec(
            "INSERT INTO objectos_orgs (id, name, created_at) VALUES (?1, ?2, ?3)",
            args![&o.id, &o.name, &o.created_at],
        )?;
        Ok(())
    }

    fn org_by_name(&mut self, name: &str) -> StoreResult<Option<OrgRow>> {
        self.one(
            "SELECT id, name, created_at FROM objectos_orgs WHERE name = ?1",
            args![name],
            org_from,
        )
    }

    fn org_by_id(&mut self, id: &str) -> StoreResult<Option<OrgRow>> {
        self.one(
            "SELECT id, name, created_at FROM objectos_orgs WHERE id = ?1",
            args![id],
            org_from,
        )
    }

    fn orgs(&mut self) -> StoreResult<Vec<OrgRow>> {
        self.all(
            "SELECT id, name, created_at FROM objectos_orgs ORDER BY name",
            &[],
            org_from,
        )
    }

    fn member_add(&mut self, user_id: &str, org_id: &str, at: &str) -> StoreResult<bool> {
        self.drop_unsound(&seal::MEMBERSHIPS, args![user_id, org_id])?;
        let added = self.exec(
            "INSERT INTO objectos_memberships (user_id, org_id, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            args![user_id, org_id, at],
        )? > 0;
        if added {
            self.reseal(&seal::MEMBERSHIPS, args![user_id, org_id])?;
        }
        Ok(added)
    }

    fn member_remove(&mut self, user_id: &str, org_id: &str) -> StoreResult<bool> {
        Ok(self.exec(
            "DELETE FROM objectos_memberships WHERE user_id = ?1 AND org_id = ?2",
            args![user_id, org_id],
        )? > 0)
    }

    fn orgs_of_user(&mut self, user_id: &str) -> StoreResult<Vec<OrgRow>> {
        let t = &seal::MEMBERSHIPS;
        let rows = self.sealed_rows(
            t,
            "SELECT m.user_id, m.org_id, m.created_at, m.mac, o.id, o.name, o.created_at FROM objectos_orgs o JOIN objectos_memberships m ON m.org_id = o.id WHERE m.user_id = ?1 ORDER BY o.name",
            args![user_id],
        )?;
        rows.into_iter()
            .map(|mut row| org_from(&mut Cols(row.split_off(t.width()).into_iter())))
            .collect()
    }

    fn member_count(&mut self, org_id: &str) -> StoreResult<u64> {
        Ok(self
            .sealed(
                &seal::MEMBERSHIPS,
                "WHERE org_id = ?1",
                args![org_id],
                |_| Ok(()),
            )?
            .len() as u64)
    }

    fn team_insert(&mut self, t: &TeamRow) -> StoreResult<()> {
        self.exec(
            "INSERT INTO objectos_teams (id, name, created_at) VALUES (?1, ?2, ?3)",
            args![&t.id, &t.name, &t.created_at],
        )?;
        Ok(())
    }

    fn team_by_name(&mut self, name: &str) -> StoreResult<Option<TeamRow>> {
        self.one(
            "SELECT id, name, created_at FROM objectos_teams WHERE name = ?1",
            args![name],
            team_from,
        )
    }

    fn teams(&mut self) -> StoreResult<Vec<TeamRow>> {
        self.all(
            "SELECT id, name, created_at FROM objectos_teams ORDER BY name",
            &[],
            team_from,
        )
    }

    fn team_member_add(&mut self, team_id: &str, user_id: &str) -> StoreResult<bool> {
        self.drop_unsound(&seal::TEAM_MEMBERS, args![team_id, user_id])?;
        let added = self.exec(
            "INSERT INTO objectos_team_members (team_id, user_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            args![team_id, user_id],
        )? > 0;
        if added {
            self.reseal(&seal::TEAM_MEMBERS, args![team_id, user_id])?;
        }
        Ok(added)
    }

    fn team_member_remove(&mut self, team_id: &str, user_id: &str) -> StoreResult<bool> {
        Ok(self.exec(
            "DELETE FROM objectos_team_members WHERE team_id = ?1 AND user_id = ?2",
            args![team_id, user_id],
        )? > 0)
    }

    fn team_members(&mut self, team_id: &str) -> StoreResult<Vec<UserRow>> {
        // Both the membership and the user must verify.
        let t = &seal::TEAM_MEMBERS;
        let mut rows = self.sealed_rows(
            t,
            "SELECT m.team_id, m.user_id, m.mac, u.id, u.email, u.name, u.password_hash, u.disabled, u.created_at, u.mac FROM objectos_users u JOIN objectos_team_members m ON m.user_id = u.id WHERE m.team_id = ?1 ORDER BY u.email",
            args![team_id],
        )?;
        rows.retain_mut(|row| self.unseal(&seal::USERS, row, t.width()));
        rows.into_iter()
            .map(|mut row| user_from(&mut Cols(row.split_off(t.width()).into_iter())))
            .collect()
    }

    fn teams_of_user(&mut self, user_id: &str) -> StoreResult<Vec<TeamRow>> {
        let t = &seal::TEAM_MEMBERS;
        let rows = self.sealed_rows(
            t,
            "SELECT m.team_id, m.user_id, m.mac, t.id, t.name, t.created_at FROM objectos_teams t JOIN objectos_team_members m ON m.team_id = t.id WHERE m.user_id = ?1 ORDER BY t.name",
            args![user_id],
        )?;
        rows.into_iter()
            .map(|mut row| team_from(&mut Cols(row.split_off(t.width()).into_iter())))
            .collect()
    }

    fn assignment_insert(&mut self, a: &AssignmentRow) -> StoreResult<()> {
        self.drop_unsound(
            &seal::ASSIGNMENTS,
            args![&a.user_id, &a.permset, a.org_id.clone().unwrap_or_default()],
        )?;
        self.exec(
            "INSERT INTO objectos_assignments (id, user_id, permset, org_id, valid_until, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (user_id, permset, org_id) DO UPDATE SET valid_until = excluded.valid_until",
            args![
                &a.id,
                &a.user_id,
                &a.permset,
                a.org_id.clone().unwrap_or_default(),
                a.valid_until.as_ref(),
                &a.created_at
            ],
        )?;
        self.reseal(
            &seal::ASSIGNMENTS,
            args![&a.user_id, &a.permset, a.org_id.clone().unwrap_or_default()],
        )
    }

    fn assignment_delete(
        &mut self,
        user_id: &str,
        permset: &str,
        org_id: Option<&str>,
    ) -> StoreResult<bool> {
        Ok(self.exec(
            "DELETE FROM objectos_assignments WHERE user_id = ?1 AND permset = ?2 AND org_id = ?3",
            args![user_id, permset, org_id.unwrap_or("")],
        )? > 0)
    }

    fn assignments_of_user(&mut self, user_id: &str) -> StoreResult<Vec<AssignmentRow>> {
        self.sealed(
            &seal::ASSIGNMENTS,
            "WHERE user_id = ?1 ORDER BY permset, org_id",
            args![user_id],
            assignment_from,
        )
    }

    fn assignments(&mut self) -> StoreResult<Vec<AssignmentRow>> {
        self.sealed(
            &seal::ASSIGNMENTS,
            "ORDER BY permset, user_id",
            &[],
            assignment_from,
        )
    }

    fn apikey_insert(&mut self, k: &ApiKeyRow) -> StoreResult<()> {
        self.exec(
            &format!("INSERT INTO objectos_api_keys ({KEY_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
            args![
                &k.id,
                &k.user_id,
                &k.org_id,
                k.kind.as_str(),
                k.read_only,
                k.name.as_ref(),
                &k.prefix,
                &k.hash,
                &k.created_at,
                k.expires_at.as_ref(),
                k.revoked_at.as_ref()
            ],
        )?;
        self.reseal(&seal::API_KEYS, args![&k.id])
    }

    fn apikey_by_hash(&mut self, hash: &str) -> StoreResult<Option<ApiKeyRow>> {
        Ok(self
            .sealed(&seal::API_KEYS, "WHERE hash = ?1", args![hash], key_from)?
            .into_iter()
            .next())
    }

    fn apikey_by_id(&mut self, id: &str) -> StoreResult<Option<ApiKeyRow>> {
        Ok(self
            .sealed(&seal::API_KEYS, "WHERE id = ?1", args![id], key_from)?
            .into_iter()
            .next())
    }

    fn apikeys(&mut self) -> StoreResult<Vec<ApiKeyRow>> {
        self.sealed(&seal::API_KEYS, "ORDER BY created_at, id", &[], key_from)
    }

    fn apikey_revoke(&mut self, id: &str, at: &str) -> StoreResult<bool> {
        if !self.sound(&seal::API_KEYS, args![id])? {
            return Ok(false);
        }
        let revoked = self.exec(
            "UPDATE objectos_api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            args![id, at],
        )? > 0;
        if revoked {
            self.reseal(&seal::API_KEYS, args![id])?;
        }
        Ok(revoked)
    }

    fn session_insert(&mut self, s: &SessionRow) -> StoreResult<()> {
        self.exec(
            &format!(
                "INSERT INTO objectos_sessions ({SESSION_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ),
            args![
                &s.id,
                &s.user_id,
                &s.org_id,
                &s.hash,
                &s.created_at,
                &s.expires_at,
                s.revoked_at.as_ref()
            ],
        )?;
        self.reseal(&seal::SESSIONS, args![&s.id])
    }

    fn session_by_hash(&mut self, hash: &str) -> StoreResult<Option<SessionRow>> {
        Ok(self
            .sealed(
                &seal::SESSIONS,
                "WHERE hash = ?1",
                args![hash],
                session_from,
            )?
            .into_iter()
            .next())
    }

    fn session_by_id(&mut self, id: &str) -> StoreResult<Option<SessionRow>> {
        Ok(self
            .sealed(&seal::SESSIONS, "WHERE id = ?1", args![id], session_from)?
            .into_iter()
            .next())
    }

    fn sessions(&mut self) -> StoreResult<Vec<SessionRow>> {
        self.sealed(
            &seal::SESSIONS,
            "ORDER BY created_at, id",
            &[],
            session_from,
        )
    }

    fn session_revoke(&mut self, id: &str, at: &str) -> StoreResult<bool> {
        if !self.sound(&seal::SESSIONS, args![id])? {
            return Ok(false);
        }
        let revoked = self.exec(
            "UPDATE objectos_sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            args![id, at],
        )? > 0;
        if revoked {
            self.reseal(&seal::SESSIONS, args![id])?;
        }
        Ok(revoked)
    }

    fn setting_put(&mut self, s: &SettingRow) -> StoreResult<()> {
        self.exec(
            &format!("INSERT INTO objectos_settings ({SETTING_COLS}) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, secret = excluded.secret, updated_at = excluded.updated_at"),
            args![&s.key, &s.value, s.secret, &s.updated_at],
        )?;
        Ok(())
    }

    fn setting_get(&mut self, key: &str) -> StoreResult<Option<SettingRow>> {
        self.one(
            &format!("SELECT {SETTING_COLS} FROM objectos_settings WHERE key = ?1"),
            args![key],
            setting_from,
        )
    }

    fn settings(&mut self) -> StoreResult<Vec<SettingRow>> {
        self.all(
            &format!("SELECT {SETTING_COLS} FROM objectos_settings ORDER BY key"),
            &[],
            setting_from,
        )
    }

    fn setting_delete(&mut self, key: &str) -> StoreResult<bool> {
        Ok(self.exec("DELETE FROM objectos_settings WHERE key = ?1", args![key])? > 0)
    }

    fn artifact_current(&mut self) -> StoreResult<Option<AppliedArtifact>> {
        self.one(
            &format!("SELECT {ARTIFACT_COLS} FROM objectos_artifacts ORDER BY seq DESC LIMIT 1"),
            &[],
            artifact_from,
        )
    }

    fn artifact_record(&mut self, a: &AppliedArtifact) -> StoreResult<()> {
        self.exec(
            "INSERT INTO objectos_artifacts (sha256, id, version, signer_key_id, bytes, applied_at, signer_public_key, signature) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            args![
                &a.sha256,
                &a.id,
                &a.version,
                &a.signer_key_id,
                a.bytes.as_slice(),
                &a.applied_at,
                a.signer_public_key.as_ref(),
                a.signature.as_ref()
            ],
        )?;
        Ok(())
    }

    fn schema_apply(&mut self, changes: &[SchemaChange]) -> StoreResult<()> {
        Engine::schema_apply(self, changes)
    }

    fn record_index_names(&mut self, object: &str) -> StoreResult<Vec<String>> {
        Engine::record_index_names(self, object)
    }

    fn audit_head(&mut self) -> StoreResult<Option<(i64, String)>> {
        self.lock_audit_head()?;
        self.one(
            "SELECT seq, hash FROM objectos_audit ORDER BY seq DESC LIMIT 1",
            &[],
            |r| Ok((r.int()?, r.text()?)),
        )
    }

    fn audit_insert(&mut self, a: &AuditRow) -> StoreResult<()> {
        let written = self.exec(
            &format!("INSERT INTO objectos_audit ({AUDIT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"),
            args![
                a.seq,
                &a.id,
                &a.time,
                canonical_text(&a.actor),
                &a.via,
                a.client.as_ref().map(canonical_text),
                a.credential.as_ref(),
                &a.action,
                a.object.as_ref(),
                a.record_id.as_ref(),
                a.changes.as_ref().map(canonical_text),
                &a.outcome,
                a.code.as_ref(),
                a.request_id.as_ref(),
                &a.prev_hash,
                &a.hash
            ],
        )?;
        // A trigger that swallowed the row (`RAISE(IGNORE)`) must not pass unseen.
        if written != 1 {
            return Err(StoreError::Immutable(format!(
                "the audit row {} was not written",
                a.seq
            )));
        }
        Ok(())
    }

    fn audit_page(&mut self, from: i64, limit: usize) -> StoreResult<Vec<AuditRow>> {
        self.all(
            &format!(
                "SELECT {AUDIT_COLS} FROM objectos_audit WHERE seq >= ?1 ORDER BY seq LIMIT ?2"
            ),
            args![from, limit as i64],
            audit_from,
        )
    }

    fn audit_page_text(&mut self, from: i64, limit: usize) -> StoreResult<Vec<AuditRowText>> {
        self.all(
            &format!(
                "SELECT {AUDIT_COLS} FROM objectos_audit WHERE seq >= ?1 ORDER BY seq LIMIT ?2"
            ),
            args![from, limit as i64],
            audit_text_from,
        )
    }

    fn audit_last(&mut self, n: usize) -> StoreResult<Vec<AuditRow>> {
        let mut rows = self.all(
            &format!("SELECT {AUDIT_COLS} FROM objectos_audit ORDER BY seq DESC LIMIT ?1"),
            args![n as i64],
            audit_from,
        )?;
        rows.reverse();
        Ok(rows)
    }

    fn audit_by_seq(&mut self, seq: i64) -> StoreResult<Option<AuditRow>> {
        self.one(
            &format!("SELECT {AUDIT_COLS} FROM objectos_audit WHERE seq = ?1"),
            args![seq],
            audit_from,
        )
    }

    fn audit_first_seq(&mut self) -> StoreResult<Option<i64>> {
        Ok(self
            .one("SELECT min(seq) FROM objectos_audit", &[], |r| r.opt_int())?
            .flatten())
    }

    fn audit_seq_by_time(&mut self, time: &str, bound: TimeBound) -> StoreResult<Option<i64>> {
        let sql = match bound {
            TimeBound::FirstAtOrAfter => {
                "SELECT seq FROM objectos_audit WHERE time >= ?1 ORDER BY seq LIMIT 1"
            }
            TimeBound::LastAtOrBefore => {
                "SELECT seq FROM objectos_audit WHERE time <= ?1 ORDER BY seq DESC LIMIT 1"
            }
            TimeBound::LastBefore => {
                "SELECT seq FROM objectos_audit WHERE time < ?1 ORDER BY seq DESC LIMIT 1"
            }
        };
        self.one(sql, args![time], |r| r.int())
    }

    fn audit_anchors(&mut self) -> StoreResult<Vec<AuditAnchor>> {
        self.all(
            &format!("SELECT {ANCHOR_COLS} FROM objectos_audit_anchors ORDER BY last_seq"),
            &[],
            anchor_from,
        )
    }

    fn audit_anchor_insert(&mut self, a: &AuditAnchor) -> StoreResult<u64> {
        let range = "SELECT count(*) FROM objectos_audit WHERE seq BETWEEN ?1 AND ?2";
        let before = self.count(range, args![a.first_seq, a.last_seq])?;
        let written = self.exec(
            &format!(
                "INSERT INTO objectos_audit_anchors ({ANCHOR_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ),
            args![
                a.first_seq,
                a.last_seq,
                &a.first_prev_hash,
                &a.last_hash,
                a.count,
                &a.archive_sha256,
                &a.archived_at,
                a.last_artifact_apply.as_ref()
            ],
        )?;
        let after = self.count(range, args![a.first_seq, a.last_seq])?;
        // A trigger that swallowed the anchor or kept its rows must not pass unseen.
        if written != 1 || after != 0 {
            return Err(StoreError::Immutable(format!(
                "the anchor of seqs {}..={} was not written with its rows removed",
                a.first_seq, a.last_seq
            )));
        }
        Ok(before as u64)
    }

    fn throttle_get(&mut self, key: &str) -> StoreResult<Option<ThrottleRow>> {
        self.one(
            &format!("SELECT {THROTTLE_COLS} FROM objectos_signin_throttle WHERE key = ?1"),
            args![key],
            throttle_from,
        )
    }

    fn throttle_put(&mut self, t: &ThrottleRow) -> StoreResult<()> {
        self.exec(
            &format!("INSERT INTO objectos_signin_throttle ({THROTTLE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, window_start = excluded.window_start, blocked_until = excluded.blocked_until, reported = excluded.reported"),
            args![
                &t.key,
                t.failures,
                &t.window_start,
                t.blocked_until.as_ref(),
                t.reported
            ],
        )?;
        Ok(())
    }

    fn throttle_delete(&mut self, key: &str) -> StoreResult<()> {
        self.exec(
            "DELETE FROM objectos_signin_throttle WHERE key = ?1",
            args![key],
        )?;
        Ok(())
    }

    fn throttle_prune(&mut self, before: &str) -> StoreResult<()> {
        self.exec(
            "DELETE FROM objectos_signin_throttle WHERE window_start < ?1 AND (blocked_until IS NULL OR blocked_until < ?1)",
            args![before],
        )?;
        Ok(())
    }

    fn audit_guards_missing(&mut self) -> StoreResult<Vec<String>> {
        Engine::audit_guards_missing(self)
    }

    fn audit_guards_restore(&mut self) -> StoreResult<()> {
        Engine::audit_guards_restore(self)
    }

    fn pending_insert(&mut self, p: &PendingRow) -> StoreResult<()> {
        self.exec(
            &format!("INSERT INTO objectos_pending_actions ({PENDING_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"),
            args![
                &p.id,
                &p.org_id,
                &p.kind,
                &p.status,
                &p.requester_id,
                p.key_id.as_ref(),
                p.client.as_ref().map(canonical_text),
                &p.tool,
                canonical_text(&p.input),
                p.object.as_ref(),
                p.record_id.as_ref(),
                p.before_hash.as_ref(),
                canonical_text(&p.proposal),
                &p.created_at,
                &p.expires_at,
                p.decided_by.as_ref(),
                p.decided_at.as_ref(),
                p.reason.as_ref(),
                p.result.as_ref(),
                p.before_version
            ],
        )?;
        Ok(())
    }

    fn pending_get(&mut self, id: &str) -> StoreResult<Option<PendingRow>> {
        self.one(
            &format!("SELECT {PENDING_COLS} FROM objectos_pending_actions WHERE id = ?1"),
            args![id],
            pending_from,
        )
    }

    fn pending_list(&mut self, org_id: &str, status: Option<&str>) -> StoreResult<Vec<PendingRow>> {
        match status {
            Some(st) => self.all(
                &format!("SELECT {PENDING_COLS} FROM objectos_pending_actions WHERE org_id = ?1 AND status = ?2 ORDER BY created_at, id"),
                args![org_id, st],
                pending_from,
            ),
            None => self.all(
                &format!("SELECT {PENDING_COLS} FROM objectos_pending_actions WHERE org_id = ?1 ORDER BY created_at, id"),
                args![org_id],
                pending_from,
            ),
        }
    }

    fn pending_of_user(&mut self, user_id: &str, status: &str) -> StoreResult<Vec<PendingRow>> {
        self.all(
            &format!("SELECT {PENDING_COLS} FROM objectos_pending_actions WHERE requester_id = ?1 AND status = ?2 ORDER BY created_at, id"),
            args![user_id, status],
            pending_from,
        )
    }

    fn pending_count_for_key(&mut self, key_id: &str) -> StoreResult<u64> {
        Ok(self.count(
            "SELECT count(*) FROM objectos_pending_actions WHERE key_id = ?1 AND status = 'pending'",
            args![key_id],
        )? as u64)
    }

    fn pending_expired(&mut self, now: &str) -> StoreResult<Vec<PendingRow>> {
        self.all(
            &format!("SELECT {PENDING_COLS} FROM objectos_pending_actions WHERE status = 'pending' AND expires_at <= ?1 ORDER BY expires_at"),
            args![now],
            pending_from,
        )
    }

    fn pending_transition(
        &mut self,
        id: &str,
        from: &[&str],
        to: &str,
        decided_by: Option<&str>,
        at: &str,
        reason: Option<&str>,
        result: Option<&str>,
    ) -> StoreResult<bool> {
        let marks = vec!["?"; from.len()].join(", ");
        let sql = format!(
            "UPDATE objectos_pending_actions SET status = ?, decided_by = coalesce(?, decided_by), decided_at = ?, reason = coalesce(?, reason), result = coalesce(?, result) WHERE id = ? AND status IN ({marks})"
        );
        let mut params: Vec<SqlValue> = vec![
            to.into(),
            decided_by.into(),
            at.into(),
            reason.into(),
            result.into(),
            id.into(),
        ];
        params.extend(from.iter().map(|f| SqlValue::from(*f)));
        Ok(self.exec(&sql, &params)? == 1)
    }

    fn audit_last_success(&mut self, action: &str) -> StoreResult<Option<AuditRow>> {
        self.one(
            &format!(
                "SELECT {AUDIT_COLS} FROM objectos_audit WHERE action = ?1 AND outcome = 'success' ORDER BY seq DESC LIMIT 1"
            ),
            args![action],
            audit_from,
        )
    }

    fn artifacts_recent(&mut self, n: usize) -> StoreResult<Vec<AppliedArtifact>> {
        self.all(
            &format!("SELECT {ARTIFACT_COLS} FROM objectos_artifacts ORDER BY seq DESC LIMIT ?1"),
            args![n as i64],
            artifact_from,
        )
    }

    fn integrity_check(&mut self) -> StoreResult<Vec<String>> {
        Engine::integrity_check(self)
    }

    fn schema_version(&mut self) -> StoreResult<i64> {
        Engine::schema_version(self)
    }

    fn optimize(&mut self) -> StoreResult<()> {
        Engine::optimize(self)
    }
}

/// Whether every row `cond` keeps is found by equalities and ranges alone
/// (no OR, no `IN` of several values, no subquery): the rows of an index
/// lookup, in the index's order.
fn conjunction(cond: &Cond) -> bool {
    match cond {
        Cond::True | Cond::False | Cond::Cmp { .. } | Cond::Text { .. } | Cond::Null { .. } => true,
        Cond::And(items) => items.iter().all(conjunction),
        Cond::In { values, negate, .. } => *negate || values.len() <= 1,
        Cond::Or(_) | Cond::Not(_) | Cond::SharedWith { .. } | Cond::ParentIn { .. } => false,
    }
}

/// Whether the rows `cond` keeps (its explicit shares inlined) can be read in
/// `order` straight from the index that finds them, so that the planner must
/// be left free to walk it in that order. The access indexes of a record table
/// end in `id` (see `instance::apply::indexes_for`), so an order by `id` alone
/// is the order in which such an index holds the rows of a [`conjunction`]: a
/// page is then its first rows, where finding every matching row and sorting
/// them costs as many rows as the condition keeps (a rep's deals in one stage:
/// thousands at a million records).
fn in_index_order(order: &[(String, bool)], cond: &Cond) -> bool {
    matches!(order, [(column, _)] if column == "id") && conjunction(cond)
}

/// The most branches of an OR a page is read by branch (see [`union_page`]).
pub(crate) const MAX_BRANCHES: usize = 8;

/// Where `cond` is an OR (alone, or beside conditions every branch shares),
/// each branch with what it shares: the rows of the OR are those of the
/// branches together.
fn branches(cond: &Cond) -> Option<Vec<Cond>> {
    let (shared, branches): (Vec<&Cond>, &[Cond]) = match cond {
        Cond::Or(branches) => (Vec::new(), branches),
        Cond::And(items) => {
            let or = items.iter().position(|c| matches!(c, Cond::Or(_)))?;
            let Cond::Or(branches) = &items[or] else {
                return None;
            };
            let shared = items
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != or)
                .map(|(_, c)| c)
                .collect();
            (shared, branches)
        }
        _ => return None,
    };
    (branches.len() <= MAX_BRANCHES).then(|| {
        branches
            .iter()
            .map(|branch| {
                Cond::and(
                    shared
                        .iter()
                        .map(|c| (*c).clone())
                        .chain([branch.clone()])
                        .collect(),
                )
            })
            .collect()
    })
}

/// A page in `id` order of an OR whose branches an index each holds in that
/// order (a rep's own records or those a sharing rule opens, say), read branch
/// by branch: the first `offset + limit` ids of each branch (read from its
/// index without a sort where the branch is a [`conjunction`]), then the page
/// among those few. The page of the whole OR is among them: a row before it in
/// the order is before it in its own branch too. Planned as one lookup per
/// branch and a sort of every match instead, a rep's unfiltered list read a
/// hundred thousand rows at a million records to show twenty.
fn union_page(
    dialect: &Dialect,
    select: &Select,
    cond: &Cond,
    sql: &mut String,
    params: &mut Vec<SqlValue>,
) -> bool {
    use std::fmt::Write as _;
    let ([(column, desc)], Some(limit), true) =
        (select.order.as_slice(), select.limit, select.selective)
    else {
        return false;
    };
    if column != "id" {
        return false;
    }
    let Some(branches) = branches(cond) else {
        return false;
    };
    if !branches.iter().any(conjunction) {
        return false;
    }
    let direction = if *desc { "DESC" } else { "ASC" };
    let table = table_of(&select.object);
    sql.push_str("\"id\" IN (");
    for (i, branch) in branches.iter().enumerate() {
        if i > 0 {
            sql.push_str(" UNION ALL ");
        }
        let _ = write!(sql, "SELECT \"id\" FROM (SELECT \"id\" FROM {table} WHERE ");
        render(dialect, branch, sql, params);
        let prefix = if conjunction(branch) {
            ""
        } else {
            dialect.selective_order
        };
        let _ = write!(sql, " ORDER BY {prefix}\"id\" {direction} LIMIT ?) AS b{i}");
        let first = select.offset.saturating_add(limit);
        params.push(SqlValue::Integer(i64::try_from(first).unwrap_or(i64::MAX)));
    }
    let _ = write!(
        sql,
        ") ORDER BY {}\"id\" {direction}",
        dialect.selective_order
    );
    true
}

/// The statement and parameters that read `select`'s page.
pub(crate) fn select_sql<E: Engine + ?Sized>(
    engine: &mut E,
    select: &Select,
) -> StoreResult<(String, Vec<SqlValue>)> {
    let mut sql = format!(
        "SELECT {} FROM {} WHERE ",
        select
            .columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", "),
        table_of(&select.object)
    );
    let mut params = Vec::new();
    let cond = engine.inline_shares(&select.cond)?;
    if !union_page(engine.dialect(), select, &cond, &mut sql, &mut params) {
        render(engine.dialect(), &cond, &mut sql, &mut params);
        if !select.order.is_empty() {
            sql.push_str(" ORDER BY ");
            // When the condition is selective, find the few rows by the
            // condition's own indexes and sort those (see `Dialect`), unless
            // those indexes already hold them in the order asked.
            let prefix = if select.selective && !in_index_order(&select.order, &cond) {
                engine.dialect().selective_order
            } else {
                ""
            };
            sql.push_str(
                &select
                    .order
                    .iter()
                    .map(|(c, desc)| {
                        format!(
                            "{prefix}{} {}",
                            quote(c),
                            if *desc { "DESC" } else { "ASC" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
    }
    if let Some(limit) = select.limit {
        sql.push_str(" LIMIT ? OFFSET ?");
        params.push(SqlValue::Integer(limit as i64));
        params.push(SqlValue::Integer(select.offset as i64));
    }
    Ok((sql, params))
}

impl<E: Engine> RecordTx for E {
    fn record_select(&mut self, select: &Select) -> StoreResult<Vec<Vec<SqlValue>>> {
        let (sql, params) = select_sql(self, select)?;
        tracing::trace!(%sql, "select");
        self.rows(&sql, &params)
    }

    fn record_count(&mut self, object: &str, cond: &Cond) -> StoreResult<u64> {
        let mut sql = format!("SELECT count(*) FROM {} WHERE ", table_of(object));
        let mut params = Vec::new();
        let cond = self.inline_shares(cond)?;
        render(self.dialect(), &cond, &mut sql, &mut params);
        Ok(self.count(&sql, &params)? as u64)
    }

    fn record_aggregate(&mut self, agg: &Aggregate) -> StoreResult<Vec<Vec<SqlValue>>> {
        let groups: Vec<String> = agg.group_by.iter().map(|g| self.group_expr(g)).collect();
        let mut cols = groups.clone();
        for (f, column) in &agg.aggs {
            cols.push(match (f, column) {
                (AggFn::CountDistinct, Some(c)) => format!("count(DISTINCT {})", quote(c)),
                (f, Some(c)) => format!("{}({})", f.as_str(), quote(c)),
                (f, None) => format!("{}(*)", f.as_str()),
            });
        }
        let mut sql = format!(
            "SELECT {} FROM {} WHERE ",
            cols.join(", "),
            table_of(&agg.object)
        );
        let mut params = Vec::new();
        let cond = self.inline_shares(&agg.cond)?;
        render(self.dialect(), &cond, &mut sql, &mut params);
        if !groups.is_empty() {
            let groups = groups.join(", ");
            sql.push_str(&format!(" GROUP BY {groups} ORDER BY {groups}"));
        }
        sql.push_str(" LIMIT ?");
        params.push(SqlValue::Integer(agg.limit as i64));
        tracing::trace!(%sql, "aggregate");
        self.rows(&sql, &params)
    }

    fn record_insert(&mut self, object: &str, values: &[(String, SqlValue)]) -> StoreResult<()> {
        let cols: Vec<String> = values.iter().map(|(c, _)| quote(c)).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            table_of(object),
            cols.join(", "),
            vec!["?"; cols.len()].join(", ")
        );
        let params: Vec<SqlValue> = values.iter().map(|(_, v)| v.clone()).collect();
        self.exec(&sql, &params)?;
        Ok(())
    }

    fn record_update(
        &mut self,
        object: &str,
        id: &str,
        values: &[(String, SqlValue)],
    ) -> StoreResult<()> {
        if values.is_empty() {
            return Ok(());
        }
        let sets: Vec<String> = values
            .iter()
            .map(|(c, _)| format!("{} = ?", quote(c)))
            .collect();
        // Every change makes a new version of the record.
        let sql = format!(
            "UPDATE {} SET {}, \"row_version\" = \"row_version\" + 1 WHERE \"id\" = ?",
            table_of(object),
            sets.join(", ")
        );
        let mut params: Vec<SqlValue> = values.iter().map(|(_, v)| v.clone()).collect();
        params.push(SqlValue::Text(id.to_string()));
        self.exec(&sql, &params)?;
        Ok(())
    }

    fn record_delete(&mut self, object: &str, id: &str) -> StoreResult<bool> {
        let sql = format!("DELETE FROM {} WHERE \"id\" = ?1", table_of(object));
        let n = self.exec(&sql, args![id])?;
        if n > 0 {
            self.exec(
                "DELETE FROM objectos_shares WHERE object = ?1 AND record_id = ?2",
                args![object, id],
            )?;
        }
        Ok(n > 0)
    }

    fn record_transfer(
        &mut self,
        object: &str,
        from: &str,
        to: &str,
        at: &str,
    ) -> StoreResult<Vec<String>> {
        let sql = format!(
            "UPDATE {} SET \"owner_id\" = ?1, \"updated_at\" = ?3, \"row_version\" = \"row_version\" + 1 WHERE \"owner_id\" = ?2 RETURNING \"id\"",
            table_of(object)
        );
        let mut ids = self.all(&sql, args![to, from, at], |r| r.text())?;
        ids.sort();
        Ok(ids)
    }

    fn share_insert(&mut self, s: &ShareRow) -> StoreResult<()> {
        self.drop_unsound(
            &seal::SHARES,
            args![&s.object, &s.record_id, &s.grantee_kind, &s.grantee],
        )?;
        self.exec(
            &format!("INSERT INTO objectos_shares ({SHARE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (object, record_id, grantee_kind, grantee) DO UPDATE SET edit = excluded.edit"),
            args![
                &s.id,
                &s.object,
                &s.record_id,
                &s.grantee_kind,
                &s.grantee,
                s.edit,
                &s.created_by,
                &s.created_at
            ],
        )?;
        self.reseal(
            &seal::SHARES,
            args![&s.object, &s.record_id, &s.grantee_kind, &s.grantee],
        )
    }

    fn share_delete(
        &mut self,
        object: &str,
        record_id: &str,
        grantee_kind: &str,
        grantee: &str,
    ) -> StoreResult<bool> {
        Ok(self.exec(
            "DELETE FROM objectos_shares WHERE object = ?1 AND record_id = ?2 AND grantee_kind = ?3 AND grantee = ?4",
            args![object, record_id, grantee_kind, grantee],
        )? > 0)
    }

    fn shares_of(&mut self, object: &str, record_id: &str) -> StoreResult<Vec<ShareRow>> {
        self.sealed(
            &seal::SHARES,
            "WHERE object = ?1 AND record_id = ?2 ORDER BY grantee_kind, grantee",
            args![object, record_id],
            share_from,
        )
    }

    fn artifact_seq(&mut self) -> StoreResult<Option<i64>> {
        Ok(self
            .one("SELECT max(seq) FROM objectos_artifacts", &[], |r| {
                r.opt_int()
            })?
            .flatten())
    }

    fn change_counter(&mut self) -> StoreResult<i64> {
        Ok(self
            .one(
                "SELECT counter FROM objectos_changes WHERE id = 1",
                &[],
                |r| r.int(),
            )?
            .unwrap_or(0))
    }
}
