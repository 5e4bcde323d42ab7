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
use crate::crypto::encryption;
use crate::crypto::signing::{PublicKey, SecretKey, SignatureFile, blake2b_512, sha256_hex};
use crate::error::Failure;
use crate::instance::{
    CHECKPOINTS, DB_FILE, INSTANCE_KEY, Instance, RETIRED_DIR, SIGNING_KEY, SIGNING_PUB, TRUST_DIR,
};
use crate::output::stdio::{Input, OutputPath};
use crate::tarfile;
use crate::timefmt;

/// The manifest's format: every file with its sha256, signed.
pub const MANIFEST_FORMAT: &str = "objectos.backup/2";

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
    /// When the backup was taken (restoring an old one brings back what was true then)
    pub backup_created_at: Option<String>,
    pub audit_rows: u64,
    pub audit_head_seq: Option<i64>,
    pub checkpoints: usize,
}

/// A backup's entries have no meaningful time: every one says 1970.
const MTIME: u64 = 0;

/// The tables (and indexes) the applied artifact's objects need, in an empty
/// database.
fn record_tables(instance: &Instance) -> anyhow::Result<Vec<crate::store::SchemaChange>> {
    Ok(
        match super::applied::load(instance, super::applied::Purpose::Replace)? {
            Some(applied) => super::apply::plan(None, &applied.model).changes,
            None => Vec::new(),
        },
    )
}

/// Copy a PostgreSQL instance's whole database into a new SQLite file.
fn snapshot_into_sqlite(instance: &Instance, path: &Path) -> anyhow::Result<()> {
    let changes = record_tables(instance)?;
    let target = crate::store::Store::new(Box::new(crate::store::sqlite::SqliteBackend::open(
        path, true,
    )?));
    target.write(|dst| {
        dst.schema_apply(&changes)?;
        instance
            .store
            .scan(|src| Ok(crate::store::copy(src, dst)?))
            .context("cannot copy the database into the backup")?;
        Ok(())
    })?;
    Ok(())
}

