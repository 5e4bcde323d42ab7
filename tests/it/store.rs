//! The runtime store: init, trust, apply, bootstrap, identities, audit, settings, doctor.

use serde_json::{Value, json};

use crate::util::*;

pub const PASSWORD: &str = "correct horse battery staple";

/// A data dir with the CRM applied and bootstrapped; returns the admin's key.
pub fn ready(env: &Env) -> String {
    env.signed_crm();
    env.run(&["init"]).ok();
    env.run(&["trust", "add", "signer.pub"]).ok();
    env.run(&["apply", "artifact.json", "-y"]).ok();
    env.write("pw", format!("{PASSWORD}\n"));
    env.run(&[
        "bootstrap",
        "--admin-email",
        "admin@example.com",
        "--password-file",
        "pw",
    ])
    .ok()
    .stdout
    .trim()
    .to_string()
}

fn audit_rows(env: &Env) -> Vec<Value> {
    env.run(&["--json", "audit", "tail", "-n", "100000"])
        .ok()
        .json()["events"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn init_lays_down_the_data_dir_and_is_idempotent() {
    // What it checks is SQLite's file in the data dir: this runs on SQLite
    // whatever the suite runs on.
    let env = Env::sqlite();
    let first = env.run(&["--json", "init"]).ok().json();
    assert_eq!(first["format"], "objectos.init/1");
    assert_eq!(first["created"], true);
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| std::fs::metadata(env.path(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("data"), 0o700);
    assert_eq!(mode("data/instance.key"), 0o600);
    assert_eq!(mode("data/instance-signing.key"), 0o600);
    assert_eq!(mode("data/objectos.db"), 0o600);
    assert!(env.read("data/instance.key").contains("AGE-SECRET-KEY-1"));
    assert!(env.path("data/trust").is_dir());
    assert!(env.path("data/audit-checkpoints.log").exists());
    let again = env.run(&["--json", "init"]).ok().json();
    assert_eq!(again["created"], false);
    assert_eq!(again["instance_id"], first["instance_id"]);
    assert_eq!(again["recipient"], first["recipient"]);
    // The instance key is a real age identity: stock `age` decrypts to it.
    if have_tool("age") {
        let recipient = first["recipient"].as_str().unwrap();
        env.write("msg", "hello");
        env.tool("age", &["-r", recipient, "-o", "msg.age", "msg"])
            .ok();
        let clear = env
            .tool("age", &["-d", "-i", "data/instance.key", "msg.age"])
            .ok();
        assert_eq!(clear.stdout, "hello");
    }
}

#[test]
fn init_refuses_a_directory_that_is_not_a_data_dir() {
    let env = Env::new();
    env.write("data/notes.txt", "mine");
    let run = env.run(&["init"]).code(1);
    assert!(
        run.stderr.contains("not an objectos data dir"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_dir(env.path("data")).unwrap().count(), 1);
    let run = env.run(&["user", "list"]).code(1);
    assert!(run.stderr.contains("objectos init"), "{}", run.stderr);
}

#[test]
fn apply_refuses_untrusted_expired_and_tampered_artifacts_and_changes_nothing() {
    // Tampering through SQLite's own catalog and syntax; tests/it/postgres.rs
    // does the same to PostgreSQL: this runs on SQLite whatever the suite runs on.
    let env = Env::sqlite();
    env.signed_crm();
    env.run(&["init"]).ok();
    let tables = |env: &Env| {
        sql_query(
            &env.db(),
            "SELECT count(*) FROM sqlite_master WHERE name LIKE 'rec_%'",
        )[0][0]
            .clone()
    };
    // Untrusted: no key trusted yet.
    let run = env.run(&["apply", "artifact.json", "-y"]).code(3);
    assert!(run.stderr.contains("untrusted key"), "{}", run.stderr);
    env.run(&["trust", "add", "signer.pub"]).ok();
    // Tampered.
    let original = env.read("artifact.json");
    env.write(
        "artifact.json",
        original.replacen("Example CRM", "Example CRX", 1),
    );
    env.run(&["apply", "artifact.json", "-y"]).code(3);
    env.write("artifact.json", &original);
    // Expired.
    env.run(&["sign", "artifact.json", "-k", "signer", "--expires", "1h"])
        .ok();
    let run = env
        .run_later(7200, &["apply", "artifact.json", "-y"])
        .code(3);
    assert!(run.stderr.contains("expired"), "{}", run.stderr);
    assert_eq!(tables(&env), "0");
    // Each refusal left its row.
    let refusals = audit_rows(&env)
        .into_iter()
        .filter(|r| r["action"] == "artifact.apply" && r["outcome"] == "error")
        .count();
    assert_eq!(refusals, 3);
    // --plan changes nothing either.
    env.run(&["sign", "artifact.json", "-k", "signer"]).ok();
    let plan = env
        .run(&["--json", "apply", "artifact.json", "--plan"])
        .ok()
        .json();
    assert_eq!(plan["format"], "objectos.apply/1");
    assert_eq!(plan["applied"], false);
    assert!(
        plan["plan"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "create_object" && s["object"] == "crm_opportunity")
    );
    assert_eq!(tables(&env), "0");
    env.run(&["apply", "artifact.json", "-y"]).ok();
    assert_eq!(tables(&env), "7");
    // Typed columns and system columns.
    let cols: Vec<String> = sql_query(
        &env.db(),
        "SELECT name || ':' || type FROM pragma_table_info('rec_crm_opportunity')",
    )
    .into_iter()
    .map(|row| row[0].clone())
    .collect();
    for expected in [
        "id:TEXT",
        "owner_id:TEXT",
        "organization_id:TEXT",
        "created_by:TEXT",
        "created_at:TEXT",
        "updated_by:TEXT",
        "updated_at:TEXT",
        "amount:REAL",
        "stage:TEXT",
    ] {
        assert!(cols.iter().any(|l| l == expected), "{expected} in {cols:?}");
    }
    // Re-applying is a no-op.
    let again = env
        .run(&["--json", "apply", "artifact.json", "-y"])
        .ok()
        .json();
    assert_eq!(again["no_op"], true);
}

fn resign_variant(env: &Env, name: &str, edit: impl Fn(&mut Value)) {
    let mut doc: Value = serde_json::from_str(&env.read("artifact.json")).unwrap();
    edit(&mut doc);
    env.write(
        &format!("{name}.src.json"),
        serde_json::to_string(&doc).unwrap(),
    );
    env.run(&[
        "build",
        &format!("{name}.src.json"),
        "-o",
        &format!("{name}.json"),
    ])
    .ok();
    env.run(&["sign", &format!("{name}.json"), "-k", "signer"])
        .ok();
}

#[test]
fn destructive_plans_and_downgrades_need_their_flags() {
    let env = Env::new();
    ready(&env);
    // v1.1: a field added (not destructive), and a field dropped (destructive).
    resign_variant(&env, "v11", |doc| {
        doc["manifest"]["version"] = json!("1.1.0");
        doc["objects"][1]["fields"]["nickname"] = json!({"type": "text"});
        doc["objects"][1]["fields"]
            .as_object_mut()
            .unwrap()
            .remove("birthdate");
    });
    let run = env.run(&["apply", "v11.json", "-y"]).code(1);
    assert!(run.stderr.contains("--allow-destructive"), "{}", run.stderr);
    let doc = env
        .run(&["--json", "apply", "v11.json", "-y", "--allow-destructive"])
        .ok()
        .json();
    assert_eq!(doc["applied"], true);
    assert!(
        doc["plan"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "drop_field" && s["destructive"] == true)
    );
    // Back to 1.0.0: a downgrade.
    let run = env
        .run(&["apply", "artifact.json", "-y", "--allow-destructive"])
        .code(1);
    assert!(run.stderr.contains("--allow-downgrade"), "{}", run.stderr);
    env.run(&[
        "apply",
        "artifact.json",
        "-y",
        "--allow-destructive",
        "--allow-downgrade",
    ])
    .ok();
    // A type change is destructive too.
    resign_variant(&env, "v12", |doc| {
        doc["manifest"]["version"] = json!("1.2.0");
        doc["objects"][1]["fields"]["phone"] = json!({"type": "number"});
    });
    let plan = env.run(&["--json", "apply", "v12.json", "--plan"]).code(1);
    assert!(
        plan.stderr.contains("--allow-destructive"),
        "{}",
        plan.stderr
    );
    // Without a terminal and without -y, apply asks nobody and changes nothing.
    let run = env
        .run(&["apply", "v12.json", "--allow-destructive"])
        .code(1);
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);
}

#[test]
fn every_state_changing_command_leaves_exactly_one_audit_row() {
    let env = Env::new();
    ready(&env);
    let steps: Vec<(Vec<&str>, &str)> = vec![
        (vec!["org", "add", "globex"], "org.add"),
        (
            vec![
                "user",
                "add",
                "rep@example.com",
                "--no-password",
                "--name",
                "Rep",
            ],
            "user.add",
        ),
        (
            vec![
                "user",
                "add",
                "g@globex.com",
                "--org",
                "globex",
                "--password-file",
                "pw",
            ],
            "user.add",
        ),
        (
            vec!["member", "add", "rep@example.com", "globex"],
            "member.add",
        ),
        (
            vec!["member", "remove", "rep@example.com", "globex"],
            "member.remove",
        ),
        (vec!["team", "add", "finance"], "team.add"),
        (
            vec!["team", "add-member", "finance", "rep@example.com"],
            "team.add_member",
        ),
        (
            vec!["team", "remove-member", "finance", "rep@example.com"],
            "team.remove_member",
        ),
        (
            vec![
                "permset",
                "assign",
                "sales_rep",
                "rep@example.com",
                "--valid-until",
                "30d",
            ],
            "permset.assign",
        ),
        (
            vec![
                "apikey",
                "create",
                "rep@example.com",
                "--agent",
                "--read-only",
            ],
            "apikey.create",
        ),
        (
            vec!["apikey", "create", "rep@example.com", "--name", "laptop"],
            "apikey.create",
        ),
        (
            vec!["permset", "revoke", "sales_rep", "rep@example.com"],
            "permset.revoke",
        ),
        (
            vec![
                "user",
                "set-password",
                "rep@example.com",
                "--password-file",
                "pw",
            ],
            "user.set_password",
        ),
        (vec!["user", "disable", "rep@example.com"], "user.disable"),
        (vec!["user", "enable", "rep@example.com"], "user.enable"),
        (vec!["settings", "set", "site.name", "Acme"], "settings.set"),
        (vec!["settings", "unset", "site.name"], "settings.unset"),
        // Refusals leave one row too.
        (
            vec!["user", "add", "rep@example.com", "--no-password"],
            "user.add",
        ),
        (
            vec!["user", "add", "not-an-email", "--no-password"],
            "user.add",
        ),
        (
            vec!["permset", "assign", "no_such_set", "rep@example.com"],
            "permset.assign",
        ),
        (
            vec!["apikey", "create", "admin@example.com", "--agent"],
            "apikey.create",
        ),
    ];
    let before = audit_rows(&env).len();
    for (i, (args, action)) in steps.into_iter().enumerate() {
        let seen = before + i;
        let run = env.run(&args);
        let rows = audit_rows(&env);
        assert_eq!(
            rows.len(),
            seen + 1,
            "{args:?} should add exactly one row:\n{}",
            run.stderr
        );
        let row = rows.last().unwrap();
        assert_eq!(row["action"], action, "{args:?}");
        assert_eq!(row["via"], "cli");
        assert!(row["actor"]["os_user"].is_string(), "{row}");
        for key in [
            "seq",
            "id",
            "time",
            "actor",
            "via",
            "client",
            "credential",
            "action",
            "object",
            "record_id",
            "changes",
            "outcome",
            "code",
            "request_id",
            "prev_hash",
            "hash",
        ] {
            assert!(row.get(key).is_some(), "{key} missing in {row}");
        }
        let expected = if run.code == 0 {
            "success"
        } else if run.code == 4 {
            "denied"
        } else {
            "error"
        };
        assert_eq!(row["outcome"], expected, "{args:?}: {row}");
    }
    env.run(&["audit", "verify"]).ok();
}

#[test]
fn the_chain_is_hashed_as_documented() {
    let env = Env::new();
    ready(&env);
    let rows = audit_rows(&env);
    let mut prev = "0".repeat(64);
    for row in &rows {
        assert_eq!(row["prev_hash"], prev.as_str());
        let mut body = row.clone();
        body.as_object_mut().unwrap().remove("hash");
        use sha2::Digest;
        let mut sha = sha2::Sha256::new();
        sha.update(hex::decode(&prev).unwrap());
        sha.update(serde_json_canonicalizer::to_vec(&body).unwrap());
        let hash = hex::encode(sha.finalize());
        assert_eq!(row["hash"], hash.as_str(), "{row}");
        prev = hash;
    }
}

#[test]
fn tampering_behind_the_tools_back_is_caught_naming_the_seq() {
    // Tampering through SQLite's own catalog and syntax; tests/it/postgres.rs
    // does the same to PostgreSQL: this runs on SQLite whatever the suite runs on.
    let env = Env::sqlite();
    ready(&env);
    for i in 0..6 {
        env.run(&["team", "add", &format!("team{i}")]).ok();
    }
    let head = audit_rows(&env).len();
    // The triggers refuse even a write straight to the database.
    let err = try_sql(
        &env.db(),
        "UPDATE objectos_audit SET action = 'x' WHERE seq = 3",
    )
    .expect_err("the audit table refuses updates");
    assert!(err.contains("immutable"), "{err}");

    // Alter a middle row with the trigger dropped.
    sql(&env.db(), "PRAGMA wal_checkpoint(TRUNCATE);");
    let pristine = std::fs::read(env.path("data/objectos.db")).unwrap();
    let pristine_log = std::fs::read(env.path("data/audit-checkpoints.log")).unwrap();
    sql(
        &env.db(),
        "DROP TRIGGER objectos_audit_no_update; UPDATE objectos_audit SET record_id = 'forged' WHERE seq = 5;",
    );
    let run = env.run(&["audit", "verify"]).code(3);
    assert!(run.stderr.contains("seq 5"), "{}", run.stderr);
    // The dropped guard was noticed, said loudly, and put back.
    assert!(run.stderr.contains("TAMPERING"), "{}", run.stderr);
    let err = try_sql(
        &env.db(),
        "UPDATE objectos_audit SET action = 'x' WHERE seq = 3",
    )
    .expect_err("the guard is back");
    assert!(err.contains("immutable"), "{err}");
    let doc = env.run(&["--json", "audit", "verify"]).code(3).json();
    assert_eq!(doc["broken"]["seq"], 5);
    assert_eq!(
        doc["guards_restored_at"].as_array().unwrap().len(),
        1,
        "{doc}"
    );
    env.run(&["doctor"]).code(1);

    // Restore the database and its checkpoint log, then cut off the newest rows:
    // only the checkpoints can tell.
    std::fs::write(env.path("data/objectos.db"), &pristine).unwrap();
    std::fs::write(env.path("data/audit-checkpoints.log"), &pristine_log).unwrap();
    let _ = std::fs::remove_file(env.path("data/objectos.db-wal"));
    env.run(&["audit", "verify"]).ok();
    let cut_from = head as i64 - 1;
    sql(
        &env.db(),
        &format!(
            "DROP TRIGGER objectos_audit_no_delete; DELETE FROM objectos_audit WHERE seq >= {cut_from};"
        ),
    );
    let doc = env.run(&["--json", "audit", "verify"]).code(3).json();
    assert_eq!(doc["broken"]["seq"], cut_from, "{doc}");
    assert!(
        doc["broken"]["reason"]
            .as_str()
            .unwrap()
            .contains("checkpoint"),
        "{doc}"
    );
}

#[test]
fn secrets_appear_nowhere_in_the_database_audit_or_output() {
    let env = Env::new();
    let admin_key = ready(&env);
    let secret_value = "s3cr3t-smtp-password-value";
    let set = env
        .run(&["settings", "set", "smtp.password", secret_value, "--secret"])
        .ok();
    let key = env.run(&["apikey", "create", "admin@example.com"]).ok();
    let api_key = key.stdout.trim().to_string();
    assert!(
        api_key.starts_with("osk_") && api_key.len() == 4 + 43,
        "{api_key}"
    );
    let listed = env.run(&["settings", "list"]).ok();
    assert!(!listed.stdout.contains(secret_value));
    let listed = env.run(&["--json", "settings", "list"]).ok();
    assert!(!listed.stdout.contains(secret_value));
    let keys = env.run(&["--json", "apikey", "list"]).ok();
    assert!(!keys.stdout.contains(&api_key) && !keys.stdout.contains(&admin_key));
    // The operator can read the secret back (and that read is audited).
    let got = env.run(&["settings", "get", "smtp.password"]).ok();
    assert_eq!(got.stdout.trim(), secret_value);
    assert_eq!(audit_rows(&env).last().unwrap()["action"], "settings.get");
    let audit = env
        .run(&["--json", "audit", "tail", "-n", "1000"])
        .ok()
        .stdout;
    // Make sure the database files are flushed and scan every byte of them.
    env.run(&["doctor"]).ok();
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(env.path("data")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    let contains =
        |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    for secret in [PASSWORD, secret_value, api_key.as_str(), admin_key.as_str()] {
        assert!(
            !contains(&bytes, secret),
            "`{secret}` found in the data dir"
        );
        assert!(!audit.contains(secret), "`{secret}` found in the audit log");
        assert!(!set.stderr.contains(secret) && !set.stdout.contains(secret));
    }
}

#[test]
fn bootstrap_runs_once_and_prints_only_the_key() {
    let env = Env::new();
    let key = ready(&env);
    assert!(
        key.starts_with("osk_") && !key.contains(char::is_whitespace),
        "{key}"
    );
    let run = env
        .run(&[
            "bootstrap",
            "--admin-email",
            "other@example.com",
            "--password-file",
            "pw",
        ])
        .code(1);
    assert!(
        run.stderr.contains("already bootstrapped"),
        "{}",
        run.stderr
    );
    let permsets = env.run(&["--json", "permset", "show", "admin"]).ok().json();
    let system: Vec<&str> = permsets["system_permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(!system.contains(&"agent_access"));
    for p in [
        "manage_users",
        "manage_permissions",
        "manage_settings",
        "approve_actions",
        "view_audit",
        "export_audit",
        "api_access",
    ] {
        assert!(system.contains(&p), "{p}");
    }
    assert!(permsets["objects"].as_array().unwrap().is_empty());
}

#[test]
fn bad_input_is_refused_clearly_and_nothing_is_half_written() {
    // What it checks is SQLite's file in the data dir: this runs on SQLite
    // whatever the suite runs on.
    let env = Env::sqlite();
    ready(&env);
    env.write("weak", "short\n");
    env.write("empty", "\n");
    for (args, needle) in [
        (
            vec!["user", "add", "x@example.com", "--password-file", "weak"],
            "shorter than 12",
        ),
        (
            vec!["user", "add", "x@example.com", "--password-file", "empty"],
            "empty",
        ),
        (vec!["user", "add", "x@example.com"], "--password-file"),
        (
            vec!["user", "add", "x example.com", "--no-password"],
            "not an email",
        ),
        (vec!["user", "disable", "ghost@example.com"], "no user"),
        (
            vec!["permset", "assign", "ghost", "admin@example.com"],
            "no permission set",
        ),
        (
            vec!["member", "add", "admin@example.com", "ghost-org"],
            "no organization",
        ),
        (
            vec!["team", "add-member", "ghost", "admin@example.com"],
            "no team",
        ),
        (vec!["apikey", "revoke", "osk_nothing"], "no API key"),
        (vec!["settings", "get", "ghost"], "no setting"),
        (
            vec!["settings", "set", "Bad Key", "v"],
            "not a setting name",
        ),
    ] {
        let run = env.run(&args).code(1);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"));
    }
    // A flag value that is no value of its kind is a usage error (exit 2).
    let run = env
        .run(&[
            "permset",
            "assign",
            "sales_rep",
            "admin@example.com",
            "--valid-until",
            "yesterday",
        ])
        .code(2);
    assert!(run.stderr.contains("neither a duration"), "{}", run.stderr);
    assert!(
        env.run(&["--json", "user", "list"]).ok().json()["users"]
            .as_array()
            .unwrap()
            .len()
            == 1
    );
    // A foreign instance key.
    let other = Env::new();
    other.run(&["init"]).ok();
    let original = env.read("data/instance.key");
    std::fs::copy(
        other.path("data/instance.key"),
        env.path("data/instance.key"),
    )
    .unwrap();
    let run = env.run(&["user", "list"]).code(1);
    assert!(
        run.stderr.contains("not this instance's key"),
        "{}",
        run.stderr
    );
    env.write("data/instance.key", original);
    // A corrupt database.
    let db = std::fs::read(env.path("data/objectos.db")).unwrap();
    env.write("data/objectos.db", vec![0x42u8; 8192]);
    let _ = std::fs::remove_file(env.path("data/objectos.db-wal"));
    let run = env.run(&["user", "list"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("corrupt") || run.stderr.contains("not a database"),
        "{}",
        run.stderr
    );
    std::fs::write(env.path("data/objectos.db"), db).unwrap();
}

#[test]
fn trust_remove_warns_about_the_applied_signer_and_doctor_fails() {
    let env = Env::new();
    ready(&env);
    let list = env.run(&["--json", "trust", "list"]).ok().json();
    let id = list["keys"][0]["key_id"].as_str().unwrap().to_string();
    assert_eq!(list["keys"][0]["signed_applied"], true);
    let run = env.run(&["trust", "remove", &id]).ok();
    assert!(run.stderr.contains("serve"), "{}", run.stderr);
    let doctor = env.run(&["--json", "doctor"]).code(1).json();
    let artifact = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "artifact")
        .unwrap()
        .clone();
    assert_eq!(artifact["status"], "fail");
    env.run(&["trust", "remove", &id]).code(1);
}

#[test]
fn doctor_reports_each_check() {
    let env = Env::new();
    ready(&env);
    let doc = env.run(&["--json", "doctor"]).ok().json();
    assert_eq!(doc["format"], "objectos.doctor/1");
    let names: Vec<&str> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for n in [
        "data_dir",
        "instance.key",
        "instance-signing.key",
        "instance",
        "integrity",
        "schema",
        "audit",
        "artifact",
        "network",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        env.path("data/instance.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let doc = env.run(&["--json", "doctor"]).code(1).json();
    assert_eq!(doc["healthy"], false);
}

#[test]
fn keys_are_bound_to_one_organization() {
    let env = Env::new();
    ready(&env);
    env.run(&["org", "add", "globex"]).ok();
    env.run(&["member", "add", "admin@example.com", "globex"])
        .ok();
    let run = env.run(&["apikey", "create", "admin@example.com"]).code(1);
    assert!(run.stderr.contains("--org"), "{}", run.stderr);
    let doc = env
        .run(&[
            "--json",
            "apikey",
            "create",
            "admin@example.com",
            "--org",
            "globex",
            "--expires",
            "30d",
        ])
        .ok()
        .json();
    assert_eq!(doc["organization"], "globex");
    assert!(doc["expires_at"].is_string());
    assert_eq!(doc["key"].as_str().unwrap().len(), 47);
    let prefix = doc["prefix"].as_str().unwrap().to_string();
    env.run(&["apikey", "revoke", &prefix]).ok();
    env.run(&["apikey", "revoke", &prefix]).code(1);
}

/// The bash block of `docs/audit-log.md` whose second line starts `# NAME`.
fn documented_script(name: &str) -> String {
    let page = std::fs::read_to_string(repo().join("docs/audit-log.md")).unwrap();
    page.split("```bash\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .find(|script| {
            script
                .lines()
                .nth(1)
                .is_some_and(|l| l.starts_with(&format!("# {name}")))
        })
        .unwrap_or_else(|| panic!("docs/audit-log.md has no `{name}` script"))
        .to_string()
}

#[test]
fn the_documented_stock_tool_scripts_verify_a_real_chain_and_catch_a_forged_row() {
    for tool in ["bash", "sqlite3", "sha256sum", "minisign"] {
        if !have_tool(tool) {
            return;
        }
    }
    let env = Env::sqlite();
    ready(&env);
    for i in 0..4 {
        env.run(&["team", "add", &format!("scripted{i}")]).ok();
    }
    env.write("chain.sh", documented_script("chain.sh"));
    env.write("checkpoints.sh", documented_script("checkpoints.sh"));
    let data = env.path("data").display().to_string();
    let run_script = |script: &str, dir: &str| {
        let out = std::process::Command::new("bash")
            .arg(env.path(script))
            .arg(dir)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // As the page says: one line per row, and every checkpoint checked.
    let rows = audit_rows(&env).len();
    let (code, out) = run_script("chain.sh", &data);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.lines().count(), rows, "{out}");
    let (code, out) = run_script("checkpoints.sh", &data);
    assert_eq!(code, Some(0), "{out}");
    let checkpoints = std::fs::read_to_string(env.path("data/audit-checkpoints.log")).unwrap();
    assert_eq!(out.lines().count(), checkpoints.lines().count(), "{out}");

    // A row altered behind the tool's back (in a copy): both scripts fail.
    sql(&env.db(), "PRAGMA wal_checkpoint(TRUNCATE);");
    let forged = env.path("forged");
    std::fs::create_dir(&forged).unwrap();
    for file in [
        "objectos.db",
        "audit-checkpoints.log",
        "instance-signing.key.pub",
    ] {
        std::fs::copy(env.path("data").join(file), forged.join(file)).unwrap();
    }
    let last = rows as i64;
    sql(
        &forged.join("objectos.db"),
        &format!(
            "DROP TRIGGER objectos_audit_no_update; UPDATE objectos_audit SET record_id = 'forged' WHERE seq = {last};"
        ),
    );
    let forged = forged.display().to_string();
    let (code, out) = run_script("chain.sh", &forged);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("row {last}: its content does not match its hash")),
        "{out}"
    );
    // The last checkpoint names the last row's hash, which the forger would have
    // to change too.
    sql(
        &std::path::Path::new(&forged).join("objectos.db"),
        &format!(
            "UPDATE objectos_audit SET hash = '{}' WHERE seq = {last};",
            "0".repeat(64)
        ),
    );
    let (code, out) = run_script("checkpoints.sh", &forged);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("is missing or differs"), "{out}");
}
