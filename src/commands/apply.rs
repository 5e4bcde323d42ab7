//! `objectos apply`: only a signed, trusted artifact shapes the database.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

use crate::artifact::verify::{self, Request, trust_store_keys};
use crate::audit::{self, Event, Origin, Outcome};
use crate::cli::ApplyArgs;
use crate::commands::Ctx;
use crate::commands::verify::SignedInput;
use crate::error::{Exit, Failure};
use crate::instance::applied::Purpose;
use crate::instance::apply::{self, Plan};
use crate::store::AppliedArtifact;
use crate::{prompt, timefmt};

#[derive(Serialize, JsonSchema)]
pub struct ApplyReport {
    pub artifact: ArtifactRef,
    pub current: Option<ArtifactRef>,
    /// The same artifact is already applied: nothing to do
    pub no_op: bool,
    pub downgrade: bool,
    pub plan: Plan,
    /// Every change to who may read or write what (and the rest of the
    /// artifact), as `objectos diff` flags them, widening first; against
    /// nothing when no artifact is applied yet
    pub changes: Vec<crate::artifact::diff::Change>,
    /// How many of them widen access
    pub widening: usize,
    /// False with `--plan`
    pub applied: bool,
}

#[derive(Serialize, JsonSchema, Clone)]
pub struct ArtifactRef {
    pub id: String,
    pub version: String,
    pub sha256: String,
    pub signer_key_id: String,
}

