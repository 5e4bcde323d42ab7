//! Operator experience: quickstart, import/export, transfer, backup/restore, systemd.

use serde_json::{Value, json};

use crate::store::ready;
use crate::util::*;

fn world_with_reps(env: &Env) -> String {
    let admin = ready(env);
    for (email, set) in [
        ("rep.a@example.com", "sales_rep"),
        ("rep.b@example.com", "sales_rep"),
        ("ops@example.com", "sales_ops"),
        ("manager@example.com", "sales_manager"),
    ] {
        env.run(&["user", "add", email, "--no-password"]).ok();
        env.run(&["permset", "assign", set, email]).ok();
    }
    admin
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
// The helper hands the running child back; the test stops and waits for it.
#[allow(clippy::zombie_processes)]
fn quickstart_runs_end_to_end_twice_and_its_curl_commands_work() {
    if !have_tool("curl") {
        return;
    }
    let env = Env::new();
    let run_quickstart = |env: &Env| -> (std::process::Child, String, String) {
        let out = env.path(&format!("qs-{}.out", uuid_like()));
        let err = env.path(&format!("qs-{}.err", uuid_like()));
        let mut child = env
            .cmd()
            .args(["quickstart", "--listen", "127.0.0.1:0"])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let e = std::fs::read_to_string(&err).unwrap_or_default();
            if e.contains("addr=") {
                let o = std::fs::read_to_string(&out).unwrap_or_default();
                return (child, o, e);
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("quickstart did not start:\n{e}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let (mut first, out, err) = run_quickstart(&env);
    let addr = err
        .split("addr=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    for line in [
        "initialized the data dir",
        "signed it",
        "verified",
        "trusted key",
        "applied the artifact",
        "bootstrapped",
        "serving on",
    ] {
        assert!(err.contains(line), "missing `{line}` in:\n{err}");
    }
    // The printed commands name port 0; point them at the port actually bound.
    let curls: Vec<String> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("curl "))
        .map(|l| l.trim().replace("127.0.0.1:0", &addr))
        .collect();
    assert_eq!(curls.len(), 3, "{out}");
    let results: Vec<Value> = curls
        .iter()
        .map(|c| serde_json::from_str(&env.tool("sh", &["-c", c]).ok().stdout).unwrap())
        .collect();
    assert!(
        results[0]["records"].as_array().unwrap().len() >= 2,
        "{}",
        results[0]
    );
    assert!(
        results[1]["record"]["discount_approval_note"].is_string(),
        "the manager sees the note: {}",
        results[1]
    );
    assert_eq!(results[2]["id"], results[1]["id"]);
    assert!(
        results[2]["record"]
            .as_object()
            .unwrap()
            .get("discount_approval_note")
            .is_none(),
        "the rep must not see the note: {}",
        results[2]
    );
    // The printed bridge command speaks MCP as the rep's agent.
    let bridge = out
        .lines()
        .find(|l| l.trim_start().starts_with("OBJECTOS_API_KEY="))
        .unwrap_or_else(|| panic!("no mcp command in:\n{out}"))
        .trim()
        .replace("127.0.0.1:0", &addr)
        .replace(" objectos mcp", &format!(" {BIN} mcp"));
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"quickstart-test","version":"1"}}}"#;
    let answered = env
        .tool("sh", &["-c", &format!("echo '{init}' | {bridge}")])
        .ok()
        .stdout;
    let answer: Value = serde_json::from_str(answered.lines().next().unwrap_or("")).unwrap();
    assert_eq!(
        answer["result"]["serverInfo"]["name"], "objectos",
        "{answered}"
    );
    assert!(out.contains("objectos review --server"), "{out}");
    let old_rep_key = out
        .lines()
        .find(|l| l.trim_start().starts_with("rep@example.com"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(first.wait().unwrap().code(), Some(0));

    // Again: the same data dir, nothing duplicated, fresh keys, old ones revoked.
    let (mut second, out2, err2) = run_quickstart(&env);
    assert!(
        err2.contains("reusing the data dir") && err2.contains("already bootstrapped"),
        "{err2}"
    );
    let addr2 = err2
        .split("addr=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let server = Server {
        child: None,
        base: format!("http://{addr2}"),
        log: env.path("x"),
        client: reqwest::blocking::Client::new(),
    };
    assert_eq!(
        server.get("/api/v1/data/crm_opportunity", &old_rep_key).0,
        401
    );
    let new_rep_key = out2
        .lines()
        .find(|l| l.trim_start().starts_with("rep@example.com"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    let (s, body, _) = server.get("/api/v1/data/crm_opportunity", &new_rep_key);
    assert_eq!(s, 200);
    assert_eq!(
        body["records"].as_array().unwrap().len(),
        results[0]["records"].as_array().unwrap().len()
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(second.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(second.wait().unwrap().code(), Some(0));
    env.run(&["audit", "verify"]).ok();
    let users = env.run(&["--json", "user", "list"]).ok().json();
    assert_eq!(users["users"].as_array().unwrap().len(), 3);
}

#[test]
fn import_goes_through_the_rules_and_the_audit() {
    let env = Env::new();
    world_with_reps(&env);
    let rows: String = (0..250)
        .map(|i| {
            json!({"name": format!("Deal {i}"), "amount": i * 10, "stage": "proposal"}).to_string()
                + "\n"
        })
        .collect();
    env.write("deals.jsonl", &rows);
    let doc = env
        .run(&[
            "--json",
            "import",
            "crm_opportunity",
            "deals.jsonl",
            "--as",
            "rep.a@example.com",
            "--batch",
            "100",
        ])
        .ok()
        .json();
    assert_eq!(doc["format"], "objectos.import/1");
    assert_eq!(doc["imported"], 250);
    // Each record has its audit row, as the user, via the CLI.
    let audit = env
        .run(&["--json", "audit", "tail", "-n", "1000"])
        .ok()
        .json();
    let creates: Vec<&Value> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "record.create")
        .collect();
    assert_eq!(creates.len(), 250);
    assert_eq!(creates[0]["actor"]["as"]["email"], "rep.a@example.com");
    assert!(creates[0]["actor"]["os_user"].is_string());
    assert_eq!(creates[0]["via"], "cli");
    // CSV with a header row, typed by the fields.
    env.write("deals.csv", "name,amount,stage,close_date\n\"Acme, Inc. renewal\",1200.5,negotiation,2027-01-31\nPlain,7,proposal,\n");
    env.run(&[
        "import",
        "crm_opportunity",
        "deals.csv",
        "--as",
        "rep.a@example.com",
    ])
    .ok();
    let export = env
        .run(&["export", "crm_opportunity", "--as", "rep.a@example.com"])
        .ok()
        .stdout;
    let records = lines(&export);
    assert_eq!(records.len(), 252);
    let acme = records
        .iter()
        .find(|r| r["name"] == "Acme, Inc. renewal")
        .unwrap();
    assert_eq!(acme["amount"], 1200.5);
    assert_eq!(acme["close_date"], "2027-01-31");
    // stdin.
    let run = env.run_in(
        &["import", "crm_contact", "-", "--as", "rep.b@example.com"],
        "{\"last_name\": \"Stdin\"}\n",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn hostile_and_invalid_imports_are_refused_with_their_line() {
    let env = Env::new();
    world_with_reps(&env);
    let rep_b_id = env
        .run(&["--json", "user", "show", "rep.b@example.com"])
        .ok()
        .json()["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let count = |env: &Env| {
        lines(
            &env.run(&["export", "crm_opportunity", "--as", "manager@example.com"])
                .ok()
                .stdout,
        )
        .len()
    };
    // A row setting owner_id to another user: refused whole (the rep may not).
    env.write("owner.jsonl", format!("{{\"name\": \"ok\", \"stage\": \"proposal\"}}\n{{\"name\": \"steal\", \"stage\": \"proposal\", \"owner_id\": \"{rep_b_id}\"}}\n"));
    let run = env
        .run(&[
            "import",
            "crm_opportunity",
            "owner.jsonl",
            "--as",
            "rep.a@example.com",
        ])
        .code(4);
    assert!(
        run.stderr.contains("line 2") && run.stderr.contains("owner_id"),
        "{}",
        run.stderr
    );
    assert_eq!(count(&env), 0, "nothing of the batch is written");
    // A field the user may not edit.
    env.write(
        "note.jsonl",
        "{\"name\": \"x\", \"stage\": \"proposal\", \"discount_approval_note\": \"mine\"}\n",
    );
    let run = env
        .run(&[
            "import",
            "crm_opportunity",
            "note.jsonl",
            "--as",
            "rep.a@example.com",
        ])
        .code(4);
    assert!(run.stderr.contains("field_not_editable"), "{}", run.stderr);
    // Invalid values and --skip-invalid.
    env.write("mixed.jsonl", "{\"name\": \"good 1\", \"stage\": \"proposal\"}\n{\"name\": \"bad stage\", \"stage\": \"won\"}\nnot json\n{\"name\": \"good 2\", \"stage\": \"proposal\"}\n");
    let run = env
        .run(&[
            "import",
            "crm_opportunity",
            "mixed.jsonl",
            "--as",
            "rep.a@example.com",
        ])
        .code(1);
    assert!(run.stderr.contains("line 2"), "{}", run.stderr);
    assert_eq!(count(&env), 0);
    let doc = env
        .run(&[
            "--json",
            "import",
            "crm_opportunity",
            "mixed.jsonl",
            "--as",
            "rep.a@example.com",
            "--skip-invalid",
        ])
        .ok()
        .json();
    assert_eq!(doc["imported"], 2);
    let mut skipped: Vec<i64> = doc["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["line"].as_i64().unwrap())
        .collect();
    skipped.sort();
    assert_eq!(skipped, vec![2, 3]);
    // Malformed CSV quoting.
    env.write(
        "bad.csv",
        "name,stage\n\"open quote,proposal\nok,proposal\n",
    );
    let run = env.run(&[
        "import",
        "crm_opportunity",
        "bad.csv",
        "--as",
        "rep.a@example.com",
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("line"), "{}", run.stderr);
    env.write("ragged.csv", "name,stage\na,proposal,extra\n");
    let run = env
        .run(&[
            "import",
            "crm_opportunity",
            "ragged.csv",
            "--as",
            "rep.a@example.com",
        ])
        .code(1);
    assert!(run.stderr.contains("line 2"), "{}", run.stderr);
    // A 50 MB line.
    {
        use std::io::Write;
        let mut f = std::fs::File::create(env.path("huge.jsonl")).unwrap();
        f.write_all(b"{\"name\": \"").unwrap();
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..50 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(b"\", \"stage\": \"proposal\"}\n").unwrap();
    }
    let run = env
        .run(&[
            "import",
            "crm_opportunity",
            "huge.jsonl",
            "--as",
            "rep.a@example.com",
        ])
        .code(1);
    assert!(
        run.stderr.contains("line 1") && run.stderr.contains("longer"),
        "{}",
        run.stderr
    );
    // A user without create rights, and an object they cannot see.
    env.run(&[
        "import",
        "crm_opportunity",
        "mixed.jsonl",
        "--as",
        "admin@example.com",
    ])
    .code(1);
    assert!(
        !env.run(&[
            "import",
            "crm_product",
            "mixed.jsonl",
            "--as",
            "rep.a@example.com"
        ])
        .stderr
        .contains("panicked")
    );
    assert_eq!(count(&env), 2);
}

#[test]
fn export_holds_exactly_what_the_user_may_read() {
    let env = Env::new();
    world_with_reps(&env);
    env.write(
        "a.jsonl",
        "{\"name\": \"A deal\", \"stage\": \"proposal\"}\n",
    );
    env.write(
        "b.jsonl",
        "{\"name\": \"B deal\", \"stage\": \"proposal\"}\n",
    );
    env.run(&[
        "import",
        "crm_opportunity",
        "a.jsonl",
        "--as",
        "rep.a@example.com",
    ])
    .ok();
    env.run(&[
        "import",
        "crm_opportunity",
        "b.jsonl",
        "--as",
        "rep.b@example.com",
    ])
    .ok();
    env.write("m.jsonl", "{\"name\": \"M deal\", \"stage\": \"proposal\", \"discount_approval_note\": \"CANARY-EXPORT-NOTE\"}\n");
    env.run(&[
        "import",
        "crm_opportunity",
        "m.jsonl",
        "--as",
        "manager@example.com",
    ])
    .ok();
    let out = env
        .run(&["export", "crm_opportunity", "--as", "rep.a@example.com"])
        .ok()
        .stdout;
    assert!(
        !out.contains("B deal") && !out.contains("M deal") && !out.contains("CANARY-EXPORT-NOTE")
    );
    let records = lines(&out);
    assert_eq!(records.len(), 1);
    assert!(records[0].get("discount_approval_note").is_none());
    let manager = env
        .run(&[
            "export",
            "crm_opportunity",
            "--as",
            "manager@example.com",
            "-o",
            "m.out",
        ])
        .ok();
    let _ = manager;
    assert!(env.read("m.out").contains("CANARY-EXPORT-NOTE"));
    // No allowExport: denied, exit 4, and audited.
    let run = env
        .run(&[
            "export",
            "crm_opportunity_line",
            "--as",
            "rep.a@example.com",
        ])
        .code(4);
    assert!(run.stderr.contains("allowExport"), "{}", run.stderr);
    let audit = env.run(&["--json", "audit", "tail", "-n", "5"]).ok().json();
    assert!(
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "export" && e["outcome"] == "denied")
    );
}

#[test]
fn import_export_import_round_trips() {
    let env = Env::new();
    world_with_reps(&env);
    let rows: String = (0..40).map(|i| json!({"name": format!("Deal {i}"), "amount": i, "stage": "negotiation", "region": "emea", "close_date": "2027-06-30"}).to_string() + "\n").collect();
    env.write("in.jsonl", &rows);
    env.run(&[
        "import",
        "crm_opportunity",
        "in.jsonl",
        "--as",
        "rep.a@example.com",
    ])
    .ok();
    env.run(&[
        "export",
        "crm_opportunity",
        "--as",
        "rep.a@example.com",
        "-o",
        "out.jsonl",
    ])
    .ok();
    // Strip what the system sets and import into another user's view.
    let cleaned: String = lines(&env.read("out.jsonl"))
        .into_iter()
        .map(|mut r| {
            let m = r.as_object_mut().unwrap();
            for k in [
                "id",
                "owner_id",
                "organization_id",
                "created_by",
                "created_at",
                "updated_by",
                "updated_at",
                "row_version",
            ] {
                m.remove(k);
            }
            m.retain(|_, v| !v.is_null());
            r.to_string() + "\n"
        })
        .collect();
    env.write("again.jsonl", &cleaned);
    env.run(&[
        "import",
        "crm_opportunity",
        "again.jsonl",
        "--as",
        "rep.b@example.com",
    ])
    .ok();
    let a = lines(
        &env.run(&["export", "crm_opportunity", "--as", "rep.a@example.com"])
            .ok()
            .stdout,
    );
    let b = lines(
        &env.run(&["export", "crm_opportunity", "--as", "rep.b@example.com"])
            .ok()
            .stdout,
    );
    let project = |rs: &Vec<Value>| {
        let mut v: Vec<Value> = rs
            .iter()
            .map(|r| {
                json!([
                    r["name"],
                    r["amount"],
                    r["stage"],
                    r["region"],
                    r["close_date"]
                ])
            })
            .collect();
        v.sort_by_key(|x| x.to_string());
        v
    };
    assert_eq!(project(&a), project(&b));
    assert_eq!(a.len(), 40);
}

#[test]
fn transfer_moves_exactly_the_named_records() {
    let env = Env::new();
    world_with_reps(&env);
    env.write("opps.jsonl", "{\"name\": \"o1\", \"stage\": \"proposal\"}\n{\"name\": \"o2\", \"stage\": \"proposal\"}\n");
    env.write("accs.jsonl", "{\"name\": \"a1\"}\n");
    env.write("b.jsonl", "{\"name\": \"b1\", \"stage\": \"proposal\"}\n");
    env.run(&[
        "import",
        "crm_opportunity",
        "opps.jsonl",
        "--as",
        "rep.a@example.com",
    ])
    .ok();
    env.run(&[
        "import",
        "crm_account",
        "accs.jsonl",
        "--as",
        "rep.a@example.com",
    ])
    .ok();
    env.run(&[
        "import",
        "crm_opportunity",
        "b.jsonl",
        "--as",
        "rep.b@example.com",
    ])
    .ok();
    env.run(&["user", "disable", "rep.a@example.com"]).ok();
    // A disabled user's records stay theirs until transferred.
    let doc = env
        .run(&[
            "--json",
            "transfer",
            "--from",
            "rep.a@example.com",
            "--to",
            "rep.b@example.com",
            "--object",
            "crm_opportunity",
        ])
        .ok()
        .json();
    assert_eq!(doc["total"], 2);
    let b: Vec<String> = lines(
        &env.run(&["export", "crm_opportunity", "--as", "rep.b@example.com"])
            .ok()
            .stdout,
    )
    .iter()
    .map(|r| r["name"].as_str().unwrap().to_string())
    .collect();
    assert_eq!(b.len(), 3, "{b:?}");
    // The account stayed with rep A.
    let audit = env
        .run(&["--json", "audit", "tail", "-n", "20"])
        .ok()
        .json();
    let transfers: Vec<&Value> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "record.transfer")
        .collect();
    assert_eq!(transfers.len(), 2);
    assert!(transfers.iter().all(|t| t["object"] == "crm_opportunity"));
    env.run(&["user", "enable", "rep.a@example.com"]).ok();
    assert_eq!(
        lines(
            &env.run(&["export", "crm_account", "--as", "rep.a@example.com"])
                .ok()
                .stdout
        )
        .len(),
        1
    );
    // Refusals: unknown object, same user, a receiver outside the organization.
    env.run(&[
        "transfer",
        "--from",
        "rep.a@example.com",
        "--to",
        "rep.b@example.com",
        "--object",
        "nope",
    ])
    .code(1);
    env.run(&[
        "transfer",
        "--from",
        "rep.a@example.com",
        "--to",
        "rep.a@example.com",
    ])
    .code(1);
    env.run(&["org", "add", "globex"]).ok();
    env.run(&[
        "user",
        "add",
        "g@globex.com",
        "--org",
        "globex",
        "--no-password",
    ])
    .ok();
    let run = env
        .run(&[
            "transfer",
            "--from",
            "rep.a@example.com",
            "--to",
            "g@globex.com",
        ])
        .code(1);
    assert!(run.stderr.contains("member"), "{}", run.stderr);
}

#[test]
fn backups_taken_under_concurrent_writes_restore_and_verify() {
    let env = Env::new();
    world_with_reps(&env);
    let key = env
        .run(&["apikey", "create", "rep.a@example.com"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let server = Server::start(&env);
    let base = server.base.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (base, key, stop) = (base.clone(), key.clone(), stop.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = client
                        .post(format!("{base}/api/v1/data/crm_note"))
                        .bearer_auth(&key)
                        .header("content-type", "application/json")
                        .body(json!({"title": format!("w{w}-{n}")}).to_string())
                        .send()
                        .unwrap();
                    assert_eq!(r.status().as_u16(), 201);
                    n += 1;
                }
                n
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let id = if have_tool("age") {
        env.tool("age-keygen", &["-o", "backup.key"]).ok();
        Some(
            env.read("backup.key")
                .lines()
                .find(|l| l.starts_with("# public key: "))
                .unwrap()
                .trim_start_matches("# public key: ")
                .to_string(),
        )
    } else {
        None
    };
    let mut args = vec!["--json", "backup", "-o", "snap.tar.age"];
    if let Some(r) = &id {
        args.extend(["--encrypt-to", r.as_str()]);
    } else {
        args = vec!["--json", "backup", "-o", "snap.tar.age"];
    }
    let report = env.run(&args).ok().json();
    std::thread::sleep(std::time::Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(written > 0);
    drop(server);
    if id.is_none() {
        return;
    }
    assert_eq!(report["encrypted"], true);
    // Stock tools read it: age decrypts, tar lists the expected entries.
    let listing = env
        .tool(
            "sh",
            &["-c", "age -d -i backup.key snap.tar.age | tar -tf -"],
        )
        .ok()
        .stdout;
    for entry in [
        "manifest.json",
        "objectos.db",
        "audit-checkpoints.log",
        "instance.key",
        "instance-signing.key",
        "instance-signing.key.pub",
    ] {
        assert!(listing.lines().any(|l| l == entry), "{entry} in {listing}");
    }
    // Restore elsewhere: a consistent database whose chain verifies.
    let restored = env
        .run(&[
            "--data-dir",
            "restored",
            "--json",
            "restore",
            "snap.tar.age",
            "-i",
            "backup.key",
            "--signer",
            "data/instance-signing.key.pub",
        ])
        .ok()
        .json();
    assert!(restored["audit_rows"].as_u64().unwrap() > 10);
    env.run(&["--data-dir", "restored", "audit", "verify"]).ok();
    env.run(&["--data-dir", "restored", "doctor"]).ok();
    // The restored instance serves the same records it holds.
    let notes: usize = sql_query(
        &env.path("restored/objectos.db"),
        "SELECT count(*) FROM rec_crm_note",
    )[0][0]
        .parse()
        .unwrap();
    let head = report["audit_head_seq"].as_i64().unwrap();
    let creates = env
        .run(&[
            "--data-dir",
            "restored",
            "--json",
            "audit",
            "tail",
            "-n",
            "100000",
        ])
        .ok()
        .json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "record.create" && e["seq"].as_i64().unwrap() <= head)
        .count();
    assert_eq!(
        notes, creates,
        "every note in the snapshot has its audit row and vice versa"
    );
    // Into a non-empty dir: refused.
    env.run(&[
        "--data-dir",
        "restored",
        "restore",
        "snap.tar.age",
        "-i",
        "backup.key",
    ])
    .code(1);
    // An unencrypted backup has no keys.
    env.run(&["backup", "-o", "plain.tar"]).ok();
    let listing = env.tool("tar", &["-tf", "plain.tar"]).ok().stdout;
    assert!(!listing.contains("instance.key") && !listing.contains("instance-signing.key\n"));
    env.run(&["--data-dir", "r2", "restore", "plain.tar"])
        .code(1);
    // An unencrypted backup that carries keys was not made by objectos: refused.
    std::fs::create_dir(env.path("k")).unwrap();
    env.tool("tar", &["-xf", "plain.tar", "-C", "k"]).ok();
    std::fs::copy(env.path("data/instance.key"), env.path("k/instance.key")).unwrap();
    env.tool("sh", &["-c", "cd k && tar -cf ../withkeys.tar *"])
        .ok();
    env.run(&[
        "--data-dir",
        "r3",
        "restore",
        "withkeys.tar",
        "--keys-from",
        "data",
    ])
    .code(3);
    env.run(&[
        "--data-dir",
        "r2",
        "restore",
        "plain.tar",
        "--keys-from",
        "data",
    ])
    .ok();
}

#[test]
fn a_backup_with_a_tampered_chain_is_refused() {
    let env = Env::new();
    world_with_reps(&env);
    env.run(&["backup", "-o", "plain.tar"]).ok();
    // Unpacked and packed again with the `tar` crate: this test is about the
    // chain; the backup test checks that stock `tar` reads a backup.
    let unpack = |dir: &str| {
        tar::Archive::new(std::fs::File::open(env.path("plain.tar")).unwrap())
            .unpack(env.path(dir))
            .unwrap();
    };
    let pack = |dir: &str, archive: &str| {
        let mut out = tar::Builder::new(std::fs::File::create(env.path(archive)).unwrap());
        for entry in [
            "manifest.json",
            "manifest.json.minisig",
            "objectos.db",
            "audit-checkpoints.log",
            "instance-signing.key.pub",
        ] {
            out.append_path_with_name(env.path(&format!("{dir}/{entry}")), entry)
                .unwrap();
        }
        out.append_dir_all("trust", env.path(&format!("{dir}/trust")))
            .unwrap();
        out.finish().unwrap();
    };
    // The control: unpacked and packed again untouched, it restores.
    unpack("same");
    pack("same", "same.tar");
    env.run(&[
        "--data-dir",
        "r0",
        "restore",
        "same.tar",
        "--keys-from",
        "data",
    ])
    .ok();
    unpack("x");
    sql(
        &env.path("x/objectos.db"),
        "DROP TRIGGER objectos_audit_no_update; UPDATE objectos_audit SET action = 'forged' WHERE seq = 3;",
    );
    pack("x", "forged.tar");
    let run = env
        .run(&[
            "--data-dir",
            "r",
            "restore",
            "forged.tar",
            "--keys-from",
            "data",
        ])
        .code(3);
    assert!(run.stderr.contains("signed manifest"), "{}", run.stderr);
    assert!(!env.path("r").exists());
}

#[test]
fn serve_tells_systemd_when_it_is_ready_and_when_it_stops() {
    let env = Env::new();
    ready(&env);
    let socket_path = env.path("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let log = env.path("serve.log");
    let mut child = env
        .cmd()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", &socket_path)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("READY=1 datagram");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg}");
    assert!(msg.contains("STATUS=listening on 127.0.0.1:"), "{msg}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let n = socket.recv(&mut buf).expect("STOPPING=1 datagram");
    assert_eq!(String::from_utf8_lossy(&buf[..n]), "STOPPING=1");
    assert_eq!(child.wait().unwrap().code(), Some(0));
    // The unit file asks for what the server does.
    let unit = std::fs::read_to_string(repo().join("contrib/objectos.service")).unwrap();
    for line in [
        "Type=notify",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/objectos",
        "PrivateTmp=yes",
        "IPAddressDeny=any",
        "IPAddressAllow=localhost",
        "ExecStart=/usr/local/bin/objectos serve",
    ] {
        assert!(unit.contains(line), "{line}");
    }
}
