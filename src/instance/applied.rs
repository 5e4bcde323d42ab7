//! The applied artifact, loaded the one way every path loads it (`serve`, import,
//! export, transfer, doctor, quickstart, apply): the bytes the database holds are
//! checked against their recorded digest, and their stored signature against a
//! key that is trusted now and is the very key that signed them. Only a signed
//! artifact from a trusted key shapes enforcement; editing the stored bytes, the
//! digest or the signature behind objectos's back is refused, never enforced.

use crate::artifact::verify::{trust_store_keys, verify_bytes};
use crate::crypto::signing::sha256_hex;
use crate::error::Failure;
use crate::instance::Instance;
use crate::model::Model;
use crate::store::AppliedArtifact;
use crate::timefmt;

/// What the loaded artifact is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Enforcing it (serving, acting as a user): it must verify against a key
    /// trusted now.
    Enforce,
    /// Planning its replacement (`apply`): the bytes must be the recorded ones,
    /// but a signer no longer trusted, or a signature an older objectos did not
    /// store, do not stop an operator from applying a newly signed artifact.
    Replace,
}

/// An applied artifact that passed the checks of its purpose.
pub struct Applied {
    pub row: AppliedArtifact,
    pub model: Model,
    /// Its signature verified against a key trusted now.
    pub verified: bool,
}

impl std::fmt::Debug for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Applied({:?}, verified: {})", self.row, self.verified)
    }
}

fn tampered(row: &AppliedArtifact, why: &str) -> anyhow::Error {
    Failure::verify(format!(
        "the applied artifact stored in the database ({} {}) does not verify: {why}; it was changed behind objectos's back and will not be enforced",
        row.id, row.version
    ))
    .with_hint("restore the data dir from a backup (`objectos restore`), or apply a signed artifact again, and find out who changed the database")
    .into()
}

/// The applied artifact, if any, checked for `purpose`.
pub fn load(instance: &Instance, purpose: Purpose) -> anyhow::Result<Option<Applied>> {
    let Some(row) = instance.store.read(|tx| Ok(tx.artifact_current()?))? else {
        return Ok(None);
    };
    if sha256_hex(&row.bytes) != row.sha256 {
        return Err(tampered(&row, "its bytes do not match its recorded sha256"));
    }
    let Some(signature) = row.signature.clone() else {
        if purpose == Purpose::Replace {
            let model = crate::artifact::model_from_bytes(&row.bytes)?;
            return Ok(Some(Applied {
                row,
                model,
                verified: false,
            }));
        }
        return Err(Failure::error(format!(
            "the applied artifact ({} {}) was applied by an older objectos that did not keep its signature, so it cannot be checked",
            row.id, row.version
        ))
        .with_hint("apply the signed artifact again (`objectos apply ARTIFACT -y`)")
        .into());
    };
    let keys = trust_store_keys(&instance.trust_dir())?;
    let signer = keys.iter().find(|k| {
        k.id.to_string() == row.signer_key_id
            && row.signer_public_key.as_deref() == Some(k.base64.as_str())
    });
    let Some(signer) = signer else {
        if purpose == Purpose::Replace {
            let model = crate::artifact::model_from_bytes(&row.bytes)?;
            return Ok(Some(Applied {
                row,
                model,
                verified: false,
            }));
        }
        return Err(Failure::error(format!(
            "the applied artifact ({} {}) was signed by {}, which is no longer trusted",
            row.id, row.version, row.signer_key_id
        ))
        .with_hint("trust its signer again (`objectos trust add`), or apply an artifact signed by a trusted key")
        .into());
    };
    // Judged as of the moment it was applied: an expiry is checked by `apply`, and
    // a signature that expires later does not switch a running site off.
    let at = timefmt::parse_rfc3339(&row.applied_at).unwrap_or_else(timefmt::now);
    let outcome = verify_bytes(&row.bytes, &signature, std::slice::from_ref(signer), at)?;
    if let Some((reason, message)) = outcome.failure {
        return Err(tampered(&row, &format!("{reason}: {message}")));
    }
    let model = outcome
        .model
        .ok_or_else(|| anyhow::anyhow!("verification passed without a model"))?;
    if model.manifest.id != row.id || model.manifest.version.to_string() != row.version {
        return Err(tampered(
            &row,
            "its recorded id and version are not the artifact's",
        ));
    }
    Ok(Some(Applied {
        row,
        model,
        verified: true,
    }))
}

/// The applied artifact for enforcement, or a clear refusal when there is none.
pub fn require(instance: &Instance) -> anyhow::Result<Applied> {
    load(instance, Purpose::Enforce)?.ok_or_else(|| {
        Failure::error("no artifact is applied")
            .with_hint("run `objectos apply ARTIFACT` first")
            .into()
    })
}
