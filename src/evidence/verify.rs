//! Verifying an archive offline, trusting nothing in it: the tar's entries are
//! checked before they are read, the signature against a key from outside the
//! archive (`-p`, or the previous archive `--after`), every checksum, the
//! manifest against what the files hold, the hash chain event by event, the
//! signed checkpoints against the events, and the continuity with the previous
//! archive. Every problem found is reported with a stable code; the first
//! broken seq is named with its reason. Events are streamed: memory stays flat.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::{
    CHECKPOINTS, EVENT_LINE_LIMIT, EVENTS, MANIFEST, MANIFEST_FORMAT, Manifest, Progress, README,
    SIGNATURE, SUMMED, SUMS, entry_limit,
};
use crate::audit::checkpoint::Checkpoint;
use crate::audit::write_row_canonical;
use crate::crypto::encryption::{self, DecryptProblem};
use crate::crypto::signing::{PublicKey, SignatureFile, SignatureProblem, blake2b_512};
use crate::store::AuditRow;
use crate::tarfile::{self, Checked, EntryProblem};

/// The stable codes of the problems an archive can have.
pub mod code {
    pub const NOT_AN_ARCHIVE: &str = "not_an_archive";
    pub const CANNOT_DECRYPT: &str = "cannot_decrypt";
    pub const UNSAFE_ENTRY: &str = "unsafe_entry";
    pub const UNEXPECTED_ENTRY: &str = "unexpected_entry";
    pub const TRUNCATED: &str = "truncated";
    pub const INCOMPLETE: &str = "incomplete";
    pub const UNSIGNED: &str = "unsigned";
    pub const ORIGIN_UNVERIFIED: &str = "origin_unverified";
    pub const UNTRUSTED_SIGNER: &str = "untrusted_signer";
    pub const BAD_SIGNATURE: &str = "bad_signature";
    pub const CHECKSUM_MISMATCH: &str = "checksum_mismatch";
    pub const MANIFEST_INVALID: &str = "manifest_invalid";
    pub const MANIFEST_MISMATCH: &str = "manifest_mismatch";
    pub const EVENT_INVALID: &str = "event_invalid";
    pub const EVENT_NOT_CANONICAL: &str = "event_not_canonical";
    pub const EVENT_ALTERED: &str = "event_altered";
    pub const EVENT_MISSING: &str = "event_missing";
    pub const EVENT_DUPLICATED: &str = "event_duplicated";
    pub const EVENTS_OUT_OF_ORDER: &str = "events_out_of_order";
    pub const PREV_HASH_MISMATCH: &str = "prev_hash_mismatch";
    pub const CHECKPOINT_INVALID: &str = "checkpoint_invalid";
    pub const CHECKPOINT_MISMATCH: &str = "checkpoint_mismatch";
    pub const OTHER_INSTANCE: &str = "other_instance";
    pub const GAP: &str = "gap";
    pub const OVERLAP: &str = "overlap";
    pub const DISCONTINUITY: &str = "discontinuity";
}

#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq, Eq)]
pub struct Problem {
    /// Stable: `checksum_mismatch`, `event_altered`, `origin_unverified`, …
    pub code: String,
    /// The seq it concerns, if one
    pub seq: Option<i64>,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq, Eq)]
pub struct Broken {
    /// The first seq that does not verify
    pub seq: i64,
    pub code: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SignatureStatus {
    /// Signed by a key from outside the archive
    Verified,
    /// Signed, but no key from outside the archive to check it against
    OriginUnverified,
    /// Signed by a key that is not the trusted one
    UntrustedKey,
    /// The signature does not verify
    Invalid,
    /// The archive carries no signature
    Unsigned,
}

#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq, Eq)]
pub struct SignatureCheck {
    pub status: SignatureStatus,
    /// The key that made the signature
    pub key_id: Option<String>,
    /// Where the trusted key came from (`-p FILE`, `--after FILE`)
    pub trusted_from: Option<String>,
}

/// `audit verify-archive --json`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ArchiveReport {
    pub ok: bool,
    pub file: String,
    pub encrypted: bool,
    pub instance_id: Option<String>,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    /// Events read from `events.jsonl`
    pub events: u64,
    /// Events before the first broken one
    pub events_valid: u64,
    /// Events the manifest says the archive holds
    pub events_expected: Option<u64>,
    pub first_prev_hash: Option<String>,
    pub last_hash: Option<String>,
    pub signature: SignatureCheck,
    /// Signed checkpoints in the archive, each checked against its event
    pub checkpoints: u64,
    /// Checkpoints of this instance from `--checkpoints FILE` that fall in the
    /// range, each checked against its event
    pub outside_checkpoints: Option<u64>,
    /// The previous archive this one continues (`--after`)
    pub after: Option<String>,
    /// The first seq that does not verify, and why
    pub broken: Option<Broken>,
    /// Every problem found, the most fundamental first
    pub problems: Vec<Problem>,
    /// Seqs of events recording that the audit table's immutability guards had
    /// been dropped behind objectos's back (and were put back)
    pub guards_restored_at: Vec<i64>,
    /// The manifest, when it could be read
    #[serde(skip)]
    pub manifest: Option<Manifest>,
}

/// A key the archive may be signed by, and where it came from.
#[derive(Debug, Clone)]
pub struct Trusted {
    pub key: PublicKey,
    pub from: String,
}

/// The archive this one must continue.
#[derive(Debug, Clone)]
pub struct Previous {
    pub name: String,
    pub manifest: Manifest,
}

/// What to verify an archive with.
#[derive(Default)]
pub struct Options {
    /// Keys it may be signed by; none means "origin unverified".
    pub trusted: Vec<Trusted>,
    /// Accept the signer the archive names itself (only for the archive an
    /// auditor already verified, given as `--after`).
    pub trust_own_signer: bool,
    pub identities: Vec<Box<dyn age::Identity>>,
    pub after: Option<Previous>,
    /// Checkpoints kept elsewhere (`--checkpoints FILE`), and where from.
    pub outside: Option<(String, Vec<Checkpoint>)>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("trusted", &self.trusted)
            .field("identities", &self.identities.len())
            .finish()
    }
}

/// One line of `events.jsonl`: exactly the members of a row and its hash.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventLine {
    seq: i64,
    id: String,
    time: String,
    actor: serde_json::Value,
    via: String,
    client: Option<serde_json::Value>,
    credential: Option<String>,
    action: String,
    object: Option<String>,
    record_id: Option<String>,
    changes: Option<serde_json::Value>,
    outcome: String,
    code: Option<String>,
    request_id: Option<String>,
    prev_hash: String,
    hash: String,
}

