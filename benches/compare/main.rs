//! The side-by-side benchmark of `scripts/bench`: objectos against PocketBase over
//! HTTP, against raw SQL in process, against `minisign -V`, and its MCP surface.
//!
//! `scripts/bench` installs the tools (wrk, PocketBase in a venv) and runs this
//! with `cargo bench --bench compare -- [--smoke | --quick] [--records N] …`.
//! It builds one data set, loads it into both servers the way a site would
//! (objectos: `objectos import --as` each owner, audited; PocketBase: its batch
//! API), drives both with the same wrk scripts (`benches/wrk/`) in alternating
//! rounds, and prints one table, also written to `benches/RESULTS.md`. It
//! asserts no speed: it fails only when a step fails (a refused request, a
//! server that does not start), never because a figure is low.

mod data;
mod inproc;
mod mcp;
mod objectos;
mod pocketbase;
mod proc;
mod report;
mod verify;
mod wrk;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;

use crate::report::{Growth, Measure, Report, Variant};
use crate::wrk::Workload;

/// The side-by-side benchmark of objectos against PocketBase, raw SQLite and minisign
#[derive(Debug, Parser)]
#[command(name = "scripts/bench")]
struct Args {
    /// Seconds, a small data set, one round of 1 s per workload (a check that the harness runs)
    #[arg(long, conflicts_with = "quick")]
    smoke: bool,
    /// Leave out the 1M-record point and run 5 s per round
    #[arg(long)]
    quick: bool,
    /// Opportunities in the main data set
    #[arg(long, value_name = "N")]
    records: Option<usize>,
    /// Alternating rounds per workload (medians and spread are over these)
    #[arg(long, value_name = "N")]
    rounds: Option<usize>,
    /// Seconds of load per run
    #[arg(long, value_name = "S")]
    duration: Option<u64>,
    /// The PocketBase binary (scripts/bench installs it into target/bench/venv)
    #[arg(long, value_name = "PATH")]
    pocketbase: Option<PathBuf>,
    /// Run without the peer (allowed only with --smoke)
    #[arg(long)]
    no_peer: bool,
    /// Also measure objectos on this PostgreSQL database (empty; its password
    /// from `PGPASSWORD`), with one and with two instances
    #[arg(long, value_name = "URL")]
    postgres_url: Option<String>,
    /// Where the data dirs and logs go (emptied first)
    #[arg(long, value_name = "DIR")]
    work: Option<PathBuf>,
    /// Where the results are written (default: benches/RESULTS.md; with --smoke, WORK/RESULTS.md)
    #[arg(long, value_name = "FILE")]
    results: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored
    #[arg(long, hide = true)]
    bench: bool,
}

/// What one run of the harness does, resolved from the arguments.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: &'static str,
    pub records: usize,
    pub users: usize,
    pub rounds: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub connections: u32,
    pub threads: u32,
    /// Record counts at which list latency is measured (the main set among them).
    pub scale: Vec<usize>,
    /// Objects in the artifact of the verify workload (~10 MB at 2,500).
    pub verify_objects: usize,
    pub verify_runs: usize,
    pub inproc_iterations: usize,
    pub pocketbase: Option<PathBuf>,
    pub postgres_url: Option<String>,
    pub work: PathBuf,
    pub results: PathBuf,
    pub repo: PathBuf,
    pub objectos_bin: PathBuf,
}

impl Options {
    fn from_args(args: Args) -> Result<Options> {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let smoke = args.smoke;
        let records = args.records.unwrap_or(if smoke { 1_000 } else { 100_000 });
        if records < 1_000 {
            bail!(
                "`--records` must be at least 1000 (each of the users needs records of every stage)"
            );
        }
        let mut scale = if smoke {
            vec![records / 2, records]
        } else if args.quick {
            vec![10_000, records]
        } else {
            vec![10_000, records, 1_000_000]
        };
        scale.retain(|&n| n >= 500);
        scale.sort_unstable();
        scale.dedup();
        let pocketbase = match (args.pocketbase, args.no_peer) {
            (Some(path), false) => Some(std::fs::canonicalize(&path).with_context(|| {
                format!(
                    "no PocketBase at {}; `scripts/bench` installs it",
                    path.display()
                )
            })?),
            (_, true) if smoke => None,
            (_, true) => bail!("`--no-peer` is only for `--smoke`: the benchmark is a comparison"),
            (None, false) => bail!(
                "no PocketBase binary given; run the harness through `scripts/bench`, which installs it"
            ),
        };
        // Absolute: the CLIs run in the sites' own directories.
        let work = std::path::absolute(args.work.unwrap_or_else(|| repo.join("target/bench/run")))?;
        let results = args.results.map(std::path::absolute).transpose()?;
        let results = results.unwrap_or_else(|| {
            if smoke {
                work.join("RESULTS.md")
            } else {
                repo.join("benches/RESULTS.md")
            }
        });
        Ok(Options {
            mode: if smoke {
                "smoke"
            } else if args.quick {
                "quick"
            } else {
                "full"
            },
            records,
            users: if smoke { 5 } else { 50 },
            rounds: args.rounds.unwrap_or(if smoke { 1 } else { 3 }).max(1),
            duration: Duration::from_secs(args.duration.unwrap_or(match (smoke, args.quick) {
                (true, _) => 1,
                (false, true) => 5,
                (false, false) => 10,
            })),
            warmup: Duration::from_secs(if smoke { 0 } else { 2 }),
            connections: if smoke { 4 } else { 32 },
            threads: 2,
            scale,
            verify_objects: if smoke { 50 } else { 2_500 },
            verify_runs: if smoke { 3 } else { 15 },
            inproc_iterations: if smoke { 50 } else { 1_000 },
            pocketbase,
            postgres_url: args.postgres_url,
            work,
            results,
            repo,
            objectos_bin: PathBuf::from(env!("CARGO_BIN_EXE_objectos")),
        })
    }

