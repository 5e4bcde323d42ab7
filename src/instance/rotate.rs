//! Rotating the instance's keys (`objectos instance rotate-keys`): a new age
//! identity (secrets, encrypted backups, the audit HMAC) and a new signing key
//! (checkpoints, backup manifests, archives). The old public signing key and the
//! old identity are kept under `retired/`, so checkpoints, archives and audit
//! HMACs made before still verify; secret settings are re-encrypted to the new
//! identity in the same transaction that records the rotation.
//!
//! The files and the database cannot change in one step: the new keys are
//! written beside the old ones (`*.new`) first, then the database commits, then
//! the files are moved into place. An interruption after the commit is finished
//! by the next open of the data dir ([`finish_interrupted`]).

use std::path::Path;

use age::secrecy::ExposeSecret;
use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

use crate::audit::{self, Event, Origin};
use crate::crypto::signing::{self, write_atomic};
use crate::error::Failure;
use crate::instance::{
    INSTANCE_KEY, Instance, RETIRED_DIR, SIGNING_KEY, SIGNING_PUB, checkpoint_now, read_identity,
};
use crate::store::SettingRow;
use crate::timefmt;

#[derive(Serialize, JsonSchema)]
pub struct RotateReport {
    pub old_signing_key_id: String,
    pub new_signing_key_id: String,
    pub old_recipient: String,
    pub new_recipient: String,
    /// Secret settings re-encrypted to the new identity
    pub settings_reencrypted: usize,
}

fn staged(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(format!("{name}.new"))
}

/// Rotate the keys of `instance` (which must not be used afterwards: open the
/// data dir again).
pub fn rotate_keys(instance: &Instance, origin: &Origin) -> anyhow::Result<RotateReport> {
    let dir = instance.dir.clone();
    instance.audited(origin, "instance.rotate_keys", Some("instance"), || {
        if instance.is_read_only() {
            return Err(Failure::error("the data dir is opened read-only").into());
        }
        // Everything so far is vouched for by the old signing key.
        instance.checkpoint_if_behind()?;
        let old_signing = instance.signing_public().clone();
        let old_recipient = instance.recipient();

        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public().to_string();
        let created = timefmt::rfc3339(timefmt::now());
        let key_text = format!(
            "# created: {created}\n# public key: {recipient}\n{}\n",
            identity.to_string().expose_secret()
        );
        let (sk_text, public) = signing::generate_keypair(None)?;
        write_atomic(&staged(&dir, INSTANCE_KEY), key_text.as_bytes(), Some(0o600), true)?;
        write_atomic(&staged(&dir, SIGNING_KEY), sk_text.as_bytes(), Some(0o600), true)?;
        write_atomic(
            &staged(&dir, SIGNING_PUB),
            public.to_file_text().as_bytes(),
            Some(0o644),
            true,
        )?;
        // The old keys, kept for what they signed and encrypted.
        let retired = dir.join(RETIRED_DIR);
        std::fs::create_dir_all(&retired).context("cannot create the retired keys directory")?;
        write_atomic(
            &retired.join(format!("signing-{}.pub", old_signing.id)),
            old_signing.to_file_text().as_bytes(),
            Some(0o644),
            false,
        )?;
        std::fs::copy(
            dir.join(INSTANCE_KEY),
            retired.join(format!("instance-{}.key", old_signing.id)),
        )
        .context("cannot keep the retired instance key")?;
        set_mode(&retired.join(format!("instance-{}.key", old_signing.id)), 0o600)?;

        let new_recipient = identity.to_public();
        let reencrypted = instance.store.write(|tx| {
            let mut n = 0;
            for row in tx.settings()?.into_iter().filter(|r| r.secret) {
                let ciphertext = B64
                    .decode(&row.value)
                    .map_err(|_| anyhow::anyhow!("the stored secret `{}` is not base64", row.key))?;
                let clear = age::decrypt(instance.identity(), &ciphertext).map_err(|e| {
                    anyhow::anyhow!("cannot decrypt the secret `{}` to re-encrypt it: {e}", row.key)
                })?;
                let again = age::encrypt(&new_recipient, &clear)
                    .map_err(|e| anyhow::anyhow!("cannot encrypt the secret `{}`: {e}", row.key))?;
                tx.setting_put(&SettingRow {
                    value: B64.encode(again),
                    ..row
                })?;
                n += 1;
            }
            // Rows that grant power are sealed by a key derived from the
            // instance key: those sound under the old one are sealed anew.
            let old_rows = instance.store.row_key().ok_or_else(|| {
                anyhow::anyhow!("the store was opened without its row key")
            })?;
            let resealed = tx.rows_reseal(Some(old_rows), &super::row_key(&identity))?;
            tx.meta_set("instance_recipient", &recipient)?;
            tx.meta_set("signing_key_id", &public.id.to_string())?;
            audit::append(
                tx,
                origin,
                Event::new("instance.rotate_keys")
                    .object("instance")
                    .record(&instance.id)
                    .changes(json!({
                        "signing_key_id": {"before": old_signing.id.to_string(), "after": public.id.to_string()},
                        "recipient": {"before": old_recipient, "after": recipient},
                        "settings_reencrypted": n,
                        "rows_resealed": resealed,
                    })),
            )?;
            Ok(n)
        })?;
        finish_interrupted(&dir)?;
        Ok(RotateReport {
            old_signing_key_id: old_signing.id.to_string(),
            new_signing_key_id: public.id.to_string(),
            old_recipient,
            new_recipient: recipient.clone(),
            settings_reencrypted: reencrypted,
        })
    })
    .and_then(|report| {
        // The rotation's own row is vouched for by the new key.
        checkpoint_now(&dir)?;
        Ok(report)
    })
}

/// Move staged keys (`*.new`) into place if the database already names them:
/// the end of a rotation that was interrupted after it committed. Staged keys
/// the database does not name (a rotation that never committed) are removed.
pub fn finish_interrupted(dir: &Path) -> anyhow::Result<bool> {
    let staged_key = staged(dir, INSTANCE_KEY);
    if !staged_key.exists() {
        return Ok(false);
    }
    let staged_identity = read_identity(&staged_key)?;
    let (db, _) = super::open_database(dir, false)?;
    let store = crate::store::Store::new(Box::new(db));
    let named = store.read(|tx| Ok(tx.meta_get("instance_recipient")?))?;
    if named.as_deref() == Some(staged_identity.to_public().to_string().as_str()) {
        for name in [SIGNING_PUB, SIGNING_KEY, INSTANCE_KEY] {
            std::fs::rename(staged(dir, name), dir.join(name))
                .with_context(|| format!("cannot move the new `{name}` into place"))?;
        }
        Ok(true)
    } else {
        for name in [SIGNING_PUB, SIGNING_KEY, INSTANCE_KEY] {
            let _ = std::fs::remove_file(staged(dir, name));
        }
        Ok(false)
    }
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of `{}`", path.display()))
}
