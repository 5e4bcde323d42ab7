//! `objectos verify`: is this artifact exactly what a trusted key signed, unexpired and valid?

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Serialize;

use crate::artifact::verify::{self, Check, Reason, Request, Signed};
use crate::cli::VerifyArgs;
use crate::commands::Ctx;
use crate::commands::sign::signature_path;
use crate::crypto::signing::PublicKey;
use crate::error::{Exit, Failure, Reported};
use crate::timefmt;

#[derive(Serialize, JsonSchema)]
pub struct VerifyReport {
    pub artifact: PathBuf,
    pub signature: PathBuf,
    pub valid: bool,
    /// The first failure's cause, when not valid
    pub reason: Option<Reason>,
    pub message: Option<String>,
    pub sha256: Option<String>,
    pub signed: Option<Signed>,
    /// Every check made, in order, up to the first failure
    pub checks: Vec<Check>,
}

pub fn run(args: VerifyArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let mut keys: Vec<PublicKey> = Vec::new();
    for path in &args.pubkeys {
        keys.push(PublicKey::read(path)?);
    }
    if let Some(dir) = &args.trust_dir {
        keys.extend(verify::keys_in_dir(dir)?);
    }
    if let Some(pin) = &args.sha256
        && (pin.len() != 64 || !pin.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(
            Failure::error(format!("`--sha256 {pin}` is not a SHA-256 (64 hex digits)")).into(),
        );
    }
    let sig_path = args
        .signature
        .clone()
        .unwrap_or_else(|| signature_path(&args.artifact));
    let outcome = verify::verify(&Request {
        artifact: &args.artifact,
        signature: &sig_path,
        keys: &keys,
        pin: args.sha256.as_deref(),
        now: timefmt::now(),
    })?;
    let report = VerifyReport {
        artifact: args.artifact.clone(),
        signature: sig_path,
        valid: outcome.ok(),
        reason: outcome.failure.as_ref().map(|f| f.0),
        message: outcome.failure.as_ref().map(|f| f.1.clone()),
        sha256: outcome.sha256.clone(),
        signed: outcome.signed.clone(),
        checks: outcome.checks.clone(),
    };
    if ctx.out.json {
        ctx.out.json_doc("verify", &report)?;
        return match outcome.failure {
            None => Ok(Exit::Success),
            Some(_) => Err(Reported(Exit::Verify).into()),
        };
    }
    match outcome.failure {
        None => {
            let model = outcome.model.as_ref();
            ctx.out.data(format!(
                "ok: {} {} signed by {} (sha256 {})",
                model.map(|m| m.manifest.id.as_str()).unwrap_or("?"),
                model
                    .map(|m| m.manifest.version.to_string())
                    .unwrap_or_default(),
                report
                    .signed
                    .as_ref()
                    .map(|s| s.key_id.as_str())
                    .unwrap_or("?"),
                report.sha256.as_deref().unwrap_or("?")
            ))?;
            if ctx.out.verbose {
                for check in &report.checks {
                    ctx.out
                        .status(format!("  {}: {}", check.name, check.detail));
                }
            }
            Ok(Exit::Success)
        }
        Some((reason, message)) => {
            let mut failure = Failure::verify(format!(
                "`{}` did not verify: {reason}: {message}",
                args.artifact.display()
            ));
            failure.hint = match reason {
                Reason::UntrustedKey => Some(
                    "pass the signer's public key with `-p KEY.pub`, or add it to the trust directory"
                        .into(),
                ),
                Reason::Expired => Some("ask the publisher for a freshly signed artifact".into()),
                Reason::MalformedSignature => Some(
                    "the signature file must be what `objectos sign` or `minisign -S` wrote".into(),
                ),
                Reason::InvalidArtifact => {
                    Some(format!("run `objectos validate {}`", args.artifact.display()))
                }
                _ => None,
            };
            Err(failure.into())
        }
    }
}