impl EventLine {
    fn into_row(self) -> AuditRow {
        AuditRow {
            seq: self.seq,
            id: self.id,
            time: self.time,
            actor: self.actor,
            via: self.via,
            client: self.client,
            credential: self.credential,
            action: self.action,
            object: self.object,
            record_id: self.record_id,
            changes: self.changes,
            outcome: self.outcome,
            code: self.code,
            request_id: self.request_id,
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}

/// A checkpoint's claim, as the walk over events checks it.
struct Claim {
    seq: i64,
    hash: String,
    /// Which list and which index in it.
    outside: bool,
    index: usize,
}

/// What the events turned out to hold.
#[derive(Default)]
struct Walked {
    count: u64,
    first_seq: Option<i64>,
    last_seq: Option<i64>,
    first_time: Option<String>,
    last_time: Option<String>,
    first_prev_hash: Option<String>,
    last_hash: Option<String>,
    broken: Option<(usize, Broken)>,
    sha256: String,
    size: u64,
    guards_restored_at: Vec<i64>,
    /// Per claim: `Some(true)` matched, `Some(false)` differed, `None` unseen.
    claims_seen: Vec<Option<bool>>,
    truncated: Option<String>,
}

/// The walk over `events.jsonl`, line by line.
struct Walker<'a> {
    claims: &'a [Claim],
    out: Walked,
    expected: Option<i64>,
    prev: Option<String>,
    last_seen: Option<i64>,
    /// The first break is a missing seq still waiting to be told apart from a
    /// reordering.
    missing: Option<i64>,
}

impl<'a> Walker<'a> {
    fn new(claims: &'a [Claim]) -> Walker<'a> {
        Walker {
            claims,
            out: Walked {
                claims_seen: vec![None; claims.len()],
                ..Walked::default()
            },
            expected: None,
            prev: None,
            last_seen: None,
            missing: None,
        }
    }

    fn break_at(&mut self, line: usize, seq: i64, code: &str, reason: String) {
        if self.out.broken.is_none() {
            self.out.broken = Some((
                line,
                Broken {
                    seq,
                    code: code.to_string(),
                    reason,
                },
            ));
        }
    }

    /// Take in one line's facts, in file order: the order of seqs, the links,
    /// and the checkpoints that name the seq.
    fn line(&mut self, n: usize, facts: LineFacts) {
        self.out.count += 1;
        let expected = self.expected;
        let facts = match facts {
            LineFacts::Event(facts) => facts,
            LineFacts::Invalid(why) => {
                let seq = expected.unwrap_or(0);
                self.break_at(
                    n,
                    seq,
                    code::EVENT_INVALID,
                    format!("line {n} of {EVENTS} is not an audit event: {why}"),
                );
                self.expected = expected.map(|s| s + 1);
                return;
            }
        };
        let seq = facts.seq;
        if self.out.first_seq.is_none() {
            self.out.first_seq = Some(seq);
            self.out.first_time = Some(facts.time.clone());
            self.out.first_prev_hash = Some(facts.prev_hash.clone());
        }
        if facts.guards_restored {
            self.out.guards_restored_at.push(seq);
        }
        // The order of seqs.
        if let Some(expected) = expected {
            if seq > expected {
                self.break_at(
                    n,
                    expected,
                    code::EVENT_MISSING,
                    format!("seq {expected} is missing (the next event is seq {seq})"),
                );
                if self
                    .out
                    .broken
                    .as_ref()
                    .is_some_and(|(_, b)| b.seq == expected)
                {
                    self.missing = Some(expected);
                }
            } else if seq < expected {
                if self.missing == Some(seq) {
                    // The missing seq came later: reordered, not removed.
                    if let Some((_, b)) = &mut self.out.broken {
                        b.code = code::EVENTS_OUT_OF_ORDER.to_string();
                        b.reason = format!(
                            "seq {seq} comes after seq {}: the events are out of order",
                            self.last_seen.unwrap_or(seq)
                        );
                    }
                    self.missing = None;
                } else if self.last_seen == Some(seq) {
                    self.break_at(
                        n,
                        seq,
                        code::EVENT_DUPLICATED,
                        format!("seq {seq} appears twice (the event was duplicated)"),
                    );
                } else {
                    self.break_at(
                        n,
                        seq,
                        code::EVENTS_OUT_OF_ORDER,
                        format!(
                            "seq {seq} comes after seq {}: the events are out of order",
                            self.last_seen.unwrap_or(seq)
                        ),
                    );
                }
            }
        }
        if let Err(why) = &facts.canonical {
            self.break_at(
                n,
                seq,
                code::EVENT_NOT_CANONICAL,
                format!("seq {seq}: {why}"),
            );
        }
        // The link to the event before it, then the event's own hash.
        if let Some(prev) = &self.prev
            && facts.prev_hash != *prev
            && seq == expected.unwrap_or(seq)
        {
            self.break_at(
                n,
                seq,
                code::PREV_HASH_MISMATCH,
                format!(
                    "seq {seq}: its prev_hash does not match the hash of seq {}",
                    seq - 1
                ),
            );
        }
        if !facts.hash_matches {
            self.break_at(
                n,
                seq,
                code::EVENT_ALTERED,
                format!("seq {seq}: its content does not match its hash (the event was altered)"),
            );
        }
        // The checkpoints that name this seq.
        let from = self.claims.partition_point(|c| c.seq < seq);
        for (i, claim) in self.claims.iter().enumerate().skip(from) {
            if claim.seq != seq {
                break;
            }
            let same = claim.hash == facts.hash;
            let seen = &mut self.out.claims_seen[i];
            *seen = Some(seen.unwrap_or(true) && same);
        }
        self.last_seen = Some(seq);
        self.out.last_seq = Some(seq);
        self.out.last_time = Some(facts.time);
        self.out.last_hash = Some(facts.hash.clone());
        self.prev = Some(facts.hash);
        self.expected = Some(expected.map_or(seq, |e| e.max(seq)) + 1);
    }

    /// Walk every line of `input`, hashing its bytes. Lines are examined in
    /// batches by two threads (each line's hash depends on it alone); their
    /// facts are then taken in, in order, here.
    fn walk(mut self, input: &mut dyn Read, progress: &dyn Progress) -> Walked {
        const BATCH_BYTES: usize = 1 << 20;
        const WORKERS: usize = 2;
        let mut reader = Hashing::new(BufReader::with_capacity(1 << 20, input));
        let mut n = 0usize;
        std::thread::scope(|scope| {
            let mut jobs = Vec::new();
            let mut results = Vec::new();
            for _ in 0..WORKERS {
                let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<Batch>(2);
                let (res_tx, res_rx) = std::sync::mpsc::sync_channel::<Vec<LineFacts>>(2);
                scope.spawn(move || {
                    let mut buf = Vec::with_capacity(1024);
                    for batch in job_rx {
                        let facts = batch.lines().map(|l| examine(l, &mut buf)).collect();
                        if res_tx.send(facts).is_err() {
                            break;
                        }
                    }
                });
                jobs.push(job_tx);
                results.push(res_rx);
            }
            // Batches in flight, oldest first: (worker, its first line's number).
            let mut in_flight: std::collections::VecDeque<(usize, usize)> = Default::default();
            let take_in = |walker: &mut Walker<'_>, worker: usize, first: usize| {
                if let Ok(facts) = results[worker].recv() {
                    for (i, f) in facts.into_iter().enumerate() {
                        walker.line(first + i, f);
                    }
                }
            };
            let mut next_worker = 0;
            let mut unterminated = None;
            loop {
                let mut batch = Batch::default();
                let first = n + 1;
                let mut done = false;
                while batch.data.len() < BATCH_BYTES {
                    let start = batch.data.len();
                    match read_line(&mut reader, &mut batch.data) {
                        Ok(0) => {
                            done = true;
                            break;
                        }
                        Ok(_) => {}
                        Err(e) => {
                            self.out.truncated = Some(e.to_string());
                            batch.data.truncate(start);
                            done = true;
                            break;
                        }
                    }
                    n += 1;
                    if batch.data.last() == Some(&b'\n') {
                        batch.data.pop();
                    } else {
                        unterminated = Some(n);
                    }
                    batch.ends.push(batch.data.len());
                }
                if !batch.ends.is_empty() {
                    if jobs[next_worker].send(batch).is_err() {
                        break;
                    }
                    in_flight.push_back((next_worker, first));
                    next_worker = (next_worker + 1) % WORKERS;
                }
                while in_flight.len() >= 2 * WORKERS || (done && !in_flight.is_empty()) {
                    if let Some((worker, first)) = in_flight.pop_front() {
                        take_in(&mut self, worker, first);
                    }
                }
                progress.advance(self.out.count, reader.bytes);
                if done {
                    break;
                }
            }
            drop(jobs);
            if let Some(line) = unterminated {
                self.break_at(
                    line,
                    self.expected.unwrap_or(0),
                    code::EVENT_INVALID,
                    format!(
                        "line {line} of {EVENTS} does not end with a newline (the file was cut)"
                    ),
                );
            }
        });
        let (sha, size) = reader.finish();
        self.out.sha256 = sha;
        self.out.size = size;
        self.out
    }
}

/// Lines of `events.jsonl`, examined together.
#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    /// Where each line ends (its newline dropped).
    ends: Vec<usize>,
}

