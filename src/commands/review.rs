//! `objectos review`: a reviewer approves or rejects what agents proposed, in a
//! terminal (a list, one action's diff, then approve / reject / skip) or from a
//! script (`--list`, `ID --approve`, `ID --reject --reason TEXT`, `--json`). It
//! talks to the running server with the reviewer's own user key — never the
//! agents' `OBJECTOS_API_KEY` — and shows every string an agent wrote inert.

use std::io::IsTerminal;

use serde_json::{Value, json};

use crate::cli::ReviewArgs;
use crate::commands::Ctx;
use crate::error::{Exit, Failure};
use crate::output::Style;
use crate::remote::{self, Server, inert};

/// `objectos review --json`: the actions listed, or the one shown or decided,
/// as the server answers them (see docs/agents.md).
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct ReviewReport {
    /// With `--list`: every action you may see, with that status
    #[serde(rename = "pendingActions", skip_serializing_if = "Option::is_none")]
    pub pending_actions: Option<Vec<Value>>,
    /// One action: its fields (`id`, `status`, `kind`, `change`, …) at the top level
    #[serde(flatten)]
    pub action: Option<serde_json::Map<String, Value>>,
}

/// The variable a reviewer's key may come from (never the agents' variable).
pub const REVIEW_KEY_ENV: &str = "OBJECTOS_REVIEW_KEY";

struct Session {
    server: Server,
    key: String,
}

impl Session {
    fn get(&self, path: &str) -> anyhow::Result<Value> {
        let url = self.server.url(path)?;
        self.server
            .json(self.server.client.get(url).bearer_auth(&self.key))
    }

    fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let url = self.server.url(path)?;
        self.server.json(
            self.server
                .client
                .post(url)
                .bearer_auth(&self.key)
                .json(&body),
        )
    }

    fn list(&self, status: &str) -> anyhow::Result<Vec<Value>> {
        let doc = self.get(&format!("/api/v1/pending-actions?status={status}"))?;
        Ok(doc["pendingActions"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    fn decide(&self, id: &str, approve: bool, reason: Option<&str>) -> anyhow::Result<Value> {
        let id = path_segment(id)?;
        if approve {
            self.post(&format!("/api/v1/pending-actions/{id}/approve"), json!({}))
        } else {
            self.post(
                &format!("/api/v1/pending-actions/{id}/reject"),
                json!({"reason": reason.unwrap_or("")}),
            )
        }
    }
}

/// An id as it goes into a URL path: the queue's ids are UUIDs.
fn path_segment(id: &str) -> anyhow::Result<&str> {
    if !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        Ok(id)
    } else {
        Err(Failure::error(format!("`{}` is not a pending action's id", inert(id))).into())
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => inert(s),
        Value::Null => "-".into(),
        other => inert(&other.to_string()),
    }
}

/// One line of the list: who, through which client, what, when, until when.
fn summary(a: &Value) -> String {
    let client = match (&a["client"]["name"], &a["client"]["version"]) {
        (Value::String(n), Value::String(v)) => format!("{} {}", inert(n), inert(v)),
        (Value::String(n), _) => inert(n),
        _ => "-".into(),
    };
    let target = match (&a["object"], &a["recordId"]) {
        (Value::String(o), Value::String(r)) => format!("{}:{}", inert(o), inert(r)),
        (Value::String(o), _) => inert(o),
        _ => "-".into(),
    };
    format!(
        "{}  {}  by {} via {}  {} {} ({})  {}  expires {}",
        text(&a["id"]),
        text(&a["status"]),
        text(&a["requester"]["email"]),
        client,
        text(&a["kind"]),
        target,
        text(&a["tool"]),
        text(&a["createdAt"]),
        text(&a["expiresAt"]),
    )
}

/// The change, for people: field by field for records (old → new), the unified
/// diff for metadata, who gets which set for a grant.
fn render(ctx: &Ctx, a: &Value) -> Vec<String> {
    let out = &ctx.out;
    let mut lines = vec![summary(a)];
    let change = &a["change"];
    if let Some(diff) = change["diff"].as_array() {
        for entry in diff {
            lines.push(format!(
                "  {}: {} → {}",
                text(&entry["field"]),
                out.paint(&text(&entry["before"]), Style::Removed),
                out.paint(&text(&entry["after"]), Style::Added),
            ));
        }
    }
    if let Some(n) = a["hiddenFields"].as_u64().filter(|n| *n > 0) {
        lines.push(format!("  (and {n} field(s) you may not read)"));
    }
    if let Some(cascade) = change["cascade"].as_array() {
        lines.push(format!("  removes {} record(s):", cascade.len()));
        for entry in cascade {
            lines.push(format!(
                "    - {}:{}",
                text(&entry["object"]),
                text(&entry["id"])
            ));
        }
    }
    if let Some(n) = a["hiddenRecords"].as_u64().filter(|n| *n > 0) {
        lines.push(format!("  (and {n} record(s) you may not read)"));
    }
    if let Some(set) = change["permissionSet"].as_str() {
        lines.push(format!(
            "  {} `{}` {} {}",
            if a["kind"] == "revoke" {
                "revoke"
            } else {
                "grant"
            },
            inert(set),
            if a["kind"] == "revoke" { "from" } else { "to" },
            text(&change["user"]["email"])
        ));
    }
    if let Some(diff) = change["unifiedDiff"].as_str() {
        for line in diff.lines() {
            let style = if line.starts_with('+') && !line.starts_with("+++") {
                Some(Style::Added)
            } else if line.starts_with('-') && !line.starts_with("---") {
                Some(Style::Removed)
            } else {
                None
            };
            let line = inert(line);
            lines.push(match style {
                Some(s) => format!("  {}", out.paint(&line, s)),
                None => format!("  {line}"),
            });
        }
    }
    if let Some(why) = change["reason"].as_str() {
        lines.push(format!("  the agent says why: {}", inert(why)));
    }
    if let Some(reason) = a["reason"].as_str() {
        lines.push(format!("  reason: {}", inert(reason)));
    }
    if let Some(result) = a["result"].as_str() {
        lines.push(format!("  result: {}", inert(result)));
    }
    lines
}

fn print(ctx: &Ctx, lines: &[String]) -> anyhow::Result<()> {
    for line in lines {
        ctx.out.data(line)?;
    }
    Ok(())
}

fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

pub fn run(args: ReviewArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let key = remote::key_from(args.api_key_file.as_deref(), REVIEW_KEY_ENV, "reviewer's")?;
    let server = remote::connect(
        &args.server,
        args.insecure,
        args.ca_file.as_deref(),
        Some(std::time::Duration::from_secs(60)),
    )?;
    let session = Session { server, key };
    if args.list {
        let items = session.list(&args.status)?;
        if ctx.out.json {
            ctx.out
                .json_doc("review", &json!({ "pendingActions": items }))?;
        } else if items.is_empty() {
            ctx.out
                .status(format!("no `{}` actions you may see", args.status));
        } else {
            for a in &items {
                ctx.out.data(summary(a))?;
            }
        }
        return Ok(Exit::Success);
    }
    match args.id.as_deref() {
        Some(id) if args.approve || args.reject => {
            let reason = match (&args.reason, args.reject) {
                (Some(r), _) => Some(r.clone()),
                (None, false) => None,
                (None, true) if interactive() => Some(ask_reason()?),
                (None, true) => {
                    return Err(Failure::new(Exit::Usage, "a rejection needs a reason")
                        .with_hint("pass `--reason TEXT`")
                        .into());
                }
            };
            let result = session.decide(id, args.approve, reason.as_deref())?;
            report(ctx, &result)
        }
        Some(id) => {
            let item = session.get(&format!("/api/v1/pending-actions/{}", path_segment(id)?))?;
            if ctx.out.json {
                ctx.out.json_doc("review", &item)?;
                return Ok(Exit::Success);
            }
            print(ctx, &render(ctx, &item))?;
            if interactive() && item["status"] == "pending" {
                decide_here(ctx, &session, &item)?;
            }
            Ok(Exit::Success)
        }
        None if interactive() && !ctx.out.json => walk(ctx, &session),
        None => Err(
            Failure::new(Exit::Usage, "no terminal to review in: say what to do")
                .with_hint("pass `--list`, `ID --approve`, or `ID --reject --reason TEXT`")
                .into(),
        ),
    }
}

fn report(ctx: &Ctx, result: &Value) -> anyhow::Result<Exit> {
    if ctx.out.json {
        ctx.out.json_doc("review", result)?;
    } else {
        print(ctx, &render(ctx, result))?;
    }
    Ok(Exit::Success)
}

fn ask_reason() -> anyhow::Result<String> {
    let reason: String = dialoguer::Input::new()
        .with_prompt("Why reject it")
        .validate_with(|r: &String| {
            if r.trim().is_empty() {
                Err("a rejection needs a reason")
            } else {
                Ok(())
            }
        })
        .interact_text()?;
    Ok(reason)
}

/// Approve, reject (with a reason) or skip the action shown.
fn decide_here(ctx: &Ctx, session: &Session, item: &Value) -> anyhow::Result<()> {
    let choice = dialoguer::Select::new()
        .with_prompt("Decide")
        .items(&["approve", "reject", "skip"])
        .default(2)
        .interact()?;
    let id = item["id"].as_str().unwrap_or_default();
    let result = match choice {
        0 => session.decide(id, true, None),
        1 => {
            let reason = ask_reason()?;
            session.decide(id, false, Some(&reason))
        }
        _ => return Ok(()),
    };
    match result {
        Ok(done) => print(ctx, &render(ctx, &done)),
        // A refusal (not yours to decide, stale…) is said, and the walk goes on.
        Err(e) => {
            crate::error::report(&e);
            Ok(())
        }
    }
}

/// The terminal walk: pick a pending action, see its diff, decide, again.
fn walk(ctx: &Ctx, session: &Session) -> anyhow::Result<Exit> {
    loop {
        let items = session.list("pending")?;
        if items.is_empty() {
            ctx.out.status("nothing is waiting for review");
            return Ok(Exit::Success);
        }
        let mut labels: Vec<String> = items.iter().map(summary).collect();
        labels.push("quit".into());
        let pick = dialoguer::Select::new()
            .with_prompt("Pending actions")
            .items(&labels)
            .default(0)
            .interact()?;
        if pick == items.len() {
            return Ok(Exit::Success);
        }
        let item = &items[pick];
        for line in render(ctx, item) {
            eprintln!("{line}");
        }
        decide_here(ctx, session, item)?;
    }
}
