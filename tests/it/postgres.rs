//! PostgreSQL: `init --database-url`, bad connections refused with their cause
//! and fix, the audit guards in the database, and several instances serving
//! one database. These run on the private server of `scripts/pg` whatever
//! `OBJECTOS_TEST_DATABASE` says (the rest of the suite runs on it with
//! `OBJECTOS_TEST_DATABASE=postgres`).

use std::path::PathBuf;
use std::sync::{Arc, Barrier};

use serde_json::{Value, json};

use crate::store::ready;
use crate::util::*;

/// A second host: a copy of the data dir (keys, trust store, configuration)
/// with a checkpoint log of its own from here on.
fn second_host(env: &Env) -> PathBuf {
    let to = env.path("host2");
    copy_dir(&env.path("data"), &to);
    let _ = std::fs::remove_file(to.join("serve.lock"));
    to
}

fn serve_from(env: &Env, dir: &std::path::Path) -> Server {
    Server::start_env(env, &[], &[("OBJECTOS_DATA_DIR", dir.to_str().unwrap())])
}

fn run_in_dir(env: &Env, dir: &std::path::Path, args: &[&str]) -> Run {
    env.cmd()
        .env("OBJECTOS_DATA_DIR", dir)
        .args(args)
        .output()
        .unwrap()
        .into()
}

#[test]
fn init_keeps_the_url_never_the_password_and_everything_works_as_on_sqlite() {
    let env = Env::postgres();
    let admin = ready(&env);
    assert!(!env.path("data/objectos.db").exists());
    let config = env.read("data/database.json");
    assert!(config.contains("postgres://objectos@"), "{config}");
    assert!(!config.contains(PG_PASSWORD), "{config}");
    // The instance's own files are where they always are.
    for file in [
        "instance.key",
        "instance-signing.key",
        "audit-checkpoints.log",
    ] {
        assert!(env.path("data").join(file).exists(), "{file}");
    }
    let server = Server::start(&env);
    let (status, body, raw) = server.call(
        "POST",
        "/api/v1/data/crm_account",
        Some(&admin),
        Some(json!({"name": "Acme"})),
    );
    // The administrator holds no rights on business objects: 404, as on SQLite.
    assert_eq!(status, 404, "{raw} {body}");
    server.stop();
    let doctor = env.run(&["doctor"]);
    assert!(
        doctor.stdout.contains("postgres ") && doctor.stdout.contains("PostgreSQL 1"),
        "{}",
        doctor.stdout
    );
    // The test role owns its tables: doctor says why that is unsafe.
    assert!(
        doctor.stdout.contains("owns the audit table"),
        "{}",
        doctor.stdout
    );
    env.run(&["audit", "verify"]).ok();
}

/// Run a command on a data dir of SQLite (the URL the environment gives
/// `init` left out).
fn on_sqlite(env: &Env, dir: &str, args: &[&str]) -> Run {
    env.cmd()
        .env_remove("OBJECTOS_DATABASE_URL")
        .env("OBJECTOS_DATA_DIR", env.path(dir))
        .args(args)
        .output()
        .unwrap()
        .into()
}

