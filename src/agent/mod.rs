//! Agents: the tools an agent calls (served over MCP by `crate::server::mcp`),
//! how an agent key is authenticated, the audit rows of its calls, and
//! `objectos mcp`, the stdio bridge to the server's endpoint. An agent reaches
//! data only through these tools, with an agent key, as that key's user and
//! never with an administrative permission; every call leaves its audit row.

pub mod bridge;
pub mod schema;
pub mod tools;

use serde_json::{Map, Value, json};

use crate::audit::{self, Event, Origin, Outcome as AuditOutcome, Via};
use crate::error::ApiError;
use crate::identity::signin;
use crate::instance::Instance;
use crate::model::Model;
use crate::records::{Caller, to_api};
use crate::store::KeyKind;

/// An authenticated agent: the key's user with the agent's rights.
#[derive(Debug, Clone)]
pub struct AgentAuth {
    pub caller: Caller,
    pub key_id: String,
    pub read_only: bool,
}

/// Authenticate an agent key for MCP. A missing or unknown credential is 401; a
/// user key, or a user without `agent_access`, is 403. A key that exists but no
/// longer works (revoked, expired, its user disabled) is refused and audited.
pub fn authenticate(
    instance: &Instance,
    resolve: &dyn Fn(&str) -> Result<Option<signin::Resolved>, ApiError>,
    token: Option<&str>,
    request_id: &str,
    client: Option<Value>,
) -> Result<AgentAuth, ApiError> {
    let Some(token) = token else {
        return Err(signin::unauthenticated());
    };
    let Some(resolved) = resolve(token)? else {
        if let Some((key_id, user_id, email)) = signin::known_key(instance, token)? {
            let mut origin = Origin::user(&user_id, &email, Via::Agent);
            origin.credential = Some(key_id);
            origin.request_id = Some(request_id.to_string());
            origin.client = client;
            refuse(
                instance,
                &origin,
                "unauthenticated",
                "the key is revoked or expired, or its user is disabled",
            );
        }
        return Err(signin::unauthenticated());
    };
    let principal = resolved.principal;
    let mut origin = Origin::user(&principal.user_id, &principal.email, Via::Agent);
    origin.actor["organization_id"] = json!(principal.org_id);
    origin.credential = Some(resolved.credential.clone());
    origin.request_id = Some(request_id.to_string());
    origin.client = client;
    if resolved.key_kind != Some(KeyKind::Agent) {
        return Err(ApiError::forbidden(
            "agent_key_required",
            "MCP takes agent keys only (`objectos apikey create EMAIL --agent`)",
        ));
    }
    if !principal.has("agent_access") {
        refuse(
            instance,
            &origin,
            "agent_access_required",
            "the key's user no longer holds `agent_access`",
        );
        return Err(ApiError::forbidden(
            "agent_access_required",
            "the key's user does not hold `agent_access`",
        ));
    }
    Ok(AgentAuth {
        caller: Caller {
            principal: principal.as_agent(),
            origin,
        },
        key_id: resolved.credential,
        read_only: resolved.read_only,
    })
}

fn refuse(instance: &Instance, origin: &Origin, code: &str, reason: &str) {
    let event = Event::new("agent.auth")
        .object("api_key")
        .outcome(AuditOutcome::Denied, code)
        .changes(json!({"reason": reason}));
    if let Err(e) = instance
        .store
        .write(|tx| audit::append(tx, origin, event).map(|_| ()))
    {
        tracing::error!(error = %e, "could not audit a refused agent");
    }
}

