//! `objectos trust add|list|remove`: the keys allowed to sign artifacts.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

use crate::artifact::verify::trust_store_keys;
use crate::audit::{self, Event, Origin};
use crate::cli::TrustCommand;
use crate::commands::Ctx;
use crate::commands::verify::read_public_key;
use crate::crypto::signing::{KeyId, PublicKey, write_atomic};
use crate::error::{Exit, Failure};

use crate::instance::TRUST_CHANGED;

#[derive(Serialize, JsonSchema)]
pub struct TrustedKey {
    pub key_id: String,
    pub public_key: String,
    /// Whether it signed the applied artifact
    pub signed_applied: bool,
}

#[derive(Serialize, JsonSchema)]
pub struct TrustList {
    pub keys: Vec<TrustedKey>,
}

pub fn run(cmd: TrustCommand, ctx: &Ctx) -> anyhow::Result<Exit> {
    let instance = ctx.instance_reading(matches!(cmd, TrustCommand::List))?;
    let origin = Origin::operator();
    let applied_signer = instance
        .store
        .read(|tx| Ok(tx.artifact_current()?))?
        .map(|a| a.signer_key_id);
    match cmd {
        TrustCommand::Add { key } => {
            let public = read_public_key(&key)?;
            let existed = add_key(&instance, &origin, &public)?;
            if ctx.out.json {
                ctx.out.json_doc(
                    "trust.add",
                    &TrustedKey {
                        key_id: public.id.to_string(),
                        public_key: public.base64.clone(),
                        signed_applied: applied_signer.as_deref() == Some(&public.id.to_string()),
                    },
                )?;
            } else {
                ctx.out.data(public.id.to_string())?;
                ctx.out.status(if existed {
                    format!("key {} was already trusted", public.id)
                } else {
                    format!("trusting key {} to sign artifacts", public.id)
                });
            }
        }
        TrustCommand::List => {
            let keys: Vec<TrustedKey> = trust_store_keys(&instance.trust_dir())?
                .into_iter()
                .map(|k| TrustedKey {
                    signed_applied: applied_signer.as_deref() == Some(&k.id.to_string()),
                    key_id: k.id.to_string(),
                    public_key: k.base64,
                })
                .collect();
            if ctx.out.json {
                ctx.out.json_doc("trust.list", &TrustList { keys })?;
            } else if keys.is_empty() {
                ctx.out
                    .status("no trusted keys; add one with `objectos trust add KEY.pub`");
            } else {
                for k in keys {
                    ctx.out.data(format!(
                        "{}  {}{}",
                        k.key_id,
                        k.public_key,
                        if k.signed_applied {
                            "  (signed the applied artifact)"
                        } else {
                            ""
                        }
                    ))?;
                }
            }
        }
        TrustCommand::Remove { key } => {
            let id =
                match KeyId::parse(&key.to_ascii_uppercase()) {
                    Some(id) => id,
                    None => read_public_key(std::path::Path::new(&key))
                        .map_err(|_| {
                            Failure::error(format!(
                                "`{key}` is neither a key id (16 hex digits) nor a public key file"
                            ))
                        })?
                        .id,
                };
            let path = instance.trust_dir().join(format!("{id}.pub"));
            instance.change(&origin, "trust.remove", Some("trusted_key"), |tx| {
                if !path.exists() {
                    return Err(Failure::error(format!("key {id} is not trusted"))
                        .with_hint("see `objectos trust list`")
                        .into());
                }
                std::fs::remove_file(&path)
                    .map_err(|e| anyhow::anyhow!("cannot remove `{}`: {e}", path.display()))?;
                // A running server re-checks its artifact's signer on this signal.
                tx.meta_set(
                    TRUST_CHANGED,
                    &crate::timefmt::rfc3339_micros(crate::timefmt::now()),
                )?;
                audit::append(
                    tx,
                    &origin,
                    Event::new("trust.remove")
                        .object("trusted_key")
                        .record(id.to_string()),
                )?;
                Ok(())
            })?;
            if applied_signer.as_deref() == Some(&id.to_string()) {
                ctx.out.warn(format!("key {id} signed the applied artifact: `objectos serve` will refuse to start until an artifact signed by a trusted key is applied"));
            }
            if ctx.out.json {
                ctx.out.json_doc(
                    "trust.remove",
                    &TrustRemoved {
                        key_id: id.to_string(),
                        signed_applied: applied_signer.as_deref() == Some(&id.to_string()),
                    },
                )?;
            } else {
                ctx.out.status(format!("no longer trusting key {id}"));
            }
        }
    }
    Ok(Exit::Success)
}

#[derive(Serialize, JsonSchema)]
pub struct TrustRemoved {
    pub key_id: String,
    /// It signed the applied artifact: `serve` refuses to start until another is applied
    pub signed_applied: bool,
}

/// Trust a key (idempotent, audited); returns whether it was trusted already.
pub fn add_key(
    instance: &crate::instance::Instance,
    origin: &Origin,
    public: &PublicKey,
) -> anyhow::Result<bool> {
    let path = instance.trust_dir().join(format!("{}.pub", public.id));
    let existed = path.exists();
    instance.change(origin, "trust.add", Some("trusted_key"), |tx| {
        // A key id is chosen by whoever made the key, not derived from it: a second
        // key claiming a trusted key's id must never replace it.
        if existed {
            let current = PublicKey::read(&path)?;
            if current.base64 != public.base64 {
                return Err(Failure::verify(format!(
                    "another key with id {} is already trusted; refusing to replace it",
                    public.id
                ))
                .with_hint("remove the trusted key first (`objectos trust remove`) if it really should be replaced")
                .into());
            }
        }
        write_atomic(&path, public.to_file_text().as_bytes(), Some(0o644), false)?;
        tx.meta_set(TRUST_CHANGED, &crate::timefmt::rfc3339_micros(crate::timefmt::now()))?;
        audit::append(
            tx,
            origin,
            Event::new("trust.add")
                .object("trusted_key")
                .record(public.id.to_string())
                .changes(json!({"public_key": public.base64, "already_trusted": existed})),
        )?;
        Ok(())
    })?;
    Ok(existed)
}
