//! Agents: MCP over Streamable HTTP and stdio (`objectos mcp`), driven by the
//! official MCP Python SDK; the pending-action queue and `objectos review`.
//!
//! Two apps: the sample CRM (its canaries, `world.rs`) for what an agent may
//! see, and a help-desk app written here for the queue's rules, so nothing
//! holds only for the fixture.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::util::*;
use crate::world::*;

// ------------------------------------------------------------------ helpers

fn script(name: &str) -> PathBuf {
    repo().join("tests/interop/mcp").join(name)
}

/// One run of the SDK client: (its JSON report, the raw stdout and stderr).
struct Connection<'a> {
    py: &'a Path,
    base: &'a str,
    key: &'a str,
    transport: &'a str,
    mode: &'a str,
    wrap: Vec<String>,
    child_env: Value,
}

impl<'a> Connection<'a> {
    fn new(
        py: &'a Path,
        server: &'a Server,
        key: &'a str,
        transport: &'a str,
        mode: &'a str,
    ) -> Self {
        Connection {
            py,
            base: &server.base,
            key,
            transport,
            mode,
            wrap: Vec::new(),
            child_env: json!({}),
        }
    }

    fn run(&self, calls: Value) -> (Value, String) {
        let mut child = Command::new(self.py)
            .arg(script("client.py"))
            .args(["--transport", self.transport, "--mode", self.mode])
            .args(["--url", self.base, "--objectos", BIN])
            .arg("--wrap")
            .arg(serde_json::to_string(&self.wrap).unwrap())
            .arg("--child-env")
            .arg(self.child_env.to_string())
            .env("OBJECTOS_API_KEY", self.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the MCP client");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(json!({ "calls": calls }).to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "the MCP client ({} {}) failed:\n{stderr}",
            self.transport,
            self.mode
        );
        let report: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("the client printed no JSON ({e}):\n{stdout}\n{stderr}"));
        (report, format!("{stdout}\n{stderr}"))
    }
}

/// A tool call's structured result, which must equal its text content.
#[track_caller]
fn structured(call: &Value) -> &Value {
    let s = &call["structured"];
    assert!(!s.is_null(), "no structured result: {call}");
    let text: Value = serde_json::from_str(call["text"][0].as_str().expect("a text block"))
        .expect("the text block is JSON");
    assert_eq!(&text, s, "text and structuredContent differ");
    s
}

#[track_caller]
fn ok(call: &Value) -> &Value {
    assert_eq!(call["is_error"], false, "{call}");
    structured(call)
}

#[track_caller]
fn refused<'v>(call: &'v Value, code: &str) -> &'v Value {
    assert_eq!(call["is_error"], true, "{call}");
    let s = structured(call);
    assert_eq!(s["error"]["code"], code, "{call}");
    s
}

/// A raw Streamable HTTP exchange (for what an SDK would never send).
struct Raw {
    status: u16,
    headers: reqwest::header::HeaderMap,
    /// The JSON-RPC message (from a JSON body, or the last SSE event).
    body: Value,
    text: String,
}

fn raw_post(server: &Server, key: Option<&str>, body: &str, headers: &[(&str, &str)]) -> Raw {
    raw(server, "POST", key, Some(body.to_string()), headers)
}

fn raw(
    server: &Server,
    method: &str,
    key: Option<&str>,
    body: Option<String>,
    headers: &[(&str, &str)],
) -> Raw {
    let mut req = server
        .client
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}/api/v1/mcp", server.base),
        )
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json");
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(body) = body {
        req = req.body(body);
    }
    let resp = req.send().expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .next_back()
            .unwrap_or(Value::Null)
    });
    Raw {
        status,
        headers,
        body,
        text,
    }
}

const MODERN: &str = "2026-07-28";

/// A stateless (2026-07-28) request, with the headers and `_meta` it needs.
fn modern(method: &str, id: i64, mut params: Value) -> (String, Vec<(&'static str, String)>) {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "1.0"},
    });
    let mut headers = vec![
        ("mcp-protocol-version", MODERN.to_string()),
        ("mcp-method", method.to_string()),
    ];
    if let Some(name) = params["name"].as_str() {
        headers.push(("mcp-name", name.to_string()));
    }
    (
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
        headers,
    )
}

/// Call a tool statelessly: the JSON-RPC result.
#[track_caller]
fn call_tool(server: &Server, key: &str, tool: &str, args: Value) -> Value {
    let (body, headers) = modern("tools/call", 1, json!({"name": tool, "arguments": args}));
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = raw_post(server, Some(key), &body, &h);
    assert_eq!(r.status, 200, "{tool}: {}", r.text);
    let result = r.body["result"].clone();
    assert!(result.is_object(), "{tool}: {}", r.text);
    result
}

/// The structured answer of a tool call, and whether it is an error.
#[track_caller]
pub(crate) fn tool(server: &Server, key: &str, name: &str, args: Value) -> (bool, Value) {
    let r = call_tool(server, key, name, args);
    (
        r["isError"].as_bool().unwrap_or(false),
        r["structuredContent"].clone(),
    )
}

pub(crate) fn agent_key(env: &Env, email: &str, extra: &[&str]) -> String {
    let mut args = vec!["apikey", "create", email, "--agent"];
    args.extend_from_slice(extra);
    env.run(&args).ok().stdout.trim().to_string()
}

pub(crate) fn user_key(env: &Env, email: &str) -> String {
    env.run(&["apikey", "create", email])
        .ok()
        .stdout
        .trim()
        .to_string()
}

pub(crate) fn audit(env: &Env) -> Vec<Value> {
    env.run(&["--json", "audit", "tail", "-n", "100000"])
        .ok()
        .json()["events"]
        .as_array()
        .unwrap()
        .clone()
}

/// `objectos review` as a reviewer, against `server`.
fn review(env: &Env, server: &Server, key: &str, args: &[&str]) -> Run {
    env.cmd()
        .env("OBJECTOS_REVIEW_KEY", key)
        .args(["review", "--server", &server.base])
        .args(args)
        .output()
        .expect("run objectos review")
        .into()
}

pub(crate) fn pending_id(result: &Value) -> String {
    assert_eq!(result["status"], "pending_approval", "{result}");
    result["pendingActionId"]
        .as_str()
        .expect("a pending action id")
        .to_string()
}

// ------------------------------------------------------------------ the desk app

/// A help desk: tickets (a sensitive `credit`, an `internal_note` agents'
/// users cannot read), comments that die with their ticket, vendors agents
/// may only propose, and actions with and without confirmation.
pub(crate) fn desk(env: &Env) -> Server {
    let all =
        json!({"allowRead": true, "allowCreate": true, "allowEdit": true, "allowDelete": true});
    let read_all = json!({"allowRead": true, "viewAllRecords": true});
    let app = json!({
        "manifest": {"id": "com.example.desk", "namespace": "desk", "version": "1.0.0", "name": "Desk", "engines": {"protocol": "^17"}},
        "objects": [
            {"name": "desk_ticket", "label": "Ticket", "sharingModel": "private", "fields": {
                "title": {"type": "text", "required": true},
                "priority": {"type": "select", "defaultValue": "low", "options": [{"label": "Low", "value": "low"}, {"label": "High", "value": "high"}]},
                "status": {"type": "select", "defaultValue": "open", "options": [{"label": "Open", "value": "open"}, {"label": "Closed", "value": "closed"}]},
                "credit": {"type": "number"},
                "internal_note": {"type": "text"}
            }},
            {"name": "desk_comment", "sharingModel": "controlled_by_parent", "fields": {
                "ticket": {"type": "master_detail", "reference": "desk_ticket", "required": true},
                "body": {"type": "text"}
            }},
            {"name": "desk_vendor", "sharingModel": "private", "fields": {"name": {"type": "text", "required": true}}}
        ],
        "actions": [
            {"name": "close_ticket", "label": "Close", "objectName": "desk_ticket", "type": "script", "operation": "update", "patch": {"status": "closed"}, "confirmText": "Close this ticket?", "ai": {"exposed": true, "requiresConfirmation": true, "description": "Close a solved ticket"}},
            {"name": "escalate", "label": "Escalate", "objectName": "desk_ticket", "type": "script", "operation": "update", "patch": {"priority": "high"}, "ai": {"exposed": true, "description": "Raise the priority"}},
            {"name": "wipe_note", "label": "Wipe", "objectName": "desk_ticket", "type": "script", "operation": "update", "patch": {"priority": "low"}, "requiredPermissions": ["manage_permissions"], "ai": {"exposed": true}},
            {"name": "hidden_reset", "label": "Reset", "objectName": "desk_ticket", "type": "script", "operation": "update", "patch": {"priority": "low"}, "ai": {"exposed": false}},
            // Only its variant says it needs care: no confirmation asked.
            {"name": "rush", "label": "Rush", "objectName": "desk_ticket", "type": "script", "operation": "update", "patch": {"priority": "high"}, "variant": "danger", "ai": {"exposed": true}}
        ],
        "permissions": [
            {"name": "agent_user", "objects": {"desk_ticket": all, "desk_comment": all, "desk_vendor": all},
             "fields": {"desk_ticket.internal_note": {"readable": false, "editable": false}, "desk_ticket.credit": {"readable": true, "editable": true}},
             "systemPermissions": ["api_access", "agent_access"]},
            {"name": "reviewer", "objects": {"desk_ticket": read_all, "desk_comment": read_all, "desk_vendor": read_all},
             "fields": {"desk_ticket.credit": {"readable": true, "editable": false}},
             "systemPermissions": ["api_access", "approve_actions"]},
            // `credit` is sensitive: hidden unless a set grants it.
            {"name": "blind_reviewer", "objects": {"desk_ticket": read_all, "desk_comment": read_all, "desk_vendor": read_all},
             "systemPermissions": ["api_access", "approve_actions"]},
            {"name": "reader", "objects": {"desk_ticket": read_all, "desk_comment": read_all, "desk_vendor": read_all},
             "fields": {"desk_ticket.credit": {"readable": true, "editable": false}},
             "systemPermissions": ["api_access"]},
            // Agent access apart from the records rights, to take it away alone.
            {"name": "worker", "objects": {"desk_ticket": all, "desk_comment": all, "desk_vendor": all},
             "fields": {"desk_ticket.internal_note": {"readable": false, "editable": false}, "desk_ticket.credit": {"readable": true, "editable": true}},
             "systemPermissions": ["api_access"]},
            {"name": "agent_only", "objects": {}, "systemPermissions": ["agent_access"]},
            {"name": "governor", "objects": {"desk_ticket": read_all},
             "systemPermissions": ["api_access", "agent_access", "manage_permissions", "manage_metadata", "approve_actions", "manage_users", "view_audit"]}
        ],
        "x-objectos": {
            "objects": {
                "desk_ticket": {"agentWrites": "direct", "sensitiveFields": ["credit"]},
                "desk_vendor": {"agentWrites": "approval"}
            },
            "approvals": {"expiresAfter": "1h"}
        }
    });
    env.write("desk.json", app.to_string());
    env.run(&["build", "desk.json", "-o", "desk-artifact.json"])
        .ok();
    env.run(&["keygen", "-o", "desk-key", "--unencrypted"]).ok();
    env.run(&["sign", "desk-artifact.json", "-k", "desk-key"])
        .ok();
    env.run(&["init"]).ok();
    env.run(&["trust", "add", "desk-key.pub"]).ok();
    env.run(&["apply", "desk-artifact.json", "-y"]).ok();
    env.write("pw", format!("{}\n", crate::store::PASSWORD));
    env.run(&[
        "bootstrap",
        "--admin-email",
        "admin@desk.example",
        "--password-file",
        "pw",
    ])
    .ok();
    for (email, sets) in DESK_USERS {
        env.run(&["user", "add", email, "--no-password"]).ok();
        for set in *sets {
            env.run(&["permset", "assign", set, email]).ok();
        }
    }
    Server::start(env)
}

