//! What an agent host may write to `objectos mcp` that is not a good message: a
//! broken line and a line past the size limit each get the JSON-RPC error the
//! specification prescribes (-32700, -32600, with a null id), and the session
//! goes on: the requests after them are answered.

use std::io::Write;
use std::process::Stdio;

use serde_json::{Value, json};

use crate::util::*;

#[test]
fn the_bridge_answers_broken_and_oversized_lines_and_serves_on() {
    let env = Env::new();
    crate::store::ready(&env);
    env.run(&["permset", "assign", "sales_rep", "admin@example.com"])
        .ok();
    let agent = env
        .run(&["apikey", "create", "admin@example.com", "--agent"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let server = Server::start(&env);
    let oversized = format!(
        r#"{{"jsonrpc":"2.0","id":9,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(objectos::limits::MAX_BODY_BYTES)
    );
    let session = [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"sloppy-host","version":"1"}}}"#.to_string(),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_string(),
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list""#.to_string(),
        oversized,
        "\u{feff}not json at all \u{0}".to_string(),
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"query_records","arguments":{"objectName":"crm_account"}}}"#.to_string(),
    ]
    .join("\n");
    let mut child = env
        .cmd()
        .env("OBJECTOS_API_KEY", &agent)
        .args(["mcp", "--server", &server.base])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(format!("{session}\n").as_bytes());
    });
    let out: Run = child.wait_with_output().unwrap().into();
    writer.join().unwrap();
    let out = out.ok();
    // Only JSON-RPC on stdout, one message a line.
    let answers: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let errors: Vec<i64> = answers
        .iter()
        .filter(|a| a["id"].is_null())
        .filter_map(|a| a["error"]["code"].as_i64())
        .collect();
    // The unterminated object and the text that is not JSON: parse errors; the
    // oversized line: an invalid request. None of them is answered as its id.
    assert_eq!(
        errors.iter().filter(|c| **c == -32700).count(),
        2,
        "{}",
        out.stdout
    );
    assert_eq!(
        errors.iter().filter(|c| **c == -32600).count(),
        1,
        "{}",
        out.stdout
    );
    assert!(
        !answers
            .iter()
            .any(|a| a["id"] == json!(9) || a["id"] == json!(2)),
        "{}",
        out.stdout
    );
    // The session went on around them.
    for id in [1, 3] {
        let answer = answers
            .iter()
            .find(|a| a["id"] == json!(id))
            .unwrap_or_else(|| panic!("no answer to {id}:\n{}", out.stdout));
        assert!(answer.get("error").is_none(), "{answer}");
    }
    let call = answers.iter().find(|a| a["id"] == json!(3)).unwrap();
    assert_eq!(call["result"]["isError"], json!(false), "{call}");
}