impl Batch {
    fn lines(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let line = &self.data[start..end];
            start = end;
            line
        })
    }
}

/// What one line of `events.jsonl` holds.
enum LineFacts {
    Event(EventFacts),
    /// Not an audit event, and why.
    Invalid(String),
}

struct EventFacts {
    seq: i64,
    time: String,
    prev_hash: String,
    hash: String,
    guards_restored: bool,
    /// The line is the canonical JSON of the event it holds.
    canonical: Result<(), String>,
    /// Its hash is that of its content and `prev_hash`.
    hash_matches: bool,
}

/// Work out what one line holds, on its own.
fn examine(text: &[u8], buf: &mut Vec<u8>) -> LineFacts {
    let event = match serde_json::from_slice::<EventLine>(text) {
        Ok(event) => event.into_row(),
        Err(e) => return LineFacts::Invalid(e.to_string()),
    };
    buf.clear();
    let (canonical, hash_matches) = match write_row_canonical(&event, Some(&event.hash), buf) {
        Ok(hash_at) => {
            let canonical = if buf.as_slice() == text {
                Ok(())
            } else {
                Err("its line is not the canonical JSON (RFC 8785) of its event".to_string())
            };
            // The body is the line without its hash member.
            let member = event.hash.len() + "\"hash\":\"\",".len();
            let mut prev = [0u8; 32];
            let matches = hex::decode_to_slice(&event.prev_hash, &mut prev).is_ok() && {
                let mut sha = sha2::Sha256::new();
                sha.update(prev);
                sha.update(&buf[..hash_at]);
                sha.update(&buf[hash_at + member..]);
                hex::encode(sha.finalize()) == event.hash
            };
            (canonical, matches)
        }
        Err(e) => (
            Err(format!("its event cannot be written canonically: {e}")),
            false,
        ),
    };
    LineFacts::Event(EventFacts {
        seq: event.seq,
        guards_restored: event.action == crate::instance::GUARDS_RESTORED,
        time: event.time,
        prev_hash: event.prev_hash,
        hash: event.hash,
        canonical,
        hash_matches,
    })
}

/// Read one line (at most [`EVENT_LINE_LIMIT`] bytes) with its newline.
fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut limited = reader.take(EVENT_LINE_LIMIT as u64 + 1);
    let n = limited.read_until(b'\n', line)?;
    if n > EVENT_LINE_LIMIT {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a line of {EVENTS} is longer than {EVENT_LINE_LIMIT} bytes"),
        ));
    }
    Ok(n)
}

/// A reader that hashes and counts what is read through it.
struct Hashing<R> {
    inner: R,
    sha: sha2::Sha256,
    bytes: u64,
}

impl<R: BufRead> Hashing<R> {
    fn new(inner: R) -> Hashing<R> {
        Hashing {
            inner,
            sha: sha2::Sha256::new(),
            bytes: 0,
        }
    }

    fn finish(self) -> (String, u64) {
        (hex::encode(self.sha.finalize()), self.bytes)
    }
}

impl<R: BufRead> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Hashing<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        if let Ok(buf) = self.inner.fill_buf() {
            let amt = amt.min(buf.len());
            self.sha.update(&buf[..amt]);
            self.bytes += amt as u64;
        }
        self.inner.consume(amt);
    }
}

/// A small file of the archive, read whole.
struct Small {
    bytes: Vec<u8>,
    sha256: String,
}

/// The checkpoints of `checkpoints.log`, kept on disk until the manifest (the
/// last entry) names the keys that verify them.
struct CheckpointsFile {
    spool: std::fs::File,
    sha256: String,
    size: u64,
    claims: Vec<(i64, String)>,
    invalid: Option<String>,
}

