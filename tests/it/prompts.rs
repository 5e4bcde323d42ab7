//! The questions commands ask on a real terminal (a pseudo-terminal driven by
//! pexpect): a new password asked twice, refused at once when empty and when the
//! two differ; a secret setting typed at a hidden prompt.

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;

use crate::util::*;

/// The dialogue's transcript and the command's exit status.
fn dialogue(py: &PathBuf, env: &Env, steps: serde_json::Value, args: &[&str]) -> (String, i32) {
    let out = Command::new(py)
        .arg(repo().join("tests/interop/pty/dialogue.py"))
        .arg(steps.to_string())
        .arg(BIN)
        .args(args)
        .current_dir(env.dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.dir.path())
        .env("OBJECTOS_DATA_DIR", env.path("data"))
        .output()
        .unwrap();
    let transcript = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the dialogue went otherwise:\n{transcript}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = transcript
        .rsplit("[exit ")
        .next()
        .and_then(|t| t.trim().trim_end_matches(']').parse().ok())
        .expect("an exit status");
    (transcript, code)
}

#[test]
fn a_new_password_is_asked_twice_and_refused_at_once_when_empty_or_different() {
    let Some(py) = venv_python("pexpect") else {
        return;
    };
    let env = Env::new();
    crate::store::ready(&env);
    // Empty: said at once, with no second question.
    let (seen, code) = dialogue(
        &py,
        &env,
        json!([
            ["expect", "Password"],
            ["send", ""],
            ["expect", "the password is empty"]
        ]),
        &["user", "add", "empty@example.com"],
    );
    assert_eq!(code, 1, "{seen}");
    assert!(!seen.contains("Repeat it"), "{seen}");
    // Two different answers: refused, nothing made.
    let (seen, code) = dialogue(
        &py,
        &env,
        json!([
            ["expect", "Password"],
            ["send", "correct horse battery staple"],
            ["expect", "Repeat it"],
            ["send", "correct horse battery stapler"],
            ["expect", "the passwords differ"]
        ]),
        &["user", "add", "differ@example.com"],
    );
    assert_eq!(code, 1, "{seen}");
    // The same twice: the user is made, and what was typed never showed.
    let (seen, code) = dialogue(
        &py,
        &env,
        json!([
            ["expect", "Password"],
            ["send", "correct horse battery staple"],
            ["expect", "Repeat it"],
            ["send", "correct horse battery staple"]
        ]),
        &["user", "add", "same@example.com"],
    );
    assert_eq!(code, 0, "{seen}");
    assert!(
        !seen.contains("correct horse"),
        "the password was echoed: {seen}"
    );
    let users = env.run(&["--json", "user", "list"]).ok().stdout;
    assert!(users.contains("same@example.com"), "{users}");
    assert!(!users.contains("empty@example.com"), "{users}");
    assert!(!users.contains("differ@example.com"), "{users}");
}

#[test]
fn a_secret_setting_typed_at_the_prompt_is_hidden_and_stored_encrypted() {
    let Some(py) = venv_python("pexpect") else {
        return;
    };
    let env = Env::new();
    crate::store::ready(&env);
    let secret = "sk-canary-typed-at-the-prompt";
    let (seen, code) = dialogue(
        &py,
        &env,
        json!([["expect", "ai.api_key"], ["send", secret]]),
        &["settings", "set", "--secret", "ai.api_key"],
    );
    assert_eq!(code, 0, "{seen}");
    assert!(!seen.contains(secret), "the secret was echoed: {seen}");
    // Stored: reading it back (an audited act) gives what was typed.
    let got = env.run(&["settings", "get", "ai.api_key"]).ok().stdout;
    assert_eq!(got.trim(), secret);
    // Never in clear in the database or its write-ahead log.
    for file in ["objectos.db", "objectos.db-wal"] {
        let bytes = std::fs::read(env.path("data").join(file)).unwrap_or_default();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the secret is in clear in {file}"
        );
    }
}