pub(crate) const ALICE: &str = "alice@desk.example";
pub(crate) const RITA: &str = "rita@desk.example";
const BOB: &str = "bob@desk.example";
pub(crate) const NORA: &str = "nora@desk.example";
pub(crate) const PAT: &str = "pat@desk.example";
pub(crate) const VIC: &str = "vic@desk.example";

const DESK_USERS: &[(&str, &[&str])] = &[
    // asks, through her agent
    (ALICE, &["agent_user"]),
    // approves
    (RITA, &["reviewer"]),
    // approves, but may not read `credit`
    (BOB, &["blind_reviewer"]),
    // reads everything, approves nothing
    (NORA, &["reader"]),
    // holds every administrative permission, and an agent
    (PAT, &["agent_user", "governor"]),
    // asks and approves (not his own)
    (VIC, &["agent_user", "reviewer"]),
];

/// A ticket of `email`'s (through REST, as them), with a comment.
pub(crate) fn ticket(server: &Server, key: &str, title: &str, credit: f64) -> (String, String) {
    let (status, t, raw) = server.call(
        "POST",
        "/api/v1/data/desk_ticket",
        Some(key),
        Some(json!({"title": title, "credit": credit})),
    );
    assert_eq!(status, 201, "{raw}");
    let id = t["id"].as_str().unwrap().to_string();
    let (status, c, raw) = server.call(
        "POST",
        "/api/v1/data/desk_comment",
        Some(key),
        Some(json!({"ticket": id, "body": format!("comment on {title}")})),
    );
    assert_eq!(status, 201, "{raw}");
    (id, c["id"].as_str().unwrap().to_string())
}

/// (status, the record or the error body)
fn get(server: &Server, key: &str, object: &str, id: &str) -> (u16, Value) {
    let (status, body, _) = server.get(&format!("/api/v1/data/{object}/{id}"), key);
    match body.get("record") {
        Some(record) => (status, record.clone()),
        None => (status, body),
    }
}

fn pending(server: &Server, key: &str, id: &str) -> (u16, Value) {
    let (status, body, _) = server.get(&format!("/api/v1/pending-actions/{id}"), key);
    (status, body)
}

fn decide(server: &Server, key: &str, id: &str, how: &str, body: Value) -> (u16, Value) {
    let (status, body, _) = server.call(
        "POST",
        &format!("/api/v1/pending-actions/{id}/{how}"),
        Some(key),
        Some(body),
    );
    (status, body)
}

// ------------------------------------------------------------------ the SDK, as the rep's agent

/// What rep A's agent may never see, in any result, error or schema, over any
/// transport: the note and token nobody of sales reads, the credit limit,
/// rep B's deal and the other organization's. (Field names are not listed: the
/// calls below name the hidden note themselves, and the refusal may echo it.)
fn hidden_from_rep_a() -> Vec<String> {
    vec![
        CANARY_NOTE.to_string(),
        CANARY_TOKEN.to_string(),
        CANARY_CREDIT.to_string(),
        SECRET_DEAL_B.to_string(),
        SECRET_DEAL_G.to_string(),
    ]
}

