//! A transaction on SQLite as the shared SQL layer sees it: the dialect, rows
//! and statements, schema changes to record tables, audit-guard checks, and
//! values to and from SQLite.

use rusqlite::Connection;

use super::schema::{GUARDED_TABLES, ROW_VERSION_COLUMN, squash_whitespace};
use super::*;

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
}
