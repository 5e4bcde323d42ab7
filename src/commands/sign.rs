//! `objectos sign`: sign an artifact, with its id, version, digest and expiry in the
//! trusted comment.

use std::path::{Path, PathBuf};

use anyhow::Context;
use schemars::JsonSchema;
use serde::Serialize;

use crate::artifact::{self};
use crate::cli::SignArgs;
use crate::commands::Ctx;
use crate::commands::validate::read_document;
use crate::crypto::signing::{self, Claims, SecretKey};
use crate::error::{Exit, Failure};
use crate::output::stdio::{Input, OutputPath, at_most_one_stdin};
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
    let input = Input::new(&args.artifact);
    let mut inputs = vec![
        ("ARTIFACT", args.artifact.as_path()),
        ("-k", args.key.as_path()),
    ];
    if let Some(path) = &args.password_file {
        inputs.push(("--password-file", path.as_path()));
    }
    at_most_one_stdin(inputs)?;
    let sig_path = match (&args.output, &input) {
        (Some(path), _) => path.clone(),
        (None, Input::File(path)) => signature_path(path),
        (None, Input::Stdin) => {
            return Err(Failure::new(
                Exit::Usage,
                "an artifact read from standard input has no `ARTIFACT.minisig` to sign into",
            )
            .with_hint("pass `-o FILE` for the signature (`-o -` writes it to standard output)")
            .into());
        }
    };
    let output = OutputPath::new(&sig_path);
    output.check(ctx.out.json, false)?;
    // Only a valid artifact is worth a signature: `apply` would refuse it anyway.
    let stdin_bytes = match &input {
        Input::Stdin => Some(read_document(&input)?),
        Input::File(_) => None,
    };
    let checked = match &stdin_bytes {
        Some(bytes) => artifact::check_bytes(bytes, input.label(), false)?,
        None => artifact::check_file(&args.artifact, false)?,
    };
    let model = checked.into_model()?;
    let key = load_secret_key(&args.key, args.password_file.as_deref())?;
    let digests = match &stdin_bytes {
        Some(bytes) => signing::digest_bytes(bytes),
        None => signing::digest_file(&args.artifact)?,
    };
    let claims = Claims {
        timestamp: Some(now.unix_timestamp()),
        file: match &input {
            Input::File(path) => path.file_name().map(|n| n.to_string_lossy().into_owned()),
            Input::Stdin => None,
        },
        id: Some(model.manifest.id.clone()),
        version: Some(model.manifest.version.to_string()),
        sha256: Some(digests.sha256_hex()),
        expires,
        malformed_expiry: None,
    };
    let comment = claims.to_comment();
    let sig_text = match &stdin_bytes {
        Some(bytes) => key.sign_bytes(bytes, &comment)?,
        None => {
            let sig_text = key.sign_file(&args.artifact, &comment)?;
            // The file could have changed between the two reads; the signature
            // must cover exactly the digest it claims.
            let sig = signing::SignatureFile::parse(&sig_text).map_err(|e| anyhow::anyhow!(e))?;
            let again = signing::digest_file(&args.artifact)?;
            if again.sha256 != digests.sha256 || sig.check(&key.public, &again.blake2b).is_err() {
                anyhow::bail!(
                    "`{}` changed while it was being signed; sign it again",
                    args.artifact.display()
                );
            }
            sig_text
        }
    };
    output.write(sig_text.as_bytes(), Some(0o644), false)?;
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
        // With `-o -` the signature itself is the data on stdout.
        if !output.is_stdout() {
            ctx.out.data(sig_path.display().to_string())?;
        }
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
/// `-` reads the key from standard input.
pub fn load_secret_key(path: &Path, password_file: Option<&Path>) -> anyhow::Result<SecretKey> {
    let input = Input::new(path);
    let text = input
        .read_text("a secret key", 64 * 1024)
        .with_context(|| format!("cannot read the secret key {}", input.describe()))?;
    let encrypted = signing::secret_key_is_encrypted(&text)
        .with_context(|| format!("{} is not a minisign secret key", input.describe()))?;
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
        .with_context(|| format!("cannot load the secret key {}", input.describe()))
}

/// `ARTIFACT` → `ARTIFACT.minisig`
pub fn signature_path(artifact: &Path) -> PathBuf {
    let mut name = artifact.as_os_str().to_os_string();
    name.push(".minisig");
    PathBuf::from(name)
}