pub fn run(args: ApplyArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let instance = ctx.instance()?;
    let origin = Origin::operator();
    let keys = trust_store_keys(&instance.trust_dir())?;
    // `-` reads the artifact (or, with a file artifact, the signature) from
    // standard input, read once: what is checked is what is stored.
    let input = SignedInput::read(&args.artifact, args.signature.as_deref(), &[])?;
    let outcome = verify::verify_given(
        &Request {
            artifact: input.artifact.label(),
            signature: input.signature.label(),
            keys: &keys,
            pin: None,
            now: timefmt::now(),
        },
        input.given(),
    )?;
    let sig = input.signature_path.clone();
    let refuse = |message: String, code: &str, failure: Failure| -> anyhow::Result<Exit> {
        instance.store.write(|tx| {
            audit::append(
                tx,
                &origin,
                Event::new("artifact.apply")
                    .object("artifact")
                    .outcome(Outcome::Error, code)
                    .changes(
                        json!({"artifact": args.artifact.display().to_string(), "error": message}),
                    ),
            )?;
            Ok(())
        })?;
        Err(failure.into())
    };
    if let Some((reason, message)) = &outcome.failure {
        let mut failure = Failure::verify(format!(
            "`{}` did not verify: {reason}: {message}; nothing was changed",
            args.artifact.display()
        ));
        if keys.is_empty() {
            failure = failure.with_hint("no key is trusted yet: `objectos trust add KEY.pub`");
        } else if *reason == verify::Reason::UntrustedKey {
            failure = failure.with_hint(
                "trust the signer with `objectos trust add KEY.pub`, if it should be trusted",
            );
        }
        return refuse(
            format!("{reason}: {message}"),
            "verification_failed",
            failure,
        );
    }
    let (Some(model), Some(signer), Some(sha256)) = (outcome.model, outcome.signer, outcome.sha256)
    else {
        anyhow::bail!("verification passed without a model");
    };
    // What is stored is what was verified: the bytes and the signature are read
    // once more and checked together against the signer before anything changes.
    let bytes = match input.artifact_bytes {
        Some(bytes) => bytes,
        None => std::fs::read(&args.artifact)?,
    };
    let signature_text = match input.signature_bytes {
        Some(bytes) => String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("the signature on standard input is not text"))?,
        None => std::fs::read_to_string(&sig)?,
    };
    let recheck = verify::verify_bytes(
        &bytes,
        &signature_text,
        std::slice::from_ref(&signer),
        timefmt::now(),
    )?;
    if crate::crypto::signing::sha256_hex(&bytes) != sha256 || !recheck.ok() {
        anyhow::bail!(
            "`{}` changed while it was being applied; apply it again",
            args.artifact.display()
        );
    }
    let replaced = crate::instance::applied::load(&instance, Purpose::Replace)?;
    if let Some(problem) = replaced.as_ref().and_then(|a| a.problem.as_ref()) {
        ctx.out.warn(format!(
            "{problem}; the plan is made against it: review it before applying"
        ));
    }
    // Re-applying what is applied is a no-op only if what is stored still verifies:
    // otherwise the same signed bytes repair an artifact edited behind our back.
    let stored_verifies = replaced.as_ref().is_some_and(|a| a.problem.is_none());
    let applied = replaced.as_ref().map(|a| a.row.clone());
    let current_model = replaced.map(|a| a.model);
    let artifact = ArtifactRef {
        id: model.manifest.id.clone(),
        version: model.manifest.version.to_string(),
        sha256: sha256.clone(),
        signer_key_id: signer.id.to_string(),
    };
    let current = applied.as_ref().map(|a| ArtifactRef {
        id: a.id.clone(),
        version: a.version.clone(),
        sha256: a.sha256.clone(),
        signer_key_id: a.signer_key_id.clone(),
    });
    let no_op = stored_verifies && applied.as_ref().is_some_and(|a| a.sha256 == sha256);
    let downgrade = current_model
        .as_ref()
        .is_some_and(|c| model.manifest.version < c.manifest.version);
    let plan = apply::plan(current_model.as_ref(), &model);
    let mut changes = match &current_model {
        Some(old) => crate::artifact::diff::diff(old, &model),
        None => crate::artifact::diff::diff(&empty_like(&model)?, &model),
    };
    // What widens access first: it is what an admin must look at hardest.
    changes.sort_by_key(|c| (!c.widens, !c.breaking));
    let widening = changes.iter().filter(|c| c.widens).count();
    let mut report = ApplyReport {
        artifact: artifact.clone(),
        current,
        no_op,
        downgrade,
        plan,
        changes,
        widening,
        applied: false,
    };

    if !ctx.out.json {
        // With `--plan` the plan is the command's output (stdout); otherwise it
        // is the context of the question that follows (stderr).
        print_plan(ctx, &report, args.plan)?;
    }
    if no_op {
        if ctx.out.json {
            ctx.out.json_doc("apply", &report)?;
        }
        return Ok(Exit::Success);
    }
    // An artifact written from an approved metadata change must change the
    // artifact applied now: never silently revert a newer release.
    let based_on = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|d| d["x-objectos"]["basedOn"].as_str().map(str::to_string));
    if let Some(base) = &based_on
        && applied.as_ref().map(|a| a.sha256.as_str()) != Some(base.as_str())
    {
        return refuse(
            format!("based on {base}, which is not the applied artifact"),
            "stale_base",
            Failure::error(format!(
                "`{}` was written from artifact {base}, which is no longer the one applied; nothing was changed",
                args.artifact.display()
            ))
            .with_hint("propose the change again against the applied artifact"),
        );
    }
    if let Some(c) = &current_model
        && c.manifest.id != model.manifest.id
    {
        return refuse(
            format!(
                "the applied artifact is `{}`, not `{}`",
                c.manifest.id, model.manifest.id
            ),
            "wrong_artifact",
            Failure::error(format!(
                "the applied artifact is `{}`; `{}` is another app",
                c.manifest.id, model.manifest.id
            ))
            .with_hint("one data dir runs one app"),
        );
    }
    if downgrade && !args.allow_downgrade {
        return refuse(
            "downgrade refused".into(),
            "downgrade",
            Failure::error(format!(
                "{} is lower than the applied {}; nothing was changed",
                artifact.version,
                report
                    .current
                    .as_ref()
                    .map(|c| c.version.as_str())
                    .unwrap_or("?")
            ))
            .with_hint("pass `--allow-downgrade` to apply it anyway"),
        );
    }
    if report.plan.destructive && !args.allow_destructive {
        return refuse(
            "destructive plan refused".into(),
            "destructive",
            Failure::error("the plan drops data (steps marked destructive); nothing was changed")
                .with_hint("review the plan, then pass `--allow-destructive`"),
        );
    }
    if args.plan {
        if ctx.out.json {
            ctx.out.json_doc("apply", &report)?;
        }
        return Ok(Exit::Success);
    }
    if !args.yes && !prompt::confirm("Apply this plan?", "--yes")? {
        ctx.out.status("nothing was changed");
        return Ok(Exit::Error);
    }
    let changes = report.plan.changes.clone();
    let steps = report.plan.steps.len();
    let planned_against = applied.as_ref().map(|a| a.sha256.clone());
    instance.change_schema(&origin, "artifact.apply", Some("artifact"), |tx| {
        // The plan was made outside this transaction: if another apply got in
        // between, the plan is against an artifact no longer in force.
        let now_applied = tx.artifact_current()?.map(|a| a.sha256);
        if now_applied != planned_against {
            return Err(Failure::error(format!(
                "another apply changed the applied artifact (now {}) while this plan was made; nothing was changed",
                now_applied.as_deref().unwrap_or("none")
            ))
            .with_hint("run `objectos apply` again to see the plan against the artifact in force")
            .into());
        }
        tx.schema_apply(&changes)?;
        tx.artifact_record(&AppliedArtifact {
            seq: 0,
            sha256: artifact.sha256.clone(),
            id: artifact.id.clone(),
            version: artifact.version.clone(),
            signer_key_id: artifact.signer_key_id.clone(),
            signer_public_key: Some(signer.base64.clone()),
            signature: Some(signature_text.clone()),
            bytes: bytes.clone(),
            applied_at: timefmt::rfc3339(timefmt::now()),
        })?;
        // An approved metadata change this artifact carries is now applied.
        let at = timefmt::rfc3339_micros(timefmt::now());
        for org in tx.orgs()? {
            for pending in tx.pending_list(&org.id, Some("approved"))? {
                if pending.proposal["artifactSha256"].as_str() == Some(artifact.sha256.as_str())
                    && tx.pending_transition(&pending.id, &["approved"], "applied", None, &at, None, None)?
                {
                    audit::append(
                        tx,
                        &origin,
                        Event::new("pending.apply")
                            .object("pending_action")
                            .record(&pending.id)
                            .changes(json!({"kind": "metadata", "artifact_sha256": artifact.sha256})),
                    )?;
                }
            }
        }
        audit::append(
            tx,
            &origin,
            Event::new("artifact.apply").object("artifact").record(&artifact.sha256).changes(json!({
                "id": artifact.id,
                "version": {"before": report.current.as_ref().map(|c| c.version.clone()), "after": artifact.version},
                "sha256": {"before": report.current.as_ref().map(|c| c.sha256.clone()), "after": artifact.sha256},
                "signer_key_id": artifact.signer_key_id,
                "steps": steps,
                "destructive": report.plan.destructive,
            })),
        )?;
        Ok(())
    })?;
    report.applied = true;
    if ctx.out.json {
        ctx.out.json_doc("apply", &report)?;
    } else {
        ctx.out.status(format!(
            "applied {} {} (sha256 {})",
            artifact.id, artifact.version, artifact.sha256
        ));
    }
    Ok(Exit::Success)
}

