//! Crash consistency: `objectos serve` killed with SIGKILL at random moments
//! while clients create, update, propose and approve, and while `audit export`
//! runs beside it; after every kill, what a client saw acknowledged is there,
//! nothing unacknowledged is half there, and the audit chain, its checkpoints
//! and every finished archive verify.
//!
//! `cargo test --test it crash` runs a few cycles; `scripts/crash [CYCLES]`
//! (`OBJECTOS_CRASH_CYCLES`, and `OBJECTOS_CRASH_SEED` to replay the kill
//! times) runs the long mode.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::util::*;

const ALICE: &str = "alice@crash.example";
const RITA: &str = "rita@crash.example";

/// Cycles when `OBJECTOS_CRASH_CYCLES` is not set: the short mode CI runs.
const SHORT_CYCLES: usize = 3;

/// Items (alice owns them, updates them, asks her agent to propose vendors)
/// and vendors (agents' writes wait for approval; rita approves).
fn crash_app(env: &Env) {
    let all =
        json!({"allowRead": true, "allowCreate": true, "allowEdit": true, "allowDelete": true});
    let read_all = json!({"allowRead": true, "viewAllRecords": true});
    let app = json!({
        "manifest": {"id": "com.example.crash", "namespace": "cr", "version": "1.0.0", "name": "Crash", "engines": {"protocol": "^17"}},
        "objects": [
            {"name": "cr_item", "sharingModel": "private", "fields": {
                "name": {"type": "text", "required": true, "unique": true},
                "n": {"type": "number"},
                "tag": {"type": "text"}
            }},
            {"name": "cr_vendor", "sharingModel": "private", "fields": {
                "name": {"type": "text", "required": true}
            }}
        ],
        "permissions": [
            {"name": "worker", "objects": {"cr_item": all, "cr_vendor": all},
             "systemPermissions": ["api_access", "agent_access"]},
            {"name": "reviewer", "objects": {"cr_item": read_all, "cr_vendor": read_all},
             "systemPermissions": ["api_access", "approve_actions"]}
        ],
        "x-objectos": {"objects": {"cr_vendor": {"agentWrites": "approval"}}}
    });
    env.with_app("crash", &app, "admin@crash.example");
    for (email, set) in [(ALICE, "worker"), (RITA, "reviewer")] {
        env.run(&["user", "add", email, "--no-password"]).ok();
        env.run(&["permset", "assign", set, email]).ok();
    }
}

fn new_key(env: &Env, args: &[&str]) -> String {
    env.run(args).ok().stdout.trim().to_string()
}

/// What the clients were told, across every cycle.
#[derive(Default)]
struct Ledger {
    /// item name → (n, tag) sent, for every create attempted
    create_sent: BTreeMap<String, (i64, String)>,
    /// item name → id, for every create answered 201
    create_acked: BTreeMap<String, String>,
    /// item id → values of `n` sent by updates, in order, and how many of them
    /// were answered 200 (the updater is the only writer of `n` after create).
    updates: BTreeMap<String, (Vec<i64>, usize)>,
    /// vendor name → pending action id, for every proposal answered
    proposed: BTreeMap<String, String>,
    /// pending action ids whose approval was answered 200
    approved: BTreeSet<String>,
    /// archives whose `audit export` exited 0
    exported: Vec<String>,
}

struct Keys {
    alice: String,
    agent: String,
    rita: String,
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// One stateless MCP `tools/call`; `None` when the server is gone.
fn mcp_call(http: &reqwest::blocking::Client, base: &str, key: &str, args: Value) -> Option<Value> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "create_record", "arguments": args,
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "crash-harness", "version": "1.0"},
        }
    }});
    let resp = http
        .post(format!("{base}/api/v1/mcp"))
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "create_record")
        .body(body.to_string())
        .send()
        .ok()?;
    let status = resp.status().as_u16();
    let text = resp.text().ok()?;
    assert_eq!(status, 200, "create_record: {text}");
    let message: Value = serde_json::from_str(&text).unwrap_or_else(|_| {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .next_back()
            .unwrap_or(Value::Null)
    });
    Some(message["result"]["structuredContent"].clone())
}