fn spool_checkpoints(input: &mut dyn Read) -> std::io::Result<CheckpointsFile> {
    let mut spool = tempfile::tempfile()?;
    let mut reader = Hashing::new(BufReader::new(input));
    let mut writer = std::io::BufWriter::new(&mut spool);
    let mut claims = Vec::new();
    let mut invalid = None;
    let mut line = Vec::new();
    let mut n = 0;
    loop {
        line.clear();
        if read_line(&mut reader, &mut line)? == 0 {
            break;
        }
        n += 1;
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Checkpoint>(text.trim_end()) {
            Ok(cp) => claims.push((cp.seq, cp.hash.clone())),
            Err(e) => {
                invalid.get_or_insert(format!(
                    "line {n} of {CHECKPOINTS} is not a checkpoint: {e}"
                ));
            }
        }
        writer.write_all(text.trim_end().as_bytes())?;
        writer.write_all(b"\n")?;
    }
    writer.flush()?;
    drop(writer);
    let (sha256, size) = reader.finish();
    spool.seek(SeekFrom::Start(0))?;
    Ok(CheckpointsFile {
        spool,
        sha256,
        size,
        claims,
        invalid,
    })
}

fn problem(code: &str, seq: Option<i64>, message: impl Into<String>) -> Problem {
    Problem {
        code: code.to_string(),
        seq,
        message: message.into(),
    }
}

/// The report of an archive that could not be read past some point.
fn unreadable(file: &str, encrypted: bool, p: Problem) -> ArchiveReport {
    ArchiveReport {
        ok: false,
        file: file.to_string(),
        encrypted,
        instance_id: None,
        first_seq: None,
        last_seq: None,
        events: 0,
        events_valid: 0,
        events_expected: None,
        first_prev_hash: None,
        last_hash: None,
        signature: SignatureCheck {
            status: SignatureStatus::Invalid,
            key_id: None,
            trusted_from: None,
        },
        checkpoints: 0,
        outside_checkpoints: None,
        after: None,
        broken: None,
        problems: vec![p],
        guards_restored_at: Vec::new(),
        manifest: None,
    }
}

/// Verify the archive read from `input` (named `file` in the report).
///
/// An error is returned only for what stops reading before the archive itself
/// (an encrypted archive without an identity); everything about the archive is
/// in the report.
pub fn verify(
    input: Box<dyn Read>,
    file: &str,
    options: &Options,
    progress: &dyn Progress,
) -> anyhow::Result<ArchiveReport> {
    let mut input = BufReader::with_capacity(1 << 16, input);
    let head = input.fill_buf()?.to_vec();
    let encrypted = encryption::is_encrypted(&head);
    let reader: Box<dyn Read> = if encrypted {
        if options.identities.is_empty() {
            return Err(crate::error::Failure::error(format!("`{file}` is encrypted"))
                .with_hint("pass `-i IDENTITY`, an age identity file of a recipient it was encrypted to")
                .into());
        }
        match encryption::decrypt(input, &options.identities) {
            Ok(stream) => stream,
            Err(DecryptProblem::NotAge(e)) => {
                return Ok(unreadable(
                    file,
                    true,
                    problem(
                        code::NOT_AN_ARCHIVE,
                        None,
                        format!("`{file}` looks encrypted but is not a readable age file: {e}"),
                    ),
                ));
            }
            Err(DecryptProblem::NoMatchingIdentity(e)) => {
                return Ok(unreadable(
                    file,
                    true,
                    problem(
                        code::CANNOT_DECRYPT,
                        None,
                        format!(
                            "`{file}` cannot be decrypted with the identities given ({e}): it was encrypted to other recipients"
                        ),
                    ),
                ));
            }
        }
    } else {
        if !tarfile::looks_like_tar(&head) {
            return Ok(unreadable(
                file,
                false,
                problem(
                    code::NOT_AN_ARCHIVE,
                    None,
                    format!(
                        "`{file}` is not an audit archive: it is neither a tar nor an age-encrypted file"
                    ),
                ),
            ));
        }
        Box::new(input)
    };
    verify_tar(reader, file, encrypted, options, progress)
}

fn verify_tar(
    reader: Box<dyn Read>,
    file: &str,
    encrypted: bool,
    options: &Options,
    progress: &dyn Progress,
) -> anyhow::Result<ArchiveReport> {
    // Claims of the outside checkpoints are known before the archive is read.
    let outside: &[Checkpoint] = options
        .outside
        .as_ref()
        .map(|(_, c)| c.as_slice())
        .unwrap_or(&[]);
    let mut archive = tar::Archive::new(reader);
    let mut entries = tarfile::Entries::new();
    let rules = tarfile::Rules {
        dirs: &[],
        limit: &entry_limit,
    };
    let mut small: std::collections::BTreeMap<String, Small> = Default::default();
    let mut checkpoints: Option<CheckpointsFile> = None;
    let mut walked: Option<Walked> = None;
    let mut events_spool: Option<std::fs::File> = None;
    let mut problems: Vec<Problem> = Vec::new();
    let iter = match archive.entries() {
        Ok(iter) => iter,
        Err(e) => {
            return Ok(unreadable(
                file,
                encrypted,
                problem(
                    code::NOT_AN_ARCHIVE,
                    None,
                    format!("`{file}` is not a tar: {e}"),
                ),
            ));
        }
    };
    let mut seen_any = false;
    for entry in iter {
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                let p = if seen_any {
                    problem(
                        code::TRUNCATED,
                        None,
                        format!("the archive is truncated or damaged: {e}"),
                    )
                } else {
                    problem(
                        code::NOT_AN_ARCHIVE,
                        None,
                        format!("`{file}` is not a tar: {e}"),
                    )
                };
                problems.push(p);
                break;
            }
        };
        seen_any = true;
        let name = match entries.check(&entry, &rules) {
            Ok(Checked::File { name, .. }) => name,
            Ok(Checked::Dir(name)) => name,
            Err(e) => {
                let c = match e {
                    EntryProblem::Absolute(_)
                    | EntryProblem::ParentDir(_)
                    | EntryProblem::NotRegular { .. }
                    | EntryProblem::BadName => code::UNSAFE_ENTRY,
                    _ => code::UNEXPECTED_ENTRY,
                };
                problems.push(problem(
                    c,
                    None,
                    format!("the archive is unsafe to extract: {e}"),
                ));
                break;
            }
        };
        let size = entry.header().size().unwrap_or(0);
        let short = |read: u64| -> std::io::Result<()> {
            if read < size {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("it ends after {read} of its {size} bytes"),
                ));
            }
            Ok(())
        };
        let read_result: std::io::Result<()> = (|| {
            match name.as_str() {
                CHECKPOINTS => {
                    let spooled = spool_checkpoints(&mut entry)?;
                    short(spooled.size)?;
                    checkpoints = Some(spooled);
                    if let Some(mut spool) = events_spool.take() {
                        // The events came first: walk them now.
                        spool.seek(SeekFrom::Start(0))?;
                        let claims = claims_of(checkpoints.as_ref(), outside);
                        walked = Some(Walker::new(&claims).walk(&mut spool, progress));
                    }
                }
                EVENTS => {
                    progress.begin(None, entry.header().size().ok());
                    if checkpoints.is_some() {
                        let claims = claims_of(checkpoints.as_ref(), outside);
                        let w = Walker::new(&claims).walk(&mut entry, progress);
                        if let Some(e) = &w.truncated {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                e.clone(),
                            ));
                        }
                        short(w.size)?;
                        walked = Some(w);
                    } else {
                        let mut spool = tempfile::tempfile()?;
                        short(std::io::copy(&mut entry, &mut spool)?)?;
                        events_spool = Some(spool);
                    }
                    progress.end();
                }
                _ => {
                    let mut bytes = Vec::new();
                    entry.read_to_end(&mut bytes)?;
                    short(bytes.len() as u64)?;
                    let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
                    small.insert(name.clone(), Small { bytes, sha256 });
                }
            }
            Ok(())
        })();
        if let Err(e) = read_result {
            problems.push(problem(
                code::TRUNCATED,
                None,
                format!("the archive is truncated or damaged: `{name}` cannot be read whole: {e}"),
            ));
            break;
        }
    }
    if !seen_any && problems.is_empty() {
        return Ok(unreadable(
            file,
            encrypted,
            problem(
                code::NOT_AN_ARCHIVE,
                None,
                format!("`{file}` is not an audit archive: it holds no entry"),
            ),
        ));
    }
    if let Some(mut spool) = events_spool.take() {
        // No checkpoints.log at all: walk the events without claims to check.
        spool.seek(SeekFrom::Start(0))?;
        let claims = claims_of(None, outside);
        walked = Some(Walker::new(&claims).walk(&mut spool, progress));
    }
    let stopped = !problems.is_empty();
    if !stopped {
        for name in [README, SUMS, CHECKPOINTS, EVENTS, MANIFEST] {
            let present = match name {
                CHECKPOINTS => checkpoints.is_some(),
                EVENTS => walked.is_some(),
                _ => small.contains_key(name),
            };
            if !present {
                problems.push(problem(
                    code::INCOMPLETE,
                    None,
                    format!(
                        "the archive lacks `{name}` (it was truncated, or is not an audit archive)"
                    ),
                ));
            }
        }
    }
    let mut report = Assessment {
        file,
        encrypted,
        options,
        small: &small,
        checkpoints: checkpoints.as_mut(),
        walked: walked.as_ref(),
        problems,
    }
    .assess()?;
    if stopped {
        report.ok = false;
    }
    Ok(report)
}

