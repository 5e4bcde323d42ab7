//! Conversations as evidence: every message is stored as the exact JSON text
//! the model's API carries, and each is written in one transaction with an
//! `assistant.message` audit row holding its SHA-256. Each model request's row
//! (`assistant.request`) holds the SHA-256 of the bytes sent, which are a pure
//! function of the stored messages and the conversation's tool definitions, so
//! [`verify`] proves a stored transcript unaltered against the chain.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::endpoint::{request_body, sha256_hex};
use crate::audit::{self, Event, Origin};
use crate::error::ApiError;
use crate::instance::Instance;
use crate::records::to_api;
use crate::store::Store;
use crate::store::assistant::{ConversationRow, MessageRow};
use crate::timefmt;

/// What the audit rows are about.
pub const OBJECT: &str = "assistant_conversation";

/// The instructions every conversation starts with (its message 0).
pub const SYSTEM_PROMPT: &str = "You are the assistant built into objectos. You act for the signed-in user with exactly their rights, only through the tools given; you see nothing else of the database. Deletes, sensitive fields, confirmed actions and objects that need approval come back `pending_approval` with a `pendingActionId`: tell the user the change waits for a reviewer and has not happened yet. Values shown as `[masked]` are sensitive and hidden from you; never guess them. Answer briefly.";

/// The tool definitions in the function-calling format, as JSON text.
pub fn tools_json() -> String {
    let tools: Vec<Value> = crate::agent::tools::specs()
        .iter()
        .map(|s| {
            json!({"type": "function", "function": {
                "name": s.name,
                "description": s.description,
                "parameters": s.input_schema,
            }})
        })
        .collect();
    Value::Array(tools).to_string()
}

fn now() -> String {
    timefmt::rfc3339_micros(timefmt::now())
}

/// Start a conversation for the caller: its row, its instructions (message 0),
/// and their audit rows, in one transaction.
pub fn create(
    instance: &Instance,
    origin: &Origin,
    user_id: &str,
    org_id: &str,
    title: Option<String>,
) -> Result<ConversationRow, ApiError> {
    let at = now();
    let row = ConversationRow {
        id: uuid::Uuid::now_v7().to_string(),
        user_id: user_id.to_string(),
        org_id: org_id.to_string(),
        title,
        tools: tools_json(),
        created_at: at.clone(),
        updated_at: at,
    };
    let system = json!({"role": "system", "content": SYSTEM_PROMPT}).to_string();
    instance
        .store
        .write(|tx| {
            tx.assistant_conversation_insert(&row)?;
            audit::append(
                tx,
                origin,
                Event::new("assistant.conversation")
                    .object(OBJECT)
                    .record(&row.id)
                    .changes(json!({"tools_sha256": sha256_hex(row.tools.as_bytes())})),
            )?;
            append_in(tx, origin, &row.id, &[("system", system.clone())], None)?;
            Ok(())
        })
        .map_err(to_api)?;
    Ok(row)
}

/// Append messages (role, exact JSON text) after `before` (rows written first
/// in the same transaction, such as the request that produced them), each with
/// its `assistant.message` row. All or nothing.
pub fn append(
    instance: &Instance,
    origin: &Origin,
    conversation: &str,
    messages: &[(&str, String)],
    before: Vec<Event>,
) -> Result<Vec<MessageRow>, ApiError> {
    instance
        .store
        .write(|tx| {
            for event in before {
                audit::append(tx, origin, event)?;
            }
            append_in(tx, origin, conversation, messages, None)
        })
        .map_err(to_api)
}

/// Append the model's answer with the exact bytes it came in, after the
/// request's row, in one transaction.
pub fn append_reply(
    instance: &Instance,
    origin: &Origin,
    conversation: &str,
    message: String,
    response: Vec<u8>,
    request: Event,
) -> Result<MessageRow, ApiError> {
    instance
        .store
        .write(|tx| {
            audit::append(tx, origin, request)?;
            let mut rows = append_in(
                tx,
                origin,
                conversation,
                &[("assistant", message)],
                Some(response),
            )?;
            rows.pop()
                .ok_or_else(|| anyhow::anyhow!("the answer was not stored"))
        })
        .map_err(to_api)
}