fn account_names(server: &Server, key: &str) -> Vec<String> {
    let (status, body, raw) = server.get("/api/v1/data/crm_account?top=100", key);
    assert_eq!(status, 200, "{raw}");
    let mut names: Vec<String> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn a_backup_moves_from_sqlite_to_postgresql_and_back_with_every_row_and_the_chain() {
    let env = Env::postgres();
    let url = env.pg.as_ref().unwrap().url.clone();
    // An instance on SQLite, with records, a sealed key and an archived range.
    let lite = |args: &[&str]| on_sqlite(&env, "lite", args);
    env.signed_crm();
    lite(&["init"]).ok();
    lite(&["trust", "add", "signer.pub"]).ok();
    lite(&["apply", "artifact.json", "-y"]).ok();
    env.write("pw", format!("{}\n", crate::store::PASSWORD));
    lite(&[
        "bootstrap",
        "--admin-email",
        "admin@example.com",
        "--password-file",
        "pw",
    ])
    .ok();
    lite(&["user", "add", "rep@example.com", "--no-password"]).ok();
    lite(&["permset", "assign", "sales_rep", "rep@example.com"]).ok();
    let key = lite(&["apikey", "create", "rep@example.com"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let lite_dir = env.path("lite");
    let server = serve_from(&env, &lite_dir);
    for name in ["Acme", "Globex", "Initech"] {
        assert_eq!(create(&server, &key, name).0, 201);
    }
    let names = account_names(&server, &key);
    server.stop();
    lite(&["audit", "archive", "--before", "4", "-o", "old.tar"]).ok();
    lite(&["backup", "-o", "lite.tar"]).ok();

    // Into PostgreSQL.
    let pg = |args: &[&str]| run_in_dir(&env, &env.path("pgdata"), args);
    let doc = pg(&[
        "--json",
        "restore",
        "lite.tar",
        "--keys-from",
        "lite",
        "--database-url",
        &url,
    ])
    .ok()
    .json();
    assert_eq!(doc["format"], "objectos.restore/1", "{doc}");
    assert!(env.path("pgdata/database.json").exists());
    assert!(!env.path("pgdata/objectos.db").exists());
    pg(&["audit", "verify"]).ok();
    let doctor = pg(&["doctor"]);
    assert!(doctor.stdout.contains("PostgreSQL"), "{}", doctor.stdout);
    let seals = doctor
        .stdout
        .lines()
        .find(|l| l.contains("seals"))
        .unwrap_or_default()
        .to_string();
    assert!(seals.contains("ok"), "{seals}");
    let server = serve_from(&env, &env.path("pgdata"));
    assert_eq!(account_names(&server, &key), names);
    assert_eq!(create(&server, &key, "Umbrella").0, 201);
    server.stop();
    // The same backup again into the now-used database: refused, nothing made.
    let again = run_in_dir(
        &env,
        &env.path("pgdata2"),
        &[
            "restore",
            "lite.tar",
            "--keys-from",
            "lite",
            "--database-url",
            &url,
        ],
    )
    .code(1);
    assert!(
        again.stderr.contains("already holds objectos tables"),
        "{}",
        again.stderr
    );
    assert!(!env.path("pgdata2").exists());

    // And back: a backup of the PostgreSQL instance restores onto SQLite.
    pg(&["backup", "-o", "pg.tar"]).ok();
    on_sqlite(
        &env,
        "back",
        &["restore", "pg.tar", "--keys-from", "pgdata"],
    )
    .ok();
    assert!(env.path("back/objectos.db").exists());
    assert!(!env.path("back/database.json").exists());
    on_sqlite(&env, "back", &["audit", "verify"]).ok();
    let server = serve_from(&env, &env.path("back"));
    let mut more = names.clone();
    more.push("Umbrella".into());
    more.sort();
    assert_eq!(account_names(&server, &key), more);
    server.stop();
}

#[test]
fn bad_connections_are_refused_with_cause_and_fix_and_leave_nothing() {
    let server = pg_server();
    let env = Env::sqlite();
    let url = |user: &str, db: &str| {
        format!(
            "postgres://{user}@{}:{}/{db}?sslmode=disable",
            server.host, server.port
        )
    };
    let target = server.create_db();
    let refused = |args: &[&str], password: &str, want: &[&str]| {
        let out: Run = env
            .cmd()
            .env("PGPASSWORD", password)
            .args(args)
            .output()
            .unwrap()
            .into();
        let out = out.code(1);
        for w in want {
            assert!(
                out.stderr.contains(w),
                "{args:?}: want {w:?}:\n{}",
                out.stderr
            );
        }
        assert!(!out.stderr.contains(PG_PASSWORD), "{}", out.stderr);
        assert!(!env.path("data").exists(), "{args:?} left a data dir");
        out
    };
    // A password in the URL is never stored.
    let with_password = format!(
        "postgres://objectos:{PG_PASSWORD}@{}:{}/{}",
        server.host, server.port, target.name
    );
    refused(
        &["init", "--database-url", &with_password],
        PG_PASSWORD,
        &["holds a password", "hint: ", ".pgpass"],
    );
    // Nobody listening.
    refused(
        &[
            "init",
            "--database-url",
            "postgres://objectos@127.0.0.1:1/x?sslmode=disable",
        ],
        PG_PASSWORD,
        &[
            "cannot reach PostgreSQL",
            "hint: check that PostgreSQL runs",
        ],
    );
    // Wrong password, no such database, TLS this build does not speak.
    refused(
        &["init", "--database-url", &url("objectos", &target.name)],
        "wrong",
        &["wrong credentials", "hint: put the role's password"],
    );
    refused(
        &["init", "--database-url", &url("objectos", "no_such_db")],
        PG_PASSWORD,
        &["no such database", "createdb"],
    );
    refused(
        &[
            "init",
            "--database-url",
            &url("objectos", &target.name).replace("disable", "verify-full"),
        ],
        PG_PASSWORD,
        &["no root certificate is given", "sslrootcert"],
    );
    // Nothing was made in the database either.
    assert_eq!(
        target.psql("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'objectos%'"),
        "0\n"
    );

    // Another instance's database.
    let first = Env::postgres();
    ready(&first);
    let theirs = first.pg.as_ref().unwrap().url.clone();
    refused(
        &["init", "--database-url", &theirs],
        PG_PASSWORD,
        &["already holds objectos tables", "copy its data dir"],
    );
    first.run(&["audit", "verify"]).ok();

    // A data dir pointed at another instance's database.
    let other = Env::postgres();
    other.run(&["init"]).ok();
    let mine = other.pg.as_ref().unwrap().url.clone();
    let config = other.read("data/database.json").replace(&mine, &theirs);
    other.write("data/database.json", config);
    let out = other.run(&["user", "list"]).code(1);
    assert!(
        out.stderr.contains("belongs to objectos instance"),
        "{}",
        out.stderr
    );

    // A schema newer than this build.
    let db = first.pg.as_ref().unwrap();
    db.psql("INSERT INTO objectos_schema_migrations (version) VALUES (999)");
    let out = first.run(&["user", "list"]).code(1);
    assert!(out.stderr.contains("newer objectos"), "{}", out.stderr);
    assert!(out.stderr.contains("upgrade objectos"), "{}", out.stderr);
    db.psql("DELETE FROM objectos_schema_migrations WHERE version = 999");

    // A role without the privileges.
    let _ = server.try_psql(
        "postgres",
        "CREATE ROLE objectos_weak LOGIN PASSWORD 'weak-test'",
    );
    let weak = second_host(&first);
    let config = std::fs::read_to_string(weak.join("database.json"))
        .unwrap()
        .replace("postgres://objectos@", "postgres://objectos_weak@");
    std::fs::write(weak.join("database.json"), config).unwrap();
    let out: Run = env
        .cmd()
        .env("OBJECTOS_DATA_DIR", &weak)
        .env("PGPASSWORD", "weak-test")
        .args(["user", "list"])
        .output()
        .unwrap()
        .into();
    let out = out.code(1);
    assert!(
        out.stderr.contains("permission denied") && out.stderr.contains("GRANT"),
        "{}",
        out.stderr
    );
}

#[test]
fn audit_rows_are_immutable_in_the_database_and_dropped_guards_come_back() {
    let env = Env::postgres();
    ready(&env);
    let db = env.pg.as_ref().unwrap();
    for sql in [
        "UPDATE objectos_audit SET action = 'x' WHERE seq = 1",
        "DELETE FROM objectos_audit WHERE seq = 1",
        "TRUNCATE objectos_audit",
        "UPDATE objectos_artifacts SET version = '9.9.9'",
        "DELETE FROM objectos_audit_anchors",
    ] {
        let err = db.try_psql(sql).unwrap_err();
        assert!(err.contains("immutable"), "{sql}: {err}");
    }
    db.psql("DROP TRIGGER objectos_audit_guard ON objectos_audit");
    db.psql("ALTER TABLE objectos_artifacts DISABLE TRIGGER objectos_artifacts_immutable");
    let out = env.run(&["user", "list"]).ok();
    assert!(out.stderr.contains("TAMPERING"), "{}", out.stderr);
    assert!(
        out.stderr.contains("objectos_audit_guard"),
        "{}",
        out.stderr
    );
    let err = db
        .try_psql("DELETE FROM objectos_audit WHERE seq = 1")
        .unwrap_err();
    assert!(err.contains("immutable"), "{err}");
    let err = db
        .try_psql("UPDATE objectos_artifacts SET version = '9.9.9'")
        .unwrap_err();
    assert!(err.contains("immutable"), "{err}");
    let out = env.run(&["--json", "audit", "tail", "-n", "1"]).ok();
    assert_eq!(out.json()["events"][0]["action"], "audit.guards_restored");
    env.run(&["audit", "verify"]).ok();
}

/// The admin's key with every right on accounts, for the multi-instance tests.
fn rep(env: &Env) -> String {
    env.run(&["user", "add", "rep@example.com", "--no-password"])
        .ok();
    env.run(&["permset", "assign", "sales_rep", "rep@example.com"])
        .ok();
    env.run(&["apikey", "create", "rep@example.com"])
        .ok()
        .stdout
        .trim()
        .to_string()
}

fn create(server: &Server, key: &str, name: &str) -> (u16, Value) {
    let (status, body, _) = server.call(
        "POST",
        "/api/v1/data/crm_account",
        Some(key),
        Some(json!({"name": name})),
    );
    (status, body)
}

#[test]
fn two_instances_answer_alike_and_a_change_through_one_acts_at_once_on_the_other() {
    // Keys revoked, sessions logged out, grants revoked, users disabled.
    let env = Env::postgres();
    ready(&env);
    let key = rep(&env);
    let host2 = second_host(&env);
    let a = Server::start(&env);
    let b = serve_from(&env, &host2);
    let (status, made) = create(&a, &key, "Through A");
    assert_eq!(status, 201, "{made}");
    let id = made["id"].as_str().unwrap();
    let path = format!("/api/v1/data/crm_account/{id}");
    let (sa, ba, _) = a.call("GET", &path, Some(&key), None);
    let (sb, bb, _) = b.call("GET", &path, Some(&key), None);
    assert_eq!((sa, sb), (200, 200));
    assert_eq!(ba, bb, "the same record through either instance");
    let list = "/api/v1/data/crm_account?sort=name";
    assert_eq!(
        a.call("GET", list, Some(&key), None).1,
        b.call("GET", list, Some(&key), None).1
    );
    // Revoked through the second host's CLI: the first refuses the key on the
    // very next request (its credential cache keys on the change counter).
    let keys = run_in_dir(
        &env,
        &host2,
        &["--json", "apikey", "list", "--user", "rep@example.com"],
    )
    .ok()
    .json();
    let key_id = keys["api_keys"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no key of rep in {keys}"))
        .to_string();
    run_in_dir(&env, &host2, &["apikey", "revoke", &key_id]).ok();
    assert_eq!(a.call("GET", &path, Some(&key), None).0, 401);
    assert_eq!(b.call("GET", &path, Some(&key), None).0, 401);
    // A disabled user, the same.
    let key2 = env
        .run(&["apikey", "create", "rep@example.com"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_eq!(a.call("GET", &path, Some(&key2), None).0, 200);
    assert_eq!(b.call("GET", &path, Some(&key2), None).0, 200);
    // A session logged out through one instance is refused by the other.
    let (status, session, raw) = a.call(
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"email": "admin@example.com", "password": crate::store::PASSWORD})),
    );
    assert_eq!(status, 200, "{raw}");
    let token = session["token"].as_str().unwrap().to_string();
    assert_eq!(
        b.call("GET", "/api/v1/meta/objects", Some(&token), None).0,
        200
    );
    assert_eq!(
        a.call("POST", "/api/v1/auth/logout", Some(&token), None).0,
        200
    );
    assert_eq!(
        b.call("GET", "/api/v1/meta/objects", Some(&token), None).0,
        401
    );
    // A permission set revoked through the second host: the first refuses at
    // once (it was the rep's only set, and so their `api_access`).
    run_in_dir(
        &env,
        &host2,
        &["permset", "revoke", "sales_rep", "rep@example.com"],
    )
    .ok();
    assert_eq!(a.call("GET", &path, Some(&key2), None).0, 403);
    run_in_dir(
        &env,
        &host2,
        &["permset", "assign", "sales_rep", "rep@example.com"],
    )
    .ok();
    assert_eq!(a.call("GET", &path, Some(&key2), None).0, 200);
    run_in_dir(&env, &host2, &["user", "disable", "rep@example.com"]).ok();
    assert_eq!(a.call("GET", &path, Some(&key2), None).0, 401);
    a.stop();
    b.stop();
    env.run(&["audit", "verify"]).ok();
    run_in_dir(&env, &host2, &["audit", "verify"]).ok();
}

#[test]
fn concurrent_creates_through_two_instances_leave_one_verifying_chain() {
    let env = Env::postgres();
    ready(&env);
    let key = rep(&env);
    let host2 = second_host(&env);
    let servers = [Server::start(&env), serve_from(&env, &host2)];
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let barrier = Arc::new(Barrier::new(8));
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let base = bases[i % 2].clone();
            let (key, barrier) = (key.clone(), barrier.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                barrier.wait();
                let mut ids = Vec::new();
                for n in 0..15 {
                    let res = client
                        .post(format!("{base}/api/v1/data/crm_account"))
                        .bearer_auth(&key)
                        .json(&json!({"name": format!("w{i}-{n}")}))
                        .send()
                        .unwrap();
                    assert_eq!(res.status().as_u16(), 201);
                    let body: Value = res.json().unwrap();
                    ids.push(body["id"].as_str().unwrap().to_string());
                }
                ids
            })
        })
        .collect();
    let mut ids = Vec::new();
    for w in workers {
        ids.extend(w.join().unwrap());
    }
    assert_eq!(ids.len(), 120);
    for server in servers {
        server.stop();
    }
    // One chain: seqs without gap or repeat, every row's hash over its
    // predecessor; each host's own checkpoints match it.
    let db = env.pg.as_ref().unwrap();
    let (count, min, max) = {
        let line = db.psql("SELECT count(*), min(seq), max(seq) FROM objectos_audit");
        let parts: Vec<i64> = line.trim().split('|').map(|v| v.parse().unwrap()).collect();
        (parts[0], parts[1], parts[2])
    };
    assert_eq!(count, max - min + 1, "no gap");
    assert_eq!(
        db.psql("SELECT count(*) FROM objectos_audit WHERE action = 'record.create' AND object = 'crm_account'")
            .trim(),
        "120"
    );
    env.run(&["audit", "verify"]).ok();
    run_in_dir(&env, &host2, &["audit", "verify"]).ok();
}

