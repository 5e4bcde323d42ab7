//! A reference model of record access and field security, written from the
//! product contract (who reaches which record, which fields they see) and
//! apart from `src/authz`, checked against the real runtime with proptest:
//! random permission sets, users, teams, organizations, sharing rules,
//! explicit shares, master-detail parents and records; every surface's answer
//! (list, get, query with a filter, aggregate, export, MCP `query_records`)
//! must be the model's, down to which fields appear.
//!
//! `OBJECTOS_MODEL_CASES` sets how many worlds are tried (a few by default, so
//! that `cargo test` stays quick); failures shrink to a small world and are
//! kept as seeds in `tests/proptest-regressions/model.txt`, tried first on
//! every run.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use serde_json::{Value, json};

use crate::util::*;

// ------------------------------------------------------------------ the world

const OBJECTS: [&str; 2] = ["pm_parent", "pm_child"];
const PARENT: usize = 0;
const CHILD: usize = 1;
/// Fields each object defines (beside the system ones), and which is
/// sensitive (in `sensitiveFields`: only an explicit grant shows it).
const FIELDS: [&[&str]; 2] = [
    &["name", "amount", "note", "secret"],
    &["parent", "label", "score"],
];
const SENSITIVE: &[(usize, &str)] = &[(PARENT, "secret")];
/// The field each object is filtered and summed on.
const NUMBER: [&str; 2] = ["amount", "score"];
const SYSTEM: &[&str] = &[
    "id",
    "owner_id",
    "organization_id",
    "created_by",
    "created_at",
    "updated_by",
    "updated_at",
    "row_version",
];
const ORGS: usize = 2;
const USERS: usize = 4;
const TEAMS: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Sharing {
    Private,
    PublicRead,
    PublicReadWrite,
    ControlledByParent,
}

impl Sharing {
    fn name(self) -> &'static str {
        match self {
            Sharing::Private => "private",
            Sharing::PublicRead => "public_read",
            Sharing::PublicReadWrite => "public_read_write",
            Sharing::ControlledByParent => "controlled_by_parent",
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Rights {
    read: bool,
    create: bool,
    edit: bool,
    delete: bool,
    view_all: bool,
    modify_all: bool,
    export: bool,
}

/// What a set says of one field: nothing, or `readable`/`editable`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum FieldGrant {
    Hidden,
    ReadOnly,
    ReadWrite,
}

#[derive(Debug, Clone)]
struct PermSet {
    objects: [Option<Rights>; 2],
    fields: BTreeMap<(usize, &'static str), FieldGrant>,
}

#[derive(Debug, Clone)]
struct User {
    org: usize,
    sets: BTreeSet<usize>,
    teams: BTreeSet<usize>,
}

/// A sharing rule on parents: those with `amount >= min` go to a team or a user.
#[derive(Debug, Clone)]
struct Rule {
    min: i64,
    to: Grantee,
    edit: bool,
}

#[derive(Debug, Clone)]
struct Record {
    object: usize,
    owner: usize,
    number: i64,
    /// A child's parent (an index into the parents).
    parent: usize,
}

#[derive(Debug, Clone, Copy)]
enum Grantee {
    User(usize),
    Team(usize),
}

#[derive(Debug, Clone)]
struct Share {
    record: usize,
    to: Grantee,
    edit: bool,
}

#[derive(Debug, Clone)]
struct World {
    sharing: [Sharing; 2],
    sets: Vec<PermSet>,
    users: Vec<User>,
    rules: Vec<Rule>,
    /// Parents first, then children.
    records: Vec<Record>,
    shares: Vec<Share>,
}

// ------------------------------------------------------------------ the model

impl World {
    fn org_of(&self, record: usize) -> usize {
        let r = &self.records[record];
        if r.object == CHILD {
            return self.org_of(r.parent);
        }
        self.users[r.owner].org
    }

    /// The user's sets that grant any right on `object` (every right implies read).
    fn reading_sets(&self, user: usize, object: usize) -> Vec<&PermSet> {
        self.users[user]
            .sets
            .iter()
            .map(|s| &self.sets[*s])
            .filter(|s| {
                s.objects[object].is_some_and(|r| {
                    r.read || r.create || r.edit || r.delete || r.view_all || r.modify_all
                })
            })
            .collect()
    }

