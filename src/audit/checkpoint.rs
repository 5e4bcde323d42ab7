//! Signed checkpoints in `audit-checkpoints.log`, outside the database: a hash chain
//! cannot show that its newest rows were cut off; a signed (seq, hash) can.
//!
//! Each checkpoint names the one before it (`prev`, the SHA-256 of the previous
//! line's canonical JSON), so the log is a chain of its own: a line cannot be
//! dropped from its middle, and one checkpoint kept elsewhere (the journal
//! `serve` logs to, an auditor's archive) vouches for every line before it.
//! Several processes append (`serve`, every CLI command): each takes an
//! exclusive lock on the log and re-reads its last line before appending, so
//! the chain never forks. Lines written before checkpoints were chained carry
//! no `prev`; they are read as before, and the chain starts at the first line
//! that names its predecessor.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::ZERO_HASH;
use crate::crypto::canonical;
use crate::crypto::signing::{PublicKey, SecretKey, SignatureFile, blake2b_512, sha256_hex};
use crate::timefmt;

/// The `tracing` target each new checkpoint is logged under (one line on
/// stderr, which the journal keeps outside the data dir).
pub const LOG_TARGET: &str = "objectos::checkpoint";

/// One line of the checkpoint log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checkpoint {
    pub instance: String,
    pub seq: i64,
    pub hash: String,
    pub time: String,
    /// The SHA-256 of the previous checkpoint's line (its canonical JSON); 32
    /// zero bytes for the first. Absent from lines written before checkpoints
    /// were chained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
    pub key_id: String,
    /// A minisign signature (the `.minisig` text) over the JCS of the other fields
    /// but `key_id`.
    pub signature: String,
}

impl Checkpoint {
    fn message(instance: &str, seq: i64, hash: &str, time: &str, prev: Option<&str>) -> Vec<u8> {
        let doc = match prev {
            Some(prev) => {
                json!({ "instance": instance, "seq": seq, "hash": hash, "time": time, "prev": prev })
            }
            None => json!({ "instance": instance, "seq": seq, "hash": hash, "time": time }),
        };
        canonical::to_vec(&doc).unwrap_or_default()
    }

    pub fn verify(&self, key: &PublicKey) -> Result<(), String> {
        let sig = SignatureFile::parse(&self.signature)
            .map_err(|e| format!("its signature is malformed: {e}"))?;
        let message = Checkpoint::message(
            &self.instance,
            self.seq,
            &self.hash,
            &self.time,
            self.prev.as_deref(),
        );
        sig.check(key, &blake2b_512(&message))
            .map_err(|e| format!("its signature does not verify: {e}"))
    }

    /// The line as the log holds it (canonical JSON, no newline).
    pub fn to_line(&self) -> String {
        canonical::to_string(self).unwrap_or_default()
    }

    /// What the next checkpoint names as its `prev`.
    pub fn digest(&self) -> String {
        sha256_hex(self.to_line().as_bytes())
    }
}

/// The checkpoint log, locked: nobody else appends until it is dropped.
pub struct LockedLog {
    file: nix::fcntl::Flock<std::fs::File>,
    path: PathBuf,
    head: Option<Checkpoint>,
}

impl std::fmt::Debug for LockedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LockedLog({})", self.path.display())
    }
}

/// Lock the log (creating it if needed), waiting for any other writer, and read
/// its last line.
pub fn lock(path: &Path) -> anyhow::Result<LockedLog> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open `{}`", path.display()))?;
    let mut file = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow::anyhow!("cannot lock `{}`: {e}", path.display()))?;
    let head = read_last(&mut file, path)?;
    Ok(LockedLog {
        file,
        path: path.to_path_buf(),
        head,
    })
}

/// The last checkpoint of an open log, read from its end.
fn read_last(file: &mut std::fs::File, path: &Path) -> anyhow::Result<Option<Checkpoint>> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    // Lines are well under a kibibyte; read the tail, or the whole file when a
    // line is longer than the tail.
    let mut window = 64 * 1024u64;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut tail = Vec::with_capacity((len - start) as usize);
        Read::by_ref(file)
            .take(len - start)
            .read_to_end(&mut tail)?;
        if tail.last() != Some(&b'\n') {
            anyhow::bail!(
                "`{}` ends in an incomplete line (a write was cut short, or the log was edited); nothing was appended",
                path.display()
            );
        }
        let text = String::from_utf8_lossy(&tail);
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let last = lines.next_back();
        let whole = start == 0 || lines.next_back().is_some();
        match last {
            Some(line) if whole => {
                return serde_json::from_str::<Checkpoint>(line)
                    .map(Some)
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "the last line of `{}` is not a checkpoint ({e}); nothing was appended",
                            path.display()
                        )
                    });
            }
            None if start == 0 => return Ok(None),
            _ => window *= 4,
        }
    }
}