/// The arguments of a tool call as the audit keeps them: values of sensitive
/// fields (in `data`, or a filter naming one) only as HMACs.
fn audit_arguments(instance: &Instance, model: &Model, args: &Value) -> Value {
    let Some(map) = args.as_object() else {
        return args.clone();
    };
    let object = map
        .get("objectName")
        .and_then(Value::as_str)
        .and_then(|o| model.object(o));
    let sensitive = |field: &str| {
        object
            .and_then(|o| o.field(field))
            .is_some_and(|f| f.sensitive)
    };
    let mut out = Map::new();
    for (key, value) in map {
        let kept = match (key.as_str(), value) {
            ("data", Value::Object(data)) => Value::Object(
                data.iter()
                    .map(|(f, v)| {
                        let v = if sensitive(f) {
                            json!({"hmac_sha256": instance.hmac.hmac(v), "hmac_key": audit::HMAC_KEY_LABEL})
                        } else {
                            v.clone()
                        };
                        (f.clone(), v)
                    })
                    .collect(),
            ),
            ("where", filter) => {
                let names_sensitive = crate::model::filter::Filter::from_json(filter)
                    .map(|f| f.fields().into_iter().any(sensitive))
                    .unwrap_or(true);
                if names_sensitive {
                    json!({"hmac_sha256": instance.hmac.hmac(filter), "hmac_key": audit::HMAC_KEY_LABEL})
                } else {
                    filter.clone()
                }
            }
            _ => value.clone(),
        };
        out.insert(key.clone(), kept);
    }
    Value::Object(out)
}

/// Larger arguments are audited as their SHA-256.
const MAX_AUDITED_ARGUMENTS: usize = 16 * 1024;

/// The row every tool call leaves: the tool, its arguments (sensitive values as
/// HMACs), the outcome, and what it read or proposed.
pub fn audit_tool_call(
    instance: &Instance,
    model: &Model,
    caller: &Caller,
    tool: &str,
    args: &Value,
    outcome: &tools::Outcome,
) {
    let event = tool_call_event("agent.tool_call", instance, model, tool, args, outcome);
    if let Err(e) = instance
        .store
        .write(|tx| audit::append(tx, &caller.origin, event).map(|_| ()))
        .map_err(to_api)
    {
        tracing::error!(error = %e, "could not audit a tool call");
    }
}

/// The row of one tool call, under `action` (`agent.tool_call` for MCP,
/// `assistant.tool_call` for the built-in assistant).
pub fn tool_call_event(
    action: &str,
    instance: &Instance,
    model: &Model,
    tool: &str,
    args: &Value,
    outcome: &tools::Outcome,
) -> Event {
    let r = &outcome.result;
    let read: Vec<Value> = match r.get("records").and_then(Value::as_array) {
        Some(list) => list.iter().filter_map(|x| x.get("id").cloned()).collect(),
        None => r.get("id").cloned().into_iter().collect(),
    };
    let mut arguments = audit_arguments(instance, model, args);
    let size = arguments.to_string().len();
    if size > MAX_AUDITED_ARGUMENTS {
        // Kept as a digest: the chain must not carry megabytes an agent sent.
        use sha2::Digest;
        arguments = json!({
            "sha256": hex::encode(sha2::Sha256::digest(arguments.to_string().as_bytes())),
            "bytes": size,
        });
    }
    let mut event = Event::new(action).changes(json!({
        "tool": tool.chars().take(128).collect::<String>(),
        "arguments": arguments,
        // The ids returned: shown to an audit viewer only where they may read them.
        "ids": read,
        "pending_action": r.get("pendingActionId"),
        "status": r.get("status"),
    }));
    if let Some(object) = args.get("objectName").and_then(Value::as_str) {
        event = event.object(object);
    } else {
        event = event.object("mcp");
    }
    if let Some(id) = args.get("recordId").and_then(Value::as_str) {
        event = event.record(id);
    }
    if outcome.is_error {
        let code = r["error"]["code"].as_str().unwrap_or("error").to_string();
        let denied = matches!(r["error"]["status"].as_u64(), Some(401 | 403));
        event = event.outcome(
            if denied {
                AuditOutcome::Denied
            } else {
                AuditOutcome::Error
            },
            code,
        );
    }
    event
}
