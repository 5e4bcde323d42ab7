//! Backups: a consistent snapshot taken while the runtime serves (SQLite's online
//! backup) with the checkpoint log, in a tar; the instance keys go in only when
//! the tar is encrypted with age. Restoring refuses a backup whose audit chain or
//! checkpoints do not verify.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

use crate::audit::{self, Event, Origin, checkpoint, verify};
use crate::crypto::signing::sha256_hex;
use crate::error::Failure;
use crate::instance::{
    CHECKPOINTS, DB_FILE, INSTANCE_KEY, Instance, SIGNING_KEY, SIGNING_PUB, TRUST_DIR,
};
use crate::timefmt;

#[derive(Serialize, JsonSchema)]
pub struct BackupReport {
    pub file: String,
    pub encrypted: bool,
    pub includes_instance_keys: bool,
    pub audit_head_seq: Option<i64>,
    pub audit_head_hash: Option<String>,
    pub bytes: u64,
}

#[derive(Serialize, JsonSchema)]
pub struct RestoreReport {
    pub data_dir: String,
    pub instance_id: String,
    pub audit_rows: u64,
    pub audit_head_seq: Option<i64>,
    pub checkpoints: usize,
}

/// An age recipient from its text: `age1…` or an `ssh-ed25519`/`ssh-rsa` key.
pub fn parse_recipient(text: &str) -> anyhow::Result<Box<dyn age::Recipient + Send>> {
    let text = text.trim();
    if let Ok(r) = text.parse::<age::x25519::Recipient>() {
        return Ok(Box::new(r));
    }
    if let Ok(r) = text.parse::<age::ssh::Recipient>() {
        return Ok(Box::new(r));
    }
    Err(Failure::error(format!(
        "`{text}` is not an age recipient (`age1…`) or an SSH public key"
    ))
    .into())
}

fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
    mode: u32,
) -> anyhow::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    tar.append_data(&mut header, name, bytes)
        .with_context(|| format!("cannot add `{name}` to the backup"))
}

fn append_path<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    path: &Path,
    mode: u32,
) -> anyhow::Result<()> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let len = file.metadata()?.len();
    let mut header = tar::Header::new_gnu();
    header.set_size(len);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    tar.append_data(&mut header, name, &mut file)
        .with_context(|| format!("cannot add `{name}` to the backup"))
}

