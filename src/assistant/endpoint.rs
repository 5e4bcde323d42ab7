//! The model endpoint: an OpenAI-compatible `POST {ai.endpoint}/chat/completions`
//! with function calling, answered whole (JSON) or streamed (SSE, parsed by
//! `sse-stream`). Every byte sent and received is hashed, so the audit row of a
//! request names exactly what crossed the wire. The client goes to the
//! configured endpoint only: no proxy from the environment, no redirects.

use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::config::AiConfig;

/// The most an answer may be (bytes); a larger one ends the turn.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// The request body, from the stored messages' exact JSON texts and the
/// conversation's tool definitions: the same inputs always give the same bytes,
/// so a stored transcript can be checked against the hash the audit recorded.
pub fn request_body(
    model: &str,
    messages: &[&str],
    tools: &str,
    stream: bool,
    max_tokens: u64,
) -> Vec<u8> {
    let mut out = String::with_capacity(
        messages.iter().map(|m| m.len() + 1).sum::<usize>() + tools.len() + 128,
    );
    out.push_str("{\"model\":");
    out.push_str(&Value::String(model.to_string()).to_string());
    out.push_str(",\"messages\":[");
    out.push_str(&messages.join(","));
    out.push_str("],\"tools\":");
    out.push_str(tools);
    if stream {
        out.push_str(",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    } else {
        out.push_str(",\"stream\":false");
    }
    out.push_str(&format!(",\"max_tokens\":{max_tokens}}}"));
    out.into_bytes()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A function the model asked to call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as the model wrote them (JSON text, maybe not JSON).
    pub arguments: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

/// The model's answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Option<Usage>,
}

impl Reply {
    /// The answer as a message of the conversation (what the next request sends).
    pub fn message(&self) -> Value {
        let mut m = json!({"role": "assistant", "content": if self.content.is_empty() && !self.tool_calls.is_empty() { Value::Null } else { Value::String(self.content.clone()) }});
        if !self.tool_calls.is_empty() {
            m["tool_calls"] = self
                .tool_calls
                .iter()
                .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
                .collect();
        }
        m
    }
}

/// Why a model request failed; each ends the turn with its code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("the model endpoint did not answer within {0} seconds (`ai.timeout`)")]
    Timeout(u64),
    #[error("the model endpoint cannot be reached: {0}")]
    Unreachable(String),
    #[error("the model endpoint answered {status}: {detail}")]
    Status { status: u16, detail: String },
    #[error("the model endpoint's answer is not one objectos can read: {0}")]
    Garbage(String),
    #[error("the model endpoint's answer ended before it was complete")]
    Incomplete,
}

impl EndpointError {
    pub fn code(&self) -> &'static str {
        match self {
            EndpointError::Timeout(_) => "model_timeout",
            EndpointError::Unreachable(_) => "model_unreachable",
            EndpointError::Status { .. } => "model_error",
            EndpointError::Garbage(_) => "model_garbage",
            EndpointError::Incomplete => "model_incomplete",
        }
    }
}

/// What one request exchanged, whatever its outcome.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub status: Option<u16>,
    pub response_sha256: String,
    pub response_bytes: usize,
    /// The bytes received (up to [`MAX_RESPONSE_BYTES`] and a chunk).
    pub response: Vec<u8>,
    pub result: Result<Reply, EndpointError>,
}

/// The HTTP client for the configured endpoint.
pub fn client(config: &AiConfig) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .user_agent(concat!("objectos/", env!("CARGO_PKG_VERSION")))
        // Only the configured endpoint: no proxy taken from the environment,
        // no redirect followed elsewhere.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(config.timeout.min(std::time::Duration::from_secs(10)))
        .timeout(config.timeout)
        .build()?)
}

fn transport_error(e: &reqwest::Error, config: &AiConfig) -> EndpointError {
    if e.is_timeout() {
        EndpointError::Timeout(config.timeout.as_secs())
    } else if e.is_connect() {
        EndpointError::Unreachable(format!("cannot connect to {}", config.endpoint))
    } else if e.is_body() || e.is_decode() {
        EndpointError::Incomplete
    } else {
        EndpointError::Unreachable(e.to_string())
    }
}

