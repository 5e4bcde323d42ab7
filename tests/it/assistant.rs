//! The built-in assistant against a scripted OpenAI-compatible model server
//! started here (real HTTP on loopback, each test's replies scripted, every
//! request it receives recorded): what reaches the model, the queue, failures
//! of the endpoint, outbound connections (traced with strace), and the
//! transcript as evidence.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::Digest;

use crate::util::*;
use crate::world::*;

// ------------------------------------------------------------------ the scripted model

/// What the model server answers to the next request.
#[derive(Clone)]
enum Reply {
    /// A whole chat completion (`application/json`).
    Whole(Value),
    /// A streamed one: these `data:` payloads, then `[DONE]` when `done`.
    Stream(Vec<Value>, bool),
    /// An HTTP status with this body.
    Status(u16, String),
    /// `text/event-stream` with bytes that are not what it should carry.
    Garbage(String),
    /// Wait this long before answering.
    Slow(Duration),
    /// Wait, then answer so.
    Delayed(Duration, Box<Reply>),
    /// Start a stream with these chunks, then stall this long before ending it.
    Stall(Vec<Value>, Duration),
}

struct ModelServer {
    base: String,
    port: u16,
    /// Every request body received, in order.
    requests: Arc<Mutex<Vec<String>>>,
    /// Each request's `Authorization` header.
    authorizations: Arc<Mutex<Vec<Option<String>>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    _runtime: tokio::runtime::Runtime,
}

