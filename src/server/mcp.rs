//! MCP over Streamable HTTP at `POST /api/v1/mcp` (docs/agents.md), on the official
//! Rust SDK (`rmcp`) for JSON-RPC framing, version negotiation, sessions and
//! SSE. In front of it, one guard does what the SDK leaves to the host:
//!
//! - `Origin`: a request carrying one is refused (403) unless the operator
//!   allowed that origin (`serve --mcp-allow-origin`); agent hosts send none.
//! - the agent key, on every request (401 without a working one, 403 for a
//!   user key or a user without `agent_access`), so a key revoked or a user
//!   disabled mid-session is refused on its next message;
//! - `MCP-Protocol-Version`: only the revisions served here (400, with
//!   JSON-RPC error -32022 naming them);
//! - a legacy session (2025-06-18, 2025-11-25) belongs to the key that opened
//!   it; any other key gets 404, as for a session that does not exist;
//! - evidence: a session's start and end (legacy), and one row per request
//!   where the revision has no session (2026-07-28), with the client's name
//!   and version and the revision; tool calls leave their own row.
//!
//! The tools themselves are in `crate::agent::tools`; they run on a blocking
//! thread through the records service, like every REST handler.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Body as HttpBody;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, Implementation,
    ListToolsResult, PaginatedRequestParams, ProtocolVersion, ServerCapabilities, ServerConfig,
    Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::agent::{self, AgentAuth, tools};
use crate::audit::{self, Event, Origin};
use crate::error::ApiError;
use crate::records::Records;
use crate::server::{AppState, blocking, request_id};

/// The revisions served: the two with sessions the current SDKs speak, and the
/// stateless one.
pub const PROTOCOL_VERSIONS: &[ProtocolVersion] = &[
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_11_25,
    ProtocolVersion::V_2026_07_28,
];

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CLIENT: &str = "io.modelcontextprotocol/clientInfo";

/// JSON-RPC error codes used here beside the standard ones.
const UNAUTHORIZED: i64 = -32001;
const UNSUPPORTED_VERSION: i64 = -32022;
const SESSION_NOT_FOUND: i64 = -32001;

/// Who is calling one request: the agent, and the client it says it is.
#[derive(Debug, Clone)]
pub(crate) struct McpCaller {
    auth: AgentAuth,
    client: Option<Value>,
}

/// A legacy session: the key that opened it, who that is, and the client.
struct Session {
    key_id: String,
    origin: Origin,
}

/// The MCP endpoint's state: the SDK's session manager, which key each session
/// belongs to, the origins allowed, and the token that ends every stream when
/// the server stops.
pub struct Endpoint {
    manager: Arc<LocalSessionManager>,
    sessions: Mutex<HashMap<String, Session>>,
    origins: Vec<String>,
    cancel: CancellationToken,
}