/// Text from the endpoint, made short and inert for an error message.
fn detail(text: &str) -> String {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let message = v["error"]["message"]
        .as_str()
        .or_else(|| v["error"].as_str())
        .or_else(|| v["message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| text.to_string());
    let short: String = message.chars().take(200).collect();
    crate::remote::inert(short.trim())
}

/// Send one request and read the answer (streamed or whole), calling `on_text`
/// with each piece of streamed text as it comes.
pub async fn complete(
    client: &reqwest::Client,
    config: &AiConfig,
    body: Vec<u8>,
    mut on_text: impl FnMut(&str) + Send,
) -> Exchange {
    let digest = Arc::new(Mutex::new((Sha256::new(), 0usize, Vec::new())));
    let finish = |status: Option<u16>, result: Result<Reply, EndpointError>| {
        let (sha, n, bytes) = match digest.lock() {
            Ok(mut d) => (
                hex::encode(d.0.clone().finalize()),
                d.1,
                std::mem::take(&mut d.2),
            ),
            Err(_) => (String::new(), 0, Vec::new()),
        };
        Exchange {
            status,
            response_sha256: sha,
            response_bytes: n,
            response: bytes,
            result,
        }
    };
    let mut request = client
        .post(config.completions_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    if let Some(key) = &config.api_key {
        request = request.bearer_auth(key);
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return finish(None, Err(transport_error(&e, config))),
    };
    let status = response.status().as_u16();
    let streamed = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let hashing = digest.clone();
    let too_large = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = too_large.clone();
    let over = too_large.clone();
    let bytes = response
        .bytes_stream()
        .map(move |chunk| {
            if let (Ok(b), Ok(mut d)) = (&chunk, hashing.lock()) {
                d.0.update(b);
                d.1 += b.len();
                if d.1 > MAX_RESPONSE_BYTES {
                    flag.store(true, std::sync::atomic::Ordering::Relaxed);
                } else {
                    d.2.extend_from_slice(b);
                }
            }
            chunk
        })
        // Past the limit the body ends here, whatever the parser holds.
        .take_while(move |_| std::future::ready(!over.load(std::sync::atomic::Ordering::Relaxed)));
    if !(200..300).contains(&status) || !streamed {
        // A whole answer (or an error): read it all, bounded.
        let mut bytes = Box::pin(bytes);
        let mut text = Vec::new();
        while let Some(chunk) = bytes.next().await {
            match chunk {
                Ok(b) => {
                    if text.len() + b.len() > MAX_RESPONSE_BYTES {
                        return finish(
                            Some(status),
                            Err(EndpointError::Garbage(format!(
                                "it is larger than {MAX_RESPONSE_BYTES} bytes"
                            ))),
                        );
                    }
                    text.extend_from_slice(&b);
                }
                Err(e) => return finish(Some(status), Err(transport_error(&e, config))),
            }
        }
        if too_large.load(std::sync::atomic::Ordering::Relaxed) {
            return finish(
                Some(status),
                Err(EndpointError::Garbage(format!(
                    "it is larger than {MAX_RESPONSE_BYTES} bytes"
                ))),
            );
        }
        let text = String::from_utf8_lossy(&text).into_owned();
        if !(200..300).contains(&status) {
            return finish(
                Some(status),
                Err(EndpointError::Status {
                    status,
                    detail: detail(&text),
                }),
            );
        }
        let result = parse_whole(&text);
        if let Ok(reply) = &result
            && !reply.content.is_empty()
        {
            on_text(&reply.content);
        }
        return finish(Some(status), result);
    }
    let mut events = sse_stream::SseStream::from_bytes_stream(bytes);
    let mut acc = Accumulator::default();
    loop {
        if too_large.load(std::sync::atomic::Ordering::Relaxed) {
            return finish(
                Some(status),
                Err(EndpointError::Garbage(format!(
                    "it is larger than {MAX_RESPONSE_BYTES} bytes"
                ))),
            );
        }
        let Some(event) = events.next().await else {
            break;
        };
        let event = match event {
            Ok(e) => e,
            Err(sse_stream::Error::Body(e)) => {
                // The body's own error (reqwest's): a timeout stays a timeout.
                let err = match e.downcast_ref::<reqwest::Error>() {
                    Some(e) => transport_error(e, config),
                    None => EndpointError::Incomplete,
                };
                return finish(Some(status), Err(err));
            }
            Err(e) => {
                return finish(
                    Some(status),
                    Err(EndpointError::Garbage(format!(
                        "the event stream is malformed ({e})"
                    ))),
                );
            }
        };
        let Some(data) = event.data else { continue };
        if data.trim() == "[DONE]" {
            acc.done = true;
            break;
        }
        match acc.chunk(&data) {
            Ok(Some(text)) => on_text(&text),
            Ok(None) => {}
            Err(e) => return finish(Some(status), Err(e)),
        }
    }
    if too_large.load(std::sync::atomic::Ordering::Relaxed) {
        return finish(
            Some(status),
            Err(EndpointError::Garbage(format!(
                "it is larger than {MAX_RESPONSE_BYTES} bytes"
            ))),
        );
    }
    finish(Some(status), acc.reply())
}

fn tool_calls_of(list: &Value) -> Result<Vec<ToolCall>, EndpointError> {
    let Some(items) = list.as_array() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let name = item["function"]["name"]
            .as_str()
            .ok_or_else(|| EndpointError::Garbage("a tool call names no function".into()))?;
        let arguments = match &item["function"]["arguments"] {
            Value::String(s) => s.clone(),
            Value::Null => "{}".to_string(),
            other => other.to_string(),
        };
        let id = item["id"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| format!("call_{i}"));
        out.push(ToolCall {
            id,
            name: name.to_string(),
            arguments,
        });
    }
    Ok(out)
}

fn usage_of(v: &Value) -> Option<Usage> {
    let u = v.get("usage").filter(|u| u.is_object())?;
    Some(Usage {
        prompt_tokens: u["prompt_tokens"].as_u64().unwrap_or(0),
        completion_tokens: u["completion_tokens"].as_u64().unwrap_or(0),
    })
}

/// A whole (non-streamed) answer.
pub fn parse_whole(text: &str) -> Result<Reply, EndpointError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|_| EndpointError::Garbage("the answer is not JSON".into()))?;
    let message = &v["choices"][0]["message"];
    if !message.is_object() {
        return Err(EndpointError::Garbage(
            "the answer has no `choices[0].message`".into(),
        ));
    }
    let content = match &message["content"] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        _ => {
            return Err(EndpointError::Garbage(
                "the message's `content` is not text".into(),
            ));
        }
    };
    Ok(Reply {
        content,
        tool_calls: tool_calls_of(&message["tool_calls"])?,
        usage: usage_of(&v),
    })
}

