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
