//! The audit evidence benchmark, shared by `cargo bench --bench audit` and the
//! test that runs its short mode: a data dir whose audit log holds `events`
//! rows (written straight into SQLite, hash-chained like objectos chains
//! them), then `audit export` and `audit verify-archive` of all of them, each
//! timed as a process with its peak RSS (VmHWM, read from /proc while it runs),
//! beside raw baselines over the same archive: `sha256sum` of its bytes and
//! GNU `tar -x` of it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One timed process.
#[derive(Debug, Clone)]
pub struct Timed {
    pub what: String,
    pub seconds: f64,
    /// Peak resident set size, KiB (VmHWM); 0 when /proc could not tell.
    pub peak_rss_kib: u64,
}

impl Timed {
    pub fn events_per_second(&self, events: u64) -> f64 {
        events as f64 / self.seconds.max(1e-9)
    }
}

#[derive(Debug, Clone)]
pub struct Figures {
    pub events: u64,
    pub archive_bytes: u64,
    pub export: Timed,
    pub verify: Timed,
    pub sha256sum: Option<Timed>,
    pub tar_extract: Option<Timed>,
}

impl Figures {
    /// The report, one line per process.
    pub fn report(&self) -> String {
        let mut out = format!(
            "audit evidence: {} events, archive {:.1} MB\n{:<28} {:>10} {:>14} {:>14}\n",
            self.events,
            self.archive_bytes as f64 / 1e6,
            "process",
            "seconds",
            "events/s",
            "peak RSS MiB"
        );
        let lines = [
            Some(&self.export),
            Some(&self.verify),
            self.sha256sum.as_ref(),
            self.tar_extract.as_ref(),
        ];
        for t in lines.into_iter().flatten() {
            out.push_str(&format!(
                "{:<28} {:>10.3} {:>14.0} {:>14.1}\n",
                t.what,
                t.seconds,
                t.events_per_second(self.events),
                t.peak_rss_kib as f64 / 1024.0
            ));
        }
        if let Some(sha) = &self.sha256sum {
            out.push_str(&format!(
                "verify-archive takes {:.1}x the time of sha256sum over the same bytes\n",
                self.verify.seconds / sha.seconds.max(1e-9)
            ));
        }
        out.push_str(&format!(
            "targets: >= 200000 events/s and < 64 MiB peak RSS: export {}, verify-archive {}\n",
            verdict(&self.export, self.events),
            verdict(&self.verify, self.events)
        ));
        out
    }
}

fn verdict(t: &Timed, events: u64) -> &'static str {
    let fast = t.events_per_second(events) >= 200_000.0;
    let small = t.peak_rss_kib > 0 && t.peak_rss_kib < 64 * 1024;
    match (fast, small) {
        (true, true) => "met",
        (false, true) => "too slow",
        (true, false) => "too much memory",
        (false, false) => "missed both",
    }
}

/// The peak RSS of a process so far (KiB), from /proc.
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Run a command to its end, timing it and sampling its peak RSS.
pub fn timed(what: &str, cmd: &mut Command) -> Timed {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let pid = child.id();
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = vm_hwm(pid) {
            peak = peak.max(kib);
        }
        match child.try_wait().expect("wait") {
            Some(status) => break status,
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        use std::io::Read;
        let _ = stderr.read_to_string(&mut err);
    }
    assert!(status.success(), "{what} failed: {err}");
    Timed {
        what: what.to_string(),
        seconds,
        peak_rss_kib: peak,
    }
}

fn objectos(bin: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("OBJECTOS_DATA_DIR", dir.join("data"));
    cmd
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Append `events` rows to the data dir's audit log, straight into SQLite,
/// each hashed and chained as objectos does it, with a realistic body.
pub fn seed(db: &Path, events: u64) {
    use objectos::store::AuditRow;
    let mut conn = rusqlite::Connection::open(db).expect("open the database");
    let (mut seq, mut prev): (i64, String) = conn
        .query_row(
            "SELECT seq, hash FROM objectos_audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the init row");
    let tx = conn.transaction().unwrap();
    {
        let mut stmt = tx
            .prepare("INSERT INTO objectos_audit (seq, id, time, actor, via, client, credential, action, object, record_id, changes, outcome, code, request_id, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)")
            .unwrap();
        let start = 1_767_225_600i64; // 2026-01-01T00:00:00Z
        for i in 0..events {
            seq += 1;
            let at = time::OffsetDateTime::from_unix_timestamp(start + (i / 50) as i64).unwrap();
            let mut row = AuditRow {
                seq,
                id: format!("0190{:012x}-7000-8000-{:012x}", i, seq),
                time: objectos::timefmt::rfc3339_micros(at),
                actor: serde_json::json!({"user_id": format!("u{:04}", i % 97), "email": format!("rep{}@example.com", i % 97)}),
                via: if i % 3 == 0 { "agent" } else { "api" }.into(),
                client: None,
                credential: Some(format!("key-{:04}", i % 31)),
                action: "record.update".into(),
                object: Some("crm_opportunity".into()),
                record_id: Some(format!("0190{:028x}", i % 100_000)),
                changes: Some(serde_json::json!({
                    "stage": {"before": "proposal", "after": "negotiation"},
                    "amount": {"before": (i % 1000) * 250, "after": (i % 1000) * 275},
                    "name": {"before": format!("Deal {i}"), "after": format!("Deal {i} (renewal)")},
                })),
                outcome: "success".into(),
                code: None,
                request_id: Some(format!("req-{i:010}")),
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            row.hash = objectos::audit::row_hash(&row).expect("a hash");
            let text = |v: &serde_json::Value| objectos::crypto::canonical::to_string(v).unwrap();
            stmt.execute(rusqlite::params![
                row.seq,
                row.id,
                row.time,
                text(&row.actor),
                row.via,
                row.client.as_ref().map(text),
                row.credential,
                row.action,
                row.object,
                row.record_id,
                row.changes.as_ref().map(text),
                row.outcome,
                row.code,
                row.request_id,
                row.prev_hash,
                row.hash,
            ])
            .unwrap();
            prev = row.hash;
        }
    }
    tx.commit().unwrap();
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Build the data dir in `dir` and measure.
pub fn run(bin: &Path, dir: &Path, events: u64) -> Figures {
    run_ok(objectos(bin, dir).args(["init", "-q"]));
    seed(&dir.join("data/objectos.db"), events);
    // A command that writes leaves a checkpoint of the head behind.
    run_ok(objectos(bin, dir).args(["team", "add", "bench"]));
    let archive: PathBuf = dir.join("audit.tar");
    let export = timed(
        "objectos audit export",
        objectos(bin, dir)
            .args(["audit", "export", "-o"])
            .arg(&archive),
    );
    let verify = timed(
        "objectos audit verify-archive",
        objectos(bin, dir)
            .args(["audit", "verify-archive"])
            .arg(&archive)
            .args(["-p", "data/instance-signing.key.pub"]),
    );
    let sha256sum = have("sha256sum").then(|| {
        timed(
            "sha256sum (baseline)",
            Command::new("sha256sum").arg(&archive),
        )
    });
    let tar_extract = have("tar").then(|| {
        let out = dir.join("extracted");
        std::fs::create_dir_all(&out).unwrap();
        timed(
            "tar -x (baseline)",
            Command::new("tar")
                .arg("-xf")
                .arg(&archive)
                .arg("-C")
                .arg(&out),
        )
    });
    Figures {
        // The seeded rows, the init row and the `team add` row.
        events: events + 2,
        archive_bytes: std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0),
        export,
        verify,
        sha256sum,
        tar_extract,
    }
}
