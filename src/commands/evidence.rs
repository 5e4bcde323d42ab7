//! `objectos audit export|verify-archive|archive`: the command line of
//! `evidence`.

use std::io::{BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::Context;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

use crate::audit::{self, Event, Origin, checkpoint};
use crate::cli::{ArchiveOutputArgs, AuditArchiveArgs, AuditExportArgs, VerifyArchiveArgs};
use crate::commands::Ctx;
use crate::crypto::encryption::{self, Recipient};
use crate::crypto::signing::{PublicKey, SecretKey};
use crate::error::{Exit, Failure, Reported};
use crate::evidence::export::{self, Hashing};
use crate::evidence::verify::{self, Options, SignatureStatus, Trusted};
use crate::evidence::{self as ev, Point, Progress};
use crate::instance::Instance;

/// `audit export --json`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ExportReport {
    /// The file written, or `-` for standard output
    pub file: String,
    pub first_seq: i64,
    pub last_seq: i64,
    pub count: u64,
    pub first_prev_hash: String,
    pub last_hash: String,
    pub checkpoints: u64,
    /// The key that signed `SHA256SUMS`; absent with `--no-sign`
    pub signed_by: Option<String>,
    pub encrypted: bool,
    pub recipients: usize,
    /// The SHA-256 of the bytes written
    pub sha256: String,
    pub bytes: u64,
}

/// A bar on a terminal: events/s and the time left.
struct Bar {
    bar: Option<indicatif::ProgressBar>,
    events: Arc<AtomicU64>,
    /// The bar counts bytes (the number of events is not known ahead).
    by_bytes: AtomicBool,
    verb: &'static str,
}

impl Bar {
    fn new(ctx: &Ctx, verb: &'static str) -> Bar {
        let bar = ctx
            .out
            .progress_allowed()
            .then(indicatif::ProgressBar::hidden);
        Bar {
            bar,
            events: Arc::new(AtomicU64::new(0)),
            by_bytes: AtomicBool::new(false),
            verb,
        }
    }
}

