//! `objectos sign`: sign an artifact, with its id, version, digest and expiry in the
//! trusted comment.

use std::path::{Path, PathBuf};

use anyhow::Context;
use schemars::JsonSchema;
use serde::Serialize;

use crate::artifact::{self};
use crate::cli::SignArgs;
use crate::commands::Ctx;
use crate::crypto::signing::{self, Claims, SecretKey, write_atomic};
use crate::error::{Exit, Failure};
use crate::{prompt, timefmt};

#[derive(Serialize, JsonSchema)]
pub struct SignReport {
    pub artifact: PathBuf,
    pub signature: PathBuf,
    pub key_id: String,
    pub id: String,
    pub version: String,
    pub sha256: String,
    /// RFC 3339, when `--expires` was given
    pub expires: Option<String>,
    pub trusted_comment: String,
}

pub fn run(args: SignArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let now = timefmt::now();
    let expires = match &args.expires {
        Some(text) => {
            let at = timefmt::parse_when(text, now).map_err(Failure::error)?;
            if at <= now {
                return Err(Failure::error(format!("`{text}` is already in the past")).into());
            }
            Some(at)
        }
        None => None,
    };
    // Only a valid artifact is worth a signature: `apply` would refuse it anyway.
    let checked = artifact::check_file(&args.artifact, false)?;
    let model = checked.into_model()?;
    let key = load_secret_key(&args.key, args.password_file.as_deref())?;
    let digests = signing::digest_file(&args.artifact)?;
    let claims = Claims {
        timestamp: Some(now.unix_timestamp()),
        file: args
            .artifact
            .file_name()
            .map(|n| n.to_string_lossy().into_owned()),
        id: Some(model.manifest.id.clone()),
        version: Some(model.manifest.version.to_string()),
        sha256: Some(digests.sha256_hex()),
        expires,
        malformed_expiry: None,
    };
    let comment = claims.to_comment();
    let sig_text = key.sign_file(&args.artifact, &comment)?;
    // The file could have changed between the two reads; the signature must
    // cover exactly the digest it claims.
    let sig = signing::SignatureFile::parse(&sig_text).map_err(|e| anyhow::anyhow!(e))?;
    let again = signing::digest_file(&args.artifact)?;
    if again.sha256 != digests.sha256 || sig.check(&key.public, &again.blake2b).is_err() {
        anyhow::bail!(
            "`{}` changed while it was being signed; sign it again",
            args.artifact.display()
        );
    }
    let sig_path = args
        .output
        .clone()
        .unwrap_or_else(|| signature_path(&args.artifact));
    write_atomic(&sig_path, sig_text.as_bytes(), Some(0o644), false)?;
    let report = SignReport {
        artifact: args.artifact.clone(),
        signature: sig_path.clone(),
        key_id: key.public.id.to_string(),
        id: model.manifest.id.clone(),
        version: model.manifest.version.to_string(),
        sha256: digests.sha256_hex(),
        expires: expires.map(timefmt::rfc3339),
        trusted_comment: comment,
    };
    if ctx.out.json {
        ctx.out.json_doc("sign", &report)?;
    } else {
        ctx.out.data(sig_path.display().to_string())?;
        ctx.out.status(format!(
            "signed {} {} (sha256 {}) with key {}{}",
            report.id,
            report.version,
            report.sha256,
            report.key_id,
            report
                .expires
                .as_deref()
                .map(|e| format!(", expires {e}"))
                .unwrap_or_default()
        ));
    }
    Ok(Exit::Success)
}

/// Load a secret key file, asking for (or reading) its password when it is encrypted.
pub fn load_secret_key(path: &Path, password_file: Option<&Path>) -> anyhow::Result<SecretKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the secret key `{}`", path.display()))?;
    let encrypted = signing::secret_key_is_encrypted(&text)
        .with_context(|| format!("`{}` is not a minisign secret key", path.display()))?;
    let password = if encrypted {
        Some(prompt::password_or_file(
            password_file,
            "Password of the secret key",
            false,
            "--password-file FILE",
        )?)
    } else {
        None
    };
    SecretKey::load(&text, password)
        .with_context(|| format!("cannot load the secret key `{}`", path.display()))
}

/// `ARTIFACT` → `ARTIFACT.minisig`
pub fn signature_path(artifact: &Path) -> PathBuf {
    let mut name = artifact.as_os_str().to_os_string();
    name.push(".minisig");
    PathBuf::from(name)
}