/// The clients of one cycle, each on its own thread until the server dies.
fn drive(
    base: &str,
    keys: &Arc<Keys>,
    ledger: &Arc<Mutex<Ledger>>,
    cycle: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut workers = Vec::new();
    for w in 0..2 {
        let (base, keys, ledger, stop) =
            (base.to_string(), keys.clone(), ledger.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            let http = client();
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let name = format!("c{cycle}-{w}-{i}");
                let (n, tag) = (i as i64, format!("tag of {name}"));
                ledger
                    .lock()
                    .unwrap()
                    .create_sent
                    .insert(name.clone(), (n, tag.clone()));
                let Ok(resp) = http
                    .post(format!("{base}/api/v1/data/cr_item"))
                    .bearer_auth(&keys.alice)
                    .header("content-type", "application/json")
                    .body(json!({"name": name, "n": n, "tag": tag}).to_string())
                    .send()
                else {
                    return;
                };
                let status = resp.status().as_u16();
                let Ok(body) = resp.json::<Value>() else {
                    return;
                };
                assert_eq!(status, 201, "create {name}: {body}");
                let id = body["id"].as_str().unwrap().to_string();
                ledger.lock().unwrap().create_acked.insert(name, id);
            }
        }));
    }
    {
        let (base, keys, ledger, stop) =
            (base.to_string(), keys.clone(), ledger.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            let http = client();
            let mut value = (cycle as i64 + 1) * 1_000_000;
            loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let target = {
                    let l = ledger.lock().unwrap();
                    let ids: Vec<&String> = l.create_acked.values().collect();
                    if ids.is_empty() {
                        None
                    } else {
                        Some(ids[value as usize % ids.len()].clone())
                    }
                };
                let Some(id) = target else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let url = format!("{base}/api/v1/data/cr_item/{id}");
                let Ok(got) = http.get(&url).bearer_auth(&keys.alice).send() else {
                    return;
                };
                let status = got.status().as_u16();
                let Some(etag) = got
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(String::from)
                else {
                    // The server died between the status line and the body, or answered without a version.
                    if status == 200 {
                        panic!("a record answered 200 without an ETag");
                    }
                    return;
                };
                if got.bytes().is_err() {
                    return;
                }
                value += 1;
                ledger
                    .lock()
                    .unwrap()
                    .updates
                    .entry(id.clone())
                    .or_default()
                    .0
                    .push(value);
                let Ok(resp) = http
                    .patch(&url)
                    .bearer_auth(&keys.alice)
                    .header("if-match", etag)
                    .header("content-type", "application/json")
                    .body(json!({"n": value}).to_string())
                    .send()
                else {
                    return;
                };
                let status = resp.status().as_u16();
                let Ok(text) = resp.text() else { return };
                assert_eq!(status, 200, "update {id}: {text}");
                let mut l = ledger.lock().unwrap();
                let entry = l.updates.get_mut(&id).unwrap();
                entry.1 = entry.0.len();
            }
        }));
    }
    {
        let (base, keys, ledger, stop) =
            (base.to_string(), keys.clone(), ledger.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            let http = client();
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let name = format!("v{cycle}-{i}");
                let Some(result) = mcp_call(
                    &http,
                    &base,
                    &keys.agent,
                    json!({"objectName": "cr_vendor", "data": {"name": name}}),
                ) else {
                    return;
                };
                assert_eq!(result["status"], "pending_approval", "{result}");
                let id = result["pendingActionId"].as_str().unwrap().to_string();
                ledger.lock().unwrap().proposed.insert(name, id.clone());
                let Ok(resp) = http
                    .post(format!("{base}/api/v1/pending-actions/{id}/approve"))
                    .bearer_auth(&keys.rita)
                    .header("content-type", "application/json")
                    .body("{}")
                    .send()
                else {
                    return;
                };
                let status = resp.status().as_u16();
                let Ok(text) = resp.text() else { return };
                assert_eq!(status, 200, "approve {id}: {text}");
                ledger.lock().unwrap().approved.insert(id);
            }
        }));
    }
    workers
}

