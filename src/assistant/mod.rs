//! The built-in assistant (docs/assistant.md): conversations with a model the site
//! runs (an OpenAI-compatible endpoint the operator configures in `ai.*`),
//! acting as the signed-in user through the same tools and the same
//! pending-action queue as MCP agents (`crate::agent::tools`), with the agent
//! rules. What reaches the model is the conversation, the tool definitions and
//! tool results the user may read, with sensitive values masked; every message
//! is stored, and every request, tool call and proposal audited.
//!
//! The HTTP routes and the turn's loop are in `crate::server::assistant`;
//! `objectos chat` is the terminal client, `objectos assistant export` the
//! operator's.

pub mod config;
pub mod endpoint;
pub mod mask;
pub mod transcript;

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::agent::tools::{self, Agent, Outcome};
use crate::audit::Event;
use crate::records::Records;

/// The client the assistant's audit rows name (with the conversation).
pub fn client(conversation: &str) -> Value {
    json!({"name": "objectos-assistant", "version": env!("CARGO_PKG_VERSION"), "conversation": conversation})
}

/// One tool call run for the model.
pub struct ToolRun {
    /// The result as the model and the transcript get it (masked).
    pub result: Value,
    pub is_error: bool,
    /// The pending action it queued, if it did.
    pub pending: Option<String>,
    /// Its audit rows: the call, and the proposal when one was queued.
    pub events: Vec<Event>,
}

/// Run one tool call as the conversation's user with the agent rules: the
/// arguments must be a JSON object and the tool one of the agent tools;
/// otherwise the refusal goes back to the model like any other.
pub fn run_tool(
    records: &Records<'_>,
    agent: &Agent<'_>,
    unmasked: &BTreeSet<String>,
    conversation: &str,
    name: &str,
    arguments: &str,
) -> ToolRun {
    let known = tools::specs().iter().any(|s| s.name == name);
    let parsed: Result<Value, String> = serde_json::from_str::<Value>(arguments)
        .map_err(|e| format!("the arguments are not JSON ({e})"))
        .and_then(|v| match v {
            Value::Object(_) => Ok(v),
            _ => Err("the arguments are a JSON object".into()),
        });
    let (args, outcome) = match (&parsed, known) {
        (_, false) => (Value::Null, Outcome::unknown_tool(name)),
        (Err(why), true) => (
            Value::Null,
            Outcome {
                result: json!({"error": {"code": "invalid_arguments", "message": why, "status": 400}}),
                is_error: true,
            },
        ),
        (Ok(args), true) => match mask::refused_predicate(
            records.model,
            unmasked,
            &|object, field| {
                records
                    .object_access(agent.caller, object)
                    .is_ok_and(|a| a.field_readable(field))
            },
            name,
            args,
        ) {
            Some(why) => (
                args.clone(),
                Outcome {
                    result: json!({"error": {"code": "field_masked", "message": why, "status": 403}}),
                    is_error: true,
                },
            ),
            None => (args.clone(), agent.call(records, name, args)),
        },
    };
    let mut events = vec![crate::agent::tool_call_event(
        "assistant.tool_call",
        records.instance,
        records.model,
        name,
        &args,
        &outcome,
    )];
    let pending = (outcome.result["status"] == "pending_approval")
        .then(|| {
            outcome.result["pendingActionId"]
                .as_str()
                .map(str::to_string)
        })
        .flatten();
    if let Some(id) = &pending {
        let mut event = Event::new("assistant.proposal")
            .object(
                args.get("objectName")
                    .and_then(Value::as_str)
                    .unwrap_or(transcript::OBJECT)
                    .chars()
                    .take(128)
                    .collect::<String>(),
            )
            .changes(json!({"conversation": conversation, "pending_action": id, "tool": name}));
        if let Some(record) = args.get("recordId").and_then(Value::as_str) {
            event = event.record(record.chars().take(128).collect::<String>());
        }
        events.push(event);
    }
    let mut result = outcome.result;
    if outcome.is_error {
        // The refusal as the model needs it: its code and message.
        if let Some(e) = result.get_mut("error").and_then(Value::as_object_mut) {
            e.remove("status");
        }
    } else {
        mask::tool_result(records.model, unmasked, name, &args, &mut result);
    }
    ToolRun {
        result,
        is_error: outcome.is_error,
        pending,
        events,
    }
}
