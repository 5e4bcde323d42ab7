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
    /// Planning its replacement (`apply`): only a newly verified artifact is
    /// written, so an applied one that no longer verifies (its signer untrusted,
    /// no stored signature, or edited behind objectos's back) is still planned
    /// against, with the reason, for the operator to see.
    Replace,
}

/// An applied artifact that passed the checks of its purpose.
pub struct Applied {
    pub row: AppliedArtifact,
    pub model: Model,
    /// Why it does not verify now (`Replace` only); `None` when it verifies.
    pub problem: Option<String>,
}

impl std::fmt::Debug for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Applied({:?}, problem: {:?})", self.row, self.problem)
    }
}

/// Why a stored artifact cannot be enforced.
enum Problem {
    Tampered(String),
    Unsigned,
    Untrusted,
}

impl Problem {
    fn describe(&self, row: &AppliedArtifact) -> String {
        match self {
            Problem::Tampered(why) => format!(
                "the applied artifact stored in the database ({} {}) does not verify: {why}; it was changed behind objectos's back and will not be enforced",
                row.id, row.version
            ),
            Problem::Unsigned => format!(
                "the applied artifact ({} {}) was applied by an older objectos that did not keep its signature, so it cannot be checked",
                row.id, row.version
            ),
            Problem::Untrusted => format!(
                "the applied artifact ({} {}) was signed by {}, which is no longer trusted",
                row.id, row.version, row.signer_key_id
            ),
        }
    }

    fn into_error(self, row: &AppliedArtifact) -> anyhow::Error {
        let message = self.describe(row);
        match self {
            Problem::Tampered(_) => Failure::verify(message)
                .with_hint("apply the signed artifact again (`objectos apply ARTIFACT -y`) or restore the data dir from a backup, and find out who changed the database"),
            Problem::Unsigned => Failure::error(message)
                .with_hint("apply the signed artifact again (`objectos apply ARTIFACT -y`)"),
            Problem::Untrusted => Failure::error(message)
                .with_hint("trust its signer again (`objectos trust add`), or apply an artifact signed by a trusted key"),
        }
        .into()
    }
}

/// Check a stored artifact: its model when it verifies, else why not.
fn check(instance: &Instance, row: &AppliedArtifact) -> anyhow::Result<Result<Model, Problem>> {
    let model = match check_signature(instance, row)? {
        Ok(model) => model,
        Err(problem) => return Ok(Err(problem)),
    };
    // Older signed artifacts stay in the table: the one in force must be the one
    // the (hash-chained) audit log last recorded applying, or an older one was
    // brought back by removing the newer.
    // Once `audit archive` moved that row out, its anchor carries what it said.
    let last_apply = instance.store.read(|tx| {
        Ok(match tx.audit_last_success("artifact.apply")? {
            Some(row) => row.record_id,
            None => tx
                .audit_anchors()?
                .pop()
                .and_then(|a| a.last_artifact_apply),
        })
    })?;
    if last_apply.as_deref() != Some(row.sha256.as_str()) {
        return Ok(Err(Problem::Tampered(
            "it is not the artifact the audit log last recorded applying".into(),
        )));
    }
    Ok(Ok(model))
}

/// Check a stored artifact's bytes, signature and signer.
fn check_signature(
    instance: &Instance,
    row: &AppliedArtifact,
) -> anyhow::Result<Result<Model, Problem>> {
    if sha256_hex(&row.bytes) != row.sha256 {
        return Ok(Err(Problem::Tampered(
            "its bytes do not match its recorded sha256".into(),
        )));
    }
    let Some(signature) = row.signature.as_deref() else {
        return Ok(Err(Problem::Unsigned));
    };
    let keys = trust_store_keys(&instance.trust_dir())?;
    let Some(signer) = keys.iter().find(|k| {
        k.id.to_string() == row.signer_key_id
            && row.signer_public_key.as_deref() == Some(k.base64.as_str())
    }) else {
        return Ok(Err(Problem::Untrusted));
    };
    // Judged as of the moment it was applied: an expiry is checked by `apply`, and
    // a signature that expires later does not switch a running site off.
    let at = timefmt::parse_rfc3339(&row.applied_at).unwrap_or_else(timefmt::now);
    let outcome = verify_bytes(&row.bytes, signature, std::slice::from_ref(signer), at)?;
    if let Some((reason, message)) = outcome.failure {
        return Ok(Err(Problem::Tampered(format!("{reason}: {message}"))));
    }
    let model = outcome
        .model
        .ok_or_else(|| anyhow::anyhow!("verification passed without a model"))?;
    if model.manifest.id != row.id || model.manifest.version.to_string() != row.version {
        return Ok(Err(Problem::Tampered(
            "its recorded id and version are not the artifact's".into(),
        )));
    }
    Ok(Ok(model))
}

/// The applied artifact, if any, checked for `purpose`.
pub fn load(instance: &Instance, purpose: Purpose) -> anyhow::Result<Option<Applied>> {
    let Some(row) = instance.store.read(|tx| Ok(tx.artifact_current()?))? else {
        return Ok(None);
    };
    match (check(instance, &row)?, purpose) {
        (Ok(model), _) => Ok(Some(Applied {
            row,
            model,
            problem: None,
        })),
        (Err(problem), Purpose::Enforce) => Err(problem.into_error(&row)),
        (Err(problem), Purpose::Replace) => {
            let problem = Some(problem.describe(&row));
            // Plan against the newest applied artifact that still verifies (the
            // tables are its shape), else against the stored one as it reads.
            let history = instance.store.read(|tx| Ok(tx.artifacts_recent(20)?))?;
            for older in history.into_iter().skip(1) {
                if let Ok(Ok(model)) = check_signature(instance, &older) {
                    return Ok(Some(Applied {
                        row: older,
                        model,
                        problem,
                    }));
                }
            }
            let model = crate::artifact::model_from_bytes(&row.bytes).map_err(|e| {
                Failure::verify(format!(
                    "{}; and it cannot be read to plan against ({e})",
                    problem.clone().unwrap_or_default()
                ))
                .with_hint("restore the data dir from a backup (`objectos restore`)")
            })?;
            Ok(Some(Applied {
                row,
                model,
                problem,
            }))
        }
    }
}

/// The applied artifact for enforcement, or a clear refusal when there is none.
pub fn require(instance: &Instance) -> anyhow::Result<Applied> {
    load(instance, Purpose::Enforce)?.ok_or_else(|| {
        Failure::error("no artifact is applied")
            .with_hint("run `objectos apply ARTIFACT` first")
            .into()
    })
}