/// Take a backup into `out` (a file, or standard output).
pub fn backup(
    instance: &Instance,
    origin: &Origin,
    out: &OutputPath,
    recipients: &[String],
) -> anyhow::Result<BackupReport> {
    let recipients = encryption::recipients(recipients, &[])?;
    let encrypted = !recipients.is_empty();
    let name = match out {
        OutputPath::File(path) => path.display().to_string(),
        OutputPath::Stdout => "-".to_string(),
    };
    instance.audited(origin, "backup.create", Some("instance"), || {
        // Staged beside the file (renamed into place), or in the data dir when
        // it goes to standard output: the snapshot is as secret as the data.
        let parent = match out {
            OutputPath::File(path) => match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            },
            OutputPath::Stdout => instance.dir.clone(),
        };
        let work = tempfile::Builder::new()
            .prefix(".objectos-backup-")
            .tempdir_in(&parent)
            .with_context(|| format!("cannot write into `{}`", parent.display()))?;
        let snapshot = work.path().join(DB_FILE);
        // The snapshot is taken with the checkpoint log locked, so the log is
        // copied whole as it stands then, ending with a checkpoint of exactly the
        // snapshot's head: a restore can tell that no row was cut from its end,
        // and check the log's own chain.
        let mut log = checkpoint::lock(&instance.checkpoints_path())?;
        match &instance.database {
            super::Database::Sqlite(sqlite) => sqlite.backup_to(&snapshot)?,
            // A backup is a SQLite database whatever the instance's backend:
            // PostgreSQL's rows are copied into one, from one consistent
            // snapshot (a repeatable-read transaction).
            super::Database::Postgres(_) => {
                snapshot_into_sqlite(instance, &snapshot)?;
            }
        }
        let head = {
            let copy = crate::store::Store::new(Box::new(
                crate::store::sqlite::SqliteBackend::open(&snapshot, false)?,
            ));
            copy.read(|tx| Ok(tx.audit_head()?))?
        };
        let head_seq = head.as_ref().map(|h| h.0).unwrap_or(0);
        if let Some((seq, hash)) = &head
            && log.head().is_none_or(|c| c.seq != *seq || c.hash != *hash)
        {
            log.append(&instance.signer, &instance.id, *seq, hash)?;
        }
        let cp_text = std::fs::read_to_string(instance.checkpoints_path())?;
        drop(log);
        // Every file the archive holds, with the bytes it holds: the manifest names
        // each one's sha256, and the manifest is signed, so a restore can check
        // every byte it puts in place.
        // The database goes in as a stream (it may be large); the small files
        // from memory.
        let db_sha = crate::crypto::signing::digest_file(&snapshot)?.sha256_hex();
        let mut files: Vec<(String, Vec<u8>, u32)> = vec![
            (CHECKPOINTS.to_string(), cp_text.into_bytes(), 0o644),
            (
                SIGNING_PUB.to_string(),
                std::fs::read(instance.dir.join(SIGNING_PUB))?,
                0o644,
            ),
        ];
        // A trust store a restore would refuse is refused now, not on the day the
        // backup is needed.
        crate::artifact::verify::trust_store_keys(&instance.trust_dir()).map_err(|e| {
            Failure::error(format!(
                "the trust store is not sound, so no backup was made: {e:#}"
            ))
        })?;
        let mut trusted: Vec<PathBuf> = std::fs::read_dir(instance.trust_dir())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "pub"))
            .collect();
        trusted.sort();
        for path in trusted {
            if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                files.push((format!("{TRUST_DIR}/{name}"), std::fs::read(&path)?, 0o644));
            }
        }
        if encrypted {
            for key in [INSTANCE_KEY, SIGNING_KEY] {
                files.push((
                    key.to_string(),
                    std::fs::read(instance.dir.join(key))?,
                    0o600,
                ));
            }
        }
        // Keys a rotation retired: the public ones always (old checkpoints verify
        // with them), the secret ones only inside an encrypted backup.
        let retired = instance.dir.join(RETIRED_DIR);
        if retired.is_dir() {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(&retired)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            paths.sort();
            for path in paths {
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                let secret = name.ends_with(".key");
                if name.ends_with(".pub") || (secret && encrypted) {
                    files.push((
                        format!("{RETIRED_DIR}/{name}"),
                        std::fs::read(&path)?,
                        if secret { 0o600 } else { 0o644 },
                    ));
                }
            }
        }
        let mut digests: serde_json::Map<String, serde_json::Value> = files
            .iter()
            .map(|(name, bytes, _)| (name.clone(), json!(sha256_hex(bytes))))
            .collect();
        digests.insert(DB_FILE.to_string(), json!(db_sha));
        let manifest = json!({
            "format": MANIFEST_FORMAT,
            "instance_id": instance.id,
            "created_at": timefmt::rfc3339(timefmt::now()),
            "audit_head_seq": head.as_ref().map(|h| h.0),
            "audit_head_hash": head.as_ref().map(|h| h.1.clone()),
            "includes_instance_keys": encrypted,
            "signer_key_id": instance.signer.public.id.to_string(),
            "files": digests,
            "tool_version": env!("CARGO_PKG_VERSION"),
        });
        let tar_path = work.path().join("backup.tar");
        {
            let file = std::fs::File::create(&tar_path)?;
            let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
            // The manifest is signed by the instance key; a restore checks it with
            // that key's public half from outside the archive.
            let manifest_bytes = serde_json::to_string_pretty(&manifest)?;
            let signature = instance.signer.sign_bytes(
                manifest_bytes.as_bytes(),
                &format!("objectos backup instance:{} head:{head_seq}", instance.id),
            )?;
            tarfile::append_bytes(
                &mut tar,
                "manifest.json",
                manifest_bytes.as_bytes(),
                0o644,
                MTIME,
            )?;
            tarfile::append_bytes(
                &mut tar,
                "manifest.json.minisig",
                signature.as_bytes(),
                0o644,
                MTIME,
            )?;
            let db = std::fs::File::open(&snapshot)
                .with_context(|| format!("cannot read `{}`", snapshot.display()))?;
            let db_len = db.metadata()?.len();
            tarfile::append_reader(&mut tar, DB_FILE, db, db_len, 0o600, MTIME)?;
            for (name, bytes, mode) in &files {
                tarfile::append_bytes(&mut tar, name, bytes, *mode, MTIME)?;
            }
            tar.into_inner()?.flush()?;
        }
        let staged = work.path().join("out");
        {
            let mut input = std::fs::File::open(&tar_path)?;
            let mut output = std::fs::File::create(&staged)?;
            if encrypted {
                let mut writer = encryption::encrypt_to(&recipients, &mut output)?;
                std::io::copy(&mut input, &mut writer)?;
                writer.finish()?;
            } else {
                std::io::copy(&mut input, &mut output)?;
            }
            output.sync_all()?;
        }
        let bytes = std::fs::metadata(&staged)?.len();
        match out {
            OutputPath::File(path) => {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
                std::fs::rename(&staged, path)
                    .with_context(|| format!("cannot write `{}`", path.display()))?;
            }
            OutputPath::Stdout => {
                OutputPath::copy_to_stdout(&mut std::fs::File::open(&staged)?)?;
            }
        }
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
                        "file": name,
                        "audit_head_seq": head.as_ref().map(|h| h.0),
                        "database_sha256": db_sha,
                    })),
            )?;
            Ok(())
        })?;
        Ok(BackupReport {
            file: name.clone(),
            encrypted,
            includes_instance_keys: encrypted,
            audit_head_seq: head.as_ref().map(|h| h.0),
            audit_head_hash: head.map(|h| h.1),
            bytes,
        })
    })
}