    fn object_readable(&self, user: usize, object: usize) -> bool {
        !self.reading_sets(user, object).is_empty()
    }

    fn sees_all(&self, user: usize, object: usize) -> bool {
        self.reading_sets(user, object)
            .iter()
            .any(|s| s.objects[object].is_some_and(|r| r.view_all || r.modify_all))
    }

    fn can_read(&self, user: usize, record: usize) -> bool {
        let r = &self.records[record];
        if !self.object_readable(user, r.object) || self.users[user].org != self.org_of(record) {
            return false;
        }
        if self.sharing[r.object] == Sharing::ControlledByParent {
            return self.can_read(user, r.parent);
        }
        self.sees_all(user, r.object)
            || matches!(
                self.sharing[r.object],
                Sharing::PublicRead | Sharing::PublicReadWrite
            )
            || r.owner == user
            || (r.object == PARENT
                && self
                    .rules
                    .iter()
                    .any(|rule| r.number >= rule.min && self.receives(user, rule.to)))
            || self
                .shares
                .iter()
                .any(|s| s.record == record && self.receives(user, s.to))
    }

    /// Whether a rule or share to `to` reaches `user`.
    fn receives(&self, user: usize, to: Grantee) -> bool {
        match to {
            Grantee::User(v) => v == user,
            Grantee::Team(t) => self.users[user].teams.contains(&t),
        }
    }

    fn field_readable(&self, user: usize, object: usize, field: &str) -> bool {
        let sensitive = SENSITIVE.contains(&(object, field));
        self.reading_sets(user, object)
            .iter()
            .any(|s| match s.fields.get(&(object, field)) {
                None => !sensitive,
                Some(g) => *g != FieldGrant::Hidden,
            })
    }

    fn readable_fields(&self, user: usize, object: usize) -> BTreeSet<String> {
        FIELDS[object]
            .iter()
            .filter(|f| self.field_readable(user, object, f))
            .map(|f| f.to_string())
            .collect()
    }

    fn may_export(&self, user: usize, object: usize) -> bool {
        self.users[user]
            .sets
            .iter()
            .any(|s| self.sets[*s].objects[object].is_some_and(|r| r.export))
    }

    fn visible(&self, user: usize, object: usize) -> BTreeSet<usize> {
        (0..self.records.len())
            .filter(|i| self.records[*i].object == object && self.can_read(user, *i))
            .collect()
    }
}

// ------------------------------------------------------------------ generating worlds

fn rights() -> impl Strategy<Value = Option<Rights>> {
    prop_oneof![
        1 => Just(None),
        4 => (any::<[bool; 7]>()).prop_map(|b| Some(Rights {
            read: b[0], create: b[1], edit: b[2], delete: b[3],
            // Rare, or every world would see everything.
            view_all: b[4] && b[5], modify_all: b[4] && b[6] && b[0], export: b[5],
        })),
    ]
}

fn field_grant() -> impl Strategy<Value = Option<FieldGrant>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(FieldGrant::Hidden)),
        1 => Just(Some(FieldGrant::ReadOnly)),
        1 => Just(Some(FieldGrant::ReadWrite)),
    ]
}

