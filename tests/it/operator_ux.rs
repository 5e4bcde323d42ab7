//! The operator's first hour, second pass: a plan that shows what widens access,
//! quickstart that checks before it changes anything, read-only media, secrets
//! that never touch argv, one error document for `--json`, usage exit codes,
//! guards against locking everyone out, and key rotation.

use serde_json::Value;

use crate::store::{PASSWORD, ready};
use crate::util::*;

/// The CRM with one object's sharing opened to everyone, signed by the same key.
fn widened(env: &Env) {
    let mut doc: Value = serde_json::from_str(&env.read("artifact.json")).unwrap();
    let objects = doc["objects"].as_array_mut().unwrap();
    let opp = objects
        .iter_mut()
        .find(|o| o["name"] == "crm_opportunity")
        .unwrap();
    opp["sharingModel"] = "public_read_write".into();
    doc["manifest"]["version"] = "1.1.0".into();
    env.write("widened.json", doc.to_string());
    env.run(&["build", "widened.json", "-o", "widened.json"])
        .ok();
    env.run(&["sign", "widened.json", "-k", "signer"]).ok();
}

#[test]
fn the_plan_shows_every_widening_first_on_stdout() {
    let env = Env::new();
    ready(&env);
    widened(&env);
    // `--plan > plan.txt` captures the plan.
    let run = env.run(&["apply", "widened.json", "--plan"]).ok();
    let plan = run.stdout;
    assert!(plan.contains("WIDENS ACCESS"), "{plan}");
    let widening_line = plan
        .lines()
        .position(|l| l.contains("WIDENS ACCESS") && l.contains("crm_opportunity"))
        .expect("the sharing change is flagged");
    let first_change = plan
        .lines()
        .position(|l| l.trim_start().starts_with(['+', '-', '~']))
        .unwrap();
    assert_eq!(first_change, widening_line, "widening first:\n{plan}");
    // The same change, flagged the same way `diff` flags it.
    let diff = env
        .run(&["diff", "artifact.json", "widened.json"])
        .ok()
        .stdout;
    let flagged = |text: &str| {
        text.lines()
            .filter(|l| l.contains("WIDENS ACCESS"))
            .map(|l| l.trim().to_string())
            .collect::<Vec<_>>()
    };
    for line in flagged(&diff) {
        assert!(
            flagged(&plan).contains(&line),
            "{line} missing from the plan"
        );
    }
    let doc = env
        .run(&["--json", "apply", "widened.json", "--plan"])
        .ok()
        .json();
    assert_eq!(doc["format"], "objectos.apply/1");
    assert!(doc["widening"].as_u64().unwrap() >= 1);
    assert_eq!(doc["changes"][0]["widens"], true);
    assert_eq!(doc["applied"], false);
    // Nothing was applied.
    let applied = env
        .run(&["--json", "apply", "artifact.json", "--plan"])
        .ok()
        .json();
    assert_eq!(applied["no_op"], true);
}