#[test]
fn an_official_mcp_client_acts_as_the_rep_and_a_manager_approves_its_delete() {
    let Some(py) = venv_python("mcp, pexpect") else {
        return;
    };
    let world = World::build();
    let env = &world.env;
    let server = &world.server;
    let key = agent_key(env, email("rep_a"), &["--name", "claude-desktop"]);
    let opp_a = world.id("opp_a").to_string();
    let opp_b = world.id("opp_b").to_string();
    let reads = json!([
        {"tool": "list_objects"},
        {"tool": "describe_object", "args": {"objectName": "crm_opportunity"}},
        {"tool": "describe_object", "args": {"objectName": "crm_account"}},
        {"tool": "query_records", "args": {"objectName": "crm_opportunity"}},
        {"tool": "query_records", "args": {"objectName": "crm_account", "fields": ["name", "credit_limit"]}},
        {"tool": "get_record", "args": {"objectName": "crm_opportunity", "recordId": opp_a}},
        {"tool": "get_record", "args": {"objectName": "crm_opportunity", "recordId": opp_b}},
        {"tool": "get_record", "args": {"objectName": "crm_opportunity", "recordId": "no-such-record"}},
        {"tool": "query_records", "args": {"objectName": "crm_opportunity", "where": {"discount_approval_note": CANARY_NOTE}}},
        {"tool": "query_records", "args": {"objectName": "crm_opportunity", "limit": 51}},
        {"tool": "query_records", "args": {"objectName": 5}},
        {"tool": "validate_expression", "args": {"objectName": "crm_opportunity", "expression": "record.discount_approval_note == 'x'"}},
        {"tool": "aggregate_records", "args": {"objectName": "crm_opportunity", "aggregations": [{"function": "count", "alias": "n"}], "groupBy": ["stage"]}},
        {"tool": "list_actions"},
        {"tool": "describe_object", "args": {"objectName": "sys_user"}},
        {"tool": "no_such_tool"}
    ]);
    let combos = [
        ("stdio", "auto"),
        ("stdio", "legacy"),
        ("http", "auto"),
        ("http", "legacy"),
        ("http", "2025-06-18"),
    ];
    let mut everything = String::new();
    for (transport, mode) in combos {
        let (report, raw) = Connection::new(&py, server, &key, transport, mode).run(reads.clone());
        everything.push_str(&raw);
        let what = format!("{transport} {mode}");
        let expected_protocol = match mode {
            "auto" => "2026-07-28",
            "legacy" => "2025-11-25",
            other => other,
        };
        assert_eq!(report["protocol"], expected_protocol, "{what}");
        // The tools, in upstream's order, with truthful annotations.
        let names: Vec<&str> = report["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "list_objects",
                "describe_object",
                "validate_expression",
                "query_records",
                "aggregate_records",
                "get_record",
                "create_record",
                "update_record",
                "delete_record",
                "list_actions",
                "run_action",
                "propose_metadata_change"
            ],
            "{what}"
        );
        for t in report["tools"].as_array().unwrap() {
            let name = t["name"].as_str().unwrap();
            let a = &t["annotations"];
            let reads_only = !matches!(
                name,
                "create_record"
                    | "update_record"
                    | "delete_record"
                    | "run_action"
                    | "propose_metadata_change"
            );
            assert_eq!(a["readOnlyHint"], reads_only, "{name}");
            // `false` would promise only additive changes (the specification's
            // reading): updates and actions overwrite, a metadata proposal may
            // revoke or replace.
            let destructive = matches!(
                name,
                "update_record" | "delete_record" | "run_action" | "propose_metadata_change"
            );
            assert_eq!(a["destructiveHint"], destructive, "{name}");
            assert_eq!(t["inputSchema"]["type"], "object", "{name}");
        }
        let query = report["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "query_records")
            .unwrap();
        assert_eq!(query["inputSchema"]["properties"]["limit"]["maximum"], 50);
        for arg in [
            "objectName",
            "where",
            "fields",
            "orderBy",
            "limit",
            "offset",
        ] {
            assert!(
                query["inputSchema"]["properties"].get(arg).is_some(),
                "{arg}"
            );
        }

        let calls = report["calls"].as_array().unwrap();
        // list_objects: upstream's shape, only readable objects.
        let objects = ok(&calls[0]);
        assert!(objects["totalCount"].as_u64().unwrap() >= 5, "{objects}");
        assert!(
            objects["objects"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["name"] == "crm_opportunity" && o["fieldCount"].as_u64().unwrap() > 3)
        );
        // describe_object: fields as an array, no unreadable field.
        let opp = ok(&calls[1]);
        let fields: Vec<&str> = opp["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert!(
            fields.contains(&"amount") && fields.contains(&"probability"),
            "{fields:?}"
        );
        assert!(!fields.contains(&"discount_approval_note"), "{fields:?}");
        ok(&calls[2]);
        // query_records: upstream's find shape; rep A's deals, with what she reads.
        let found = ok(&calls[3]);
        assert_eq!(found["object"], "crm_opportunity");
        assert!(found["hasMore"].is_boolean());
        let text = found.to_string();
        assert!(text.contains(SECRET_DEAL_A), "the positive control: {text}");
        assert!(text.contains(&CANARY_PROBABILITY.to_string()), "{text}");
        // A field she may not read is refused, not answered empty.
        refused(&calls[4], "unknown_field");
        assert_eq!(ok(&calls[5])["name"], SECRET_DEAL_A);
        // Rep B's deal and no deal at all: the same answer.
        let unreadable = refused(&calls[6], "not_found");
        let missing = refused(&calls[7], "not_found");
        assert_eq!(unreadable["error"]["message"], missing["error"]["message"]);
        refused(&calls[8], "field_predicate_denied");
        refused(&calls[9], "limit_exceeded");
        refused(&calls[10], "invalid_arguments");
        let check = ok(&calls[11]);
        assert_eq!(check["ok"], false, "{check}");
        let groups = ok(&calls[12]);
        assert!(groups["rows"].as_array().unwrap().len() >= 2, "{groups}");
        assert!(groups["totalGroups"].as_u64().is_some(), "{groups}");
        let actions = ok(&calls[13]);
        let action_names: Vec<&str> = actions["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            action_names,
            ["mark_won"],
            "only exposed actions she may run: {actions}"
        );
        assert_eq!(actions["actions"][0]["requiresConfirmation"], true);
        refused(&calls[14], "not_found");
        // An unknown tool is the protocol error the specification prescribes.
        assert_eq!(calls[15]["protocol_error"]["code"], -32602, "{}", calls[15]);
    }
    for canary in hidden_from_rep_a() {
        assert!(
            !everything.contains(&canary),
            "`{canary}` reached the agent:\n{everything}"
        );
    }
    world.assert_canaries_in_place();

    // A delete waits for a reviewer.
    let opp = world.id("opp_a_won").to_string();
    let (report, raw) = Connection::new(&py, server, &key, "stdio", "auto").run(json!([
        {"tool": "delete_record", "args": {"objectName": "crm_opportunity", "recordId": opp}}
    ]));
    let id = pending_id(ok(&report["calls"][0]));
    for canary in hidden_from_rep_a() {
        assert!(!raw.contains(&canary), "`{canary}` in {raw}");
    }
    assert_eq!(
        get(server, world.key("rep_a"), "crm_opportunity", &opp).0,
        200,
        "not deleted yet"
    );

    // What the requester sees of it, and what the manager sees: the diff
    // follows each one's field rights.
    let (status, mine) = pending(server, world.key("rep_a"), &id);
    assert_eq!(status, 200);
    assert!(!mine.to_string().contains(CANARY_NOTE), "{mine}");
    assert_eq!(
        mine["client"]["name"], "mcp",
        "the SDK names itself: {mine}"
    );
    let (status, theirs) = pending(server, world.key("manager"), &id);
    assert_eq!(status, 200);
    assert!(
        theirs.to_string().contains(CANARY_NOTE),
        "the positive control: {theirs}"
    );
    assert_eq!(
        pending(server, world.key("rep_b"), &id).0,
        404,
        "not rep B's to see"
    );
    assert_eq!(
        pending(server, world.key("fin"), &id).0,
        404,
        "finance approves nothing"
    );

    // The manager approves it with `objectos review`: applied, exactly once.
    let listed = review(env, server, world.key("manager"), &["--list"]).ok();
    assert!(listed.stdout.contains(&id), "{}", listed.stdout);
    let done = review(
        env,
        server,
        world.key("manager"),
        &["--json", &id, "--approve"],
    )
    .ok();
    assert_eq!(done.json()["status"], "applied", "{}", done.stdout);
    assert_eq!(
        get(server, world.key("manager"), "crm_opportunity", &opp).0,
        404
    );
    let again = review(env, server, world.key("manager"), &[&id, "--approve"]).code(1);
    assert!(again.stderr.contains("already decided"), "{}", again.stderr);
    assert_eq!(
        again.stderr.trim().lines().count(),
        1,
        "one line: {}",
        again.stderr
    );

    // A rejected delete writes nothing.
    let opp = world.id("opp_a").to_string();
    let (report, _) = Connection::new(&py, server, &key, "http", "legacy").run(json!([
        {"tool": "delete_record", "args": {"objectName": "crm_opportunity", "recordId": opp}}
    ]));
    let rejected = pending_id(ok(&report["calls"][0]));
    review(
        env,
        server,
        world.key("manager"),
        &[&rejected, "--reject", "--reason", "still open"],
    )
    .ok();
    let (status, body) = get(server, world.key("rep_a"), "crm_opportunity", &opp);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        pending(server, world.key("rep_a"), &rejected).1["status"],
        "rejected"
    );

    // The audit tells the whole story, via the agent, key and client.
    let rows = audit(env);
    let deleted = world.id("opp_a_won");
    let of = |action: &str, record: &str| -> Vec<&Value> {
        rows.iter()
            .filter(|r| r["action"] == action && r["record_id"] == record)
            .collect()
    };
    assert_eq!(of("record.delete", deleted).len(), 1, "exactly one apply");
    assert_eq!(
        of("record.delete", &opp).len(),
        0,
        "the rejected one wrote nothing"
    );
    let call = rows
        .iter()
        .find(|r| {
            r["action"] == "agent.tool_call"
                && r["changes"]["tool"] == "delete_record"
                && r["changes"]["pending_action"] == id
        })
        .expect("the tool call's row");
    assert_eq!(call["via"], "agent");
    assert_eq!(call["client"]["name"], "mcp");
    assert_eq!(call["client"]["protocol"], "2026-07-28");
    for action in ["pending.propose", "pending.approve", "pending.apply"] {
        assert!(
            rows.iter()
                .any(|r| r["action"] == action && r.to_string().contains(&id)),
            "no `{action}` row for {id}"
        );
    }
    assert!(
        rows.iter().any(|r| r["action"] == "agent.session_start"),
        "legacy sessions are audited"
    );
    assert!(
        rows.iter().any(|r| r["action"] == "agent.session_end"),
        "and their end"
    );
    assert!(
        rows.iter().any(|r| r["action"] == "agent.request"
            && r["changes"]["method"] == "tools/list"
            && r["client"]["protocol"] == "2026-07-28"),
        "a stateless request leaves its own evidence"
    );
    env.run(&["audit", "verify"]).ok();
}

// ------------------------------------------------------------------ the queue's rules