impl Progress for Bar {
    fn begin(&self, events: Option<u64>, bytes: Option<u64>) {
        let Some(bar) = &self.bar else { return };
        let counter = self.events.clone();
        let rate = move |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let secs = state.elapsed().as_secs_f64().max(0.001);
            let _ = write!(
                w,
                "{:.0} events/s",
                counter.load(Ordering::Relaxed) as f64 / secs
            );
        };
        let (length, template) = match (events, bytes) {
            (Some(n), _) => (
                n,
                "{prefix} [{wide_bar}] {pos}/{len} events, {rate}, eta {eta}",
            ),
            (None, Some(b)) => (
                b,
                "{prefix} [{wide_bar}] {bytes}/{total_bytes}, {rate}, eta {eta}",
            ),
            (None, None) => (0, "{spinner} {prefix} {rate}"),
        };
        self.by_bytes
            .store(events.is_none() && bytes.is_some(), Ordering::Relaxed);
        bar.set_length(length);
        bar.set_position(0);
        self.events.store(0, Ordering::Relaxed);
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style.with_key("rate", rate).progress_chars("=> "));
        }
        bar.set_prefix(self.verb);
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
    }

    fn advance(&self, events: u64, bytes: u64) {
        let Some(bar) = &self.bar else { return };
        self.events.store(events, Ordering::Relaxed);
        bar.set_position(if self.by_bytes.load(Ordering::Relaxed) {
            bytes
        } else {
            events
        });
    }

    fn end(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn usage(message: String) -> anyhow::Error {
    Failure::new(Exit::Usage, message)
        .with_hint("see `--help`")
        .into()
}

fn point(text: &str) -> anyhow::Result<Point> {
    Point::parse(text).map_err(usage)
}

/// Refuse to replace a file without `--force`.
fn check_output(out: &ArchiveOutputArgs) -> anyhow::Result<()> {
    if out.output != Path::new("-") && out.output.exists() && !out.force {
        return Err(Failure::error(format!(
            "`{}` exists; nothing was written",
            out.output.display()
        ))
        .with_hint("choose another file, or pass `--force` to replace it")
        .into());
    }
    Ok(())
}

/// The key that signs: `--sign-key`, or the instance's own.
enum Signer {
    Instance,
    Key(Box<SecretKey>),
}

impl Signer {
    fn load(out: &ArchiveOutputArgs) -> anyhow::Result<Signer> {
        Ok(match &out.sign_key {
            Some(path) => Signer::Key(Box::new(super::sign::load_secret_key(
                path,
                out.password_file.as_deref(),
            )?)),
            None => Signer::Instance,
        })
    }

    fn key<'a>(&'a self, instance: &'a Instance) -> &'a SecretKey {
        match self {
            Signer::Instance => &instance.signer,
            Signer::Key(key) => key,
        }
    }
}

fn recipients(out: &ArchiveOutputArgs) -> anyhow::Result<Vec<Recipient>> {
    encryption::recipients(&out.encrypt_to, &out.recipients_file)
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

pub fn export(args: AuditExportArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let to_stdout = args.output.output == Path::new("-");
    if to_stdout && ctx.out.json {
        return Err(usage(
            "`--json` and `-o -` would both write to standard output".into(),
        ));
    }
    if to_stdout && std::io::stdout().is_terminal() {
        return Err(Failure::error("an archive is not written onto a terminal")
            .with_hint("redirect standard output to a file, or pass `-o FILE`")
            .into());
    }
    check_output(&args.output)?;
    let from = args.from.as_deref().map(point).transpose()?;
    let to = args.to.as_deref().map(point).transpose()?;
    let recipients = recipients(&args.output)?;
    let signer = if args.no_sign {
        None
    } else {
        Some(Signer::load(&args.output)?)
    };
    let instance = ctx.instance()?;
    let origin = Origin::operator();
    let (first, last) = resolve_range(&instance, from, to)?;
    let bar = Bar::new(ctx, "exporting");
    let report = instance.audited(&origin, "audit.export", Some("audit"), || {
        let signer = signer.as_ref().map(|s| s.key(&instance));
        let dir = if to_stdout {
            instance.dir.clone()
        } else {
            parent_of(&args.output.output)
        };
        let checkpoints = export::checkpoints_of_range(&instance, first, last, &dir)?;
        let write = |sink: &mut dyn Write| -> anyhow::Result<export::Written> {
            if recipients.is_empty() {
                export::write_tar(
                    &instance,
                    first..=last,
                    signer,
                    checkpoints,
                    &dir,
                    sink,
                    &bar,
                )
            } else {
                let mut encrypted = encryption::encrypt_to(&recipients, sink)?;
                let written = export::write_tar(
                    &instance,
                    first..=last,
                    signer,
                    checkpoints,
                    &dir,
                    &mut encrypted,
                    &bar,
                )?;
                encrypted.finish()?;
                Ok(written)
            }
        };
        let (written, sha256, bytes) = if to_stdout {
            let mut sink =
                Hashing::new(BufWriter::with_capacity(1 << 20, std::io::stdout().lock()));
            let written = write(&mut sink)?;
            let (mut out, sha256, bytes) = sink.finish()?;
            out.flush()?;
            (written, sha256, bytes)
        } else {
            let staged = tempfile::Builder::new()
                .prefix(".objectos-export-")
                .tempfile_in(&dir)
                .with_context(|| format!("cannot write into `{}`", dir.display()))?;
            let mut sink = Hashing::new(BufWriter::with_capacity(1 << 20, staged.as_file()));
            let written = write(&mut sink)?;
            let (out, sha256, bytes) = sink.finish()?;
            out.into_inner().map_err(|e| e.into_error())?;
            staged.as_file().sync_all()?;
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(staged.path(), std::fs::Permissions::from_mode(0o600))?;
            }
            let out = &args.output.output;
            if args.output.force {
                staged.persist(out).map_err(|e| e.error)
            } else {
                staged.persist_noclobber(out).map_err(|e| e.error)
            }
            .with_context(|| format!("cannot write `{}`", out.display()))?;
            (written, sha256, bytes)
        };
        let m = &written.manifest;
        let report = ExportReport {
            file: args.output.output.display().to_string(),
            first_seq: first,
            last_seq: last,
            count: m.count,
            first_prev_hash: m.first_prev_hash.clone(),
            last_hash: m.last_hash.clone(),
            checkpoints: m.checkpoints,
            signed_by: signer.map(|s| s.public.id.to_string()),
            encrypted: !recipients.is_empty(),
            recipients: recipients.len(),
            sha256,
            bytes,
        };
        // Recorded once the archive exists; the row, and the checkpoint after
        // it, fall after the range.
        instance.store.write(|tx| {
            audit::append(
                tx,
                &origin,
                Event::new("audit.export").object("audit").changes(json!({
                    "first_seq": report.first_seq,
                    "last_seq": report.last_seq,
                    "count": report.count,
                    "last_hash": report.last_hash,
                    "file": report.file,
                    "sha256": report.sha256,
                    "signed_by": report.signed_by,
                    "encrypted": report.encrypted,
                    "recipients": report.recipients,
                })),
            )?;
            Ok(())
        })?;
        instance.checkpoint_if_behind()?;
        Ok(report)
    })?;
    if ctx.out.json {
        ctx.out.json_doc("audit.export", &report)?;
    } else {
        if !to_stdout {
            ctx.out.data(&report.file)?;
        }
        ctx.out.status(format!(
            "exported seqs {}..={} ({} events, {} checkpoints){}{}; sha256 {}",
            report.first_seq,
            report.last_seq,
            report.count,
            report.checkpoints,
            match &report.signed_by {
                Some(key) => format!(", signed by key {key}"),
                None => ", unsigned".into(),
            },
            if report.encrypted {
                format!(", encrypted to {} recipients", report.recipients)
            } else {
                String::new()
            },
            report.sha256
        ));
    }
    Ok(Exit::Success)
}

/// The range `--from`/`--to` name, checked against the rows the database holds.
fn resolve_range(
    instance: &Instance,
    from: Option<Point>,
    to: Option<Point>,
) -> anyhow::Result<(i64, i64)> {
    instance.store.read(|tx| {
        let archived = tx.audit_anchors()?.last().map(|a| a.last_seq).unwrap_or(0);
        let Some((head, _)) = tx.audit_head()? else {
            return Err(Failure::error("the audit log is empty").into());
        };
        let first = match from {
            Some(p) => ev::resolve_from(tx, p)?,
            None => tx.audit_first_seq()?,
        };
        let last = match to {
            Some(p) => ev::resolve_to(tx, p)?,
            None => Some(head),
        };
        let (Some(first), Some(last)) = (first, last) else {
            return Err(Failure::error("no audit row falls in that range").into());
        };
        if first <= archived {
            return Err(Failure::error(format!(
                "rows up to seq {archived} were archived and are no longer in the database"
            ))
            .with_hint(format!(
                "export from seq {} on; older rows are in the archives `audit archive` wrote",
                archived + 1
            ))
            .into());
        }
        if last > head || first > head {
            return Err(Failure::error(format!(
                "seq {} does not exist yet: the newest row is seq {head}",
                last.max(first)
            ))
            .into());
        }
        if first > last {
            return Err(Failure::error(format!(
                "the range is empty: it starts at seq {first} and ends at seq {last}"
            ))
            .into());
        }
        Ok((first, last))
    })
}

pub fn archive(args: AuditArchiveArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    if args.output.output == Path::new("-") {
        return Err(usage(
            "`audit archive` writes a file it verifies before removing rows; `-o -` is not one"
                .into(),
        ));
    }
    check_output(&args.output)?;
    let before = point(&args.before)?;
    let recipients = recipients(&args.output)?;
    let signer = Signer::load(&args.output)?;
    let instance = ctx.instance()?;
    let bar = Bar::new(ctx, "archiving");
    let done = ev::archive::archive(
        &instance,
        &Origin::operator(),
        before,
        &args.output.output,
        args.output.force,
        signer.key(&instance),
        &recipients,
        &bar,
    )?;
    if ctx.out.json {
        ctx.out.json_doc("audit.archive", &done)?;
    } else {
        ctx.out.data(&done.file)?;
        ctx.out.status(format!(
            "archived seqs {}..={} ({} rows removed from the database, {} checkpoints) to `{}`, signed by key {}{}; sha256 {}; `audit verify` now starts after seq {} (hash {})",
            done.first_seq,
            done.last_seq,
            done.removed,
            done.checkpoints,
            done.file,
            done.signed_by,
            if done.encrypted { ", encrypted" } else { "" },
            done.sha256,
            done.last_seq,
            done.last_hash
        ));
    }
    Ok(Exit::Success)
}

fn open_input(path: &Path) -> anyhow::Result<Box<dyn Read>> {
    if path == Path::new("-") {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    Ok(Box::new(file))
}

pub fn verify_archive(args: VerifyArchiveArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let name = args.file.display().to_string();
    let mut trusted = Vec::new();
    for path in &args.public_keys {
        trusted.push(Trusted {
            key: PublicKey::read(path)?,
            from: format!("-p {}", path.display()),
        });
    }
    let after = match &args.after {
        Some(path) => {
            let options = Options {
                trusted: trusted.clone(),
                trust_own_signer: true,
                identities: encryption::read_identities(&args.identities)?,
                ..Options::default()
            };
            let prev_name = path.display().to_string();
            let (previous, keys) = verify::previous(open_input(path)?, &prev_name, &options)?;
            for key in keys {
                if !trusted.iter().any(|t| t.key.id == key.key.id) {
                    trusted.push(key);
                }
            }
            Some(previous)
        }
        None => None,
    };
    let outside = match &args.checkpoints {
        Some(path) => Some((path.display().to_string(), checkpoint::read_outside(path)?)),
        None => None,
    };
    let options = Options {
        trusted,
        trust_own_signer: false,
        identities: encryption::read_identities(&args.identities)?,
        after,
        outside,
    };
    let bar = Bar::new(ctx, "verifying");
    let report = verify::verify(open_input(&args.file)?, &name, &options, &bar)?;
    bar.end();
    if ctx.out.json {
        ctx.out.json_doc("audit.verify-archive", &report)?;
        return if report.ok {
            Ok(Exit::Success)
        } else {
            Err(Reported(Exit::Verify).into())
        };
    }
    let valid = format!(
        "{}/{} events valid",
        report.events_valid,
        report.events_expected.unwrap_or(report.events)
    );
    if report.ok {
        ctx.out.data(format!(
            "ok: {valid} (seqs {}..={} of instance {}); signed by key {} (trusted from {}); {} checkpoints match{}{}",
            report.first_seq.unwrap_or(0),
            report.last_seq.unwrap_or(0),
            report.instance_id.as_deref().unwrap_or("?"),
            report.signature.key_id.as_deref().unwrap_or("?"),
            report.signature.trusted_from.as_deref().unwrap_or("?"),
            report.checkpoints,
            report
                .outside_checkpoints
                .map(|n| format!(", and {n} from `{}`", args.checkpoints.as_deref().map(|p| p.display().to_string()).unwrap_or_default()))
                .unwrap_or_default(),
            report
                .after
                .as_deref()
                .map(|a| format!("; continues `{a}` exactly"))
                .unwrap_or_default(),
        ))?;
        if !report.guards_restored_at.is_empty() {
            ctx.out.warn(format!(
                "events {:?} record that the audit table's immutability guards had been dropped behind objectos's back",
                report.guards_restored_at
            ));
        }
        return Ok(Exit::Success);
    }
    for p in &report.problems {
        eprintln!("problem: {} [{}]", p.message, p.code);
    }
    let headline = match (&report.broken, report.problems.first()) {
        (Some(b), _) => format!(
            "{valid}; first broken seq {}: {}",
            b.seq,
            b.reason
                .strip_prefix(&format!("seq {}: ", b.seq))
                .unwrap_or(&b.reason)
        ),
        (None, Some(p)) => format!("{valid}; {}", p.message),
        (None, None) => valid,
    };
    let origin_only = report
        .problems
        .iter()
        .all(|p| p.code == verify::code::ORIGIN_UNVERIFIED || p.code == verify::code::UNSIGNED);
    let hint = if origin_only && report.signature.status != SignatureStatus::Verified {
        "pass the key it must be signed by (`-p instance-signing.key.pub`, obtained from the instance's operator through a channel you trust), or `--after` the previous archive you verified"
    } else {
        "do not rely on this archive; ask the instance's operator for a new export and compare"
    };
    Err(
        Failure::verify(format!("`{name}` does not verify: {headline}"))
            .with_hint(hint)
            .into(),
    )
}
