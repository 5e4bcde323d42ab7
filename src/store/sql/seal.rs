//! Sealed rows: the rows that grant power — users (their password and whether
//! they are disabled), organization and team memberships, permission-set
//! assignments, API keys, sessions and explicit shares — carry a MAC by a key
//! derived from the instance key. Whoever can write the database but does not
//! hold the instance key (a PostgreSQL administrator, a stolen database
//! credential) cannot forge or alter such a row: one whose MAC is missing or
//! wrong is ignored as if absent, and `objectos doctor` names it.
//!
//! The MAC covers exactly the columns the store reads back (a table's column
//! list below, in that order), each as its type and bytes, and the table's name.
//! Every engine gives back the same values for the same row (flags as 0/1,
//! times as text), so a MAC made on SQLite verifies on PostgreSQL and back.
//! Writes re-seal the rows they touched; a key rotation re-seals every row that
//! verified under the old key. What a MAC cannot stop is putting back a row that
//! was removed (a revoked assignment, with its old MAC): the audit log records
//! every removal.

use hmac::Mac;

use super::Engine;
use crate::store::{SqlValue, StoreError, StoreResult};

/// The migration that gives every sealed table its `mac` column (SQLite's 8th,
/// PostgreSQL's 3rd). Rows made before it are sealed once, by the first open
/// that has the key (see `Instance::open`).
pub const MIGRATION: &str = "
    ALTER TABLE objectos_users ADD COLUMN mac text;
    ALTER TABLE objectos_memberships ADD COLUMN mac text;
    ALTER TABLE objectos_team_members ADD COLUMN mac text;
    ALTER TABLE objectos_assignments ADD COLUMN mac text;
    ALTER TABLE objectos_api_keys ADD COLUMN mac text;
    ALTER TABLE objectos_sessions ADD COLUMN mac text;
    ALTER TABLE objectos_shares ADD COLUMN mac text;
";

/// HKDF info for the row key: a new label is a new key.
const ROW_KEY_LABEL: &str = "objectos row mac v1";

/// The key that seals power-granting rows.
#[derive(Clone)]
pub struct RowKey {
    key: [u8; 32],
}

impl std::fmt::Debug for RowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RowKey(<redacted>)")
    }
}