#[test]
fn the_queue_decides_only_what_its_reviewer_may_and_applies_once() {
    let env = Env::new();
    let server = desk(&env);
    let alice = user_key(&env, ALICE);
    let alice_agent = agent_key(&env, ALICE, &[]);
    let rita = user_key(&env, RITA);
    let bob = user_key(&env, BOB);
    let nora = user_key(&env, NORA);
    let vic = user_key(&env, VIC);
    let vic_agent = agent_key(&env, VIC, &[]);

    // A delete of a ticket with a comment: the diff lists the cascade.
    let (t1, c1) = ticket(&server, &alice, "printer on fire", 10.0);
    let (err, r) = tool(
        &server,
        &alice_agent,
        "delete_record",
        json!({"objectName": "desk_ticket", "recordId": t1}),
    );
    assert!(!err, "{r}");
    let p1 = pending_id(&r);
    let (_, view) = pending(&server, &rita, &p1);
    let cascade = view["change"]["cascade"].to_string();
    assert!(cascade.contains(&c1), "the comment dies with it: {view}");

    // Who sees it: the requester and reviewers of the organization; not a
    // reader without `approve_actions`.
    assert_eq!(pending(&server, &alice, &p1).0, 200);
    assert_eq!(pending(&server, &bob, &p1).0, 200);
    assert_eq!(pending(&server, &nora, &p1).0, 404);
    assert_eq!(pending(&server, "osk_not_a_key", &p1).0, 401);

    // Missing `approve_actions`: refused (the same whether or not the id
    // exists), nothing written; `review` exits 4.
    let (status, body) = decide(&server, &nora, &p1, "approve", json!({}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("missing_permission")),
        "{body}"
    );
    let (status, _) = decide(
        &server,
        &nora,
        "01a2c0de-0000-7000-8000-000000000000",
        "approve",
        json!({}),
    );
    assert_eq!(status, 403);
    review(&env, &server, &nora, &[&p1, "--approve"]).code(4);
    let rows = audit(&env);
    assert!(
        rows.iter().any(|r| r["action"] == "pending.approve"
            && r["outcome"] == "denied"
            && r["actor"]["email"] == NORA
            && r["record_id"] == p1.as_str()),
        "a refused decision leaves its row"
    );
    // An agent key is no reviewer's key.
    review(&env, &server, &alice_agent, &["--list"]).code(4);
    // A reviewer who may not read a field the change touches (`credit`).
    let (status, body) = decide(&server, &bob, &p1, "approve", json!({}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("cannot_see_change")),
        "{body}"
    );
    let blind = review(&env, &server, &bob, &[&p1, "--approve"]).code(4);
    assert!(
        blind.stderr.contains("cannot_see_change"),
        "{}",
        blind.stderr
    );
    assert_eq!(
        get(&server, &alice, "desk_ticket", &t1).0,
        200,
        "still there"
    );

    // Separation of duties: Vic's own agent's request is not his to decide.
    let (t2, _) = ticket(&server, &vic, "vic's own", 1.0);
    let (_, r) = tool(
        &server,
        &vic_agent,
        "delete_record",
        json!({"objectName": "desk_ticket", "recordId": t2}),
    );
    let p2 = pending_id(&r);
    let own = review(&env, &server, &vic, &[&p2, "--approve"]).code(4);
    assert!(
        own.stderr.contains("separation_of_duties"),
        "{}",
        own.stderr
    );
    let (status, _) = decide(&server, &vic, &p2, "reject", json!({"reason": "mine"}));
    assert_eq!(status, 403);

    // Two reviewers at once: exactly one apply.
    let p1_for_race = p1.clone();
    let base = server.base.clone();
    let racers: Vec<_> = [rita.clone(), vic.clone()]
        .into_iter()
        .map(|key| {
            let id = p1_for_race.clone();
            let base = base.clone();
            std::thread::spawn(move || {
                reqwest::blocking::Client::new()
                    .post(format!("{base}/api/v1/pending-actions/{id}/approve"))
                    .bearer_auth(key)
                    .header("content-type", "application/json")
                    .body("{}")
                    .send()
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses: Vec<u16> = racers.into_iter().map(|h| h.join().unwrap()).collect();
    statuses.sort();
    // One applies; the other is told it was decided — or, when it comes after
    // the record is gone, that it cannot see the action any more (an applied
    // delete stays visible to its requester and to whoever decided it).
    assert_eq!(statuses[0], 200, "{statuses:?}");
    assert!(matches!(statuses[1], 404 | 409), "{statuses:?}");
    assert_eq!(get(&server, &rita, "desk_ticket", &t1).0, 404);
    assert_eq!(get(&server, &rita, "desk_comment", &c1).0, 404);
    let rows = audit(&env);
    assert_eq!(
        rows.iter()
            .filter(|r| r["action"] == "record.delete" && r["record_id"] == t1.as_str())
            .count(),
        1
    );
    // Deciding it again: refused (as decided, or, for the one who did not
    // decide it, as no longer visible).
    let applied = review(&env, &server, &rita, &[&p1, "--approve"]).code(1);
    assert!(
        applied.stderr.contains("already decided") || applied.stderr.contains("no pending action"),
        "{}",
        applied.stderr
    );

    // Stale: the ticket changed after the proposal; the action fails with its
    // reason, one error row, and the newer value stays.
    let (t3, _) = ticket(&server, &alice, "stale one", 5.0);
    let (_, r) = tool(
        &server,
        &alice_agent,
        "update_record",
        json!({"objectName": "desk_ticket", "recordId": t3, "data": {"credit": 500}}),
    );
    let p3 = pending_id(&r);
    assert_eq!(
        get(&server, &alice, "desk_ticket", &t3).1["credit"],
        5.0,
        "a sensitive write waits"
    );
    let (status, _, _) = server.call(
        "PATCH",
        &format!("/api/v1/data/desk_ticket/{t3}"),
        Some(&alice),
        Some(json!({"title": "renamed meanwhile"})),
    );
    assert_eq!(status, 200);
    let stale = review(&env, &server, &rita, &[&p3, "--approve"]).code(1);
    assert!(stale.stderr.contains("stale"), "{}", stale.stderr);
    let (_, after) = get(&server, &alice, "desk_ticket", &t3);
    assert_eq!(
        (after["credit"].as_f64(), after["title"].as_str()),
        (Some(5.0), Some("renamed meanwhile"))
    );
    let (_, view) = pending(&server, &alice, &p3);
    assert_eq!(view["status"], "failed", "{view}");
    // The tool call's row keeps the sensitive value only as an HMAC.
    let rows = audit(&env);
    let call = rows
        .iter()
        .find(|r| r["action"] == "agent.tool_call" && r["changes"]["pending_action"] == p3.as_str())
        .expect("the update's tool call row");
    let credit = &call["changes"]["arguments"]["data"]["credit"];
    assert!(
        credit["hmac_sha256"].is_string() && credit.get("value").is_none(),
        "{call}"
    );
    let rows = audit(&env);
    let errors: Vec<&Value> = rows
        .iter()
        .filter(|r| r["action"] == "pending.apply" && r["record_id"] == p3.as_str())
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["outcome"], "error");
    assert_eq!(errors[0]["code"], "stale");

    // Cancel: the requester only.
    let (t4, _) = ticket(&server, &alice, "to cancel", 1.0);
    let (_, r) = tool(
        &server,
        &alice_agent,
        "delete_record",
        json!({"objectName": "desk_ticket", "recordId": t4}),
    );
    let p4 = pending_id(&r);
    let (status, body) = decide(&server, &rita, &p4, "cancel", json!({}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("not_requester"))
    );
    let (status, body) = decide(&server, &alice, &p4, "cancel", json!({}));
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("cancelled")),
        "{body}"
    );
    assert_eq!(decide(&server, &rita, &p4, "approve", json!({})).0, 409);
    assert_eq!(get(&server, &alice, "desk_ticket", &t4).0, 200);

    // A rejection needs a reason, and writes nothing.
    let (_, r) = tool(
        &server,
        &alice_agent,
        "delete_record",
        json!({"objectName": "desk_ticket", "recordId": t4}),
    );
    let p5 = pending_id(&r);
    assert_eq!(decide(&server, &rita, &p5, "reject", json!({})).0, 400);
    let none = review(&env, &server, &rita, &[&p5, "--reject"]).code(2);
    assert!(none.stderr.contains("reason"), "{}", none.stderr);
    review(
        &env,
        &server,
        &rita,
        &[&p5, "--reject", "--reason", "keep it"],
    )
    .ok();
    assert_eq!(get(&server, &alice, "desk_ticket", &t4).0, 200);

    // Stripped of a right while pending: the apply fails, nothing written.
    let (_, r) = tool(
        &server,
        &alice_agent,
        "update_record",
        json!({"objectName": "desk_ticket", "recordId": t4, "data": {"credit": 7}}),
    );
    let p6 = pending_id(&r);
    let (_, r) = tool(
        &server,
        &alice_agent,
        "delete_record",
        json!({"objectName": "desk_ticket", "recordId": t4}),
    );
    let p7 = pending_id(&r);
    env.run(&["permset", "revoke", "agent_user", ALICE]).ok();
    let lost = review(&env, &server, &rita, &[&p6, "--approve"]).code(1);
    assert!(lost.stderr.contains("apply_failed"), "{}", lost.stderr);
    assert_eq!(get(&server, &rita, "desk_ticket", &t4).1["credit"], 1.0);
    assert_eq!(pending(&server, &rita, &p6).1["status"], "failed");
    // …and the key itself stops working for the agent at its next request.
    let (body, headers) = modern("tools/list", 9, json!({}));
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = raw_post(&server, Some(&alice_agent), &body, &h);
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.text.contains("agent_access_required"), "{}", r.text);
    assert!(
        audit(&env)
            .iter()
            .any(|r| r["action"] == "agent.auth" && r["code"] == "agent_access_required"),
        "the refusal is audited"
    );

    // Disabling the requester cancels what they have pending.
    env.run(&["permset", "assign", "agent_user", ALICE]).ok();
    env.run(&["user", "disable", ALICE, "--force"]).ok();
    assert_eq!(pending(&server, &rita, &p7).1["status"], "cancelled");
    assert_eq!(decide(&server, &rita, &p7, "approve", json!({})).0, 409);
    assert_eq!(get(&server, &rita, "desk_ticket", &t4).0, 200);
    let r = raw_post(&server, Some(&alice_agent), &body, &h);
    assert_eq!(r.status, 401, "a disabled user's agent: {}", r.text);
    assert!(r.headers.get("www-authenticate").is_some());
    env.run(&["audit", "verify"]).ok();
}

// ------------------------------------------------------------------ the agent's rules

#[test]
fn an_agent_never_holds_an_administrative_right_and_read_only_keys_never_write() {
    let env = Env::new();
    let server = desk(&env);
    let alice = user_key(&env, ALICE);
    let alice_agent = agent_key(&env, ALICE, &[]);
    let reader_agent = agent_key(&env, ALICE, &["--read-only"]);
    let pat_agent = agent_key(&env, PAT, &[]);
    let rita = user_key(&env, RITA);
    let nora = user_key(&env, NORA);
    let (t1, _) = ticket(&server, &alice, "agent rules", 3.0);

    // An agent key on REST is refused; a user key on MCP gets the auth error.
    let (status, body, _) = server.get("/api/v1/data/desk_ticket", &alice_agent);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("agent_key_not_allowed"))
    );
    assert!(
        audit(&env)
            .iter()
            .any(|r| r["action"] == "auth.request" && r["code"] == "agent_key_not_allowed"),
        "the refusal leaves its row"
    );
    let (body_list, headers) = modern("tools/list", 1, json!({}));
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = raw_post(&server, Some(&alice), &body_list, &h);
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.text.contains("agent_key_required"), "{}", r.text);

    // Direct writes work where the app lets agents write…
    let (err, created) = tool(
        &server,
        &alice_agent,
        "create_record",
        json!({"objectName": "desk_ticket", "data": {"title": "from the agent"}}),
    );
    assert!(!err, "{created}");
    assert_eq!(created["record"]["title"], "from the agent");
    // …wait where it wants approval…
    let (err, r) = tool(
        &server,
        &alice_agent,
        "create_record",
        json!({"objectName": "desk_vendor", "data": {"name": "Acme Toner"}}),
    );
    assert!(!err, "{r}");
    pending_id(&r);
    let (_, vendors, _) = server.get("/api/v1/data/desk_vendor", &alice);
    assert_eq!(
        vendors["records"].as_array().unwrap().len(),
        0,
        "not created before approval"
    );
    // …and a field the user may not write is refused at once, never queued.
    let (err, r) = tool(
        &server,
        &alice_agent,
        "update_record",
        json!({"objectName": "desk_ticket", "recordId": t1, "data": {"internal_note": "x"}}),
    );
    assert!(err, "{r}");
    assert_eq!(r["error"]["code"], "field_not_editable", "{r}");

    // A read-only key reads, and neither writes nor proposes; it is not even
    // shown the tools that would.
    let (err, _) = tool(
        &server,
        &reader_agent,
        "get_record",
        json!({"objectName": "desk_ticket", "recordId": t1}),
    );
    assert!(!err);
    for (name, args) in [
        (
            "create_record",
            json!({"objectName": "desk_ticket", "data": {"title": "no"}}),
        ),
        (
            "update_record",
            json!({"objectName": "desk_ticket", "recordId": t1, "data": {"title": "no"}}),
        ),
        (
            "delete_record",
            json!({"objectName": "desk_ticket", "recordId": t1}),
        ),
        (
            "run_action",
            json!({"actionName": "escalate", "recordId": t1}),
        ),
        (
            "propose_metadata_change",
            json!({"kind": "grant_permission_set", "permissionSet": "reviewer", "user": NORA}),
        ),
    ] {
        let (err, r) = tool(&server, &reader_agent, name, args);
        assert!(err, "{name}: {r}");
        assert_eq!(r["error"]["code"], "read_only_key", "{name}: {r}");
    }
    let r = raw_post(&server, Some(&reader_agent), &body_list, &h);
    let listed: Vec<&str> = r.body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        listed.contains(&"query_records") && !listed.contains(&"create_record"),
        "{listed:?}"
    );
    assert_eq!(
        get(&server, &alice, "desk_ticket", &t1).1["title"],
        "agent rules"
    );

    // Actions: one that asks for confirmation never runs before approval
    // (upstream's known gap); a plain one runs at once; one needing an
    // administrative permission is refused to an agent even when its user
    // holds it; one not exposed to agents does not exist for them.
    let (err, r) = tool(
        &server,
        &alice_agent,
        "run_action",
        json!({"actionName": "close_ticket", "objectName": "desk_ticket", "recordId": t1}),
    );
    assert!(!err, "{r}");
    let close = pending_id(&r);
    assert_eq!(
        get(&server, &alice, "desk_ticket", &t1).1["status"],
        "open",
        "not before approval"
    );
    review(&env, &server, &rita, &[&close, "--approve"]).ok();
    assert_eq!(
        get(&server, &alice, "desk_ticket", &t1).1["status"],
        "closed",
        "after approval"
    );
    // Parameters: objectos's actions take none; one given is refused, not
    // ignored, and nothing runs (an empty `params` is fine, as on REST).
    let (err, r) = tool(
        &server,
        &alice_agent,
        "run_action",
        json!({"actionName": "escalate", "recordId": t1, "params": {"priority": "low"}}),
    );
    assert!(err && r["error"]["code"] == "invalid_arguments", "{r}");
    assert_ne!(
        get(&server, &alice, "desk_ticket", &t1).1["priority"],
        "high"
    );
    let (err, r) = tool(
        &server,
        &alice_agent,
        "run_action",
        json!({"actionName": "escalate", "recordId": t1, "params": {}}),
    );
    assert!(!err, "{r}");
    assert_eq!(
        get(&server, &alice, "desk_ticket", &t1).1["priority"],
        "high"
    );
    let (err, r) = tool(
        &server,
        &pat_agent,
        "run_action",
        json!({"actionName": "wipe_note", "recordId": t1}),
    );
    assert!(err && r["error"]["code"] == "missing_permission", "{r}");
    let (err, r) = tool(
        &server,
        &alice_agent,
        "run_action",
        json!({"actionName": "hidden_reset", "recordId": t1}),
    );
    assert!(err && r["error"]["code"] == "not_found", "{r}");

    // Pat holds manage_permissions; his agent can only propose a grant, and
    // deciding it takes approve_actions *and* manage_permissions.
    let (_, r) = tool(
        &server,
        &pat_agent,
        "propose_metadata_change",
        json!({"kind": "grant_permission_set", "permissionSet": "reviewer", "user": NORA, "reason": "covering for Rita"}),
    );
    let grant = pending_id(&r);
    let sets = |email: &str| env.run(&["--json", "user", "show", email]).ok().stdout;
    assert!(
        !sets(NORA).contains("\"reviewer\""),
        "not granted before approval"
    );
    let (status, body) = decide(&server, &rita, &grant, "approve", json!({}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("missing_permission")),
        "{body}"
    );
    let admin = user_key(&env, "admin@desk.example");
    let (status, body) = decide(&server, &admin, &grant, "approve", json!({}));
    assert_eq!(status, 200, "{body}");
    assert!(
        sets(NORA).contains("reviewer"),
        "granted at once on approval"
    );
    let (status, _) = pending(&server, &nora, &grant);
    assert_eq!(status, 200, "Nora now reviews");
    // Alice lacks manage_metadata: refused, never queued.
    let (err, r) = tool(
        &server,
        &alice_agent,
        "propose_metadata_change",
        json!({"kind": "add_field", "objectName": "desk_ticket", "fieldName": "sla", "field": {"type": "text"}}),
    );
    assert!(err, "{r}");

    // The quota: at most N open pending actions per agent key.
    env.run(&[
        "settings",
        "set",
        "agents.max_pending",
        "--value-file",
        &env.write("two", "2").display().to_string(),
    ])
    .ok();
    // The vendor above is open; one more fits, the next does not.
    let (_, r) = tool(
        &server,
        &alice_agent,
        "delete_record",
        json!({"objectName": "desk_ticket", "recordId": t1}),
    );
    pending_id(&r);
    let (err, r) = tool(
        &server,
        &alice_agent,
        "delete_record",
        json!({"objectName": "desk_ticket", "recordId": t1}),
    );
    assert!(err, "{r}");
    assert_eq!(r["error"]["code"], "too_many_pending", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("agents.max_pending"),
        "{r}"
    );
    env.run(&["audit", "verify"]).ok();
}

