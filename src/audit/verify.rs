//! Walking the whole chain and checking it against the signed checkpoints.

use std::collections::{BTreeMap, HashSet};

use schemars::JsonSchema;
use serde::Serialize;

use crate::audit::checkpoint::{self, Checkpoint};
use crate::audit::{ZERO_HASH, row_hash};
use crate::crypto::signing::PublicKey;
use crate::store::{AuditAnchor, Store, Tx};

/// The action of the row `audit archive` writes in the transaction that
/// removes the rows it archived.
pub const ARCHIVE_ACTION: &str = "audit.archive";

#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq, Eq)]
pub struct Broken {
    /// The first seq that does not verify
    pub seq: i64,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ChainReport {
    pub rows: u64,
    pub first_seq: Option<i64>,
    pub head_seq: Option<i64>,
    pub head_hash: Option<String>,
    /// Checkpoints in the data dir's log
    pub checkpoints: usize,
    /// Checkpoints read from the copy kept elsewhere (`--checkpoints FILE`)
    pub outside_checkpoints: Option<usize>,
    /// Where the chain in the database starts, when older rows were archived
    /// (`audit archive`): the last archived seq and its hash
    pub archived: Option<Archived>,
    pub broken: Option<Broken>,
    /// Seqs of rows recording that the audit log's immutability guards had been
    /// dropped or altered behind objectos's back (and were put back)
    pub guards_restored_at: Vec<i64>,
}

#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq, Eq)]
pub struct Archived {
    /// How many `audit archive` runs moved rows out
    pub anchors: usize,
    /// Rows up to this seq are in archives, not in the database
    pub through_seq: i64,
    /// The hash of that row: the `prev_hash` the chain in the database starts from
    pub last_hash: String,
}

impl ChainReport {
    pub fn ok(&self) -> bool {
        self.broken.is_none()
    }
}

fn keep_first(broken: &mut Option<Broken>, seq: i64, reason: String) {
    if broken.as_ref().is_none_or(|b| seq < b.seq) {
        *broken = Some(Broken { seq, reason });
    }
}

/// The checkpoints a chain is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoints<'a> {
    /// The data dir's log, whole and in file order: its own chain is checked too.
    pub log: &'a [Checkpoint],
    /// Checkpoints from a copy kept outside the data dir, and where from: each
    /// must match the database and be in the log.
    pub outside: Option<(&'a str, &'a [Checkpoint])>,
}

impl<'a> Checkpoints<'a> {
    pub fn log(log: &'a [Checkpoint]) -> Checkpoints<'a> {
        Checkpoints { log, outside: None }
    }
}

/// Check the anchors against each other: each range starts where the one
/// before it ended, the first at seq 1 from 32 zero bytes.
fn check_anchors(anchors: &[AuditAnchor], broken: &mut Option<Broken>) {
    let mut expected = (1i64, ZERO_HASH.to_string());
    for a in anchors {
        if a.first_seq != expected.0 || a.first_prev_hash != expected.1 {
            keep_first(
                broken,
                a.first_seq,
                format!(
                    "the archive anchor of seqs {}..={} does not continue from the one before it",
                    a.first_seq, a.last_seq
                ),
            );
        }
        expected = (a.last_seq + 1, a.last_hash.clone());
    }
}

/// Whether a row is `audit archive`'s record of this anchor.
fn records_anchor(row: &crate::store::AuditRow, anchor: &AuditAnchor) -> bool {
    let Some(changes) = &row.changes else {
        return false;
    };
    row.action == ARCHIVE_ACTION
        && row.outcome == "success"
        && changes["first_seq"] == anchor.first_seq
        && changes["last_seq"] == anchor.last_seq
        && changes["last_hash"] == anchor.last_hash.as_str()
        && changes["archive_sha256"] == anchor.archive_sha256.as_str()
}

/// Check one checkpoint against the rows (or, for an archived seq, the anchor
/// that names it).
/// What checkpoints are checked against: the instance's keys, the archived
/// seqs' hashes (from the anchors), and the database's newest row.
struct Known<'a> {
    keys: &'a [PublicKey],
    archived: &'a BTreeMap<i64, String>,
    archived_through: i64,
    head_seq: Option<i64>,
}

fn check_checkpoint(
    tx: &mut dyn Tx,
    cp: &Checkpoint,
    known: &Known,
    whence: &str,
    broken: &mut Option<Broken>,
) -> anyhow::Result<()> {
    let Known {
        keys,
        archived,
        archived_through,
        head_seq,
    } = *known;
    let Some(key) = keys.iter().find(|k| k.id.to_string() == cp.key_id) else {
        keep_first(
            broken,
            cp.seq,
            format!(
                "the checkpoint at seq {}{whence} is signed by key {}, which is not one of this instance's",
                cp.seq, cp.key_id
            ),
        );
        return Ok(());
    };
    if let Err(why) = cp.verify(key) {
        keep_first(
            broken,
            cp.seq,
            format!(
                "the checkpoint at seq {}{whence} is not trustworthy: {why}",
                cp.seq
            ),
        );
        return Ok(());
    }
    if cp.seq <= archived_through {
        // In an archive: only an anchor's own last row can be checked here.
        if let Some(hash) = archived.get(&cp.seq)
            && *hash != cp.hash
        {
            keep_first(
                broken,
                cp.seq,
                format!(
                    "the archive anchor at seq {} differs from the signed checkpoint{whence}",
                    cp.seq
                ),
            );
        }
        return Ok(());
    }
    match tx.audit_by_seq(cp.seq)? {
        Some(row) if row.hash == cp.hash => {}
        Some(_) => keep_first(
            broken,
            cp.seq,
            format!(
                "the row differs from the signed checkpoint at seq {}{whence}",
                cp.seq
            ),
        ),
        None => {
            let missing_from = head_seq
                .map(|h| h + 1)
                .unwrap_or(archived_through + 1)
                .min(cp.seq);
            keep_first(
                broken,
                missing_from,
                format!(
                    "rows up to seq {} are missing: a signed checkpoint{whence} says they existed (the newest rows were cut off)",
                    cp.seq
                ),
            );
        }
    }
    Ok(())
}