/// Take a backup into `out`.
pub fn backup(
    instance: &Instance,
    origin: &Origin,
    out: &Path,
    recipients: &[String],
) -> anyhow::Result<BackupReport> {
    let recipients: Vec<Box<dyn age::Recipient + Send>> = recipients
        .iter()
        .map(|r| parse_recipient(r))
        .collect::<anyhow::Result<_>>()?;
    let encrypted = !recipients.is_empty();
    instance.audited(origin, "backup.create", Some("instance"), || {
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let work = tempfile::Builder::new()
            .prefix(".objectos-backup-")
            .tempdir_in(&parent)
            .with_context(|| format!("cannot write into `{}`", parent.display()))?;
        let snapshot = work.path().join(DB_FILE);
        instance.sqlite.backup_to(&snapshot)?;
        // Only the checkpoints the snapshot's rows can answer for.
        let head = {
            let copy = crate::store::Store::new(Box::new(
                crate::store::sqlite::SqliteBackend::open(&snapshot, false)?,
            ));
            copy.read(|tx| Ok(tx.audit_head()?))?
        };
        let head_seq = head.as_ref().map(|h| h.0).unwrap_or(0);
        let mut checkpoints: Vec<_> = checkpoint::read_all(&instance.checkpoints_path())?
            .into_iter()
            .filter(|c| c.seq <= head_seq)
            .collect();
        // A checkpoint of exactly the snapshot's head, so a restore can tell that no
        // row was cut from the end of the backup.
        if let Some((seq, hash)) = &head
            && !checkpoints.iter().any(|c| c.seq == *seq && c.hash == *hash)
        {
            checkpoints.push(checkpoint::append(
                &instance.checkpoints_path(),
                &instance.signer,
                &instance.id,
                *seq,
                hash,
            )?);
        }
        let mut cp_text = String::new();
        for cp in &checkpoints {
            cp_text.push_str(&crate::crypto::canonical::to_string(cp)?);
            cp_text.push('\n');
        }
        let db_sha = sha256_hex(&std::fs::read(&snapshot)?);
        let mut trust_keys: Vec<String> = std::fs::read_dir(instance.trust_dir())?
            .filter_map(|e| e.ok().and_then(|e| e.file_name().into_string().ok()))
            .collect();
        trust_keys.sort();
        let manifest = json!({
            "format": "objectos.backup/1",
            "trust_keys": trust_keys,
            "instance_id": instance.id,
            "created_at": timefmt::rfc3339(timefmt::now()),
            "audit_head_seq": head.as_ref().map(|h| h.0),
            "audit_head_hash": head.as_ref().map(|h| h.1.clone()),
            "database_sha256": db_sha,
            "includes_instance_keys": encrypted,
            "tool_version": env!("CARGO_PKG_VERSION"),
        });
        let tar_path = work.path().join("backup.tar");
        {
            let file = std::fs::File::create(&tar_path)?;
            let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
            // The manifest is signed by the instance key: a restore checks the
            // database and the trust store against it with a key from outside.
            let manifest_bytes = serde_json::to_string_pretty(&manifest)?;
            let signature = instance.signer.sign_bytes(
                manifest_bytes.as_bytes(),
                &format!("objectos backup instance:{} head:{head_seq}", instance.id),
            )?;
            append_file(&mut tar, "manifest.json", manifest_bytes.as_bytes(), 0o644)?;
            append_file(
                &mut tar,
                "manifest.json.minisig",
                signature.as_bytes(),
                0o644,
            )?;
            append_path(&mut tar, DB_FILE, &snapshot, 0o600)?;
            append_file(&mut tar, CHECKPOINTS, cp_text.as_bytes(), 0o644)?;
            append_path(
                &mut tar,
                SIGNING_PUB,
                &instance.dir.join(SIGNING_PUB),
                0o644,
            )?;
            let mut trusted: Vec<PathBuf> = std::fs::read_dir(instance.trust_dir())?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            trusted.sort();
            for path in trusted {
                if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                    append_path(&mut tar, &format!("{TRUST_DIR}/{name}"), &path, 0o644)?;
                }
            }
            if encrypted {
                append_path(
                    &mut tar,
                    INSTANCE_KEY,
                    &instance.dir.join(INSTANCE_KEY),
                    0o600,
                )?;
                append_path(
                    &mut tar,
                    SIGNING_KEY,
                    &instance.dir.join(SIGNING_KEY),
                    0o600,
                )?;
            }
            tar.into_inner()?.flush()?;
        }
        let staged = work.path().join("out");
        {
            let mut input = std::fs::File::open(&tar_path)?;
            let mut output = std::fs::File::create(&staged)?;
            if encrypted {
                let encryptor = age::Encryptor::with_recipients(
                    recipients.iter().map(|r| r.as_ref() as &dyn age::Recipient),
                )
                .map_err(|e| anyhow::anyhow!("cannot encrypt: {e}"))?;
                let mut writer = encryptor.wrap_output(&mut output)?;
                std::io::copy(&mut input, &mut writer)?;
                writer.finish()?;
            } else {
                std::io::copy(&mut input, &mut output)?;
            }
            output.sync_all()?;
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&staged, out)
            .with_context(|| format!("cannot write `{}`", out.display()))?;
        // Recorded once the backup exists (a failed one leaves only its error row).
        instance.store.write(|tx| {
            audit::append(
                tx,
                origin,
                Event::new("backup.create")
                    .object("instance")
                    .record(&instance.id)
                    .changes(json!({
                        "encrypted": encrypted,
                        "includes_instance_keys": encrypted,
                        "file": out.display().to_string(),
                        "audit_head_seq": head.as_ref().map(|h| h.0),
                        "database_sha256": db_sha,
                    })),
            )?;
            Ok(())
        })?;
        Ok(BackupReport {
            file: out.display().to_string(),
            encrypted,
            includes_instance_keys: encrypted,
            audit_head_seq: head.as_ref().map(|h| h.0),
            audit_head_hash: head.map(|h| h.1),
            bytes: std::fs::metadata(out)?.len(),
        })
    })
}

fn read_identities(paths: &[PathBuf]) -> anyhow::Result<Vec<Box<dyn age::Identity>>> {
    let mut out: Vec<Box<dyn age::Identity>> = Vec::new();
    for path in paths {
        let file = age::IdentityFile::from_file(path.display().to_string())
            .with_context(|| format!("cannot read the identity `{}`", path.display()))?;
        out.extend(
            file.into_identities()
                .map_err(|e| anyhow::anyhow!("`{}`: {e}", path.display()))?,
        );
    }
    Ok(out)
}

