//! The benchmark harness cannot rot: `scripts/bench --smoke` runs end to end
//! (both servers, wrk, in process, verify, MCP) and prints its table. Its
//! figures are never checked; speed is for the benchmark to report.

use std::process::Command;

use crate::util::{have_interop, have_tool, repo};

const ROWS: &[&str] = &[
    "| (a) list: page of 20, filter, sorted, as a rep |",
    "| (b) get one record by id |",
    "| (c) create one record |",
    "| server peak RSS over (a)–(c) (VmHWM) |",
    "| (d) in process: authorised list vs raw SQL",
    "| (e) signature and digest check",
    "| (e) whole `objectos verify`",
    "| (f) MCP `query_records`",
    "| (f) MCP `delete_record` proposal + its approval",
];

#[test]
fn smoke_mode_runs_every_workload_and_prints_the_table() {
    // scripts/setup installs both; scripts/bench would install them too, but a
    // test does not run apt-get.
    if !have_tool("wrk") || !have_tool("minisign") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let results = tmp.path().join("RESULTS.md");
    let out = Command::new(repo().join("scripts/bench"))
        .arg("--smoke")
        .arg("--work")
        .arg(&work)
        .arg("--results")
        .arg(&results)
        .current_dir(repo())
        .env_remove("OBJECTOS_DATA_DIR")
        .env_remove("OBJECTOS_API_KEY")
        .output()
        .expect("run scripts/bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/bench --smoke failed ({}):\n{stdout}\n{stderr}",
        out.status
    );

    assert!(
        stdout.contains("| workload | objectos | peer or limit | ratio | p50 objectos / peer | p99 objectos / peer | peak RSS objectos / peer |"),
        "no table header:\n{stdout}"
    );
    for row in ROWS {
        assert!(stdout.contains(row), "no row `{row}`:\n{stdout}");
    }
    let written = std::fs::read_to_string(&results).expect("the results file");
    for part in [
        "# Benchmark results",
        "scripts/bench",
        "- commit: `",
        "- cores (nproc): ",
        "## Side by side",
        "## How cost grows",
        "## The cost of sharing rules and teams",
        "## Loading the data",
        "## PostgreSQL: one and two instances",
        "| workload | SQLite, one instance | PostgreSQL, one instance | PostgreSQL, two instances (sum) |",
    ] {
        assert!(
            written.contains(part),
            "no `{part}` in RESULTS.md:\n{written}"
        );
    }
    assert!(
        written.contains(ROWS[0]),
        "RESULTS.md lacks the table:\n{written}"
    );

    // The peer installs from PyPI; without it the smoke run still measures
    // objectos, which must not pass quietly where interop is required.
    let list_row = stdout.lines().find(|l| l.starts_with(ROWS[0])).unwrap();
    let problem = (!list_row.contains("PocketBase")).then(|| {
        let why = stderr
            .lines()
            .find(|l| l.contains("no peer"))
            .unwrap_or("scripts/bench ran without it")
            .to_string();
        format!("PocketBase was not measured: {why}")
    });
    have_interop("PocketBase (scripts/bench installs it from PyPI)", problem);
}