impl Endpoint {
    /// `origins`: browser origins allowed to call (`scheme://host[:port]`, or
    /// `null`); checked at `serve` start.
    pub fn new(origins: &[String]) -> anyhow::Result<Endpoint> {
        let origins = origins
            .iter()
            .map(|o| {
                normalize_origin(o).ok_or_else(|| {
                    anyhow::anyhow!("`{o}` is not an origin (`https://host[:port]` or `null`)")
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Endpoint {
            manager: Arc::new(LocalSessionManager::default()),
            sessions: Mutex::new(HashMap::new()),
            origins,
            cancel: CancellationToken::new(),
        })
    }

    fn origin_allowed(&self, value: &HeaderValue) -> bool {
        value
            .to_str()
            .ok()
            .and_then(normalize_origin)
            .is_some_and(|o| self.origins.contains(&o))
    }

    fn session(&self, id: &str) -> Option<(String, Origin)> {
        let sessions = self.sessions.lock().ok()?;
        sessions
            .get(id)
            .map(|s| (s.key_id.clone(), s.origin.clone()))
    }

    fn end(&self, id: &str) -> Option<Origin> {
        self.sessions.lock().ok()?.remove(id).map(|s| s.origin)
    }

    /// Sessions the SDK has closed (idle, or its client gone): their end is
    /// audited once.
    pub(crate) async fn sweep(&self, state: &Arc<AppState>) {
        let live: HashSet<String> = self
            .manager
            .sessions
            .read()
            .await
            .keys()
            .map(|k| k.to_string())
            .collect();
        let ended: Vec<(String, Origin)> = match self.sessions.lock() {
            Ok(mut sessions) => {
                let gone: Vec<String> = sessions
                    .keys()
                    .filter(|k| !live.contains(*k))
                    .cloned()
                    .collect();
                gone.into_iter()
                    .filter_map(|k| sessions.remove(&k).map(|s| (k, s.origin)))
                    .collect()
            }
            Err(_) => Vec::new(),
        };
        for (id, origin) in ended {
            audit_session(
                state,
                &origin,
                "agent.session_end",
                &id,
                json!({"reason": "closed"}),
            )
            .await;
        }
    }

    /// The server is stopping: every stream ends, every open session's end is
    /// audited.
    pub(crate) async fn shut_down(&self, state: &Arc<AppState>) {
        self.cancel.cancel();
        let open: Vec<(String, Origin)> = match self.sessions.lock() {
            Ok(mut sessions) => sessions.drain().map(|(k, s)| (k, s.origin)).collect(),
            Err(_) => Vec::new(),
        };
        for (id, origin) in open {
            audit_session(
                state,
                &origin,
                "agent.session_end",
                &id,
                json!({"reason": "server_stopped"}),
            )
            .await;
        }
    }

    pub(crate) fn cancellation(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

/// Check an origin given to `serve --mcp-allow-origin`.
pub fn check_origin(text: &str) -> Result<String, String> {
    normalize_origin(text)
        .map(|_| text.to_string())
        .ok_or_else(|| format!("`{text}` is not an origin (`https://host[:port]`, or `null`)"))
}

/// `scheme://host:port`, lowercased, with the scheme's default port made
/// explicit; `null` as is.
fn normalize_origin(text: &str) -> Option<String> {
    let text = text.trim();
    if text == "null" {
        return Some("null".into());
    }
    let url = url::Url::parse(text).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.path() != "/" && !url.path().is_empty() {
        return None;
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let port = url.port_or_known_default()?;
    Some(format!("{}://{host}:{port}", url.scheme()))
}

async fn audit_session(
    state: &Arc<AppState>,
    origin: &Origin,
    action: &'static str,
    session: &str,
    details: Value,
) {
    let state = state.clone();
    let origin = origin.clone();
    let session = session.to_string();
    let _ = blocking(move || {
        let mut changes = json!({"session": session});
        if let (Value::Object(c), Value::Object(d)) = (&mut changes, details) {
            c.extend(d);
        }
        let event = Event::new(action).object("mcp").changes(changes);
        if let Err(e) = state
            .instance
            .store
            .write(|tx| audit::append(tx, &origin, event).map(|_| ()))
        {
            tracing::error!(error = %e, "could not audit an MCP session");
        }
        Ok(())
    })
    .await;
}

/// The body, at most `limit` bytes; `Err(true)` when it is larger. The rest
/// of a larger body is read and dropped (up to a bound), so that the client,
/// still sending, gets the 413 rather than a reset connection.
async fn read_body(body: HttpBody, limit: usize) -> Result<axum::body::Bytes, bool> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut kept: Vec<u8> = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(false);
        };
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= limit {
                kept.extend_from_slice(&data);
            } else if seen > limit * 16 {
                break;
            }
        }
    }
    if seen > limit {
        return Err(true);
    }
    Ok(kept.into())
}

/// A JSON-RPC error as an HTTP response; `id` when the request named one.
fn rpc_error(
    status: StatusCode,
    id: Option<&Value>,
    code: i64,
    message: &str,
    data: Option<Value>,
) -> Response {
    let mut error = json!({"code": code, "message": message});
    if let Some(data) = data {
        error["data"] = data;
    }
    let mut body = json!({"jsonrpc": "2.0", "error": error});
    if let Some(id) = id.filter(|id| id.is_string() || id.is_number()) {
        body["id"] = id.clone();
    }
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"objectos\", error=\"invalid_token\""),
        );
    }
    response
}