#[test]
fn killing_an_instance_mid_write_loses_no_acknowledged_write() {
    let env = Env::postgres();
    ready(&env);
    let key = rep(&env);
    let host2 = second_host(&env);
    let mut a = Server::start(&env);
    let b = serve_from(&env, &host2);
    let base = a.base.clone();
    let writer_key = key.clone();
    let writer = std::thread::spawn(move || {
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap();
        let mut acknowledged = Vec::new();
        for n in 0..10_000 {
            match client
                .post(format!("{base}/api/v1/data/crm_account"))
                .bearer_auth(&writer_key)
                .json(&json!({"name": format!("k{n}")}))
                .send()
            {
                Ok(res) if res.status().as_u16() == 201 => {
                    let body: Value = res.json().unwrap();
                    acknowledged.push(body["id"].as_str().unwrap().to_string());
                }
                _ => break,
            }
        }
        acknowledged
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let mut child = a.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let acknowledged = writer.join().unwrap();
    assert!(acknowledged.len() > 5, "only {} writes", acknowledged.len());
    for id in &acknowledged {
        let (status, _, raw) = b.call(
            "GET",
            &format!("/api/v1/data/crm_account/{id}"),
            Some(&key),
            None,
        );
        assert_eq!(status, 200, "acknowledged {id} lost: {raw}");
    }
    b.stop();
    run_in_dir(&env, &host2, &["audit", "verify"]).ok();
    env.run(&["audit", "verify"]).ok();
}

#[test]
fn tls_to_postgresql_checks_the_server_as_sslmode_says() {
    let server = pg_server();
    let base = |db: &PgDb| db.url.replace("?sslmode=disable", "");
    let init = |env: &Env, url: &str| -> Run {
        env.cmd()
            .env("OBJECTOS_DATABASE_URL", url)
            .args(["init"])
            .output()
            .unwrap()
            .into()
    };
    let tls_line = |env: &Env| {
        env.run(&["doctor"])
            .stdout
            .lines()
            .find(|l| l.contains("postgres_tls"))
            .unwrap_or_default()
            .to_string()
    };

    // verify-full against the CA that signed the server's certificate.
    let env = Env::postgres();
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        base(env.pg.as_ref().unwrap()),
        server.ca.display()
    );
    init(&env, &url).ok();
    let line = tls_line(&env);
    assert!(line.contains("encrypted"), "{line}");
    assert!(line.contains("verify-full"), "{line}");
    assert!(!line.contains("not encrypted"), "{line}");
    env.run(&["audit", "verify"]).ok();

    // A CA that did not sign it: refused with the cause and the fix, nothing made.
    let env = Env::postgres();
    let db = env.pg.as_ref().unwrap();
    for mode in ["verify-ca", "verify-full"] {
        let url = format!(
            "{}?sslmode={mode}&sslrootcert={}",
            base(db),
            server.other_ca.display()
        );
        let run = init(&env, &url).code(1);
        assert!(run.stderr.contains("TLS"), "{}", run.stderr);
        assert!(run.stderr.contains("sslrootcert"), "{}", run.stderr);
        assert!(!env.path("data").exists());
        assert_eq!(
            db.psql("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'objectos%'")
                .trim(),
            "0"
        );
    }
    // A root file that is not there: said so, nothing made.
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        base(db)
    );
    let run = init(&env, &url).code(1);
    assert!(run.stderr.contains("/nonexistent/ca.pem"), "{}", run.stderr);
    assert!(!env.path("data").exists());

    // require: encrypted, the server unchecked (as libpq), and doctor says so.
    let url = format!("{}?sslmode=require", base(db));
    init(&env, &url).ok();
    let line = tls_line(&env);
    assert!(line.contains("encrypted"), "{line}");
    assert!(line.contains("sslmode=require"), "{line}");
}

