//! Settings: plain values, and secrets age-encrypted to the instance key so that the
//! database never holds them in clear.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::json;

use crate::audit::{self, Event, Origin};
use crate::error::Failure;
use crate::instance::Instance;
use crate::store::SettingRow;
use crate::timefmt;

pub fn validate_key(key: &str) -> anyhow::Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 128
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Failure::error(format!(
            "`{key}` is not a setting name; use lower-case letters, digits, `.`, `_` and `-`"
        ))
        .into())
    }
}

pub fn set(
    instance: &Instance,
    origin: &Origin,
    key: &str,
    value: &str,
    secret: bool,
) -> anyhow::Result<()> {
    instance.audited(origin, "settings.set", Some("setting"), || {
        validate_key(key)?;
        if key.starts_with("ai.") {
            crate::assistant::config::validate_setting(key, value, secret)?;
        }
        let stored = if secret {
            let ciphertext = age::encrypt(&instance.identity().to_public(), value.as_bytes())
                .map_err(|e| anyhow::anyhow!("cannot encrypt the secret: {e}"))?;
            B64.encode(ciphertext)
        } else {
            value.to_string()
        };
        let digest = instance.hmac.hmac(&json!(value));
        instance.store.write(|tx| {
            let before = tx.setting_get(key)?;
            tx.setting_put(&SettingRow {
                key: key.to_string(),
                value: stored.clone(),
                secret,
                updated_at: timefmt::rfc3339(timefmt::now()),
            })?;
            // The row never carries the value: an HMAC of it, which only the holder of
            // the instance key can check against a suspected value.
            audit::append(
                tx,
                origin,
                Event::new("settings.set")
                    .object("setting")
                    .record(key)
                    .changes(json!({
                        "secret": secret,
                        "replaced": before.is_some(),
                        "value_hmac_sha256": digest,
                        "hmac_key": crate::audit::HMAC_KEY_LABEL,
                    })),
            )?;
            Ok(())
        })
    })
}

/// A setting's value in clear (secrets decrypted; reading a secret is audited).
pub fn get(instance: &Instance, origin: &Origin, key: &str) -> anyhow::Result<(String, bool)> {
    let row = instance
        .store
        .read(|tx| Ok(tx.setting_get(key)?))?
        .ok_or_else(|| {
            Failure::error(format!("no setting `{key}`")).with_hint("see `objectos settings list`")
        })?;
    if !row.secret {
        return Ok((row.value, false));
    }
    let ciphertext = B64
        .decode(&row.value)
        .map_err(|_| anyhow::anyhow!("the stored secret `{key}` is not base64"))?;
    let clear = age::decrypt(instance.identity(), &ciphertext).map_err(|e| {
        Failure::error(format!("cannot decrypt the secret `{key}`: {e}"))
            .with_hint("the instance key does not match the one it was encrypted to")
    })?;
    instance.change(origin, "settings.get", Some("setting"), |tx| {
        audit::append(
            tx,
            origin,
            Event::new("settings.get")
                .object("setting")
                .record(key)
                .changes(json!({"secret": true})),
        )?;
        Ok(())
    })?;
    let text =
        String::from_utf8(clear).map_err(|_| anyhow::anyhow!("the secret `{key}` is not UTF-8"))?;
    Ok((text, true))
}

pub fn unset(instance: &Instance, origin: &Origin, key: &str) -> anyhow::Result<()> {
    instance.change(origin, "settings.unset", Some("setting"), |tx| {
        if !tx.setting_delete(key)? {
            return Err(Failure::error(format!("no setting `{key}`")).into());
        }
        audit::append(
            tx,
            origin,
            Event::new("settings.unset").object("setting").record(key),
        )?;
        Ok(())
    })
}