/// A streamed answer, chunk by chunk.
#[derive(Default)]
struct Accumulator {
    content: String,
    /// By index: id, name, arguments so far.
    calls: Vec<(String, String, String)>,
    usage: Option<Usage>,
    finished: bool,
    done: bool,
}

impl Accumulator {
    /// Take one chunk; the text it adds, if any.
    fn chunk(&mut self, data: &str) -> Result<Option<String>, EndpointError> {
        let v: Value = serde_json::from_str(data)
            .map_err(|_| EndpointError::Garbage("an event of the stream is not JSON".into()))?;
        if let Some(e) = v.get("error") {
            return Err(EndpointError::Status {
                status: 200,
                detail: detail(&json!({ "error": e }).to_string()),
            });
        }
        if let Some(u) = usage_of(&v) {
            self.usage = Some(u);
        }
        let Some(choice) = v["choices"].get(0) else {
            if v["choices"].is_array() || v.get("usage").is_some() {
                return Ok(None);
            }
            return Err(EndpointError::Garbage(
                "an event of the stream has no `choices`".into(),
            ));
        };
        if choice["finish_reason"].is_string() {
            self.finished = true;
        }
        let delta = &choice["delta"];
        if let Some(calls) = delta["tool_calls"].as_array() {
            for (n, call) in calls.iter().enumerate() {
                let index = call["index"].as_u64().map(|i| i as usize).unwrap_or(n);
                if index > 1000 {
                    return Err(EndpointError::Garbage(
                        "a tool call's index is absurd".into(),
                    ));
                }
                while self.calls.len() <= index {
                    self.calls.push(Default::default());
                }
                let slot = &mut self.calls[index];
                if let Some(id) = call["id"].as_str() {
                    slot.0 = id.to_string();
                }
                if let Some(name) = call["function"]["name"].as_str() {
                    slot.1.push_str(name);
                }
                match &call["function"]["arguments"] {
                    Value::String(s) => slot.2.push_str(s),
                    Value::Null => {}
                    other => slot.2.push_str(&other.to_string()),
                }
            }
        }
        match &delta["content"] {
            Value::String(s) if !s.is_empty() => {
                self.content.push_str(s);
                Ok(Some(s.clone()))
            }
            _ => Ok(None),
        }
    }

