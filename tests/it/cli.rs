//! The command line itself: help, exit codes, completions, man pages, schemas.

use crate::util::*;

#[test]
fn help_text_is_stable() {
    let env = Env::new();
    for args in [
        vec!["--help"],
        vec!["verify", "--help"],
        vec!["sign", "--help"],
        vec!["diff", "--help"],
    ] {
        let run = env.run(&args).ok();
        let name = format!(
            "help_{}",
            args.iter()
                .filter(|a| !a.starts_with('-'))
                .cloned()
                .collect::<Vec<_>>()
                .join("_")
        );
        let name = if name == "help_" {
            "help_main".to_string()
        } else {
            name
        };
        insta::assert_snapshot!(name, run.stdout);
    }
}

#[test]
fn usage_errors_exit_two() {
    let env = Env::new();
    env.run(&["frobnicate"]).code(2);
    env.run(&["verify"]).code(2);
    env.run(&["build", "--no-such-flag"]).code(2);
}

#[test]
fn completions_are_printed_for_each_shell() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish"] {
        let run = env.run(&["completions", shell]).ok();
        assert!(run.stdout.contains("objectos"), "{shell}");
    }
}

#[test]
fn committed_man_pages_are_current() {
    let env = Env::new();
    env.run(&["man", "-o", "man"]).ok();
    let mut fresh: Vec<String> = std::fs::read_dir(env.path("man"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    fresh.sort();
    let mut committed: Vec<String> = std::fs::read_dir(repo().join("man"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    committed.sort();
    assert_eq!(
        fresh, committed,
        "man/ is stale: run `cargo run -- man -o man`"
    );
    for name in fresh {
        assert_eq!(
            std::fs::read(env.path("man").join(&name)).unwrap(),
            std::fs::read(repo().join("man").join(&name)).unwrap(),
            "man/{name} is stale: run `cargo run -- man -o man`"
        );
    }
}

#[test]
fn committed_schemas_are_current() {
    let mut stale = Vec::new();
    for (name, schema) in objectos::schemas::all() {
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        let path = repo().join("schemas").join(&name);
        if std::env::var("OBJECTOS_UPDATE_SCHEMAS").as_deref() == Ok("1") {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "stale schemas {stale:?}: run `OBJECTOS_UPDATE_SCHEMAS=1 cargo test committed_schemas_are_current`"
    );
}

#[test]
fn every_json_document_names_its_format_and_has_a_schema() {
    let env = Env::new();
    env.signed_crm();
    let docs = [
        (
            "build",
            env.run(&[
                "--json",
                "build",
                fixture("crm").to_str().unwrap(),
                "-o",
                "b.json",
            ]),
        ),
        (
            "validate",
            env.run(&["--json", "validate", "artifact.json"]),
        ),
        (
            "verify",
            env.run(&["--json", "verify", "artifact.json", "-p", "signer.pub"]),
        ),
        ("inspect", env.run(&["--json", "inspect", "artifact.json"])),
        (
            "diff",
            env.run(&["--json", "diff", "artifact.json", "b.json"]),
        ),
        (
            "keygen",
            env.run(&["--json", "keygen", "-o", "k", "--unencrypted"]),
        ),
        (
            "sign",
            env.run(&["--json", "sign", "artifact.json", "-k", "k"]),
        ),
        ("completions", env.run(&["--json", "completions", "bash"])),
        ("man", env.run(&["--json", "man", "-o", "pages"])),
    ];
    for (name, run) in docs {
        let doc = run.ok().json();
        assert_eq!(doc["format"], format!("objectos.{name}/1"));
        assert!(
            repo()
                .join("schemas")
                .join(format!("objectos.{name}.schema.json"))
                .exists(),
            "{name}"
        );
    }
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let env = Env::new();
    let mut child = env
        .cmd()
        .args(["inspect", fixture("crm").to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run objectos with stdout a pipe that is closed after its first line (or at once,
/// with `lines: 0`); the exit code and stderr.
fn with_stdout_closed_after(env: &Env, args: &[&str], lines: usize) -> (Option<i32>, String) {
    use std::io::BufRead;
    let mut child = env
        .cmd()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::with_capacity(1, child.stdout.take().unwrap());
    for _ in 0..lines {
        reader.read_line(&mut String::new()).unwrap();
    }
    drop(reader);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn completions_and_man_end_quietly_on_a_closed_stdout() {
    let env = Env::new();
    // Each script is bigger than a pipe's buffer (64 KiB on Linux), so objectos is
    // still writing when the reader goes away after the first line, as with
    // `| head -1`.
    for shell in ["bash", "zsh", "fish"] {
        let script = env.run(&["completions", shell]).ok().stdout;
        assert!(script.len() > 64 * 1024, "{shell}: {} bytes", script.len());
    }
    for args in [
        vec!["completions", "zsh"],
        vec!["completions", "bash"],
        vec!["completions", "fish"],
        vec!["--json", "completions", "zsh"],
        vec!["--json", "man", "-o", "pages"],
    ] {
        for lines in [0, 1] {
            let (code, stderr) = with_stdout_closed_after(&env, &args, lines);
            assert_eq!(code, Some(0), "{args:?} after {lines} lines: {stderr}");
            assert!(
                !stderr.contains("panicked") && !stderr.contains("error"),
                "{args:?} after {lines} lines: {stderr}"
            );
        }
    }
}

#[test]
fn completions_with_json_is_one_document_holding_the_script() {
    let env = Env::new();
    let plain = env.run(&["completions", "fish"]).ok().stdout;
    let doc = env.run(&["--json", "completions", "fish"]).ok().json();
    assert_eq!(doc["format"], "objectos.completions/1");
    assert_eq!(doc["shell"], "fish");
    assert_eq!(doc["script"], plain.as_str());
}

#[test]
fn man_with_json_lists_every_file_written() {
    let env = Env::new();
    let doc = env.run(&["--json", "man", "-o", "pages"]).ok().json();
    assert_eq!(doc["format"], "objectos.man/1");
    let mut listed: Vec<String> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    listed.sort();
    let mut written: Vec<String> = std::fs::read_dir(env.path("pages"))
        .unwrap()
        .map(|e| format!("pages/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    written.sort();
    assert_eq!(listed, written);
    assert!(listed.contains(&"pages/objectos-apikey-create.1".to_string()));
}

/// A page's sections by heading, in roff as written.
fn sections(page: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in page.lines() {
        if let Some(heading) = line.strip_prefix(".SH ") {
            out.push((heading.trim_matches('"').to_string(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

#[test]
fn every_man_page_is_a_manual_page_not_just_the_help() {
    let env = Env::new();
    env.run(&["man", "-o", "pages"]).ok();
    let data_dir_pages = [
        "objectos.1",
        "objectos-user-add.1",
        "objectos-serve.1",
        "objectos-audit-verify.1",
    ];
    let mut count = 0;
    for entry in std::fs::read_dir(env.path("pages")).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let page = std::fs::read_to_string(&path).unwrap();
        let sections = sections(&page);
        let section = |name: &str| -> &str {
            sections
                .iter()
                .find(|(h, _)| h == name)
                .map(|(_, body)| body.as_str())
                .unwrap_or_else(|| panic!("{file} has no {name}:\n{page}"))
        };
        count += 1;

        // NAME is the page's name; SYNOPSIS the command as typed, full path.
        let stem = file.trim_end_matches(".1");
        assert!(
            section("NAME").starts_with(&stem.replace('-', "\\-")),
            "{file}"
        );
        let synopsis = section("SYNOPSIS");
        let typed = synopsis
            .strip_prefix("\\fB")
            .and_then(|s| s.split("\\fR").next())
            .unwrap_or_else(|| panic!("{file}: {synopsis}"));
        assert!(typed.starts_with("objectos"), "{file}: {synopsis}");
        assert_eq!(typed.replace(' ', "-").replace("\\-", "-"), stem, "{file}");

        let global = section("GLOBAL OPTIONS");
        for flag in [
            "\\-\\-data\\-dir",
            "\\-\\-json",
            "\\-q",
            "\\-v",
            "\\-\\-color",
        ] {
            assert!(global.contains(flag), "{file} lacks {flag}:\n{global}");
        }
        let exit = section("EXIT STATUS");
        for code in ["0", "1", "2", "3", "4"] {
            assert!(
                exit.contains(&format!(".TP\n\\fB{code}\\fR\n")),
                "{file}:\n{exit}"
            );
        }
        assert!(
            exit.contains("not found") && exit.contains("denied"),
            "{file}"
        );
        let environment = section("ENVIRONMENT");
        assert!(environment.contains("OBJECTOS_DATA_DIR"), "{file}");
        assert!(environment.contains("NO_COLOR"), "{file}");
        let examples = section("EXAMPLES");
        assert!(examples.contains("\\fBobjectos "), "{file}:\n{examples}");
        assert!(section("SEE ALSO").contains("(1)"), "{file}");

        // Only serve reads its variables (the root page names them all).
        let serves = file == "objectos-serve.1" || file == "objectos.1";
        assert_eq!(environment.contains("OBJECTOS_LOG"), serves, "{file}");
        assert_eq!(
            environment.contains("OBJECTOS_TRUSTED_PROXIES"),
            serves,
            "{file}"
        );

        // FILES: the data dir's on the pages of commands that open it, none on
        // the toolchain's that do not, the key files on keygen's and sign's.
        let has_files = sections.iter().any(|(h, _)| h == "FILES");
        if data_dir_pages.contains(&file.as_str()) {
            let files = section("FILES");
            for name in [
                "objectos.db",
                "instance.key",
                "instance\\-signing.key",
                "instance\\-signing.key.pub",
                "trust/",
                "audit\\-checkpoints.log",
            ] {
                assert!(files.contains(name), "{file} lacks {name}:\n{files}");
            }
            assert!(files.contains("0600"), "{file}");
        }
        if [
            "objectos-build.1",
            "objectos-validate.1",
            "objectos-completions.1",
        ]
        .contains(&file.as_str())
        {
            assert!(!has_files, "{file}");
        }
        if file == "objectos-keygen.1" || file == "objectos-sign.1" {
            let files = section("FILES");
            assert!(files.contains("KEY"), "{file}:\n{files}");
            assert!(!files.contains("instance.key"), "{file}:\n{files}");
        }
    }
    assert!(count > 60, "{count} pages");
}