#[test]
fn a_metadata_change_waits_for_a_signed_artifact_and_never_reverts_a_newer_one() {
    let env = Env::new();
    let server = desk(&env);
    let pat_agent = agent_key(&env, PAT, &[]);
    let admin = user_key(&env, "admin@desk.example");
    let (_, r) = tool(
        &server,
        &pat_agent,
        "propose_metadata_change",
        json!({
            "kind": "add_field", "objectName": "desk_ticket", "fieldName": "sla_hours",
            "field": {"type": "number", "label": "SLA (hours)"}, "reason": "track SLAs"
        }),
    );
    let first = pending_id(&r);
    let (_, r) = tool(
        &server,
        &pat_agent,
        "propose_metadata_change",
        json!({
            "kind": "change_options", "objectName": "desk_ticket", "fieldName": "priority",
            "options": [{"label": "Low", "value": "low"}, {"label": "High", "value": "high"}, {"label": "Urgent", "value": "urgent"}]
        }),
    );
    let second = pending_id(&r);
    for id in [&first, &second] {
        let (status, body) = decide(&server, &admin, id, "approve", json!({}));
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("approved")),
            "{body}"
        );
    }
    // Written beside its diff, unsigned; nothing changed yet.
    let artifact = env.path(&format!("data/proposals/{first}.objectstack.json"));
    let diff = std::fs::read_to_string(env.path(&format!("data/proposals/{first}.diff"))).unwrap();
    assert!(diff.contains("sla_hours"), "{diff}");
    let nora = user_key(&env, NORA);
    let (status, meta, _) = server.get("/api/v1/meta/object/desk_ticket", &nora);
    assert_eq!(status, 200, "{meta}");
    assert!(!meta.to_string().contains("sla_hours"));
    // The operator signs and applies it: the action is `applied`.
    let a = artifact.display().to_string();
    env.run(&["sign", &a, "-k", "desk-key"]).ok();
    env.run(&["apply", &a, "-y"]).ok();
    assert_eq!(pending(&server, &admin, &first).1["status"], "applied");
    // The second was based on the artifact before: applying it now would revert
    // the first, so it is refused and nothing changes.
    let b = env
        .path(&format!("data/proposals/{second}.objectstack.json"))
        .display()
        .to_string();
    env.run(&["sign", &b, "-k", "desk-key"]).ok();
    let refused = env.run(&["apply", &b, "-y"]).code(1);
    assert!(
        refused.stderr.contains("no longer the one applied"),
        "{}",
        refused.stderr
    );
    assert_eq!(pending(&server, &admin, &second).1["status"], "approved");
    let (_, meta, _) = server.get("/api/v1/meta/object/desk_ticket", &nora);
    assert!(
        meta.to_string().contains("sla_hours"),
        "the first change holds: {meta}"
    );
    assert!(
        !meta.to_string().contains("urgent"),
        "the second never applied: {meta}"
    );
}

// ------------------------------------------------------------------ the protocol

