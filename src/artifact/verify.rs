//! Offline verification of a signed artifact: key, signature, digest, expiry, contents.
//!
//! `objectos verify` and `objectos apply` both call [`verify`]; the first failure
//! decides the reason, and every check's result is kept for `--json`.

use std::fmt;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Serialize;
use time::OffsetDateTime;

use crate::artifact::build::MAX_DOCUMENT_BYTES;
use crate::artifact::{self, Model};
use crate::crypto::signing::{self, Claims, PublicKey, SignatureFile, SignatureProblem};
use crate::timefmt;

/// Why an artifact did not verify. Each has its own wording; all exit 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    MalformedSignature,
    UntrustedKey,
    BadSignature,
    DigestMismatch,
    Expired,
    InvalidArtifact,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::MalformedSignature => "malformed signature file",
            Reason::UntrustedKey => "untrusted key",
            Reason::BadSignature => "bad signature",
            Reason::DigestMismatch => "digest mismatch",
            Reason::Expired => "expired",
            Reason::InvalidArtifact => "invalid artifact",
        })
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Check {
    /// `signature_file`, `key`, `signature`, `digest`, `pin`, `expiry` or `artifact`
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// What a signature claims, as read from its trusted comment.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Signed {
    pub key_id: String,
    pub trusted_comment: String,
    /// True when the comment carries objectos's id, version and digest claims
    /// (a plain `minisign -S` signature does not, and is judged on the signature alone).
    pub objectos_claims: bool,
    pub id: Option<String>,
    pub version: Option<String>,
    pub sha256: Option<String>,
    pub expires: Option<String>,
    pub timestamp: Option<i64>,
}

pub struct Outcome {
    pub artifact: PathBuf,
    pub sha256: Option<String>,
    pub signed: Option<Signed>,
    pub checks: Vec<Check>,
    pub failure: Option<(Reason, String)>,
    /// The validated model, when the artifact verified.
    pub model: Option<Model>,
    pub signer: Option<PublicKey>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

pub struct Request<'a> {
    pub artifact: &'a Path,
    pub signature: &'a Path,
    pub keys: &'a [PublicKey],
    pub pin: Option<&'a str>,
    pub now: OffsetDateTime,
}

/// The artifact or signature of a `Request` already read (from standard input),
/// for `verify_given`; the request's paths then only name them in messages.
#[derive(Default, Clone, Copy)]
pub struct Given<'a> {
    pub artifact: Option<&'a [u8]>,
    pub signature: Option<&'a [u8]>,
}

/// From this size on, an artifact is hashed while it is validated.
const OVERLAP_FROM: usize = 256 << 10;

/// Verify an artifact against trusted keys. I/O errors (a missing artifact) are
/// errors; everything that makes the artifact untrustworthy is an `Outcome` failure.
pub fn verify(req: &Request<'_>) -> anyhow::Result<Outcome> {
    verify_given(req, Given::default())
}

/// `verify`, with what `given` holds taken from there instead of read from its path.
pub fn verify_given(req: &Request<'_>, given: Given<'_>) -> anyhow::Result<Outcome> {
    let mut out = Outcome {
        artifact: req.artifact.to_path_buf(),
        sha256: None,
        signed: None,
        checks: Vec::new(),
        failure: None,
        model: None,
        signer: None,
    };
    // Read the artifact first: a missing artifact is an I/O error, not a verdict.
    // One that can be validated is read whole into memory, then hashed (each
    // hash on a thread of its own) while it is parsed and validated (what
    // validation found counts only once the signature holds); one too large to
    // validate is hashed as a stream (memory stays flat) and refused.
    let read;
    let bytes = match given.artifact {
        Some(bytes) => Some(bytes),
        None => {
            let size = std::fs::metadata(req.artifact)
                .map_err(|e| {
                    anyhow::Error::new(e)
                        .context(format!("cannot read `{}`", req.artifact.display()))
                })?
                .len();
            if size <= MAX_DOCUMENT_BYTES {
                read = signing::read_sized(req.artifact, size)?;
                Some(read.as_slice())
            } else {
                None
            }
        }
    };
    let (digests, contents) = match bytes {
        // A small artifact is hashed and then checked: a thread of its own
        // would cost more than it saves.
        Some(bytes) if bytes.len() < OVERLAP_FROM => {
            let digests = signing::digest_on_one_thread(bytes);
            let checked = artifact::check_bytes(bytes, req.artifact, false);
            (digests, Contents::Checked(Box::new(checked)))
        }
        // A large one is checked on this thread while it is hashed: the check
        // takes longer (and splits its walk over the cores).
        Some(bytes) => {
            let (digests, checked) =
                signing::digest_beside(bytes, || artifact::check_bytes(bytes, req.artifact, false));
            (digests, Contents::Checked(Box::new(checked)))
        }
        None => (
            signing::digest_file(req.artifact)?,
            Contents::File(req.artifact),
        ),
    };
    out.sha256 = Some(digests.sha256_hex());

    let sig_read = match given.signature {
        Some(bytes) => Ok(bytes.to_vec()),
        None => std::fs::read(req.signature),
    };
    let sig_text = match sig_read {
        Ok(bytes) if bytes.len() <= 64 * 1024 => String::from_utf8(bytes).ok(),
        Ok(_) => None,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            fail(
                &mut out,
                "signature_file",
                Reason::MalformedSignature,
                format!("no signature file `{}`", req.signature.display()),
            );
            return Ok(out);
        }
        Err(err) => {
            return Err(anyhow::Error::new(err)
                .context(format!("cannot read `{}`", req.signature.display())));
        }
    };
    judge(
        &mut out,
        &digests,
        contents,
        sig_text.as_deref(),
        &req.signature.display().to_string(),
        req.keys,
        req.pin,
        req.now,
    )?;
    Ok(out)
}