impl LockedLog {
    /// The newest checkpoint, as read under the lock.
    pub fn head(&self) -> Option<&Checkpoint> {
        self.head.as_ref()
    }

    /// Sign and append a checkpoint of (seq, hash) after the head, flushed to
    /// disk before returning, and log it.
    pub fn append(
        &mut self,
        signer: &SecretKey,
        instance: &str,
        seq: i64,
        hash: &str,
    ) -> anyhow::Result<Checkpoint> {
        let time = timefmt::rfc3339_micros(timefmt::now());
        let prev = self
            .head
            .as_ref()
            .map(Checkpoint::digest)
            .unwrap_or_else(|| ZERO_HASH.to_string());
        let message = Checkpoint::message(instance, seq, hash, &time, Some(&prev));
        let signature = signer.sign_bytes(
            &message,
            &format!("objectos audit checkpoint instance:{instance} seq:{seq}"),
        )?;
        let cp = Checkpoint {
            instance: instance.to_string(),
            seq,
            hash: hash.to_string(),
            time,
            prev: Some(prev),
            key_id: signer.public.id.to_string(),
            signature,
        };
        let line = cp.to_line();
        let mut bytes = line.clone().into_bytes();
        bytes.push(b'\n');
        self.file
            .write_all(&bytes)
            .and_then(|_| self.file.sync_all())
            .with_context(|| format!("cannot write `{}`", self.path.display()))?;
        tracing::info!(target: LOG_TARGET, checkpoint = %line, "audit checkpoint");
        self.head = Some(cp.clone());
        Ok(cp)
    }
}

/// Sign and append a checkpoint under the log's lock.
pub fn append(
    path: &Path,
    signer: &SecretKey,
    instance: &str,
    seq: i64,
    hash: &str,
) -> anyhow::Result<Checkpoint> {
    lock(path)?.append(signer, instance, seq, hash)
}

/// Every checkpoint in the log, in file order. A line that does not parse is an
/// error naming its line number (a damaged log is evidence of tampering).
pub fn read_all(path: &Path) -> anyhow::Result<Vec<Checkpoint>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot read `{}`", path.display())));
        }
    };
    parse_all(&text).map_err(|(line, e)| {
        anyhow::anyhow!("`{}` line {line} is not a checkpoint: {e}", path.display())
    })
}

pub fn parse_all(text: &str) -> Result<Vec<Checkpoint>, (usize, String)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str::<Checkpoint>(l).map_err(|e| (i + 1, e.to_string())))
        .collect()
}

/// Where the log's own chain breaks: the first checkpoint (by its position in
/// the log, from 0) that does not name the one before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub index: usize,
    pub seq: i64,
    pub reason: String,
}

/// Check that the log is one chain: from the first line that names its
/// predecessor on, every line names the line before it (the first line of the
/// log names 32 zero bytes). Lines from before chaining name none and are taken
/// as they are, but only before the chain starts.
pub fn check_chain(log: &[Checkpoint]) -> Result<(), ChainBreak> {
    let mut chained = false;
    for (i, cp) in log.iter().enumerate() {
        let line = i + 1;
        match &cp.prev {
            Some(prev) => {
                let expected = match i {
                    0 => ZERO_HASH.to_string(),
                    _ => log[i - 1].digest(),
                };
                if *prev != expected {
                    return Err(ChainBreak {
                        index: i,
                        seq: cp.seq,
                        reason: if i == 0 {
                            format!(
                                "line 1 of the checkpoint log (seq {}) names a predecessor the log does not hold: its first lines were cut",
                                cp.seq
                            )
                        } else {
                            format!(
                                "line {line} of the checkpoint log (seq {}) does not name line {i} as its predecessor: lines were removed, reordered or edited",
                                cp.seq
                            )
                        },
                    });
                }
                chained = true;
            }
            None if chained => {
                return Err(ChainBreak {
                    index: i,
                    seq: cp.seq,
                    reason: format!(
                        "line {line} of the checkpoint log (seq {}) names no predecessor after chained lines: it was forged or edited",
                        cp.seq
                    ),
                });
            }
            None => {}
        }
    }
    Ok(())
}

