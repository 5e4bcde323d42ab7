//! Runs wrk with the scripts in `benches/wrk/` and reads the line their `done` prints.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::Options;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// A page of 20 with a filter, sorted by amount.
    List,
    /// The same page in the server's own order (the filter alone).
    ListUnsorted,
    /// A page of 20 without a filter, in the server's own order.
    ListAll,
    Get,
    Create,
}

impl Workload {
    /// The least ratio objectos holds itself to against the peer on this
    /// workload, and how the table says it (`None`: reported only).
    pub fn target(self) -> Option<(f64, &'static str)> {
        match self {
            Workload::List | Workload::ListUnsorted => Some((5.0, "≥ 5×, lower p99")),
            // The list target is for a page with a filter; one without is measured
            // because it is the list people open first.
            Workload::ListAll => None,
            Workload::Get => Some((3.0, "≥ 3×, lower p99")),
            Workload::Create => Some((2.0, "≥ 2×, lower p99")),
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Workload::List => "(a) list: page of 20, filter, sorted, as a rep",
            Workload::ListUnsorted => "(a2) list: page of 20, filter, as a rep",
            Workload::ListAll => "(a3) list: page of 20, no filter, as a rep",
            Workload::Get => "(b) get one record by id",
            Workload::Create => "(c) create one record",
        }
    }

    fn script(self) -> &'static str {
        match self {
            Workload::List | Workload::ListUnsorted | Workload::ListAll => "list.lua",
            Workload::Get => "get.lua",
            Workload::Create => "create.lua",
        }
    }
}

/// One server as the scripts see it.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: &'static str,
    pub base: String,
    /// `token<TAB>owner<TAB>readable record id` per line.
    pub credentials: PathBuf,
    /// What goes before the token in `Authorization`.
    pub auth: &'static str,
    pub list_path: String,
    pub list_unsorted_path: String,
    pub list_all_path: String,
    /// With `{id}`.
    pub get_path: String,
    pub create_path: String,
    /// With `{owner}` and `{n}`.
    pub create_body: String,
}

/// What one wrk run measured.
#[derive(Debug, Clone, Deserialize)]
pub struct Run {
    pub requests: u64,
    pub duration_us: u64,
    pub connect_errors: u64,
    pub read_errors: u64,
    pub write_errors: u64,
    pub status_errors: u64,
    pub timeouts: u64,
    pub p50_us: u64,
    pub p99_us: u64,
}

impl Run {
    /// Completed requests per second (0 when none completed within the run).
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / (self.duration_us as f64 / 1e6)
    }
}

/// One wrk run of `workload` against `target`; an error when any request failed.
/// Write out every dirty page before a run that writes: otherwise the server
/// that syncs each commit would pay, in its own run, for flushing what the
/// previous run (the other server's, which does not sync) left in the page cache.
fn settle_disk() -> Result<()> {
    let status = Command::new("sync").status().context("cannot run sync")?;
    if !status.success() {
        bail!("sync failed ({status})");
    }
    Ok(())
}

pub fn run(opts: &Options, workload: Workload, target: &Target, duration: Duration) -> Result<Run> {
    let scripts = opts.repo.join("benches/wrk");
    let (path, body) = match workload {
        Workload::List => (target.list_path.clone(), None),
        Workload::ListUnsorted => (target.list_unsorted_path.clone(), None),
        Workload::ListAll => (target.list_all_path.clone(), None),
        Workload::Get => (target.get_path.clone(), None),
        Workload::Create => (target.create_path.clone(), Some(target.create_body.clone())),
    };
    if workload == Workload::Create {
        settle_disk()?;
    }
    let mut cmd = Command::new("wrk");
    cmd.arg("-t")
        .arg(opts.threads.to_string())
        .arg("-c")
        .arg(opts.connections.to_string())
        .arg("-d")
        .arg(format!("{}s", duration.as_secs().max(1)))
        .arg("--timeout")
        .arg("10s")
        .arg("-s")
        .arg(scripts.join(workload.script()))
        .arg(&target.base)
        .env("BENCH_WRK_DIR", &scripts)
        .env("BENCH_CREDENTIALS", &target.credentials)
        .env("BENCH_AUTH", target.auth)
        .env("BENCH_PATH", path);
    if let Some(body) = body {
        cmd.env("BENCH_BODY", body);
    }
    let shown = format!("wrk {} against {}", workload.script(), target.name);
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "{shown} failed ({}): {}{}",
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCH_RESULT "))
        .with_context(|| format!("{shown} printed no result: {stdout}"))?;
    let run: Run = serde_json::from_str(line).with_context(|| format!("{shown}: {line}"))?;
    // No request completing within the run is a figure (0/s), not a failure.
    let failed = run.status_errors + run.connect_errors + run.read_errors + run.write_errors;
    if failed > 0 || run.timeouts > 0 {
        bail!(
            "{shown}: {} of {} requests failed ({} with an error status, {} connect, {} read, {} write, {} timeouts); the harness must send only requests that succeed\n{stdout}",
            failed + run.timeouts,
            run.requests,
            run.status_errors,
            run.connect_errors,
            run.read_errors,
            run.write_errors,
            run.timeouts
        );
    }
    Ok(run)
}
