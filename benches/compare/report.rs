//! Figures, the table, and `benches/RESULTS.md`.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use crate::Options;
use crate::inproc::InProcess;
use crate::mcp::Mcp;
use crate::verify::Verify;
use crate::wrk::Run;

/// Durations of repeated runs: one figure per round, and every single call.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    pub rounds: Vec<Duration>,
    pub all: Vec<Duration>,
}

impl Samples {
    /// A single timed run is a round of its own.
    pub fn push(&mut self, d: Duration) {
        self.rounds.push(d);
        self.all.push(d);
    }

    /// A round's mean per call, and its calls.
    pub fn push_round(&mut self, mean: Duration, calls: Vec<Duration>) {
        self.rounds.push(mean);
        self.all.extend(calls);
    }

    pub fn median(&self) -> Duration {
        median_of(&self.rounds)
    }

    pub fn min(&self) -> Duration {
        self.rounds.iter().min().copied().unwrap_or_default()
    }

    pub fn max(&self) -> Duration {
        self.rounds.iter().max().copied().unwrap_or_default()
    }

    pub fn percentile(&self, p: f64) -> Duration {
        let mut all = self.all.clone();
        all.sort();
        if all.is_empty() {
            return Duration::ZERO;
        }
        let at = ((all.len() as f64 * p / 100.0).ceil() as usize).clamp(1, all.len()) - 1;
        all[at]
    }

    pub fn count(&self) -> usize {
        self.all.len()
    }
}

fn median_of(values: &[Duration]) -> Duration {
    let mut v = values.to_vec();
    v.sort();
    if v.is_empty() {
        Duration::ZERO
    } else {
        v[v.len() / 2]
    }
}

