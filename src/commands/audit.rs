//! `objectos audit tail|verify`.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::audit::{checkpoint, row_document, verify};
use crate::cli::AuditCommand;
use crate::commands::Ctx;
use crate::error::{Exit, Failure, Reported};

#[derive(Serialize, JsonSchema)]
pub struct Tail {
    /// Rows as exported: every column, `hash` included
    pub events: Vec<Value>,
}

pub fn run(cmd: AuditCommand, ctx: &Ctx) -> anyhow::Result<Exit> {
    // Evidence: export and archive write (their own rows at least); an
    // auditor verifies an archive without any data dir.
    // Reading and checking the log writes nothing: it works on read-only media.
    let open = || ctx.instance_reading(true);
    match cmd {
        AuditCommand::Export(args) => super::evidence::export(args, ctx),
        AuditCommand::Archive(args) => super::evidence::archive(args, ctx),
        AuditCommand::VerifyArchive(args) => super::evidence::verify_archive(args, ctx),
        AuditCommand::Tail { n, follow } => {
            let instance = open()?;
            let rows = instance
                .store
                .read(|tx| Ok(tx.audit_last(n.min(100_000))?))?;
            if ctx.out.json && !follow {
                let events = rows.iter().map(event_document).collect();
                ctx.out.json_doc("audit.tail", &Tail { events })?;
                return Ok(Exit::Success);
            }
            let head = instance.store.read(|tx| Ok(tx.audit_head()?))?;
            let mut next = head.map(|(seq, _)| seq + 1).unwrap_or(1);
            for r in &rows {
                print_row(ctx, r)?;
            }
            // A stream: one JSON line per row, as they come.
            if !follow {
                return Ok(Exit::Success);
            }
            loop {
                std::thread::sleep(std::time::Duration::from_millis(500));
                let page = instance.store.read(|tx| Ok(tx.audit_page(next, 1000)?))?;
                for r in &page {
                    print_row(ctx, r)?;
                    next = r.seq + 1;
                }
            }
        }
        AuditCommand::Confirm {
            seq,
            field,
            value_file,
        } => confirm(&open()?, ctx, seq, &field, value_file.as_deref()),
        AuditCommand::Verify(args) => {
            let instance = open()?;
            let checkpoints = checkpoint::read_all(&instance.checkpoints_path())?;
            let outside = match &args.checkpoints {
                Some(path) => Some((path.display().to_string(), checkpoint::read_outside(path)?)),
                None => None,
            };
            let progress = progress_bar(ctx);
            let report = verify::verify_chain(
                &instance.store,
                verify::Checkpoints {
                    log: &checkpoints,
                    outside: outside.as_ref().map(|(n, c)| (n.as_str(), c.as_slice())),
                },
                &instance.checkpoint_keys()?,
                |n| {
                    if let Some(bar) = &progress {
                        bar.set_position(n);
                    }
                },
            )?;
            if let Some(bar) = progress {
                bar.finish_and_clear();
            }
            let mut report = report;
            // Stored assistant transcripts against the hashes the chain recorded.
            let transcripts = crate::assistant::transcript::verify(&instance.store)?;
            if let Some(m) = &transcripts.mismatch
                && report.broken.as_ref().is_none_or(|b| m.seq < b.seq)
            {
                report.broken = Some(verify::Broken {
                    seq: m.seq,
                    reason: m.reason.clone(),
                });
            }
            if report.broken.is_none() && !instance.guards_restored.is_empty() {
                report.broken = Some(verify::Broken {
                    seq: report.head_seq.unwrap_or(0),
                    reason: format!(
                        "the audit log's immutability guards ({}) had been dropped or altered behind objectos's back (put back now)",
                        instance.guards_restored.join(", ")
                    ),
                });
            }
            if !report.guards_restored_at.is_empty() {
                ctx.out.warn(format!(
                    "the immutability guards were found missing and put back before (rows {}); rows changed while they were gone would show as a broken chain",
                    report
                        .guards_restored_at
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if ctx.out.json {
                ctx.out.json_doc("audit.verify", &report)?;
                return if report.ok() {
                    Ok(Exit::Success)
                } else {
                    Err(Reported(Exit::Verify).into())
                };
            }
            match &report.broken {
                None => {
                    ctx.out.data(format!(
                        "ok: {} rows verify; head seq {} hash {}; {} signed checkpoints match{}{}",
                        report.rows,
                        report
                            .head_seq
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "-".into()),
                        report.head_hash.clone().unwrap_or_else(|| "-".into()),
                        report.checkpoints,
                        match (&report.outside_checkpoints, &args.checkpoints) {
                            (Some(n), Some(path)) =>
                                format!(", and {n} from `{}`", path.display()),
                            _ => String::new(),
                        },
                        report
                            .archived
                            .as_ref()
                            .map(|a| format!(
                                "; rows up to seq {} are in archives (the chain starts from their anchor, hash {})",
                                a.through_seq, a.last_hash
                            ))
                            .unwrap_or_default(),
                    ))?;
                    if transcripts.messages > 0 {
                        ctx.out.status(format!(
                            "assistant: {} messages of {} conversations and {} model requests match the hashes the chain recorded",
                            transcripts.messages, transcripts.conversations, transcripts.requests
                        ));
                    }
                    if args.checkpoints.is_none() {
                        ctx.out.status(
                            "note: checked against the data dir's own checkpoint log; rows cut off together with its newest lines are told only by a copy kept elsewhere (`--checkpoints FILE`)",
                        );
                    }
                    Ok(Exit::Success)
                }
                Some(b) => Err(Failure::verify(format!(
                    "the audit chain is broken at seq {}: {}",
                    b.seq, b.reason
                ))
                .with_hint("restore the database from a backup and investigate who changed it")
                .into()),
            }
        }
    }
}

#[derive(Serialize, JsonSchema)]
pub struct Confirmed {
    pub seq: i64,
    pub field: String,
    /// The suspected value is the one the row recorded an HMAC of
    #[serde(rename = "match")]
    pub matches: bool,
}

fn confirm(
    instance: &crate::instance::Instance,
    ctx: &Ctx,
    seq: i64,
    field: &str,
    value_file: Option<&std::path::Path>,
) -> anyhow::Result<Exit> {
    let row = instance
        .store
        .read(|tx| Ok(tx.audit_by_seq(seq)?))?
        .ok_or_else(|| Failure::error(format!("no audit row {seq}")))?;
    let changes = row.changes.clone().unwrap_or(Value::Null);
    // A field's entry (`{"changed", "hmac_sha256", "hmac_key"}`), or a setting's
    // row (`{"value_hmac_sha256", "hmac_key"}`).
    let (entry, digest) = match changes.get(field) {
        Some(entry) if entry.get("hmac_sha256").is_some() => (
            entry.clone(),
            entry["hmac_sha256"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ),
        _ if field == "value" && changes.get("value_hmac_sha256").is_some() => (
            changes.clone(),
            changes["value_hmac_sha256"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ),
        _ => {
            return Err(
                Failure::error(format!("row {seq} records no HMAC for `{field}`"))
                    .with_hint("see the row with `objectos audit tail --json`")
                    .into(),
            );
        }
    };
    let text =
        crate::prompt::password_or_file(value_file, "Suspected value", false, "--value-file FILE")?;
    // The value as typed, and (a number, say) as JSON.
    let mut candidates = vec![Value::String(text.clone())];
    if let Ok(parsed) = serde_json::from_str::<Value>(&text) {
        candidates.push(parsed);
    }
    let matches = candidates
        .iter()
        .any(|v| instance.hmac.confirms(&entry, &digest, v));
    if ctx.out.json {
        ctx.out.json_doc(
            "audit.confirm",
            &Confirmed {
                seq,
                field: field.to_string(),
                matches,
            },
        )?;
    } else if matches {
        ctx.out.data(format!(
            "match: row {seq} recorded this value for `{field}`"
        ))?;
    } else {
        ctx.out.data(format!(
            "no match: row {seq} recorded another value for `{field}`"
        ))?;
    }
    Ok(if matches { Exit::Success } else { Exit::Error })
}

/// A row as exported: every column, `hash` included.
fn event_document(r: &crate::store::AuditRow) -> Value {
    let mut doc = row_document(r);
    doc["hash"] = Value::String(r.hash.clone());
    doc
}

/// One row on stdout: a line for people, or (with `--json`, when following) a
/// JSON line.
fn print_row(ctx: &Ctx, r: &crate::store::AuditRow) -> anyhow::Result<()> {
    use std::io::Write;
    if ctx.out.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer(&mut out, &event_document(r))?;
        writeln!(out)?;
        out.flush()?;
        return Ok(());
    }
    let actor = match (
        &r.actor["email"],
        &r.actor["os_user"],
        &r.actor["as"]["email"],
    ) {
        (Value::String(e), _, _) => e.clone(),
        (_, Value::String(os), Value::String(as_user)) => format!("{os} as {as_user}"),
        (_, Value::String(os), _) => format!("{os} (host operator)"),
        _ => r.actor.to_string(),
    };
    let target = match (&r.object, &r.record_id) {
        (Some(o), Some(id)) => format!(" {o}:{id}"),
        (Some(o), None) => format!(" {o}"),
        _ => String::new(),
    };
    let outcome = if r.outcome == "success" {
        String::new()
    } else {
        // The reason too: a refusal without it sends the reader to `--json` for
        // the one thing they wanted.
        let why = r
            .changes
            .as_ref()
            .and_then(|c| c.get("error").or_else(|| c.get("reason")))
            .and_then(Value::as_str)
            .map(|w| format!(" — {w}"))
            .unwrap_or_default();
        format!(
            " [{}{}]{why}",
            r.outcome,
            r.code
                .as_ref()
                .map(|c| format!(": {c}"))
                .unwrap_or_default()
        )
    };
    // Strings an agent or a client wrote are shown inert on a terminal.
    use crate::remote::inert;
    ctx.out.data(format!(
        "{:>6}  {}  {:5}  {}  {}{}{}",
        r.seq,
        r.time,
        r.via,
        inert(&actor),
        inert(&r.action),
        inert(&target),
        inert(&outcome)
    ))?;
    Ok(())
}

fn progress_bar(ctx: &Ctx) -> Option<indicatif::ProgressBar> {
    if !ctx.out.progress_allowed() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} verified {pos} rows ({per_sec})")
            .ok()?,
    );
    Some(bar)
}
