//! `objectos verify`: is this artifact exactly what a trusted key signed, unexpired and valid?

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Serialize;

use crate::artifact::verify::{self, Check, Given, Reason, Request, Signed};
use crate::cli::VerifyArgs;
use crate::commands::Ctx;
use crate::commands::sign::signature_path;
use crate::commands::validate::read_document;
use crate::crypto::signing::PublicKey;
use crate::error::{Exit, Failure, Reported};
use crate::output::stdio::{Input, at_most_one_stdin};
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

/// A minisign public key file; `-` reads it from standard input.
pub fn read_public_key(path: &Path) -> anyhow::Result<PublicKey> {
    let input = Input::new(path);
    if !input.is_stdin() {
        return PublicKey::read(path);
    }
    let text = input.read_text("a public key", 64 * 1024)?;
    PublicKey::parse(&text)
        .map_err(|reason| anyhow::anyhow!("standard input is not a minisign public key: {reason}"))
}

/// An artifact and its signature as `verify` and `apply` take them: `-` is
/// standard input for either (at most one input of the command reads it: `also`
/// names the command's others), and what standard input holds is read here,
/// once, so that what is checked is what is used.
pub struct SignedInput {
    pub artifact: Input,
    pub signature: Input,
    pub signature_path: PathBuf,
    pub artifact_bytes: Option<Vec<u8>>,
    pub signature_bytes: Option<Vec<u8>>,
}

impl SignedInput {
    pub fn read(
        artifact: &Path,
        signature: Option<&Path>,
        also: &[(&'static str, &Path)],
    ) -> anyhow::Result<SignedInput> {
        let artifact_in = Input::new(artifact);
        let mut inputs = vec![("ARTIFACT", artifact)];
        if let Some(path) = signature {
            inputs.push(("-x", path));
        }
        inputs.extend_from_slice(also);
        at_most_one_stdin(inputs)?;
        let signature_path = match (signature, &artifact_in) {
            (Some(path), _) => path.to_path_buf(),
            (None, Input::File(path)) => signature_path(path),
            (None, Input::Stdin) => {
                return Err(Failure::new(
                    Exit::Usage,
                    "an artifact read from standard input has no `ARTIFACT.minisig` beside it",
                )
                .with_hint("pass the signature file with `-x FILE`")
                .into());
            }
        };
        let signature_in = Input::new(&signature_path);
        let artifact_bytes = match &artifact_in {
            Input::Stdin => Some(read_document(&artifact_in)?),
            Input::File(_) => None,
        };
        let signature_bytes = match &signature_in {
            // Larger than a signature can be, but judged (and refused) as one.
            Input::Stdin => Some(signature_in.read("a signature", 1024 * 1024)?),
            Input::File(_) => None,
        };
        Ok(SignedInput {
            artifact: artifact_in,
            signature: signature_in,
            signature_path,
            artifact_bytes,
            signature_bytes,
        })
    }

    /// What was read from standard input, for `verify_given`.
    pub fn given(&self) -> Given<'_> {
        Given {
            artifact: self.artifact_bytes.as_deref(),
            signature: self.signature_bytes.as_deref(),
        }
    }
}

pub fn run(args: VerifyArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let keys_in: Vec<(&'static str, &Path)> =
        args.pubkeys.iter().map(|p| ("-p", p.as_path())).collect();
    let input = SignedInput::read(&args.artifact, args.signature.as_deref(), &keys_in)?;
    let mut keys: Vec<PublicKey> = Vec::new();
    for path in &args.pubkeys {
        keys.push(read_public_key(path)?);
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
    let mut outcome = verify::verify_given(
        &Request {
            artifact: input.artifact.label(),
            signature: input.signature.label(),
            keys: &keys,
            pin: args.sha256.as_deref(),
            now: timefmt::now(),
        },
        input.given(),
    )?;
    // The process ends once this is reported: the model is left to the exit
    // rather than freed piece by piece.
    let model = outcome.model.take();
    let identity = model
        .as_ref()
        .map(|m| (m.manifest.id.clone(), m.manifest.version.to_string()));
    std::mem::forget(model);
    let report = VerifyReport {
        artifact: args.artifact.clone(),
        signature: input.signature_path.clone(),
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
            ctx.out.data(format!(
                "ok: {} {} signed by {} (sha256 {})",
                identity.as_ref().map_or("?", |(id, _)| id.as_str()),
                identity
                    .as_ref()
                    .map_or("", |(_, version)| version.as_str()),
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
                "{} did not verify: {reason}: {message}",
                input.artifact.describe()
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