/// `audit export` run again and again beside the server, each killed with it.
fn exporter(
    env: &Env,
    cycle: usize,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
) -> (std::thread::JoinHandle<()>, Arc<Mutex<Option<Child>>>) {
    let running: Arc<Mutex<Option<Child>>> = Arc::default();
    let slot = running.clone();
    let cmd_for = {
        let base = env.cmd();
        let program = base.get_program().to_owned();
        let dir = env.dir.path().to_path_buf();
        let data = env.path("data");
        move |file: &str| {
            let mut cmd = std::process::Command::new(&program);
            cmd.current_dir(&dir)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", &dir)
                .env("NO_COLOR", "1")
                .env("OBJECTOS_DATA_DIR", &data)
                .args(["-q", "audit", "export", "-o", file])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            cmd
        }
    };
    let handle = std::thread::spawn(move || {
        for i in 0.. {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let file = format!("export-{cycle}-{i}.tar");
            {
                let mut slot = slot.lock().unwrap();
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                *slot = Some(cmd_for(&file).spawn().expect("spawn audit export"));
            }
            let status = loop {
                let mut slot = slot.lock().unwrap();
                let child = slot.as_mut().unwrap();
                if let Some(status) = child.try_wait().unwrap() {
                    let mut err = String::new();
                    use std::io::Read;
                    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                    *slot = None;
                    break (status, err);
                }
                drop(slot);
                std::thread::sleep(Duration::from_millis(5));
            };
            match status.0.code() {
                Some(0) => ledger.lock().unwrap().exported.push(file),
                // Killed with the server: its archive may be partial, and is not counted.
                None => return,
                Some(code) => panic!("audit export exited {code}: {}", status.1),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    (handle, running)
}

fn sigkill(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Every record of `object` rita sees, by name: (id, record).
fn all_records(server: &Server, key: &str, object: &str) -> BTreeMap<String, (String, Value)> {
    let mut out = BTreeMap::new();
    let mut offset = 0;
    loop {
        let (status, body, raw) = server.get(
            &format!("/api/v1/data/{object}?limit=1000&offset={offset}&sort=name"),
            key,
        );
        assert_eq!(status, 200, "{raw}");
        let records = body["records"].as_array().unwrap();
        for r in records {
            let name = r["name"].as_str().unwrap().to_string();
            let id = r["id"].as_str().unwrap().to_string();
            assert!(
                out.insert(name.clone(), (id, r.clone())).is_none(),
                "{object} `{name}` is there twice"
            );
        }
        if records.len() < 1000 {
            return out;
        }
        offset += 1000;
    }
}

/// What must hold after a kill, checked with the server stopped and then
/// against a fresh one.
fn check(
    env: &Env,
    keys: &Keys,
    ledger: &Ledger,
    logs: &[std::path::PathBuf],
    verified_archives: &mut usize,
) -> Server {
    // The chain and the data dir's checkpoint log, then the checkpoints every
    // killed server logged as it wrote them.
    env.run(&["audit", "verify"]).ok();
    let logged: String = logs
        .iter()
        .map(|log| std::fs::read_to_string(log).unwrap_or_default())
        .collect();
    if logged.contains("audit checkpoint") {
        env.write("logged-checkpoints.log", logged);
        env.run(&["audit", "verify", "--checkpoints", "logged-checkpoints.log"])
            .ok();
    }
    for file in &ledger.exported[*verified_archives..] {
        env.run(&[
            "audit",
            "verify-archive",
            file,
            "-p",
            "data/instance-signing.key.pub",
        ])
        .ok();
    }
    *verified_archives = ledger.exported.len();
    let server = Server::start(env);
    let items = all_records(&server, &keys.rita, "cr_item");
    for (name, id) in &ledger.create_acked {
        let (got, _) = items
            .get(name)
            .unwrap_or_else(|| panic!("acknowledged create of `{name}` lost"));
        assert_eq!(got, id, "`{name}` has another id than the one acknowledged");
    }
    let audit = env
        .run(&["--json", "audit", "tail", "-n", "10000000"])
        .ok()
        .json();
    let created: BTreeSet<String> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["object"] == "cr_item" && e["action"] == "record.create" && e["outcome"] == "success"
        })
        .filter_map(|e| e["record_id"].as_str().map(String::from))
        .collect();
    for (name, (id, record)) in &items {
        let (n0, tag) = ledger
            .create_sent
            .get(name)
            .unwrap_or_else(|| panic!("`{name}` is there but was never sent"));
        assert_eq!(record["tag"], json!(tag), "`{name}` half there: {record}");
        assert!(
            created.contains(id),
            "`{name}` is there without its audit row"
        );
        let n = record["n"]
            .as_i64()
            .unwrap_or_else(|| panic!("`{name}` has no n: {record}"));
        match ledger.updates.get(id) {
            None => assert_eq!(n, *n0, "`{name}`: {record}"),
            Some((sent, acked)) => {
                // The last acknowledged value, or the one update in flight after it.
                let floor = if *acked == 0 { *n0 } else { sent[acked - 1] };
                let in_flight = sent.get(*acked).copied();
                assert!(
                    n == floor || Some(n) == in_flight,
                    "`{name}` n = {n}: acknowledged {floor}, in flight {in_flight:?}"
                );
            }
        }
    }
    // Every proposal is there, pending or applied, and applied exactly when its
    // vendor exists.
    let vendors = all_records(&server, &keys.rita, "cr_vendor");
    let (status, body, raw) = server.get("/api/v1/pending-actions?status=all", &keys.alice);
    assert_eq!(status, 200, "{raw}");
    let actions: BTreeMap<String, Value> = body["pendingActions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["id"].as_str().unwrap().to_string(), a.clone()))
        .collect();
    for (name, id) in &ledger.proposed {
        let action = actions
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged proposal {id} of `{name}` lost"));
        let status = action["status"].as_str().unwrap();
        match status {
            "applied" => assert!(vendors.contains_key(name), "{id} applied, `{name}` missing"),
            "pending" => {
                assert!(!vendors.contains_key(name), "{id} pending, `{name}` there");
                assert!(
                    !ledger.approved.contains(id),
                    "acknowledged approval of {id} lost"
                );
            }
            other => panic!("{id} ended `{other}`: {action}"),
        }
    }
    for name in vendors.keys() {
        let from = actions
            .values()
            .filter(|a| a["status"] == "applied" && a.to_string().contains(&format!("\"{name}\"")));
        assert_eq!(
            from.count(),
            1,
            "vendor `{name}` without exactly one applied action"
        );
    }
    server
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_write() {
    let cycles: usize = std::env::var("OBJECTOS_CRASH_CYCLES")
        .ok()
        .map(|c| c.parse().expect("OBJECTOS_CRASH_CYCLES is a number"))
        .unwrap_or(SHORT_CYCLES);
    let seed: u64 = std::env::var("OBJECTOS_CRASH_SEED")
        .ok()
        .map(|s| s.parse().expect("OBJECTOS_CRASH_SEED is a number"))
        .unwrap_or_else(|| rand::thread_rng().r#gen());
    eprintln!("crash harness: {cycles} cycles, OBJECTOS_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let env = Env::new();
    crash_app(&env);
    let keys = Arc::new(Keys {
        alice: new_key(&env, &["apikey", "create", ALICE]),
        agent: new_key(&env, &["apikey", "create", ALICE, "--agent"]),
        rita: new_key(&env, &["apikey", "create", RITA]),
    });
    let ledger: Arc<Mutex<Ledger>> = Arc::default();
    let mut logs = Vec::new();
    let mut server = Server::start(&env);
    let started = Instant::now();
    let mut verified_archives = 0;
    for cycle in 0..cycles {
        let stop = Arc::new(AtomicBool::new(false));
        let workers = drive(&server.base, &keys, &ledger, cycle, &stop);
        let (export, running) = exporter(&env, cycle, stop.clone(), ledger.clone());
        // The first cycle runs long enough for every kind of work to be
        // acknowledged at least once (checked at the end); the others die at
        // any moment.
        let run_for = if cycle == 0 {
            rng.gen_range(2000..3000)
        } else {
            rng.gen_range(100..1500)
        };
        std::thread::sleep(Duration::from_millis(run_for));
        // The server and the export in flight (if any) die at once.
        {
            let running = running.lock().unwrap();
            stop.store(true, Ordering::Relaxed);
            let mut child = server.child.take().unwrap();
            sigkill(child.id());
            if let Some(export) = running.as_ref() {
                sigkill(export.id());
            }
            let status = child.wait().unwrap();
            assert_eq!(status.code(), None, "serve died of the kill, not before it");
        }
        for w in workers {
            w.join().expect("a client saw something wrong");
        }
        export.join().expect("audit export failed");
        logs.push(server.log.clone());
        drop(server);
        let l = ledger.lock().unwrap();
        server = check(&env, &keys, &l, &logs, &mut verified_archives);
        eprintln!(
            "crash cycle {}/{cycles}: {} creates, {} updates, {} approvals, {} exports acknowledged so far",
            cycle + 1,
            l.create_acked.len(),
            l.updates.values().map(|u| u.1).sum::<usize>(),
            l.approved.len(),
            l.exported.len()
        );
    }
    let l = ledger.lock().unwrap();
    let updates: usize = l.updates.values().map(|u| u.1).sum();
    assert!(
        !l.create_acked.is_empty() && updates > 0 && !l.approved.is_empty(),
        "the clients got too little done to test anything: {} creates, {updates} updates, {} approvals",
        l.create_acked.len(),
        l.approved.len()
    );
    assert!(
        !l.exported.is_empty() && verified_archives > 0,
        "no audit export finished ({} acknowledged, {verified_archives} verified)",
        l.exported.len()
    );
    let (code, _) = server.stop();
    assert_eq!(code, 0);
    env.run(&["audit", "verify"]).ok();
    eprintln!(
        "crash harness: {cycles} cycles in {:.0?}, no failure",
        started.elapsed()
    );
}