/// Where a restore gets the keys it trusts: never from the backup itself.
pub struct RestoreKeys<'a> {
    /// The instance's signing public key (`--signer`).
    pub signer: Option<&'a Path>,
    /// The data dir the backup came from, or a directory holding its keys
    /// (`--keys-from`): its signing key vouches for the backup, and an
    /// unencrypted backup takes its instance keys from there.
    pub keys_from: Option<&'a Path>,
}

/// The signing key that must have signed the backup, from outside it.
fn trusted_signer(keys: &RestoreKeys<'_>) -> anyhow::Result<PublicKey> {
    if let Some(path) = keys.signer {
        return PublicKey::read(path);
    }
    if let Some(dir) = keys.keys_from {
        let public = dir.join(SIGNING_PUB);
        if public.exists() {
            return PublicKey::read(&public);
        }
        let secret = std::fs::read_to_string(dir.join(SIGNING_KEY)).with_context(|| {
            format!(
                "`{}` holds neither `{SIGNING_PUB}` nor `{SIGNING_KEY}`",
                dir.display()
            )
        })?;
        return Ok(SecretKey::load(&secret, None)?.public);
    }
    Err(Failure::error(
        "a restore needs a key you already trust to check the backup's signature",
    )
    .with_hint("pass `--signer instance-signing.key.pub` (the instance's signing public key; `objectos doctor` shows its id) or `--keys-from DIR` (the data dir it came from)")
    .into())
}

/// Copy a tar entry to `dest`, returning the sha256 of what was written.
fn copy_hashed(entry: &mut impl Read, dest: &Path, name: &str) -> anyhow::Result<String> {
    use sha2::Digest;
    let mut out = std::fs::File::create(dest)?;
    let mut sha = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = entry
            .read(&mut buf)
            .map_err(|e| Failure::verify(format!("the backup is damaged (`{name}`): {e}")))?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        out.write_all(&buf[..n])?;
    }
    out.sync_all()?;
    Ok(hex::encode(sha.finalize()))
}

/// Whether a backup may hold a file of this name.
fn backup_member(name: &str) -> bool {
    let in_dir = |dir: &str, ok: &dyn Fn(&str) -> bool| {
        name.strip_prefix(&format!("{dir}/"))
            .is_some_and(|n| !n.is_empty() && !n.contains('/') && !n.starts_with('.') && ok(n))
    };
    [
        "manifest.json",
        "manifest.json.minisig",
        DB_FILE,
        CHECKPOINTS,
        SIGNING_PUB,
        INSTANCE_KEY,
        SIGNING_KEY,
    ]
    .contains(&name)
        || in_dir(TRUST_DIR, &|n| n.ends_with(".pub"))
        || in_dir(RETIRED_DIR, &|n| n.ends_with(".pub") || n.ends_with(".key"))
}