#[test]
fn bad_messages_get_the_errors_the_specification_prescribes_and_nothing_breaks() {
    let env = Env::new();
    drop(desk(&env));
    let server = Server::start_with(&env, &["--mcp-allow-origin", "https://agents.example.com"]);
    let alice = user_key(&env, ALICE);
    let agent = agent_key(&env, ALICE, &[]);
    let other_agent = agent_key(&env, VIC, &[]);
    let (t1, _) = ticket(&server, &alice, "protocol", 1.0);
    let (list, headers) = modern("tools/list", 7, json!({}));
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let works = |what: &str| {
        let (err, r) = tool(
            &server,
            &agent,
            "get_record",
            json!({"objectName": "desk_ticket", "recordId": t1}),
        );
        assert!(!err && r["title"] == "protocol", "after {what}: {r}");
    };
    works("start");

    // Credentials: none, unknown, revoked — 401 with a Bearer challenge.
    for key in [None, Some("osk_nonsense")] {
        let r = raw_post(&server, key, &list, &h);
        assert_eq!(r.status, 401, "{}", r.text);
        assert!(
            r.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        assert!(
            r.body["error"]["code"].is_i64(),
            "a JSON-RPC error: {}",
            r.text
        );
    }
    let doomed = agent_key(&env, ALICE, &["--name", "doomed"]);
    assert_eq!(raw_post(&server, Some(&doomed), &list, &h).status, 200);
    let keys = env
        .run(&["--json", "apikey", "list", "--user", ALICE])
        .ok()
        .json();
    let doomed_id = keys["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "doomed")
        .and_then(|k| k["id"].as_str())
        .expect("the doomed key")
        .to_string();
    env.run(&["apikey", "revoke", &doomed_id]).ok();
    assert_eq!(
        raw_post(&server, Some(&doomed), &list, &h).status,
        401,
        "revoked: refused at its next request"
    );
    assert!(
        audit(&env).iter().any(|r| r["action"] == "agent.auth"
            && r["credential"] == doomed_id.as_str()
            && r["outcome"] == "denied"),
        "and audited"
    );
    works("credentials");

    // Origin: only the ones the operator allowed.
    let evil: Vec<(&str, &str)> = h
        .iter()
        .copied()
        .chain([("origin", "https://evil.example")])
        .collect();
    let r = raw_post(&server, Some(&agent), &list, &evil);
    assert_eq!(r.status, 403, "{}", r.text);
    let fine: Vec<(&str, &str)> = h
        .iter()
        .copied()
        .chain([("origin", "https://agents.example.com")])
        .collect();
    assert_eq!(raw_post(&server, Some(&agent), &list, &fine).status, 200);

    // Versions: one not served here, and a header that disagrees with _meta.
    let old: Vec<(&str, &str)> = h
        .iter()
        .map(|(k, v)| {
            if *k == "mcp-protocol-version" {
                (*k, "2025-03-26")
            } else {
                (*k, *v)
            }
        })
        .collect();
    let r = raw_post(&server, Some(&agent), &list, &old);
    assert_eq!(
        (r.status, r.body["error"]["code"].as_i64()),
        (400, Some(-32022)),
        "{}",
        r.text
    );
    assert!(
        r.body["error"]["data"]["supported"]
            .to_string()
            .contains("2026-07-28")
    );
    let mismatch: Vec<(&str, &str)> = h
        .iter()
        .map(|(k, v)| {
            if *k == "mcp-protocol-version" {
                (*k, "2025-11-25")
            } else {
                (*k, *v)
            }
        })
        .collect();
    let r = raw_post(&server, Some(&agent), &list, &mismatch);
    assert_eq!(
        (r.status, r.body["error"]["code"].as_i64()),
        (400, Some(-32020)),
        "{}",
        r.text
    );
    let no_method: Vec<(&str, &str)> = h
        .iter()
        .copied()
        .filter(|(k, _)| *k != "mcp-method")
        .collect();
    assert_eq!(
        raw_post(&server, Some(&agent), &list, &no_method).status,
        400
    );

    // Not JSON, not JSON-RPC, a batch, an unknown method, a huge message.
    let r = raw_post(&server, Some(&agent), "{not json", &h);
    assert_eq!(
        (r.status, r.body["error"]["code"].as_i64()),
        (400, Some(-32700)),
        "{}",
        r.text
    );
    let r = raw_post(&server, Some(&agent), "[1, 2]", &h);
    assert_eq!(
        (r.status, r.body["error"]["code"].as_i64()),
        (400, Some(-32600)),
        "{}",
        r.text
    );
    let r = raw_post(
        &server,
        Some(&agent),
        "{\"id\": 1, \"method\": \"tools/list\"}",
        &h,
    );
    assert_eq!(
        (r.status, r.body["error"]["code"].as_i64()),
        (400, Some(-32600)),
        "{}",
        r.text
    );
    let (unknown, uh) = modern("vendor/frobnicate", 3, json!({}));
    let uh: Vec<(&str, &str)> = uh.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = raw_post(&server, Some(&agent), &unknown, &uh);
    assert_eq!(
        (r.status, r.body["error"]["code"].as_i64()),
        (404, Some(-32601)),
        "{}",
        r.text
    );
    let (call, ch) = modern(
        "tools/call",
        4,
        json!({"name": "create_record", "arguments": {"objectName": "desk_ticket", "data": {"title": "x".repeat(1024 * 1024 + 100)}}}),
    );
    let ch: Vec<(&str, &str)> = ch.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = raw_post(&server, Some(&agent), &call, &ch);
    assert_eq!(r.status, 413, "{}", &r.text[..r.text.len().min(300)]);
    // Arguments outside the schema: a tool error the model can correct.
    let (err, r) = tool(
        &server,
        &agent,
        "query_records",
        json!({"objectName": "desk_ticket", "limit": "many"}),
    );
    assert!(err && r["error"]["code"] == "invalid_arguments", "{r}");
    for args in [
        json!({"objectName": "desk_ticket", "limit": 0}),
        json!({"objectName": "desk_ticket", "offset": -1}),
        json!({"objectName": "desk_ticket", "orderBy": [{"field": "title", "order": "sideways"}]}),
    ] {
        let (err, r) = tool(&server, &agent, "query_records", args.clone());
        assert!(
            err && r["error"]["code"] == "invalid_arguments",
            "{args}: {r}"
        );
    }
    let (err, r) = tool(
        &server,
        &agent,
        "get_record",
        json!({"objectName": "desk_ticket", "recordId": t1, "extra": 1}),
    );
    assert!(err && r["error"]["code"] == "invalid_arguments", "{r}");
    works("bad messages");

    // A legacy session belongs to the key that opened it.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw-legacy", "version": "0.1"}}})
    .to_string();
    let r = raw_post(&server, Some(&agent), &init, &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["result"]["protocolVersion"], "2025-11-25",
        "{}",
        r.text
    );
    let session = r.headers["mcp-session-id"].to_str().unwrap().to_string();
    let in_session = [
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    assert_eq!(
        raw_post(&server, Some(&agent), &initialized, &in_session).status,
        202
    );
    let legacy_list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string();
    let r = raw_post(&server, Some(&agent), &legacy_list, &in_session);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.body["result"]["tools"].as_array().unwrap().len() > 5,
        "{}",
        r.text
    );
    let r = raw_post(&server, Some(&other_agent), &legacy_list, &in_session);
    assert_eq!(
        r.status, 404,
        "another key's session is no session: {}",
        r.text
    );
    let r = raw_post(
        &server,
        Some(&agent),
        &legacy_list,
        &[
            ("mcp-session-id", "no-such-session"),
            ("mcp-protocol-version", "2025-11-25"),
        ],
    );
    assert_eq!(r.status, 404, "{}", r.text);
    let ping = json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}).to_string();
    let r = raw_post(&server, Some(&agent), &ping, &in_session);
    assert_eq!(
        (r.status, r.body["result"].is_object()),
        (200, true),
        "{}",
        r.text
    );
    assert_eq!(
        raw(&server, "DELETE", Some(&other_agent), None, &in_session).status,
        404
    );
    assert_eq!(
        raw(&server, "DELETE", Some(&agent), None, &in_session).status,
        200
    );
    assert_eq!(
        raw_post(&server, Some(&agent), &legacy_list, &in_session).status,
        404,
        "ended"
    );
    let rows = audit(&env);
    let of_session = |action: &str| {
        rows.iter()
            .filter(|r| r["action"] == action && r["changes"]["session"] == session.as_str())
            .count()
    };
    assert_eq!(
        (
            of_session("agent.session_start"),
            of_session("agent.session_end")
        ),
        (1, 1)
    );
    let start = rows
        .iter()
        .find(|r| r["action"] == "agent.session_start")
        .unwrap();
    assert_eq!(start["client"]["name"], "raw-legacy");
    assert_eq!(start["client"]["protocol"], "2025-11-25");
    works("sessions");

    // The server stops cleanly with a session open.
    let r = raw_post(&server, Some(&agent), &init, &[]);
    let open = r.headers["mcp-session-id"].to_str().unwrap().to_string();
    let (code, log) = server.stop();
    assert_eq!(code, 0, "{log}");
    assert!(
        audit(&env)
            .iter()
            .any(|r| r["action"] == "agent.session_end"
                && r["changes"]["session"] == open.as_str()
                && r["changes"]["reason"] == "server_stopped"),
        "an open session's end is audited at shutdown"
    );
}

// ------------------------------------------------------------------ review in a terminal

#[test]
fn a_reviewer_approves_and_rejects_in_a_real_terminal() {
    let Some(py) = venv_python("mcp, pexpect") else {
        return;
    };
    let env = Env::new();
    let server = desk(&env);
    let alice = user_key(&env, ALICE);
    let agent = agent_key(&env, ALICE, &[]);
    let rita = user_key(&env, RITA);
    let (t1, _) = ticket(&server, &alice, "approve me", 1.0);
    let (t2, _) = ticket(&server, &alice, "reject me", 2.0);
    let (_, r) = tool(
        &server,
        &agent,
        "update_record",
        json!({"objectName": "desk_ticket", "recordId": t1, "data": {"credit": 11}}),
    );
    let p1 = pending_id(&r);
    let drive = |decision: &str, record: &str| {
        let out = Command::new(&py)
            .arg(script("review_pty.py"))
            .args([BIN, &server.base, decision, record])
            .env("OBJECTOS_REVIEW_KEY", &rita)
            .env("OBJECTOS_DATA_DIR", env.path("not-used"))
            .output()
            .unwrap();
        let transcript = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "the {decision} dialogue failed:\n{transcript}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        transcript
    };
    let seen = drive("approve", &t1);
    assert!(
        seen.contains("credit: 1 → 11"),
        "field by field, old → new:\n{seen}"
    );
    assert_eq!(get(&server, &alice, "desk_ticket", &t1).1["credit"], 11.0);
    assert_eq!(pending(&server, &rita, &p1).1["status"], "applied");

    let (_, r) = tool(
        &server,
        &agent,
        "delete_record",
        json!({"objectName": "desk_ticket", "recordId": t2}),
    );
    let p2 = pending_id(&r);
    let seen = drive("reject", &t2);
    assert!(seen.contains("removes"), "the cascade is listed:\n{seen}");
    let (_, view) = pending(&server, &rita, &p2);
    assert_eq!(
        (view["status"].as_str(), view["reason"].as_str()),
        (Some("rejected"), Some("wrong customer"))
    );
    assert_eq!(
        get(&server, &alice, "desk_ticket", &t2).0,
        200,
        "a rejection writes nothing"
    );
    assert!(
        !env.path("not-used").exists(),
        "review never touches a data dir"
    );
}

#[test]
fn what_an_agent_wrote_is_shown_inert_by_review_and_audit_tail() {
    let env = Env::new();
    let server = desk(&env);
    let agent = agent_key(&env, ALICE, &[]);
    let rita = user_key(&env, RITA);
    let hostile = "Acme\u{1b}[2J\u{1b}[31mAPPROVED\u{202e}gnp.exe\u{7}";
    // The client names itself with escapes too.
    let (body, headers) = modern(
        "tools/call",
        1,
        json!({"name": "create_record", "arguments": {"objectName": "desk_vendor", "data": {"name": hostile}}}),
    );
    let body = body.replace("raw-test", "evil\\u001b]0;pwned\\u0007client");
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = raw_post(&server, Some(&agent), &body, &h);
    let id = pending_id(&r.body["result"]["structuredContent"]);
    let raw_bytes = ['\u{1b}', '\u{202e}', '\u{7}'];
    let check = |what: &str, text: &str| {
        for c in raw_bytes {
            assert!(!text.contains(c), "{what} printed {c:?} raw:\n{text:?}");
        }
    };
    let listed = review(&env, &server, &rita, &["--list"]).ok();
    check("review --list", &listed.stdout);
    assert!(
        listed.stdout.contains("evil\\u{1b}]0;pwned"),
        "{}",
        listed.stdout
    );
    let shown = review(&env, &server, &rita, &[&id]).ok();
    check("review ID", &format!("{}{}", shown.stdout, shown.stderr));
    assert!(
        shown
            .stdout
            .contains("Acme\\u{1b}[2J\\u{1b}[31mAPPROVED\\u{202e}gnp.exe"),
        "{}",
        shown.stdout
    );
    review(
        &env,
        &server,
        &rita,
        &[&id, "--reject", "--reason", "no\u{1b}[1m thanks\u{202e}"],
    )
    .ok();
    let shown = review(&env, &server, &rita, &[&id]).ok();
    check("a rejected action", &shown.stdout);
    let tail = env.run(&["audit", "tail", "-n", "50"]).ok();
    check("audit tail", &format!("{}{}", tail.stdout, tail.stderr));
    let tail = env.run(&["audit", "tail", "-n", "50", "-v"]).ok();
    check("audit tail -v", &format!("{}{}", tail.stdout, tail.stderr));
}

