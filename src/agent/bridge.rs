//! `objectos mcp`: a bridge between an agent host's stdio and the running
//! server's MCP endpoint. It holds only the agent key and never opens the data
//! dir, so the process an agent host starts gains no operator power.
//!
//! It forwards messages as they are (one JSON-RPC message per line on stdin,
//! one POST each) and writes the server's answers to stdout, one per line;
//! nothing else ever goes to stdout, logs go to stderr. It reads only the
//! envelope, to set what Streamable HTTP needs: the bearer key,
//! `MCP-Protocol-Version` (from a stateless request's `_meta`, else the revision
//! the `initialize` answer negotiated), `Mcp-Method`, `Mcp-Name` and, once a
//! session exists, `Mcp-Session-Id`. Answers come as JSON or as an SSE stream;
//! an HTTP failure becomes a JSON-RPC error for the request that caused it.
//!
//! Why not the SDK's own transports: its client transport and stdio transport
//! re-serialize every message through typed enums, which drops fields it does
//! not know and silently ignores a line that does not parse. A bridge must pass
//! what it does not understand, and answer a broken line with -32700.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The most one stdin line may hold (the server's own body limit).
const MAX_LINE: usize = crate::limits::MAX_BODY_BYTES;

const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

/// Where to forward and with what.
pub struct Bridge {
    pub endpoint: reqwest::Url,
    pub key: String,
    pub client: reqwest::Client,
}

#[derive(Default)]
struct Shared {
    /// The legacy session, once `initialize` opened one.
    session: Option<String>,
    /// The revision `initialize` negotiated.
    protocol: Option<String>,
    /// Requests in flight, by JSON-RPC id, with whether they are stateless.
    in_flight: HashMap<String, (JoinHandle<()>, bool)>,
    /// Turns true when the latest `initialize` is answered. A host that writes
    /// its next messages before reading that answer would otherwise have them
    /// sent without the session they belong to.
    initialized: Option<tokio::sync::watch::Receiver<bool>>,
}

type State = Arc<Mutex<Shared>>;

fn id_key(id: &Value) -> String {
    id.to_string()
}

/// A JSON-RPC error for the request `id` (null when unknown).
fn error(id: Option<&Value>, code: i64, message: impl Into<String>) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Value::Null),
        "error": {"code": code, "message": message.into()},
    })
}

/// A plain value that looks encoded must be encoded itself.
fn sentinel(value: &str) -> bool {
    value.starts_with("=?base64?") && value.ends_with("?=")
}

/// A header value as the specification wants it: plain when it is visible
/// ASCII without surrounding spaces, else `=?base64?…?=`.
pub fn header_value(value: &str) -> String {
    let plain = !value.is_empty()
        && value.bytes().all(|b| (0x20..=0x7e).contains(&b))
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && !sentinel(value);
    if plain {
        value.to_string()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
        )
    }
}

impl Bridge {
    /// Run until stdin ends; then the session (if any) is closed.
    pub async fn run(self) -> anyhow::Result<()> {
        let bridge = Arc::new(self);
        let state: State = Arc::default();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Value>();
        let writer = tokio::spawn(async move {
            let mut stdout = tokio::io::stdout();
            while let Some(message) = out_rx.recv().await {
                let mut line = serde_json::to_string(&message).unwrap_or_default();
                line.push('\n');
                if stdout.write_all(line.as_bytes()).await.is_err() || stdout.flush().await.is_err()
                {
                    break;
                }
            }
        });

        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = read_line(&mut stdin, &mut line).await?;
            if n == 0 {
                break;
            }
            if line.len() > MAX_LINE {
                let _ = out_tx.send(error(
                    None,
                    -32600,
                    format!("the message is larger than {MAX_LINE} bytes"),
                ));
                continue;
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let message: Value = match serde_json::from_str(text) {
                Ok(m) => m,
                Err(e) => {
                    let _ = out_tx.send(error(None, -32700, format!("parse error: {e}")));
                    continue;
                }
            };
            bridge.dispatch(&state, message, &out_tx);
        }

        // stdin ended: let what is in flight finish, then close the session.
        let pending: Vec<JoinHandle<()>> = match state.lock() {
            Ok(mut s) => s.in_flight.drain().map(|(_, (h, _))| h).collect(),
            Err(_) => Vec::new(),
        };
        for handle in pending {
            let _ = handle.await;
        }
        let session = state.lock().ok().and_then(|s| s.session.clone());
        if let Some(session) = session {
            let _ = bridge
                .client
                .delete(bridge.endpoint.clone())
                .bearer_auth(&bridge.key)
                .header("mcp-session-id", session)
                .send()
                .await;
        }
        drop(out_tx);
        let _ = writer.await;
        Ok(())
    }