/// Verify every row (in pages, memory flat) and every checkpoint.
/// `keys` are the instance's signing keys, the current one and any it retired
/// (`objectos instance rotate-keys`): each checkpoint names the one that signed it.
/// The chain starts at seq 1 from 32 zero bytes or, once older rows were
/// archived, from the newest anchor.
pub fn verify_chain(
    store: &Store,
    checkpoints: Checkpoints<'_>,
    keys: &[PublicKey],
    mut progress: impl FnMut(u64),
) -> anyhow::Result<ChainReport> {
    store.scan(|tx| {
        let anchors = tx.audit_anchors()?;
        let mut broken: Option<Broken> = None;
        check_anchors(&anchors, &mut broken);
        let (mut expected, mut prev) = match anchors.last() {
            Some(a) => (a.last_seq + 1, a.last_hash.clone()),
            None => (1i64, ZERO_HASH.to_string()),
        };
        let archived_through = expected - 1;
        let first_seq = tx.audit_first_seq()?;
        let mut rows = 0u64;
        let mut head: Option<(i64, String)> = None;
        let mut guards_restored_at = Vec::new();
        let mut newest_anchor_recorded = false;
        let mut from = first_seq.unwrap_or(expected).min(expected);
        loop {
            let page = tx.audit_page(from, 1000)?;
            if page.is_empty() {
                break;
            }
            for row in &page {
                rows += 1;
                if row.action == crate::instance::GUARDS_RESTORED {
                    guards_restored_at.push(row.seq);
                }
                if let Some(a) = anchors.last()
                    && records_anchor(row, a)
                {
                    newest_anchor_recorded = true;
                }
                if broken.is_none() {
                    if row.seq != expected {
                        if row.seq > expected {
                            keep_first(&mut broken, expected, format!("row {expected} is missing (the next row is {})", row.seq));
                        } else {
                            keep_first(&mut broken, row.seq, format!("row {} comes before the chain's start at {expected}", row.seq));
                        }
                    } else if row.prev_hash != prev {
                        keep_first(&mut broken, row.seq, if row.seq == archived_through + 1 && archived_through > 0 {
                            format!("its prev_hash does not match the hash of row {} that the archive anchor names", row.seq - 1)
                        } else {
                            format!("its prev_hash does not match the hash of row {}", row.seq - 1)
                        });
                    } else if row_hash(row).as_deref() != Some(row.hash.as_str()) {
                        keep_first(&mut broken, row.seq, "its content does not match its hash (the row was altered)".into());
                    }
                }
                expected = row.seq + 1;
                prev = row.hash.clone();
                head = Some((row.seq, row.hash.clone()));
            }
            from = page.last().map(|r| r.seq + 1).unwrap_or(from);
            progress(rows);
        }
        if let Some(a) = anchors.last()
            && !newest_anchor_recorded
        {
            keep_first(&mut broken, a.last_seq + 1, format!("rows up to seq {} were removed with an anchor, but no `{ARCHIVE_ACTION}` row records it (they were not archived by objectos)", a.last_seq));
        }
        let head_seq = head.as_ref().map(|h| h.0);
        let archived: BTreeMap<i64, String> = anchors
            .iter()
            .map(|a| (a.last_seq, a.last_hash.clone()))
            .collect();
        let known = Known {
            keys,
            archived: &archived,
            archived_through,
            head_seq,
        };
        if let Err(b) = checkpoint::check_chain(checkpoints.log) {
            keep_first(&mut broken, b.seq, b.reason);
        }
        for cp in checkpoints.log {
            check_checkpoint(tx, cp, &known, "", &mut broken)?;
        }
        let mut outside_count = None;
        if let Some((name, outside)) = checkpoints.outside {
            let whence = format!(" in `{name}`");
            let in_log: HashSet<String> = checkpoints.log.iter().map(Checkpoint::digest).collect();
            let instance = tx.meta_get("instance_id")?.unwrap_or_default();
            let mut count = 0;
            for cp in outside.iter().filter(|c| c.instance == instance) {
                count += 1;
                check_checkpoint(tx, cp, &known, &whence, &mut broken)?;
                if !in_log.contains(&cp.digest()) {
                    keep_first(&mut broken, cp.seq, format!("the signed checkpoint at seq {}{whence} is not in the data dir's checkpoint log: the log was cut or rewritten", cp.seq));
                }
            }
            if count == 0 {
                anyhow::bail!(crate::error::Failure::error(format!(
                    "`{name}` holds no checkpoint of this instance ({instance})"
                )));
            }
            outside_count = Some(count);
        }
        if rows > 0 && checkpoints.log.is_empty() {
            keep_first(&mut broken, first_seq.unwrap_or(1), "no signed checkpoint vouches for the chain (the checkpoint log is missing or empty), so cut-off rows could not be told".into());
        }
        Ok(ChainReport {
            rows,
            first_seq,
            head_seq,
            head_hash: head.map(|h| h.1),
            checkpoints: checkpoints.log.len(),
            outside_checkpoints: outside_count,
            archived: anchors.last().map(|a| Archived {
                anchors: anchors.len(),
                through_seq: a.last_seq,
                last_hash: a.last_hash.clone(),
            }),
            broken,
            guards_restored_at,
        })
    })
}