fn perm_set() -> impl Strategy<Value = PermSet> {
    let all_fields: Vec<(usize, &'static str)> = (0..2)
        .flat_map(|o| FIELDS[o].iter().map(move |f| (o, *f)))
        .collect();
    let n = all_fields.len();
    (
        rights(),
        rights(),
        proptest::collection::vec(field_grant(), n),
    )
        .prop_map(move |(p, c, grants)| PermSet {
            objects: [p, c],
            fields: all_fields
                .iter()
                .zip(grants)
                .filter_map(|(k, g)| g.map(|g| (*k, g)))
                .collect(),
        })
}

fn sharing(object: usize) -> impl Strategy<Value = Sharing> {
    if object == PARENT {
        prop_oneof![
            3 => Just(Sharing::Private),
            1 => Just(Sharing::PublicRead),
            1 => Just(Sharing::PublicReadWrite),
        ]
        .boxed()
    } else {
        prop_oneof![
            2 => Just(Sharing::Private),
            1 => Just(Sharing::PublicRead),
            2 => Just(Sharing::ControlledByParent),
        ]
        .boxed()
    }
}

fn world() -> impl Strategy<Value = World> {
    (
        sharing(PARENT),
        sharing(CHILD),
        proptest::collection::vec(perm_set(), 1..4),
        proptest::collection::vec(
            (
                proptest::collection::btree_set(0usize..3, 0..3),
                proptest::collection::btree_set(0..TEAMS, 0..=TEAMS),
            ),
            USERS,
        ),
        proptest::collection::vec((0i64..100, 0..(USERS + TEAMS), any::<bool>()), 0..3),
        proptest::collection::vec((0..USERS, 0i64..100), 1..6),
        proptest::collection::vec((0usize..100, 0i64..100), 0..6),
        proptest::collection::vec((0usize..100, 0usize..(USERS + TEAMS), any::<bool>()), 0..4),
    )
        .prop_map(
            |(ps, cs, mut sets, users, rules, parents, children, shares)| {
                // The master-detail child controlled by its parent is read through
                // the parent alone: the contract does not say what `viewAllRecords`
                // on the child adds, so the worlds leave that combination out.
                if cs == Sharing::ControlledByParent {
                    for s in &mut sets {
                        if let Some(r) = &mut s.objects[CHILD] {
                            r.view_all = false;
                            r.modify_all = false;
                        }
                    }
                }
                let n_sets = sets.len();
                let users: Vec<User> = users
                    .into_iter()
                    .enumerate()
                    .map(|(i, (s, teams))| User {
                        // The last user is in the other organization.
                        org: usize::from(i == USERS - 1),
                        sets: s.into_iter().filter(|s| *s < n_sets).collect(),
                        teams,
                    })
                    .collect();
                let mut records: Vec<Record> = parents
                    .iter()
                    .map(|(owner, number)| Record {
                        object: PARENT,
                        owner: *owner,
                        number: *number,
                        parent: 0,
                    })
                    .collect();
                let n_parents = records.len();
                for (pick, number) in children {
                    let parent = pick % n_parents;
                    // The child's owner is in its parent's organization.
                    let org = users[records[parent].owner].org;
                    let owner = (0..USERS)
                        .filter(|u| users[*u].org == org)
                        .nth(pick % if org == 0 { USERS - 1 } else { 1 })
                        .unwrap();
                    records.push(Record {
                        object: CHILD,
                        owner,
                        number,
                        parent,
                    });
                }
                let n = records.len();
                let shares = shares
                    .into_iter()
                    .map(|(record, to, edit)| Share {
                        record: record % n,
                        to: grantee(to),
                        edit,
                    })
                    .collect();
                World {
                    sharing: [ps, cs],
                    sets,
                    users,
                    rules: rules
                        .into_iter()
                        .map(|(min, to, edit)| Rule {
                            min,
                            to: grantee(to),
                            edit,
                        })
                        .collect(),
                    records,
                    shares,
                }
            },
        )
}

/// Users first, then teams.
fn grantee(n: usize) -> Grantee {
    if n < USERS {
        Grantee::User(n)
    } else {
        Grantee::Team(n - USERS)
    }
}

// ------------------------------------------------------------------ the world in the runtime

fn email(user: usize) -> String {
    format!("u{user}@model.example")
}

/// Field values: distinct per record and field, so an answer is read exactly.
fn value_of(world: &World, record: usize, field: &str, ids: &[String]) -> Value {
    let r = &world.records[record];
    match field {
        "amount" | "score" => json!(r.number),
        "parent" => json!(ids[r.parent]),
        other => json!(format!("{other}-of-{record}")),
    }
}

fn artifact(world: &World) -> Value {
    let mut permissions: Vec<Value> = world
        .sets
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut objects = serde_json::Map::new();
            for (o, rights) in s.objects.iter().enumerate() {
                if let Some(r) = rights {
                    objects.insert(
                        OBJECTS[o].to_string(),
                        // `allowRead` said only when granted: a write right
                        // implies it, and `false` beside one is refused.
                        {
                            let mut rights = json!({"allowCreate": r.create, "allowEdit": r.edit,
                                   "allowDelete": r.delete, "viewAllRecords": r.view_all,
                                   "modifyAllRecords": r.modify_all, "allowExport": r.export});
                            if r.read {
                                rights["allowRead"] = json!(true);
                            }
                            rights
                        },
                    );
                }
            }
            let fields: serde_json::Map<String, Value> = s
                .fields
                .iter()
                .map(|((o, f), g)| {
                    let (readable, editable) = match g {
                        FieldGrant::Hidden => (false, false),
                        FieldGrant::ReadOnly => (true, false),
                        FieldGrant::ReadWrite => (true, true),
                    };
                    (
                        format!("{}.{f}", OBJECTS[*o]),
                        json!({"readable": readable, "editable": editable}),
                    )
                })
                .collect();
            json!({"name": format!("set{i}"), "objects": objects, "fields": fields})
        })
        .collect();
    permissions.push(
        json!({"name": "base", "objects": {}, "systemPermissions": ["api_access", "agent_access"]}),
    );
    let rules: Vec<Value> = world
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            json!({"name": format!("rule{i}"), "object": "pm_parent", "active": true,
            "condition": {"amount": {"$gte": r.min}},
            "accessLevel": if r.edit { "edit" } else { "read" },
            "sharedWith": match r.to {
                Grantee::User(u) => json!({"type": "user", "value": email(u)}),
                Grantee::Team(t) => json!({"type": "team", "value": format!("team{t}")}),
            }})
        })
        .collect();
    json!({
        "manifest": {"id": "com.example.model", "namespace": "pm", "version": "1.0.0", "name": "Model", "engines": {"protocol": "^17"}},
        "objects": [
            {"name": "pm_parent", "sharingModel": world.sharing[PARENT].name(), "fields": {
                "name": {"type": "text"}, "amount": {"type": "number"},
                "note": {"type": "text"}, "secret": {"type": "text"}
            }},
            {"name": "pm_child", "sharingModel": world.sharing[CHILD].name(), "fields": {
                "parent": {"type": "master_detail", "reference": "pm_parent", "required": true},
                "label": {"type": "text"}, "score": {"type": "number"}
            }}
        ],
        "permissions": permissions,
        "sharingRules": rules,
        "x-objectos": {"objects": {"pm_parent": {"sensitiveFields": ["secret"]}}}
    })
}