    fn dispatch(
        self: &Arc<Self>,
        state: &State,
        message: Value,
        out: &mpsc::UnboundedSender<Value>,
    ) {
        let method = message["method"].as_str().map(str::to_string);
        let id = message.get("id").filter(|i| !i.is_null()).cloned();
        let stateless = message["params"]["_meta"][META_VERSION].is_string();

        // Cancelling a stateless request is closing its stream: abort it here.
        if method.as_deref() == Some("notifications/cancelled") {
            let target = id_key(&message["params"]["requestId"]);
            if let Ok(mut s) = state.lock()
                && let Some((handle, true)) = s.in_flight.get(&target)
            {
                handle.abort();
                s.in_flight.remove(&target);
                return;
            }
        }

        let bridge = Arc::clone(self);
        let task_state = Arc::clone(state);
        let out = out.clone();
        // Notifications are tracked too (under a key no id can have), so none
        // is cut off when stdin ends.
        let key = id
            .as_ref()
            .map(id_key)
            .unwrap_or_else(|| format!("#notification-{}", uuid::Uuid::new_v4()));
        let task_key = key.clone();
        let is_initialize = method.as_deref() == Some("initialize");
        // The task is registered before it can finish and unregister itself.
        let mut shared = state.lock().ok();
        let (answered, wait) = match shared.as_mut() {
            Some(s) if is_initialize && !stateless => {
                let (tx, rx) = tokio::sync::watch::channel(false);
                s.initialized = Some(rx);
                (Some(tx), None)
            }
            Some(s) if !stateless => (None, s.initialized.clone()),
            _ => (None, None),
        };
        let handle = tokio::spawn(async move {
            if let Some(mut rx) = wait {
                // An error means the initialize task is gone: go on regardless.
                let _ = rx.wait_for(|done| *done).await;
            }
            bridge
                .forward(
                    &task_state,
                    &message,
                    id.as_ref(),
                    method.as_deref(),
                    is_initialize,
                    &out,
                )
                .await;
            if let Some(tx) = answered {
                let _ = tx.send(true);
            }
            if let Ok(mut s) = task_state.lock() {
                s.in_flight.remove(&task_key);
            }
        });
        if let Some(s) = shared.as_mut() {
            s.in_flight.insert(key, (handle, stateless));
        }
    }

    async fn forward(
        &self,
        state: &State,
        message: &Value,
        id: Option<&Value>,
        method: Option<&str>,
        is_initialize: bool,
        out: &mpsc::UnboundedSender<Value>,
    ) {
        let (session, negotiated) = match state.lock() {
            Ok(s) => (s.session.clone(), s.protocol.clone()),
            Err(_) => (None, None),
        };
        let mut request = self
            .client
            .post(self.endpoint.clone())
            .bearer_auth(&self.key)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json");
        let meta_version = message["params"]["_meta"][META_VERSION].as_str();
        let version = meta_version.map(str::to_string).or(negotiated);
        if let Some(v) = version.filter(|_| !is_initialize) {
            request = request.header("mcp-protocol-version", header_value(&v));
        }
        if let Some(m) = method {
            request = request.header("mcp-method", header_value(m));
            let name = match m {
                "tools/call" | "prompts/get" => message["params"]["name"].as_str(),
                "resources/read" => message["params"]["uri"].as_str(),
                _ => None,
            };
            if let Some(name) = name {
                request = request.header("mcp-name", header_value(name));
            }
        }
        if let Some(s) = session
            .as_ref()
            .filter(|_| meta_version.is_none() && !is_initialize)
        {
            request = request.header("mcp-session-id", s.as_str());
        }
        let body = serde_json::to_vec(message).unwrap_or_default();
        let response = match request.body(body).send().await {
            Ok(r) => r,
            Err(e) => {
                let why = crate::remote::error_chain(&e);
                tracing::warn!(error = %why, "cannot reach the server");
                if id.is_some() {
                    let _ = out.send(error(
                        id,
                        -32603,
                        format!(
                            "cannot reach the objectos server at {}: {why}",
                            self.endpoint
                        ),
                    ));
                }
                return;
            }
        };
        let status = response.status();
        if is_initialize
            && status.is_success()
            && let Some(s) = response
                .headers()
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
            && let Ok(mut shared) = state.lock()
        {
            shared.session = Some(s.to_string());
        }
        if status == reqwest::StatusCode::NOT_FOUND && session.is_some() && meta_version.is_none() {
            // The server ended the session: the host has to connect again.
            if let Ok(mut shared) = state.lock() {
                shared.session = None;
                shared.protocol = None;
            }
        }
        let event_stream = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if status == reqwest::StatusCode::ACCEPTED {
            if id.is_some() {
                let _ = out.send(error(
                    id,
                    -32603,
                    "the server accepted a request without answering it",
                ));
            }
            return;
        }
        if event_stream && status.is_success() {
            self.relay_events(state, response, id, is_initialize, out)
                .await;
            return;
        }
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() && (body.is_object() || body.is_array()) {
            remember_protocol(state, &body, is_initialize);
            let _ = out.send(body);
            return;
        }
        if body.get("error").is_some_and(Value::is_object) {
            let mut body = body;
            if body.get("id").is_none_or(Value::is_null) {
                body["id"] = id.cloned().unwrap_or(Value::Null);
            }
            if id.is_some() || method.is_none() {
                let _ = out.send(body);
            } else {
                tracing::warn!(status = status.as_u16(), error = %body["error"], "the server refused a notification");
            }
            return;
        }
        let message = match status.as_u16() {
            401 => "the server refused the agent key (401): check `OBJECTOS_API_KEY`".to_string(),
            403 => "the server refused this agent (403)".to_string(),
            s => format!(
                "the server answered HTTP {s}: {}",
                text.chars().take(200).collect::<String>()
            ),
        };
        tracing::warn!(status = status.as_u16(), "{message}");
        if id.is_some() {
            let _ = out.send(error(id, -32603, message));
        }
    }