/// Restore a backup into `target`, which must not exist or be empty.
pub fn restore(
    file: &Path,
    target: &Path,
    identities: &[PathBuf],
    keys_from: Option<&Path>,
) -> anyhow::Result<RestoreReport> {
    if target.exists()
        && std::fs::read_dir(target)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(Failure::error(format!(
            "`{}` is not empty; restore goes into an empty data dir",
            target.display()
        ))
        .with_hint("pass a new `--data-dir`")
        .into());
    }
    let mut input =
        std::fs::File::open(file).with_context(|| format!("cannot read `{}`", file.display()))?;
    let mut head = [0u8; 64];
    let n = input.read(&mut head)?;
    drop(input);
    let encrypted = head[..n].starts_with(b"age-encryption.org/v1")
        || head[..n].starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----");
    let reader: Box<dyn Read> = if encrypted {
        if identities.is_empty() {
            return Err(Failure::error("the backup is encrypted")
                .with_hint(
                    "pass `-i IDENTITY` (an age identity file holding a key it was encrypted to)",
                )
                .into());
        }
        let ids = read_identities(identities)?;
        let raw = std::io::BufReader::new(std::fs::File::open(file)?);
        let armored = age::armor::ArmoredReader::new(raw);
        let decryptor = age::Decryptor::new(armored)
            .map_err(|e| Failure::verify(format!("cannot read the encrypted backup: {e}")))?;
        let stream = decryptor
            .decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
            .map_err(|e| {
                Failure::verify(format!("cannot decrypt the backup: {e}"))
                    .with_hint("pass the identity of a recipient it was encrypted to")
            })?;
        Box::new(stream)
    } else {
        Box::new(std::io::BufReader::new(std::fs::File::open(file)?))
    };
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)?;
    let staging = tempfile::Builder::new()
        .prefix(".objectos-restore-")
        .tempdir_in(&parent)?;
    let s = staging.path();
    std::fs::create_dir(s.join(TRUST_DIR))?;
    let mut archive = tar::Archive::new(reader);
    let mut seen_db = false;
    for entry in archive
        .entries()
        .map_err(|e| Failure::verify(format!("the backup is not a tar: {e}")))?
    {
        let mut entry =
            entry.map_err(|e| Failure::verify(format!("the backup is damaged: {e}")))?;
        let name = entry.path()?.to_string_lossy().into_owned();
        if entry.header().entry_type() == tar::EntryType::Directory
            && name.trim_end_matches('/') == TRUST_DIR
        {
            continue;
        }
        if !encrypted && (name == INSTANCE_KEY || name == SIGNING_KEY) {
            return Err(Failure::verify(format!(
                "an unencrypted backup must not carry `{name}`; refusing it"
            ))
            .into());
        }
        let allowed = [
            "manifest.json",
            "manifest.json.minisig",
            DB_FILE,
            CHECKPOINTS,
            SIGNING_PUB,
            INSTANCE_KEY,
            SIGNING_KEY,
        ]
        .contains(&name.as_str())
            || name
                .strip_prefix(&format!("{TRUST_DIR}/"))
                .is_some_and(|n| {
                    !n.is_empty() && !n.contains('/') && !n.starts_with('.') && n.ends_with(".pub")
                });
        if !allowed || entry.header().entry_type() != tar::EntryType::Regular {
            return Err(Failure::verify(format!(
                "the backup holds an unexpected entry `{name}`; refusing it"
            ))
            .into());
        }
        let dest = s.join(&name);
        let mut out = std::fs::File::create(&dest)?;
        std::io::copy(&mut entry, &mut out)
            .map_err(|e| Failure::verify(format!("the backup is damaged (`{name}`): {e}")))?;
        seen_db |= name == DB_FILE;
    }
    if !seen_db {
        return Err(Failure::verify("the backup holds no database").into());
    }
    for key in [INSTANCE_KEY, SIGNING_KEY] {
        if !s.join(key).exists() {
            let from = keys_from.ok_or_else(|| {
                Failure::error("this backup was not encrypted, so it carries no instance keys").with_hint("pass `--keys-from DIR`, a directory holding the instance's `instance.key` and `instance-signing.key`")
            })?;
            std::fs::copy(from.join(key), s.join(key))
                .with_context(|| format!("cannot copy `{}`", from.join(key).display()))?;
        }
    }
    use std::os::unix::fs::PermissionsExt;
    for (name, mode) in [
        (INSTANCE_KEY, 0o600),
        (SIGNING_KEY, 0o600),
        (DB_FILE, 0o600),
    ] {
        std::fs::set_permissions(s.join(name), std::fs::Permissions::from_mode(mode))?;
    }
    std::fs::set_permissions(s, std::fs::Permissions::from_mode(0o700))?;
    // The manifest must be signed by the instance key (from outside the archive for
    // an unencrypted backup), and must describe exactly this database.
    let signer = crate::crypto::signing::SecretKey::load(
        &std::fs::read_to_string(s.join(SIGNING_KEY))?,
        None,
    )
    .context("cannot load the instance signing key")?;
    let manifest_text = std::fs::read_to_string(s.join("manifest.json"))
        .map_err(|_| Failure::verify("the backup has no manifest"))?;
    let manifest_sig = std::fs::read_to_string(s.join("manifest.json.minisig"))
        .map_err(|_| Failure::verify("the backup's manifest is not signed"))?;
    let sig = crate::crypto::signing::SignatureFile::parse(&manifest_sig)
        .map_err(|e| Failure::verify(format!("the manifest signature is malformed: {e}")))?;
    sig.check(
        &signer.public,
        &crate::crypto::signing::blake2b_512(manifest_text.as_bytes()),
    )
    .map_err(|e| {
        Failure::verify(format!(
            "the backup's manifest was not signed by this instance's key: {e}; nothing was restored"
        ))
    })?;
    let manifest: serde_json::Value = serde_json::from_str(&manifest_text)
        .map_err(|_| Failure::verify("the backup's manifest is not JSON"))?;
    if manifest["database_sha256"].as_str()
        != Some(sha256_hex(&std::fs::read(s.join(DB_FILE))?).as_str())
    {
        return Err(Failure::verify("the backup's database is not the one its signed manifest describes; nothing was restored").into());
    }
    let mut trust_now: Vec<String> = std::fs::read_dir(s.join(TRUST_DIR))?
        .filter_map(|e| e.ok().and_then(|e| e.file_name().into_string().ok()))
        .collect();
    trust_now.sort();
    if manifest["trust_keys"] != json!(trust_now) {
        return Err(Failure::verify("the backup's trusted keys are not the ones its signed manifest lists; nothing was restored").into());
    }
    // The chain and its checkpoints must verify before anything lands at the target.
    let report = {
        let staged = Instance::open(s)?;
        if manifest["instance_id"].as_str() != Some(staged.id.as_str()) {
            return Err(Failure::verify(
                "the backup's database belongs to another instance than its manifest",
            )
            .into());
        }
        let cps = checkpoint::read_all(&staged.checkpoints_path())?;
        let report = verify::verify_chain(&staged.store, &cps, staged.signing_public(), |_| {})?;
        let head_vouched = cps
            .iter()
            .any(|c| Some(c.seq) == report.head_seq && Some(&c.hash) == report.head_hash.as_ref());
        if report.broken.is_none()
            && (report.head_seq != manifest["audit_head_seq"].as_i64() || !head_vouched)
        {
            return Err(Failure::verify("the backup's newest audit rows do not match its signed manifest and checkpoint; nothing was restored").into());
        }
        if let Some(b) = &report.broken {
            return Err(Failure::verify(format!(
                "the backup's audit chain is broken at seq {}: {}; nothing was restored",
                b.seq, b.reason
            ))
            .into());
        }
        let id = staged.id.clone();
        // Closed before it moves (its checkpoint log already covers its head).
        drop(staged);
        (id, report)
    };
    if target.exists() {
        std::fs::remove_dir(target)?;
    }
    let kept = staging.keep();
    std::fs::rename(&kept, target).with_context(|| {
        format!(
            "cannot move the restored data dir to `{}`",
            target.display()
        )
    })?;
    let restored = Instance::open(target)?;
    restored.store.write(|tx| {
        audit::append(
            tx,
            &Origin::operator(),
            Event::new("backup.restore")
                .object("instance")
                .record(&restored.id)
                .changes(json!({"file": file.display().to_string(), "encrypted": encrypted})),
        )?;
        Ok(())
    })?;
    let (instance_id, chain) = report;
    Ok(RestoreReport {
        data_dir: target.display().to_string(),
        instance_id,
        audit_rows: chain.rows + 1,
        audit_head_seq: chain.head_seq.map(|s| s + 1),
        checkpoints: chain.checkpoints,
    })
}