/// What one user is answered, surface by surface.
struct Runtime {
    env: Env,
    server: Server,
    user_keys: Vec<String>,
    agent_keys: Vec<String>,
    /// record index → id
    ids: Vec<String>,
}

fn set_up(world: &World) -> Runtime {
    // On SQLite whatever the suite runs on: each case's records and shares are
    // written behind the tool's back in SQLite's SQL.
    let env = Env::sqlite();
    env.with_app("model", &artifact(world), "admin@model.example");
    env.run(&["org", "add", "other"]).ok();
    for t in 0..TEAMS {
        env.run(&["team", "add", &format!("team{t}")]).ok();
    }
    let mut user_keys = Vec::new();
    let mut agent_keys = Vec::new();
    for (i, u) in world.users.iter().enumerate() {
        let mail = email(i);
        let org: &[&str] = if u.org == 1 { &["--org", "other"] } else { &[] };
        let mut add = vec!["user", "add", &mail, "--no-password"];
        add.extend_from_slice(org);
        env.run(&add).ok();
        let mut sets: Vec<String> = u.sets.iter().map(|s| format!("set{s}")).collect();
        sets.push("base".into());
        for set in &sets {
            let mut assign = vec!["permset", "assign", set.as_str(), &mail];
            assign.extend_from_slice(org);
            env.run(&assign).ok();
        }
        for t in &u.teams {
            env.run(&["team", "add-member", &format!("team{t}"), &mail])
                .ok();
        }
        user_keys.push(
            env.run(&["apikey", "create", &mail])
                .ok()
                .stdout
                .trim()
                .to_string(),
        );
        agent_keys.push(
            env.run(&["apikey", "create", &mail, "--agent"])
                .ok()
                .stdout
                .trim()
                .to_string(),
        );
    }
    // Records, and their shares, written behind the API: owners, organizations
    // and parents exactly as the world says, whatever rights their owners hold.
    let db = env.db();
    let one = |q: &str| sql_query(&db, q)[0][0].clone();
    let user_ids: Vec<String> = (0..USERS)
        .map(|u| {
            one(&format!(
                "SELECT id FROM objectos_users WHERE email = '{}'",
                email(u)
            ))
        })
        .collect();
    let org_ids: Vec<String> = (0..ORGS)
        .map(|o| {
            one(&format!(
                "SELECT org_id FROM objectos_memberships WHERE user_id = '{}'",
                user_ids[(0..USERS).find(|u| world.users[*u].org == o).unwrap()]
            ))
        })
        .collect();
    // A share names its team as `POST …/shares` stores it: by name.
    let team_names: Vec<String> = (0..TEAMS).map(|t| format!("team{t}")).collect();
    let ids: Vec<String> = (0..world.records.len())
        .map(|i| format!("rec-{i:02}"))
        .collect();
    let mut statements = String::new();
    for (i, r) in world.records.iter().enumerate() {
        let columns: Vec<String> = FIELDS[r.object]
            .iter()
            .map(|f| format!("\"{f}\""))
            .collect();
        let values: Vec<String> = FIELDS[r.object]
            .iter()
            .map(|f| match value_of(world, i, f, &ids) {
                Value::String(s) => format!("'{s}'"),
                other => other.to_string(),
            })
            .collect();
        let owner = &user_ids[r.owner];
        statements.push_str(&format!(
            "INSERT INTO rec_{} (id, owner_id, organization_id, created_by, created_at, updated_by, updated_at, {}) \
             VALUES ('{}', '{owner}', '{}', '{owner}', '2026-01-01T00:00:00.000000Z', '{owner}', '2026-01-01T00:00:00.000000Z', {});\n",
            OBJECTS[r.object],
            columns.join(", "),
            ids[i],
            org_ids[world.org_of(i)],
            values.join(", "),
        ));
    }
    for (i, s) in world.shares.iter().enumerate() {
        let (kind, grantee) = match s.to {
            Grantee::User(u) => ("user", &user_ids[u]),
            Grantee::Team(t) => ("team", &team_names[t]),
        };
        statements.push_str(&format!(
            "INSERT OR IGNORE INTO objectos_shares (id, object, record_id, grantee_kind, grantee, edit, created_by, created_at) \
             VALUES ('share-{i}', '{}', '{}', '{kind}', '{grantee}', {}, '{}', '2026-01-01T00:00:00.000000Z');\n",
            OBJECTS[world.records[s.record].object],
            ids[s.record],
            i32::from(s.edit),
            user_ids[world.records[s.record].owner],
        ));
    }
    // Shares written behind objectos's back carry no seal, as in a data dir
    // from before seals: with both markers gone, the server's open seals them,
    // as it seals such a data dir on upgrade.
    statements.push_str("DELETE FROM objectos_meta WHERE key = 'rows_sealed';\n");
    sql(&db, &statements);
    std::fs::remove_file(env.path("data/rows-sealed")).unwrap();
    let server = Server::start(&env);
    Runtime {
        env,
        server,
        user_keys,
        agent_keys,
        ids,
    }
}