fn api_error(e: &ApiError, id: Option<&Value>) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = match e.status {
        401 | 403 => UNAUTHORIZED,
        _ => -32603,
    };
    rpc_error(status, id, code, &e.message, Some(json!({"code": e.code})))
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// A string an agent wrote, kept short in the audit.
fn short(value: Option<&Value>) -> Value {
    match value.and_then(Value::as_str) {
        Some(s) => Value::String(s.chars().take(128).collect()),
        None => Value::Null,
    }
}

/// What the guard reads of a message: only the envelope.
struct Envelope {
    id: Option<Value>,
    method: Option<String>,
    /// `_meta` protocol version: a 2026-07-28 (stateless) request.
    modern: Option<String>,
    client: Option<Value>,
    /// The revision an `initialize` asks for.
    requested: Option<String>,
}

fn envelope(body: &[u8]) -> Envelope {
    let message: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let params = &message["params"];
    let meta = &params["_meta"];
    let method = message["method"].as_str().map(str::to_string);
    let modern = meta[META_VERSION].as_str().map(str::to_string);
    let info = if method.as_deref() == Some("initialize") {
        &params["clientInfo"]
    } else {
        &meta[META_CLIENT]
    };
    let client = info
        .is_object()
        .then(|| json!({"name": short(info.get("name")), "version": short(info.get("version"))}));
    Envelope {
        id: message.get("id").cloned(),
        requested: params["protocolVersion"]
            .as_str()
            .map(|v| v.chars().take(32).collect()),
        method,
        modern,
        client,
    }
}

/// The envelope of `body`, for the fuzz target (`crate::fuzzing`).
#[doc(hidden)]
pub fn read_envelope_for_fuzzing(body: &[u8]) {
    let _ = envelope(body);
}

