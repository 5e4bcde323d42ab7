//! A corpus of hostile requests — invalid UTF-8, huge numbers, NaN, duplicate
//! JSON keys, unicode confusables in names, SQL fragments in every string
//! position, path tricks in object names — each answered with a clear 4xx (an
//! error code and message), never a 5xx or a dropped connection, nothing
//! written, and the server serving on.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::*;

const SQL: &[&str] = &[
    "'; DROP TABLE rec_crm_account; --",
    "\" OR 1=1 --",
    "name) UNION SELECT password_hash FROM objectos_users --",
    "1; DELETE FROM objectos_audit",
    "amount`,(SELECT 1)",
];

/// A raw request (the bytes as given, nothing re-encoded): (status, body).
fn raw(server: &Server, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut request = head.replace('\n', "\r\n").into_bytes();
    request.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    request.extend_from_slice(body);
    stream.write_all(&request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// Every refusal is a 4xx with an error code and a message.
#[track_caller]
fn refused(what: &str, status: u16, body: &str) {
    assert!(
        (400..500).contains(&status),
        "{what}: answered {status}, not a 4xx: {body}"
    );
    let json: Value = serde_json::from_str(body.trim())
        .unwrap_or_else(|_| panic!("{what}: the {status} body is not JSON: {body}"));
    assert!(
        json["error"]["code"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
            && json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
        "{what}: {status} without an error code and message: {body}"
    );
}

#[test]
fn hostile_requests_get_a_clear_4xx_and_the_server_serves_on() {
    let env = Env::new();
    let key = crate::store::ready(&env);
    env.run(&["permset", "assign", "sales_rep", "admin@example.com"])
        .ok();
    let server = Server::start(&env);
    let (status, created, raw_body) = server.call(
        "POST",
        "/api/v1/data/crm_account",
        Some(&key),
        Some(json!({"name": "Acme", "employees": 10})),
    );
    assert_eq!(status, 201, "{raw_body}");
    let id = created["id"].as_str().unwrap().to_string();
    let auth = format!("Authorization: Bearer {key}\nContent-Type: application/json");
    let post = |path: &str, body: &[u8]| {
        raw(
            &server,
            &format!("POST {path} HTTP/1.1\nHost: x\n{auth}\n"),
            body,
        )
    };
    let get = |path: &str| {
        raw(
            &server,
            &format!("GET {path} HTTP/1.1\nHost: x\n{auth}\n"),
            b"",
        )
    };
    let rows_before = sql_query(&env.db(), "SELECT count(*) FROM rec_crm_account")[0][0].clone();

    // Bodies that are not what they claim.
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("invalid UTF-8", b"{\"name\": \"\xff\xfe\"}".to_vec()),
        ("a lone surrogate", br#"{"name": "\ud800"}"#.to_vec()),
        (
            "a number beyond f64",
            br#"{"name": "n", "employees": 1e400}"#.to_vec(),
        ),
        (
            "a 400-digit integer",
            format!("{{\"name\": \"n\", \"employees\": {}}}", "9".repeat(400)).into_bytes(),
        ),
        ("NaN", br#"{"name": "n", "employees": NaN}"#.to_vec()),
        (
            "Infinity",
            br#"{"name": "n", "employees": -Infinity}"#.to_vec(),
        ),
        (
            "a duplicate key",
            br#"{"name": "first", "name": "second"}"#.to_vec(),
        ),
        (
            "a duplicate key after others",
            br#"{"name": "n", "employees": 1, "employees": 2}"#.to_vec(),
        ),
        ("not an object", br#"["name", "n"]"#.to_vec()),
        ("truncated", br#"{"name": "n""#.to_vec()),
        ("a NUL byte", b"{\"name\": \"n\"}\x00".to_vec()),
        (
            "a string for a number",
            br#"{"name": "n", "employees": "1e3; DROP TABLE x"}"#.to_vec(),
        ),
        (
            "an unknown field",
            r#"{"name": "n", "nаme": "confusable"}"#.as_bytes().to_vec(),
        ),
    ];
    for (what, body) in &bodies {
        let (status, answer) = post("/api/v1/data/crm_account", body);
        refused(&format!("create with {what}"), status, &answer);
        let (status, answer) = raw(
            &server,
            &format!("PATCH /api/v1/data/crm_account/{id} HTTP/1.1\nHost: x\n{auth}\n"),
            body,
        );
        refused(&format!("update with {what}"), status, &answer);
        let mut query = b"{\"object\": \"crm_account\", \"where\": ".to_vec();
        query.extend_from_slice(body);
        query.push(b'}');
        let (status, answer) = post("/api/v1/query", &query);
        refused(&format!("a filter with {what}"), status, &answer);
    }
    let (status, answer) = post(
        "/api/v1/query",
        br#"{"object": "crm_account", "object": "crm_opportunity"}"#,
    );
    refused("a query naming its object twice", status, &answer);

    // Names: unknown objects and fields, however they are spelt.
    let names = [
        "crm_aссount",         // Cyrillic с
        "crm_account\u{200b}", // zero-width space
        "ｃｒｍ_account",      // full-width
        "CRM_ACCOUNT",
        "crm_account;DROP TABLE rec_crm_account",
        "rec_crm_account",
        "objectos_users",
        "sqlite_master",
        "..",
        "crm_account/..",
        "%2e%2e%2fobjectos_users",
        "crm_account%00",
        "crm_account%2F..%2Fobjectos_users",
        "%FF%FE",
        "%C0%AE%C0%AE",
        &"a".repeat(5000),
    ];
    for name in names {
        let encoded = url_path(name);
        let (status, answer) = get(&format!("/api/v1/data/{encoded}"));
        refused(&format!("list of `{name}`"), status, &answer);
        let (status, answer) = post(&format!("/api/v1/data/{encoded}"), br#"{"name": "n"}"#);
        refused(&format!("create in `{name}`"), status, &answer);
        let (status, answer) = get(&format!("/api/v1/data/crm_account/{encoded}"));
        refused(&format!("get of record `{name}`"), status, &answer);
        let body = json!({"object": name, "where": {}}).to_string();
        let (status, answer) = post("/api/v1/query", body.as_bytes());
        refused(&format!("query of `{name}`"), status, &answer);
    }

    // SQL in every string position of a query that names identifiers: refused.
    for fragment in SQL {
        let positions = [
            json!({"object": fragment}),
            json!({"object": "crm_account", "fields": [fragment]}),
            json!({"object": "crm_account", "where": {*fragment: 1}}),
            json!({"object": "crm_account", "where": {"name": {*fragment: 1}}}),
            json!({"object": "crm_account", "orderBy": [{"field": fragment, "order": "asc"}]}),
            json!({"object": "crm_account", "orderBy": [{"field": "name", "order": fragment}]}),
            json!({"object": "crm_account", "groupBy": [fragment], "aggregations": [{"function": "count", "alias": "n"}]}),
            json!({"object": "crm_account", "aggregations": [{"function": fragment, "field": "employees", "alias": "n"}]}),
            json!({"object": "crm_account", "aggregations": [{"function": "sum", "field": fragment, "alias": "n"}]}),
        ];
        for body in positions {
            let (status, answer) = post("/api/v1/query", body.to_string().as_bytes());
            refused(&format!("query {body}"), status, &answer);
        }
        let q = url_query(fragment);
        for path in [
            format!("/api/v1/data/crm_account?fields={q}"),
            format!("/api/v1/data/crm_account?sort={q}"),
            format!("/api/v1/data/crm_account?{q}=1"),
            format!("/api/v1/data/crm_account?filter={q}"),
            format!("/api/v1/data/crm_account?limit={q}"),
            format!("/api/v1/data/crm_account?%24filter={q}"),
        ] {
            let (status, answer) = get(&path);
            refused(&format!("GET {path}"), status, &answer);
        }
        // As values, the fragments are only text: matched (nothing), or stored as is.
        let (status, answer) = post(
            "/api/v1/query",
            json!({"object": "crm_account", "where": {"name": {"$in": [fragment]}}})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            serde_json::from_str::<Value>(&answer).unwrap()["records"],
            json!([])
        );
        // An alias only labels a column of the answer; it never enters the SQL.
        let (status, answer) = post(
            "/api/v1/query",
            json!({"object": "crm_account", "aggregations": [{"function": "count", "alias": fragment}]})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(status, 200, "{answer}");
        let rows = serde_json::from_str::<Value>(&answer).unwrap()["records"].clone();
        assert!(rows[0][*fragment].is_number(), "{answer}");
        let (status, answer) = get(&format!("/api/v1/data/crm_account?search={q}"));
        assert_eq!(status, 200, "{answer}");
        let (status, answer) = post(
            "/api/v1/data/crm_account",
            json!({"name": fragment}).to_string().as_bytes(),
        );
        assert_eq!(status, 201, "{answer}");
        let stored: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(stored["record"]["name"], json!(fragment));
    }

    // Sign-in with confusable and hostile emails: refused like any wrong one.
    for email in [
        "аdmin@example.com",
        "admin@example.com' OR '1'='1",
        "admin@example.com\u{0}",
    ] {
        let (status, answer) = post(
            "/api/v1/auth/login",
            json!({"email": email, "password": crate::store::PASSWORD})
                .to_string()
                .as_bytes(),
        );
        refused(&format!("sign-in as {email:?}"), status, &answer);
    }

    // An MCP message that says two things at once is refused, not read as one.
    let agent = env
        .run(&["apikey", "create", "admin@example.com", "--agent"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let (status, answer) = raw(
        &server,
        &format!(
            "POST /api/v1/mcp HTTP/1.1\nHost: x\nAuthorization: Bearer {agent}\nContent-Type: application/json\nAccept: application/json, text/event-stream\n"
        ),
        br#"{"jsonrpc": "2.0", "id": 1, "method": "initialize", "method": "tools/call", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}}"#,
    );
    assert_eq!(status, 400, "{answer}");
    let answer: Value = serde_json::from_str(answer.trim()).unwrap();
    assert_eq!(answer["error"]["code"], json!(-32600), "{answer}");

    // Nothing but the records made on purpose was written, and all is well.
    let rows_after = sql_query(&env.db(), "SELECT count(*) FROM rec_crm_account")[0][0].clone();
    assert_eq!(
        rows_after.parse::<usize>().unwrap(),
        rows_before.parse::<usize>().unwrap() + SQL.len(),
        "a refused request wrote a record"
    );
    let (status, _, raw_body) = server.get(&format!("/api/v1/data/crm_account/{id}"), &key);
    assert_eq!(status, 200, "{raw_body}");
    env.run(&["audit", "verify"]).ok();
    let (code, log) = server.stop();
    assert_eq!(code, 0, "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

/// Percent-encode what may not stand in a path segment as is (the rest is left
/// as given, so that the tricks reach the server).
fn url_path(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ' ' => "%20".to_string(),
            '"' => "%22".to_string(),
            '#' => "%23".to_string(),
            '?' => "%3F".to_string(),
            '`' => "%60".to_string(),
            c if c.is_ascii() => c.to_string(),
            c => c.to_string().bytes().map(|b| format!("%{b:02X}")).collect(),
        })
        .collect()
}

fn url_query(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A data dir ready to serve, and an agent key of its admin, who holds a sales
/// rep's rights on records.
pub(crate) fn rep_agent(env: &Env) -> String {
    crate::store::ready(env);
    env.run(&["permset", "assign", "sales_rep", "admin@example.com"])
        .ok();
    env.run(&["apikey", "create", "admin@example.com", "--agent"])
        .ok()
        .stdout
        .trim()
        .to_string()
}

/// An agent host that writes its whole session to `objectos mcp` at once,
/// without waiting for the answer to `initialize`: every request after it is
/// still answered within the session it opens.
#[test]
fn the_bridge_answers_a_session_written_all_at_once() {
    let env = Env::new();
    let agent = rep_agent(&env);
    let server = Server::start(&env);
    let session = [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"hasty-host","version":"1"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"query_records","arguments":{"objectName":"crm_account"}}}"#,
    ]
    .join("\n");
    let mut cmd = env.cmd();
    cmd.env("OBJECTOS_API_KEY", &agent)
        .args(["mcp", "--server", &server.base])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{session}\n").as_bytes())
        .unwrap();
    let out: Run = child.wait_with_output().unwrap().into();
    let out = out.ok();
    let answers: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for id in 1..=3 {
        let answer = answers
            .iter()
            .find(|a| a["id"] == json!(id))
            .unwrap_or_else(|| panic!("no answer to {id}:\n{}", out.stdout));
        assert!(answer.get("error").is_none(), "{answer}");
    }
    let call = answers.iter().find(|a| a["id"] == json!(3)).unwrap();
    assert_eq!(call["result"]["isError"], json!(false), "{call}");
}