// ------------------------------------------------------------------ comparing

/// (record id → the non-system fields it shows) from a list of records.
fn shown(records: &[Value]) -> BTreeMap<String, BTreeSet<String>> {
    records
        .iter()
        .map(|r| {
            let id = r["id"].as_str().unwrap_or("?").to_string();
            let fields = r
                .as_object()
                .map(|m| {
                    m.keys()
                        .filter(|k| !SYSTEM.contains(&k.as_str()))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            (id, fields)
        })
        .collect()
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(TestCaseError::fail(format!($($fmt)*)));
        }
    };
}

fn check(world: &World, rt: &Runtime) -> Result<(), TestCaseError> {
    for user in 0..USERS {
        let key = &rt.user_keys[user];
        for object in [PARENT, CHILD] {
            let name = OBJECTS[object];
            let who = format!("{} on {name}", email(user));
            let readable = world.object_readable(user, object);
            let visible = world.visible(user, object);
            let fields = world.readable_fields(user, object);
            let expected: BTreeMap<String, BTreeSet<String>> = visible
                .iter()
                .map(|i| (rt.ids[*i].clone(), fields.clone()))
                .collect();

            // list
            let (status, body, raw) = rt
                .server
                .get(&format!("/api/v1/data/{name}?limit=1000"), key);
            if !readable {
                ensure!(
                    status == 404,
                    "{who}: list answered {status}, not 404: {raw}"
                );
            } else {
                ensure!(status == 200, "{who}: list answered {status}: {raw}");
                let got = shown(body["records"].as_array().unwrap());
                ensure!(
                    got == expected,
                    "{who}: list shows {got:?}, the model {expected:?}"
                );
                // The values are the records' own.
                for r in body["records"].as_array().unwrap() {
                    let i = rt.ids.iter().position(|id| r["id"] == json!(id)).unwrap();
                    for f in &fields {
                        let want = value_of(world, i, f, &rt.ids);
                        ensure!(
                            r[f.as_str()] == want
                                || r[f.as_str()]
                                    .as_f64()
                                    .is_some_and(|x| Some(x) == want.as_f64()),
                            "{who}: {}.{f} = {}, stored {want}",
                            rt.ids[i],
                            r[f.as_str()]
                        );
                    }
                }
            }

            // get, for every record of the object
            for i in (0..world.records.len()).filter(|i| world.records[*i].object == object) {
                let (status, body, raw) = rt
                    .server
                    .get(&format!("/api/v1/data/{name}/{}", rt.ids[i]), key);
                if visible.contains(&i) {
                    ensure!(
                        status == 200,
                        "{who}: get {} answered {status}: {raw}",
                        rt.ids[i]
                    );
                    let got = shown(std::slice::from_ref(&body["record"]));
                    let want = BTreeMap::from([(rt.ids[i].clone(), fields.clone())]);
                    ensure!(got == want, "{who}: get shows {got:?}, the model {want:?}");
                } else {
                    ensure!(
                        status == 404,
                        "{who}: get {} answered {status}, not 404: {raw}",
                        rt.ids[i]
                    );
                }
            }

            // query with a filter on the number field
            let number = NUMBER[object];
            let (status, body, raw) = rt.server.call(
                "POST",
                "/api/v1/query",
                Some(key),
                Some(
                    json!({"object": name, "where": {number: {"$gte": 50}}, "orderBy": [{"field": number, "order": "desc"}], "limit": 1000}),
                ),
            );
            if !readable {
                ensure!(
                    status == 404,
                    "{who}: query answered {status}, not 404: {raw}"
                );
            } else if !fields.contains(number) {
                ensure!(
                    status == 403 && body["error"]["code"] == "field_predicate_denied",
                    "{who}: a filter on unreadable `{number}` answered {status}: {raw}"
                );
            } else {
                ensure!(status == 200, "{who}: query answered {status}: {raw}");
                let records = body["records"].as_array().unwrap();
                let got = shown(records);
                let want: BTreeMap<String, BTreeSet<String>> = visible
                    .iter()
                    .filter(|i| world.records[**i].number >= 50)
                    .map(|i| (rt.ids[*i].clone(), fields.clone()))
                    .collect();
                ensure!(
                    got == want,
                    "{who}: query found {got:?}, the model {want:?}"
                );
                // Sorted on the (readable) number field, highest first.
                let numbers: Vec<f64> = records
                    .iter()
                    .map(|r| r[number].as_f64().unwrap_or(f64::NAN))
                    .collect();
                ensure!(
                    numbers.windows(2).all(|w| w[0] >= w[1]),
                    "{who}: query sorted {numbers:?}"
                );
            }

            // aggregate: a count, and a sum of the number field
            let (status, body, raw) = rt.server.call(
                "POST",
                "/api/v1/query",
                Some(key),
                Some(
                    json!({"object": name, "aggregations": [{"function": "count", "alias": "n"}]}),
                ),
            );
            if !readable {
                ensure!(
                    status == 404,
                    "{who}: count answered {status}, not 404: {raw}"
                );
            } else {
                ensure!(status == 200, "{who}: count answered {status}: {raw}");
                let n = body["records"][0]["n"].as_u64();
                ensure!(
                    n == Some(visible.len() as u64),
                    "{who}: count {n:?}, the model {}",
                    visible.len()
                );
            }
            let (status, body, raw) = rt.server.call(
                "POST",
                "/api/v1/query",
                Some(key),
                Some(json!({"object": name, "aggregations": [{"function": "sum", "field": number, "alias": "s"}]})),
            );
            if readable && fields.contains(number) {
                ensure!(status == 200, "{who}: sum answered {status}: {raw}");
                let want: i64 = visible.iter().map(|i| world.records[*i].number).sum();
                let got = body["records"][0]["s"].as_f64().unwrap_or(0.0);
                ensure!(
                    got == want as f64,
                    "{who}: sum {got}, the model {want}: {raw}"
                );
            } else if readable {
                ensure!(
                    status == 403 && body["error"]["code"] == "field_predicate_denied",
                    "{who}: a sum of unreadable `{number}` answered {status}: {raw}"
                );
            } else {
                ensure!(
                    status == 404,
                    "{who}: sum answered {status}, not 404: {raw}"
                );
            }

            // export, as the host operator does for the user
            let run = rt.env.run(&["export", name, "--as", &email(user)]);
            if readable && world.may_export(user, object) {
                ensure!(run.code == 0, "{who}: export failed: {}", run.stderr);
                let rows: Vec<Value> = run
                    .stdout
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
                    .collect();
                let got = shown(&rows);
                ensure!(
                    got == expected,
                    "{who}: export wrote {got:?}, the model {expected:?}"
                );
            } else {
                ensure!(
                    run.code != 0 && run.stdout.trim().is_empty(),
                    "{who}: export without the right exited {}: {}",
                    run.code,
                    run.stdout
                );
            }

            // MCP query_records, through the user's agent key
            let result = mcp_query(&rt.server, &rt.agent_keys[user], name);
            if !readable {
                ensure!(
                    result["isError"] == json!(true),
                    "{who}: query_records of an unreadable object answered {result}"
                );
            } else {
                ensure!(
                    result["isError"] != json!(true),
                    "{who}: query_records: {result}"
                );
                let records = result["structuredContent"]["records"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let got = shown(&records);
                ensure!(
                    got == expected,
                    "{who}: query_records shows {got:?}, the model {expected:?}"
                );
            }
        }
    }
    Ok(())
}

fn mcp_query(server: &Server, key: &str, object: &str) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "query_records", "arguments": {"objectName": object},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "model-test", "version": "1"},
        }
    }});
    let resp = server
        .client
        .post(format!("{}/api/v1/mcp", server.base))
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "query_records")
        .body(body.to_string())
        .send()
        .expect("MCP request");
    let text = resp.text().unwrap_or_default();
    let message: Value = serde_json::from_str(&text).unwrap_or_else(|_| {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .next_back()
            .unwrap_or(Value::Null)
    });
    message["result"].clone()
}

#[test]
fn every_surface_answers_what_the_reference_model_says() {
    let cases: u32 = std::env::var("OBJECTOS_MODEL_CASES")
        .ok()
        .map(|c| c.parse().expect("OBJECTOS_MODEL_CASES is a number"))
        .unwrap_or(4);
    let mut runner = TestRunner::new(Config {
        cases,
        // Each case is a runtime of its own; shrinking a failure takes a while.
        max_shrink_iters: 200,
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        source_file: Some(file!()),
        ..Config::default()
    });
    let result = runner.run(&world(), |world| {
        let rt = set_up(&world);
        check(&world, &rt)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
