//! The assistant over HTTP (docs/assistant.md): conversations of the signed-in user
//! (user key or session; `api_access` and `agent_access`), and the turn's loop:
//! send the stored conversation and the tool definitions to the configured
//! endpoint, run the tool calls it asks for as the user under the agent rules,
//! feed the results back, and stop at the answer or at a limit — streaming
//! what happens to the client as Server-Sent Events.
//!
//! Another user's conversation answers 404, like one that does not exist. A
//! turn's messages are stored as each step completes, each with its audit
//! row; a failing endpoint ends the turn with an `error` event and leaves the
//! conversation as it was after the last complete step.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use crate::agent::tools::Agent;
use crate::assistant::config::{self, AiConfig, ConfigError};
use crate::assistant::endpoint::{self, request_body, sha256_hex};
use crate::assistant::{self as ai, transcript};
use crate::audit::{Event, Outcome, Via};
use crate::error::ApiError;
use crate::queue::QuotaScope;
use crate::records::{Caller, Records, to_api};
use crate::server::auth::Authenticated;
use crate::server::{ApiResult, AppState, Body, blocking, json_body, with_records};
use crate::store::assistant::ConversationRow;

/// The longest message a user may send (characters).
pub const MAX_MESSAGE_CHARS: usize = 32 * 1024;

/// Conversations with a turn under way (one turn at a time per conversation).
#[derive(Default)]
pub struct Turns(Mutex<HashSet<String>>);

struct TurnGuard {
    state: Arc<AppState>,
    id: String,
}

impl Drop for TurnGuard {
    fn drop(&mut self) {
        if let Ok(mut turns) = self.state.assistant_turns.0.lock() {
            turns.remove(&self.id);
        }
    }
}

fn off(e: ConfigError) -> ApiError {
    match e {
        ConfigError::Off => ApiError::new(
            503,
            "assistant_off",
            "the assistant is off: the operator has not configured a model endpoint (`ai.endpoint`)",
        ),
        ConfigError::Invalid(why) => ApiError::new(
            503,
            "assistant_misconfigured",
            format!("the assistant is misconfigured: {why}"),
        ),
    }
}

/// The caller may use the assistant: `agent_access` besides `api_access`
/// (checked by authentication). A refusal leaves a `denied` row.
fn require_agent_access(r: &Records<'_>, a: &Authenticated) -> Result<(), ApiError> {
    if a.caller.principal.has("agent_access") {
        return Ok(());
    }
    let e = ApiError::forbidden(
        "agent_access_required",
        "the assistant needs `agent_access` besides `api_access`",
    );
    transcript::audit_events(
        r.instance,
        &a.caller.origin,
        vec![
            Event::new("assistant.access")
                .object(transcript::OBJECT)
                .outcome(Outcome::Denied, e.code),
        ],
    );
    Err(e)
}

fn not_found() -> ApiError {
    ApiError::not_found("no conversation with that id")
}

/// The caller's own conversation; anyone else's is not found.
fn own(r: &Records<'_>, a: &Authenticated, id: &str) -> Result<ConversationRow, ApiError> {
    let row = r
        .instance
        .store
        .read(|tx| Ok(tx.assistant_conversation_get(id)?))
        .map_err(to_api)?;
    row.filter(|c| c.user_id == a.caller.principal.user_id && c.org_id == a.caller.principal.org_id)
        .ok_or_else(not_found)
}

/// `POST /api/v1/assistant/conversations` (`{"title"?}`): 201 with the
/// conversation.
pub(super) async fn create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult {
    let out = with_records(state, headers, move |r, a| {
        require_agent_access(r, a)?;
        let title = if body.is_empty() {
            None
        } else {
            let v = json_body(&body)?;
            for key in v.as_object().into_iter().flat_map(|m| m.keys()) {
                if key != "title" {
                    return Err(ApiError::bad_request(
                        "invalid_body",
                        format!("`{key}` is not a field of a conversation; it takes `title`"),
                    ));
                }
            }
            match v.get("title") {
                None | Some(Value::Null) => None,
                Some(Value::String(t)) if t.chars().count() <= 200 => Some(t.clone()),
                Some(_) => {
                    return Err(ApiError::bad_request(
                        "invalid_body",
                        "`title` is text of at most 200 characters",
                    ));
                }
            }
        };
        config::load(r.instance).map_err(to_api)?.map_err(off)?;
        let p = &a.caller.principal;
        let row = transcript::create(r.instance, &a.caller.origin, &p.user_id, &p.org_id, title)?;
        Ok(transcript::conversation_view(&row, None))
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(out)).into_response())
}