#[test]
fn a_pending_action_is_decided_once_across_instances() {
    use crate::agents::{
        ALICE, RITA, VIC, agent_key, audit, desk, pending_id, ticket, tool, user_key,
    };
    let env = Env::postgres();
    let one = desk(&env);
    let two = serve_from(&env, &second_host(&env));
    let alice = user_key(&env, ALICE);
    let alice_agent = agent_key(&env, ALICE, &[]);
    let reviewers = [user_key(&env, RITA), user_key(&env, VIC)];
    for round in 0..3 {
        let (t, _) = ticket(&one, &alice, &format!("round {round}"), 1.0);
        let (err, r) = tool(
            &one,
            &alice_agent,
            "delete_record",
            json!({"objectName": "desk_ticket", "recordId": t}),
        );
        assert!(!err, "{r}");
        let p = pending_id(&r);
        // The other instance sees the proposal at once.
        let (status, _, raw) = two.get(&format!("/api/v1/pending-actions/{p}"), &reviewers[0]);
        assert_eq!(status, 200, "{raw}");
        // Each reviewer approves through a different instance, at once.
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = [
            (one.base.clone(), reviewers[0].clone()),
            (two.base.clone(), reviewers[1].clone()),
        ]
        .into_iter()
        .map(|(base, key)| {
            let (p, barrier) = (p.clone(), barrier.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                barrier.wait();
                client
                    .post(format!("{base}/api/v1/pending-actions/{p}/approve"))
                    .bearer_auth(key)
                    .header("content-type", "application/json")
                    .body("{}")
                    .send()
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
        let mut statuses: Vec<u16> = racers.into_iter().map(|h| h.join().unwrap()).collect();
        statuses.sort();
        assert_eq!(statuses[0], 200, "{statuses:?}");
        assert!(matches!(statuses[1], 404 | 409), "{statuses:?}");
        let rows = audit(&env);
        let count = |action: &str, outcome: &str, record: &str| {
            rows.iter()
                .filter(|r| {
                    r["action"] == action && r["outcome"] == outcome && r["record_id"] == record
                })
                .count()
        };
        assert_eq!(count("pending.approve", "success", &p), 1);
        assert_eq!(count("record.delete", "success", &t), 1);
    }
    env.run(&["audit", "verify"]).ok();
}

#[test]
fn with_an_administrative_url_the_runtime_role_cannot_alter_audit_rows_and_all_else_works() {
    let server = pg_server();
    let env = Env::postgres();
    let db = env.pg.as_ref().unwrap();
    let admin = db.url.clone();
    let runtime = admin.replace("postgres://objectos@", "postgres://objectos_app@");
    let run = |args: &[&str]| -> Run {
        env.cmd()
            .env_remove("OBJECTOS_DATABASE_URL")
            .args(args)
            .output()
            .unwrap()
            .into()
    };
    run(&[
        "init",
        "--database-url",
        &runtime,
        "--database-admin-url",
        &admin,
    ])
    .ok();
    let config: Value = serde_json::from_str(&env.read("data/database.json")).unwrap();
    assert_eq!(config["url"], runtime.as_str());
    assert_eq!(config["admin_url"], admin.as_str());
    env.signed_crm();
    run(&["trust", "add", "signer.pub"]).ok();
    run(&["apply", "artifact.json", "-y"]).ok();
    env.write("pw", format!("{}\n", crate::store::PASSWORD));
    run(&[
        "bootstrap",
        "--admin-email",
        "admin@example.com",
        "--password-file",
        "pw",
    ])
    .ok();
    let key = rep(&env);
    let doctor = run(&["doctor"]);
    let role = doctor
        .stdout
        .lines()
        .find(|l| l.contains("postgres_role"))
        .unwrap_or_default()
        .to_string();
    assert!(role.contains("not alter them"), "{}", doctor.stdout);
    assert!(
        doctor.stdout.contains("role `objectos_app`"),
        "{}",
        doctor.stdout
    );
    let serving = Server::start(&env);
    assert_eq!(create(&serving, &key, "Acme").0, 201);
    drop(serving);

    // The runtime's role, connecting by itself, can alter no audit row.
    let as_runtime_in = |name: &str, sql: &str| -> Result<String, String> {
        let out = std::process::Command::new(server.bin.join("psql"))
            .args([
                "-h",
                &server.host,
                "-p",
                &server.port,
                "-U",
                "objectos_app",
                "-d",
                name,
            ])
            .args(["-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGPASSWORD", PG_PASSWORD)
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    };
    let as_runtime = |sql: &str| as_runtime_in(&db.name, sql);
    assert!(as_runtime("SELECT count(*) FROM objectos_audit").is_ok());
    for (sql, why) in [
        ("UPDATE objectos_audit SET actor = 'x'", "permission denied"),
        ("DELETE FROM objectos_audit", "permission denied"),
        ("TRUNCATE objectos_audit", "permission denied"),
        (
            "ALTER TABLE objectos_audit DISABLE TRIGGER ALL",
            "must be owner",
        ),
        (
            "DROP TRIGGER objectos_audit_guard ON objectos_audit",
            "must be owner",
        ),
        ("DELETE FROM objectos_audit_anchors", "permission denied"),
        ("DELETE FROM objectos_artifacts", "permission denied"),
        ("CREATE TABLE rec_evil (id text)", "permission denied"),
    ] {
        let err = as_runtime(sql).expect_err(sql);
        assert!(err.contains(why), "{sql}: {err}");
    }
    // Archiving removes rows, as the owner.
    run(&["audit", "archive", "--before", "4", "-o", "old.tar"]).ok();
    run(&["audit", "verify"]).ok();

    // The same split on restore: into another database, made by the owner.
    run(&["backup", "-o", "split.tar"]).ok();
    let target = server.create_db();
    let target_runtime = target
        .url
        .replace("postgres://objectos@", "postgres://objectos_app@");
    let restore = |dir: &str, runtime: &str, admin: &str| -> Run {
        env.cmd()
            .env_remove("OBJECTOS_DATABASE_URL")
            .env("OBJECTOS_DATA_DIR", env.path(dir))
            .args(["restore", "split.tar", "--keys-from", "data"])
            .args(["--database-url", runtime, "--database-admin-url", admin])
            .output()
            .unwrap()
            .into()
    };
    let same = restore("same", &target.url, &target.url).code(1);
    assert!(
        same.stderr.contains("same as the runtime"),
        "{}",
        same.stderr
    );
    assert!(!env.path("same").exists());
    restore("restored", &target_runtime, &target.url).ok();
    let config: Value = serde_json::from_str(&env.read("restored/database.json")).unwrap();
    assert_eq!(config["admin_url"], target.url.as_str());
    run_in_dir(&env, &env.path("restored"), &["audit", "verify"]).ok();
    let err = as_runtime_in(&target.name, "UPDATE objectos_audit SET actor = 'x'").unwrap_err();
    assert!(err.contains("permission denied"), "{err}");
    let serving = serve_from(&env, &env.path("restored"));
    assert_eq!(create(&serving, &key, "Globex").0, 201);
}
