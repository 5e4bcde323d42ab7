//! `audit archive`: the oldest rows exported, the file verified as an auditor
//! would verify it, put in place, and only then the rows removed together with
//! their anchor, in one transaction with the row that records it — all or
//! nothing: a failure at any step leaves every row in the database and no
//! archive file behind.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

use super::export::{self, Hashing};
use super::verify::{self, Options, Trusted};
use super::{Point, Progress, resolve_before};
use crate::audit::verify::ARCHIVE_ACTION;
use crate::audit::{self, Event, Origin};
use crate::crypto::encryption::{self, Recipient};
use crate::crypto::signing::SecretKey;
use crate::error::Failure;
use crate::instance::Instance;
use crate::store::AuditAnchor;

/// `audit archive --json`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ArchiveDone {
    pub file: String,
    pub first_seq: i64,
    pub last_seq: i64,
    /// Rows removed from the database
    pub removed: u64,
    /// The hash of the last archived row: where `audit verify` now starts
    pub last_hash: String,
    pub checkpoints: u64,
    pub signed_by: String,
    pub encrypted: bool,
    /// The SHA-256 of the archive file (recorded in the anchor and its row)
    pub sha256: String,
    pub bytes: u64,
}

/// Where the test suite makes an archive fail on purpose (debug builds only):
/// `OBJECTOS_TEST_FAIL=archive-before-delete` or `archive-in-transaction`.
fn fail_point(name: &str) -> anyhow::Result<()> {
    #[cfg(debug_assertions)]
    if std::env::var("OBJECTOS_TEST_FAIL").as_deref() == Ok(name) {
        anyhow::bail!("failure injected at `{name}` (OBJECTOS_TEST_FAIL)");
    }
    let _ = name;
    Ok(())
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Archive every row before `before` into `out`.
#[allow(clippy::too_many_arguments)]
pub fn archive(
    instance: &Instance,
    origin: &Origin,
    before: Point,
    out: &Path,
    replace: bool,
    signer: &SecretKey,
    recipients: &[Recipient],
    progress: &dyn Progress,
) -> anyhow::Result<ArchiveDone> {
    instance.audited(origin, ARCHIVE_ACTION, Some("audit"), || {
        let (first, last, head) = instance.store.read(|tx| {
            let archived = tx.audit_anchors()?.last().map(|a| a.last_seq).unwrap_or(0);
            let head = tx.audit_head()?.map(|h| h.0).unwrap_or(0);
            Ok((archived + 1, resolve_before(tx, before)?, head))
        })?;
        let last = match last {
            Some(last) if last > head => {
                return Err(Failure::error(format!(
                    "seq {} does not exist yet: the newest row is seq {head}",
                    last + 1
                ))
                .into());
            }
            Some(last) if last >= first => last,
            _ => {
                return Err(Failure::error(format!(
                    "nothing to archive: no row before that point is left in the database (it starts at seq {first})"
                ))
                .into());
            }
        };
        let dir = parent_of(out);
        let name = out.display().to_string();
        // 1. The archive, unencrypted, beside where it goes.
        let plain = tempfile::Builder::new()
            .prefix(".objectos-archive-")
            .tempfile_in(&dir)
            .with_context(|| format!("cannot write into `{}`", dir.display()))?;
        let checkpoints = export::checkpoints_of_range(instance, first, last, &dir)?;
        let written = {
            let mut sink = BufWriter::with_capacity(1 << 20, plain.as_file());
            let written = export::write_tar(
                instance,
                first..=last,
                Some(signer),
                checkpoints,
                &dir,
                &mut sink,
                progress,
            )?;
            sink.flush()?;
            written
        };
        plain.as_file().sync_all()?;
        // 2. Verified as an auditor verifies it, and against the database.
        let options = Options {
            trusted: vec![Trusted {
                key: signer.public.clone(),
                from: "the key it was signed with".into(),
            }],
            ..Options::default()
        };
        let report = verify::verify(
            Box::new(std::fs::File::open(plain.path())?),
            &name,
            &options,
            progress,
        )?;
        let (last_hash, first_prev_hash) = (
            written.manifest.last_hash.clone(),
            written.manifest.first_prev_hash.clone(),
        );
        let db_last = instance
            .store
            .read(|tx| Ok(tx.audit_by_seq(last)?.map(|r| r.hash)))?;
        if !report.ok
            || report.events != (last - first + 1) as u64
            || report.last_hash.as_deref() != Some(last_hash.as_str())
            || db_last.as_deref() != Some(last_hash.as_str())
        {
            let why = report
                .problems
                .first()
                .map(|p| p.message.clone())
                .unwrap_or_else(|| "it does not hold the rows it was written from".into());
            return Err(Failure::verify(format!(
                "the archive just written does not verify: {why}; nothing was removed"
            ))
            .into());
        }
        // 3. The bytes that go in place, encrypted if asked, hashed as written and
        // read back.
        let (staged, sha256, bytes) = if recipients.is_empty() {
            let digest = crate::crypto::signing::digest_file(plain.path())?;
            (plain, digest.sha256_hex(), digest.size)
        } else {
            let encrypted = tempfile::Builder::new()
                .prefix(".objectos-archive-")
                .tempfile_in(&dir)?;
            let mut hashing = Hashing::new(BufWriter::with_capacity(1 << 20, encrypted.as_file()));
            {
                let mut writer = encryption::encrypt_to(recipients, &mut hashing)?;
                let mut input = std::fs::File::open(plain.path())?;
                std::io::copy(&mut input, &mut writer)?;
                writer.finish()?;
            }
            let (sink, sha256, bytes) = hashing.finish()?;
            sink.into_inner().map_err(|e| e.into_error())?;
            encrypted.as_file().sync_all()?;
            let again = crate::crypto::signing::digest_file(encrypted.path())?;
            if again.sha256_hex() != sha256 || again.size != bytes {
                return Err(Failure::error(
                    "the encrypted archive read back is not what was written; nothing was removed",
                )
                .into());
            }
            (encrypted, sha256, bytes)
        };
        // 4. In place before a row goes.
        set_mode(staged.path())?;
        if replace {
            staged.persist(out).map_err(|e| e.error)
        } else {
            staged.persist_noclobber(out).map_err(|e| e.error)
        }
        .with_context(|| format!("cannot write `{}`", out.display()))?;
        let removed = fail_point("archive-before-delete").and_then(|()| {
            // 5. The rows go with their anchor and the row that records it (as
            // the schema's owner, when the runtime's role may not remove rows).
            instance.with_admin_store(|store| store.write(|tx| {
                let row = audit::append(
                    tx,
                    origin,
                    Event::new(ARCHIVE_ACTION).object("audit").changes(json!({
                        "first_seq": first,
                        "last_seq": last,
                        "count": last - first + 1,
                        "first_prev_hash": first_prev_hash,
                        "last_hash": last_hash,
                        "archive_sha256": sha256,
                        "file": name,
                        "signed_by": signer.public.id.to_string(),
                        "encrypted": !recipients.is_empty(),
                    })),
                )?;
                let removed = tx.audit_anchor_insert(&AuditAnchor {
                    first_seq: first,
                    last_seq: last,
                    first_prev_hash: first_prev_hash.clone(),
                    last_hash: last_hash.clone(),
                    count: last - first + 1,
                    archive_sha256: sha256.clone(),
                    archived_at: row.time,
                    last_artifact_apply: written.last_artifact_apply.clone(),
                })?;
                fail_point("archive-in-transaction")?;
                Ok(removed)
            }))
        });
        let removed = match removed {
            Ok(removed) => removed,
            Err(e) => {
                // Nothing was removed: no archive is left claiming it was.
                let _ = std::fs::remove_file(out);
                return Err(e.context(format!(
                    "the rows were not removed, and `{}` was deleted again",
                    out.display()
                )));
            }
        };
        if let Err(e) = instance.checkpoint_if_behind() {
            eprintln!("warning: could not write the audit checkpoint: {e:#}");
        }
        Ok(ArchiveDone {
            file: name.clone(),
            first_seq: first,
            last_seq: last,
            removed,
            last_hash,
            checkpoints: written.manifest.checkpoints,
            signed_by: signer.public.id.to_string(),
            encrypted: !recipients.is_empty(),
            sha256,
            bytes,
        })
    })
}

fn set_mode(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot set the mode of `{}`", path.display()))
}