    /// Relay each event's data from an SSE answer.
    async fn relay_events(
        &self,
        state: &State,
        mut response: reqwest::Response,
        id: Option<&Value>,
        is_initialize: bool,
        out: &mpsc::UnboundedSender<Value>,
    ) {
        let mut buffer: Vec<u8> = Vec::new();
        let mut answered = false;
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "the server's stream broke");
                    break;
                }
            };
            buffer.extend_from_slice(&chunk);
            while let Some((event, rest)) = split_event(&buffer) {
                let data = event_data(&event);
                buffer = rest;
                if data.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Value>(&data) {
                    Ok(message) => {
                        remember_protocol(state, &message, is_initialize);
                        if message.get("id") == id
                            && (message.get("result").is_some() || message.get("error").is_some())
                        {
                            answered = true;
                        }
                        let _ = out.send(message);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the server sent an event that is not JSON")
                    }
                }
                if answered {
                    return;
                }
            }
            if buffer.len() > MAX_LINE * 4 {
                tracing::warn!("an event from the server is too large");
                break;
            }
        }
        if id.is_some() && !answered {
            let _ = out.send(error(
                id,
                -32603,
                "the server's stream ended without an answer",
            ));
        }
    }
}

/// After `initialize`, the revision the server chose.
fn remember_protocol(state: &State, message: &Value, is_initialize: bool) {
    if is_initialize
        && let Some(v) = message["result"]["protocolVersion"].as_str()
        && let Ok(mut s) = state.lock()
    {
        s.protocol = Some(v.to_string());
    }
}

/// One line from stdin (without the newline), at most `MAX_LINE + 1` bytes
/// kept; the rest of a longer line is read and dropped.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(total);
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = (MAX_LINE + 1).saturating_sub(line.len());
        let end = if done { take - 1 } else { take };
        line.extend_from_slice(&buf[..end.min(room)]);
        total += take;
        reader.consume(take);
        if done {
            return Ok(total);
        }
    }
}

/// The first complete SSE event in `buffer` and what follows it.
fn split_event(buffer: &[u8]) -> Option<(String, Vec<u8>)> {
    let text = buffer;
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'\n' {
            if text.get(i + 1) == Some(&b'\n') {
                return Some((
                    String::from_utf8_lossy(&text[..i]).into_owned(),
                    text[i + 2..].to_vec(),
                ));
            }
            if text.get(i + 1) == Some(&b'\r') && text.get(i + 2) == Some(&b'\n') {
                return Some((
                    String::from_utf8_lossy(&text[..i]).into_owned(),
                    text[i + 3..].to_vec(),
                ));
            }
        }
        i += 1;
    }
    None
}

/// The data of one SSE event: its `data:` lines joined.
fn event_data(event: &str) -> String {
    event
        .lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_follow_the_specification() {
        assert_eq!(header_value("get_record"), "get_record");
        assert_eq!(
            header_value("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(header_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(header_value("line1\nline2"), "=?base64?bGluZTEKbGluZTI=?=");
        assert_eq!(
            header_value("=?base64?literal?="),
            "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
        );
    }

    #[test]
    fn events_are_split_and_their_data_joined() {
        let buf = b"id: 1\nretry: 3000\ndata:\n\nevent: message\ndata: {\"a\":\ndata: 1}\n\nrest";
        let (first, rest) = split_event(buf).unwrap();
        assert_eq!(event_data(&first), "");
        let (second, rest) = split_event(&rest).unwrap();
        assert_eq!(event_data(&second), "{\"a\":\n1}");
        assert_eq!(rest, b"rest");
        assert!(split_event(&rest).is_none());
        let (crlf, _) = split_event(b"data: x\r\n\r\n").unwrap();
        assert_eq!(event_data(&crlf), "x");
    }

    #[tokio::test]
    async fn long_lines_are_cut_not_buffered_whole() {
        let mut input = vec![b'x'; MAX_LINE + 10];
        input.push(b'\n');
        input.extend_from_slice(b"{}\n");
        let mut reader = tokio::io::BufReader::new(&input[..]);
        let mut line = Vec::new();
        let n = read_line(&mut reader, &mut line).await.unwrap();
        assert_eq!(n, MAX_LINE + 11);
        assert_eq!(line.len(), MAX_LINE + 1);
        line.clear();
        read_line(&mut reader, &mut line).await.unwrap();
        assert_eq!(line, b"{}");
    }
}
