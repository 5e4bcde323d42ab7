//! Walking the whole chain and checking it against the signed checkpoints.

use schemars::JsonSchema;
use serde::Serialize;

use crate::audit::checkpoint::Checkpoint;
use crate::audit::{ZERO_HASH, row_hash};
use crate::crypto::signing::PublicKey;
use crate::store::Store;

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
    pub checkpoints: usize,
    pub broken: Option<Broken>,
    /// Seqs of rows recording that the audit log's immutability guards had been
    /// dropped or altered behind objectos's back (and were put back)
    pub guards_restored_at: Vec<i64>,
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

/// Verify every row (in pages, memory flat) and every checkpoint.
/// `keys` are the instance's signing keys, the current one and any it retired
/// (`objectos instance rotate-keys`): each checkpoint names the one that signed it.
pub fn verify_chain(
    store: &Store,
    checkpoints: &[Checkpoint],
    keys: &[PublicKey],
    mut progress: impl FnMut(u64),
) -> anyhow::Result<ChainReport> {
    store.read(|tx| {
        // The chain starts at seq 1 from 32 zero bytes; nothing else is trusted as
        // a starting point.
        let (mut expected, mut prev) = (1i64, ZERO_HASH.to_string());
        let first_seq = tx.audit_first_seq()?;
        let mut broken: Option<Broken> = None;
        let mut rows = 0u64;
        let mut head: Option<(i64, String)> = None;
        let mut guards_restored_at = Vec::new();
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
                if broken.is_none() {
                    if row.seq != expected {
                        if row.seq > expected {
                            keep_first(&mut broken, expected, format!("row {expected} is missing (the next row is {})", row.seq));
                        } else {
                            keep_first(&mut broken, row.seq, format!("row {} comes before the chain's start at {expected}", row.seq));
                        }
                    } else if row.prev_hash != prev {
                        keep_first(&mut broken, row.seq, format!("its prev_hash does not match the hash of row {}", row.seq - 1));
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
        let head_seq = head.as_ref().map(|h| h.0);
        for cp in checkpoints {
            let Some(key) = keys.iter().find(|k| k.id.to_string() == cp.key_id) else {
                keep_first(&mut broken, cp.seq, format!("the checkpoint at seq {} is signed by key {}, which is not one of this instance's", cp.seq, cp.key_id));
                continue;
            };
            if let Err(why) = cp.verify(key) {
                keep_first(&mut broken, cp.seq, format!("the checkpoint at seq {} is not trustworthy: {why}", cp.seq));
                continue;
            }
            match tx.audit_by_seq(cp.seq)? {
                Some(row) if row.hash == cp.hash => {}
                Some(_) => keep_first(&mut broken, cp.seq, format!("the row differs from the signed checkpoint at seq {}", cp.seq)),
                None => {
                    let missing_from = head_seq.map(|h| h + 1).unwrap_or(1).min(cp.seq);
                    keep_first(
                        &mut broken,
                        missing_from,
                        format!("rows up to seq {} are missing: a signed checkpoint says they existed (the newest rows were cut off)", cp.seq),
                    );
                }
            }
        }
        if rows > 0 && checkpoints.is_empty() {
            keep_first(&mut broken, first_seq.unwrap_or(1), "no signed checkpoint vouches for the chain (the checkpoint log is missing or empty), so cut-off rows could not be told".into());
        }
        Ok(ChainReport {
            rows,
            first_seq,
            head_seq,
            head_hash: head.map(|h| h.1),
            checkpoints: checkpoints.len(),
            broken,
            guards_restored_at,
        })
    })
}
