//! Writing an archive: the events of a range streamed from the database into a
//! temporary file (checked link by link as they go), the checkpoints of the
//! range, the manifest, the README, `SHA256SUMS` and its signature, then the
//! tar in sorted order with fixed headers, so that the same range gives the
//! same bytes.

use std::io::{BufRead, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::Context;
use sha2::Digest;

use super::{
    CHECKPOINTS, EVENTS, FileInfo, InstanceInfo, KeyInfo, MANIFEST, MANIFEST_FORMAT, Manifest,
    Progress, README, RangeInfo, SIGNATURE, SUMMED, SUMS, ToolInfo, readme,
};
use crate::audit::checkpoint::{self, Checkpoint};
use crate::audit::{ZERO_HASH, row_hash_of, text_view, write_row_canonical, write_row_view};
use crate::crypto::signing::{SecretKey, sha256_hex};
use crate::error::Failure;
use crate::instance::Instance;
use crate::tarfile;

/// A writer that hashes and counts what goes through it, the hashing on a
/// thread of its own (a million events are hundreds of megabytes).
pub struct Hashing<W> {
    inner: W,
    chunk: Vec<u8>,
    to_hasher: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    hasher: Option<std::thread::JoinHandle<[u8; 32]>>,
    pub bytes: u64,
}

const HASH_CHUNK: usize = 1 << 20;

impl<W: Write> Hashing<W> {
    pub fn new(inner: W) -> Hashing<W> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let hasher = std::thread::spawn(move || {
            let mut sha = sha2::Sha256::new();
            for chunk in rx {
                sha.update(&chunk);
            }
            sha.finalize().into()
        });
        Hashing {
            inner,
            chunk: Vec::with_capacity(HASH_CHUNK),
            to_hasher: Some(tx),
            hasher: Some(hasher),
            bytes: 0,
        }
    }

    fn pass_on(&mut self) -> std::io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        self.inner.write_all(&self.chunk)?;
        let full = std::mem::replace(&mut self.chunk, Vec::with_capacity(HASH_CHUNK));
        if let Some(tx) = &self.to_hasher {
            tx.send(full)
                .map_err(|_| std::io::Error::other("the hashing thread stopped"))?;
        }
        Ok(())
    }

    /// The inner writer, and the SHA-256 (hex) and size of what was written.
    pub fn finish(mut self) -> std::io::Result<(W, String, u64)> {
        self.pass_on()?;
        drop(self.to_hasher.take());
        let digest = self
            .hasher
            .take()
            .map(|h| h.join())
            .transpose()
            .map_err(|_| std::io::Error::other("the hashing thread panicked"))?
            .unwrap_or_default();
        let bytes = self.bytes;
        Ok((self.inner, hex::encode(digest), bytes))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = HASH_CHUNK - self.chunk.len();
        let n = buf.len().min(room);
        self.chunk.extend_from_slice(&buf[..n]);
        self.bytes += n as u64;
        if self.chunk.len() == HASH_CHUNK {
            self.pass_on()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.pass_on()?;
        self.inner.flush()
    }
}

/// A file written to a temporary place, with its SHA-256 and size.
struct Spooled {
    file: std::fs::File,
    sha256: String,
    size: u64,
}

impl Spooled {
    fn rewound(mut self) -> anyhow::Result<std::fs::File> {
        self.file.seek(SeekFrom::Start(0))?;
        Ok(self.file)
    }
}

/// The checkpoints of a range, chosen under the log's lock so that two exports
/// of the same range choose the same ones.
pub struct RangeCheckpoints {
    spooled: Spooled,
    count: u64,
}

/// Checkpoint the head (the checkpoint every export writes), then copy the
/// log's checkpoints with seqs in `first..=last`, in log order, up to the first
/// one past `last`. Under the lock, every checkpoint appended after this one
/// names a later seq, so a later export of the range chooses the same ones.
pub fn checkpoints_of_range(
    instance: &Instance,
    first: i64,
    last: i64,
    temp_dir: &Path,
) -> anyhow::Result<RangeCheckpoints> {
    let path = instance.checkpoints_path();
    let mut log = checkpoint::lock(&path)?;
    if let Some((seq, hash)) = instance.store.read(|tx| Ok(tx.audit_head()?))?
        && log.head().is_none_or(|c| c.seq < seq)
    {
        log.append(&instance.signer, &instance.id, seq, &hash)?;
    }
    let reader = std::io::BufReader::new(
        std::fs::File::open(&path).with_context(|| format!("cannot read `{}`", path.display()))?,
    );
    let file = tempfile::tempfile_in(temp_dir)
        .with_context(|| format!("cannot write into `{}`", temp_dir.display()))?;
    let mut out = Hashing::new(BufWriter::new(file));
    let mut count = 0u64;
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let cp: Checkpoint = serde_json::from_str(&line).map_err(|e| {
            anyhow::anyhow!(
                "`{}` line {} is not a checkpoint: {e}",
                path.display(),
                i + 1
            )
        })?;
        if cp.seq > last {
            break;
        }
        if cp.seq >= first {
            out.write_all(cp.to_line().as_bytes())?;
            out.write_all(b"\n")?;
            count += 1;
        }
    }
    drop(log);
    let (writer, sha256, size) = out.finish()?;
    let file = writer.into_inner().map_err(|e| e.into_error())?;
    Ok(RangeCheckpoints {
        spooled: Spooled { file, sha256, size },
        count,
    })
}