impl ModelServer {
    fn start() -> ModelServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Mutex<VecDeque<Reply>>> = Arc::new(Mutex::new(VecDeque::new()));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let (r, s, a) = (requests.clone(), script.clone(), authorizations.clone());
        let app = axum::Router::new().route(
            "/v1/chat/completions",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let (r, s, a) = (r.clone(), s.clone(), a.clone());
                async move {
                    use axum::response::IntoResponse;
                    r.lock().unwrap().push(body);
                    a.lock().unwrap().push(
                        headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string),
                    );
                    let mut reply = s.lock().unwrap().pop_front();
                    if let Some(Reply::Delayed(d, then)) = reply {
                        tokio::time::sleep(d).await;
                        reply = Some(*then);
                    }
                    let sse = |text: String| {
                        ([("content-type", "text/event-stream")], text).into_response()
                    };
                    match reply {
                        None => (axum::http::StatusCode::IM_A_TEAPOT, "no reply scripted")
                            .into_response(),
                        Some(Reply::Whole(v)) => axum::Json(v).into_response(),
                        Some(Reply::Stream(chunks, done)) => {
                            let mut text = String::new();
                            for c in chunks {
                                text.push_str(&format!("data: {c}\n\n"));
                            }
                            if done {
                                text.push_str("data: [DONE]\n\n");
                            }
                            sse(text)
                        }
                        Some(Reply::Status(code, body)) => (
                            axum::http::StatusCode::from_u16(code).unwrap(),
                            [("content-type", "application/json")],
                            body,
                        )
                            .into_response(),
                        Some(Reply::Garbage(text)) => sse(text),
                        Some(Reply::Delayed(..)) => unreachable!("answered above"),
                        Some(Reply::Stall(chunks, wait)) => {
                            let first: String =
                                chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
                            let parts = futures_util::stream::iter([Ok::<_, std::io::Error>(
                                axum::body::Bytes::from(first),
                            )])
                            .chain(futures_util::stream::once(async move {
                                tokio::time::sleep(wait).await;
                                Ok(axum::body::Bytes::from("data: [DONE]\n\n"))
                            }));
                            (
                                [("content-type", "text/event-stream")],
                                axum::body::Body::from_stream(parts),
                            )
                                .into_response()
                        }
                        Some(Reply::Slow(d)) => {
                            tokio::time::sleep(d).await;
                            axum::Json(whole_text("too late")).into_response()
                        }
                    }
                }
            }),
        );
        runtime.spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        ModelServer {
            base: format!("http://127.0.0.1:{port}/v1"),
            port,
            requests,
            authorizations,
            script,
            _runtime: runtime,
        }
    }

    fn script(&self, replies: Vec<Reply>) {
        self.script.lock().unwrap().extend(replies);
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    fn request(&self, n: usize) -> Value {
        serde_json::from_str(&self.requests()[n]).expect("the request is JSON")
    }

    /// Wait until more than `seen` requests have arrived: a turn is then under
    /// way, whatever the load on the machine.
    fn wait_for_request_after(&self, seen: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.requests.lock().unwrap().len() <= seen {
            assert!(
                std::time::Instant::now() < deadline,
                "the model was never asked"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn whole_text(text: &str) -> Value {
    json!({"id": "c", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
}

fn whole_tools(calls: &[(&str, &str, String)]) -> Value {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
        .collect();
    json!({"id": "c", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": calls}, "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
}

fn tool(name: &str, args: Value) -> Reply {
    Reply::Whole(whole_tools(&[("call_1", name, args.to_string())]))
}

fn text(t: &str) -> Reply {
    Reply::Whole(whole_text(t))
}

/// A streamed tool call (its arguments in two pieces), as vLLM and Ollama send it.
fn stream_tool(name: &str, args: Value) -> Reply {
    let args = args.to_string();
    let (a, b) = args.split_at(args.len() / 2);
    Reply::Stream(
        vec![
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0, "id": "call_s", "type": "function", "function": {"name": name, "arguments": a}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": b}}]}, "finish_reason": "tool_calls"}]}),
            json!({"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 7}}),
        ],
        true,
    )
}

fn stream_text(parts: &[&str]) -> Reply {
    let mut chunks: Vec<Value> = parts
        .iter()
        .map(|p| json!({"choices": [{"index": 0, "delta": {"content": p}}]}))
        .collect();
    chunks.push(json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}));
    Reply::Stream(chunks, true)
}

// ------------------------------------------------------------------ the client side

/// Turn the assistant on for `model`.
fn configure(env: &Env, model: &ModelServer, extra: &[(&str, &str)]) {
    env.run(&["settings", "set", "ai.endpoint", &model.base])
        .ok();
    env.run(&["settings", "set", "ai.model", "scripted-7b"])
        .ok();
    for (k, v) in extra {
        env.run(&["settings", "set", k, v]).ok();
    }
}

fn start(server: &Server, key: &str) -> String {
    let (status, body, raw) = server.call(
        "POST",
        "/api/v1/assistant/conversations",
        Some(key),
        Some(json!({"title": "test"})),
    );
    assert_eq!(status, 201, "{raw}");
    body["id"].as_str().unwrap().to_string()
}

/// One turn: (HTTP status, the SSE events as (name, data), the raw body).
fn say(
    server: &Server,
    key: &str,
    conversation: &str,
    content: &str,
) -> (u16, Vec<(String, Value)>, String) {
    let response = server
        .client
        .post(format!(
            "{}/api/v1/assistant/conversations/{conversation}/messages",
            server.base
        ))
        .bearer_auth(key)
        .json(&json!({ "content": content }))
        .send()
        .expect("send the message");
    let status = response.status().as_u16();
    let raw = response.text().unwrap();
    let mut events = Vec::new();
    for block in raw.split("\n\n") {
        let mut name = String::new();
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
        if !name.is_empty() {
            events.push((name, serde_json::from_str(&data).unwrap_or(Value::Null)));
        }
    }
    (status, events, raw)
}

fn events_named<'e>(events: &'e [(String, Value)], name: &str) -> Vec<&'e Value> {
    events
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, d)| d)
        .collect()
}

#[track_caller]
fn done(events: &[(String, Value)]) -> &Value {
    let last = events.last().expect("some events");
    assert_eq!(last.0, "done", "the turn did not end well: {events:?}");
    &last.1
}

fn conversation(server: &Server, key: &str, id: &str) -> (u16, Value) {
    let (status, body, _) = server.get(&format!("/api/v1/assistant/conversations/{id}"), key);
    (status, body)
}

fn audit_rows(env: &Env) -> Vec<Value> {
    env.run(&["--json", "audit", "tail", "-n", "100000"])
        .ok()
        .json()["events"]
        .as_array()
        .unwrap()
        .clone()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

// ------------------------------------------------------------------ tests

#[test]
fn assistant_a_rep_gets_exactly_what_they_may_read_and_no_canary_reaches_the_model() {
    let world = World::build();
    let env = &world.env;
    let server = &world.server;
    let model = ModelServer::start();
    configure(env, &model, &[]);
    let rep = world.key("rep_a");
    let conv = start(server, rep);
    let opp_b = world.id("opp_b").to_string();
    model.script(vec![
        stream_tool("query_records", json!({"objectName": "crm_opportunity"})),
        tool("get_record", json!({"objectName": "crm_opportunity", "recordId": opp_b})),
        tool("query_records", json!({"objectName": "crm_account", "fields": ["name", "integration_token", "credit_limit"]})),
        tool("query_records", json!({"objectName": "crm_opportunity", "where": {"discount_approval_note": {"$startsWith": "C"}}})),
        tool("describe_object", json!({"objectName": "crm_opportunity"})),
        stream_text(&["You have ", "two deals."]),
    ]);
    let (status, events, raw) = say(server, rep, &conv, "Which deals do I have?");
    assert_eq!(status, 200, "{raw}");
    let end = done(&events);
    assert_eq!(end["content"], "You have two deals.");
    assert_eq!(end["toolCalls"], 5);
    let deltas: String = events_named(&events, "delta")
        .iter()
        .map(|d| d["text"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, "You have two deals.", "the answer streams");

    // The records the model got are exactly those the rep may read.
    let requests = model.requests();
    assert_eq!(requests.len(), 6);
    let second = model.request(1);
    let first_result: Value = serde_json::from_str(
        second["messages"].as_array().unwrap().last().unwrap()["content"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let mut ids: Vec<&str> = first_result["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut expected = vec![world.id("opp_a"), world.id("opp_a_won")];
    expected.sort();
    assert_eq!(ids, expected, "{first_result}");
    // Someone else's deal is not found; a field the rep cannot read is
    // refused like on every surface; the refusals went back to the model.
    let results = events_named(&events, "tool_result");
    assert_eq!(results[1]["isError"], true);
    assert_eq!(results[1]["result"]["error"]["code"], "not_found");
    assert_eq!(
        results[3]["result"]["error"]["code"],
        "field_predicate_denied"
    );
    // Every request carries the conversation and the tool definitions, nothing else.
    for r in &requests {
        let v: Value = serde_json::from_str(r).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "model",
                "messages",
                "tools",
                "stream",
                "stream_options",
                "max_tokens"
            ]
        );
        assert_eq!(v["model"], "scripted-7b");
        assert_eq!(v["tools"].as_array().unwrap().len(), 12);
    }

    // The canary table: nowhere in what the model received, the stored
    // transcript, the export, or the answer. Positive control: what the rep
    // may read did reach the model.
    let (status, stored) = conversation(server, rep, &conv);
    assert_eq!(status, 200);
    let export = env
        .run(&["assistant", "export", "--user", email("rep_a")])
        .ok()
        .stdout;
    let places = [
        ("model requests", requests.join("\n")),
        ("the stored transcript", stored.to_string()),
        ("the operator's export", export.clone()),
        ("the answer", raw.clone()),
    ];
    for (place, text) in &places {
        for canary in [
            CANARY_NOTE.to_string(),
            CANARY_TOKEN.to_string(),
            CANARY_CREDIT.to_string(),
            SECRET_DEAL_B.to_string(),
            SECRET_DEAL_G.to_string(),
        ] {
            assert!(!text.contains(&canary), "{canary} reached {place}");
        }
    }
    assert!(
        places[0].1.contains(SECRET_DEAL_A),
        "positive control: the rep's own deal reached the model"
    );
    assert!(export.contains(&conv) && export.contains("Which deals do I have?"));
    world.assert_canaries_in_place();

    // Nobody else reads the conversation: another rep, an auditor (no
    // `agent_access`), and a user without it.
    let (status, _) = conversation(server, world.key("rep_b"), &conv);
    assert_eq!(
        status, 404,
        "another user's conversation does not exist for them"
    );
    let (status, _, _) = say(server, world.key("rep_b"), &conv, "hello");
    assert_eq!(status, 404);
    let (_, list, _) = server.get("/api/v1/assistant/conversations", world.key("rep_b"));
    assert_eq!(list["conversations"], json!([]));
    let (_, list, _) = server.get("/api/v1/assistant/conversations", rep);
    assert_eq!(list["conversations"][0]["id"], conv.as_str());
    // An agent key is for MCP, not here.
    let agent = env
        .run(&["apikey", "create", email("rep_a"), "--agent"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let (status, body) = conversation(server, &agent, &conv);
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "agent_key_not_allowed");
    for who in ["auditor", "fin"] {
        let (status, body) = conversation(server, world.key(who), &conv);
        assert_eq!(status, 403, "{who}: {body}");
        assert_eq!(body["error"]["code"], "agent_access_required");
    }
    // The auditor sees who talked when, with the hashes, not what was said.
    let (status, audit, raw_audit) =
        server.get("/api/v1/audit/events?limit=1000", world.key("auditor"));
    assert_eq!(status, 200);
    let messages: Vec<&Value> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "assistant.message")
        .collect();
    assert!(messages.len() >= 13, "{}", messages.len());
    assert!(messages.iter().all(|m| {
        m["changes"]["sha256"]
            .as_str()
            .is_some_and(|h| h.len() == 64)
    }));
    assert!(!raw_audit.contains("Which deals do I have?") && !raw_audit.contains("two deals"));
    assert!(raw_audit.contains("assistant.request"));
}

#[test]
fn assistant_sensitive_values_are_masked_unless_the_operator_says_otherwise() {
    let world = World::build();
    let env = &world.env;
    let server = &world.server;
    let model = ModelServer::start();
    // Whole (not streamed) answers this time.
    configure(env, &model, &[("ai.stream", "false")]);
    // The manager may read the sensitive note; with `agent_access` (from the
    // rep's set) they may use the assistant.
    env.run(&["permset", "assign", "sales_rep", email("manager")])
        .ok();
    let key = world.key("manager");
    let conv = start(server, key);
    let query =
        json!({"objectName": "crm_opportunity", "fields": ["name", "discount_approval_note"]});
    let grouped = json!({"objectName": "crm_opportunity", "aggregations": [{"function": "count", "alias": "n"}, {"function": "max", "field": "discount_approval_note", "alias": "top"}], "groupBy": [{"field": "discount_approval_note", "alias": "note"}]});
    model.script(vec![
        tool("query_records", query.clone()),
        tool(
            "get_record",
            json!({"objectName": "crm_opportunity", "recordId": world.id("opp_a")}),
        ),
        tool("aggregate_records", grouped),
        // Guessing a masked value a test at a time, or sorting by it: refused.
        tool(
            "query_records",
            json!({"objectName": "crm_opportunity", "where": {"$and": [{"discount_approval_note": {"$startsWith": &CANARY_NOTE[..3]}}]}}),
        ),
        tool(
            "query_records",
            json!({"objectName": "crm_opportunity", "orderBy": [{"field": "discount_approval_note"}]}),
        ),
        // Positive control: a filter on a field that is not masked runs.
        tool(
            "query_records",
            json!({"objectName": "crm_opportunity", "where": {"name": {"$ne": "nothing"}}, "limit": 1}),
        ),
        text("done"),
    ]);
    let (_, events, raw) = say(server, key, &conv, "Show the notes");
    done(&events);
    let results = events_named(&events, "tool_result");
    assert!(
        results[..3].iter().all(|r| r["isError"] == false),
        "{results:?}"
    );
    for refused in &results[3..5] {
        assert_eq!(refused["isError"], true, "{refused}");
        assert_eq!(
            refused["result"]["error"]["code"], "field_masked",
            "{refused}"
        );
    }
    assert_eq!(results[5]["isError"], false, "{:?}", results[5]);
    assert_eq!(results[1]["result"]["discount_approval_note"], "[masked]");
    assert_eq!(results[2]["result"]["rows"][0]["note"], "[masked]");
    assert_eq!(results[2]["result"]["rows"][0]["top"], "[masked]");
    let requests = model.requests().join("\n");
    assert_eq!(model.request(0)["stream"], false);
    assert!(
        !requests.contains(CANARY_NOTE),
        "a sensitive value reached the model"
    );
    assert!(requests.contains("[masked]"));
    assert!(!raw.contains(CANARY_NOTE));
    let (_, stored) = conversation(server, key, &conv);
    assert!(!stored.to_string().contains(CANARY_NOTE));
    // Positive control: the manager does read it over REST, and with masking
    // off for the object the same call carries it.
    let (_, rest, _) = server.get(
        &format!("/api/v1/data/crm_opportunity/{}", world.id("opp_a")),
        key,
    );
    assert_eq!(rest["record"]["discount_approval_note"], CANARY_NOTE);
    // A user who may not read the field at all gets what REST answers them
    // (`field_predicate_denied`), not "masked".
    let rep = world.key("rep_a");
    let rep_conv = start(server, rep);
    model.script(vec![
        tool(
            "query_records",
            json!({"objectName": "crm_opportunity", "where": {"discount_approval_note": "x"}}),
        ),
        text("done"),
    ]);
    let (_, events, _) = say(server, rep, &rep_conv, "Guess the note");
    done(&events);
    let results = events_named(&events, "tool_result");
    assert_eq!(results[0]["isError"], true, "{results:?}");
    assert_eq!(
        results[0]["result"]["error"]["code"], "field_predicate_denied",
        "{results:?}"
    );
    let (status, body, _) = server.call(
        "POST",
        "/api/v1/query",
        Some(rep),
        Some(json!({"object": "crm_opportunity", "where": {"discount_approval_note": "x"}})),
    );
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("field_predicate_denied"))
    );
    let requests_before_unmask = model.requests().len();
    env.run(&["settings", "set", "ai.unmask.crm_opportunity", "true"])
        .ok();
    model.script(vec![
        tool("query_records", query),
        // Unmasked, the field may be filtered on too.
        tool(
            "query_records",
            json!({"objectName": "crm_opportunity", "where": {"discount_approval_note": {"$startsWith": &CANARY_NOTE[..3]}}}),
        ),
        text("done"),
    ]);
    let (_, events, _) = say(server, key, &conv, "Again");
    done(&events);
    let results = events_named(&events, "tool_result");
    assert!(results.iter().all(|r| r["isError"] == false), "{results:?}");
    assert!(
        model.requests()[requests_before_unmask..]
            .join("\n")
            .contains(CANARY_NOTE)
    );
}

#[test]
fn assistant_a_delete_queues_and_a_manager_approves_it_with_review() {
    let world = World::build();
    let env = &world.env;
    let server = &world.server;
    let model = ModelServer::start();
    configure(env, &model, &[]);
    let rep = world.key("rep_a");
    let target = world.id("opp_a_won").to_string();
    let conv = start(server, rep);
    model.script(vec![
        tool(
            "delete_record",
            json!({"objectName": "crm_opportunity", "recordId": target}),
        ),
        text("The delete waits for a reviewer's approval."),
    ]);
    let (_, events, _) = say(server, rep, &conv, "Delete the won deal");
    let end = done(&events);
    assert!(
        end["content"]
            .as_str()
            .unwrap()
            .contains("waits for a reviewer")
    );
    let pending = events_named(&events, "pending_approval");
    assert_eq!(pending.len(), 1, "{events:?}");
    let id = pending[0]["pendingActionId"].as_str().unwrap().to_string();
    // What the model was told: pending, not done.
    let told = model.request(1)["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        told.contains("pending_approval") && told.contains(&id),
        "{told}"
    );
    let (status, _, _) = server.get(&format!("/api/v1/data/crm_opportunity/{target}"), rep);
    assert_eq!(status, 200, "nothing deleted yet");
    let rows = audit_rows(env);
    assert!(
        rows.iter().any(|r| r["action"] == "assistant.proposal"
            && r["changes"]["pending_action"] == id.as_str())
    );
    assert!(rows.iter().any(|r| r["action"] == "assistant.tool_call"
        && r["changes"]["tool"] == "delete_record"
        && r["via"] == "agent"));

    // The manager approves with `objectos review`: applied.
    let approved = env
        .cmd()
        .env("OBJECTOS_REVIEW_KEY", world.key("manager"))
        .args(["review", "--server", &server.base, &id, "--approve"])
        .output()
        .unwrap();
    let approved: Run = approved.into();
    approved.ok();
    let (status, _, _) = server.get(&format!("/api/v1/data/crm_opportunity/{target}"), rep);
    assert_eq!(status, 404, "the approved delete was applied");
}

#[test]
fn assistant_bad_arguments_unknown_tools_and_limits_go_back_to_the_model() {
    let world = World::build();
    let env = &world.env;
    let server = &world.server;
    let model = ModelServer::start();
    configure(env, &model, &[("ai.max_tool_calls", "3")]);
    let rep = world.key("rep_a");
    let conv = start(server, rep);
    model.script(vec![
        Reply::Whole(whole_tools(&[
            ("a", "query_records", "{not json".to_string()),
            ("b", "drop_database", "{}".to_string()),
            ("c", "query_records", json!({"objectName": 5}).to_string()),
        ])),
        text("Sorry, those failed."),
    ]);
    let (_, events, _) = say(server, rep, &conv, "Try things");
    done(&events);
    let next = model.request(1);
    let results: Vec<Value> = next["messages"].as_array().unwrap()[3..6]
        .iter()
        .map(|m| {
            assert_eq!(m["role"], "tool");
            serde_json::from_str(m["content"].as_str().unwrap()).unwrap()
        })
        .collect();
    assert_eq!(results[0]["error"]["code"], "invalid_arguments");
    assert_eq!(results[1]["error"]["code"], "not_found");
    assert!(
        results[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("drop_database")
    );
    assert_eq!(results[2]["error"]["code"], "invalid_arguments");

    // The conversation goes on; past the tool-call limit a call is answered
    // "not run" and the turn stops, every call with its result.
    model.script(vec![
        tool("list_objects", json!({})),
        tool("list_objects", json!({})),
        tool("list_objects", json!({})),
        tool("list_objects", json!({})),
    ]);
    let (_, events, _) = say(server, rep, &conv, "Loop");
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error", "{events:?}");
    assert_eq!(data["code"], "turn_limit");
    assert_eq!(model.requests().len(), 6);
    let (_, stored) = conversation(server, rep, &conv);
    let messages = stored["messages"].as_array().unwrap();
    let last = messages.last().unwrap();
    assert_eq!(last["role"], "tool");
    assert!(last["content"].as_str().unwrap().contains("turn_limit"));
    env.run(&["audit", "verify"]).ok();
}

#[test]
fn assistant_a_slow_failing_or_garbled_endpoint_ends_the_turn_cleanly() {
    let world = World::build();
    let env = &world.env;
    let server = &world.server;
    let model = ModelServer::start();
    configure(env, &model, &[("ai.timeout", "1")]);
    let rep = world.key("rep_a");
    let conv = start(server, rep);
    let cases = [
        (
            "500",
            Reply::Status(500, r#"{"error":{"message":"out of memory"}}"#.into()),
            "model_error",
        ),
        (
            "garbage",
            Reply::Garbage("data: {not json\n\n".into()),
            "model_garbage",
        ),
        (
            "cut short",
            Reply::Stream(
                vec![json!({"choices": [{"index": 0, "delta": {"content": "half"}}]})],
                false,
            ),
            "model_incomplete",
        ),
        ("slow", Reply::Slow(Duration::from_secs(3)), "model_timeout"),
        (
            "stalls mid-stream",
            Reply::Stall(
                vec![json!({"choices": [{"index": 0, "delta": {"content": "thinking"}}]})],
                Duration::from_secs(3),
            ),
            "model_timeout",
        ),
        (
            "no choices",
            Reply::Whole(json!({"nothing": true})),
            "model_garbage",
        ),
        // One endless line: bounded all the same.
        (
            "too large",
            Reply::Garbage(format!("data: {}", "x".repeat(9 << 20))),
            "model_garbage",
        ),
    ];
    let mut count = 1; // the instructions
    for (what, reply, code) in cases {
        model.script(vec![reply]);
        let (status, events, _) = say(server, rep, &conv, &format!("case {what}"));
        assert_eq!(status, 200);
        let (name, data) = events.last().unwrap();
        assert_eq!(name, "error", "{what}: {events:?}");
        assert_eq!(data["code"], code, "{what}: {data}");
        assert!(!data["message"].as_str().unwrap().is_empty());
        // Consistent: the user's message, nothing half-written after it.
        count += 1;
        let (_, stored) = conversation(server, rep, &conv);
        let messages = stored["messages"].as_array().unwrap();
        assert_eq!(messages.len(), count, "{what}");
        assert_eq!(messages.last().unwrap()["role"], "user", "{what}");
    }
    let rows = audit_rows(env);
    let failed: Vec<&Value> = rows
        .iter()
        .filter(|r| r["action"] == "assistant.request" && r["outcome"] == "error")
        .collect();
    assert_eq!(failed.len(), 7);
    // And the next turn works.
    model.script(vec![text("Back again.")]);
    let (_, events, _) = say(server, rep, &conv, "Still there?");
    assert_eq!(done(&events)["content"], "Back again.");
    env.run(&["audit", "verify"]).ok();
}

/// `objectos serve` under `strace -f -e trace=connect`: (server, trace file).
fn traced_server(env: &Env) -> (Server, std::path::PathBuf) {
    let trace = env.path(&format!("connect-{}.trace", uuid_like()));
    let log = env.path(&format!("serve-{}.log", uuid_like()));
    let mut cmd = std::process::Command::new("strace");
    cmd.current_dir(env.dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.dir.path())
        .env("NO_COLOR", "1")
        .env("OBJECTOS_DATA_DIR", env.path("data"))
        // A proxy in the environment must not divert model requests.
        .env("HTTP_PROXY", "http://192.0.2.1:3128")
        .env("HTTPS_PROXY", "http://192.0.2.1:3128")
        .env("ALL_PROXY", "http://192.0.2.1:3128")
        .args(["-f", "-e", "trace=connect", "-o"])
        .arg(&trace)
        .args([BIN, "serve", "--listen", "127.0.0.1:0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let child = cmd.spawn().expect("run strace");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let addr = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(at) = text.find("addr=") {
            break text[at + 5..]
                .split_whitespace()
                .next()
                .unwrap()
                .trim_matches('"')
                .to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not start:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        Server {
            child: Some(child),
            base: format!("http://{addr}"),
            log,
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        },
        trace,
    )
}

/// SIGTERM to the traced `serve` (strace's child), then wait for strace, which
/// exits with its code.
fn stop_traced(mut server: Server) -> i32 {
    let mut strace = server.child.take().unwrap();
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", strace.id()))
        .unwrap_or_default();
    let serve: i32 = children
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("strace runs serve");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(serve),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    strace.wait().unwrap().code().unwrap_or(-1)
}

/// The network connections in a trace (AF_INET and AF_INET6; local sockets
/// such as the name service's are not the network).
fn network_connects(trace: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(trace)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("connect(") && (l.contains("AF_INET") || l.contains("AF_INET6")))
        .map(str::to_string)
        .collect()
}

#[test]
fn assistant_without_configuration_nothing_connects_and_with_it_only_the_endpoint() {
    if !have_tool("strace") {
        return;
    }
    // On SQLite: on PostgreSQL the database connection is itself outbound.
    let env = Env::sqlite();
    crate::store::ready(&env);
    env.run(&["user", "add", email("rep_a"), "--no-password"])
        .ok();
    env.run(&["permset", "assign", "sales_rep", email("rep_a")])
        .ok();
    let rep = env
        .run(&["apikey", "create", email("rep_a")])
        .ok()
        .stdout
        .trim()
        .to_string();
    let (server, trace) = traced_server(&env);
    let (status, body, _) = server.call(
        "POST",
        "/api/v1/assistant/conversations",
        Some(&rep),
        Some(json!({})),
    );
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "assistant_off");
    env.run(&["doctor"]).ok();
    let doctor = env.run(&["--json", "doctor"]).ok().json();
    let check = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "assistant")
        .unwrap()
        .clone();
    assert_eq!(check["status"], "ok");
    assert!(check["detail"].as_str().unwrap().contains("off"));

    // Configured: the conversation works, and connects only to the endpoint,
    // even with a proxy in the environment.
    let model = ModelServer::start();
    configure(&env, &model, &[]);
    let conv = start(&server, &rep);
    model.script(vec![tool("list_objects", json!({})), text("Hello.")]);
    let (_, events, _) = say(&server, &rep, &conv, "hi");
    done(&events);
    assert_eq!(model.requests().len(), 2);
    assert_eq!(stop_traced(server), 0);
    let connects = network_connects(&trace);
    let port = format!("sin_port=htons({})", model.port);
    assert!(
        !connects.is_empty(),
        "positive control: the model requests are in the trace"
    );
    for line in &connects {
        assert!(
            line.contains(&port) && line.contains("127.0.0.1"),
            "a connection elsewhere than the endpoint: {line}"
        );
    }
    // Before configuration, none at all: the trace's connections are all to
    // the model server (checked above), and it was started only afterwards.
    let doctor = env.run(&["--json", "doctor"]).ok().json();
    let check = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "assistant")
        .unwrap()
        .clone();
    assert_eq!(check["status"], "ok", "{check}");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("{}/chat/completions", model.base))
    );
    env.run(&["settings", "set", "ai.endpoint", "https://8.8.8.8/v1"])
        .ok();
    let doctor = env.run(&["--json", "doctor"]).ok().json();
    let check = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "assistant")
        .unwrap()
        .clone();
    assert_eq!(check["status"], "warn", "{check}");
    // Settings the assistant could not use are refused when set.
    env.run(&["settings", "set", "ai.api_key", "sk-clear"])
        .code(1);
    env.run(&["settings", "set", "ai.endpoint", "ftp://x"])
        .code(1);
    env.run(&["settings", "set", "ai.timeout", "0"]).code(1);
}

/// SQL that edits the stored bytes of the model's answer at idx 4.
fn replace_in_answer(from: &str, to: &str) -> String {
    if crate::util::on_postgres() {
        format!(
            "UPDATE objectos_assistant_messages SET response = convert_to(replace(convert_from(response, 'UTF8'), '{from}', '{to}'), 'UTF8') WHERE idx = 4"
        )
    } else {
        format!(
            "UPDATE objectos_assistant_messages SET response = CAST(replace(CAST(response AS TEXT), '{from}', '{to}') AS BLOB) WHERE idx = 4"
        )
    }
}

#[test]
fn assistant_transcript_hashes_match_the_chain_and_an_edit_is_detected() {
    let world = World::build();
    let env = &world.env;
    let server = &world.server;
    let model = ModelServer::start();
    configure(env, &model, &[]);
    env.run_in(
        &["settings", "set", "ai.api_key", "-", "--secret"],
        "sk-CANARY-KEY-5150",
    )
    .ok();
    let rep = world.key("rep_a");
    let conv = start(server, rep);
    model.script(vec![
        stream_tool("query_records", json!({"objectName": "crm_account"})),
        stream_text(&["Two ", "accounts."]),
    ]);
    let (_, events, _) = say(server, rep, &conv, "My accounts?");
    done(&events);

    // Each request row holds the SHA-256 of exactly the bytes the model server
    // received, and the stored messages rebuild them.
    let rows = audit_rows(env);
    let requests: Vec<&Value> = rows
        .iter()
        .filter(|r| r["action"] == "assistant.request")
        .collect();
    let received = model.requests();
    assert_eq!(requests.len(), received.len());
    for (row, body) in requests.iter().zip(&received) {
        assert_eq!(row["changes"]["request_sha256"], sha256(body.as_bytes()));
        assert_eq!(row["changes"]["request_bytes"], body.len());
        assert_eq!(
            row["changes"]["endpoint"],
            format!("{}/chat/completions", model.base)
        );
        assert_eq!(row["changes"]["model"], "scripted-7b");
        assert_eq!(row["outcome"], "success");
        assert!(
            row["changes"]["response_sha256"]
                .as_str()
                .is_some_and(|h| h.len() == 64)
        );
    }
    assert_eq!(requests[0]["changes"]["prompt_tokens"], 20);
    // The endpoint's key goes to the endpoint only, never in clear anywhere else.
    assert!(
        model
            .authorizations
            .lock()
            .unwrap()
            .iter()
            .all(|a| a.as_deref() == Some("Bearer sk-CANARY-KEY-5150"))
    );
    let everything = format!(
        "{}{}{}",
        serde_json::to_string(&rows).unwrap(),
        std::fs::read_to_string(&server.log).unwrap(),
        env.run(&["settings", "list"]).ok().stdout
    );
    assert!(!everything.contains("CANARY-KEY-5150"));
    for file in ["data/objectos.db", "data/objectos.db-wal"] {
        let bytes = std::fs::read(env.path(file)).unwrap_or_default();
        assert!(
            !bytes.windows(15).any(|w| w == b"CANARY-KEY-5150"),
            "the key is in {file} in clear"
        );
    }
    // The operator's export, with its report.
    let report = env
        .run(&["--json", "assistant", "export", "-o", "transcripts.jsonl"])
        .ok()
        .json();
    assert_eq!(report["format"], "objectos.assistant.export/1");
    assert_eq!(report["conversations"], 1);
    assert_eq!(report["messages"], 5);
    let line: Value = serde_json::from_str(env.read("transcripts.jsonl").trim()).unwrap();
    for m in line["messages"].as_array().unwrap() {
        assert_eq!(m["sha256"], sha256(m["body"].as_str().unwrap().as_bytes()));
    }
    // Each answer is stored with the exact bytes received, which the request's
    // row vouches for.
    use base64::Engine;
    let answers: Vec<String> = line["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "assistant")
        .map(|m| {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(m["response_base64"].as_str().unwrap())
                .unwrap();
            assert!(String::from_utf8_lossy(&raw).contains("data: [DONE]"));
            sha256(&raw)
        })
        .collect();
    let recorded: Vec<String> = requests
        .iter()
        .map(|r| {
            r["changes"]["response_sha256"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(answers, recorded);
    let (_, stored) = conversation(server, rep, &conv);
    for m in stored["messages"].as_array().unwrap() {
        assert!(
            rows.iter().any(
                |r| r["action"] == "assistant.message" && r["changes"]["sha256"] == m["sha256"]
            )
        );
    }
    let ok = env.run(&["audit", "verify"]).ok();
    assert!(ok.stderr.contains("assistant: 5 messages"), "{}", ok.stderr);

    // An edited message is found, whatever else is edited with it.
    let db = env.db();
    sql(
        &db,
        "UPDATE objectos_assistant_messages SET body = replace(body, 'My accounts?', 'Nothing asked') WHERE role = 'user'",
    );
    let broken = env.run(&["audit", "verify"]).code(3);
    assert!(broken.stderr.contains("was altered"), "{}", broken.stderr);
    let doctor = env.run(&["doctor"]).code(1);
    assert!(doctor.stdout.contains("was altered"), "{}", doctor.stdout);
    sql(
        &db,
        &format!(
            "UPDATE objectos_assistant_messages SET sha256 = '{}' WHERE role = 'user'",
            sha256(br#"{"role":"user","content":"Nothing asked"}"#)
        ),
    );
    env.run(&["audit", "verify"]).code(3);
    let original = r#"{"role":"user","content":"My accounts?"}"#;
    sql(
        &db,
        &format!(
            "UPDATE objectos_assistant_messages SET body = '{original}', sha256 = '{}' WHERE role = 'user'",
            sha256(original.as_bytes())
        ),
    );
    env.run(&["audit", "verify"]).ok();
    // An edited answer's raw bytes too.
    sql(&db, &replace_in_answer("accounts", "contacts"));
    let broken = env.run(&["audit", "verify"]).code(3);
    assert!(
        broken.stderr.contains("is not the response"),
        "{}",
        broken.stderr
    );
    sql(&db, &replace_in_answer("contacts", "accounts"));
    env.run(&["audit", "verify"]).ok();
    // A removed message too.
    sql(
        &db,
        "DELETE FROM objectos_assistant_messages WHERE idx = (SELECT max(idx) FROM objectos_assistant_messages)",
    );
    let broken = env.run(&["audit", "verify"]).code(3);
    assert!(
        broken.stderr.contains("message 4 of conversation"),
        "{}",
        broken.stderr
    );
}

#[test]
fn assistant_objectos_chat_streams_the_answer_tool_calls_and_approvals() {
    let world = World::build();
    let env = &world.env;
    let server = &world.server;
    let model = ModelServer::start();
    configure(env, &model, &[]);
    let target = world.id("opp_a_won").to_string();
    model.script(vec![
        tool(
            "delete_record",
            json!({"objectName": "crm_opportunity", "recordId": target}),
        ),
        stream_text(&["Queued ", "for review."]),
    ]);
    let run: Run = env
        .cmd()
        .env("OBJECTOS_API_KEY", world.key("rep_a"))
        .args([
            "chat",
            "--server",
            &server.base,
            "delete",
            "the",
            "won",
            "deal",
        ])
        .output()
        .unwrap()
        .into();
    let run = run.ok();
    assert_eq!(run.stdout, "Queued for review.\n");
    assert!(
        run.stderr.contains("[tool] delete_record"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("[pending approval]"), "{}", run.stderr);
    assert!(model.request(0)["messages"][1]["content"] == "delete the won deal");

    // JSON lines for scripts; a user without `agent_access` is refused (exit 4).
    model.script(vec![text("Hi.")]);
    let run: Run = env
        .cmd()
        .env("OBJECTOS_API_KEY", world.key("rep_a"))
        .args(["--json", "chat", "--server", &server.base, "hello"])
        .output()
        .unwrap()
        .into();
    let run = run.ok();
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().all(|l| l["format"] == "objectos.chat/1"));
    assert_eq!(lines.last().unwrap()["event"], "done");
    let run: Run = env
        .cmd()
        .env("OBJECTOS_API_KEY", world.key("fin"))
        .args(["chat", "--server", &server.base, "hello"])
        .output()
        .unwrap()
        .into();
    run.code(4);

    // A session token works as well as a key.
    env.run(&[
        "user",
        "set-password",
        email("rep_a"),
        "--password-file",
        "pw",
    ])
    .ok();
    let (status, login, raw) = server.call(
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"email": email("rep_a"), "password": crate::store::PASSWORD})),
    );
    assert_eq!(status, 200, "{raw}");
    let token = login["token"].as_str().unwrap().to_string();
    model.script(vec![text("Signed in.")]);
    let run: Run = env
        .cmd()
        .env("OBJECTOS_API_KEY", &token)
        .args(["chat", "--server", &server.base, "hello"])
        .output()
        .unwrap()
        .into();
    assert_eq!(run.ok().stdout, "Signed in.\n");

    // Messages piped one per line go into one conversation; nothing piped is
    // an error with a hint, and starts no conversation.
    model.script(vec![text("One."), text("Two.")]);
    let mut piped = env.cmd();
    piped
        .env("OBJECTOS_API_KEY", world.key("rep_b"))
        .args(["chat", "--server", &server.base]);
    let run: Run = {
        use std::io::Write;
        let mut child = piped
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"first\n\nsecond\n")
            .unwrap();
        child.wait_with_output().unwrap().into()
    };
    let run = run.ok();
    assert_eq!(run.stdout, "One.\nTwo.\n");
    let (_, list, _) = server.get("/api/v1/assistant/conversations", world.key("rep_b"));
    assert_eq!(list["conversations"].as_array().unwrap().len(), 1);
    let run: Run = env
        .cmd()
        .env("OBJECTOS_API_KEY", world.key("rep_b"))
        .args(["chat", "--server", &server.base])
        .output()
        .unwrap()
        .into();
    let run = run.code(1);
    assert!(run.stderr.contains("no message to send"), "{}", run.stderr);
    let (_, list, _) = server.get("/api/v1/assistant/conversations", world.key("rep_b"));
    assert_eq!(list["conversations"].as_array().unwrap().len(), 1);
}

#[test]
fn assistant_a_user_disabled_mid_turn_is_stopped_before_the_tools_run() {
    let world = World::build();
    let env = &world.env;
    let server = &world.server;
    let model = ModelServer::start();
    configure(env, &model, &[]);
    let rep = world.key("rep_a").to_string();
    let target = world.id("opp_a_won").to_string();
    let conv = start(server, &rep);
    model.script(vec![Reply::Delayed(
        Duration::from_secs(2),
        Box::new(tool(
            "delete_record",
            json!({"objectName": "crm_opportunity", "recordId": target}),
        )),
    )]);
    let seen = model.requests().len();
    let (base, key, id) = (server.base.clone(), rep.clone(), conv.clone());
    let talking = std::thread::spawn(move || {
        let client = reqwest::blocking::Client::new();
        client
            .post(format!(
                "{base}/api/v1/assistant/conversations/{id}/messages"
            ))
            .bearer_auth(key)
            .json(&json!({"content": "delete it"}))
            .send()
            .unwrap()
            .text()
            .unwrap()
    });
    // While the model thinks, the user is disabled.
    model.wait_for_request_after(seen);
    env.run(&["user", "disable", email("rep_a")]).ok();
    let raw = talking.join().unwrap();
    assert!(raw.contains("event: error"), "{raw}");
    assert!(raw.contains("unauthenticated"), "{raw}");
    assert!(!raw.contains("pending_approval"), "{raw}");
    // Nothing queued; the conversation stays whole (the call answered).
    let (_, pending, _) = server.get("/api/v1/pending-actions?status=all", world.key("manager"));
    assert_eq!(pending["pendingActions"], json!([]), "{pending}");
    let messages: Vec<Vec<String>> = sql_query(
        &env.db(),
        "SELECT role FROM objectos_assistant_messages ORDER BY idx",
    );
    assert_eq!(
        messages.concat(),
        ["system", "user", "assistant", "tool"],
        "every tool call has its result"
    );
    let rows = audit_rows(env);
    assert!(
        rows.iter()
            .any(|r| r["action"] == "assistant.access" && r["outcome"] == "denied")
    );
    assert!(!rows.iter().any(|r| r["action"] == "assistant.tool_call"));
    env.run(&["audit", "verify"]).ok();
}

#[test]
fn assistant_one_turn_at_a_time_and_the_token_limit_stops_a_turn() {
    let world = World::build();
    let env = &world.env;
    let server = &world.server;
    let model = ModelServer::start();
    configure(env, &model, &[]);
    let rep = world.key("rep_a").to_string();
    let conv = start(server, &rep);
    model.script(vec![Reply::Delayed(
        Duration::from_secs(2),
        Box::new(text("First.")),
    )]);
    let seen = model.requests().len();
    let (base, key, id) = (server.base.clone(), rep.clone(), conv.clone());
    let first = std::thread::spawn(move || {
        reqwest::blocking::Client::new()
            .post(format!(
                "{base}/api/v1/assistant/conversations/{id}/messages"
            ))
            .bearer_auth(key)
            .json(&json!({"content": "one"}))
            .send()
            .unwrap()
            .text()
            .unwrap()
    });
    model.wait_for_request_after(seen);
    let (status, _, raw) = say(server, &rep, &conv, "two");
    assert_eq!(status, 409, "{raw}");
    assert!(raw.contains("turn_in_progress"), "{raw}");
    let first = first.join().unwrap();
    assert!(first.contains("event: done"), "{first}");
    let (_, stored) = conversation(server, &rep, &conv);
    let roles: Vec<&str> = stored["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant"],
        "the refused message is not stored"
    );

    // Past `ai.max_turn_tokens` (each scripted answer reports 15), the calls
    // asked for are answered "not run" and the turn stops.
    env.run(&["settings", "set", "ai.max_turn_tokens", "10"])
        .ok();
    model.script(vec![tool("list_objects", json!({}))]);
    let (_, events, _) = say(server, &rep, &conv, "objects?");
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error", "{events:?}");
    assert_eq!(data["code"], "turn_limit");
    assert!(
        data["message"]
            .as_str()
            .unwrap()
            .contains("ai.max_turn_tokens")
    );
    let rows = audit_rows(env);
    assert!(
        !rows.iter().any(|r| r["action"] == "assistant.tool_call"),
        "no call was run"
    );
    env.run(&["audit", "verify"]).ok();
}

#[test]
fn assistant_objectos_chat_prompts_on_a_real_terminal() {
    let Some(py) = venv_python("pexpect") else {
        return;
    };
    let world = World::build();
    let env = &world.env;
    let server = &world.server;
    let model = ModelServer::start();
    configure(env, &model, &[]);
    model.script(vec![
        stream_tool("list_objects", json!({})),
        stream_text(&["You may read ", "seven objects."]),
    ]);
    let out = std::process::Command::new(&py)
        .arg(repo().join("tests/interop/assistant/chat_pty.py"))
        .args([BIN, &server.base, "what may I read", "seven objects."])
        .env("OBJECTOS_API_KEY", world.key("rep_a"))
        .env("OBJECTOS_DATA_DIR", env.path("not-used"))
        .output()
        .unwrap();
    let transcript = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the dialogue failed:\n{transcript}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(transcript.contains("[tool] list_objects"), "{transcript}");
    assert!(
        transcript.contains("You may read seven objects."),
        "{transcript}"
    );
    assert!(
        !env.path("not-used").exists(),
        "chat never touches a data dir"
    );
    assert_eq!(
        model.request(0)["messages"][1]["content"],
        "what may I read"
    );
}

// ------------------------------------------------------------------ the agent rules, for the assistant too

#[test]
fn assistant_a_user_with_administrative_rights_gets_none_of_them_through_it() {
    use crate::agents::{NORA, PAT, desk, ticket, user_key};
    let env = Env::new();
    let server = desk(&env);
    let model = ModelServer::start();
    configure(&env, &model, &[]);
    // Pat holds manage_permissions, manage_metadata, manage_users, view_audit
    // and approve_actions, and may use the assistant.
    let pat = user_key(&env, PAT);
    let (t1, _) = ticket(&server, &pat, "pat's", 1.0);
    let conv = start(&server, &pat);
    model.script(vec![
        Reply::Whole(whole_tools(&[
            // Needs manage_permissions: refused to the assistant as to an agent.
            (
                "a",
                "run_action",
                json!({"actionName": "wipe_note", "objectName": "desk_ticket", "recordId": t1})
                    .to_string(),
            ),
            // A grant is only proposed, never made.
            (
                "b",
                "propose_metadata_change",
                json!({"kind": "grant_permission_set", "permissionSet": "reviewer", "user": NORA})
                    .to_string(),
            ),
        ])),
        text("Done what I could."),
    ]);
    let (status, events, raw) = say(&server, &pat, &conv, "Wipe it and make Nora a reviewer");
    assert_eq!(status, 200, "{raw}");
    done(&events);
    let results = events_named(&events, "tool_result");
    assert_eq!(results.len(), 2, "{events:?}");
    assert_eq!(results[0]["isError"], true, "{}", results[0]);
    assert_eq!(
        results[0]["result"]["error"]["code"], "missing_permission",
        "{}",
        results[0]
    );
    assert_eq!(results[1]["isError"], false, "{}", results[1]);
    assert_eq!(
        results[1]["result"]["status"], "pending_approval",
        "{}",
        results[1]
    );
    let id = results[1]["result"]["pendingActionId"]
        .as_str()
        .unwrap()
        .to_string();
    let sets = env.run(&["--json", "user", "show", NORA]).ok().stdout;
    assert!(!sets.contains("\"reviewer\""), "nothing granted: {sets}");
    // The positive control: the same action run by Pat himself, on REST, works.
    let (status, _, raw) = server.call(
        "POST",
        &format!("/api/v1/actions/desk_ticket/wipe_note/{t1}"),
        Some(&pat),
        Some(json!({})),
    );
    assert_eq!(status, 200, "{raw}");
    // And he may not approve his own assistant's grant either.
    let (status, body, _) = server.call(
        "POST",
        &format!("/api/v1/pending-actions/{id}/approve"),
        Some(&pat),
        Some(json!({})),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("separation_of_duties")),
        "{body}"
    );
    env.run(&["audit", "verify"]).ok();
}