    pub fn smoke(&self) -> bool {
        self.mode == "smoke"
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match Options::from_args(args).and_then(|opts| run(&opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn step(what: &str) {
    eprintln!("bench: {what}");
}

fn run(opts: &Options) -> Result<()> {
    let started = Instant::now();
    for tool in ["wrk", "minisign"] {
        if !proc::on_path(tool) {
            bail!(
                "`{tool}` is not installed; `scripts/bench` installs it (or run `scripts/setup`)"
            );
        }
    }
    if opts.work.exists() {
        std::fs::remove_dir_all(&opts.work)
            .with_context(|| format!("cannot empty {}", opts.work.display()))?;
    }
    std::fs::create_dir_all(&opts.work)
        .with_context(|| format!("cannot create {}", opts.work.display()))?;
    let mut report = Report::new(opts);
    step(&format!(
        "{} mode: {} opportunities over {} users, {} round(s) of {} s, wrk {} threads x {} connections",
        opts.mode,
        opts.records,
        opts.users,
        opts.rounds,
        opts.duration.as_secs(),
        opts.threads,
        opts.connections
    ));

    // First, before any server or database exists: a verify is a short
    // process on both cores, and the background work a server or PostgreSQL
    // does after a heavy load (checkpoints, vacuum) would take its cores.
    step("verify: objectos verify against minisign -V");
    report.verify = Some(verify::measure(opts)?);

    let dataset = data::Dataset::new(opts.users);
    step("objectos: init, build, sign and apply benches/app, users, teams and keys");
    let mut site = objectos::Site::create(opts, &dataset)?;
    let mut peer = match &opts.pocketbase {
        Some(bin) => {
            step("PocketBase: superuser, settings, collection, users");
            let peer = pocketbase::Site::create(opts, bin, &dataset)?;
            report.peer_version = Some(peer.version.clone());
            report.peer_durability = Some(peer.durability.clone());
            Some(peer)
        }
        None => {
            eprintln!(
                "bench: WARNING: no peer: PocketBase could not be installed; only objectos is measured"
            );
            None
        }
    };

    let mut loaded = 0;
    for &point in &opts.scale.clone() {
        step(&format!("load records {loaded}..{point}"));
        let secs = site.load(&dataset, loaded, point)?;
        report.load.objectos += secs;
        if let Some(peer) = peer.as_mut() {
            report.load.peer += peer.load(&dataset, loaded, point)?;
        }
        if point <= opts.records {
            report.load.records = point;
            report.load.objectos_main = report.load.objectos;
            report.load.peer_main = report.load.peer;
        }
        loaded = point;
        report.load.disk.push((
            point,
            proc::dir_size(&site.data_dir()),
            peer.as_ref().map(|p| proc::dir_size(p.data_dir())),
        ));

        site.start()?;
        if let Some(peer) = peer.as_mut() {
            peer.start()?;
        }
        if point == opts.records {
            main_comparison(opts, &mut site, peer.as_mut(), &dataset, &mut report)?;
        } else {
            step(&format!("growth: list at {point} records"));
            match growth_point(opts, &mut site, peer.as_mut(), &dataset, point) {
                Ok(growth) => report.growth.push(growth),
                Err(e) => {
                    eprintln!("bench: WARNING: the list at {point} records: {e:#}");
                    report.notes.push(format!(
                        "The list at {point} records was not measured: {e:#}"
                    ));
                }
            }
        }
        site.stop()?;
        if let Some(peer) = peer.as_mut() {
            peer.stop()?;
        }
        if point == opts.records {
            step("in process: the records service against raw SQL");
            report.inproc = Some(inproc::measure(opts, &site)?);
        }
    }

    if let Some(url) = &opts.postgres_url {
        step("PostgreSQL: the same site on one database, one instance then two");
        match postgres_comparison(opts, &dataset, url) {
            Ok(pg) => report.postgres = Some(pg),
            Err(e) => {
                eprintln!("bench: WARNING: PostgreSQL: {e:#}");
                report
                    .notes
                    .push(format!("objectos on PostgreSQL was not measured: {e:#}"));
            }
        }
    }

    report.elapsed = started.elapsed();
    report.finish(opts)?;
    print!("{}", report.table());
    if report.postgres.is_some() {
        print!("\nPostgreSQL:\n{}", report.postgres_table());
    }
    std::fs::write(&opts.results, report.markdown(opts))
        .with_context(|| format!("cannot write {}", opts.results.display()))?;
    eprintln!(
        "bench: written to {} in {:.0} s",
        opts.results.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The three HTTP workloads in alternating rounds, peak RSS, MCP, and the cost of
/// one more sharing rule and of ten teams.
fn main_comparison(
    opts: &Options,
    site: &mut objectos::Site,
    mut peer: Option<&mut pocketbase::Site>,
    dataset: &data::Dataset,
    report: &mut Report,
) -> Result<()> {
    let ours = site.credentials(dataset)?;
    let theirs = match peer.as_deref_mut() {
        Some(p) => Some(p.credentials(dataset)?),
        None => None,
    };
    for workload in [
        Workload::List,
        Workload::ListUnsorted,
        Workload::ListAll,
        Workload::Get,
        Workload::Create,
    ] {
        step(&format!("{}: {} round(s)", workload.title(), opts.rounds));
        let mut m = Measure::new(workload.title());
        m.target = workload.target();
        report.rss_per_workload &= proc::reset_peak_rss(site.pid()?);
        if let Some(p) = peer.as_deref() {
            report.rss_per_workload &= proc::reset_peak_rss(p.pid()?);
        }
        if !opts.warmup.is_zero() {
            wrk::run(opts, workload, &ours, opts.warmup)?;
            if let Some(t) = &theirs {
                wrk::run(opts, workload, t, opts.warmup)?;
            }
        }
        for round in 0..opts.rounds {
            for objectos_turn in turns(round) {
                if objectos_turn {
                    m.ours.push(wrk::run(opts, workload, &ours, opts.duration)?);
                } else if let Some(t) = &theirs {
                    m.theirs.push(wrk::run(opts, workload, t, opts.duration)?);
                }
            }
        }
        m.rss_ours = proc::peak_rss(site.pid()?);
        if let Some(p) = peer.as_deref() {
            m.rss_theirs = proc::peak_rss(p.pid()?);
        }
        report.http.push(m);
    }
    report.records_after_creates = Some((
        site.count()?,
        match peer.as_deref() {
            Some(p) => Some(p.count()?),
            None => None,
        },
    ));

    step("MCP: query_records through the stdio bridge, and proposals with their approval");
    report.mcp = Some(mcp::measure(opts, site, dataset)?);

    // The creates of (c) have grown the data since (a): the base is measured
    // again on the data the rule and team variants see, so that what changes
    // between them is the access work alone.
    step("cost of one more sharing rule");
    let mut variants = vec![variant(
        opts,
        "1 sharing rule, 1 team (the list of (a), again after the creates)",
        site,
        peer.as_deref_mut(),
        dataset,
    )];
    site.apply_variant(objectos::AppVariant::ExtraRule)?;
    if let Some(p) = peer.as_deref_mut() {
        p.set_extra_rule(true)?;
    }
    variants.push(variant(
        opts,
        "one more sharing rule (2 rules)",
        site,
        peer.as_deref_mut(),
        dataset,
    ));
    if let Some(p) = peer {
        p.set_extra_rule(false)?;
    }
    step("cost of a user in 10 teams");
    site.apply_variant(objectos::AppVariant::TenTeams)?;
    variants.push(variant(
        opts,
        "each user in 10 teams (10 rules, one per team)",
        site,
        None,
        dataset,
    ));
    site.apply_variant(objectos::AppVariant::Base)?;
    report.variants = variants;
    Ok(())
}

/// objectos on PostgreSQL with the main data set: each workload through one
/// instance, then through two instances of the same database at once (two wrk,
/// each with half the connections, one per instance).
fn postgres_comparison(
    opts: &Options,
    dataset: &data::Dataset,
    url: &str,
) -> Result<report::Postgres> {
    let mut site = objectos::Site::create_in(opts, dataset, "objectos-pg", Some(url))?;
    step(&format!("PostgreSQL: load records 0..{}", opts.records));
    let load_seconds = site.load(dataset, 0, opts.records)?;
    site.start()?;
    let one_target = site.credentials(dataset)?;
    let workloads = [Workload::List, Workload::Get, Workload::Create];
    let mut one = Vec::new();
    for workload in workloads {
        step(&format!("PostgreSQL, one instance: {}", workload.title()));
        if !opts.warmup.is_zero() {
            wrk::run(opts, workload, &one_target, opts.warmup)?;
        }
        one.push((
            workload.title().to_string(),
            wrk::run(opts, workload, &one_target, opts.duration)?,
        ));
    }
    let second = wrk::Target {
        base: site.start_second()?,
        ..one_target.clone()
    };
    let half = Options {
        connections: (opts.connections / 2).max(1),
        threads: (opts.threads / 2).max(1),
        ..opts.clone()
    };
    let mut two = Vec::new();
    for workload in workloads {
        step(&format!("PostgreSQL, two instances: {}", workload.title()));
        let both = |duration: Duration| -> Result<(wrk::Run, wrk::Run)> {
            std::thread::scope(|s| {
                let a = s.spawn(|| wrk::run(&half, workload, &one_target, duration));
                let b = s.spawn(|| wrk::run(&half, workload, &second, duration));
                let a = a
                    .join()
                    .map_err(|_| anyhow::anyhow!("wrk thread panicked"))?;
                let b = b
                    .join()
                    .map_err(|_| anyhow::anyhow!("wrk thread panicked"))?;
                Ok((a?, b?))
            })
        };
        if !opts.warmup.is_zero() {
            both(opts.warmup)?;
        }
        let (a, b) = both(opts.duration)?;
        two.push((workload.title().to_string(), a, b));
    }
    site.stop()?;
    Ok(report::Postgres {
        server: postgres_version(),
        load_seconds,
        one,
        two,
    })
}

/// The PostgreSQL server's version, as `psql` would say (best effort).
fn postgres_version() -> String {
    std::process::Command::new("psql")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "PostgreSQL".into())
}

/// Whose run comes first in `round` (objectos's is `true`): alternating, so
/// neither always runs on a warmer machine.
fn turns(round: usize) -> [bool; 2] {
    if round.is_multiple_of(2) {
        [true, false]
    } else {
        [false, true]
    }
}

/// The list workload: `rounds` runs per server after a warm-up of each, who goes
/// first alternating.
fn list_runs(
    opts: &Options,
    name: &str,
    site: &mut objectos::Site,
    mut peer: Option<&mut pocketbase::Site>,
    dataset: &data::Dataset,
    rounds: usize,
) -> Result<Measure> {
    let mut m = Measure::new(name);
    let ours = site.credentials(dataset)?;
    let theirs = match peer.as_deref_mut() {
        Some(p) => Some(p.credentials(dataset)?),
        None => None,
    };
    if !opts.warmup.is_zero() {
        wrk::run(opts, Workload::List, &ours, opts.warmup)?;
        if let Some(t) = &theirs {
            wrk::run(opts, Workload::List, t, opts.warmup)?;
        }
    }
    for round in 0..rounds.max(1) {
        for objectos_turn in turns(round) {
            if objectos_turn {
                m.ours
                    .push(wrk::run(opts, Workload::List, &ours, opts.duration)?);
            } else if let Some(t) = &theirs {
                m.theirs
                    .push(wrk::run(opts, Workload::List, t, opts.duration)?);
            }
        }
    }
    m.rss_ours = proc::peak_rss(site.pid()?);
    if let Some(p) = peer {
        m.rss_theirs = proc::peak_rss(p.pid()?);
    }
    Ok(m)
}

/// A variant that fails is reported as such; the rest of the run goes on.
fn variant(
    opts: &Options,
    name: &str,
    site: &mut objectos::Site,
    peer: Option<&mut pocketbase::Site>,
    dataset: &data::Dataset,
) -> Variant {
    match list_runs(opts, name, site, peer, dataset, opts.rounds) {
        Ok(m) => Variant::from_measure(name, &m),
        Err(e) => {
            eprintln!("bench: WARNING: {name}: {e:#}");
            Variant::failed(name, &format!("{e:#}"))
        }
    }
}

/// List latency, and peak RSS under that load, at one more data size.
fn growth_point(
    opts: &Options,
    site: &mut objectos::Site,
    peer: Option<&mut pocketbase::Site>,
    dataset: &data::Dataset,
    records: usize,
) -> Result<Growth> {
    let list = list_runs(opts, "list", site, peer, dataset, 1)?;
    Ok(Growth { records, list })
}

/// `dir/name`, created.
pub fn subdir(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(path)
}
