//! `objectos chat`: a terminal client of the assistant for a signed-in user
//! (their user key or session token; never the data dir), streaming the answer
//! and showing each tool call and each change that waits for a reviewer; and
//! `objectos assistant export`, the host operator's copy of the transcripts.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;
use base64::Engine;
use futures_util::StreamExt;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};

use crate::audit::{self, Event, Origin};
use crate::cli::{AssistantCommand, AssistantExportArgs, ChatArgs};
use crate::commands::Ctx;
use crate::error::{Exit, Failure};
use crate::remote::{self, inert};

/// The variable the user's key (or session token) comes from.
pub const CHAT_KEY_ENV: &str = "OBJECTOS_API_KEY";

/// One line of `objectos chat --json`: an event of the turn as the server sent it.
#[derive(Serialize, JsonSchema)]
pub struct ChatEvent {
    pub conversation: String,
    /// `user_message`, `delta`, `tool_call`, `tool_result`, `pending_approval`, `done` or `error`
    pub event: String,
    pub data: Value,
}

struct Client {
    http: reqwest::Client,
    base: reqwest::Url,
    key: String,
}

fn failure_of(status: u16, body: &str) -> anyhow::Error {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let code = v["error"]["code"].as_str().unwrap_or("error");
    let message = v["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("the server answered {status}"));
    let mut f = Failure::new(
        Exit::from_status(status),
        format!("{} ({code})", inert(&message)),
    );
    if code == "assistant_off" {
        f = f.with_hint("the host operator turns it on with `objectos settings set ai.endpoint URL` and `ai.model`");
    }
    f.into()
}

impl Client {
    fn url(&self, path: &str) -> anyhow::Result<reqwest::Url> {
        self.base
            .join(path.trim_start_matches('/'))
            .with_context(|| format!("cannot build a URL for `{path}`"))
    }

    fn unreachable(&self, e: reqwest::Error) -> anyhow::Error {
        Failure::error(format!(
            "cannot reach the server at {}: {}",
            self.base,
            crate::remote::error_chain(&e)
        ))
        .with_hint("is `objectos serve` running there? (`--server URL`)")
        .into()
    }

    async fn start(&self, title: Option<&str>) -> anyhow::Result<String> {
        let body = match title {
            Some(t) => json!({ "title": t }),
            None => json!({}),
        };
        let response = self
            .http
            .post(self.url("/api/v1/assistant/conversations")?)
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        if status != 201 {
            return Err(failure_of(status, &text));
        }
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        v["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| Failure::error("the server answered no conversation id").into())
    }

    /// One turn: send the message, show the events as they come.
    async fn turn(&self, ctx: &Ctx, conversation: &str, content: &str) -> anyhow::Result<()> {
        let path = format!(
            "/api/v1/assistant/conversations/{}/messages",
            path_segment(conversation)?
        );
        let response = self
            .http
            .post(self.url(&path)?)
            .bearer_auth(&self.key)
            .header("accept", "text/event-stream")
            .json(&json!({ "content": content }))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let text = response.text().await.unwrap_or_default();
            return Err(failure_of(status, &text));
        }
        let mut events = sse_stream::SseStream::from_bytes_stream(response.bytes_stream());
        let mut stdout = std::io::stdout();
        let mut mid_line = false;
        while let Some(event) = events.next().await {
            let event =
                event.map_err(|e| Failure::error(format!("the answer's stream broke off: {e}")))?;
            let name = event.event.unwrap_or_default();
            let data: Value = event
                .data
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or(Value::Null);
            if ctx.out.json {
                let line = crate::output::Document {
                    format: crate::output::format_name("chat"),
                    body: ChatEvent {
                        conversation: conversation.to_string(),
                        event: name.clone(),
                        data: data.clone(),
                    },
                };
                // One JSON line per event, as it comes (a stream).
                writeln!(stdout, "{}", serde_json::to_string(&line)?)?;
                stdout.flush()?;
            }
            let mut note = |text: String| {
                if mid_line && !ctx.out.json {
                    let _ = writeln!(stdout);
                    mid_line = false;
                }
                ctx.out.status(text);
            };
            match name.as_str() {
                "delta" if !ctx.out.json => {
                    let text = data["text"].as_str().unwrap_or("");
                    // Line breaks are the model's; everything else is shown inert.
                    let shown: Vec<String> = text.split('\n').map(inert).collect();
                    write!(stdout, "{}", shown.join("\n"))?;
                    stdout.flush()?;
                    mid_line = !text.ends_with('\n');
                }
                "tool_call" => note(format!(
                    "[tool] {} {}",
                    inert(data["name"].as_str().unwrap_or("?")),
                    inert(&data["arguments"].to_string())
                )),
                "tool_result" => {
                    let r = &data["result"];
                    let text = if data["isError"] == true {
                        format!(
                            "[tool refused] {}: {}",
                            inert(r["error"]["code"].as_str().unwrap_or("error")),
                            inert(r["error"]["message"].as_str().unwrap_or(""))
                        )
                    } else if let Some(list) = r["records"].as_array() {
                        format!("[tool result] {} records", list.len())
                    } else if r["status"] == "pending_approval" {
                        continue;
                    } else {
                        "[tool result] ok".to_string()
                    };
                    note(text)
                }
                "pending_approval" => note(format!(
                    "[pending approval] {} waits for a reviewer (`objectos review {}`); it has not happened yet",
                    inert(data["pendingActionId"].as_str().unwrap_or("?")),
                    inert(data["pendingActionId"].as_str().unwrap_or("?"))
                )),
                "done" => {
                    if mid_line && !ctx.out.json {
                        writeln!(stdout)?;
                    }
                    return Ok(());
                }
                "error" => {
                    if mid_line && !ctx.out.json {
                        writeln!(stdout)?;
                    }
                    return Err(Failure::error(format!(
                        "{} ({})",
                        inert(data["message"].as_str().unwrap_or("the turn failed")),
                        inert(data["code"].as_str().unwrap_or("error"))
                    ))
                    .into());
                }
                _ => {}
            }
        }
        Err(Failure::error("the server ended the answer before it was complete").into())
    }
}

/// An id as it goes into a URL path.
fn path_segment(id: &str) -> anyhow::Result<&str> {
    if !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        Ok(id)
    } else {
        Err(Failure::new(
            Exit::Usage,
            format!("`{}` is not a conversation id", inert(id)),
        )
        .into())
    }
}