/// `GET /api/v1/assistant/conversations`: the caller's own, newest first.
pub(super) async fn list(State(state): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult {
    let out = with_records(state, headers, move |r, a| {
        require_agent_access(r, a)?;
        let p = &a.caller.principal;
        let rows = r
            .instance
            .store
            .read(|tx| Ok(tx.assistant_conversations_of(&p.user_id, &p.org_id)?))
            .map_err(to_api)?;
        let items: Vec<Value> = rows
            .iter()
            .map(|c| transcript::conversation_view(c, None))
            .collect();
        Ok(json!({ "conversations": items }))
    })
    .await?;
    Ok(axum::Json(out).into_response())
}

/// `GET /api/v1/assistant/conversations/{id}`: one of the caller's own, with
/// its messages.
pub(super) async fn get(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let out = with_records(state, headers, move |r, a| {
        require_agent_access(r, a)?;
        let c = own(r, a, &id)?;
        let messages = r
            .instance
            .store
            .read(|tx| Ok(tx.assistant_messages(&c.id)?))
            .map_err(to_api)?;
        Ok(transcript::conversation_view(&c, Some(&messages)))
    })
    .await?;
    Ok(axum::Json(out).into_response())
}

/// Everything one turn needs, fixed when it starts.
struct Turn {
    /// The user with the agent's rights, audited `via: agent` with the
    /// assistant as client.
    caller: Caller,
    /// The credential as the request carried it (in memory only): checked
    /// again before every model request, so that a key revoked, a session
    /// ended, a user disabled or a permission set withdrawn mid-turn stops it.
    token: String,
    /// The credential the turn came with (the pending actions name it).
    credential: String,
    /// The pending-action quota counts per credential for a user key, as it
    /// counts per agent key; per user for a session, which signing in again
    /// replaces.
    quota: QuotaScope,
    conversation: ConversationRow,
    config: AiConfig,
}

/// `POST /api/v1/assistant/conversations/{id}/messages` (`{"content": TEXT}`):
/// the turn, streamed as Server-Sent Events.
pub(super) async fn message(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult {
    let content = {
        let v = json_body(&body)?;
        if let Some(key) = v
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys())
            .find(|k| *k != "content")
        {
            return Err(ApiError::bad_request(
                "invalid_body",
                format!("`{key}` is not a field of a message; it takes `content`"),
            ));
        }
        match v.get("content").and_then(Value::as_str) {
            Some(t) if !t.trim().is_empty() && t.chars().count() <= MAX_MESSAGE_CHARS => {
                t.to_string()
            }
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_body",
                    format!(
                        "`content` is the message: text of 1 to {MAX_MESSAGE_CHARS} characters"
                    ),
                ));
            }
        }
    };
    let token = crate::server::auth::token(&headers)
        .unwrap_or_default()
        .to_string();
    let (turn, user_origin) = with_records(state.clone(), headers, move |r, a| {
        require_agent_access(r, a)?;
        let conversation = own(r, a, &id)?;
        let config = config::load(r.instance).map_err(to_api)?.map_err(off)?;
        let credential = a.caller.origin.credential.clone().unwrap_or_default();
        let quota = if a.session_id.is_some() {
            QuotaScope::User
        } else {
            QuotaScope::Credential
        };
        let mut origin = a.caller.origin.clone();
        origin.via = Via::Agent;
        origin.client = Some(ai::client(&conversation.id));
        let caller = Caller {
            principal: a.caller.principal.clone().as_agent(),
            origin,
        };
        Ok((
            Turn {
                caller,
                token,
                credential,
                quota,
                conversation,
                config,
            },
            a.caller.origin.clone(),
        ))
    })
    .await?;
    let conversation = turn.conversation.id.clone();
    {
        let mut turns = state
            .assistant_turns
            .0
            .lock()
            .map_err(|_| ApiError::internal())?;
        if !turns.insert(conversation.clone()) {
            return Err(ApiError::new(
                409,
                "turn_in_progress",
                "this conversation is still answering the previous message; wait for it",
            ));
        }
    }
    let guard = TurnGuard {
        state: state.clone(),
        id: conversation.clone(),
    };
    let stored = {
        let state = state.clone();
        let conversation = conversation.clone();
        let body = json!({"role": "user", "content": content}).to_string();
        blocking(move || {
            transcript::append(
                &state.instance,
                &user_origin,
                &conversation,
                &[("user", body)],
                Vec::new(),
            )
        })
        .await?
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<SseEvent>();
    if let Some(m) = stored.first() {
        send(
            &tx,
            "user_message",
            json!({"index": m.idx, "sha256": m.sha256}),
        );
    }
    let stopping = state.mcp.cancellation().cancelled_owned();
    // The turn runs to its end whether or not the client stays to watch.
    tokio::spawn(async move {
        let last = run_turn(state, turn, &tx).await;
        drop(guard);
        let _ = tx.send(last);
    });
    // A stopping server ends the stream (the turn's steps already stored stay;
    // the one under way is written whole or not at all).
    let stream = futures_util::StreamExt::take_until(
        futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
        }),
        stopping,
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn sse(name: &str, data: Value) -> SseEvent {
    SseEvent::default().event(name).data(data.to_string())
}

