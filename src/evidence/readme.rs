//! `README.txt`: how an auditor verifies the archive with stock tools, step by
//! step. Its text depends only on the range and the keys, so exports of the same
//! range stay byte-identical.

use super::Manifest;

/// The README of an archive described by `manifest`.
pub fn text(manifest: &Manifest) -> String {
    let signer = match &manifest.signer {
        Some(key) if key.key_id == manifest.instance.signing_key.key_id => format!(
            "by the instance's signing key {} (`instance-signing.key.pub` in its data dir)",
            key.key_id
        ),
        Some(key) => format!(
            "by key {} (named with `--sign-key` when the archive was made)",
            key.key_id
        ),
        None => "by nobody: this archive was exported unsigned (`--no-sign`), so its origin cannot be verified".to_string(),
    };
    format!(
        r#"objectos audit archive
======================

This archive holds the audit events of objectos instance
{instance}, seqs {first} to {last} ({count} events, from
{first_time} to {last_time}).

Files
-----

manifest.json       the range, the number of events, the hash before the first
                    event (first_prev_hash) and of the last one (last_hash), the
                    instance's id and signing keys, the objectos version, and
                    the SHA-256 of every other file
events.jsonl        the events in seq order, one per line, each the canonical
                    JSON (RFC 8785) of the audit row with its hash
checkpoints.log     the instance's signed checkpoints that fall in the range
SHA256SUMS          the SHA-256 of the files above, in `sha256sum -c` format
SHA256SUMS.minisig  the minisign signature of SHA256SUMS, made {signer}
README.txt          this file

An archive never vouches for itself: the public key inside manifest.json tells
which key signed, not that the key is the right one. Get the public key from
the instance's operator through a channel you trust (compare its key id) or use
the key you checked the previous archive with.

Verify it with stock tools
--------------------------

1. Decrypt it, if it is encrypted (it then starts with `age-encryption.org`):

       age -d -i YOUR_IDENTITY -o archive.tar ARCHIVE

2. Extract it into an empty directory:

       mkdir evidence && tar -xf archive.tar -C evidence && cd evidence

3. Check the signature of SHA256SUMS with the key you trust:

       minisign -Vm SHA256SUMS -p instance-signing.key.pub

4. Check every file against SHA256SUMS:

       sha256sum -c SHA256SUMS

5. Check the hash chain. Each event's hash is

       SHA-256( prev_hash as 32 raw bytes || canonical JSON of the event without its "hash" member )

   its prev_hash is the hash of the event before it (the first one's is
   first_prev_hash in manifest.json), and seqs follow each other without a gap.
   The numbers in events.jsonl are already canonical, so this Python 3 script
   re-walks the chain exactly (run it in the extracted directory):

       import hashlib, json, sys

       class Num(str):
           pass

       def canon(v):
           if isinstance(v, dict):
               keys = sorted(v, key=lambda k: k.encode("utf-16-be"))
               return "{{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + canon(v[k]) for k in keys) + "}}"
           if isinstance(v, list):
               return "[" + ",".join(canon(x) for x in v) + "]"
           if isinstance(v, Num):
               return str(v)
           return json.dumps(v, ensure_ascii=False)

       manifest = json.load(open("manifest.json", encoding="utf-8"))
       prev, seq, n = manifest["first_prev_hash"], manifest["range"]["first_seq"], 0
       for n, line in enumerate(open("events.jsonl", encoding="utf-8"), 1):
           event = json.loads(line, parse_int=Num, parse_float=Num)
           claimed = event.pop("hash")
           digest = hashlib.sha256(bytes.fromhex(prev) + canon(event).encode("utf-8")).hexdigest()
           if int(event["seq"]) != seq or event["prev_hash"] != prev or digest != claimed:
               sys.exit("the chain breaks at seq %s (line %d)" % (event["seq"], n))
           prev, seq = claimed, seq + 1
       if prev != manifest["last_hash"] or n != manifest["count"]:
           sys.exit("the events do not end where manifest.json says")
       print("%d/%d events valid, last hash %s" % (n, manifest["count"], prev))

6. To check that this archive continues the previous one, compare its
   first_prev_hash with the previous archive's last_hash, and its first seq
   with the previous archive's last seq plus one.

Or all of it at once (decryption, the tar's entries, signature, checksums,
chain, checkpoints and continuity):

    objectos audit verify-archive ARCHIVE -p instance-signing.key.pub [-i YOUR_IDENTITY] [--after PREVIOUS_ARCHIVE]
"#,
        instance = manifest.instance.id,
        first = manifest.range.first_seq,
        last = manifest.range.last_seq,
        count = manifest.count,
        first_time = manifest.range.first_time,
        last_time = manifest.range.last_time,
    )
}