/// Checkpoints found in a copy kept outside the data dir: a checkpoint log, a
/// log of `serve` (its text or JSON lines: each checkpoint is logged as
/// `checkpoint={…}`), or the `checkpoints.log` of an unencrypted archive.
/// Lines that hold no checkpoint are skipped; a copy with none is an error.
pub fn read_outside(path: &Path) -> anyhow::Result<Vec<Checkpoint>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let text = if crate::tarfile::looks_like_tar(&bytes) {
        crate::tarfile::read_member(&bytes, "checkpoints.log", 256 << 20)
            .with_context(|| format!("`{}` is a tar but not a readable archive", path.display()))?
            .ok_or_else(|| {
                crate::error::Failure::error(format!(
                    "`{}` is a tar without a `checkpoints.log`",
                    path.display()
                ))
            })?
    } else if bytes.starts_with(b"age-encryption.org/")
        || bytes.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
    {
        return Err(
            crate::error::Failure::error(format!("`{}` is encrypted", path.display()))
                .with_hint(
                    "decrypt it first (`age -d -i IDENTITY -o archive.tar FILE`) and pass the tar",
                )
                .into(),
        );
    } else {
        bytes
    };
    let text = String::from_utf8_lossy(&text);
    let found = parse_outside(&text);
    if found.is_empty() {
        return Err(crate::error::Failure::error(format!(
            "`{}` holds no audit checkpoint",
            path.display()
        ))
        .with_hint("pass a copy of `audit-checkpoints.log`, a log of `objectos serve` (its `audit checkpoint` lines), or an archive")
        .into());
    }
    Ok(found)
}