// ------------------------------------------------------------------ expiry

#[test]
fn an_action_left_past_its_expiry_can_no_longer_be_decided() {
    let env = Env::new();
    let server = desk(&env);
    let alice = user_key(&env, ALICE);
    let agent = agent_key(&env, ALICE, &[]);
    let rita = user_key(&env, RITA);
    let (t1, _) = ticket(&server, &alice, "expiring", 1.0);
    let (_, r) = tool(
        &server,
        &agent,
        "delete_record",
        json!({"objectName": "desk_ticket", "recordId": t1}),
    );
    let id = pending_id(&r);
    let expires = r["expiresAt"].as_str().unwrap().to_string();
    let (_, view) = pending(&server, &rita, &id);
    assert_eq!(view["expiresAt"], expires.as_str());
    // The app says one hour: the server, two hours later.
    drop(server);
    let later = Server::start_env(&env, &[], &[("OBJECTOS_TEST_CLOCK_SKEW", "7200")]);
    let (_, view) = pending(&later, &rita, &id);
    assert_eq!(view["status"], "expired", "{view}");
    let late = review(&env, &later, &rita, &[&id, "--approve"]).code(1);
    assert!(late.stderr.contains("expired"), "{}", late.stderr);
    assert_eq!(get(&later, &alice, "desk_ticket", &t1).0, 200);
    let rows = audit(&env);
    let expired: Vec<&Value> = rows
        .iter()
        .filter(|r| r["action"] == "pending.expire" && r.to_string().contains(&id))
        .collect();
    assert_eq!(expired.len(), 1, "{expired:?}");
    // objectos expires it, for the requester: the row names her, her agent key
    // and its client, as the action's other rows do.
    let row = expired[0];
    assert_eq!(row["via"], "system", "{row}");
    assert_eq!(row["actor"]["requester"]["email"], ALICE, "{row}");
    assert_eq!(row["credential"], view["keyId"], "{row}");
    assert!(row["credential"].is_string(), "{row}");
    assert_eq!(row["client"], view["client"], "{row}");
    let propose = rows
        .iter()
        .find(|r| r["action"] == "pending.propose" && r["changes"]["pending_action"] == id.as_str())
        .expect("the proposal's row");
    assert_eq!(row["credential"], propose["credential"]);
    assert_eq!(row["client"], propose["client"]);
}

// ------------------------------------------------------------------ the bridge holds no operator power

#[test]
fn objectos_mcp_runs_as_a_user_who_cannot_read_the_data_dir() {
    let Some(py) = venv_python("mcp, pexpect") else {
        return;
    };
    let env = Env::new();
    let server = desk(&env);
    let alice = user_key(&env, ALICE);
    let agent = agent_key(&env, ALICE, &[]);
    let (t1, _) = ticket(&server, &alice, "from afar", 1.0);

    // Without a key it does not start (exit 4); a plain-HTTP server elsewhere
    // is refused unless --insecure.
    let out = Command::new(BIN)
        .args(["mcp", "--server", &server.base])
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "stdout is for MCP messages only");
    let out = Command::new(BIN)
        .args(["mcp", "--server", "http://10.1.2.3:8080"])
        .env_clear()
        .env("OBJECTOS_API_KEY", &agent)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--insecure"));

    // The data dir is the server's (0700); the bridge runs as another OS user
    // that cannot even list it, pointed at it, and works.
    let is_root = nix::unistd::Uid::effective().is_root();
    if !have_interop(
        "root (to run `objectos mcp` as another OS user with setpriv)",
        (!is_root).then(|| "the tests do not run as root".to_string()),
    ) {
        return;
    }
    have_tool("setpriv");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(env.path("data"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
    ];
    let denied = Command::new(nobody[0])
        .args(&nobody[1..])
        .args(["ls", &env.path("data").display().to_string()])
        .output()
        .unwrap();
    assert!(
        !denied.status.success(),
        "the other user must not read the data dir"
    );
    let mut c = Connection::new(&py, &server, &agent, "stdio", "auto");
    c.wrap = nobody.iter().map(|s| s.to_string()).collect();
    c.child_env =
        json!({"OBJECTOS_DATA_DIR": env.path("data").display().to_string(), "HOME": "/tmp"});
    let (report, raw) = c.run(json!([
        {"tool": "get_record", "args": {"objectName": "desk_ticket", "recordId": t1}},
        {"tool": "update_record", "args": {"objectName": "desk_ticket", "recordId": t1, "data": {"priority": "high"}}}
    ]));
    assert_eq!(ok(&report["calls"][0])["title"], "from afar", "{raw}");
    ok(&report["calls"][1]);
    assert_eq!(
        get(&server, &alice, "desk_ticket", &t1).1["priority"],
        "high"
    );
}

// ------------------------------------------------------------------ approval re-checks, versions, grants

const QUINN: &str = "quinn@desk.example";

#[test]
fn approval_checks_the_requester_again_as_the_proposal_was_checked() {
    let env = Env::new();
    let server = desk(&env);
    let admin = user_key(&env, "admin@desk.example");
    let rita = user_key(&env, RITA);
    let pat_agent = agent_key(&env, PAT, &[]);
    // Quinn's agent access comes from a set of its own.
    env.run(&["user", "add", QUINN, "--no-password"]).ok();
    env.run(&["permset", "assign", "worker", QUINN]).ok();
    env.run(&["permset", "assign", "agent_only", QUINN]).ok();
    let quinn = user_key(&env, QUINN);
    let quinn_agent = agent_key(&env, QUINN, &[]);
    let sets = |email: &str| env.run(&["--json", "user", "show", email]).ok().stdout;

    // Pat proposes a grant and a change to the app while he holds
    // manage_metadata; Quinn's agent proposes a delete.
    let (_, r) = tool(
        &server,
        &pat_agent,
        "propose_metadata_change",
        json!({"kind": "grant_permission_set", "permissionSet": "reviewer", "user": NORA}),
    );
    let grant = pending_id(&r);
    let (_, r) = tool(
        &server,
        &pat_agent,
        "propose_metadata_change",
        json!({"kind": "add_field", "objectName": "desk_ticket", "fieldName": "sla", "field": {"type": "text"}}),
    );
    let change = pending_id(&r);
    let (t1, _) = ticket(&server, &quinn, "quinn's", 2.0);
    let (_, r) = tool(
        &server,
        &quinn_agent,
        "delete_record",
        json!({"objectName": "desk_ticket", "recordId": t1}),
    );
    let delete = pending_id(&r);

    // Pat loses the set that gave him manage_metadata (he keeps his agent and
    // his records rights): neither proposal applies, nothing is granted or
    // written, and each fails with its reason and one error row.
    env.run(&["permset", "revoke", "governor", PAT]).ok();
    for id in [&grant, &change] {
        let (status, body) = decide(&server, &admin, id, "approve", json!({}));
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("apply_failed")),
            "{body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("manage_metadata"),
            "{body}"
        );
        let (_, view) = pending(&server, &admin, id);
        assert_eq!(view["status"], "failed", "{view}");
        assert!(
            view["result"].as_str().unwrap().contains("manage_metadata"),
            "{view}"
        );
    }
    assert!(!sets(NORA).contains("\"reviewer\""), "nothing granted");
    assert!(
        !env.path(&format!("data/proposals/{change}.objectstack.json"))
            .exists(),
        "no artifact written"
    );

    // Quinn loses agent_access alone (his records rights stay): the delete
    // fails, and the ticket stays.
    env.run(&["permset", "revoke", "agent_only", QUINN]).ok();
    let (status, body) = decide(&server, &rita, &delete, "approve", json!({}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("apply_failed")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("agent_access"),
        "{body}"
    );
    assert_eq!(get(&server, &quinn, "desk_ticket", &t1).0, 200);
    assert_eq!(pending(&server, &rita, &delete).1["status"], "failed");

    let rows = audit(&env);
    for id in [&grant, &change, &delete] {
        let errors: Vec<&Value> = rows
            .iter()
            .filter(|r| r["action"] == "pending.apply" && r["record_id"] == id.as_str())
            .collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            (errors[0]["outcome"].as_str(), errors[0]["code"].as_str()),
            (Some("error"), Some("apply_failed")),
            "{errors:?}"
        );
    }
    assert!(
        !rows
            .iter()
            .any(|r| r["action"] == "permset.assign"
                && r["changes"]["pending_action"] == grant.as_str()),
        "no grant row"
    );
    env.run(&["audit", "verify"]).ok();
}

#[test]
fn approval_applies_only_to_the_version_proposed_against() {
    let env = Env::new();
    let server = desk(&env);
    let alice = user_key(&env, ALICE);
    let agent = agent_key(&env, ALICE, &[]);
    let rita = user_key(&env, RITA);
    let (t1, _) = ticket(&server, &alice, "versioned", 5.0);
    let url = format!("{}/api/v1/data/desk_ticket/{t1}", server.base);
    let etag = |server: &Server| -> String {
        let r = server.client.get(&url).bearer_auth(&alice).send().unwrap();
        assert_eq!(r.status(), 200);
        r.headers()["etag"].to_str().unwrap().to_string()
    };
    let proposed_at = etag(&server);
    let (_, r) = tool(
        &server,
        &agent,
        "update_record",
        json!({"objectName": "desk_ticket", "recordId": t1, "data": {"credit": 50}}),
    );
    let id = pending_id(&r);
    // The action names the version it was proposed against: the record's ETag.
    let (_, view) = pending(&server, &rita, &id);
    assert_eq!(
        format!("\"{}\"", view["recordVersion"]),
        proposed_at,
        "{view}"
    );
    // A write through If-Match with that very ETag bumps the version…
    let r = server
        .client
        .patch(&url)
        .bearer_auth(&alice)
        .header("if-match", &proposed_at)
        .header("content-type", "application/json")
        .body(json!({"title": "versioned, renamed"}).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let now = etag(&server);
    assert_ne!(now, proposed_at);
    // …so the approval is stale, saying which versions, and writes nothing.
    let (status, body) = decide(&server, &rita, &id, "approve", json!({}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("stale")),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("version {}", proposed_at.trim_matches('"')))
            && message.contains(&format!("now {}", now.trim_matches('"'))),
        "{message}"
    );
    let (_, after) = get(&server, &alice, "desk_ticket", &t1);
    assert_eq!(
        (after["credit"].as_f64(), after["title"].as_str()),
        (Some(5.0), Some("versioned, renamed"))
    );
    assert_eq!(pending(&server, &rita, &id).1["status"], "failed");
    assert_eq!(etag(&server), now, "nothing written by the failed apply");

    // Proposed against the current version, it applies.
    let (_, r) = tool(
        &server,
        &agent,
        "update_record",
        json!({"objectName": "desk_ticket", "recordId": t1, "data": {"credit": 60}}),
    );
    let id = pending_id(&r);
    let (status, body) = decide(&server, &rita, &id, "approve", json!({}));
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("applied")),
        "{body}"
    );
    assert_eq!(get(&server, &alice, "desk_ticket", &t1).1["credit"], 60.0);
}