impl RowKey {
    /// From the instance identity's secret line (`AGE-SECRET-KEY-1…`) as bytes:
    /// HKDF-SHA256, no salt, [`ROW_KEY_LABEL`] as its info.
    pub fn derive(secret: &[u8]) -> RowKey {
        let mut key = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(None, secret)
            .expand(ROW_KEY_LABEL.as_bytes(), &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 length");
        RowKey { key }
    }

    /// The MAC of one row of `table` (hex).
    pub fn mac(&self, table: &str, values: &[SqlValue]) -> String {
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC takes any key length");
        let mut put = |tag: u8, bytes: &[u8]| {
            mac.update(&[tag]);
            mac.update(&(bytes.len() as u64).to_be_bytes());
            mac.update(bytes);
        };
        put(b'T', table.as_bytes());
        for value in values {
            match value {
                SqlValue::Null => put(b'n', &[]),
                SqlValue::Integer(i) => put(b'i', &i.to_be_bytes()),
                SqlValue::Real(r) => put(b'r', &r.to_bits().to_be_bytes()),
                SqlValue::Text(t) => put(b't', t.as_bytes()),
                SqlValue::Blob(b) => put(b'b', b),
            }
        }
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `mac` is this key's MAC of the row (in constant time).
    fn verifies(&self, table: &str, values: &[SqlValue], mac: &SqlValue) -> bool {
        let SqlValue::Text(mac) = mac else {
            return false;
        };
        let want = self.mac(table, values);
        want.len() == mac.len()
            && want
                .bytes()
                .zip(mac.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// A table whose rows are sealed.
pub struct Sealed {
    pub table: &'static str,
    /// The columns the MAC covers, as the store reads them back.
    pub cols: &'static str,
    /// The columns that name one row.
    pub ident: &'static [&'static str],
}

impl Sealed {
    /// How many columns the MAC covers.
    pub fn width(&self) -> usize {
        self.cols.split(',').count()
    }
}

pub const USERS: Sealed = Sealed {
    table: "objectos_users",
    cols: super::USER_COLS,
    ident: &["id"],
};
pub const MEMBERSHIPS: Sealed = Sealed {
    table: "objectos_memberships",
    cols: "user_id, org_id, created_at",
    ident: &["user_id", "org_id"],
};
pub const TEAM_MEMBERS: Sealed = Sealed {
    table: "objectos_team_members",
    cols: "team_id, user_id",
    ident: &["team_id", "user_id"],
};
pub const ASSIGNMENTS: Sealed = Sealed {
    table: "objectos_assignments",
    cols: super::ASSIGNMENT_COLS,
    ident: &["user_id", "permset", "org_id"],
};
pub const API_KEYS: Sealed = Sealed {
    table: "objectos_api_keys",
    cols: super::KEY_COLS,
    ident: &["id"],
};
pub const SESSIONS: Sealed = Sealed {
    table: "objectos_sessions",
    cols: super::SESSION_COLS,
    ident: &["id"],
};
pub const SHARES: Sealed = Sealed {
    table: "objectos_shares",
    cols: super::SHARE_COLS,
    ident: &["object", "record_id", "grantee_kind", "grantee"],
};

/// Every sealed table.
pub const ALL: [&Sealed; 7] = [
    &USERS,
    &MEMBERSHIPS,
    &TEAM_MEMBERS,
    &ASSIGNMENTS,
    &API_KEYS,
    &SESSIONS,
    &SHARES,
];

/// A sealed row whose MAC is missing or wrong (for `doctor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsealedRow {
    pub table: &'static str,
    /// The row's identifying columns, `name=value` joined by spaces.
    pub row: String,
    /// No MAC at all (rather than a wrong one).
    pub missing: bool,
}

/// What the rest of the shared SQL uses to seal and check rows.
pub(super) trait Sealing: Engine {
    /// The key, or an error: nothing may write a power-granting row unsealed.
    fn sealing_key(&self) -> StoreResult<&super::RowKey> {
        self.row_key().ok_or_else(|| {
            StoreError::Backend(
                "this store was opened without the instance's row key, so it cannot write rows that grant access".into(),
            )
        })
    }

    /// Seal again the rows of `t` named by `ident` (one value per ident column),
    /// after a write that made or changed them.
    fn reseal(&mut self, t: &Sealed, ident: &[SqlValue]) -> StoreResult<()> {
        let key = self.sealing_key()?.clone();
        let cond = where_ident(t);
        let rows = self.rows(
            &format!("SELECT {} FROM {} WHERE {cond}", t.cols, t.table),
            ident,
        )?;
        for row in rows {
            let mac = key.mac(t.table, &row);
            let mut params = ident.to_vec();
            params.push(SqlValue::Text(mac));
            self.exec(
                &format!(
                    "UPDATE {} SET mac = ?{} WHERE {cond}",
                    t.table,
                    ident.len() + 1
                ),
                &params,
            )?;
        }
        Ok(())
    }

    /// Whether the row of `t` named by `ident` exists and its seal verifies.
    fn sound(&mut self, t: &Sealed, ident: &[SqlValue]) -> StoreResult<bool> {
        let cond = where_ident(t);
        let rows = self.rows(
            &format!("SELECT {}, mac FROM {} WHERE {cond}", t.cols, t.table),
            ident,
        )?;
        Ok(rows.into_iter().any(|mut row| self.unseal(t, &mut row, 0)))
    }

    /// Remove the row of `t` named by `ident` if it is there unsealed, so that
    /// an insert or upsert makes a row of its own instead of adopting (and
    /// sealing) a forged one.
    fn drop_unsound(&mut self, t: &Sealed, ident: &[SqlValue]) -> StoreResult<()> {
        let cond = where_ident(t);
        let rows = self.rows(
            &format!("SELECT {}, mac FROM {} WHERE {cond}", t.cols, t.table),
            ident,
        )?;
        let forged = rows.into_iter().any(|mut row| !self.unseal(t, &mut row, 0));
        if forged {
            self.exec(&format!("DELETE FROM {} WHERE {cond}", t.table), ident)?;
        }
        Ok(())
    }

    /// Check a row read as `t`'s columns followed by its MAC (at `at`), and take
    /// the MAC out of it: `false` when it does not verify (the row is then to
    /// be ignored). Without a key nothing verifies.
    fn unseal(&self, t: &Sealed, row: &mut Vec<SqlValue>, at: usize) -> bool {
        let n = t.width();
        if row.len() < at + n + 1 {
            return false;
        }
        let mac = row.remove(at + n);
        self.row_key()
            .is_some_and(|k| k.verifies(t.table, &row[at..at + n], &mac))
    }

    /// The rows of a statement that selects `t`'s columns then `mac` (first, so
    /// at 0), with every row that does not verify left out.
    fn sealed_rows(
        &mut self,
        t: &Sealed,
        sql: &str,
        params: &[SqlValue],
    ) -> StoreResult<Vec<Vec<SqlValue>>> {
        let mut rows = self.rows(sql, params)?;
        rows.retain_mut(|row| self.unseal(t, row, 0));
        Ok(rows)
    }

    /// The sealed rows of `t` that match `cond` (over its columns), mapped.
    fn sealed<T>(
        &mut self,
        t: &Sealed,
        cond: &str,
        params: &[SqlValue],
        map: super::Map<T>,
    ) -> StoreResult<Vec<T>> {
        let sql = format!("SELECT {}, mac FROM {} {cond}", t.cols, t.table);
        self.sealed_rows(t, &sql, params)?
            .into_iter()
            .map(|row| map(&mut super::Cols(row.into_iter())))
            .collect()
    }

    /// Seal every row of every sealed table: with `from`, the rows that verify
    /// under `from` (a key rotation); without, the rows that have no MAC yet
    /// (the upgrade that brought sealing). How many rows were sealed.
    fn reseal_all(&mut self, from: Option<&super::RowKey>, to: &super::RowKey) -> StoreResult<u64> {
        let mut sealed = 0;
        for t in ALL {
            let n = t.width();
            let idents = t.ident.join(", ");
            let rows = self.rows(
                &format!("SELECT {}, mac, {idents} FROM {}", t.cols, t.table),
                &[],
            )?;
            for row in rows {
                let (values, rest) = row.split_at(n);
                let (mac, ident) = (&rest[0], &rest[1..]);
                let due = match from {
                    Some(old) => old.verifies(t.table, values, mac),
                    None => matches!(mac, SqlValue::Null),
                };
                if !due {
                    continue;
                }
                let cond = where_ident(t);
                let mut params = ident.to_vec();
                params.push(SqlValue::Text(to.mac(t.table, values)));
                self.exec(
                    &format!(
                        "UPDATE {} SET mac = ?{} WHERE {cond}",
                        t.table,
                        ident.len() + 1
                    ),
                    &params,
                )?;
                sealed += 1;
            }
        }
        Ok(sealed)
    }

    /// Every sealed row whose MAC is missing or wrong.
    fn unsealed_rows(&mut self) -> StoreResult<Vec<UnsealedRow>> {
        let mut found = Vec::new();
        for t in ALL {
            let n = t.width();
            let idents = t.ident.join(", ");
            let rows = self.rows(
                &format!(
                    "SELECT {}, mac, {idents} FROM {} ORDER BY {idents}",
                    t.cols, t.table
                ),
                &[],
            )?;
            for row in rows {
                let (values, rest) = row.split_at(n);
                let (mac, ident) = (&rest[0], &rest[1..]);
                let ok = self
                    .row_key()
                    .is_some_and(|k| k.verifies(t.table, values, mac));
                if !ok {
                    let row = t
                        .ident
                        .iter()
                        .zip(ident)
                        .map(|(c, v)| format!("{c}={}", show(v)))
                        .collect::<Vec<_>>()
                        .join(" ");
                    found.push(UnsealedRow {
                        table: t.table,
                        row,
                        missing: matches!(mac, SqlValue::Null),
                    });
                }
            }
        }
        Ok(found)
    }
}

impl<E: Engine + ?Sized> Sealing for E {}

/// `a = ?1 AND b = ?2 …` over the columns that name one row of `t`.
fn where_ident(t: &Sealed) -> String {
    t.ident
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ?{}", i + 1))
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn show(v: &SqlValue) -> String {
    match v {
        SqlValue::Null => "null".into(),
        SqlValue::Integer(i) => i.to_string(),
        SqlValue::Real(r) => r.to_string(),
        SqlValue::Text(t) => format!("{t:?}"),
        SqlValue::Blob(b) => format!("<{} bytes>", b.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mac_binds_the_table_every_value_and_its_type() {
        let k = RowKey::derive(b"AGE-SECRET-KEY-1TEST");
        let row = [
            SqlValue::Text("a".into()),
            SqlValue::Integer(1),
            SqlValue::Null,
        ];
        let mac = SqlValue::Text(k.mac("t", &row));
        assert!(k.verifies("t", &row, &mac));
        assert!(!k.verifies("u", &row, &mac));
        let mut changed = row.clone();
        changed[1] = SqlValue::Integer(0);
        assert!(!k.verifies("t", &changed, &mac));
        changed[1] = SqlValue::Text("1".into());
        assert!(!k.verifies("t", &changed, &mac));
        // Boundaries between values are part of the MAC.
        let split = [SqlValue::Text("ab".into()), SqlValue::Text(String::new())];
        let joined = [SqlValue::Text("a".into()), SqlValue::Text("b".into())];
        assert_ne!(k.mac("t", &split), k.mac("t", &joined));
        assert!(!k.verifies("t", &row, &SqlValue::Null));
        let other = RowKey::derive(b"AGE-SECRET-KEY-1OTHER");
        assert!(!other.verifies("t", &row, &mac));
    }
}