/// [`append`] inside the caller's transaction.
fn append_in(
    tx: &mut dyn crate::store::Tx,
    origin: &Origin,
    conversation: &str,
    messages: &[(&str, String)],
    mut response: Option<Vec<u8>>,
) -> anyhow::Result<Vec<MessageRow>> {
    let first = tx.assistant_messages(conversation)?.len() as i64;
    let mut out = Vec::new();
    let at = now();
    for (next, (role, body)) in (first..).zip(messages) {
        let sha256 = sha256_hex(body.as_bytes());
        let row = audit::append(
            tx,
            origin,
            Event::new("assistant.message")
                .object(OBJECT)
                .record(conversation)
                .changes(json!({"index": next, "role": role, "sha256": sha256})),
        )?;
        let message = MessageRow {
            conversation_id: conversation.to_string(),
            idx: next,
            role: role.to_string(),
            body: body.clone(),
            sha256,
            audit_seq: row.seq,
            created_at: at.clone(),
            response: response.take(),
        };
        tx.assistant_message_insert(&message)?;
        out.push(message);
    }
    if !messages.is_empty() {
        tx.assistant_conversation_touch(conversation, &at)?;
    }
    Ok(out)
}

/// Audit rows that stand alone (a failed request, a proposal).
pub fn audit_events(instance: &Instance, origin: &Origin, events: Vec<Event>) {
    if let Err(e) = instance.store.write(|tx| {
        for event in events {
            audit::append(tx, origin, event)?;
        }
        Ok(())
    }) {
        tracing::error!(error = %format!("{e:#}"), "could not audit the assistant");
    }
}

/// One message as the API shows it to its user.
pub fn message_view(m: &MessageRow) -> Value {
    let body: Value = serde_json::from_str(&m.body).unwrap_or(Value::Null);
    let mut v = json!({
        "index": m.idx,
        "role": m.role,
        "content": body.get("content").cloned().unwrap_or(Value::Null),
        "sha256": m.sha256,
        "createdAt": m.created_at,
    });
    if let Some(calls) = body.get("tool_calls") {
        v["toolCalls"] = calls.clone();
    }
    if let Some(id) = body.get("tool_call_id") {
        v["toolCallId"] = id.clone();
    }
    v
}

pub fn conversation_view(c: &ConversationRow, messages: Option<&[MessageRow]>) -> Value {
    let mut v = json!({
        "id": c.id,
        "title": c.title,
        "createdAt": c.created_at,
        "updatedAt": c.updated_at,
    });
    if let Some(messages) = messages {
        v["messages"] = messages.iter().map(message_view).collect();
    }
    v
}

/// The first place a stored transcript disagrees with the audit chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The audit row whose hash the stored transcript no longer matches.
    pub seq: i64,
    pub reason: String,
}

/// What [`verify`] checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TranscriptReport {
    pub conversations: u64,
    pub messages: u64,
    pub requests: u64,
    pub mismatch: Option<Mismatch>,
}