    fn reply(self) -> Result<Reply, EndpointError> {
        if !self.done && !self.finished {
            return Err(EndpointError::Incomplete);
        }
        let mut tool_calls = Vec::new();
        for (i, (id, name, arguments)) in self.calls.into_iter().enumerate() {
            if name.is_empty() {
                return Err(EndpointError::Garbage(
                    "a tool call names no function".into(),
                ));
            }
            tool_calls.push(ToolCall {
                id: if id.is_empty() {
                    format!("call_{i}")
                } else {
                    id
                },
                name,
                arguments: if arguments.is_empty() {
                    "{}".into()
                } else {
                    arguments
                },
            });
        }
        Ok(Reply {
            content: self.content,
            tool_calls,
            usage: self.usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_the_stored_texts_joined() {
        let body = request_body(
            "m",
            &[
                r#"{"role":"system","content":"s"}"#,
                r#"{"role":"user","content":"hi"}"#,
            ],
            "[]",
            false,
            5,
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["messages"][1]["content"], "hi");
        assert_eq!(v["max_tokens"], 5);
        assert_eq!(v["stream"], false);
        assert_eq!(
            body,
            request_body(
                "m",
                &[
                    r#"{"role":"system","content":"s"}"#,
                    r#"{"role":"user","content":"hi"}"#
                ],
                "[]",
                false,
                5
            )
        );
    }

    #[test]
    fn streamed_tool_calls_are_put_together() {
        let mut acc = Accumulator::default();
        acc.chunk(r#"{"choices":[{"delta":{"content":"Let me look"}}]}"#)
            .unwrap();
        acc.chunk(r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"get_record","arguments":"{\"objectName\":"}}]}}]}"#).unwrap();
        acc.chunk(r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"x\"}"}}]},"finish_reason":"tool_calls"}]}"#).unwrap();
        acc.chunk(r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#)
            .unwrap();
        let reply = acc.reply().unwrap();
        assert_eq!(reply.content, "Let me look");
        assert_eq!(reply.tool_calls[0].name, "get_record");
        assert_eq!(reply.tool_calls[0].arguments, r#"{"objectName":"x"}"#);
        assert_eq!(reply.usage.unwrap().total(), 7);
    }

    #[test]
    fn garbage_and_cut_streams_are_errors() {
        let mut acc = Accumulator::default();
        assert!(matches!(
            acc.chunk("not json"),
            Err(EndpointError::Garbage(_))
        ));
        let mut acc = Accumulator::default();
        acc.chunk(r#"{"choices":[{"delta":{"content":"half"}}]}"#)
            .unwrap();
        assert_eq!(acc.reply(), Err(EndpointError::Incomplete));
        assert!(parse_whole("{}").is_err());
        assert!(parse_whole(r#"{"choices":[{"message":{"content":"ok"}}]}"#).is_ok());
    }
}