fn median_f(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

/// One HTTP workload: wrk runs of each server, and their peak RSS.
#[derive(Debug, Clone)]
pub struct Measure {
    pub name: String,
    pub ours: Vec<Run>,
    pub theirs: Vec<Run>,
    pub rss_ours: Option<u64>,
    pub rss_theirs: Option<u64>,
    /// The least ratio objectos holds itself to here and how the table says it.
    pub target: Option<(f64, &'static str)>,
}

/// Median requests/s, its spread, and the medians of p50 and p99 (ms).
#[derive(Debug, Clone, Copy, Default)]
pub struct Rate {
    pub per_second: f64,
    pub low: f64,
    pub high: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub runs: usize,
}

impl Rate {
    fn of(runs: &[Run]) -> Option<Rate> {
        if runs.is_empty() {
            return None;
        }
        let rates: Vec<f64> = runs.iter().map(Run::per_second).collect();
        Some(Rate {
            per_second: median_f(&rates),
            low: rates.iter().copied().fold(f64::INFINITY, f64::min),
            high: rates.iter().copied().fold(0.0, f64::max),
            p50_ms: median_f(
                &runs
                    .iter()
                    .map(|r| r.p50_us as f64 / 1e3)
                    .collect::<Vec<_>>(),
            ),
            p99_ms: median_f(
                &runs
                    .iter()
                    .map(|r| r.p99_us as f64 / 1e3)
                    .collect::<Vec<_>>(),
            ),
            runs: runs.len(),
        })
    }
}

impl Measure {
    pub fn new(name: &str) -> Measure {
        Measure {
            name: name.to_string(),
            ours: Vec::new(),
            theirs: Vec::new(),
            rss_ours: None,
            rss_theirs: None,
            target: None,
        }
    }

    pub fn ours_rate(&self) -> Option<Rate> {
        Rate::of(&self.ours)
    }

    pub fn theirs_rate(&self) -> Option<Rate> {
        Rate::of(&self.theirs)
    }
}

/// The list workload under another sharing set-up.
#[derive(Debug, Clone)]
pub struct Variant {
    pub name: String,
    pub ours: Option<Rate>,
    pub theirs: Option<Rate>,
    /// Why it was not measured.
    pub error: Option<String>,
}

impl Variant {
    pub fn from_measure(name: &str, m: &Measure) -> Variant {
        Variant {
            name: name.to_string(),
            ours: m.ours_rate(),
            theirs: m.theirs_rate(),
            error: None,
        }
    }

    pub fn failed(name: &str, error: &str) -> Variant {
        Variant {
            name: name.to_string(),
            ours: None,
            theirs: None,
            error: Some(error.lines().next().unwrap_or_default().to_string()),
        }
    }
}

/// The list workload at another data size.
#[derive(Debug, Clone)]
pub struct Growth {
    pub records: usize,
    pub list: Measure,
}

#[derive(Debug, Clone, Default)]
pub struct Load {
    /// Records of the main data set.
    pub records: usize,
    pub objectos_main: f64,
    pub peer_main: f64,
    /// Up to the largest point.
    pub objectos: f64,
    pub peer: f64,
    /// Bytes on disk after loading each point: (records, objectos, PocketBase).
    pub disk: Vec<(usize, u64, Option<u64>)>,
}

pub struct Report {
    pub date: String,
    pub commit: String,
    pub machine: Vec<(String, String)>,
    pub tools: Vec<(String, String)>,
    pub load_before: String,
    pub load_after: String,
    pub peer_version: Option<String>,
    pub peer_durability: Option<String>,
    pub http: Vec<Measure>,
    pub inproc: Option<InProcess>,
    pub verify: Option<Verify>,
    pub mcp: Option<Mcp>,
    pub variants: Vec<Variant>,
    pub growth: Vec<Growth>,
    pub load: Load,
    pub records_after_creates: Option<(u64, Option<u64>)>,
    pub rss_per_workload: bool,
    pub elapsed: Duration,
    /// objectos on PostgreSQL, one and two instances.
    pub postgres: Option<Postgres>,
    /// What went wrong without stopping the run.
    pub notes: Vec<String>,
}

/// objectos on PostgreSQL: each workload through one instance, then through two
/// instances of the same database at once.
#[derive(Debug, Clone)]
pub struct Postgres {
    pub server: String,
    pub load_seconds: f64,
    /// (workload, run)
    pub one: Vec<(String, Run)>,
    /// (workload, run through the first instance, run through the second)
    pub two: Vec<(String, Run, Run)>,
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

fn machine() -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map(|k| format!("{:.1} GiB", k / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".to_string());
    vec![
        ("cores (nproc)".into(), sh("nproc", &[])),
        ("CPU".into(), model),
        ("memory".into(), memory),
        ("kernel".into(), sh("uname", &["-sr"])),
    ]
}

impl Report {
    pub fn new(opts: &Options) -> Report {
        let repo = opts.repo.to_string_lossy().to_string();
        let mut commit = sh("git", &["-C", &repo, "rev-parse", "HEAD"]);
        if !sh("git", &["-C", &repo, "status", "--porcelain"]).is_empty() && commit != "unknown" {
            commit.push_str(" (with uncommitted changes)");
        }
        let date = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Report {
            date,
            commit,
            machine: machine(),
            tools: vec![
                (
                    "wrk".into(),
                    crate::proc::version("wrk", "-v")
                        .split(" Copyright")
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                ),
                ("minisign".into(), crate::proc::version("minisign", "-v")),
                (
                    "SQLite (objectos, bundled)".into(),
                    rusqlite::version().to_string(),
                ),
                ("rustc".into(), sh("rustc", &["--version"])),
            ],
            load_before: loadavg(),
            load_after: String::new(),
            peer_version: None,
            peer_durability: None,
            http: Vec::new(),
            inproc: None,
            verify: None,
            mcp: None,
            variants: Vec::new(),
            growth: Vec::new(),
            load: Load::default(),
            records_after_creates: None,
            rss_per_workload: true,
            elapsed: Duration::ZERO,
            postgres: None,
            notes: Vec::new(),
        }
    }

    pub fn finish(&mut self, opts: &Options) -> Result<()> {
        self.load_after = loadavg();
        // The main data set is a point of the growth table too.
        if let Some(list) = self.http.first() {
            self.growth.push(Growth {
                records: opts.records,
                list: list.clone(),
            });
            self.growth.sort_by_key(|g| g.records);
        }
        Ok(())
    }

    fn peer_name(&self) -> &'static str {
        "PocketBase"
    }

    /// The side-by-side table (Markdown, also what is printed).
    pub fn table(&self) -> String {
        let mut t = String::new();
        let has_peer = self.peer_version.is_some();
        t.push_str("| workload | objectos | peer or limit | ratio | p50 objectos / peer | p99 objectos / peer | peak RSS objectos / peer | target |\n");
        t.push_str("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
        let mut rss_ours = 0u64;
        let mut rss_theirs = 0u64;
        for m in &self.http {
            let ours = m.ours_rate().unwrap_or_default();
            let theirs = m.theirs_rate();
            rss_ours = rss_ours.max(m.rss_ours.unwrap_or(0));
            rss_theirs = rss_theirs.max(m.rss_theirs.unwrap_or(0));
            let (peer_cell, ratio, verdict) = match (theirs, m.target) {
                (Some(p), target) => {
                    let ratio = ours.per_second / p.per_second;
                    let verdict = match target {
                        Some((want, target)) => {
                            let met = ratio >= want && ours.p99_ms < p.p99_ms;
                            format!("{target}: {}", if met { "met" } else { "**missed**" })
                        }
                        None => "— (no target)".into(),
                    };
                    (
                        format!("{} {}", self.peer_name(), rate_cell(&p)),
                        format!("{ratio:.2}×"),
                        verdict,
                    )
                }
                (None, target) => (
                    "— (no peer)".into(),
                    "—".into(),
                    match target {
                        Some((_, target)) => format!("{target}: not measured"),
                        None => "— (no target)".into(),
                    },
                ),
            };
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                m.name,
                rate_cell(&ours),
                peer_cell,
                ratio,
                pair_ms(ours.p50_ms, theirs.map(|p| p.p50_ms)),
                pair_ms(ours.p99_ms, theirs.map(|p| p.p99_ms)),
                pair_mb(m.rss_ours, m.rss_theirs),
                verdict
            );
        }
        if !self.http.is_empty() {
            let (ratio, verdict) = if has_peer && rss_theirs > 0 {
                let r = rss_ours as f64 / rss_theirs as f64;
                (
                    format!("{r:.2}×"),
                    format!("≤ 0.5×: {}", if r <= 0.5 { "met" } else { "**missed**" }),
                )
            } else {
                ("—".into(), "≤ 0.5×: not measured".into())
            };
            let _ = writeln!(
                t,
                "| server peak RSS over (a)–(c) (VmHWM) | {} | {} | {} | | | | {} |",
                mb(rss_ours),
                if has_peer {
                    format!("{} {}", self.peer_name(), mb(rss_theirs))
                } else {
                    "— (no peer)".into()
                },
                ratio,
                verdict
            );
        }
        if let Some(d) = &self.inproc {
            let ratio = secs(d.service.median()) / secs(d.raw.median());
            let _ = writeln!(
                t,
                "| (d) in process: authorised list vs raw SQL (µs per page) | {} | raw SQL (rusqlite) {} | {ratio:.2}× | {} / {} µs | {} / {} µs | — | ≤ 1.3×: {} |",
                us_cell(&d.service),
                us_cell(&d.raw),
                us(d.service.percentile(50.0)),
                us(d.raw.percentile(50.0)),
                us(d.service.percentile(99.0)),
                us(d.raw.percentile(99.0)),
                if ratio <= 1.3 { "met" } else { "**missed**" }
            );
        }
        if let Some(v) = &self.verify {
            for (name, ours, theirs, want) in [
                (
                    "(e) signature and digest check (ms per run)",
                    &v.ours_check,
                    &v.minisign_noise,
                    1.5,
                ),
                (
                    "(e) whole `objectos verify` (ms per run)",
                    &v.ours_full,
                    &v.minisign_artifact,
                    3.0,
                ),
            ] {
                let ratio = secs(ours.median()) / secs(theirs.median());
                let _ = writeln!(
                    t,
                    "| {name} | {} | `minisign -V` {} | {ratio:.2}× | {} / {} ms | {} / {} ms | — | ≤ {want}×: {} |",
                    ms_cell(ours),
                    ms_cell(theirs),
                    ms(ours.percentile(50.0)),
                    ms(theirs.percentile(50.0)),
                    ms(ours.percentile(99.0)),
                    ms(theirs.percentile(99.0)),
                    if ratio <= want { "met" } else { "**missed**" }
                );
            }
        }
        if let Some(m) = &self.mcp {
            for (name, s, seconds) in [
                (
                    "(f) MCP `query_records` via `objectos mcp` (calls/s, one client)",
                    &m.query,
                    m.query_seconds,
                ),
                (
                    "(f) MCP `delete_record` proposal + its approval (per s)",
                    &m.decide,
                    m.decide_seconds,
                ),
            ] {
                let _ = writeln!(
                    t,
                    "| {name} | {:.0}/s ({} in {:.1} s) | — (PocketBase has no MCP or approval queue) | — | {} ms | {} ms | — | — |",
                    s.count() as f64 / seconds,
                    s.count(),
                    seconds,
                    ms(s.percentile(50.0)),
                    ms(s.percentile(99.0)),
                );
            }
        }
        t
    }

    pub fn markdown(&self, opts: &Options) -> String {
        let mut md = String::new();
        md.push_str("# Benchmark results\n\n");
        md.push_str(
            "objectos side by side with PocketBase (the single-binary backend people pick instead), \
             raw SQLite and `minisign`, on one machine in one run, against the targets objectos holds \
             itself to (ratios count, not absolute figures: they depend on the machine and its load).\n\n",
        );
        md.push_str("Re-run it with `scripts/bench` (about half an hour on 2 cores: it builds objectos in release mode, installs PocketBase 0.40 into a venv under `target/bench/` and Debian's `wrk`, and overwrites this file); `scripts/bench --quick` leaves out the 1M-record point and runs 5 s per round; `scripts/bench --records N` changes the main data set; `scripts/bench --smoke` is the seconds-long check the tests run (it writes under `target/bench/`, not here). `scripts/bench --help` lists the rest.\n\n");
        let _ = writeln!(md, "- date: {}", self.date);
        let _ = writeln!(md, "- commit: `{}`", self.commit);
        let _ = writeln!(
            md,
            "- mode: {} (took {:.0} s), objectos {} build",
            opts.mode,
            self.elapsed.as_secs_f64(),
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
        );
        for (k, v) in &self.machine {
            let _ = writeln!(md, "- {k}: {v}");
        }
        let _ = writeln!(
            md,
            "- load average (1, 5, 15 min) before: {}, after: {} — other builds may share the machine; each ratio compares runs of the same minutes",
            self.load_before, self.load_after
        );
        let _ = writeln!(
            md,
            "- peer: {}",
            self.peer_version
                .as_deref()
                .unwrap_or("none (PocketBase could not be installed)")
        );
        for (k, v) in &self.tools {
            let _ = writeln!(md, "- {k}: {v}");
        }
        md.push('\n');
        md.push_str("## Side by side\n\n");
        let _ = writeln!(
            md,
            "{} opportunities over {} users (record *i* belongs to user *i* mod {}; 10% `closed_won`; one sensitive field), rule \"own or closed-won\". wrk {} threads × {} connections, {} s per run over loopback, requests spread over every user's credentials; {} alternating round(s) per workload (who goes first alternates), after a {} s warm-up of each. Cells: median (lowest–highest of the rounds).\n",
            thousands(opts.records as f64),
            opts.users,
            opts.users,
            opts.threads,
            opts.connections,
            opts.duration.as_secs(),
            opts.rounds,
            opts.warmup.as_secs()
        );
        md.push_str(&self.table());
        md.push('\n');
        md.push_str(&self.workloads_text(opts));
        md.push_str(&self.growth_text());
        md.push_str(&self.variants_text());
        md.push_str(&self.load_text());
        md.push_str(&self.postgres_text(opts));
        if !self.notes.is_empty() {
            md.push_str("## Not measured\n\n");
            for note in &self.notes {
                let _ = writeln!(md, "- {note}");
            }
        }
        md
    }

    /// The PostgreSQL table: SQLite's figures beside one and two instances on
    /// one PostgreSQL database.
    pub fn postgres_table(&self) -> String {
        let Some(pg) = &self.postgres else {
            return String::new();
        };
        let mut t = String::new();
        t.push_str("| workload | SQLite, one instance | PostgreSQL, one instance | PostgreSQL, two instances (sum) | two / one | p99 SQLite / PG one / PG two |\n");
        t.push_str("| --- | --- | --- | --- | --- | --- |\n");
        for (name, one) in &pg.one {
            let sqlite = self
                .http
                .iter()
                .find(|m| &m.name == name)
                .and_then(|m| m.ours_rate());
            let Some((_, a, b)) = pg.two.iter().find(|(n, _, _)| n == name) else {
                continue;
            };
            let two = a.per_second() + b.per_second();
            let p99_two = a.p99_us.max(b.p99_us) as f64 / 1000.0;
            let _ = writeln!(
                t,
                "| {name} | {} | {} req/s | {} req/s | {:.2}× | {} / {:.1} / {:.1} ms |",
                sqlite.map(|r| rate_cell(&r)).unwrap_or_else(|| "—".into()),
                thousands(one.per_second()),
                thousands(two),
                two / one.per_second().max(f64::MIN_POSITIVE),
                sqlite
                    .map(|r| format!("{:.1}", r.p99_ms))
                    .unwrap_or_else(|| "—".into()),
                one.p99_us as f64 / 1000.0,
                p99_two,
            );
        }
        t
    }

    fn postgres_text(&self, opts: &Options) -> String {
        let Some(pg) = &self.postgres else {
            return String::new();
        };
        let mut md = String::from("## PostgreSQL: one and two instances\n\n");
        let _ = writeln!(
            md,
            "The same site with its database on PostgreSQL ({}, on this machine, over loopback): the same {} opportunities, loaded with `objectos import --as` in {:.1} s; one run of {} s per workload through one `objectos serve`, then through two `objectos serve` of the same database at once (a copy of the data dir each, as two hosts run them), each driven by its own wrk with half the connections; the SQLite column is the median of the side-by-side table above. Every instance, the database and the load clients share the same cores, so the two-instance column shows what a second instance costs here, not what a second host adds.\n",
            pg.server,
            thousands(opts.records as f64),
            pg.load_seconds,
            opts.duration.as_secs(),
        );
        md.push_str(&self.postgres_table());
        md.push('\n');
        md
    }

    fn workloads_text(&self, opts: &Options) -> String {
        let mut md = String::from("### What each row runs\n\n");
        let _ = writeln!(
            md,
            "- (a) `GET /api/v1/data/bench_opportunity?{}` as a rep (objectos: the records service with rights, sharing rules and field security); PocketBase: `GET /api/collections/opportunities/records?filter=(stage='prospecting')&sort=-amount&perPage=20&skipTotal=1` under its list rule `owner = @request.auth.id || stage = \"closed_won\"`, indexes on (owner, stage) and stage.",
            crate::objectos::LIST_QUERY
        );
        let _ = writeln!(
            md,
            "- (a2) The page of (a) in each server's own order (`GET /api/v1/data/bench_opportunity?{}`; PocketBase: `?{}`): objectos orders a page by id, PocketBase leaves the order to SQLite. This is the list the ≥ 5× target is about: a page with a filter and no order asked.",
            crate::objectos::LIST_UNSORTED_QUERY,
            crate::pocketbase::LIST_UNSORTED_QUERY
        );
        let _ = writeln!(
            md,
            "- (a3) A page without a filter, in each server's own order (`?{}`; PocketBase: `?{}`): the rep's own deals and the closed-won ones, the list people open first. objectos's list target is for a list with a filter, so this row has none.",
            crate::objectos::LIST_ALL_QUERY,
            crate::pocketbase::LIST_ALL_QUERY
        );
        md.push_str("- (b) `GET` one record by id: each user one of ten deals of their own.\n");
        let durability = self.peer_durability.as_deref().unwrap_or("not measured");
        let _ = writeln!(
            md,
            "- (c) `POST` one record as a rep. objectos validates it, writes it and its hash-chained audit row in one transaction, on disk before the answer (creates that arrive together share one commit and one fsync, made after the writer passes to the next group). PocketBase writes no audit; it opens {durability}. Each create run (warm-up included) starts after `sync`, so no run pays for writing out what the run before it left in the page cache."
        );
        if let Some((ours, theirs)) = self.records_after_creates {
            let _ = writeln!(
                md,
                "  The creates add to the data: after them objectos held {} records{}; (a) to (b) ran before any create.",
                thousands(ours as f64),
                theirs
                    .map(|t| format!(", PocketBase {}", thousands(t as f64)))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(
            md,
            "- Peak RSS: VmHWM of each server process, {}; both servers were restarted after loading, so loading does not count.",
            if self.rss_per_workload {
                "reset before each workload (`/proc/PID/clear_refs`), read after its runs"
            } else {
                "since the server started"
            }
        );
        if let Some(d) = &self.inproc {
            let _ = writeln!(
                md,
                "- (d) In one process, no HTTP: `Records::list` for rep00 (rights, the sharing rule, field security, the same query as (a)) against the page a hand-written app would ask SQLite for through rusqlite on the same file, with the same page cache size, mmap and plan stability (`owner_id = ? AND stage = 'prospecting' ORDER BY amount DESC`; the closed-won branch cannot match that filter). Each side reads through a connection and page cache of its own, of the same size; the data grows with the creates of (c), so this runs on more records than (a). Both return the same ids (checked). {} rounds of {} calls on each side, the two taking turns call by call (the speed of this kind of shared machine drifts within seconds, so blocks of calls timed one after the other compare moments more than code), who goes first alternating by round; cells: median of the rounds' mean per call (lowest–highest). SQLite's plan for the raw query: `{}`.",
                d.service.rounds.len(),
                opts.inproc_iterations,
                d.plan
            );
        }
        if let Some(v) = &self.verify {
            let _ = writeln!(
                md,
                "- (e) A {:.1} MB artifact of {} objects, signed by objectos. Signature and digest: `objectos verify` on signed noise of the same size (it passes the check, then stops at validation) against `minisign -V` on that noise; whole verify: `objectos verify` (signature, digest, expiry, validation) against `minisign -V` on the artifact. Each timed as a process, {} alternating runs after a warm-up; cells: median (lowest–highest).",
                v.bytes as f64 / 1e6,
                v.objects,
                v.ours_full.rounds.len()
            );
        }
        if let Some(m) = &self.mcp {
            let _ = writeln!(
                md,
                "- (f) One agent host: `objectos mcp` (stdio, JSON-RPC lines; `initialize`, `notifications/initialized`, then `tools/call`), an agent key of rep00. `query_records` (the list of (a)) one call after another for {:.0} s. Then `delete_record` of one of rep00's deals, answered `pending_approval`, and its approval by a manager (`POST /api/v1/pending-actions/ID/approve`, a user key with `approve_actions`), which deletes the record: {} pairs, proposal p50 {} ms, approval p50 {} ms.",
                m.query_seconds,
                m.decide.count(),
                ms(m.propose.percentile(50.0)),
                ms(m.approve.percentile(50.0))
            );
        }
        md.push_str("- objectos serves with `OBJECTOS_LOG=warn` (no line per request), as PocketBase's request log is off (`logs.maxDays = 0`).\n\n");
        md
    }

    fn growth_text(&self) -> String {
        let mut md = String::from("## How cost grows\n\n");
        md.push_str("The list of (a) at each data size (one run per server after a warm-up; the main size is the median of its rounds), and each server's peak RSS under that load.\n\n");
        md.push_str("| records | objectos list | p50 / p99 | PocketBase list | p50 / p99 | ratio | peak RSS objectos / PocketBase |\n");
        md.push_str("| --- | --- | --- | --- | --- | --- | --- |\n");
        for g in &self.growth {
            let ours = g.list.ours_rate().unwrap_or_default();
            let theirs = g.list.theirs_rate();
            let _ = writeln!(
                md,
                "| {} | {} | {:.2} / {:.2} ms | {} | {} | {} | {} |",
                thousands(g.records as f64),
                rate_cell(&ours),
                ours.p50_ms,
                ours.p99_ms,
                theirs.map(|p| rate_cell(&p)).unwrap_or_else(|| "—".into()),
                theirs
                    .map(|p| format!("{:.2} / {:.2} ms", p.p50_ms, p.p99_ms))
                    .unwrap_or_else(|| "—".into()),
                theirs
                    .map(|p| format!("{:.2}×", ours.per_second / p.per_second))
                    .unwrap_or_else(|| "—".into()),
                pair_mb(g.list.rss_ours, g.list.rss_theirs),
            );
        }
        md.push('\n');
        md
    }

    fn variants_text(&self) -> String {
        if self.variants.is_empty() {
            return String::new();
        }
        let mut md = String::from("## The cost of sharing rules and teams\n\n");
        md.push_str("The list of (a) at the main size. One more rule: large deals in negotiation readable by everyone (PocketBase: `|| (stage = \"negotiation\" && amount >= 900000)` added to its list and view rule). Ten teams: every user in `everyone` and nine more teams, each the recipient of one rule (a stage and region other than the list's); PocketBase has no teams, so only objectos runs it. The rules do not match the filter, so each page is the same: what changes is the work to decide it. All three cases run after the creates of (c), on the same data, so the base is measured again there rather than taken from (a), whose data was smaller. Each case: as many alternating rounds as the workloads above, after a warm-up of each server; cells: median (lowest–highest).\n\n");
        md.push_str("| case | objectos list | p99 | vs base | PocketBase list | p99 | vs base |\n");
        md.push_str("| --- | --- | --- | --- | --- | --- | --- |\n");
        let base = &self.variants[0];
        for v in &self.variants {
            if let Some(error) = &v.error {
                let _ = writeln!(md, "| {} | not measured: {error} | | | | | |", v.name);
                continue;
            }
            let vs = |a: Option<Rate>, b: Option<Rate>| match (a, b) {
                (Some(a), Some(b)) => format!("{:.2}×", a.per_second / b.per_second),
                _ => "—".into(),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                v.name,
                v.ours.map(|r| rate_cell(&r)).unwrap_or_else(|| "—".into()),
                v.ours
                    .map(|r| format!("{:.2} ms", r.p99_ms))
                    .unwrap_or_else(|| "—".into()),
                vs(v.ours, base.ours),
                v.theirs
                    .map(|r| rate_cell(&r))
                    .unwrap_or_else(|| "—".into()),
                v.theirs
                    .map(|r| format!("{:.2} ms", r.p99_ms))
                    .unwrap_or_else(|| "—".into()),
                vs(v.theirs, base.theirs),
            );
        }
        md.push('\n');
        md
    }

    fn load_text(&self) -> String {
        let mut md = String::from("## Loading the data\n\n");
        md.push_str("objectos: `objectos import bench_opportunity FILE --as OWNER`, one file per owner, each record validated and written with its audit row, as a site would load data; PocketBase: its batch API as the superuser, 500 records per request (one transaction each). Times are cumulative from an empty database; on disk: the data dir of each (database, WAL and whatever else it keeps there; objectos's holds the audit log too).\n\n");
        md.push_str("| records | objectos | PocketBase | objectos records/s | PocketBase records/s | on disk objectos / PocketBase |\n");
        md.push_str("| --- | --- | --- | --- | --- | --- |\n");
        let row = |md: &mut String, n: usize, ours: f64, theirs: f64| {
            let peer = self.peer_version.is_some();
            let disk = self
                .load
                .disk
                .iter()
                .find(|d| d.0 == n)
                .map(|d| pair_mb(Some(d.1), d.2))
                .unwrap_or_else(|| "—".into());
            let _ = writeln!(
                md,
                "| {} | {:.1} s | {} | {} | {} | {disk} |",
                thousands(n as f64),
                ours,
                if peer {
                    format!("{theirs:.1} s")
                } else {
                    "—".into()
                },
                thousands(n as f64 / ours),
                if peer {
                    thousands(n as f64 / theirs)
                } else {
                    "—".into()
                },
            );
        };
        row(
            &mut md,
            self.load.records,
            self.load.objectos_main,
            self.load.peer_main,
        );
        if let Some(last) = self.growth.last().map(|g| g.records)
            && last > self.load.records
        {
            row(&mut md, last, self.load.objectos, self.load.peer);
        }
        md.push('\n');
        md
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

fn ms_cell(s: &Samples) -> String {
    format!("{} ms ({}–{})", ms(s.median()), ms(s.min()), ms(s.max()))
}

fn us_cell(s: &Samples) -> String {
    format!("{} µs ({}–{})", us(s.median()), us(s.min()), us(s.max()))
}

fn thousands(x: f64) -> String {
    let n = x.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn rate_cell(r: &Rate) -> String {
    if r.runs > 1 {
        format!(
            "{} req/s ({}–{})",
            thousands(r.per_second),
            thousands(r.low),
            thousands(r.high)
        )
    } else {
        format!("{} req/s", thousands(r.per_second))
    }
}

fn pair_ms(ours: f64, theirs: Option<f64>) -> String {
    match theirs {
        Some(t) => format!("{ours:.2} / {t:.2} ms"),
        None => format!("{ours:.2} ms / —"),
    }
}

fn mb(bytes: u64) -> String {
    let mb = bytes as f64 / 1e6;
    if mb < 10.0 {
        format!("{mb:.1} MB")
    } else {
        format!("{mb:.0} MB")
    }
}

fn pair_mb(ours: Option<u64>, theirs: Option<u64>) -> String {
    let one = |b: Option<u64>| b.map(mb).unwrap_or_else(|| "—".into());
    format!("{} / {}", one(ours), one(theirs))
}
