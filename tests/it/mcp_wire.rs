//! What an agent host may write to `objectos mcp` that is not a good message: a
//! broken line and a line past the size limit each get the JSON-RPC error the
//! specification prescribes (-32700, -32600, with a null id), and the session
//! goes on: the requests after them are answered. A tool call cancelled while
//! it runs is never answered with a result, in either era of the protocol.

use std::io::Write;
use std::process::Stdio;

use serde_json::{Value, json};

use crate::util::*;

#[test]
fn the_bridge_answers_broken_and_oversized_lines_and_serves_on() {
    let env = Env::new();
    let agent = crate::hostile::rep_agent(&env);
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

/// The bridge, running, with its stdout read line by line on a thread.
struct Bridge {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<(std::time::Instant, Value)>,
}

impl Bridge {
    fn start(env: &Env, key: &str, server: &Server) -> Bridge {
        let mut child = env
            .cmd()
            .env("OBJECTOS_API_KEY", key)
            .args(["mcp", "--server", &server.base])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Ok(v) = serde_json::from_str(&line) {
                    let _ = tx.send((std::time::Instant::now(), v));
                }
            }
        });
        Bridge {
            child,
            stdin,
            lines,
        }
    }

    fn send(&mut self, message: Value) {
        self.stdin
            .write_all(format!("{message}\n").as_bytes())
            .unwrap();
        self.stdin.flush().unwrap();
    }

    /// Every message that arrives within `within`, with when it arrived.
    fn collect_timed(&self, within: std::time::Duration) -> Vec<(std::time::Instant, Value)> {
        let deadline = std::time::Instant::now() + within;
        let mut out = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(v) => out.push(v),
                Err(_) => break,
            }
        }
        out
    }

    /// What arrives until the answer to `id` (or `within` has passed).
    fn until(&self, id: i64, within: std::time::Duration) -> Vec<Value> {
        let deadline = std::time::Instant::now() + within;
        let mut out = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok((_, v)) => {
                    let done = v["id"] == json!(id);
                    out.push(v);
                    if done {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        out
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Cancellation, in both eras: a tool call still running when its host cancels
/// it is never answered with a result, and the session goes on (a request sent
/// after the cancellation is answered at once, not after the call).
#[test]
fn a_cancelled_tool_call_gets_no_result_and_the_session_goes_on() {
    let env = Env::new();
    let agent = crate::hostile::rep_agent(&env);
    // Every tool call takes 3 s before it runs (a debug-build hook).
    let server = Server::start_env(&env, &[], &[("OBJECTOS_TEST_TOOL_DELAY_MS", "3000")]);
    let call = |id: i64, meta: Option<Value>| {
        let mut params =
            json!({"name": "query_records", "arguments": {"objectName": "crm_account"}});
        if let Some(meta) = meta {
            params["_meta"] = meta;
        }
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
    };
    let cancel = |id: i64, meta: Option<Value>| {
        let mut params = json!({"requestId": id, "reason": "the user changed their mind"});
        if let Some(meta) = meta {
            params["_meta"] = meta;
        }
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params})
    };
    let modern = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "cancelling-host", "version": "1"},
    });
    for era in ["2025-11-25", "2026-07-28"] {
        let mut bridge = Bridge::start(&env, &agent, &server);
        let meta = (era == "2026-07-28").then(|| modern.clone());
        if meta.is_none() {
            bridge.send(
                json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": era, "capabilities": {},
                "clientInfo": {"name": "cancelling-host", "version": "1"}}}),
            );
            bridge.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
            let answers = bridge.until(1, std::time::Duration::from_secs(10));
            assert!(
                answers.iter().any(|a| a["id"] == json!(1)),
                "{era}: {answers:?}"
            );
        }
        // Positive control: a call left alone is answered, after its delay.
        bridge.send(call(10, meta.clone()));
        let answers = bridge.until(10, std::time::Duration::from_secs(10));
        let answered = answers.iter().find(|a| a["id"] == json!(10));
        assert!(
            answered.is_some_and(|a| a["result"]["isError"] == json!(false)),
            "{era}: {answers:?}"
        );
        // The same call, cancelled while it runs.
        bridge.send(call(20, meta.clone()));
        std::thread::sleep(std::time::Duration::from_millis(300));
        bridge.send(cancel(20, meta.clone()));
        // (`tools/list` rather than `ping`: the stateless revision has no ping.)
        let mut ping = json!({"jsonrpc": "2.0", "id": 21, "method": "tools/list"});
        if let Some(meta) = &meta {
            ping["params"] = json!({"_meta": meta});
        }
        let sent = std::time::Instant::now();
        bridge.send(ping);
        // Long enough for the cancelled call's delay to pass, so a result it
        // still sent would be seen.
        let timed = bridge.collect_timed(std::time::Duration::from_millis(4000));
        let answers: Vec<Value> = timed.iter().map(|(_, v)| v.clone()).collect();
        let (at, pong) = timed
            .iter()
            .find(|(_, a)| a["id"] == json!(21))
            .unwrap_or_else(|| panic!("{era}: no answer to the ping: {answers:?}"));
        assert!(pong.get("error").is_none(), "{era}: {answers:?}");
        assert!(
            at.duration_since(sent) < std::time::Duration::from_millis(2000),
            "{era}: the ping waited {:?}, as long as the cancelled call",
            at.duration_since(sent)
        );
        assert!(
            !answers
                .iter()
                .any(|a| a["id"] == json!(20) && a.get("result").is_some()),
            "{era}: the cancelled call was answered with a result: {answers:?}"
        );
    }
}