#[test]
fn json_failures_print_one_error_document_and_bad_values_are_usage_errors() {
    let env = Env::new();
    // A command that fails: the document on stdout, the words on stderr.
    let run = env.run(&["--json", "apply", "missing.json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let doc = run.json();
    assert_eq!(doc["format"], "objectos.error/1");
    assert_eq!(doc["exit"], 1);
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("data dir")
    );
    assert!(doc["error"]["hint"].is_string());
    assert!(run.stderr.contains("error:"));
    // A verification failure carries its exit.
    env.write("bad.json", "{\"manifest\": 1}");
    let run = env.run(&["--json", "validate", "bad.json"]);
    assert_eq!(run.code, 3);
    assert!(
        run.json()["format"]
            .as_str()
            .unwrap()
            .starts_with("objectos.")
    );
    // Usage errors, bad flag values included, exit 2 with a document too.
    for args in [
        vec![
            "--json", "import", "o", "f.csv", "--as", "a@b.c", "--format", "xml",
        ],
        vec!["--json", "serve", "--listen", "not-an-address"],
        vec!["--json", "serve", "--trusted-proxy", "notanip"],
        vec!["--json", "serve", "--trusted-proxy", "10.0.0.0/99"],
        vec!["--json", "apikey", "create", "a@b.c", "--expires", "90x"],
        vec![
            "--json", "verify", "a.json", "-p", "k.pub", "--sha256", "deadbeef",
        ],
        vec!["--json", "no-such-command"],
    ] {
        let run = env.run(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        let doc = run.json();
        assert_eq!(doc["format"], "objectos.error/1", "{args:?}");
        assert_eq!(
            (doc["exit"].as_u64(), doc["error"]["code"].as_str()),
            (Some(2), Some("usage"))
        );
    }
    // The document has its schema.
    assert!(repo().join("schemas/objectos.error.schema.json").exists());
}

#[test]
fn secrets_come_from_stdin_or_a_file_never_argv_and_the_last_admin_stays() {
    let env = Env::new();
    ready(&env);
    let run = env.run_in(
        &["settings", "set", "ai.api_key", "-", "--secret"],
        "sk-from-stdin\n",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        env.run(&["settings", "get", "ai.api_key"])
            .ok()
            .stdout
            .trim(),
        "sk-from-stdin"
    );
    env.write("secret.txt", "sk-from-file\nsecond line ignored\n");
    env.run(&[
        "settings",
        "set",
        "integrations.other",
        "--value-file",
        "secret.txt",
        "--secret",
    ])
    .ok();
    assert_eq!(
        env.run(&["settings", "get", "integrations.other"])
            .ok()
            .stdout
            .trim(),
        "sk-from-file"
    );
    // No value and no terminal: a clear error, never a hang or a stored `-`.
    let run = env
        .run(&["settings", "set", "integrations.third", "--secret"])
        .code(1);
    assert!(run.stderr.contains("no terminal"), "{}", run.stderr);
    // On argv it works, with a warning that it is visible.
    let run = env
        .run(&[
            "settings",
            "set",
            "integrations.fourth",
            "on-argv",
            "--secret",
        ])
        .ok();
    assert!(run.stderr.contains("visible in `ps`"), "{}", run.stderr);
    // The last enabled administrator is not disabled or stripped by accident.
    let run = env.run(&["user", "disable", "admin@example.com"]).code(1);
    assert!(
        run.stderr.contains("no enabled administrator"),
        "{}",
        run.stderr
    );
    let run = env
        .run(&["permset", "revoke", "admin", "admin@example.com"])
        .code(1);
    assert!(
        run.stderr.contains("no enabled administrator"),
        "{}",
        run.stderr
    );
    let users = env
        .run(&["--json", "user", "show", "admin@example.com"])
        .ok()
        .json();
    assert_eq!(users["user"]["disabled"], false);
    // With a second administrator, or `--force`, it goes through.
    env.run(&["user", "add", "second@example.com", "--no-password"])
        .ok();
    env.run(&["permset", "assign", "admin", "second@example.com"])
        .ok();
    env.run(&["user", "disable", "admin@example.com"]).ok();
    env.run(&["user", "disable", "second@example.com", "--force"])
        .ok();
    // A backup never overwrites silently.
    env.write("snap.tar", "precious");
    let run = env.run(&["backup", "-o", "snap.tar"]).code(1);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    assert_eq!(env.read("snap.tar"), "precious");
    env.run(&["backup", "-o", "snap.tar", "--force"]).ok();
    // `audit tail` says why a row was refused.
    let tail = env.run(&["audit", "tail", "-n", "50"]).ok().stdout;
    assert!(
        tail.lines()
            .any(|l| l.contains("[error") && l.contains("no enabled administrator")),
        "{tail}"
    );
    // doctor's columns line up: every detail starts in the same column.
    let doctor = env.run(&["doctor"]).stdout;
    let width = doctor
        .lines()
        .filter_map(|l| l.get(6..)?.split_whitespace().next())
        .map(str::len)
        .max()
        .unwrap();
    for line in doctor.lines() {
        assert_eq!(&line[6 + width..8 + width], "  ", "{doctor}");
        assert_ne!(line.as_bytes()[8 + width], b' ', "{doctor}");
    }
}

#[test]
fn quickstart_changes_nothing_when_it_cannot_serve() {
    let env = Env::new();
    // A first quickstart serving on a port of its own.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let log = env.path("qs1.err");
    let mut first = env
        .cmd()
        .args(["quickstart", "--listen", &listen])
        .stdout(std::fs::File::create(env.path("qs1.out")).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("addr=")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = std::fs::read_to_string(env.path("qs1.out")).unwrap();
    let key = out
        .lines()
        .find(|l| l.trim_start().starts_with("rep@example.com"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .to_string();
    let client = reqwest::blocking::Client::new();
    let get = |key: &str| {
        client
            .get(format!("http://{listen}/api/v1/data/crm_opportunity"))
            .bearer_auth(key)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(get(&key), 200);
    let head_before =
        env.run(&["--json", "audit", "tail", "-n", "1"]).ok().json()["events"][0]["seq"].clone();
    // A second quickstart in the same folder refuses before it touches anything.
    let run = env.run(&["quickstart", "--listen", "127.0.0.1:0"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("a server is serving"), "{}", run.stderr);
    // The first one's keys still work, and no row was written.
    assert_eq!(get(&key), 200);
    let head_after =
        env.run(&["--json", "audit", "tail", "-n", "1"]).ok().json()["events"][0]["seq"].clone();
    assert_eq!(head_before, head_after);
    // Another folder, the same port: refused before anything is made.
    let run = env.run(&["--data-dir", "other", "quickstart", "--listen", &listen]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("cannot listen"), "{}", run.stderr);
    assert!(!env.path("other").exists());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(first.wait().unwrap().code(), Some(0));
}

/// Run the binary as another OS user (root runs it as `nobody`, for whom the
/// files' modes apply); anyone else is already subject to them.
fn as_other_user(env: &Env, args: &[&str]) -> Run {
    use std::os::unix::process::CommandExt;
    let mut cmd = env.cmd();
    if nix::unistd::geteuid().is_root() {
        cmd.uid(65534).gid(65534);
    }
    cmd.args(args).output().expect("run objectos").into()
}

fn chmod_tree(path: &std::path::Path, dirs: u32, files: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(dirs)).unwrap();
    for entry in std::fs::read_dir(path).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            chmod_tree(&p, dirs, files);
        } else {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(files)).unwrap();
        }
    }
}

#[test]
fn an_auditor_verifies_a_read_only_copy_and_a_permission_problem_is_named() {
    // What it checks is SQLite's file in the data dir: this runs on SQLite
    // whatever the suite runs on.
    let env = Env::sqlite();
    let key = ready(&env);
    env.run(&["user", "add", "rep@example.com", "--no-password"])
        .ok();
    env.run(&["permset", "assign", "sales_rep", "rep@example.com"])
        .ok();
    // An auditor's copy on read-only media: every file readable, nothing writable.
    copy_dir(&env.path("data"), &env.path("copy"));
    chmod_tree(&env.path("copy"), 0o555, 0o444);
    // The temp dir itself must be enterable by the other user.
    chmod_tree_dirs_only(env.dir.path());
    let data = env.path("copy");
    let dir = data.to_str().unwrap();
    for args in [
        vec!["--data-dir", dir, "audit", "verify"],
        vec!["--data-dir", dir, "audit", "tail", "-n", "3"],
        vec!["--data-dir", dir, "doctor"],
        vec!["--data-dir", dir, "user", "list"],
        vec!["--data-dir", dir, "trust", "list"],
        vec!["--data-dir", dir, "permset", "show", "admin"],
    ] {
        let run = as_other_user(&env, &args);
        // doctor warns about the modes of a copy, but reads it.
        assert!(
            run.code == 0 || args.contains(&"doctor"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("unable to open"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert!(
        as_other_user(&env, &["--data-dir", dir, "audit", "verify"])
            .stdout
            .starts_with("ok:")
    );
    // A command that must audit refuses clearly.
    let run = as_other_user(
        &env,
        &[
            "--data-dir",
            dir,
            "export",
            "crm_opportunity",
            "--as",
            "rep@example.com",
        ],
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("read-only"), "{}", run.stderr);
    // A copy of a live data dir (a server holds it): SQLite's `-wal` and `-shm`
    // come along, rows in the WAL are past the last checkpoint. Reading it
    // writes nothing (no warning about a checkpoint), and the commands that
    // must write refuse as read-only before they try the checkpoint log.
    let server = Server::start(&env);
    // A refusal is audited too: a row the checkpoint log has not seen.
    server.get("/api/v1/data/crm_opportunity?limit=1", &key);
    copy_dir(&env.path("data"), &env.path("live-copy"));
    drop(server);
    assert!(env.path("live-copy/objectos.db-wal").exists());
    assert!(env.path("live-copy/objectos.db-shm").exists());
    chmod_tree(&env.path("live-copy"), 0o555, 0o444);
    let live = env.path("live-copy");
    let live = live.to_str().unwrap();
    for args in [
        vec!["--data-dir", live, "audit", "verify"],
        vec!["--data-dir", live, "audit", "tail", "-n", "3"],
        vec!["--data-dir", live, "user", "list"],
        vec!["--data-dir", live, "trust", "list"],
        vec!["--data-dir", live, "permset", "show", "admin"],
        vec!["--data-dir", live, "settings", "list"],
    ] {
        let run = as_other_user(&env, &args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("warning"), "{args:?}: {}", run.stderr);
    }
    let never = env.path("never.tar");
    let never = never.to_str().unwrap();
    for args in [
        vec!["--data-dir", live, "audit", "export", "-o", never],
        vec!["--data-dir", live, "backup", "-o", never],
        vec!["--data-dir", live, "instance", "rotate-keys"],
        vec![
            "--data-dir",
            live,
            "user",
            "add",
            "new@example.com",
            "--no-password",
        ],
    ] {
        let run = as_other_user(&env, &args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("read-only"), "{args:?}: {}", run.stderr);
        assert!(
            !run.stderr.contains("Permission denied") && !run.stderr.contains("checkpoint"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert!(!env.path("never.tar").exists());
    chmod_tree(&env.path("live-copy"), 0o755, 0o644);
    // The wrong OS user on a data dir of mode 0700 is told so, not that it is no
    // data dir.
    let run = as_other_user(&env, &["audit", "verify"]);
    if nix::unistd::geteuid().is_root() {
        assert_eq!(run.code, 1);
        assert!(run.stderr.contains("permission denied"), "{}", run.stderr);
        assert!(
            !run.stderr.contains("not an objectos data dir"),
            "{}",
            run.stderr
        );
    }
    chmod_tree(&env.path("copy"), 0o755, 0o644);
}

/// Make every directory on the way to the temp dir enterable (not the data dir).
fn chmod_tree_dirs_only(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).unwrap().permissions().mode();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o755)).unwrap();
}

#[test]
fn rotated_keys_keep_old_evidence_verifiable() {
    let env = Env::new();
    ready(&env);
    let run = env.run_in(
        &["settings", "set", "ai.api_key", "-", "--secret"],
        "sk-before\n",
    );
    assert_eq!(run.code, 0);
    let secret_row =
        env.run(&["--json", "audit", "tail", "-n", "1"]).ok().json()["events"][0]["seq"]
            .as_i64()
            .unwrap()
            .to_string();
    let old_pub = env.read("data/instance-signing.key.pub");
    let doc = env.run(&["--json", "instance", "rotate-keys"]).ok().json();
    assert_ne!(doc["old_signing_key_id"], doc["new_signing_key_id"]);
    assert_eq!(doc["settings_reencrypted"], 1);
    assert_ne!(env.read("data/instance-signing.key.pub"), old_pub);
    // The old checkpoints still verify, the secret still reads, the old HMAC
    // still confirms, the rotation is in the chain.
    env.run(&["audit", "verify"]).ok();
    env.run(&["doctor"]).ok();
    assert_eq!(
        env.run(&["settings", "get", "ai.api_key"])
            .ok()
            .stdout
            .trim(),
        "sk-before"
    );
    let run = env.run_in(
        &[
            "audit",
            "confirm",
            &secret_row,
            "value",
            "--value-file",
            "-",
        ],
        "sk-before\n",
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let tail = env
        .run(&["--json", "audit", "tail", "-n", "10"])
        .ok()
        .stdout;
    assert!(tail.contains("instance.rotate_keys"));
    // A backup after the rotation restores with the new key from outside.
    env.run(&["backup", "-o", "after.tar"]).ok();
    env.run(&[
        "--data-dir",
        "restored",
        "restore",
        "after.tar",
        "--signer",
        "data/instance-signing.key.pub",
        "--keys-from",
        "data",
    ])
    .ok();
    env.run(&["--data-dir", "restored", "audit", "verify"]).ok();
    // The old key no longer vouches for new backups.
    env.write("old.pub", &old_pub);
    let run = env
        .run(&[
            "--data-dir",
            "restored2",
            "restore",
            "after.tar",
            "--signer",
            "old.pub",
            "--keys-from",
            "data",
        ])
        .code(3);
    assert!(
        run.stderr.contains("was not signed by key"),
        "{}",
        run.stderr
    );
    let _ = PASSWORD;
}

#[test]
fn audit_tail_follows_as_json_lines() {
    use std::io::BufRead;
    let env = Env::new();
    ready(&env);
    let mut child = env
        .cmd()
        .args(["--json", "audit", "tail", "-n", "0", "--follow"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // The follower starts from the head it finds: let it find it first. A
    // watchdog ends it if no line ever comes, so the test fails, not hangs.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let pid = child.id() as i32;
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(30));
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    });
    env.run(&["team", "add", "followed"]).ok();
    let line = lines
        .next()
        .expect("the follower printed the new row within 30 s")
        .unwrap();
    let row: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(row["action"], "team.add");
    assert!(row["hash"].is_string());
    child.kill().unwrap();
    let _ = child.wait();
}

/// Run with `stdin` bytes; the exit code, stdout's bytes and stderr.
fn run_bytes(env: &Env, args: &[&str], stdin: &[u8]) -> (i32, Vec<u8>, String) {
    let out = env.output_with(args, stdin);
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn dash_is_standard_output_for_what_is_written_and_standard_input_for_what_is_read() {
    let env = Env::new();
    ready(&env);
    let crm = fixture("crm");
    let crm = crm.to_str().unwrap();
    let artifact = std::fs::read(env.path("artifact.json")).unwrap();
    let signature = std::fs::read(env.path("artifact.json.minisig")).unwrap();
    let public = std::fs::read(env.path("signer.pub")).unwrap();
    let no_dash = |args: &[&str]| {
        assert!(!env.path("-").exists(), "{args:?} wrote a file named `-`");
    };

    // `-o -`: the bytes on stdout, and no file named `-`.
    let mut backup = Vec::new();
    for args in [
        vec!["build", crm, "-o", "-"],
        vec!["sign", "artifact.json", "-k", "signer", "-o", "-"],
        vec!["backup", "-o", "-"],
    ] {
        let (code, stdout, stderr) = run_bytes(&env, &args, b"");
        assert_eq!(code, 0, "{args:?}: {stderr}");
        no_dash(&args);
        match args[0] {
            // The build is reproducible: the same bytes as the file.
            "build" => assert_eq!(stdout, artifact, "{args:?}"),
            "sign" => {
                env.write("piped.minisig", &stdout);
                env.run(&[
                    "verify",
                    "artifact.json",
                    "-p",
                    "signer.pub",
                    "-x",
                    "piped.minisig",
                ])
                .ok();
            }
            _ => {
                // A tar: `ustar` at offset 257 of its first header.
                assert_eq!(stdout.get(257..262), Some(&b"ustar"[..]), "{args:?}");
                backup = stdout;
            }
        }
    }
    // A key pair is two files: `-o -` is refused, and nothing is written.
    let run = env.run(&["keygen", "-o", "-", "--unencrypted"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("two files"), "{}", run.stderr);
    no_dash(&["keygen"]);
    assert!(!env.path("-.pub").exists());
    // `--json` and `-o -` would share stdout.
    for args in [
        vec!["--json", "build", crm, "-o", "-"],
        vec!["--json", "backup", "-o", "-"],
    ] {
        let (code, _, stderr) = run_bytes(&env, &args, b"");
        assert_eq!(code, 2, "{args:?}: {stderr}");
    }

    // `-` as an input: stdin is read.
    let inspected = env.run(&["inspect", "artifact.json"]).ok().stdout;
    let stdin_cases: Vec<(Vec<&str>, &[u8])> = vec![
        (vec!["validate", "-"], &artifact),
        (vec!["inspect", "-"], &artifact),
        (vec!["diff", "-", "artifact.json"], &artifact),
        (vec!["diff", "artifact.json", "-"], &artifact),
        (
            vec![
                "verify",
                "-",
                "-p",
                "signer.pub",
                "-x",
                "artifact.json.minisig",
            ],
            &artifact,
        ),
        (
            vec!["verify", "artifact.json", "-p", "signer.pub", "-x", "-"],
            &signature,
        ),
        (vec!["verify", "artifact.json", "-p", "-"], &public),
        (vec!["build", "-", "-o", "from-stdin.json"], &artifact),
        (
            vec!["sign", "-", "-k", "signer", "-o", "stdin.minisig"],
            &artifact,
        ),
        (vec!["trust", "add", "-"], &public),
        // The applied artifact again (a no-op, once verified).
        (
            vec!["apply", "-", "-x", "artifact.json.minisig", "-y"],
            &artifact,
        ),
        (vec!["apply", "artifact.json", "-x", "-", "-y"], &signature),
    ];
    for (args, input) in &stdin_cases {
        let (code, stdout, stderr) = run_bytes(&env, args, input);
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert!(!stderr.contains("cannot read"), "{args:?}: {stderr}");
        no_dash(args);
        let stdout = String::from_utf8(stdout).unwrap();
        match (args[0], args.get(1).copied()) {
            ("inspect", _) => assert_eq!(stdout, inspected),
            ("diff", _) => assert!(stdout.contains("no changes"), "{stdout}"),
            ("verify", _) => assert!(stdout.starts_with("ok:"), "{args:?}: {stdout}"),
            _ => {}
        }
    }
    assert_eq!(
        std::fs::read(env.path("from-stdin.json")).unwrap(),
        artifact
    );
    env.run(&[
        "verify",
        "artifact.json",
        "-p",
        "signer.pub",
        "-x",
        "stdin.minisig",
    ])
    .ok();
    // A new version applied from stdin is what is in force afterwards.
    let mut next: serde_json::Value = serde_json::from_slice(&artifact).unwrap();
    next["manifest"]["version"] = serde_json::json!("9.9.9");
    env.write("next.json", next.to_string());
    env.run(&["build", "next.json", "-o", "next-artifact.json"])
        .ok();
    env.run(&["sign", "next-artifact.json", "-k", "signer"])
        .ok();
    let next_bytes = std::fs::read(env.path("next-artifact.json")).unwrap();
    let (code, _, stderr) = run_bytes(
        &env,
        &["apply", "-", "-x", "next-artifact.json.minisig", "-y"],
        &next_bytes,
    );
    assert_eq!(code, 0, "{stderr}");
    let doctor = env.run(&["--json", "doctor"]).ok().stdout;
    assert!(doctor.contains("9.9.9"), "{doctor}");
    // A backup read from stdin restores.
    let (code, _, stderr) = run_bytes(
        &env,
        &[
            "--data-dir",
            "restored",
            "restore",
            "-",
            "--keys-from",
            "data",
        ],
        &backup,
    );
    assert_eq!(code, 0, "{stderr}");
    env.run(&["--data-dir", "restored", "audit", "verify"]).ok();

    // Standard input is read once; a signature beside `-` cannot be named.
    for args in [
        vec!["diff", "-", "-"],
        vec!["verify", "-", "-p", "-", "-x", "artifact.json.minisig"],
        vec!["verify", "-", "-p", "signer.pub"],
        vec!["sign", "-", "-k", "signer"],
        vec!["apply", "-", "-y"],
        vec!["apply", "-", "-x", "-", "-y"],
        vec!["--data-dir", "again", "restore", "-", "-i", "-"],
        vec![
            "sign",
            "-",
            "-k",
            "signer",
            "--password-file",
            "-",
            "-o",
            "x.minisig",
        ],
    ] {
        let (code, _, stderr) = run_bytes(&env, &args, &artifact);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        no_dash(&args);
    }
    let (_, _, stderr) = run_bytes(&env, &["verify", "-", "-p", "signer.pub"], &artifact);
    assert!(stderr.contains("-x FILE"), "{stderr}");
}