fn refused(message: impl Into<String>) -> anyhow::Error {
    Failure::verify(format!("{}; nothing was restored", message.into())).into()
}

/// Restore a backup into `target`, which must not exist or be empty. Every byte
/// put in place is checked against the signed manifest, and the manifest against
/// a signing key from outside the backup (`keys`).
pub fn restore(
    file: &Input,
    target: &Path,
    identities: &[PathBuf],
    keys: &RestoreKeys<'_>,
    database: Option<&super::NewServer>,
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
    let signer = trusted_signer(keys)?;
    // Read once, as a stream (it may be standard input): the head says whether
    // it is encrypted, and is then read again in front of the rest.
    let mut input = file.open()?;
    let mut head = Vec::with_capacity(64);
    (&mut input)
        .take(64)
        .read_to_end(&mut head)
        .with_context(|| format!("cannot read {}", file.describe()))?;
    let encrypted = encryption::is_encrypted(&head);
    let whole = std::io::Cursor::new(head).chain(input);
    let reader: Box<dyn Read> = if encrypted {
        if identities.is_empty() {
            return Err(Failure::error("the backup is encrypted")
                .with_hint(
                    "pass `-i IDENTITY` (an age identity file holding a key it was encrypted to)",
                )
                .into());
        }
        let ids = encryption::read_identities(identities)?;
        encryption::decrypt(whole, &ids).map_err(|e| match e {
            encryption::DecryptProblem::NotAge(e) => {
                Failure::verify(format!("cannot read the encrypted backup: {e}"))
            }
            encryption::DecryptProblem::NoMatchingIdentity(e) => {
                Failure::verify(format!("cannot decrypt the backup: {e}"))
                    .with_hint("pass the identity of a recipient it was encrypted to")
            }
        })?
    } else {
        Box::new(std::io::BufReader::new(whole))
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
    std::fs::create_dir(s.join(RETIRED_DIR))?;
    let mut archive = tar::Archive::new(reader);
    let limit = |name: &str| backup_member(name).then_some(u64::MAX);
    let rules = tarfile::Rules {
        dirs: &[TRUST_DIR, RETIRED_DIR],
        limit: &limit,
    };
    let mut entries = tarfile::Entries::new();
    // name → sha256 of what was extracted
    let mut extracted: std::collections::BTreeMap<String, String> = Default::default();
    for entry in archive
        .entries()
        .map_err(|e| Failure::verify(format!("the backup is not a tar: {e}")))?
    {
        let mut entry =
            entry.map_err(|e| Failure::verify(format!("the backup is damaged: {e}")))?;
        let name = match entries.check(&entry, &rules) {
            Ok(tarfile::Checked::Dir(_)) => continue,
            Ok(tarfile::Checked::File { name, .. }) => name,
            Err(problem) => return Err(refused(format!("the backup is unsafe: {problem}"))),
        };
        let retired_secret = name
            .strip_prefix(&format!("{RETIRED_DIR}/"))
            .is_some_and(|n| n.ends_with(".key"));
        if !encrypted && (name == INSTANCE_KEY || name == SIGNING_KEY || retired_secret) {
            return Err(refused(format!(
                "an unencrypted backup must not carry `{name}`"
            )));
        }
        let sha = copy_hashed(&mut entry, &s.join(&name), &name)?;
        extracted.insert(name, sha);
    }
    // The manifest, signed by the key from outside, must name every file with the
    // bytes it holds, and nothing else.
    let manifest_text = std::fs::read_to_string(s.join("manifest.json"))
        .map_err(|_| refused("the backup has no manifest"))?;
    let manifest_sig = std::fs::read_to_string(s.join("manifest.json.minisig"))
        .map_err(|_| refused("the backup's manifest is not signed"))?;
    let sig = SignatureFile::parse(&manifest_sig)
        .map_err(|e| refused(format!("the manifest signature is malformed: {e}")))?;
    sig.check(&signer, &blake2b_512(manifest_text.as_bytes()))
        .map_err(|e| {
            refused(format!(
                "the backup's manifest was not signed by key {} (the key you trust for it): {e}",
                signer.id
            ))
        })?;
    let manifest: serde_json::Value = serde_json::from_str(&manifest_text)
        .map_err(|_| refused("the backup's manifest is not JSON"))?;
    if manifest["format"] != MANIFEST_FORMAT {
        return Err(refused(format!(
            "the backup's manifest is `{}`, not `{MANIFEST_FORMAT}`: an older objectos made it, and its signature does not cover every file (make a new backup)",
            manifest["format"].as_str().unwrap_or("?")
        )));
    }
    let listed = manifest["files"]
        .as_object()
        .ok_or_else(|| refused("the backup's manifest lists no files"))?;
    for (name, sha) in &extracted {
        if name == "manifest.json" || name == "manifest.json.minisig" {
            continue;
        }
        match listed.get(name).and_then(|v| v.as_str()) {
            Some(expected) if expected == sha => {}
            Some(_) => {
                return Err(refused(format!(
                    "`{name}` in the backup is not the file its signed manifest describes"
                )));
            }
            None => {
                return Err(refused(format!(
                    "the backup holds `{name}`, which its signed manifest does not list"
                )));
            }
        }
    }
    if let Some(missing) = listed.keys().find(|n| !extracted.contains_key(*n)) {
        return Err(refused(format!(
            "the backup lacks `{missing}`, which its signed manifest lists"
        )));
    }
    if !extracted.contains_key(DB_FILE) {
        return Err(refused("the backup holds no database"));
    }
    // The instance's keys: the backup's own (encrypted), or the restorer's
    // (`--keys-from`), and either way the signing key must be the trusted one.
    for key in [INSTANCE_KEY, SIGNING_KEY] {
        if !s.join(key).exists() {
            let from = keys.keys_from.ok_or_else(|| {
                Failure::error("this backup was not encrypted, so it carries no instance keys").with_hint("pass `--keys-from DIR`, a directory holding the instance's `instance.key` and `instance-signing.key`")
            })?;
            std::fs::copy(from.join(key), s.join(key))
                .with_context(|| format!("cannot copy `{}`", from.join(key).display()))?;
        }
    }
    // An unencrypted backup's retired secret keys come from the same place.
    if !encrypted
        && let Some(from) = keys.keys_from
        && from.join(RETIRED_DIR).is_dir()
    {
        for entry in std::fs::read_dir(from.join(RETIRED_DIR))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "key")
                && let Some(name) = path.file_name()
            {
                std::fs::copy(&path, s.join(RETIRED_DIR).join(name))?;
            }
        }
    }
    let staged_signer = SecretKey::load(&std::fs::read_to_string(s.join(SIGNING_KEY))?, None)
        .context("cannot load the instance signing key")?;
    let staged_public = PublicKey::read(&s.join(SIGNING_PUB))?;
    if staged_signer.public.base64 != signer.base64 || staged_public.base64 != signer.base64 {
        return Err(refused(format!(
            "the backup's instance signing key is not key {} (the key you trust for it)",
            signer.id
        )));
    }
    use std::os::unix::fs::PermissionsExt;
    for (name, mode) in [
        (INSTANCE_KEY, 0o600),
        (SIGNING_KEY, 0o600),
        (DB_FILE, 0o600),
    ] {
        std::fs::set_permissions(s.join(name), std::fs::Permissions::from_mode(mode))?;
    }
    for entry in std::fs::read_dir(s.join(RETIRED_DIR))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "key") {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    std::fs::set_permissions(s, std::fs::Permissions::from_mode(0o700))?;
    // The trust store must read back as keys named by their own ids.
    crate::artifact::verify::trust_store_keys(&s.join(TRUST_DIR))
        .map_err(|e| refused(format!("the backup's trust store is not sound: {e}")))?;
    // The chain and its checkpoints must verify before anything lands at the target.
    let report = {
        let staged = Instance::open_unsealed(s)?;
        if manifest["instance_id"].as_str() != Some(staged.id.as_str()) {
            return Err(refused(
                "the backup's database belongs to another instance than its manifest",
            ));
        }
        let cps = checkpoint::read_all(&staged.checkpoints_path())?;
        // The retired keys are vouched for by the manifest the trusted key signed.
        let mut cp_keys = vec![signer.clone()];
        cp_keys.extend(crate::instance::retired_signing_keys(s)?);
        let report = verify::verify_chain(
            &staged.store,
            verify::Checkpoints::log(&cps),
            &cp_keys,
            |_| {},
        )?;
        if let Some(b) = &report.broken {
            return Err(refused(format!(
                "the backup's audit chain is broken at seq {}: {}",
                b.seq, b.reason
            )));
        }
        let head_vouched = cps
            .iter()
            .any(|c| Some(c.seq) == report.head_seq && Some(&c.hash) == report.head_hash.as_ref());
        if report.head_seq != manifest["audit_head_seq"].as_i64() || !head_vouched {
            return Err(refused(
                "the backup's newest audit rows do not match its signed manifest and checkpoint",
            ));
        }
        let id = staged.id.clone();
        // Onto PostgreSQL: every row into a new database, in one transaction
        // (a failure leaves it empty), and the data dir names it instead of
        // holding the SQLite file.
        if let Some(server) = database {
            let changes = record_tables(&staged)?;
            let config = super::database::DatabaseConfig {
                backend: "postgres".into(),
                url: server.url.clone(),
                password_file: server.password_file.clone(),
                instance_id: id.clone(),
                admin_url: server.admin_url.clone(),
                admin_password_file: server.admin_password_file.clone(),
            };
            let connect = config.connect_config()?;
            let mut copy = |dst: &mut dyn crate::store::Tx| -> anyhow::Result<()> {
                dst.schema_apply(&changes)?;
                staged
                    .store
                    .scan(|src| Ok(crate::store::copy(src, dst)?))
                    .context("cannot copy the backup's database into PostgreSQL")?;
                Ok(())
            };
            match config.admin_connect()? {
                None => {
                    crate::store::postgres::PgBackend::open(connect, true, Some(&mut copy))
                        .map_err(|e| super::pg_error(e, &config))?;
                }
                // As `init` does: the owner makes the tables and grants the
                // runtime's role what it needs, in the same transaction.
                Some(admin) => {
                    let role = super::database::checked_runtime_role(&config, &admin)?;
                    crate::store::postgres::PgBackend::check_connect(connect)
                        .map_err(|e| super::pg_error(e, &config))?;
                    crate::store::postgres::PgBackend::open_as_owner(
                        admin,
                        true,
                        Some(&mut copy),
                        &role,
                    )
                    .map_err(|e| super::pg_error(e, &config))?;
                }
            }
            drop(staged);
            config.save(s)?;
            for suffix in ["", "-wal", "-shm"] {
                let path = s.join(format!("{DB_FILE}{suffix}"));
                if path.exists() {
                    std::fs::remove_file(&path)?;
                }
            }
        } else {
            // Closed before it moves (its checkpoint log already covers its head).
            drop(staged);
        }
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
                .changes(json!({
                    "file": match file {
                        Input::File(path) => path.display().to_string(),
                        Input::Stdin => "-".to_string(),
                    },
                    "encrypted": encrypted,
                    "signer_key_id": signer.id.to_string(),
                })),
        )?;
        Ok(())
    })?;
    let (instance_id, chain) = report;
    Ok(RestoreReport {
        data_dir: target.display().to_string(),
        instance_id,
        backup_created_at: manifest["created_at"].as_str().map(str::to_string),
        audit_rows: chain.rows + 1,
        audit_head_seq: chain.head_seq.map(|s| s + 1),
        checkpoints: chain.checkpoints,
    })
}
