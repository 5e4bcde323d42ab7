//! Signed checkpoints in `audit-checkpoints.log`, outside the database: a hash chain
//! cannot show that its newest rows were cut off; a signed (seq, hash) can.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::crypto::canonical;
use crate::crypto::signing::{PublicKey, SecretKey, SignatureFile, blake2b_512};
use crate::timefmt;

/// One line of the checkpoint log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checkpoint {
    pub instance: String,
    pub seq: i64,
    pub hash: String,
    pub time: String,
    pub key_id: String,
    /// A minisign signature (the `.minisig` text) over the JCS of the other fields
    /// but `key_id`.
    pub signature: String,
}

impl Checkpoint {
    fn message(instance: &str, seq: i64, hash: &str, time: &str) -> Vec<u8> {
        canonical::to_vec(&json!({ "instance": instance, "seq": seq, "hash": hash, "time": time }))
            .unwrap_or_default()
    }

    pub fn verify(&self, key: &PublicKey) -> Result<(), String> {
        let sig = SignatureFile::parse(&self.signature)
            .map_err(|e| format!("its signature is malformed: {e}"))?;
        let message = Checkpoint::message(&self.instance, self.seq, &self.hash, &self.time);
        sig.check(key, &blake2b_512(&message))
            .map_err(|e| format!("its signature does not verify: {e}"))
    }
}

/// Sign and append a checkpoint, flushed to disk before returning.
pub fn append(
    path: &Path,
    signer: &SecretKey,
    instance: &str,
    seq: i64,
    hash: &str,
) -> anyhow::Result<Checkpoint> {
    let time = timefmt::rfc3339_micros(timefmt::now());
    let message = Checkpoint::message(instance, seq, hash, &time);
    let signature = signer.sign_bytes(
        &message,
        &format!("objectos audit checkpoint instance:{instance} seq:{seq}"),
    )?;
    let cp = Checkpoint {
        instance: instance.to_string(),
        seq,
        hash: hash.to_string(),
        time,
        key_id: signer.public.id.to_string(),
        signature,
    };
    let mut line = canonical::to_vec(&cp)?;
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open `{}`", path.display()))?;
    file.write_all(&line)
        .and_then(|_| file.sync_all())
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(cp)
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

/// The highest seq any checkpoint names.
pub fn last_seq(path: &Path) -> anyhow::Result<Option<i64>> {
    Ok(read_all(path)?.iter().map(|c| c.seq).max())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::signing::generate_keypair;

    #[test]
    fn checkpoints_verify_and_detect_edits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.log");
        let (sk_text, public) = generate_keypair(None).unwrap();
        let sk = SecretKey::load(&sk_text, None).unwrap();
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
        assert_eq!(last_seq(&path).unwrap(), Some(9));
    }
}
