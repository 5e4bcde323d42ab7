//! Benchmark: the HTTP API over loopback, and the cost of enforcement in process.
//!
//! `cargo bench --bench runtime` builds a data dir with the CRM fixture and 100,000
//! opportunities owned by 20 reps, starts `objectos serve`, and measures:
//! - an authorised list (a rep's own or shared deals, page of 20, one filter);
//! - a single authorised get;
//! - in process: the records service's list against the same query as raw SQL
//!   through rusqlite on the same file (design §9: within 1.3×).
//!
//! It prints requests/s, p50/p99 and the ratio. It asserts nothing.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_objectos");
const RECORDS: usize = 100_000;
const REPS: usize = 20;

fn objectos(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("OBJECTOS_DATA_DIR", dir.join("data"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run objectos");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/crm");
    objectos(dir, &["build", fixture.to_str().unwrap(), "-o", "a.json"]);
    objectos(dir, &["keygen", "-o", "k", "--unencrypted"]);
    objectos(dir, &["sign", "a.json", "-k", "k"]);
    objectos(dir, &["init"]);
    objectos(dir, &["trust", "add", "k.pub"]);
    objectos(dir, &["apply", "a.json", "-y"]);
    std::fs::write(dir.join("pw"), "correct horse battery staple\n").unwrap();
    objectos(
        dir,
        &[
            "bootstrap",
            "--admin-email",
            "admin@example.com",
            "--password-file",
            "pw",
        ],
    );
    let mut users = Vec::new();
    for i in 0..REPS {
        let email = format!("rep{i}@example.com");
        objectos(dir, &["user", "add", &email, "--no-password"]);
        objectos(dir, &["permset", "assign", "sales_rep", &email]);
        users.push(email);
    }
    let key = objectos(dir, &["apikey", "create", "rep0@example.com"]);
    // Bulk import through the records service: rules, validation and one audit row per record.
    let mut jsonl = String::new();
    for i in 0..RECORDS {
        jsonl.push_str(&format!(
            "{{\"title\": \"Imported note {i}\", \"body\": \"Line {i} of the import benchmark\"}}\n"
        ));
    }
    std::fs::write(dir.join("notes.jsonl"), jsonl).unwrap();
    let started = Instant::now();
    objectos(
        dir,
        &[
            "import",
            "crm_note",
            "notes.jsonl",
            "--as",
            "rep1@example.com",
        ],
    );
    let secs = started.elapsed().as_secs_f64();
    println!(
        "import: {RECORDS} records (with their audit rows) in {secs:.2} s, {:.0} rows/s",
        RECORDS as f64 / secs
    );
    seed(&dir.join("data/objectos.db"));
    let db = dir.join("data/objectos.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let rep0: String = conn
        .query_row(
            "SELECT id FROM objectos_users WHERE email = 'rep0@example.com'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let org: String = conn
        .query_row("SELECT id FROM objectos_orgs LIMIT 1", [], |r| r.get(0))
        .unwrap();
    let own_id: String = conn
        .query_row(
            "SELECT id FROM rec_crm_opportunity WHERE owner_id = ?1 LIMIT 1 OFFSET 100",
            [&rep0],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);

    // The server.
    let log = dir.join("serve.log");
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("OBJECTOS_DATA_DIR", dir.join("data"))
        .env("OBJECTOS_LOG", "warn,objectos::server=info")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(at) = text.find("addr=") {
            break text[at + 5..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let filter = "%7B%22stage%22%3A%22proposal%22%7D";
    let list_url = format!("http://{addr}/api/v1/data/crm_opportunity?limit=20&filter={filter}");
    let get_url = format!("http://{addr}/api/v1/data/crm_opportunity/{own_id}");
    println!(
        "data: {RECORDS} opportunities, {REPS} reps; rep0 owns ~{}",
        RECORDS / REPS
    );
    for (name, url) in [
        ("list (own or shared, page of 20, one filter)", &list_url),
        ("get (one authorised record)", &get_url),
    ] {
        let (rps, p50, p99, n) = load(url, &key, 4, Duration::from_secs(5));
        println!(
            "HTTP {name:48} {rps:>8.0} req/s  p50 {p50:>6.2} ms  p99 {p99:>6.2} ms  ({n} requests, 4 connections)"
        );
    }
    let _ = nix_kill(child.id());
    let _ = child.wait();

    // In process: the records service against raw SQL on the same file.
    let instance = objectos::instance::Instance::open(&dir.join("data")).unwrap();
    let model = objectos::instance::applied::require(&instance)
        .unwrap()
        .model;
    let records = objectos::records::Records::new(&instance, &model);
    let principal = instance
        .store
        .read(|tx| {
            let user = tx.user_by_email("rep0@example.com")?.unwrap();
            objectos::authz::Principal::load(
                tx,
                Some(&model),
                &user,
                &org,
                &objectos::timefmt::now(),
            )
        })
        .unwrap();
    let caller = objectos::records::Caller {
        principal,
        origin: objectos::audit::Origin::system(),
    };
    let spec = objectos::query::request::from_list_params(
        "crm_opportunity",
        &[
            ("limit".to_string(), "20".to_string()),
            ("filter".to_string(), r#"{"stage":"proposal"}"#.to_string()),
        ],
    )
    .unwrap();
    let raw = rusqlite::Connection::open(&db).unwrap();
    // The same page cache and memory map objectos gives its connections.
    raw.execute_batch("PRAGMA cache_size = -65536; PRAGMA mmap_size = 1073741824;")
        .unwrap();
    let sql = "SELECT id, owner_id, organization_id, created_by, created_at, updated_by, updated_at, row_version, account, amount, close_date, forecast_category, name, probability, region, stage FROM rec_crm_opportunity WHERE organization_id = ?1 AND owner_id = ?2 AND stage = 'proposal' ORDER BY id LIMIT 21";
    let iterations = 500;
    let mut service = Vec::new();
    let mut baseline = Vec::new();
    for round in 0..5 {
        let start = Instant::now();
        for _ in 0..iterations {
            let page = records.list(&caller, &spec).unwrap();
            assert_eq!(page.records.len(), 20);
        }
        service.push(start.elapsed());
        let start = Instant::now();
        for _ in 0..iterations {
            let mut stmt = raw.prepare_cached(sql).unwrap();
            let rows: Vec<Vec<rusqlite::types::Value>> = stmt
                .query_map([&org, &rep0], |r| (0..15).map(|i| r.get(i)).collect())
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(rows.len(), 20);
        }
        baseline.push(start.elapsed());
        let _ = round;
    }
    service.sort();
    baseline.sort();
    let s = service[2].as_secs_f64() / iterations as f64 * 1e6;
    let b = baseline[2].as_secs_f64() / iterations as f64 * 1e6;
    println!(
        "in process: records service list {s:>8.1} µs, raw SQL {b:>8.1} µs, ratio {:.2}x (target <= 1.3x)",
        s / b
    );
    let plan: Vec<String> = {
        let mut stmt = raw.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        stmt.query_map([&org, &rep0], |r| r.get::<_, String>(3))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    println!("raw query plan: {}", plan.join(" | "));
}

fn nix_kill(pid: u32) -> std::io::Result<()> {
    Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .map(|_| ())
}

fn seed(db: &Path) {
    let mut conn = rusqlite::Connection::open(db).unwrap();
    let org: String = conn
        .query_row("SELECT id FROM objectos_orgs LIMIT 1", [], |r| r.get(0))
        .unwrap();
    let reps: Vec<String> = {
        let mut stmt = conn
            .prepare("SELECT id FROM objectos_users WHERE email LIKE 'rep%' ORDER BY email")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    let tx = conn.transaction().unwrap();
    {
        let mut stmt = tx
            .prepare("INSERT INTO rec_crm_opportunity (id, owner_id, organization_id, created_by, created_at, updated_by, updated_at, name, amount, stage, region) VALUES (?1, ?2, ?3, ?2, ?4, ?2, ?4, ?5, ?6, ?7, ?8)")
            .unwrap();
        let stages = [
            "prospecting",
            "proposal",
            "negotiation",
            "closed_won",
            "closed_lost",
        ];
        let regions = ["amer", "emea", "apac"];
        for i in 0..RECORDS {
            let id = format!("{:08x}-0000-7000-8000-{:012x}", i, i);
            let owner = &reps[(i / 7) % reps.len()];
            stmt.execute(rusqlite::params![
                id,
                owner,
                org,
                "2026-01-01T00:00:00.000000Z",
                format!("Deal {i}"),
                (i % 1000) as f64 * 250.0,
                stages[i % stages.len()],
                regions[i % regions.len()]
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// Keep-alive load from `conns` threads for `duration`: (req/s, p50 ms, p99 ms, n).
fn load(url: &str, key: &str, conns: usize, duration: Duration) -> (f64, f64, f64, usize) {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let (url, key, latencies) = (url.to_string(), key.to_string(), latencies.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                let mut mine = Vec::new();
                while start.elapsed() < duration {
                    let t = Instant::now();
                    let resp = client.get(&url).bearer_auth(&key).send().unwrap();
                    assert_eq!(resp.status().as_u16(), 200);
                    let _ = resp.bytes().unwrap();
                    mine.push(t.elapsed());
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut all = latencies.lock().unwrap().clone();
    all.sort();
    let n = all.len();
    let pct = |p: f64| all[((n as f64 * p) as usize).min(n - 1)].as_secs_f64() * 1000.0;
    (
        n as f64 / start.elapsed().as_secs_f64(),
        pct(0.50),
        pct(0.99),
        n,
    )
}