#[test]
fn assistant_the_pending_quota_counts_per_user_across_sessions() {
    use crate::agents::{PAT, desk, ticket, user_key};
    let env = Env::new();
    let server = desk(&env);
    let model = ModelServer::start();
    configure(&env, &model, &[]);
    env.run(&[
        "settings",
        "set",
        "agents.max_pending",
        "--value-file",
        &env.write("one", "1").display().to_string(),
    ])
    .ok();
    let pat = user_key(&env, PAT);
    let (t1, _) = ticket(&server, &pat, "first", 1.0);
    let (t2, _) = ticket(&server, &pat, "second", 1.0);
    env.run(&["user", "set-password", PAT, "--password-file", "pw"])
        .ok();
    let sign_in = || -> String {
        let (status, login, raw) = server.call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": PAT, "password": crate::store::PASSWORD})),
        );
        assert_eq!(status, 200, "{raw}");
        login["token"].as_str().unwrap().to_string()
    };
    let delete = |server: &Server, token: &str, id: &str| -> Value {
        let conv = start(server, token);
        model.script(vec![
            tool(
                "delete_record",
                json!({"objectName": "desk_ticket", "recordId": id}),
            ),
            text("ok"),
        ]);
        let (_, events, _) = say(server, token, &conv, "delete it");
        done(&events);
        let results = events_named(&events, "tool_result");
        assert_eq!(results.len(), 1, "{events:?}");
        results[0].clone()
    };

    // The first session's proposal fills the quota…
    let first = sign_in();
    let r = delete(&server, &first, &t1);
    assert_eq!(r["result"]["status"], "pending_approval", "{r}");
    // …and signing in again does not start the count over.
    let second = sign_in();
    assert_ne!(first, second);
    let r = delete(&server, &second, &t2);
    assert_eq!(r["isError"], true, "{r}");
    assert_eq!(r["result"]["error"]["code"], "too_many_pending", "{r}");
    assert!(
        r["result"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("agents.max_pending"),
        "{r}"
    );
    let (status, _, _) = server.get(&format!("/api/v1/data/desk_ticket/{t2}"), &pat);
    assert_eq!(status, 200);
    let (_, listed, _) = server.get("/api/v1/pending-actions", &pat);
    assert_eq!(
        listed["pendingActions"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
}