/// Every checkpoint in a text, one per line at most, wherever in the line it is.
pub fn parse_outside(text: &str) -> Vec<Checkpoint> {
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Ok(cp) = serde_json::from_str::<Checkpoint>(line) {
            found.push(cp);
            continue;
        }
        // A JSON log line: the checkpoint is a field's text.
        if let Ok(serde_json::Value::Object(doc)) = serde_json::from_str::<serde_json::Value>(line)
        {
            let field = doc
                .get("fields")
                .and_then(|f| f.get("checkpoint"))
                .or_else(|| doc.get("checkpoint"))
                .and_then(|v| v.as_str());
            if let Some(cp) = field.and_then(|t| serde_json::from_str::<Checkpoint>(t).ok()) {
                found.push(cp);
            }
            continue;
        }
        // A text log line: `… checkpoint={…}`.
        let Some(at) = line.find("{\"") else { continue };
        let mut stream = serde_json::Deserializer::from_str(&line[at..]).into_iter::<Checkpoint>();
        if let Some(Ok(cp)) = stream.next() {
            found.push(cp);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::signing::generate_keypair;

    fn key() -> (SecretKey, PublicKey) {
        let (sk_text, public) = generate_keypair(None).unwrap();
        (SecretKey::load(&sk_text, None).unwrap(), public)
    }

    #[test]
    fn checkpoints_verify_and_detect_edits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.log");
        let (sk, public) = key();
        append(&path, &sk, "inst", 5, &"ab".repeat(32)).unwrap();
        append(&path, &sk, "inst", 9, &"cd".repeat(32)).unwrap();
        let all = read_all(&path).unwrap();
        assert_eq!(all.len(), 2);
        for cp in &all {
            cp.verify(&public).unwrap();
        }
        let mut forged = all[1].clone();
        forged.seq = 8;
        assert!(forged.verify(&public).is_err());
        // The predecessor is signed too.
        let mut unchained = all[1].clone();
        unchained.prev = None;
        assert!(unchained.verify(&public).is_err());
    }

    #[test]
    fn each_checkpoint_names_the_line_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.log");
        let (sk, _) = key();
        for seq in 1..=4 {
            append(&path, &sk, "inst", seq, &"ab".repeat(32)).unwrap();
        }
        let all = read_all(&path).unwrap();
        assert_eq!(all[0].prev.as_deref(), Some(ZERO_HASH));
        assert_eq!(all[2].prev, Some(all[1].digest()));
        check_chain(&all).unwrap();
        // A line removed from the middle, the first lines cut, two lines swapped.
        let mut cut = all.clone();
        cut.remove(1);
        assert_eq!(check_chain(&cut).unwrap_err().index, 1);
        assert_eq!(check_chain(&all[2..]).unwrap_err().index, 0);
        let mut swapped = all.clone();
        swapped.swap(1, 2);
        assert_eq!(check_chain(&swapped).unwrap_err().index, 1);
        // Cutting the newest lines leaves a valid chain: only a copy kept
        // elsewhere can tell (`verify --checkpoints`).
        check_chain(&all[..2]).unwrap();
    }

    #[test]
    fn an_old_unchained_log_reads_as_before_and_chaining_starts_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.log");
        let (sk, public) = key();
        // As objectos wrote checkpoints before they were chained.
        let old: Vec<Checkpoint> = (1..=2)
            .map(|seq| {
                let hash = "ef".repeat(32);
                let time = "2026-01-01T00:00:00.000000Z";
                let signature = sk
                    .sign_bytes(&Checkpoint::message("inst", seq, &hash, time, None), "c")
                    .unwrap();
                Checkpoint {
                    instance: "inst".into(),
                    seq,
                    hash,
                    time: time.into(),
                    prev: None,
                    key_id: sk.public.id.to_string(),
                    signature,
                }
            })
            .collect();
        let text: String = old.iter().map(|c| c.to_line() + "\n").collect();
        assert!(!text.contains("prev"));
        std::fs::write(&path, text).unwrap();
        append(&path, &sk, "inst", 3, &"ab".repeat(32)).unwrap();
        let all = read_all(&path).unwrap();
        for cp in &all {
            cp.verify(&public).unwrap();
        }
        assert_eq!(all[2].prev, Some(all[1].digest()));
        check_chain(&all).unwrap();
        // An unchained line after the chain started is forged.
        let mut forged = all.clone();
        forged.push(old[0].clone());
        assert_eq!(check_chain(&forged).unwrap_err().index, 3);
    }

    #[test]
    fn concurrent_appends_never_fork_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.log");
        let (sk, _) = key();
        let sk = std::sync::Arc::new(sk);
        std::thread::scope(|scope| {
            for t in 0..8 {
                let (path, sk) = (path.clone(), sk.clone());
                scope.spawn(move || {
                    for i in 0..10 {
                        append(&path, &sk, "inst", t * 100 + i, &"ab".repeat(32)).unwrap();
                    }
                });
            }
        });
        let all = read_all(&path).unwrap();
        assert_eq!(all.len(), 80);
        check_chain(&all).unwrap();
    }

    #[test]
    fn an_incomplete_last_line_is_not_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.log");
        let (sk, _) = key();
        append(&path, &sk, "inst", 1, &"ab".repeat(32)).unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.pop();
        std::fs::write(&path, &text).unwrap();
        let err = append(&path, &sk, "inst", 2, &"ab".repeat(32)).unwrap_err();
        assert!(err.to_string().contains("incomplete line"), "{err}");
    }

    #[test]
    fn checkpoints_are_found_in_text_and_json_logs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.log");
        let (sk, _) = key();
        let cp = append(&path, &sk, "inst", 7, &"ab".repeat(32)).unwrap();
        let line = cp.to_line();
        let text_log = format!(
            "2026-01-01T00:00:00Z  INFO listening addr=127.0.0.1:8080\n2026-01-01T00:00:01Z  INFO audit checkpoint checkpoint={line}\n"
        );
        assert_eq!(parse_outside(&text_log), vec![cp.clone()]);
        let json_log = format!(
            "{}\n",
            json!({"timestamp": "t", "level": "INFO", "fields": {"message": "audit checkpoint", "checkpoint": line}})
        );
        assert_eq!(parse_outside(&json_log), vec![cp.clone()]);
        assert_eq!(parse_outside(&format!("{line}\n")), vec![cp]);
        assert!(parse_outside("nothing here\n{\"a\": 1}\n").is_empty());
    }
}