pub fn run(args: ChatArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let key = remote::key_from(args.api_key_file.as_deref(), CHAT_KEY_ENV, "user")?;
    let base = remote::check_url(&args.server, args.insecure)?;
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("objectos-chat/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(10));
    if let Some(path) = &args.ca_file {
        for cert in remote::ca_certificates(path)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    let client = Client {
        http: builder.build().context("cannot set up the HTTP client")?,
        base,
        key,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // The conversation is started with the first message, not before.
        let mut conversation = match &args.conversation {
            Some(id) => Some(path_segment(id)?.to_string()),
            None => None,
        };
        let open = async |conversation: &mut Option<String>| -> anyhow::Result<String> {
            if let Some(id) = conversation {
                return Ok(id.clone());
            }
            let id = client.start(args.title.as_deref()).await?;
            ctx.out.status(format!("conversation {id}"));
            *conversation = Some(id.clone());
            Ok(id)
        };
        if !args.message.is_empty() {
            let id = open(&mut conversation).await?;
            client.turn(ctx, &id, &args.message.join(" ")).await?;
            return Ok(Exit::Success);
        }
        let stdin = std::io::stdin();
        let terminal = stdin.is_terminal();
        let mut sent = 0;
        loop {
            if terminal {
                eprint!("you> ");
                let _ = std::io::stderr().flush();
            }
            let mut line = String::new();
            if stdin.lock().read_line(&mut line)? == 0 {
                break;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let id = open(&mut conversation).await?;
            client.turn(ctx, &id, line).await?;
            sent += 1;
        }
        if sent == 0 && !terminal {
            return Err(Failure::error("no message to send")
                .with_hint("pass it as arguments (`objectos chat which deals close this month`) or pipe one message per line")
                .into());
        }
        Ok(Exit::Success)
    })
}

/// `objectos assistant export --json`, with `-o`: what was written.
#[derive(Serialize, JsonSchema)]
pub struct AssistantExportReport {
    pub conversations: usize,
    pub messages: usize,
    pub output: Option<String>,
}

pub fn assistant(cmd: AssistantCommand, ctx: &Ctx) -> anyhow::Result<Exit> {
    match cmd {
        AssistantCommand::Export(args) => export(args, ctx),
    }
}

fn export(args: AssistantExportArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let instance = ctx.instance()?;
    let origin = Origin::operator();
    let output = args
        .output
        .as_ref()
        .filter(|p| p.as_os_str() != "-")
        .cloned();
    let (lines, conversations, messages) = instance.store.read(|tx| {
        let user_filter = match &args.user {
            Some(email) => Some(crate::identity::user_by_email(tx, email)?.id),
            None => None,
        };
        let mut lines = Vec::new();
        let mut count = 0;
        let mut total = 0;
        for c in tx.assistant_conversations()? {
            if user_filter.as_ref().is_some_and(|u| *u != c.user_id) {
                continue;
            }
            if args.conversation.as_ref().is_some_and(|id| *id != c.id) {
                continue;
            }
            let user = tx.user_by_id(&c.user_id)?;
            let ms = tx.assistant_messages(&c.id)?;
            total += ms.len();
            count += 1;
            let line = json!({
                "conversation": c.id,
                "user": {"id": c.user_id, "email": user.map(|u| u.email)},
                "organization_id": c.org_id,
                "title": c.title,
                "created_at": c.created_at,
                "updated_at": c.updated_at,
                "tools_sha256": crate::assistant::endpoint::sha256_hex(c.tools.as_bytes()),
                "messages": ms.iter().map(|m| json!({
                    "index": m.idx,
                    "role": m.role,
                    "body": m.body,
                    "sha256": m.sha256,
                    "audit_seq": m.audit_seq,
                    "created_at": m.created_at,
                    "response_base64": m.response.as_ref().map(|r| base64::engine::general_purpose::STANDARD.encode(r)),
                })).collect::<Vec<_>>(),
            });
            lines.push(line.to_string());
        }
        Ok((lines, count, total))
    })?;
    if let Some(id) = &args.conversation
        && conversations == 0
    {
        return Err(Failure::error(format!("no conversation `{}`", inert(id))).into());
    }
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    match &output {
        Some(path) => std::fs::write(path, &text)
            .with_context(|| format!("cannot write `{}`", path.display()))?,
        None => {
            let mut stdout = std::io::stdout();
            if let Err(e) = stdout
                .write_all(text.as_bytes())
                .and_then(|_| stdout.flush())
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                return Err(e.into());
            }
        }
    }
    let output_name = output.as_ref().map(|p| p.display().to_string());
    instance.store.write(|tx| {
        audit::append(
            tx,
            &origin,
            Event::new("assistant.export")
                .object(crate::assistant::transcript::OBJECT)
                .changes(json!({
                    "conversations": conversations,
                    "messages": messages,
                    "user": args.user,
                    "conversation": args.conversation,
                    "output": output_name,
                })),
        )?;
        Ok(())
    })?;
    let report = AssistantExportReport {
        conversations,
        messages,
        output: output_name,
    };
    if ctx.out.json && output.is_some() {
        ctx.out.json_doc("assistant.export", &report)?;
    } else {
        ctx.out.status(format!(
            "exported {conversations} conversations ({messages} messages)"
        ));
    }
    Ok(Exit::Success)
}