fn send(out: &UnboundedSender<SseEvent>, name: &str, data: Value) {
    let _ = out.send(sse(name, data));
}

fn fail(code: &str, message: &str) -> SseEvent {
    sse("error", json!({"code": code, "message": message}))
}

/// Runs the turn, streaming its events to `out`, and gives back its last event
/// (`done` or `error`) unsent: the caller ends the turn first, so that a client
/// that sends its next message on seeing that event finds the conversation free.
async fn run_turn(state: Arc<AppState>, turn: Turn, out: &UnboundedSender<SseEvent>) -> SseEvent {
    let Turn {
        caller,
        token,
        credential,
        quota,
        conversation,
        config,
    } = turn;
    let client = match endpoint::client(&config) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot set up the model client");
            return fail("internal", "the model client cannot be set up");
        }
    };
    let mut caller = Arc::new(caller);
    let mut calls_made = 0u64;
    let mut tokens = 0u64;
    let mut requests = 0u64;
    loop {
        match recheck(&state, &token, &caller).await {
            Ok(fresh) => caller = Arc::new(fresh),
            Err(e) => return fail(e.code, &e.message),
        }
        let messages = {
            let state = state.clone();
            let id = conversation.id.clone();
            blocking(move || {
                state
                    .instance
                    .store
                    .read(|tx| Ok(tx.assistant_messages(&id)?))
                    .map_err(to_api)
            })
            .await
        };
        let messages = match messages {
            Ok(m) => m,
            Err(e) => return fail(e.code, &e.message),
        };
        let texts: Vec<&str> = messages.iter().map(|m| m.body.as_str()).collect();
        let body = request_body(
            &config.model,
            &texts,
            &conversation.tools,
            config.stream,
            config.max_tokens,
        );
        let mut changes = json!({
            "conversation": conversation.id,
            "endpoint": config.completions_url().as_str(),
            "model": config.model,
            "stream": config.stream,
            "max_tokens": config.max_tokens,
            "messages": messages.len(),
            "tools_sha256": sha256_hex(conversation.tools.as_bytes()),
            "request_sha256": sha256_hex(&body),
            "request_bytes": body.len(),
        });
        requests += 1;
        let streamer = out.clone();
        let exchange = endpoint::complete(&client, &config, body, move |text| {
            send(&streamer, "delta", json!({ "text": text }));
        })
        .await;
        changes["response_sha256"] = json!(exchange.response_sha256);
        changes["response_bytes"] = json!(exchange.response_bytes);
        changes["http_status"] = json!(exchange.status);
        let request_event = |changes: Value| {
            Event::new("assistant.request")
                .object(transcript::OBJECT)
                .record(&conversation.id)
                .changes(changes)
        };
        let reply = match exchange.result {
            Ok(r) => r,
            Err(e) => {
                let event = request_event(changes).outcome(Outcome::Error, e.code());
                let st = state.clone();
                let origin = caller.origin.clone();
                let _ = blocking(move || {
                    transcript::audit_events(&st.instance, &origin, vec![event]);
                    Ok(())
                })
                .await;
                return fail(e.code(), &e.to_string());
            }
        };
        if let Some(u) = reply.usage {
            changes["prompt_tokens"] = json!(u.prompt_tokens);
            changes["completion_tokens"] = json!(u.completion_tokens);
            tokens += u.total();
        }
        let stored = {
            let state = state.clone();
            let origin = caller.origin.clone();
            let id = conversation.id.clone();
            let event = request_event(changes);
            let message = reply.message().to_string();
            let response = exchange.response;
            blocking(move || {
                transcript::append_reply(&state.instance, &origin, &id, message, response, event)
            })
            .await
        };
        let index = match stored {
            Ok(row) => row.idx,
            Err(e) => return fail(e.code, &e.message),
        };
        if reply.tool_calls.is_empty() {
            return sse(
                "done",
                json!({
                    "conversation": conversation.id,
                    "index": index,
                    "content": reply.content,
                    "requests": requests,
                    "toolCalls": calls_made,
                    "tokens": tokens,
                }),
            );
        }
        // The tool calls, as the user under the agent rules; past a limit, each
        // is answered "not run" so that the conversation stays whole.
        let over_tokens = tokens >= config.max_turn_tokens;
        let limit_note = if over_tokens {
            format!(
                "this turn has used {tokens} tokens, the most it may (`ai.max_turn_tokens` is {}); not run",
                config.max_turn_tokens
            )
        } else {
            format!(
                "this turn has made the most tool calls it may (`ai.max_tool_calls` is {}); not run",
                config.max_tool_calls
            )
        };
        // The credential again, right before the tools touch any data.
        match recheck(&state, &token, &caller).await {
            Ok(fresh) => caller = Arc::new(fresh),
            Err(e) => {
                // Every call of the stored answer gets its result, so the
                // conversation stays whole.
                let bodies: Vec<(&str, String)> = reply
                    .tool_calls
                    .iter()
                    .map(|c| {
                        let result = json!({"error": {"code": e.code, "message": e.message}});
                        ("tool", json!({"role": "tool", "tool_call_id": c.id, "content": result.to_string()}).to_string())
                    })
                    .collect();
                let st = state.clone();
                let origin = caller.origin.clone();
                let id = conversation.id.clone();
                let _ = blocking(move || {
                    transcript::append(&st.instance, &origin, &id, &bodies, Vec::new())
                })
                .await;
                return fail(e.code, &e.message);
            }
        }
        let ran = {
            let state = state.clone();
            let caller = caller.clone();
            let credential = credential.clone();
            let id = conversation.id.clone();
            let unmasked = config.unmasked.clone();
            let max_calls = config.max_tool_calls;
            let calls = reply.tool_calls.clone();
            let out = out.clone();
            let note = limit_note.clone();
            blocking(move || {
                let model = state.model()?;
                let records = Records::new(&state.instance, &model.model);
                let agent = Agent {
                    caller: &caller,
                    key_id: &credential,
                    read_only: false,
                    client: Some(ai::client(&id)),
                    quota,
                };
                let mut bodies = Vec::new();
                let mut limited = false;
                for call in &calls {
                    let arguments: Value = serde_json::from_str(&call.arguments)
                        .unwrap_or_else(|_| Value::String(call.arguments.clone()));
                    send(
                        &out,
                        "tool_call",
                        json!({"id": call.id, "name": call.name, "arguments": arguments}),
                    );
                    let (result, is_error) = if over_tokens || calls_made >= max_calls {
                        limited = true;
                        (
                            json!({"error": {"code": "turn_limit", "message": note}}),
                            true,
                        )
                    } else {
                        calls_made += 1;
                        let run = ai::run_tool(
                            &records,
                            &agent,
                            &unmasked,
                            &id,
                            &call.name,
                            &call.arguments,
                        );
                        // Audited at once, as MCP's calls are: the call's row
                        // does not wait for the transcript's.
                        transcript::audit_events(&state.instance, &caller.origin, run.events);
                        if let Some(p) = &run.pending {
                            send(
                                &out,
                                "pending_approval",
                                json!({"pendingActionId": p, "tool": call.name, "message": "a reviewer must approve this change before it happens"}),
                            );
                        }
                        (run.result, run.is_error)
                    };
                    send(
                        &out,
                        "tool_result",
                        json!({"id": call.id, "name": call.name, "isError": is_error, "result": result}),
                    );
                    bodies.push((
                        "tool",
                        json!({"role": "tool", "tool_call_id": call.id, "content": result.to_string()})
                            .to_string(),
                    ));
                }
                let refs: Vec<(&str, String)> = bodies.into_iter().collect();
                transcript::append(&state.instance, &caller.origin, &id, &refs, Vec::new())?;
                state.checkpoint_every_thousand();
                Ok((limited, calls_made))
            })
            .await
        };
        match ran {
            Ok((limited, made)) => {
                calls_made = made;
                if limited {
                    return fail("turn_limit", &limit_note);
                }
            }
            Err(e) => return fail(e.code, &e.message),
        }
    }
}