/// What the events of a range were found to be while they were written.
struct EventsSummary {
    count: u64,
    first_prev_hash: String,
    last_hash: String,
    first_time: String,
    last_time: String,
    /// The artifact the newest successful `artifact.apply` row up to the
    /// range's end applied: the newest in the range, else what the newest
    /// anchor carries (exact when the range starts right after it, as an
    /// archived range does).
    last_artifact_apply: Option<String>,
}

struct EventsWritten {
    spooled: Spooled,
    summary: EventsSummary,
}

/// Stream the rows `first..=last` into a temporary file, one canonical line
/// each, checking every link: a broken chain is never exported.
fn write_events(
    instance: &Instance,
    first: i64,
    last: i64,
    temp_dir: &Path,
    progress: &dyn Progress,
) -> anyhow::Result<EventsWritten> {
    let file = tempfile::tempfile_in(temp_dir)
        .with_context(|| format!("cannot write into `{}`", temp_dir.display()))?;
    let mut out = Hashing::new(BufWriter::with_capacity(1 << 20, file));
    let broken = |seq: i64, why: &str| -> anyhow::Error {
        Failure::verify(format!(
            "the audit chain is broken at seq {seq}: {why}; nothing was written"
        ))
        .with_hint("run `objectos audit verify` to see the whole chain's state")
        .into()
    };
    let summary = instance.store.scan(|tx| {
        let anchors = tx.audit_anchors()?;
        let archived_through = anchors.last().map(|a| a.last_seq).unwrap_or(0);
        if first <= archived_through {
            return Err(Failure::error(format!(
                "rows up to seq {archived_through} were archived and are no longer in the database"
            ))
            .with_hint(format!(
                "export from seq {} on; older rows are in the archives `audit archive` wrote",
                archived_through + 1
            ))
            .into());
        }
        // The hash the range must start from, taken from before the range.
        let mut prev = if first == archived_through + 1 {
            anchors
                .last()
                .map(|a| a.last_hash.clone())
                .unwrap_or_else(|| ZERO_HASH.to_string())
        } else {
            tx.audit_by_seq(first - 1)?
                .map(|r| r.hash)
                .ok_or_else(|| broken(first - 1, "the row is missing"))?
        };
        let first_prev_hash = prev.clone();
        let mut last_artifact_apply = None;
        let (mut first_time, mut last_time) = (String::new(), String::new());
        let mut expected = first;
        let mut body = Vec::with_capacity(1024);
        let mut line = Vec::with_capacity(1024);
        progress.begin(Some((last - first + 1) as u64), None);
        while expected <= last {
            let page = tx.audit_page_text(expected, 2000)?;
            if page.is_empty() {
                return Err(broken(expected, "the row is missing"));
            }
            for row in page.iter().take_while(|r| r.seq <= last) {
                if row.seq != expected {
                    return Err(broken(expected, "the row is missing"));
                }
                if row.prev_hash != prev {
                    return Err(broken(
                        row.seq,
                        "its prev_hash does not match the hash of the row before it",
                    ));
                }
                // The JSON columns as stored are the canonical text of an
                // intact row: its hash tells. Only when it does not is the row
                // read and written out again, as `audit verify` reads it.
                body.clear();
                let mut hash_at = write_row_view(&text_view(row), None, &mut body)?;
                if row_hash_of(&row.prev_hash, &body).as_deref() != Some(row.hash.as_str()) {
                    body.clear();
                    hash_at = write_row_canonical(&row.parse(), None, &mut body)?;
                    if row_hash_of(&row.prev_hash, &body).as_deref() != Some(row.hash.as_str()) {
                        return Err(broken(
                            row.seq,
                            "its content does not match its hash (the row was altered)",
                        ));
                    }
                }
                // The line is the body with the hash among its members.
                line.clear();
                line.extend_from_slice(&body[..hash_at]);
                line.extend_from_slice(b"\"hash\":\"");
                line.extend_from_slice(row.hash.as_bytes());
                line.extend_from_slice(b"\",");
                line.extend_from_slice(&body[hash_at..]);
                line.push(b'\n');
                out.write_all(&line)?;
                if row.seq == first {
                    first_time = row.time.clone();
                }
                if row.action == "artifact.apply" && row.outcome == "success" {
                    last_artifact_apply = row.record_id.clone();
                }
                last_time.clone_from(&row.time);
                prev.clone_from(&row.hash);
                expected += 1;
            }
            progress.advance((expected - first) as u64, out.bytes);
        }
        if last_artifact_apply.is_none() {
            last_artifact_apply = anchors.last().and_then(|a| a.last_artifact_apply.clone());
        }
        progress.end();
        Ok(EventsSummary {
            count: (last - first + 1) as u64,
            first_prev_hash,
            last_hash: prev,
            first_time,
            last_time,
            last_artifact_apply,
        })
    })?;
    let (writer, sha256, size) = out.finish()?;
    let file = writer.into_inner().map_err(|e| e.into_error())?;
    Ok(EventsWritten {
        spooled: Spooled { file, sha256, size },
        summary,
    })
}