/// The guard in front of the SDK's service (see the module documentation).
pub(crate) async fn guard(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let endpoint = &state.mcp;
    let (mut parts, body) = req.into_parts();
    if let Some(origin) = parts.headers.get(header::ORIGIN)
        && !endpoint.origin_allowed(origin)
    {
        return rpc_error(
            StatusCode::FORBIDDEN,
            None,
            -32600,
            "this origin may not call the MCP endpoint (the operator allows origins with `serve --mcp-allow-origin`)",
            None,
        );
    }
    let limit = crate::limits::MAX_BODY_BYTES;
    let bytes = match read_body(body, limit).await {
        Ok(b) => b,
        Err(too_large) => {
            return rpc_error(
                if too_large {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::BAD_REQUEST
                },
                None,
                -32600,
                &if too_large {
                    format!("the message is larger than {limit} bytes")
                } else {
                    "the message could not be read".to_string()
                },
                None,
            );
        }
    };
    let env = if parts.method == Method::POST {
        envelope(&bytes)
    } else {
        Envelope {
            id: None,
            method: None,
            modern: None,
            client: None,
            requested: None,
        }
    };
    let rid = request_id(&parts.headers);

    // The version header: only what is served here.
    if let Some(v) = parts.headers.get(VERSION_HEADER) {
        let requested = v.to_str().unwrap_or("");
        if !PROTOCOL_VERSIONS.iter().any(|p| p.as_str() == requested) {
            let supported: Vec<&str> = PROTOCOL_VERSIONS.iter().map(|p| p.as_str()).collect();
            return rpc_error(
                StatusCode::BAD_REQUEST,
                env.id.as_ref(),
                UNSUPPORTED_VERSION,
                "unsupported protocol version",
                Some(json!({"supported": supported, "requested": requested})),
            );
        }
    }

    // A session (legacy only; a stateless request's session header is ignored).
    let session_id = parts
        .headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut session = None;
    if env.modern.is_some() {
        parts.headers.remove(SESSION_HEADER);
    } else if let Some(id) = &session_id {
        match endpoint.session(id) {
            Some(s) => session = Some(s),
            None => {
                return rpc_error(
                    StatusCode::NOT_FOUND,
                    env.id.as_ref(),
                    SESSION_NOT_FOUND,
                    "no such session",
                    None,
                );
            }
        }
    }

    // The key, on every request.
    let client = match (&session, &env.modern) {
        (Some((_, origin)), _) => origin.client.clone(),
        (None, Some(version)) => Some(with(env.client.clone(), "protocol", json!(version))),
        (None, None) => env.client.clone(),
    };
    let token = bearer(&parts.headers);
    let auth = {
        let state = state.clone();
        let rid = rid.clone();
        let client = client.clone();
        blocking(move || {
            let model = state.model()?;
            agent::authenticate(
                &state.instance,
                &|t| state.resolve(&model, t),
                token.as_deref(),
                &rid,
                client,
            )
        })
        .await
    };
    let auth = match auth {
        Ok(a) => a,
        Err(e) => return api_error(&e, env.id.as_ref()),
    };
    if let Some((key, _)) = &session
        && *key != auth.key_id
    {
        // Somebody else's session is indistinguishable from none.
        return rpc_error(
            StatusCode::NOT_FOUND,
            env.id.as_ref(),
            SESSION_NOT_FOUND,
            "no such session",
            None,
        );
    }
    // A message that is not JSON, or not one JSON-RPC message: the errors
    // JSON-RPC prescribes (the SDK would answer 415 with plain text).
    if parts.method == Method::POST {
        match serde_json::from_slice::<Value>(&bytes) {
            Err(_) => {
                return rpc_error(
                    StatusCode::BAD_REQUEST,
                    None,
                    -32700,
                    "parse error: the body is not JSON",
                    None,
                );
            }
            Ok(Value::Array(_)) => {
                return rpc_error(
                    StatusCode::BAD_REQUEST,
                    None,
                    -32600,
                    "invalid request: batches are not part of MCP since 2025-06-18; send one message per request",
                    None,
                );
            }
            Ok(Value::Object(m)) if m.get("jsonrpc").and_then(Value::as_str) == Some("2.0") => {}
            Ok(_) => {
                return rpc_error(
                    StatusCode::BAD_REQUEST,
                    env.id.as_ref(),
                    -32600,
                    "invalid request: a JSON-RPC 2.0 message is an object with `\"jsonrpc\": \"2.0\"`",
                    None,
                );
            }
        }
        // One value per key: the SDK would keep one of two silently.
        if let Some(key) = super::duplicate_key(&bytes) {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                env.id.as_ref(),
                -32600,
                &format!("invalid request: the message names `{key}` twice in one object"),
                None,
            );
        }
    }
    let mut auth = auth;
    auth.caller.origin.client = client.clone();
    let origin = auth.caller.origin.clone();
    let key_id = auth.key_id.clone();
    parts.extensions.insert(McpCaller {
        auth,
        client: client.clone(),
    });

    // Evidence where there is no session: every request but a tool call (which
    // leaves its own row, with the same client and revision).
    let is_request = env.id.is_some() && env.method.is_some();
    if env.modern.is_some() && is_request && env.method.as_deref() != Some("tools/call") {
        let state = state.clone();
        let origin = origin.clone();
        let method = env.method.clone();
        let _ = blocking(move || {
            let event = Event::new("agent.request")
                .object("mcp")
                .changes(json!({"method": method}));
            state
                .instance
                .store
                .write(|tx| audit::append(tx, &origin, event).map(|_| ()))
                .map_err(crate::records::to_api)
        })
        .await;
    }

    let method = parts.method.clone();
    let initialize = env.method.as_deref() == Some("initialize");
    let mut response = next
        .run(Request::from_parts(parts, HttpBody::from(bytes)))
        .await;
    if method == Method::DELETE && response.status() == StatusCode::ACCEPTED {
        // The session is gone once this answers: "200 OK", as clients expect.
        *response.status_mut() = StatusCode::OK;
    }

    if initialize
        && response.status().is_success()
        && let Some(id) = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    {
        let mut origin = origin;
        // The revision the SDK answers with: the one asked for when served
        // here, else the newest with a handshake.
        let protocol = env
            .requested
            .as_deref()
            .filter(|v| {
                *v != ProtocolVersion::V_2026_07_28.as_str()
                    && PROTOCOL_VERSIONS.iter().any(|p| p.as_str() == *v)
            })
            .unwrap_or(ProtocolVersion::V_2025_11_25.as_str())
            .to_string();
        let client = with(origin.client.take(), "protocol", json!(protocol));
        origin.client = Some(with(Some(client), "session", json!(id)));
        if let Ok(mut sessions) = endpoint.sessions.lock() {
            sessions.insert(
                id.clone(),
                Session {
                    key_id,
                    origin: origin.clone(),
                },
            );
        }
        audit_session(&state, &origin, "agent.session_start", &id, json!({})).await;
    } else if method == Method::DELETE
        && response.status().is_success()
        && let Some(id) = session_id
        && let Some(mut origin) = endpoint.end(&id)
    {
        origin.request_id = Some(rid);
        audit_session(
            &state,
            &origin,
            "agent.session_end",
            &id,
            json!({"reason": "closed by the client"}),
        )
        .await;
    }
    response
}