/// Verify an artifact already in memory (the one the database holds) against its
/// stored signature text, as of `now`.
pub fn verify_bytes(
    bytes: &[u8],
    signature: &str,
    keys: &[PublicKey],
    now: OffsetDateTime,
) -> anyhow::Result<Outcome> {
    let digests = signing::digest_bytes(bytes);
    let mut out = Outcome {
        artifact: PathBuf::from("<stored artifact>"),
        sha256: Some(digests.sha256_hex()),
        signed: None,
        checks: Vec::new(),
        failure: None,
        model: None,
        signer: None,
    };
    judge(
        &mut out,
        &digests,
        Contents::Bytes(bytes),
        Some(signature),
        "the stored signature",
        keys,
        None,
        now,
    )?;
    Ok(out)
}

/// The artifact's contents: in memory, on disk (too large to validate), or
/// already parsed and validated.
enum Contents<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
    Checked(Box<anyhow::Result<artifact::Checked>>),
}

/// Every check after the artifact was hashed and its signature read: the first
/// failure is recorded in `out` and ends the checks.
#[allow(clippy::too_many_arguments)]
fn judge(
    out: &mut Outcome,
    digests: &signing::FileDigests,
    contents: Contents<'_>,
    sig_text: Option<&str>,
    sig_name: &str,
    keys: &[PublicKey],
    pin: Option<&str>,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    let out = &mut *out;
    let sig = match sig_text.map(SignatureFile::parse) {
        Some(Ok(sig)) => sig,
        Some(Err(why)) => {
            fail(
                out,
                "signature_file",
                Reason::MalformedSignature,
                format!("`{}`: {why}", sig_name),
            );
            return Ok(());
        }
        None => {
            fail(
                out,
                "signature_file",
                Reason::MalformedSignature,
                format!(
                    "`{}` is not a minisign signature (not text, or too large)",
                    sig_name
                ),
            );
            return Ok(());
        }
    };
    pass(out, "signature_file", "parsed".to_string());
    let claims = Claims::parse(&sig.trusted_comment);
    out.signed = Some(Signed {
        key_id: sig.key_id.to_string(),
        trusted_comment: sig.trusted_comment.clone(),
        objectos_claims: claims.is_objectos(),
        id: claims.id.clone(),
        version: claims.version.clone(),
        sha256: claims.sha256.clone(),
        expires: claims.expires.map(timefmt::rfc3339),
        timestamp: claims.timestamp,
    });

    let Some(key) = keys.iter().find(|k| k.id == sig.key_id) else {
        let trusted: Vec<String> = keys.iter().map(|k| k.id.to_string()).collect();
        fail(
            out,
            "key",
            Reason::UntrustedKey,
            format!(
                "signed by key {}, which is not trusted (trusted: {})",
                sig.key_id,
                if trusted.is_empty() {
                    "none".to_string()
                } else {
                    trusted.join(", ")
                }
            ),
        );
        return Ok(());
    };
    pass(out, "key", format!("key {} is trusted", key.id));

    match sig.check(key, &digests.blake2b) {
        Ok(()) => pass(out, "signature", "valid".to_string()),
        Err(problem) => {
            let reason = match problem {
                SignatureProblem::WrongKey => Reason::UntrustedKey,
                _ => Reason::BadSignature,
            };
            fail(out, "signature", reason, problem.to_string());
            return Ok(());
        }
    }
    out.signer = Some(key.clone());

    let actual = digests.sha256_hex();
    match &claims.sha256 {
        Some(claimed) if *claimed != actual => {
            fail(
                out,
                "digest",
                Reason::DigestMismatch,
                format!("the signature claims sha256 {claimed}, the artifact's is {actual}"),
            );
            return Ok(());
        }
        Some(_) => pass(out, "digest", format!("sha256 {actual}")),
        None => pass(
            out,
            "digest",
            "no digest claim (plain minisign signature); judged on the signature alone".to_string(),
        ),
    }
    if let Some(pin) = pin {
        let pin = pin.trim().to_ascii_lowercase();
        if pin != actual {
            fail(
                out,
                "pin",
                Reason::DigestMismatch,
                format!("expected sha256 {pin}, the artifact's is {actual}"),
            );
            return Ok(());
        }
        pass(out, "pin", "matches --sha256".to_string());
    }

    if let Some(bad) = &claims.malformed_expiry {
        fail(
            out,
            "expiry",
            Reason::Expired,
            format!("the expiry `{bad}` is unreadable, so the signature cannot be trusted"),
        );
        return Ok(());
    }
    match claims.expires {
        Some(at) if at <= now => {
            fail(
                out,
                "expiry",
                Reason::Expired,
                format!("the signature expired at {}", timefmt::rfc3339(at)),
            );
            return Ok(());
        }
        Some(at) => pass(
            out,
            "expiry",
            format!("valid until {}", timefmt::rfc3339(at)),
        ),
        None => pass(out, "expiry", "no expiry".to_string()),
    }

    let parsed = match contents {
        Contents::Bytes(bytes) => artifact::check_bytes(bytes, &out.artifact.clone(), false),
        Contents::File(path) => artifact::check_file(path, false),
        Contents::Checked(checked) => *checked,
    };
    let checked = match parsed {
        Ok(checked) => checked,
        // Unparseable (not JSON, not UTF-8, too large) is a verdict, not an I/O error.
        Err(e) if crate::error::exit_of(&e) == crate::error::Exit::Verify => {
            fail(out, "artifact", Reason::InvalidArtifact, e.to_string());
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    if !checked.report.errors.is_empty() {
        let first = &checked.report.errors[0];
        fail(
            out,
            "artifact",
            Reason::InvalidArtifact,
            format!(
                "{} error(s); first at `{}`: {}",
                checked.report.errors.len(),
                first.pointer,
                first.message
            ),
        );
        return Ok(());
    }
    // The claims must describe this artifact, not another one signed by the same key.
    let model = checked.into_model()?;
    if let Some(id) = &claims.id
        && *id != model.manifest.id
    {
        fail(
            out,
            "artifact",
            Reason::InvalidArtifact,
            format!(
                "the signature names id `{id}`, the artifact is `{}`",
                model.manifest.id
            ),
        );
        return Ok(());
    }
    if let Some(version) = &claims.version
        && *version != model.manifest.version.to_string()
    {
        fail(
            out,
            "artifact",
            Reason::InvalidArtifact,
            format!(
                "the signature names version `{version}`, the artifact is `{}`",
                model.manifest.version
            ),
        );
        return Ok(());
    }
    pass(
        out,
        "artifact",
        format!("{} {} is valid", model.manifest.id, model.manifest.version),
    );
    out.model = Some(model);
    Ok(())
}

fn pass(out: &mut Outcome, name: &'static str, detail: String) {
    out.checks.push(Check {
        name,
        ok: true,
        detail,
    });
}

fn fail(out: &mut Outcome, name: &'static str, reason: Reason, detail: String) {
    out.checks.push(Check {
        name,
        ok: false,
        detail: detail.clone(),
    });
    out.failure = Some((reason, detail));
}

/// Read every `*.pub` file of a directory as a trusted key, in name order. Two
/// keys claiming one id are refused: a key id is chosen by whoever made the key,
/// not derived from it, so the second may be someone's attempt to pass as the
/// first.
pub fn keys_in_dir(dir: &Path) -> anyhow::Result<Vec<PublicKey>> {
    Ok(read_key_dir(dir)?.into_iter().map(|(_, k)| k).collect())
}

/// The instance's trust store (`trust/`), as `trust add` writes it: each file is
/// named after its key's id, no two keys share one, and a file whose name and key
/// disagree means someone placed a key of their own: the whole store is refused.
pub fn trust_store_keys(dir: &Path) -> anyhow::Result<Vec<PublicKey>> {
    let keys = read_key_dir(dir)?;
    for (path, key) in &keys {
        let named = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if named != key.id.to_string() {
            return Err(crate::error::Failure::verify(format!(
                "the trusted key `{}` holds key {}, not the key its name says",
                path.display(),
                key.id
            ))
            .with_hint("remove the file and trust the key again with `objectos trust add KEY.pub`")
            .into());
        }
    }
    Ok(keys.into_iter().map(|(_, k)| k).collect())
}

fn read_key_dir(dir: &Path) -> anyhow::Result<Vec<(PathBuf, PublicKey)>> {
    use anyhow::Context;
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the trust directory `{}`", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "pub"))
        .collect();
    paths.sort();
    let mut keys: Vec<(PathBuf, PublicKey)> = Vec::with_capacity(paths.len());
    for path in paths {
        let key = PublicKey::read(&path)?;
        if keys.iter().any(|(_, k)| k.id == key.id) {
            return Err(crate::error::Failure::verify(format!(
                "two keys claim id {} in `{}`",
                key.id,
                dir.display()
            ))
            .into());
        }
        keys.push((path, key));
    }
    Ok(keys)
}