/// What a written archive holds.
#[derive(Debug, Clone)]
pub struct Written {
    pub manifest: Manifest,
    /// The artifact the newest successful `artifact.apply` up to the range's end
    /// applied (what an anchor of the range carries).
    pub last_artifact_apply: Option<String>,
}

/// Write the archive of seqs `first..=last` as a tar into `out`, signed by
/// `signer` (or unsigned), with the checkpoints chosen by
/// [`checkpoints_of_range`]. Temporary files go in `temp_dir`.
pub fn write_tar(
    instance: &Instance,
    seqs: std::ops::RangeInclusive<i64>,
    signer: Option<&SecretKey>,
    checkpoints: RangeCheckpoints,
    temp_dir: &Path,
    out: &mut dyn Write,
    progress: &dyn Progress,
) -> anyhow::Result<Written> {
    let (first, last) = seqs.into_inner();
    let EventsWritten {
        spooled: events_file,
        summary: events,
    } = write_events(instance, first, last, temp_dir, progress)?;
    let retired = crate::instance::retired_signing_keys(&instance.dir)?;
    let mut manifest = Manifest {
        format: MANIFEST_FORMAT.to_string(),
        instance: InstanceInfo {
            id: instance.id.clone(),
            signing_key: KeyInfo::of(instance.signing_public()),
            retired_signing_keys: retired.iter().map(KeyInfo::of).collect(),
        },
        range: RangeInfo {
            first_seq: first,
            last_seq: last,
            first_time: events.first_time.clone(),
            last_time: events.last_time.clone(),
        },
        count: events.count,
        first_prev_hash: events.first_prev_hash.clone(),
        last_hash: events.last_hash.clone(),
        checkpoints: checkpoints.count,
        signer: signer.map(|s| KeyInfo::of(&s.public)),
        tool: ToolInfo {
            name: "objectos".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        files: Default::default(),
    };
    let readme = readme::text(&manifest);
    let info = |sha256: &str, size: u64| FileInfo {
        sha256: sha256.to_string(),
        size,
    };
    manifest.files.insert(
        README.into(),
        info(&sha256_hex(readme.as_bytes()), readme.len() as u64),
    );
    manifest.files.insert(
        CHECKPOINTS.into(),
        info(&checkpoints.spooled.sha256, checkpoints.spooled.size),
    );
    manifest
        .files
        .insert(EVENTS.into(), info(&events_file.sha256, events_file.size));
    let mut manifest_text = serde_json::to_string_pretty(&manifest)?;
    manifest_text.push('\n');
    let manifest_sha = sha256_hex(manifest_text.as_bytes());
    let mut sums = String::new();
    for name in SUMMED {
        let sha = match name {
            MANIFEST => manifest_sha.clone(),
            _ => manifest.files[name].sha256.clone(),
        };
        sums.push_str(&format!("{sha}  {name}\n"));
    }
    let signature = match signer {
        Some(key) => Some(key.sign_bytes(
            sums.as_bytes(),
            &format!(
                "timestamp:{}\tfile:{SUMS}\tinstance:{}\tseqs:{first}-{last}\tsha256:{}",
                crate::timefmt::now().unix_timestamp(),
                instance.id,
                sha256_hex(sums.as_bytes())
            ),
        )?),
        None => None,
    };
    // Every entry dated by the last event: the same for the same range.
    let mtime = crate::timefmt::parse_rfc3339(&events.last_time)
        .map(|t| t.unix_timestamp().max(0) as u64)
        .unwrap_or(0);
    let mut tar = tar::Builder::new(out);
    tarfile::append_bytes(&mut tar, README, readme.as_bytes(), 0o644, mtime)?;
    tarfile::append_bytes(&mut tar, SUMS, sums.as_bytes(), 0o644, mtime)?;
    if let Some(signature) = &signature {
        tarfile::append_bytes(&mut tar, SIGNATURE, signature.as_bytes(), 0o644, mtime)?;
    }
    let size = checkpoints.spooled.size;
    let file = checkpoints.spooled.rewound()?;
    tarfile::append_reader(&mut tar, CHECKPOINTS, file.take(size), size, 0o644, mtime)?;
    let size = events_file.size;
    let file = std::io::BufReader::with_capacity(1 << 20, events_file.rewound()?);
    tarfile::append_reader(&mut tar, EVENTS, file.take(size), size, 0o644, mtime)?;
    tarfile::append_bytes(&mut tar, MANIFEST, manifest_text.as_bytes(), 0o644, mtime)?;
    tar.finish()?;
    Ok(Written {
        manifest,
        last_artifact_apply: events.last_artifact_apply,
    })
}