/// Every checkpoint claim, sorted by seq.
fn claims_of(checkpoints: Option<&CheckpointsFile>, outside: &[Checkpoint]) -> Vec<Claim> {
    let mut claims: Vec<Claim> = checkpoints
        .map(|c| c.claims.as_slice())
        .unwrap_or(&[])
        .iter()
        .enumerate()
        .map(|(index, (seq, hash))| Claim {
            seq: *seq,
            hash: hash.clone(),
            outside: false,
            index,
        })
        .chain(outside.iter().enumerate().map(|(index, c)| Claim {
            seq: c.seq,
            hash: c.hash.clone(),
            outside: true,
            index,
        }))
        .collect();
    claims.sort_by_key(|c| c.seq);
    claims
}

/// Everything read; now judge it.
struct Assessment<'a> {
    file: &'a str,
    encrypted: bool,
    options: &'a Options,
    small: &'a std::collections::BTreeMap<String, Small>,
    checkpoints: Option<&'a mut CheckpointsFile>,
    walked: Option<&'a Walked>,
    problems: Vec<Problem>,
}

impl Assessment<'_> {
    fn assess(mut self) -> anyhow::Result<ArchiveReport> {
        let mut problems = std::mem::take(&mut self.problems);
        // The manifest, if it reads.
        let manifest: Option<Manifest> = match self.small.get(MANIFEST) {
            Some(m) => match serde_json::from_slice::<Manifest>(&m.bytes) {
                Ok(manifest) if manifest.format == MANIFEST_FORMAT => Some(manifest),
                Ok(manifest) => {
                    problems.push(problem(
                        code::MANIFEST_INVALID,
                        None,
                        format!(
                            "{MANIFEST} is of format `{}`, not `{MANIFEST_FORMAT}`",
                            manifest.format
                        ),
                    ));
                    None
                }
                Err(e) => {
                    problems.push(problem(
                        code::MANIFEST_INVALID,
                        None,
                        format!("{MANIFEST} is not an archive manifest: {e}"),
                    ));
                    None
                }
            },
            None => None,
        };
        // The signature, against keys from outside the archive.
        let signature = self.check_signature(manifest.as_ref(), &mut problems);
        // Every file against SHA256SUMS.
        self.check_sums(&mut problems);
        // The manifest against what the files hold.
        if let Some(m) = &manifest {
            self.check_manifest(m, &mut problems);
        }
        // The chain.
        let walked = self.walked;
        let broken = walked
            .and_then(|w| w.broken.as_ref())
            .map(|(_, b)| b.clone());
        if let Some(b) = &broken {
            problems.push(problem(&b.code, Some(b.seq), b.reason.clone()));
        }
        // The checkpoints.
        let (checkpoints, outside_checkpoints) =
            self.check_checkpoints(manifest.as_ref(), &mut problems)?;
        // Continuity with the previous archive.
        let after = self.check_after(manifest.as_ref(), &mut problems);
        problems.sort_by_key(|p| rank(&p.code));
        let events = walked.map(|w| w.count).unwrap_or(0);
        let events_valid = match walked.and_then(|w| w.broken.as_ref()) {
            Some((line, _)) => (*line as u64).saturating_sub(1),
            None => events,
        };
        let first_broken = problems
            .iter()
            .filter(|p| p.seq.is_some())
            .min_by_key(|p| p.seq)
            .and_then(|p| {
                Some(Broken {
                    seq: p.seq?,
                    code: p.code.clone(),
                    reason: p.message.clone(),
                })
            });
        let events_valid = match &first_broken {
            Some(b) if broken.as_ref().is_none_or(|c| b.seq < c.seq) => walked
                .and_then(|w| w.first_seq)
                .map(|first| (b.seq - first).max(0) as u64)
                .unwrap_or(0)
                .min(events_valid),
            _ => events_valid,
        };
        Ok(ArchiveReport {
            ok: problems.is_empty(),
            file: self.file.to_string(),
            encrypted: self.encrypted,
            instance_id: manifest.as_ref().map(|m| m.instance.id.clone()),
            first_seq: walked.and_then(|w| w.first_seq),
            last_seq: walked.and_then(|w| w.last_seq),
            events,
            events_valid,
            events_expected: manifest.as_ref().map(|m| m.count),
            first_prev_hash: walked.and_then(|w| w.first_prev_hash.clone()),
            last_hash: walked.and_then(|w| w.last_hash.clone()),
            signature,
            checkpoints,
            outside_checkpoints,
            after,
            broken: first_broken,
            problems,
            guards_restored_at: walked
                .map(|w| w.guards_restored_at.clone())
                .unwrap_or_default(),
            manifest,
        })
    }

    fn check_signature(
        &self,
        manifest: Option<&Manifest>,
        problems: &mut Vec<Problem>,
    ) -> SignatureCheck {
        let Some(sums) = self.small.get(SUMS) else {
            return SignatureCheck {
                status: SignatureStatus::Invalid,
                key_id: None,
                trusted_from: None,
            };
        };
        let Some(sig_file) = self.small.get(SIGNATURE) else {
            problems.push(problem(
                code::UNSIGNED,
                None,
                format!("origin unverified: the archive is not signed (it has no {SIGNATURE})"),
            ));
            return SignatureCheck {
                status: SignatureStatus::Unsigned,
                key_id: None,
                trusted_from: None,
            };
        };
        let parsed = std::str::from_utf8(&sig_file.bytes)
            .map_err(|_| "it is not text".to_string())
            .and_then(SignatureFile::parse);
        let sig = match parsed {
            Ok(sig) => sig,
            Err(e) => {
                problems.push(problem(
                    code::BAD_SIGNATURE,
                    None,
                    format!("{SIGNATURE} is not a minisign signature: {e}"),
                ));
                return SignatureCheck {
                    status: SignatureStatus::Invalid,
                    key_id: None,
                    trusted_from: None,
                };
            }
        };
        let key_id = Some(sig.key_id.to_string());
        let mut trusted: Vec<Trusted> = self.options.trusted.clone();
        if self.options.trust_own_signer
            && let Some(key) = manifest
                .and_then(|m| m.signer.as_ref())
                .and_then(|k| k.public_key().ok())
        {
            trusted.push(Trusted {
                key,
                from: "the archive itself (verified before)".into(),
            });
        }
        if trusted.is_empty() {
            problems.push(problem(code::ORIGIN_UNVERIFIED, None, format!(
                "origin unverified: nothing outside the archive vouches for key {} that signed it; the key inside an archive is no trust anchor",
                sig.key_id
            )));
            return SignatureCheck {
                status: SignatureStatus::OriginUnverified,
                key_id,
                trusted_from: None,
            };
        }
        let Some(t) = trusted.iter().find(|t| t.key.id == sig.key_id) else {
            let ids: Vec<String> = trusted
                .iter()
                .map(|t| format!("{} ({})", t.key.id, t.from))
                .collect();
            problems.push(problem(
                code::UNTRUSTED_SIGNER,
                None,
                format!(
                    "the archive is signed by key {}, not by a key you trust: {}",
                    sig.key_id,
                    ids.join(", ")
                ),
            ));
            return SignatureCheck {
                status: SignatureStatus::UntrustedKey,
                key_id,
                trusted_from: None,
            };
        };
        match sig.check(&t.key, &blake2b_512(&sums.bytes)) {
            Ok(()) => SignatureCheck {
                status: SignatureStatus::Verified,
                key_id,
                trusted_from: Some(t.from.clone()),
            },
            Err(why) => {
                let message = match why {
                    SignatureProblem::ContentMismatch => format!(
                        "{SUMS} is not what key {} signed (it was changed after signing, or the signature was edited)",
                        t.key.id
                    ),
                    SignatureProblem::CommentAltered => {
                        format!("the trusted comment of {SIGNATURE} was altered after signing")
                    }
                    other => format!("the signature does not verify: {other}"),
                };
                problems.push(problem(code::BAD_SIGNATURE, None, message));
                SignatureCheck {
                    status: SignatureStatus::Invalid,
                    key_id,
                    trusted_from: None,
                }
            }
        }
    }

    /// The SHA-256 of each file the archive holds, by name.
    fn digests(&self) -> std::collections::BTreeMap<&'static str, (String, u64)> {
        let mut out = std::collections::BTreeMap::new();
        for name in SUMMED {
            let found = match name {
                CHECKPOINTS => self
                    .checkpoints
                    .as_ref()
                    .map(|c| (c.sha256.clone(), c.size)),
                EVENTS => self.walked.map(|w| (w.sha256.clone(), w.size)),
                _ => self
                    .small
                    .get(name)
                    .map(|s| (s.sha256.clone(), s.bytes.len() as u64)),
            };
            if let Some(found) = found {
                out.insert(name, found);
            }
        }
        out
    }

    fn check_sums(&self, problems: &mut Vec<Problem>) {
        let Some(sums) = self.small.get(SUMS) else {
            return;
        };
        let digests = self.digests();
        let text = String::from_utf8_lossy(&sums.bytes);
        let mut listed = std::collections::BTreeSet::new();
        for (i, line) in text.lines().enumerate() {
            let parts = line.split_once("  ").or_else(|| line.split_once(" *"));
            let Some((sha, name)) = parts
                .filter(|(sha, _)| sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()))
            else {
                problems.push(problem(
                    code::CHECKSUM_MISMATCH,
                    None,
                    format!("{SUMS} line {} is not a `sha256sum` line", i + 1),
                ));
                continue;
            };
            if !SUMMED.contains(&name) {
                problems.push(problem(
                    code::CHECKSUM_MISMATCH,
                    None,
                    format!("{SUMS} lists `{name}`, which an archive does not hold"),
                ));
                continue;
            }
            listed.insert(name.to_string());
            if let Some((actual, _)) = digests.get(name)
                && !actual.eq_ignore_ascii_case(sha)
            {
                problems.push(problem(
                    code::CHECKSUM_MISMATCH,
                    None,
                    format!("`{name}` does not match its SHA-256 in {SUMS} (the file was changed)"),
                ));
            }
        }
        for name in SUMMED {
            if !listed.contains(name) && digests.contains_key(name) {
                problems.push(problem(
                    code::CHECKSUM_MISMATCH,
                    None,
                    format!("{SUMS} does not cover `{name}`"),
                ));
            }
        }
    }

    fn check_manifest(&self, m: &Manifest, problems: &mut Vec<Problem>) {
        let digests = self.digests();
        let mut mismatch = |what: String| {
            problems.push(problem(
                code::MANIFEST_MISMATCH,
                None,
                format!("{MANIFEST} {what}"),
            ))
        };
        for name in [README, CHECKPOINTS, EVENTS] {
            match (m.files.get(name), digests.get(name)) {
                (Some(info), Some((sha, size))) if info.sha256 == *sha && info.size == *size => {}
                (Some(_), Some(_)) => {
                    mismatch(format!("describes another `{name}` than the archive holds"))
                }
                (None, _) => mismatch(format!("does not list `{name}`")),
                _ => {}
            }
        }
        if let Some(extra) = m
            .files
            .keys()
            .find(|n| ![README, CHECKPOINTS, EVENTS].contains(&n.as_str()))
        {
            mismatch(format!("lists `{extra}`, which an archive does not hold"));
        }
        if let Some(w) = self.walked {
            if w.count != m.count {
                mismatch(format!(
                    "says the archive holds {} events; {EVENTS} holds {}",
                    m.count, w.count
                ));
            }
            if w.first_seq.is_some_and(|s| s != m.range.first_seq)
                || w.last_seq.is_some_and(|s| s != m.range.last_seq)
            {
                mismatch(format!(
                    "says the range is seqs {}..={}; the events are seqs {}..={}",
                    m.range.first_seq,
                    m.range.last_seq,
                    w.first_seq.unwrap_or(0),
                    w.last_seq.unwrap_or(0)
                ));
            }
            if w.first_prev_hash
                .as_deref()
                .is_some_and(|h| h != m.first_prev_hash)
            {
                mismatch("names another first_prev_hash than the first event's prev_hash".into());
            }
            if w.last_hash.as_deref().is_some_and(|h| h != m.last_hash) {
                mismatch("names another last_hash than the last event's hash".into());
            }
            if w.first_time
                .as_deref()
                .is_some_and(|t| t != m.range.first_time)
                || w.last_time
                    .as_deref()
                    .is_some_and(|t| t != m.range.last_time)
            {
                mismatch("names other times than the first and last events'".into());
            }
        }
        if let Some(c) = &self.checkpoints
            && c.claims.len() as u64 != m.checkpoints
        {
            mismatch(format!(
                "says the archive holds {} checkpoints; {CHECKPOINTS} holds {}",
                m.checkpoints,
                c.claims.len()
            ));
        }
        if let (Some(signer), Some(sig)) = (&m.signer, self.small.get(SIGNATURE))
            && let Ok(parsed) = SignatureFile::parse(&String::from_utf8_lossy(&sig.bytes))
            && parsed.key_id.to_string() != signer.key_id
        {
            mismatch(format!(
                "names key {} as the signer; the signature is by key {}",
                signer.key_id, parsed.key_id
            ));
        }
        if let Err(e) = m.instance.signing_key.public_key() {
            mismatch(format!("names a malformed instance signing key: {e}"));
        }
    }

    /// Check every checkpoint: the archive's (signed by the instance's keys the
    /// manifest names, each naming its event's hash, one chain) and those kept
    /// outside (`--checkpoints`).
    fn check_checkpoints(
        &mut self,
        manifest: Option<&Manifest>,
        problems: &mut Vec<Problem>,
    ) -> anyhow::Result<(u64, Option<u64>)> {
        let outside: &[Checkpoint] = self
            .options
            .outside
            .as_ref()
            .map(|(_, c)| c.as_slice())
            .unwrap_or(&[]);
        let claims = claims_of(self.checkpoints.as_deref(), outside);
        let walked = self.walked;
        let Some(m) = manifest else {
            return Ok((0, None));
        };
        let keys: Vec<PublicKey> = std::iter::once(&m.instance.signing_key)
            .chain(&m.instance.retired_signing_keys)
            .filter_map(|k| k.public_key().ok())
            .collect();
        let in_range = |seq: i64| seq >= m.range.first_seq && seq <= m.range.last_seq;
        // Whether each claim matched its event, by (outside, index).
        let seen = |outside: bool, index: usize| -> Option<bool> {
            let w = walked?;
            claims
                .iter()
                .position(|c| c.outside == outside && c.index == index)
                .and_then(|i| w.claims_seen.get(i).copied().flatten())
        };
        let check_one = |cp: &Checkpoint,
                         outside: bool,
                         index: usize,
                         whence: &str,
                         problems: &mut Vec<Problem>| {
            if cp.instance != m.instance.id {
                problems.push(problem(
                    code::CHECKPOINT_INVALID,
                    Some(cp.seq),
                    format!(
                        "the checkpoint at seq {}{whence} is of instance {}, not {}",
                        cp.seq, cp.instance, m.instance.id
                    ),
                ));
                return;
            }
            let Some(key) = keys.iter().find(|k| k.id.to_string() == cp.key_id) else {
                problems.push(problem(code::CHECKPOINT_INVALID, Some(cp.seq), format!("the checkpoint at seq {}{whence} is signed by key {}, not one of the instance's", cp.seq, cp.key_id)));
                return;
            };
            if let Err(why) = cp.verify(key) {
                problems.push(problem(
                    code::CHECKPOINT_INVALID,
                    Some(cp.seq),
                    format!(
                        "the checkpoint at seq {}{whence} is not trustworthy: {why}",
                        cp.seq
                    ),
                ));
                return;
            }
            match seen(outside, index) {
                Some(true) => {}
                Some(false) => problems.push(problem(code::CHECKPOINT_MISMATCH, Some(cp.seq), format!("seq {}: the event differs from the signed checkpoint{whence} (the event was altered)", cp.seq))),
                None if in_range(cp.seq) => problems.push(problem(code::CHECKPOINT_MISMATCH, Some(cp.seq), format!("seq {}: a signed checkpoint{whence} says the event exists, and the archive lacks it", cp.seq))),
                None if !outside => problems.push(problem(code::CHECKPOINT_INVALID, Some(cp.seq), format!("{CHECKPOINTS} holds a checkpoint at seq {}, outside the archive's range", cp.seq))),
                None => {}
            }
        };
        let mut count = 0u64;
        if let Some(c) = self.checkpoints.as_deref_mut() {
            if let Some(why) = &c.invalid {
                problems.push(problem(code::CHECKPOINT_INVALID, None, why.clone()));
            }
            c.spool.seek(SeekFrom::Start(0))?;
            let mut previous: Option<Checkpoint> = None;
            for (index, line) in BufReader::new(&mut c.spool).lines().enumerate() {
                let Ok(cp) = serde_json::from_str::<Checkpoint>(&line?) else {
                    continue;
                };
                check_one(&cp, false, index, "", problems);
                if let (Some(p), Some(prev)) = (&previous, &cp.prev)
                    && *prev != p.digest()
                {
                    problems.push(problem(code::CHECKPOINT_INVALID, Some(cp.seq), format!("the checkpoint at seq {} does not name the one before it in {CHECKPOINTS}: checkpoints were removed or reordered", cp.seq)));
                }
                previous = Some(cp);
                count += 1;
            }
        }
        let outside_count = self.options.outside.as_ref().map(|(name, list)| {
            let whence = format!(" in `{name}`");
            let mut n = 0u64;
            for (index, cp) in list.iter().enumerate() {
                if cp.instance == m.instance.id && in_range(cp.seq) {
                    check_one(cp, true, index, &whence, problems);
                    n += 1;
                }
            }
            n
        });
        Ok((count, outside_count))
    }

    fn check_after(
        &self,
        manifest: Option<&Manifest>,
        problems: &mut Vec<Problem>,
    ) -> Option<String> {
        let prev = self.options.after.as_ref()?;
        let m = manifest?;
        let p = &prev.manifest;
        if p.instance.id != m.instance.id {
            problems.push(problem(
                code::OTHER_INSTANCE,
                None,
                format!(
                    "the archive is of instance {}, the previous one (`{}`) of instance {}",
                    m.instance.id, prev.name, p.instance.id
                ),
            ));
            return Some(prev.name.clone());
        }
        let expected = p.range.last_seq + 1;
        if m.range.first_seq > expected {
            problems.push(problem(code::GAP, Some(expected), format!(
                "seqs {expected}..={} are in neither archive: `{}` ends at seq {} and this one starts at seq {}",
                m.range.first_seq - 1, prev.name, p.range.last_seq, m.range.first_seq
            )));
        } else if m.range.first_seq < expected {
            problems.push(problem(
                code::OVERLAP,
                Some(m.range.first_seq),
                format!(
                    "the archive starts at seq {}, inside `{}` (which ends at seq {})",
                    m.range.first_seq, prev.name, p.range.last_seq
                ),
            ));
        } else if m.first_prev_hash != p.last_hash {
            problems.push(problem(code::DISCONTINUITY, Some(m.range.first_seq), format!(
                "seq {}: its prev_hash is not the hash of the last event of `{}`: the archives are of different chains",
                m.range.first_seq, prev.name
            )));
        }
        Some(prev.name.clone())
    }
}