/// Check every stored message against the `assistant.message` row that
/// recorded its hash, every such row against a stored message, and every
/// `assistant.request` row's request hash against the bytes the stored
/// messages rebuild. Rows moved to archives (`audit archive`) are not here to
/// check against, and are skipped. Memory holds one conversation's messages
/// at a time, and the indexes of the others.
pub fn verify(store: &Store) -> anyhow::Result<TranscriptReport> {
    store.scan(|tx| {
        let mut report = TranscriptReport::default();
        let mut first: Option<Mismatch> = None;
        let mut keep = |seq: i64, reason: String| {
            if first.as_ref().is_none_or(|m| seq < m.seq) {
                first = Some(Mismatch { seq, reason });
            }
        };
        let first_seq = tx.audit_first_seq()?.unwrap_or(1);
        // Conversation id → its tool definitions' hash and stored indexes.
        let mut stored: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
        for c in tx.assistant_conversations()? {
            let messages = tx.assistant_messages(&c.id)?;
            report.conversations += 1;
            report.messages += messages.len() as u64;
            for (i, m) in messages.iter().enumerate() {
                let at = format!("message {} of conversation {}", m.idx, c.id);
                if m.idx != i as i64 {
                    keep(
                        m.audit_seq,
                        format!("{at} is out of place: messages before it are missing"),
                    );
                }
                let actual = sha256_hex(m.body.as_bytes());
                match tx.audit_by_seq(m.audit_seq)? {
                    None if m.audit_seq < first_seq => {}
                    None => keep(
                        m.audit_seq,
                        format!("{at} names audit row {} which does not exist", m.audit_seq),
                    ),
                    Some(row) => {
                        let changes = row.changes.clone().unwrap_or(Value::Null);
                        if row.action != "assistant.message"
                            || row.record_id.as_deref() != Some(c.id.as_str())
                            || changes["index"] != m.idx
                        {
                            keep(
                                row.seq,
                                format!("{at} names audit row {} which does not record it", row.seq),
                            );
                        } else if changes["sha256"] != actual.as_str() || m.sha256 != actual {
                            keep(
                                row.seq,
                                format!(
                                    "{at} was altered: its SHA-256 no longer matches the one audit row {} recorded",
                                    row.seq
                                ),
                            );
                        }
                    }
                }
            }
            stored.insert(c.id.clone(), messages.iter().map(|m| m.idx).collect());
        }
        // The conversation whose messages are at hand (requests of one
        // conversation come together).
        let mut at_hand: Option<(ConversationRow, Vec<MessageRow>)> = None;
        let mut from = first_seq;
        loop {
            let page = tx.audit_page(from, 1000)?;
            let Some(last) = page.last() else { break };
            from = last.seq + 1;
            for row in &page {
                if !row.action.starts_with("assistant.") {
                    continue;
                }
                let changes = row.changes.clone().unwrap_or(Value::Null);
                let id = row.record_id.as_deref().unwrap_or("?");
                match row.action.as_str() {
                    "assistant.message" => {
                        let found = stored.get(id).is_some_and(|idx| {
                            changes["index"].as_i64().is_some_and(|i| idx.contains(&i))
                        });
                        if !found {
                            keep(
                                row.seq,
                                format!(
                                    "audit row {} records message {} of conversation {id}, which is no longer stored",
                                    row.seq, changes["index"]
                                ),
                            );
                        }
                    }
                    "assistant.request" => {
                        let Some(sent) = changes["request_sha256"].as_str() else {
                            continue;
                        };
                        report.requests += 1;
                        if at_hand.as_ref().is_none_or(|(c, _)| c.id != id) {
                            at_hand = match tx.assistant_conversation_get(id)? {
                                Some(c) => {
                                    let ms = tx.assistant_messages(&c.id)?;
                                    Some((c, ms))
                                }
                                None => None,
                            };
                        }
                        let Some((c, ms)) = &at_hand else {
                            keep(
                                row.seq,
                                format!(
                                    "audit row {} records a request of conversation {id}, which is no longer stored",
                                    row.seq
                                ),
                            );
                            continue;
                        };
                        let count = changes["messages"].as_u64().unwrap_or(0) as usize;
                        if count > ms.len() {
                            keep(
                                row.seq,
                                format!(
                                    "audit row {} records a request that sent {count} messages of conversation {id}; fewer are stored",
                                    row.seq
                                ),
                            );
                            continue;
                        }
                        let texts: Vec<&str> =
                            ms[..count].iter().map(|m| m.body.as_str()).collect();
                        let body = request_body(
                            changes["model"].as_str().unwrap_or(""),
                            &texts,
                            &c.tools,
                            changes["stream"].as_bool().unwrap_or(false),
                            changes["max_tokens"].as_u64().unwrap_or(0),
                        );
                        // The answer it got is the message after those sent,
                        // stored with the bytes whose hash the row recorded.
                        if row.outcome == "success"
                            && let Some(received) = changes["response_sha256"].as_str()
                        {
                            match ms.get(count) {
                                Some(m) if m.role == "assistant" && m.response.is_some() => {
                                    let raw = m.response.as_deref().unwrap_or_default();
                                    if sha256_hex(raw) != received {
                                        keep(
                                            row.seq,
                                            format!(
                                                "the stored answer (message {count} of conversation {id}) is not the response audit row {} recorded (SHA-256 differs)",
                                                row.seq
                                            ),
                                        );
                                    }
                                }
                                _ => keep(
                                    row.seq,
                                    format!(
                                        "the answer audit row {} recorded is not stored as message {count} of conversation {id}",
                                        row.seq
                                    ),
                                ),
                            }
                        }
                        if sha256_hex(&body) != sent {
                            keep(
                                row.seq,
                                format!(
                                    "the stored conversation {id} no longer rebuilds the request audit row {} recorded (SHA-256 differs)",
                                    row.seq
                                ),
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
        report.mismatch = first;
        Ok(report)
    })
}