/// `value` (an object, or nothing) with `key` set.
fn with(value: Option<Value>, key: &str, v: Value) -> Value {
    let mut out = match value {
        Some(Value::Object(m)) => Value::Object(m),
        _ => json!({}),
    };
    out[key] = v;
    out
}

/// The MCP server: the tools, as the calling key's user may use them.
#[derive(Clone)]
pub(crate) struct Handler {
    state: Arc<AppState>,
}

fn caller_of(ctx: &RequestContext<RoleServer>) -> Result<McpCaller, ErrorData> {
    ctx.extensions
        .get::<axum::http::request::Parts>()
        .and_then(|p| p.extensions.get::<McpCaller>())
        .cloned()
        .ok_or_else(|| ErrorData::internal_error("the request carries no agent", None))
}

fn tool(spec: &tools::ToolSpec) -> Tool {
    let schema = match &spec.input_schema {
        Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    Tool::new(spec.name, spec.description, Arc::new(schema))
        .with_title(spec.title)
        .with_annotations(
            ToolAnnotations::with_title(spec.title)
                .read_only(spec.read_only)
                .destructive(spec.destructive)
                .idempotent(spec.idempotent)
                .open_world(false),
        )
}

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("objectos", env!("CARGO_PKG_VERSION")))
            .with_protocol_version(ProtocolVersion::V_2025_11_25)
            .with_instructions(tools::INSTRUCTIONS)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(PROTOCOL_VERSIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let who = caller_of(&ctx)?;
        // A read-only key is shown the tools it may use.
        let listed: Vec<Tool> = tools::specs()
            .iter()
            .filter(|s| s.read_only || !who.auth.read_only)
            .map(tool)
            .collect();
        Ok(ListToolsResult::with_all_items(listed)
            .with_ttl_ms(0)
            .with_cache_scope(CacheScope::Private))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let who = caller_of(&ctx)?;
        let name = request.name.to_string();
        let args = request.arguments.map(Value::Object).unwrap_or(Value::Null);
        let known = tools::specs().iter().any(|s| s.name == name);
        let state = self.state.clone();
        let work = blocking(move || {
            #[cfg(debug_assertions)]
            test_tool_delay();
            let model = state.model()?;
            let records = Records::new(&state.instance, &model.model);
            let outcome = if known {
                let agent = agent::tools::Agent {
                    caller: &who.auth.caller,
                    key_id: &who.auth.key_id,
                    read_only: who.auth.read_only,
                    client: who.client.clone(),
                    quota: crate::queue::QuotaScope::Credential,
                };
                agent.call(&records, &name, &args)
            } else {
                tools::Outcome::unknown_tool(&name)
            };
            agent::audit_tool_call(
                &state.instance,
                &model.model,
                &who.auth.caller,
                &name,
                &args,
                &outcome,
            );
            state.checkpoint_every_thousand();
            Ok(outcome)
        });
        let outcome = tokio::select! {
            outcome = work => outcome,
            _ = ctx.ct.cancelled() => {
                return Err(ErrorData::internal_error("the request was cancelled", None));
            }
        };
        let outcome = outcome.map_err(|e| ErrorData::internal_error(e.message, None))?;
        if !known {
            // The specification's protocol error for a tool that does not exist.
            return Err(ErrorData::invalid_params(
                format!("Unknown tool: {}", request.name),
                None,
            ));
        }
        Ok(if outcome.is_error {
            CallToolResult::structured_error(outcome.result)
        } else {
            CallToolResult::structured(outcome.result)
        }
        .into())
    }
}