/// How fundamental a problem is: what makes the rest unreadable or untrusted
/// first, then what the bytes say, then what the chain says.
fn rank(c: &str) -> u8 {
    match c {
        code::NOT_AN_ARCHIVE | code::CANNOT_DECRYPT => 0,
        code::UNSAFE_ENTRY | code::UNEXPECTED_ENTRY => 1,
        code::TRUNCATED | code::INCOMPLETE => 2,
        code::OTHER_INSTANCE => 3,
        code::UNSIGNED | code::ORIGIN_UNVERIFIED | code::UNTRUSTED_SIGNER | code::BAD_SIGNATURE => {
            4
        }
        code::CHECKSUM_MISMATCH => 5,
        code::MANIFEST_INVALID | code::MANIFEST_MISMATCH => 6,
        code::GAP | code::OVERLAP | code::DISCONTINUITY => 8,
        _ => 7,
    }
}

/// What an archive says about itself, for `--after`: read and verified as an
/// archive the auditor verified before.
pub fn previous(
    input: Box<dyn Read>,
    name: &str,
    options: &Options,
) -> anyhow::Result<(Previous, Vec<Trusted>)> {
    let report = verify(input, name, options, &())?;
    if !report.ok {
        let first = report
            .problems
            .first()
            .map(|p| p.message.clone())
            .unwrap_or_default();
        return Err(crate::error::Failure::verify(format!(
            "the previous archive `{name}` does not verify: {first}"
        ))
        .with_hint("`--after` names an archive you verified before; verify it on its own first")
        .into());
    }
    let Some(manifest) = report.manifest else {
        anyhow::bail!("the previous archive `{name}` has no manifest");
    };
    let from = format!("--after {name}");
    let mut trusted = Vec::new();
    for info in manifest
        .signer
        .iter()
        .chain(std::iter::once(&manifest.instance.signing_key))
        .chain(&manifest.instance.retired_signing_keys)
    {
        if let Ok(key) = info.public_key()
            && !trusted.iter().any(|t: &Trusted| t.key.id == key.id)
        {
            trusted.push(Trusted {
                key,
                from: from.clone(),
            });
        }
    }
    Ok((
        Previous {
            name: name.to_string(),
            manifest,
        },
        trusted,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{ZERO_HASH, row_hash};
    use serde_json::json;

    /// `n` chained events, one canonical line each.
    fn events(n: i64) -> Vec<Vec<u8>> {
        let mut prev = ZERO_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let mut row = AuditRow {
                    seq,
                    id: format!("id-{seq}"),
                    time: "2026-01-01T00:00:00.000000Z".into(),
                    actor: json!({"email": "a@example.com", "user_id": "u"}),
                    via: "api".into(),
                    client: None,
                    credential: None,
                    action: "record.update".into(),
                    object: Some("crm_deal".into()),
                    record_id: Some(format!("r{seq}")),
                    changes: Some(json!({"amount": {"before": seq, "after": seq * 2}, "note": "x".repeat(400)})),
                    outcome: "success".into(),
                    code: None,
                    request_id: None,
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                row.hash = row_hash(&row).unwrap();
                prev = row.hash.clone();
                let mut line = Vec::new();
                write_row_canonical(&row, Some(&row.hash), &mut line).unwrap();
                line.push(b'\n');
                line
            })
            .collect()
    }

    fn walk(lines: &[Vec<u8>]) -> Walked {
        let bytes: Vec<u8> = lines.concat();
        Walker::new(&[]).walk(&mut std::io::Cursor::new(bytes), &())
    }

    /// Lines are examined in batches by two threads; what comes out is in file
    /// order all the same, across many batches.
    #[test]
    fn a_walk_over_many_batches_keeps_file_order() {
        let lines = events(9_000);
        let w = walk(&lines);
        assert_eq!(w.count, 9_000);
        assert!(w.broken.is_none());
        assert_eq!((w.first_seq, w.last_seq), (Some(1), Some(9_000)));
        assert!(w.size > 3 << 20, "several batches: {}", w.size);
        let mut swapped = lines.clone();
        swapped.swap(7_000, 7_001);
        let w = walk(&swapped);
        let (line, broken) = w.broken.unwrap();
        assert_eq!((line, broken.seq), (7_001, 7_001));
        assert_eq!(broken.code, code::EVENTS_OUT_OF_ORDER);
        let mut cut = lines.clone();
        cut[8_999].pop();
        let w = walk(&cut);
        assert_eq!(w.broken.unwrap().1.code, code::EVENT_INVALID);
    }
}
