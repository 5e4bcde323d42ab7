//! `objectos apply`: only a signed, trusted artifact shapes the database.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

use crate::artifact::verify::{self, Request, trust_store_keys};
use crate::audit::{self, Event, Origin, Outcome};
use crate::cli::ApplyArgs;
use crate::commands::Ctx;
use crate::commands::sign::signature_path;
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
    let sig = args
        .signature
        .clone()
        .unwrap_or_else(|| signature_path(&args.artifact));
    let outcome = verify::verify(&Request {
        artifact: &args.artifact,
        signature: &sig,
        keys: &keys,
        pin: None,
        now: timefmt::now(),
    })?;
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
    let bytes = std::fs::read(&args.artifact)?;
    let signature_text = std::fs::read_to_string(&sig)?;
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
    let mut report = ApplyReport {
        artifact: artifact.clone(),
        current,
        no_op,
        downgrade,
        plan,
        applied: false,
    };

    if !ctx.out.json {
        print_plan(ctx, &report);
    }
    if no_op {
        if ctx.out.json {
            ctx.out.json_doc("apply", &report)?;
        }
        return Ok(Exit::Success);
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
    instance.change(&origin, "artifact.apply", Some("artifact"), |tx| {
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

fn print_plan(ctx: &Ctx, r: &ApplyReport) {
    let out = &ctx.out;
    out.status(format!(
        "artifact {} {} (sha256 {}, signed by {})",
        r.artifact.id, r.artifact.version, r.artifact.sha256, r.artifact.signer_key_id
    ));
    match &r.current {
        Some(c) => out.status(format!(
            "applied now: {} {} (sha256 {})",
            c.id, c.version, c.sha256
        )),
        None => out.status("applied now: nothing"),
    }
    if r.no_op {
        out.status("this artifact is already applied; nothing to do");
        return;
    }
    if r.downgrade {
        out.status("this is a DOWNGRADE");
    }
    out.status("plan:");
    if r.plan.steps.is_empty() {
        out.status("  no schema changes");
    }
    for s in &r.plan.steps {
        out.status(format!(
            "  {}{} {}{}: {}",
            if s.destructive { "! " } else { "  " },
            s.kind,
            s.object,
            s.field
                .as_ref()
                .map(|f| format!(".{f}"))
                .unwrap_or_default(),
            s.detail
        ));
    }
    for (what, l) in [
        ("permission sets", &r.plan.permission_sets),
        ("sharing rules", &r.plan.sharing_rules),
        ("actions", &r.plan.actions),
    ] {
        if !(l.added.is_empty() && l.changed.is_empty() && l.removed.is_empty()) {
            let list = |v: &Vec<String>| {
                if v.is_empty() {
                    "none".to_string()
                } else {
                    v.join(", ")
                }
            };
            out.status(format!(
                "  {what}: load {}; change {}; remove {}",
                list(&l.added),
                list(&l.changed),
                list(&l.removed)
            ));
        }
    }
    if r.plan.destructive {
        out.status("steps marked ! lose data and need --allow-destructive");
    }
}