/// An artifact with nothing in it but `model`'s manifest: what a first apply
/// changes everything from.
fn empty_like(model: &crate::model::Model) -> anyhow::Result<crate::model::Model> {
    let doc = serde_json::json!({
        "manifest": {
            "id": model.manifest.id,
            "name": model.manifest.id,
            "version": "0.0.0",
            "engines": {"protocol": format!("^{}", crate::model::PROTOCOL_MAJOR)},
        }
    });
    crate::artifact::model_from_bytes(doc.to_string().as_bytes())
}

fn print_plan(ctx: &Ctx, r: &ApplyReport, to_stdout: bool) -> anyhow::Result<()> {
    let line = |text: String| -> anyhow::Result<()> {
        if to_stdout {
            ctx.out.data(text)?;
        } else {
            ctx.out.status(text);
        }
        Ok(())
    };
    line(format!(
        "artifact {} {} (sha256 {}, signed by {})",
        r.artifact.id, r.artifact.version, r.artifact.sha256, r.artifact.signer_key_id
    ))?;
    match &r.current {
        Some(c) => line(format!(
            "applied now: {} {} (sha256 {})",
            c.id, c.version, c.sha256
        ))?,
        None => line("applied now: nothing".into())?,
    }
    if r.no_op {
        return line("this artifact is already applied; nothing to do".into());
    }
    if r.downgrade {
        line("this is a DOWNGRADE".into())?;
    }
    line(format!(
        "access: {} change(s), {} widen access{}",
        r.changes.len(),
        r.widening,
        if r.current.is_none() {
            " (the first artifact: everything it grants is new)"
        } else {
            ""
        }
    ))?;
    for c in &r.changes {
        line(format!("  {}", crate::commands::diff::change_line(ctx, c)))?;
    }
    line("schema:".into())?;
    if r.plan.steps.is_empty() {
        line("  no schema changes".into())?;
    }
    for s in &r.plan.steps {
        line(format!(
            "  {}{} {}{}: {}",
            if s.destructive { "! " } else { "  " },
            s.kind,
            s.object,
            s.field
                .as_ref()
                .map(|f| format!(".{f}"))
                .unwrap_or_default(),
            s.detail
        ))?;
    }
    if r.plan.destructive {
        line("steps marked ! lose data and need --allow-destructive".into())?;
    }
    Ok(())
}