/// The turn's caller as the credential stands now: refused once it no longer
/// works or its user no longer holds `api_access` and `agent_access`; with
/// the rights in force now otherwise.
async fn recheck(state: &Arc<AppState>, token: &str, caller: &Caller) -> Result<Caller, ApiError> {
    let state = state.clone();
    let token = token.to_string();
    let origin = caller.origin.clone();
    blocking(move || {
        let model = state.model()?;
        let check = || {
            let resolved = crate::identity::signin::require(state.resolve(&model, &token)?)?;
            let principal = resolved.principal;
            for needed in ["api_access", "agent_access"] {
                if !principal.has(needed) {
                    return Err(ApiError::forbidden(
                        "agent_access_required",
                        format!("the user no longer holds `{needed}`"),
                    ));
                }
            }
            Ok(principal)
        };
        match check() {
            Ok(principal) => Ok(Caller {
                principal: principal.as_agent(),
                origin,
            }),
            Err(e) => {
                transcript::audit_events(
                    &state.instance,
                    &origin,
                    vec![
                        Event::new("assistant.access")
                            .object(transcript::OBJECT)
                            .outcome(Outcome::Denied, e.code)
                            .changes(json!({"reason": e.message})),
                    ],
                );
                Err(e)
            }
        }
    })
    .await
}
