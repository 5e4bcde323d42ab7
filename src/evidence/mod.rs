//! Audit evidence (docs/audit-evidence.md): archives of the audit log that an auditor takes
//! away and verifies offline without trusting objectos — written by `audit
//! export` ([`export`]), checked by `audit verify-archive` ([`verify`]), and
//! moved out of the database by `audit archive` ([`archive`]).
//!
//! An archive is a tar of, in this (sorted) order: `README.txt`, `SHA256SUMS`,
//! `SHA256SUMS.minisig` (absent when unsigned), `checkpoints.log`,
//! `events.jsonl`, `manifest.json`; optionally age-encrypted as a whole. Every
//! walk over events streams them, so memory stays flat however many there are.

pub mod archive;
pub mod export;
mod readme;
pub mod verify;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::store::{TimeBound, Tx};
use crate::timefmt;

pub const MANIFEST_FORMAT: &str = "objectos.audit-archive/1";
pub const README: &str = "README.txt";
pub const SUMS: &str = "SHA256SUMS";
pub const SIGNATURE: &str = "SHA256SUMS.minisig";
pub const CHECKPOINTS: &str = "checkpoints.log";
pub const EVENTS: &str = "events.jsonl";
pub const MANIFEST: &str = "manifest.json";

/// The files `SHA256SUMS` covers, in the order it lists them.
pub const SUMMED: [&str; 4] = [README, CHECKPOINTS, EVENTS, MANIFEST];

/// The largest entries an archive may hold (an event line is bounded apart).
pub const SMALL_FILE_LIMIT: u64 = 1 << 20;
pub const CHECKPOINTS_LIMIT: u64 = 256 << 20;
pub const EVENTS_LIMIT: u64 = 1 << 40;
/// The longest line of `events.jsonl`: one audit row.
pub const EVENT_LINE_LIMIT: usize = 64 << 20;

/// The size limit of each file an archive may hold; `None`: not one of them.
pub fn entry_limit(name: &str) -> Option<u64> {
    match name {
        README | SUMS | SIGNATURE | MANIFEST => Some(SMALL_FILE_LIMIT),
        CHECKPOINTS => Some(CHECKPOINTS_LIMIT),
        EVENTS => Some(EVENTS_LIMIT),
        _ => None,
    }
}