#[test]
fn a_record_the_requester_can_no_longer_read_fails_alike_whatever_happened_to_it() {
    let env = Env::new();
    let server = desk(&env);
    let alice = user_key(&env, ALICE);
    let agent = agent_key(&env, ALICE, &[]);
    let rita = user_key(&env, RITA);
    let vic = user_key(&env, VIC);
    let (edited, _) = ticket(&server, &alice, "to be edited", 1.0);
    let (untouched, _) = ticket(&server, &alice, "left alone", 1.0);
    let propose = |id: &str| {
        let (_, r) = tool(
            &server,
            &agent,
            "update_record",
            json!({"objectName": "desk_ticket", "recordId": id, "data": {"credit": 9}}),
        );
        pending_id(&r)
    };
    let (p_edited, p_untouched) = (propose(&edited), propose(&untouched));
    // Both tickets go to Vic: Alice can no longer read either (private).
    env.run(&[
        "transfer",
        "--from",
        ALICE,
        "--to",
        VIC,
        "--object",
        "desk_ticket",
    ])
    .ok();
    assert_eq!(get(&server, &alice, "desk_ticket", &edited).0, 404);
    // Vic edits one of them: its version moves on.
    let (status, _, raw) = server.call(
        "PATCH",
        &format!("/api/v1/data/desk_ticket/{edited}"),
        Some(&vic),
        Some(json!({"title": "edited by its new owner"})),
    );
    assert_eq!(status, 200, "{raw}");
    // Approved, both fail; what Alice sees of each tells nothing of which was
    // edited (no versions, no "changed since").
    for id in [&p_edited, &p_untouched] {
        let (status, body) = decide(&server, &rita, id, "approve", json!({}));
        assert!(status >= 400, "{status}: {body}");
    }
    let seen = |pending_id: &str, record: &str| {
        let (status, view) = pending(&server, &alice, pending_id);
        assert_eq!(status, 200, "{view}");
        assert_eq!(view["status"], "failed", "{view}");
        let mut view = view.clone();
        for key in [
            "id",
            "recordId",
            "recordVersion",
            "createdAt",
            "decidedAt",
            "expiresAt",
            "proposal",
            "diff",
            "before",
            "summary",
        ] {
            view.as_object_mut().unwrap().remove(key);
        }
        view.to_string()
            .replace(record, "RECORD")
            .replace(pending_id, "ACTION")
    };
    let (a, b) = (seen(&p_edited, &edited), seen(&p_untouched, &untouched));
    let result = pending(&server, &alice, &p_edited).1["result"].to_string();
    assert!(
        result.contains("no `desk_ticket` record") && !result.contains("version"),
        "{result}"
    );
    assert_eq!(a, b);
    // Positive control: Vic, who may read it, is what the edit was visible to.
    assert_eq!(
        get(&server, &vic, "desk_ticket", &edited).1["title"],
        "edited by its new owner"
    );
}

#[test]
fn what_a_new_artifact_closes_to_agents_is_not_applied_from_the_queue() {
    let env = Env::new();
    let server = desk(&env);
    let alice = user_key(&env, ALICE);
    let agent = agent_key(&env, ALICE, &[]);
    let rita = user_key(&env, RITA);
    let (t1, _) = ticket(&server, &alice, "queued", 1.0);
    let queued = |name: &str, args: Value| {
        let (err, r) = tool(&server, &agent, name, args);
        assert!(!err, "{r}");
        pending_id(&r)
    };
    let vendor = queued(
        "create_record",
        json!({"objectName": "desk_vendor", "data": {"name": "Acme"}}),
    );
    let close = queued(
        "run_action",
        json!({"actionName": "close_ticket", "recordId": t1}),
    );
    let delete = queued(
        "delete_record",
        json!({"objectName": "desk_ticket", "recordId": t1}),
    );
    // A new release closes vendors to agents and stops offering the action.
    let mut app: Value = serde_json::from_str(&env.read("desk.json")).unwrap();
    app["manifest"]["version"] = json!("1.1.0");
    app["x-objectos"]["objects"]["desk_vendor"]["agentWrites"] = json!("deny");
    for action in app["actions"].as_array_mut().unwrap() {
        if action["name"] == "close_ticket" {
            action["ai"]["exposed"] = json!(false);
        }
    }
    env.write("desk-next.json", app.to_string());
    env.run(&["build", "desk-next.json", "-o", "desk-next-artifact.json"])
        .ok();
    env.run(&["sign", "desk-next-artifact.json", "-k", "desk-key"])
        .ok();
    env.run(&["apply", "desk-next-artifact.json", "-y"]).ok();
    for (id, why) in [
        (&vendor, "agents may no longer write `desk_vendor` records"),
        (&close, "no longer offered to agents"),
    ] {
        let (status, body) = decide(&server, &rita, id, "approve", json!({}));
        assert_eq!(status, 409, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(why),
            "{body}"
        );
        assert_eq!(pending(&server, &rita, id).1["status"], "failed");
    }
    let (status, vendors, _) = server.get("/api/v1/data/desk_vendor", &alice);
    assert_eq!(status, 200);
    assert_eq!(vendors["records"].as_array().unwrap().len(), 0, "{vendors}");
    assert_eq!(get(&server, &alice, "desk_ticket", &t1).1["status"], "open");
    // Positive control: what the release left open still applies.
    let (status, body) = decide(&server, &rita, &delete, "approve", json!({}));
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("applied")),
        "{body}"
    );
    assert_eq!(get(&server, &alice, "desk_ticket", &t1).0, 404);
}

#[test]
fn a_revocation_and_a_danger_action_wait_and_review_takes_only_its_own_key() {
    let env = Env::new();
    let server = desk(&env);
    let alice = user_key(&env, ALICE);
    let alice_agent = agent_key(&env, ALICE, &[]);
    let pat_agent = agent_key(&env, PAT, &[]);
    let admin = user_key(&env, "admin@desk.example");
    let rita = user_key(&env, RITA);
    let sets = |email: &str| env.run(&["--json", "user", "show", email]).ok().stdout;

    // A revocation is proposed, waits, and is applied on approval (of a grant
    // made in this organization: the first approval makes it).
    let (_, r) = tool(
        &server,
        &pat_agent,
        "propose_metadata_change",
        json!({"kind": "grant_permission_set", "permissionSet": "reviewer", "user": NORA}),
    );
    let grant = pending_id(&r);
    assert_eq!(decide(&server, &admin, &grant, "approve", json!({})).0, 200);
    assert!(sets(NORA).contains("\"reviewer\""));
    let (err, r) = tool(
        &server,
        &pat_agent,
        "propose_metadata_change",
        json!({"kind": "revoke_permission_set", "permissionSet": "reviewer", "user": NORA, "reason": "moved teams"}),
    );
    assert!(!err, "{r}");
    let revoke = pending_id(&r);
    assert!(
        sets(NORA).contains("\"reviewer\""),
        "not revoked before approval"
    );
    let (_, view) = pending(&server, &admin, &revoke);
    assert_eq!(view["kind"], "revoke", "{view}");
    let (status, body) = decide(&server, &admin, &revoke, "approve", json!({}));
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("applied")),
        "{body}"
    );
    assert!(!sets(NORA).contains("\"reviewer\""), "revoked on approval");
    assert!(
        audit(&env).iter().any(|r| r["action"] == "permset.revoke"
            && r["changes"]["pending_action"] == revoke.as_str()
            && r["via"] == "agent"),
        "the revocation is recorded as the requester's, via the agent"
    );

    // An action whose only mark is `variant: danger` waits too, and says so.
    let (t1, _) = ticket(&server, &alice, "rush me", 1.0);
    let (_, listed) = tool(
        &server,
        &alice_agent,
        "list_actions",
        json!({"objectName": "desk_ticket"}),
    );
    let rush = listed["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "rush")
        .expect("rush is listed");
    assert_eq!(
        (&rush["requiresConfirmation"], &rush["destructive"]),
        (&json!(true), &json!(true)),
        "{rush}"
    );
    let (err, r) = tool(
        &server,
        &alice_agent,
        "run_action",
        json!({"actionName": "rush", "objectName": "desk_ticket", "recordId": t1}),
    );
    assert!(!err, "{r}");
    let rushed = pending_id(&r);
    assert_eq!(
        get(&server, &alice, "desk_ticket", &t1).1["priority"],
        "low",
        "not before approval"
    );
    review(&env, &server, &rita, &[&rushed, "--approve"]).ok();
    assert_eq!(
        get(&server, &alice, "desk_ticket", &t1).1["priority"],
        "high"
    );

    // `objectos review` never takes the agents' variable, even when it holds a
    // reviewer's key…
    let run: Run = env
        .cmd()
        .env("OBJECTOS_API_KEY", &rita)
        .args(["review", "--server", &server.base, "--list"])
        .output()
        .unwrap()
        .into();
    let run = run.code(4);
    assert!(run.stderr.contains("no reviewer's key"), "{}", run.stderr);
    // …and reads `--api-key-file` whatever that variable holds.
    let file = env.write("rita.key", format!("{rita}\n"));
    let run: Run = env
        .cmd()
        .env("OBJECTOS_API_KEY", &alice_agent)
        .args([
            "--json",
            "review",
            "--server",
            &server.base,
            "--list",
            "--status",
            "all",
        ])
        .arg("--api-key-file")
        .arg(&file)
        .output()
        .unwrap()
        .into();
    let listed = run.ok().stdout;
    assert!(listed.contains(&rushed), "{listed}");
}