/// Debug builds, which the test suite runs, wait `OBJECTOS_TEST_TOOL_DELAY_MS`
/// before each tool call, so that a test can cancel a call still running.
/// Release builds have no such wait.
#[cfg(debug_assertions)]
fn test_tool_delay() {
    if let Some(ms) = std::env::var("OBJECTOS_TEST_TOOL_DELAY_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms.min(60_000)));
    }
}

/// The SDK's Streamable HTTP service for `/api/v1/mcp`.
pub(crate) fn service(
    state: &Arc<AppState>,
) -> StreamableHttpService<Handler, LocalSessionManager> {
    let config = StreamableHttpServerConfig::default()
        // `Host` is not checked: every request carries a bearer key a
        // rebinding page cannot have, and browsers' `Origin` is checked above.
        .disable_allowed_hosts()
        .with_legacy_session_mode(true)
        .with_json_response(true)
        .with_max_request_body_bytes(crate::limits::MAX_BODY_BYTES)
        .with_cancellation_token(state.mcp.cancellation());
    let handler = Handler {
        state: state.clone(),
    };
    StreamableHttpService::new(
        move || Ok(handler.clone()),
        state.mcp.manager.clone(),
        config,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_normalize() {
        assert_eq!(
            normalize_origin("https://Agents.Example.com").as_deref(),
            Some("https://agents.example.com:443")
        );
        assert_eq!(
            normalize_origin("http://localhost:3000/").as_deref(),
            Some("http://localhost:3000")
        );
        assert_eq!(normalize_origin("null").as_deref(), Some("null"));
        assert_eq!(normalize_origin("https://x.example/path"), None);
        assert_eq!(normalize_origin("ftp://x.example"), None);
        assert_eq!(normalize_origin("not a url"), None);
    }

    #[test]
    fn envelope_reads_only_what_it_needs() {
        let e = envelope(
            br#"{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"n","version":"1"}}}}"#,
        );
        assert_eq!(e.id, Some(json!(3)));
        assert_eq!(e.method.as_deref(), Some("tools/list"));
        assert_eq!(e.modern.as_deref(), Some("2026-07-28"));
        assert_eq!(e.client, Some(json!({"name": "n", "version": "1"})));
        let e = envelope(b"not json");
        assert!(e.id.is_none() && e.method.is_none() && e.modern.is_none());
    }
}