/// `manifest.json`: what the archive holds, covered by `SHA256SUMS` and so by
/// its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `objectos.audit-archive/1`
    pub format: String,
    pub instance: InstanceInfo,
    pub range: RangeInfo,
    /// How many events `events.jsonl` holds
    pub count: u64,
    /// The `prev_hash` of the first event: the hash of the event before the
    /// range (32 zero bytes before seq 1)
    pub first_prev_hash: String,
    /// The hash of the last event
    pub last_hash: String,
    /// How many signed checkpoints `checkpoints.log` holds
    pub checkpoints: u64,
    /// The key that signed `SHA256SUMS` (absent when unsigned). Informative only:
    /// an archive never vouches for itself
    pub signer: Option<KeyInfo>,
    pub tool: ToolInfo,
    /// Every other file the archive holds, by name
    pub files: BTreeMap<String, FileInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceInfo {
    pub id: String,
    /// The instance's signing key, which signs its checkpoints
    pub signing_key: KeyInfo,
    /// Signing keys a key rotation retired (older checkpoints name them)
    pub retired_signing_keys: Vec<KeyInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyInfo {
    pub key_id: String,
    /// The base64 line of the minisign public key
    pub public_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RangeInfo {
    pub first_seq: i64,
    pub last_seq: i64,
    pub first_time: String,
    pub last_time: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileInfo {
    pub sha256: String,
    pub size: u64,
}

impl KeyInfo {
    pub fn of(key: &crate::crypto::signing::PublicKey) -> KeyInfo {
        KeyInfo {
            key_id: key.id.to_string(),
            public_key: key.base64.clone(),
        }
    }

    pub fn public_key(&self) -> Result<crate::crypto::signing::PublicKey, String> {
        let key = crate::crypto::signing::PublicKey::parse(&self.public_key)?;
        if key.id.to_string() != self.key_id {
            return Err(format!(
                "key {} is listed under another id ({})",
                key.id, self.key_id
            ));
        }
        Ok(key)
    }
}

/// A point of the log as operators name it: a seq, a time, or a whole day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Seq(i64),
    Time(OffsetDateTime),
    Date(time::Date),
}

impl Point {
    pub fn parse(text: &str) -> Result<Point, String> {
        let text = text.trim();
        if let Ok(seq) = text.parse::<i64>() {
            return if seq >= 1 {
                Ok(Point::Seq(seq))
            } else {
                Err(format!("`{text}` is not a seq (seqs start at 1)"))
            };
        }
        if let Some(at) = timefmt::parse_rfc3339(text) {
            return Ok(Point::Time(at));
        }
        let day = time::macros::format_description!("[year]-[month]-[day]");
        if let Ok(date) = time::Date::parse(text, &day) {
            return Ok(Point::Date(date));
        }
        Err(format!(
            "`{text}` is neither a seq (`1200`), an RFC 3339 time (`2026-01-31T12:00:00Z`) nor a date (`2026-01-31`)"
        ))
    }
}

/// A time as rows store it, for comparing with theirs.
fn row_time(at: OffsetDateTime) -> String {
    timefmt::rfc3339_micros(at)
}

fn day_start(date: time::Date) -> OffsetDateTime {
    date.midnight().assume_utc()
}

/// The first seq of a range starting at `point` (`--from`).
pub fn resolve_from(tx: &mut dyn Tx, point: Point) -> anyhow::Result<Option<i64>> {
    Ok(match point {
        Point::Seq(seq) => Some(seq),
        Point::Time(at) => tx.audit_seq_by_time(&row_time(at), TimeBound::FirstAtOrAfter)?,
        Point::Date(d) => {
            tx.audit_seq_by_time(&row_time(day_start(d)), TimeBound::FirstAtOrAfter)?
        }
    })
}

/// The last seq of a range ending at `point`, inclusive (`--to`; a date
/// includes its whole day).
pub fn resolve_to(tx: &mut dyn Tx, point: Point) -> anyhow::Result<Option<i64>> {
    Ok(match point {
        Point::Seq(seq) => Some(seq),
        Point::Time(at) => tx.audit_seq_by_time(&row_time(at), TimeBound::LastAtOrBefore)?,
        Point::Date(d) => match d.next_day() {
            Some(next) => {
                tx.audit_seq_by_time(&row_time(day_start(next)), TimeBound::LastBefore)?
            }
            None => tx.audit_head()?.map(|h| h.0),
        },
    })
}

/// The last seq before `point`, exclusive (`--before`).
pub fn resolve_before(tx: &mut dyn Tx, point: Point) -> anyhow::Result<Option<i64>> {
    Ok(match point {
        Point::Seq(seq) => Some(seq - 1).filter(|s| *s >= 1),
        Point::Time(at) => tx.audit_seq_by_time(&row_time(at), TimeBound::LastBefore)?,
        Point::Date(d) => tx.audit_seq_by_time(&row_time(day_start(d)), TimeBound::LastBefore)?,
    })
}

/// Progress of a long walk over events, for a bar on a terminal.
pub trait Progress {
    /// The walk begins: `events` when the count is known, else the bytes to read.
    fn begin(&self, _events: Option<u64>, _bytes: Option<u64>) {}
    /// So many events (and bytes of them) done.
    fn advance(&self, _events: u64, _bytes: u64) {}
    fn end(&self) {}
}

/// No bar.
impl Progress for () {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_seqs_times_or_days() {
        assert_eq!(Point::parse("12"), Ok(Point::Seq(12)));
        assert!(Point::parse("0").is_err());
        assert!(matches!(
            Point::parse("2026-01-31T12:00:00Z"),
            Ok(Point::Time(_))
        ));
        assert!(matches!(Point::parse("2026-01-31"), Ok(Point::Date(_))));
        assert!(Point::parse("yesterday").is_err());
    }
}
