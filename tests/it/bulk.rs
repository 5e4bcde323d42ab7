//! Import and export at the edges: broken CSV, line numbers, what goes where
//! (`-q`, `--json`), progress on a terminal, closed pipes and `-o -`.

use std::io::BufRead;
use std::process::Stdio;

use serde_json::{Value, json};

use crate::store::ready;
use crate::util::*;

const REP: &str = "rep.a@example.com";

fn world(env: &Env) {
    ready(env);
    for (email, set) in [(REP, "sales_rep"), ("manager@example.com", "sales_manager")] {
        env.run(&["user", "add", email, "--no-password"]).ok();
        env.run(&["permset", "assign", set, email]).ok();
    }
}

/// The names of the opportunities the manager can see, sorted.
fn names(env: &Env) -> Vec<String> {
    let mut names: Vec<String> = env
        .run(&["export", "crm_opportunity", "--as", "manager@example.com"])
        .ok()
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    names.sort();
    names
}

fn import(env: &Env, file: &str, extra: &[&str]) -> Run {
    let mut args = vec!["import", "crm_opportunity", file, "--as", REP];
    args.extend_from_slice(extra);
    env.run(&args)
}

fn skipped_lines(doc: &Value) -> Vec<i64> {
    doc["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["line"].as_i64().unwrap())
        .collect()
}

#[test]
fn a_broken_csv_row_never_takes_good_rows_with_it() {
    let env = Env::new();
    world(&env);
    // A quote problem confined to its line: that line is skipped, every other
    // row is imported, a quoted field over two lines included.
    env.write(
        "confined.csv",
        "name,stage\n\
         good 1,proposal\n\
         \"Acme\" Inc,proposal\n\
         good 2,proposal\n\
         \"two\nlines\",proposal\n\
         \"good, 3\",proposal\n",
    );
    let run = import(&env, "confined.csv", &["--skip-invalid", "--batch", "1"]).ok();
    assert!(
        run.stderr.contains("line 3: skipped")
            && run
                .stderr
                .contains("read 5 rows: imported 4 `crm_opportunity` records"),
        "{}",
        run.stderr
    );
    let run = import(&env, "confined.csv", &["--skip-invalid", "--json"]).ok();
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    let doc = run.json();
    assert_eq!(doc["read"], 5, "{doc}");
    assert_eq!(doc["imported"], 4, "{doc}");
    assert_eq!(skipped_lines(&doc), vec![3]);
    assert!(
        doc["skipped"][0]["message"]
            .as_str()
            .unwrap()
            .contains("closing quote"),
        "{doc}"
    );
    let mut expected: Vec<String> = ["good 1", "good 2", "two\nlines", "good, 3"]
        .iter()
        .flat_map(|n| [n.to_string(), n.to_string()])
        .collect();
    expected.sort();
    assert_eq!(names(&env), expected, "both imports, all good rows");

    // An unterminated quote: the lines after it could be rows or one field, so
    // the file is refused whole, under --skip-invalid too, with nothing written
    // (even with a batch per row), from a file or from a pipe.
    let before = names(&env);
    for (file, text) in [
        (
            "open.csv",
            "name,stage\ngood 4,proposal\n\"open quote,proposal\ngood 5,proposal\ngood 6,proposal\n",
        ),
        (
            "closed-later.csv",
            "name,stage\ngood 4,proposal\n\"open quote,proposal\ngood 5,proposal\n\"good, 6\",proposal\n",
        ),
    ] {
        env.write(file, text);
        let run = import(&env, file, &["--skip-invalid", "--batch", "1"]).code(1);
        assert!(
            run.stderr.contains("line 3:") && run.stderr.contains("nothing was imported"),
            "{file}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        let run = env
            .run_in(
                &[
                    "import",
                    "crm_opportunity",
                    "-",
                    "--format",
                    "csv",
                    "--as",
                    REP,
                    "--skip-invalid",
                    "--batch",
                    "1",
                ],
                text,
            )
            .code(1);
        assert!(run.stderr.contains("line 3:"), "{file}: {}", run.stderr);
        assert_eq!(names(&env), before, "{file}: nothing written");
    }
    // The refusal is audited.
    let audit = env.run(&["--json", "audit", "tail", "-n", "3"]).ok().json();
    assert!(
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "import" && e["outcome"] == "error"),
        "{audit}"
    );
}

#[test]
fn line_numbers_are_right_with_lf_and_crlf() {
    let env = Env::new();
    world(&env);
    for end in ["\n", "\r\n"] {
        // The bad row is on line 5 of each file: a blank line and (in CSV) a
        // quoted field over two lines come before it.
        let csv = [
            "name,stage",
            "\"two",
            "lines\",proposal",
            "",
            "bad,won",
            "good,proposal",
            "",
        ]
        .join(end);
        let jsonl = [
            r#"{"name": "one", "stage": "proposal"}"#,
            r#"{"name": "two", "stage": "proposal"}"#,
            "",
            r#"{"name": "three", "stage": "proposal"}"#,
            r#"{"name": "bad", "stage": "won"}"#,
            r#"{"name": "good", "stage": "proposal"}"#,
            "",
        ]
        .join(end);
        for (file, text) in [("rows.csv", csv), ("rows.jsonl", jsonl)] {
            env.write(file, &text);
            let run = import(&env, file, &[]).code(1);
            assert!(
                run.stderr.contains("line 5:"),
                "{file} {end:?}: {}",
                run.stderr
            );
            let doc = import(&env, file, &["--skip-invalid", "--json"])
                .ok()
                .json();
            assert_eq!(skipped_lines(&doc), vec![5], "{file} {end:?}: {doc}");
            // A row the CSV scanner refuses is numbered the same way.
            let malformed = text
                .replace("bad,won", "bad,won,extra")
                .replace(r#"{"name": "bad", "stage": "won"}"#, r#"{"name": "bad", "#);
            env.write(file, &malformed);
            let doc = import(&env, file, &["--skip-invalid", "--json"])
                .ok()
                .json();
            assert_eq!(skipped_lines(&doc), vec![5], "{file} {end:?}: {doc}");
        }
    }
    // A UTF-8 byte order mark (spreadsheets write one) is not part of the first name.
    env.write("bom.csv", "\u{feff}name,stage\r\nbom,proposal\r\n");
    let doc = import(&env, "bom.csv", &["--json"]).ok().json();
    assert_eq!(doc["imported"], 1, "{doc}");
    env.write(
        "bom.jsonl",
        "\u{feff}{\"name\": \"bom\", \"stage\": \"proposal\"}\n",
    );
    let doc = import(&env, "bom.jsonl", &["--json"]).ok().json();
    assert_eq!(doc["imported"], 1, "{doc}");
}

#[test]
fn the_summary_is_a_status_line_and_json_is_the_data() {
    let env = Env::new();
    world(&env);
    env.write(
        "mixed.jsonl",
        "{\"name\": \"a\", \"stage\": \"proposal\"}\n{\"name\": \"b\", \"stage\": \"won\"}\n{\"name\": \"c\", \"stage\": \"proposal\"}\n",
    );
    let run = import(&env, "mixed.jsonl", &["--skip-invalid"]).ok();
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr.contains("warning: line 2: skipped")
            && run.stderr.contains(
                "read 3 rows: imported 2 `crm_opportunity` records as rep.a@example.com, skipped 1"
            ),
        "{}",
        run.stderr
    );
    // No progress drawing when stderr is not a terminal.
    assert!(
        !run.stderr.contains('\r') && !run.stderr.contains('\x1b'),
        "{:?}",
        run.stderr
    );
    // -q silences the summary, not the warnings of skipped rows.
    let run = env
        .run(&[
            "-q",
            "import",
            "crm_opportunity",
            "mixed.jsonl",
            "--as",
            REP,
            "--skip-invalid",
        ])
        .ok();
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert_eq!(
        run.stderr.trim(),
        "warning: line 2: skipped: `stage` must be one of: prospecting, proposal, negotiation, closed_won, closed_lost (invalid_value)"
    );
    env.write(
        "clean.jsonl",
        "{\"name\": \"d\", \"stage\": \"proposal\"}\n",
    );
    let run = env
        .run(&[
            "-q",
            "import",
            "crm_opportunity",
            "clean.jsonl",
            "--as",
            REP,
        ])
        .ok();
    assert!(
        run.stdout.is_empty() && run.stderr.is_empty(),
        "{}{}",
        run.stdout,
        run.stderr
    );
    // --json: one document on stdout, -q or not.
    let run = env
        .run(&[
            "--json",
            "-q",
            "import",
            "crm_opportunity",
            "mixed.jsonl",
            "--as",
            REP,
            "--skip-invalid",
        ])
        .ok();
    let doc = run.json();
    assert_eq!(doc["format"], "objectos.import/1");
    assert_eq!(
        (&doc["read"], &doc["imported"]),
        (&json!(3), &json!(2)),
        "{doc}"
    );
    assert_eq!(skipped_lines(&doc), vec![2]);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

/// Run a shell command line on a pseudo-terminal (`script`), so stdout and
/// stderr are a terminal; returns what the terminal received.
fn on_a_terminal(env: &Env, command: &str) -> Run {
    std::process::Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .current_dir(env.dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.dir.path())
        .env("TERM", "xterm")
        .env("NO_COLOR", "1")
        .env("OBJECTOS_DATA_DIR", env.path("data"))
        .stdin(Stdio::null())
        .output()
        .expect("run script")
        .into()
}

#[test]
fn progress_on_a_terminal_is_a_bar_over_a_file_and_a_spinner_over_a_pipe() {
    if !have_tool("script") {
        return;
    }
    let env = Env::new();
    world(&env);
    let rows: String = (0..3000)
        .map(|i| json!({"name": format!("Deal {i}"), "stage": "proposal"}).to_string() + "\n")
        .collect();
    env.write("deals.jsonl", &rows);
    let import = format!("{BIN} import crm_opportunity deals.jsonl --as {REP} --batch 200");
    // A regular file: a bar of bytes read out of the file's size.
    let run = on_a_terminal(&env, &import);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let size = indicatif_bytes(rows.len() as u64);
    assert!(
        run.stdout.contains("importing") && run.stdout.contains(&format!("/{size}")),
        "no bar over {size}: {:?}",
        run.stdout
    );
    assert!(run.stdout.contains("read 3000 rows"), "{:?}", run.stdout);
    // A pipe: a spinner with counts, no total.
    let run = on_a_terminal(
        &env,
        &format!("cat deals.jsonl | {BIN} import crm_opportunity - --as {REP} --batch 200"),
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout.contains("rows read") && !run.stdout.contains(&format!("/{size}")),
        "{:?}",
        run.stdout
    );
    // -q: nothing at all.
    let run = on_a_terminal(
        &env,
        &format!("{BIN} -q import crm_opportunity deals.jsonl --as {REP}"),
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.trim().is_empty(), "{:?}", run.stdout);
}

/// A byte count as indicatif's `{total_bytes}` prints it (binary units, two decimals).
fn indicatif_bytes(n: u64) -> String {
    if n < 1024 {
        return format!("{n} B");
    }
    let units = ["KiB", "MiB", "GiB"];
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", units[unit])
}

#[test]
fn an_export_whose_reader_stops_early_ends_quietly() {
    let env = Env::new();
    world(&env);
    // Well over a pipe's buffer of export.
    let rows: String = (0..1500)
        .map(|i| {
            json!({"name": format!("Deal {i} {}", "x".repeat(100)), "stage": "proposal"})
                .to_string()
                + "\n"
        })
        .collect();
    env.write("deals.jsonl", &rows);
    import(&env, "deals.jsonl", &[]).ok();
    let mut child = env
        .cmd()
        .args(["export", "crm_opportunity", "--as", REP])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert!(first.contains("Deal "), "{first}");
    drop(reader);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    // Audited as an export that stopped when its reader did.
    let audit = env.run(&["--json", "audit", "tail", "-n", "1"]).ok().json();
    let event = &audit["events"][0];
    assert_eq!(event["action"], "export", "{event}");
    assert_eq!(event["outcome"], "success", "{event}");
    assert_eq!(event["changes"]["stdout_closed"], true, "{event}");
}

#[test]
fn export_dash_is_stdout() {
    let env = Env::new();
    world(&env);
    env.write(
        "deals.jsonl",
        "{\"name\": \"one\", \"stage\": \"proposal\"}\n{\"name\": \"two\", \"stage\": \"proposal\"}\n",
    );
    import(&env, "deals.jsonl", &[]).ok();
    for json in [false, true] {
        let mut args = vec!["export", "crm_opportunity", "--as", REP, "-o", "-"];
        if json {
            args.insert(0, "--json");
        }
        let run = env.run(&args).ok();
        let records: Vec<Value> = run
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records.len(), 2, "{}", run.stdout);
        assert!(
            records
                .iter()
                .all(|r| r["id"].is_string() && r.get("format").is_none())
        );
        assert!(run.stderr.contains("exported 2"), "{}", run.stderr);
        assert!(!env.path("-").exists(), "a file named `-` was written");
    }
}
