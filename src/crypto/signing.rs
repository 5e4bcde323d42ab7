//! minisign-compatible keys and signatures (Ed25519 over BLAKE2b-512, the "ED" format).
//!
//! Keys are generated and signatures made with the `minisign` crate, so the
//! `minisign` CLI reads every file written here. Verification is done here, on
//! the parsed parts, so that each way a signature can fail gets its own name,
//! and the artifact is read once for both BLAKE2b (the signature) and SHA-256
//! (the digest claim).

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature as Ed25519Signature, VerifyingKey};
use sha2::Digest;
use time::OffsetDateTime;

use crate::timefmt;

const SIG_ALG_PREHASHED: [u8; 2] = *b"ED";
const SIG_ALG_LEGACY: [u8; 2] = *b"Ed";
const KDF_NONE: [u8; 2] = [0, 0];
const TRUSTED_PREFIX: &str = "trusted comment: ";
const UNTRUSTED_PREFIX: &str = "untrusted comment: ";

/// A minisign key id, shown as minisign shows it: 16 upper-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl KeyId {
    /// Parse a key id as `Display` writes it.
    pub fn parse(text: &str) -> Option<KeyId> {
        if text.len() != 16 {
            return None;
        }
        let value = u64::from_str_radix(text, 16).ok()?;
        Some(KeyId(value.to_le_bytes()))
    }
}

/// A public key someone trusts to sign artifacts.
#[derive(Clone)]
pub struct PublicKey {
    pub id: KeyId,
    key: VerifyingKey,
    /// The base64 line of the `.pub` file, as minisign writes it.
    pub base64: String,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id)
    }
}

impl PublicKey {
    /// Parse a minisign public key: a `.pub` file's text, or its base64 line alone.
    pub fn parse(text: &str) -> Result<PublicKey, String> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with(UNTRUSTED_PREFIX))
            .ok_or("no key line (a minisign public key is one base64 line after its comment)")?;
        let bytes = BASE64
            .decode(line)
            .map_err(|_| "the key line is not base64".to_string())?;
        if bytes.len() != 42 {
            return Err(format!(
                "the key is {} bytes, a minisign public key is 42",
                bytes.len()
            ));
        }
        if bytes[0..2] != SIG_ALG_LEGACY {
            return Err("not an Ed25519 minisign key".into());
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&bytes[2..10]);
        let mut raw = [0u8; 32];
        raw.copy_from_slice(&bytes[10..42]);
        let key = VerifyingKey::from_bytes(&raw).map_err(|_| "not a valid Ed25519 point")?;
        Ok(PublicKey {
            id: KeyId(id),
            key,
            base64: line.to_string(),
        })
    }

    pub fn read(path: &Path) -> anyhow::Result<PublicKey> {
        let text = read_small_text(path, "public key")?;
        PublicKey::parse(&text).map_err(|reason| {
            anyhow::anyhow!(
                "`{}` is not a minisign public key: {reason}",
                path.display()
            )
        })
    }

    /// The `.pub` file's text, as `minisign -G` writes it.
    pub fn to_file_text(&self) -> String {
        format!(
            "{UNTRUSTED_PREFIX}minisign public key {}\n{}\n",
            self.id, self.base64
        )
    }
}

fn read_small_text(path: &Path, what: &str) -> anyhow::Result<String> {
    let meta =
        fs::metadata(path).with_context(|| format!("cannot read {what} `{}`", path.display()))?;
    if meta.len() > 64 * 1024 {
        anyhow::bail!(
            "`{}` is {} bytes, far too large for a {what}",
            path.display(),
            meta.len()
        );
    }
    let bytes =
        fs::read(path).with_context(|| format!("cannot read {what} `{}`", path.display()))?;
    String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("`{}` is not text, so not a {what}", path.display()))
}

/// A parsed `.minisig` file.
#[derive(Debug, Clone)]
pub struct SignatureFile {
    pub key_id: KeyId,
    pub prehashed: bool,
    signature: [u8; 64],
    /// The trusted comment without its `trusted comment: ` prefix.
    pub trusted_comment: String,
    global_signature: [u8; 64],
}

impl SignatureFile {
    pub fn parse(text: &str) -> Result<SignatureFile, String> {
        let mut lines = text.lines();
        let untrusted = lines.next().ok_or("the file is empty")?;
        if !untrusted.starts_with(UNTRUSTED_PREFIX) {
            return Err("the first line is not an `untrusted comment:` line".into());
        }
        let sig_line = lines.next().ok_or("the signature line is missing")?;
        let sig = BASE64
            .decode(sig_line.trim())
            .map_err(|_| "the signature line is not base64")?;
        if sig.len() != 74 {
            return Err(format!(
                "the signature is {} bytes, a minisign signature is 74",
                sig.len()
            ));
        }
        let prehashed = match [sig[0], sig[1]] {
            SIG_ALG_PREHASHED => true,
            SIG_ALG_LEGACY => false,
            _ => return Err("the signature algorithm is neither `ED` nor `Ed`".into()),
        };
        let trusted_line = lines.next().ok_or("the trusted comment line is missing")?;
        let trusted_comment = trusted_line
            .strip_prefix(TRUSTED_PREFIX)
            .ok_or("the third line is not a `trusted comment:` line")?
            .to_string();
        let global_line = lines
            .next()
            .ok_or("the trusted comment's signature line is missing")?;
        let global = BASE64
            .decode(global_line.trim())
            .map_err(|_| "the trusted comment's signature is not base64")?;
        if global.len() != 64 {
            return Err("the trusted comment's signature is not 64 bytes".into());
        }
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&sig[2..10]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&sig[10..74]);
        let mut global_signature = [0u8; 64];
        global_signature.copy_from_slice(&global);
        Ok(SignatureFile {
            key_id: KeyId(key_id),
            prehashed,
            signature,
            trusted_comment,
            global_signature,
        })
    }

    /// Check the signature over a BLAKE2b-512 prehash, then the trusted comment.
    pub fn check(&self, key: &PublicKey, prehash: &[u8; 64]) -> Result<(), SignatureProblem> {
        if self.key_id != key.id {
            return Err(SignatureProblem::WrongKey);
        }
        if !self.prehashed {
            return Err(SignatureProblem::Legacy);
        }
        let signature = Ed25519Signature::from_bytes(&self.signature);
        key.key
            .verify_strict(prehash, &signature)
            .map_err(|_| SignatureProblem::ContentMismatch)?;
        let mut global = Vec::with_capacity(64 + self.trusted_comment.len());
        global.extend_from_slice(&self.signature);
        global.extend_from_slice(self.trusted_comment.as_bytes());
        let global_signature = Ed25519Signature::from_bytes(&self.global_signature);
        key.key
            .verify_strict(&global, &global_signature)
            .map_err(|_| SignatureProblem::CommentAltered)?;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureProblem {
    WrongKey,
    Legacy,
    ContentMismatch,
    CommentAltered,
}

impl fmt::Display for SignatureProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignatureProblem::WrongKey => "the signature was made by another key",
            SignatureProblem::Legacy => {
                "legacy (non-prehashed) signatures are not accepted; sign with minisign 0.10 or later"
            }
            SignatureProblem::ContentMismatch => {
                "the artifact's bytes are not the bytes that were signed"
            }
            SignatureProblem::CommentAltered => {
                "the trusted comment was altered after signing"
            }
        })
    }
}

/// What objectos puts in (and reads from) a signature's trusted comment:
/// tab-separated `key:value` pairs, as minisign writes its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    pub timestamp: Option<i64>,
    pub file: Option<String>,
    pub id: Option<String>,
    pub version: Option<String>,
    pub sha256: Option<String>,
    pub expires: Option<OffsetDateTime>,
    /// Set when `expires:` was present but unreadable; that never verifies.
    pub malformed_expiry: Option<String>,
}

impl Claims {
    pub fn parse(comment: &str) -> Claims {
        let mut claims = Claims::default();
        for part in comment.split('\t') {
            let Some((key, value)) = part.split_once(':') else {
                continue;
            };
            match key {
                "timestamp" => claims.timestamp = value.parse().ok(),
                "file" => claims.file = Some(value.to_string()),
                "id" => claims.id = Some(value.to_string()),
                "version" => claims.version = Some(value.to_string()),
                "sha256" => claims.sha256 = Some(value.to_ascii_lowercase()),
                "expires" => match timefmt::parse_rfc3339(value) {
                    Some(at) => claims.expires = Some(at),
                    None => claims.malformed_expiry = Some(value.to_string()),
                },
                _ => {}
            }
        }
        claims
    }

    pub fn to_comment(&self) -> String {
        let mut parts = Vec::new();
        if let Some(ts) = self.timestamp {
            parts.push(format!("timestamp:{ts}"));
        }
        if let Some(file) = &self.file {
            parts.push(format!("file:{}", sanitize(file)));
        }
        if let Some(id) = &self.id {
            parts.push(format!("id:{}", sanitize(id)));
        }
        if let Some(version) = &self.version {
            parts.push(format!("version:{}", sanitize(version)));
        }
        if let Some(sha) = &self.sha256 {
            parts.push(format!("sha256:{sha}"));
        }
        if let Some(expires) = self.expires {
            parts.push(format!("expires:{}", timefmt::rfc3339(expires)));
        }
        parts.join("\t")
    }

    /// True when the comment carries objectos's claims (not a plain `minisign -S`).
    pub fn is_objectos(&self) -> bool {
        self.sha256.is_some()
    }
}

/// Tabs and line breaks would break the comment's structure.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect()
}

/// Digests of a file, read once.
#[derive(Debug, Clone)]
pub struct FileDigests {
    pub blake2b: [u8; 64],
    pub sha256: [u8; 32],
    pub size: u64,
}

impl FileDigests {
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// BLAKE2b-512 and SHA-256 of the pieces sent to it, in order, each hash on a
/// thread of its own; a short queue keeps the sender at most a few pieces
/// ahead of the slower hash.
struct Hashers<'scope, P> {
    to_blake: std::sync::mpsc::SyncSender<P>,
    to_sha: std::sync::mpsc::SyncSender<P>,
    blake: std::thread::ScopedJoinHandle<'scope, [u8; 64]>,
    sha: std::thread::ScopedJoinHandle<'scope, [u8; 32]>,
}

impl<'scope, P> Hashers<'scope, P>
where
    P: std::ops::Deref<Target: AsRef<[u8]>> + Clone + Send + 'scope,
{
    fn spawn<'env>(scope: &'scope std::thread::Scope<'scope, 'env>) -> Self {
        const QUEUE: usize = 4;
        let (to_blake, pieces) = std::sync::mpsc::sync_channel::<P>(QUEUE);
        let blake = scope.spawn(move || {
            let mut state = blake2b_simd::Params::new().hash_length(64).to_state();
            for piece in pieces {
                state.update((*piece).as_ref());
            }
            let mut out = [0u8; 64];
            out.copy_from_slice(state.finalize().as_bytes());
            out
        });
        let (to_sha, pieces) = std::sync::mpsc::sync_channel::<P>(QUEUE);
        let sha = scope.spawn(move || -> [u8; 32] {
            let mut state = sha2::Sha256::new();
            for piece in pieces {
                state.update((*piece).as_ref());
            }
            state.finalize().into()
        });
        Hashers {
            to_blake,
            to_sha,
            blake,
            sha,
        }
    }

    /// Hand the next piece to both hashes; false when a hashing thread is gone
    /// (it panicked, which [`Hashers::finish`] reports).
    fn send(&self, piece: P) -> bool {
        let blake = self.to_blake.send(piece.clone()).is_ok();
        blake && self.to_sha.send(piece).is_ok()
    }

    /// The two digests of everything sent.
    fn finish(self) -> anyhow::Result<([u8; 64], [u8; 32])> {
        let Hashers {
            to_blake,
            to_sha,
            blake,
            sha,
        } = self;
        drop((to_blake, to_sha));
        match (blake.join(), sha.join()) {
            (Ok(blake2b), Ok(sha256)) => Ok((blake2b, sha256)),
            _ => Err(anyhow::anyhow!("a hashing thread panicked")),
        }
    }
}

/// BLAKE2b-512 and SHA-256 of a file in one read, each hash on a thread of its
/// own; memory stays flat whatever the file's size.
pub fn digest_file(path: &Path) -> anyhow::Result<FileDigests> {
    let mut file =
        fs::File::open(path).with_context(|| format!("cannot open `{}`", path.display()))?;
    const CHUNK: usize = 1 << 20;
    std::thread::scope(|scope| {
        let hashers = Hashers::spawn(scope);
        let mut size = 0u64;
        let read_result: anyhow::Result<()> = (|| {
            loop {
                let mut buf = vec![0u8; CHUNK];
                let mut filled = 0;
                while filled < CHUNK {
                    let n = file
                        .read(&mut buf[filled..])
                        .with_context(|| format!("cannot read `{}`", path.display()))?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    return Ok(());
                }
                buf.truncate(filled);
                size += filled as u64;
                let last = filled < CHUNK;
                if !hashers.send(Arc::new(buf)) || last {
                    return Ok(());
                }
            }
        })();
        let hashed = hashers.finish();
        read_result?;
        let (blake2b, sha256) = hashed?;
        Ok(FileDigests {
            blake2b,
            sha256,
            size,
        })
    })
}

/// Read a whole file of `size` bytes (as `metadata` said) into memory. A file
/// that is not that size (it changed while read) is an error, not the bytes of
/// something else.
pub fn read_sized(path: &Path, size: u64) -> anyhow::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let len = usize::try_from(size).context("the file is too large for memory")?;
    let file = fs::File::open(path).with_context(|| format!("cannot open `{}`", path.display()))?;
    let short = |e: std::io::Error| {
        anyhow::Error::new(e).context(format!(
            "cannot read `{}` (did it change while read?)",
            path.display()
        ))
    };
    // A large file is read in two halves at once: most of a read is the
    // kernel's work on fresh memory, which then runs on two cores.
    let bytes = if len >= PARALLEL_READ_FROM {
        // Asked for at least `FRESH_FROM` zero bytes, the allocator maps
        // fresh memory, which the system hands out zeroed, and writes none
        // of it: each half is first touched by its own read. Below that size
        // the allocator (mimalloc) may carve the block out of memory it has
        // used before and zero all of it first, on this one thread (perf on
        // the verify of an 8 MB artifact: a few milliseconds of page clearing
        // under `memset` before any read began). The rest of the block stays
        // address space only, never touched.
        let mut bytes = vec![0u8; len.max(FRESH_FROM)];
        bytes.truncate(len);
        let (first, second) = bytes.split_at_mut(len / 2);
        let offset = first.len() as u64;
        std::thread::scope(|scope| {
            let other = scope.spawn(|| file.read_exact_at(second, offset));
            let mine = file.read_exact_at(first, 0);
            let theirs = other
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            mine.and(theirs)
        })
        .map_err(short)?;
        bytes
    } else {
        let mut bytes = vec![0u8; len];
        file.read_exact_at(&mut bytes, 0).map_err(short)?;
        bytes
    };
    let mut probe = [0u8; 1];
    if file
        .read_at(&mut probe, size)
        .with_context(|| format!("cannot read `{}`", path.display()))?
        != 0
    {
        anyhow::bail!("`{}` grew while it was read", path.display());
    }
    Ok(bytes)
}

/// From this size on, [`read_sized`] reads in two halves at once.
const PARALLEL_READ_FROM: usize = 1 << 20;

/// What [`read_sized`] asks the allocator for at least, when it reads in two
/// halves: above mimalloc's largest "large" block (16 MiB), every block is
/// memory freshly mapped from the system.
const FRESH_FROM: usize = 17 << 20;

/// BLAKE2b-512 and SHA-256 of bytes in memory on the calling thread alone:
/// for small inputs, where a thread of its own costs more than it saves
/// (`verify` of a small artifact).
pub fn digest_on_one_thread(bytes: &[u8]) -> FileDigests {
    FileDigests {
        blake2b: blake2b_512(bytes),
        sha256: sha2::Sha256::digest(bytes).into(),
        size: bytes.len() as u64,
    }
}

/// BLAKE2b-512 and SHA-256 of bytes in memory, computed while `work` runs on
/// the calling thread: a second thread computes the BLAKE2b, and the SHA-256
/// is computed by whichever of the two is free first. So a long `work` (the
/// validation of a large artifact) has its thread to itself while the other
/// computes both, and a short one (an artifact refused at once) leaves the
/// two hashes on two threads.
pub fn digest_beside<T>(bytes: &[u8], work: impl FnOnce() -> T) -> (FileDigests, T) {
    let sha256_taken = AtomicBool::new(false);
    let take_sha256 = || -> Option<[u8; 32]> {
        (!sha256_taken.swap(true, Ordering::AcqRel)).then(|| sha2::Sha256::digest(bytes).into())
    };
    std::thread::scope(|scope| {
        let hasher = scope.spawn(|| (blake2b_512(bytes), take_sha256()));
        let done = work();
        let ours = take_sha256();
        let (blake2b, theirs) = hasher
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        // Exactly one of the two took it; the fallback is never computed.
        let sha256 = ours
            .or(theirs)
            .unwrap_or_else(|| sha2::Sha256::digest(bytes).into());
        let digests = FileDigests {
            blake2b,
            sha256,
            size: bytes.len() as u64,
        };
        (digests, done)
    })
}

/// BLAKE2b-512 and SHA-256 of bytes in memory, the two hashes on two threads.
pub fn digest_bytes(bytes: &[u8]) -> FileDigests {
    digest_beside(bytes, || ()).0
}

/// A `--sha256` value: 64 hex digits (any case), as lowercase.
pub fn check_sha256(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!("`{text}` is not a SHA-256 (64 hex digits)"))
    }
}

/// SHA-256 of bytes in memory, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Generate a key pair. `password: None` leaves the secret key unencrypted.
/// Returns (secret key file text, public key).
pub fn generate_keypair(password: Option<String>) -> anyhow::Result<(String, PublicKey)> {
    let pair = match password {
        Some(password) => minisign::KeyPair::generate_encrypted_keypair(Some(password)),
        None => minisign::KeyPair::generate_unencrypted_keypair(),
    }
    .map_err(|e| anyhow::anyhow!("cannot generate a key pair: {e}"))?;
    let pk_text = pair
        .pk
        .to_box()
        .map_err(|e| anyhow::anyhow!("cannot encode the public key: {e}"))?
        .to_string();
    let sk_text = pair
        .sk
        .to_box(Some("objectos secret key"))
        .map_err(|e| anyhow::anyhow!("cannot encode the secret key: {e}"))?
        .to_string();
    let public = PublicKey::parse(&pk_text)
        .map_err(|e| anyhow::anyhow!("the generated public key does not parse: {e}"))?;
    Ok((sk_text, public))
}

/// A secret key loaded for signing.
pub struct SecretKey {
    inner: minisign::SecretKey,
    pub public: PublicKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.public.id)
    }
}

/// Whether a secret key file's text holds an encrypted key.
pub fn secret_key_is_encrypted(text: &str) -> anyhow::Result<bool> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with(UNTRUSTED_PREFIX))
        .ok_or_else(|| anyhow::anyhow!("no key line"))?;
    let bytes = BASE64
        .decode(line)
        .map_err(|_| anyhow::anyhow!("the key line is not base64"))?;
    if bytes.len() < 4 || bytes[0..2] != SIG_ALG_LEGACY {
        anyhow::bail!("not a minisign Ed25519 secret key");
    }
    Ok(bytes[2..4] != KDF_NONE)
}

// The layout of a minisign secret key: algorithms, KDF parameters, then the key
// id, the Ed25519 secret key (seed and public half) and a BLAKE2b-256 checksum of
// the algorithm, key id and key.
const SK_BYTES: usize = 158;
const SK_KEYNUM: std::ops::Range<usize> = 54..62;
const SK_SEED: std::ops::Range<usize> = 62..94;
const SK_PUBLIC: std::ops::Range<usize> = 94..126;
const SK_CHECKSUM: std::ops::Range<usize> = 126..158;

/// An unencrypted secret key's text, with the checksum the `minisign` crate checks.
///
/// The stock `minisign -G -W` (0.11) writes an unencrypted key with a checksum of
/// zeros, which the crate takes for corruption. Such a key is checked another way
/// instead: its public half must be the one its secret seed makes. Any other
/// key's text is returned as it is, for the crate to check.
fn with_unencrypted_checksum(text: &str) -> anyhow::Result<std::borrow::Cow<'_, str>> {
    let mut lines = text.lines();
    let (Some(comment), Some(line)) = (lines.next(), lines.next()) else {
        return Ok(text.into());
    };
    let Ok(mut bytes) = BASE64.decode(line.trim()) else {
        return Ok(text.into());
    };
    if bytes.len() != SK_BYTES
        || bytes[0..2] != SIG_ALG_LEGACY
        || bytes[2..4] != KDF_NONE
        || bytes[SK_CHECKSUM].iter().any(|b| *b != 0)
    {
        return Ok(text.into());
    }
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&bytes[SK_SEED]);
    let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    if public.as_bytes()[..] != bytes[SK_PUBLIC] {
        anyhow::bail!(
            "the secret key is corrupt: it has no checksum, and its public half is not the one its secret half makes"
        );
    }
    let checksum = blake2b_simd::Params::new()
        .hash_length(32)
        .to_state()
        .update(&bytes[0..2])
        .update(&bytes[SK_KEYNUM])
        .update(&bytes[SK_SEED.start..SK_PUBLIC.end])
        .finalize();
    bytes[SK_CHECKSUM].copy_from_slice(checksum.as_bytes());
    Ok(format!("{comment}\n{}\n", BASE64.encode(&bytes)).into())
}

impl SecretKey {
    /// Load a secret key from its file's text; `password` is needed when it is encrypted.
    pub fn load(text: &str, password: Option<String>) -> anyhow::Result<SecretKey> {
        let encrypted = secret_key_is_encrypted(text)?;
        let text = if encrypted {
            text.into()
        } else {
            with_unencrypted_checksum(text)?
        };
        let sk_box = minisign::SecretKeyBox::from_string(&text)
            .map_err(|e| anyhow::anyhow!("not a minisign secret key: {e}"))?;
        let inner = if encrypted {
            let password = password.ok_or_else(|| {
                anyhow::anyhow!("the secret key is encrypted and no password was given")
            })?;
            minisign::SecretKey::from_box(sk_box, Some(password)).map_err(|e| {
                crate::error::Failure::error(format!("cannot decrypt the secret key: {e}"))
                    .with_hint("check the password (or `--password-file`)")
            })?
        } else {
            minisign::SecretKey::from_unencrypted_box(sk_box)
                .map_err(|e| anyhow::anyhow!("the secret key is corrupt: {e}"))?
        };
        let pk = minisign::PublicKey::from_secret_key(&inner)
            .map_err(|e| anyhow::anyhow!("cannot derive the public key: {e}"))?;
        let pk_text = pk
            .to_box()
            .map_err(|e| anyhow::anyhow!("cannot encode the public key: {e}"))?
            .to_string();
        let public = PublicKey::parse(&pk_text).map_err(|e| anyhow::anyhow!(e))?;
        Ok(SecretKey { inner, public })
    }

    /// Sign a file's bytes (read as a stream) with a trusted comment.
    pub fn sign_file(&self, path: &Path, trusted_comment: &str) -> anyhow::Result<String> {
        let file =
            fs::File::open(path).with_context(|| format!("cannot open `{}`", path.display()))?;
        self.sign_reader(std::io::BufReader::new(file), trusted_comment)
    }

    pub fn sign_reader<R: Read>(&self, reader: R, trusted_comment: &str) -> anyhow::Result<String> {
        let pk = minisign::PublicKey::from_secret_key(&self.inner)
            .map_err(|e| anyhow::anyhow!("cannot derive the public key: {e}"))?;
        let untrusted = format!("signature from objectos secret key {}", self.public.id);
        let sig = minisign::sign(
            Some(&pk),
            &self.inner,
            reader,
            Some(trusted_comment),
            Some(&untrusted),
        )
        .map_err(|e| anyhow::anyhow!("cannot sign: {e}"))?;
        Ok(sig.to_string())
    }

    pub fn sign_bytes(&self, bytes: &[u8], trusted_comment: &str) -> anyhow::Result<String> {
        self.sign_reader(bytes, trusted_comment)
    }
}

/// BLAKE2b-512 of bytes in memory (minisign's prehash).
pub fn blake2b_512(bytes: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out.copy_from_slice(
        blake2b_simd::Params::new()
            .hash_length(64)
            .hash(bytes)
            .as_bytes(),
    );
    out
}

/// Write a file atomically (a temporary file in the same directory, then renamed),
/// with `mode` on Unix. `create_new` refuses to replace an existing file.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: Option<u32>,
    create_new: bool,
) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if create_new && path.exists() {
        return Err(
            crate::error::Failure::error(format!("`{}` already exists", path.display()))
                .with_hint("choose another path, or pass `--force` to replace it")
                .into(),
        );
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".objectos-")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot write into `{}`", dir.display()))?;
    #[cfg(unix)]
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set the mode of `{}`", tmp.path().display()))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    if create_new {
        tmp.persist_noclobber(path)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
    } else {
        tmp.persist(path)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_read_whole_only_at_the_size_it_was_said_to_be_and_hashed_alike_every_way() {
        let dir = tempfile::tempdir().unwrap();
        for len in [
            0usize,
            1,
            256 << 10,
            (256 << 10) + 1,
            (1 << 20) - 1,
            1 << 20,
            (3 << 20) + 17,
            FRESH_FROM + 3,
        ] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let path = dir.path().join(format!("f{len}"));
            std::fs::write(&path, &bytes).unwrap();
            let read = read_sized(&path, len as u64).unwrap();
            assert_eq!(read, bytes, "{len}");
            let digests = digest_on_one_thread(&read);
            let streamed = digest_file(&path).unwrap();
            let in_memory = digest_bytes(&read);
            // Beside work that outlasts both hashes (the other thread computes
            // both), and beside none (each thread computes one).
            let (beside_long, ()) = digest_beside(&read, || {
                std::thread::sleep(std::time::Duration::from_millis(20))
            });
            let (beside_short, ()) = digest_beside(&read, || ());
            for other in [&streamed, &in_memory, &beside_long, &beside_short] {
                assert_eq!(digests.blake2b, other.blake2b, "{len}");
                assert_eq!(digests.sha256, other.sha256, "{len}");
                assert_eq!(digests.size, other.size, "{len}");
            }
            assert_eq!(digests.sha256_hex(), sha256_hex(&bytes), "{len}");
        }
        // A file that is not the size it was said to be is an error, not the
        // bytes of something else.
        let path = dir.path().join("f1");
        let err = read_sized(&path, 2).unwrap_err().to_string();
        assert!(err.contains("change"), "{err}");
        let err = read_sized(&path, 0).unwrap_err().to_string();
        assert!(err.contains("grew"), "{err}");
    }

    fn keypair() -> (SecretKey, PublicKey) {
        let (sk_text, public) = generate_keypair(None).unwrap();
        let sk = SecretKey::load(&sk_text, None).unwrap();
        assert_eq!(sk.public.id, public.id);
        (sk, public)
    }

    #[test]
    fn a_signature_verifies_and_each_tampering_has_its_own_reason() {
        let (sk, public) = keypair();
        let data = b"{\"hello\":\"world\"}";
        let sig_text = sk.sign_bytes(data, "timestamp:1\tsha256:00").unwrap();
        let sig = SignatureFile::parse(&sig_text).unwrap();
        assert_eq!(sig.key_id, public.id);
        sig.check(&public, &blake2b_512(data)).unwrap();

        assert_eq!(
            sig.check(&public, &blake2b_512(b"{\"hello\":\"World\"}")),
            Err(SignatureProblem::ContentMismatch)
        );
        let mut edited = sig.clone();
        edited.trusted_comment.push('x');
        assert_eq!(
            edited.check(&public, &blake2b_512(data)),
            Err(SignatureProblem::CommentAltered)
        );
        let (_, other) = keypair();
        assert_eq!(
            sig.check(&other, &blake2b_512(data)),
            Err(SignatureProblem::WrongKey)
        );
    }

    #[test]
    fn encrypted_keys_need_their_password() {
        let (sk_text, public) = generate_keypair(Some("correct horse".into())).unwrap();
        assert!(secret_key_is_encrypted(&sk_text).unwrap());
        assert!(SecretKey::load(&sk_text, Some("wrong".into())).is_err());
        assert!(SecretKey::load(&sk_text, None).is_err());
        let sk = SecretKey::load(&sk_text, Some("correct horse".into())).unwrap();
        assert_eq!(sk.public.id, public.id);
    }

    /// A key's text with its key line's bytes changed by `edit`.
    fn edit_key(text: &str, edit: impl Fn(&mut Vec<u8>)) -> String {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let mut bytes = BASE64.decode(&lines[1]).unwrap();
        edit(&mut bytes);
        lines[1] = BASE64.encode(&bytes);
        lines.join("\n") + "\n"
    }

    #[test]
    fn an_unencrypted_key_without_a_checksum_loads_when_its_halves_match() {
        // What the stock `minisign -G -W` writes: the checksum left as zeros.
        let (sk_text, public) = generate_keypair(None).unwrap();
        let stock = edit_key(&sk_text, |b| b[SK_CHECKSUM].fill(0));
        let sk = SecretKey::load(&stock, None).unwrap();
        assert_eq!(sk.public.id, public.id);
        let data = b"signed with a stock minisign key";
        let sig = SignatureFile::parse(&sk.sign_bytes(data, "timestamp:1").unwrap()).unwrap();
        sig.check(&public, &blake2b_512(data)).unwrap();

        // Without the checksum, a damaged secret half is still found out.
        let damaged = edit_key(&stock, |b| b[SK_SEED.start] ^= 1);
        let err = SecretKey::load(&damaged, None).unwrap_err().to_string();
        assert!(err.contains("corrupt"), "{err}");
        // And a checksum that is there must match, as before.
        let wrong = edit_key(&sk_text, |b| b[SK_CHECKSUM.start] ^= 1);
        let err = SecretKey::load(&wrong, None).unwrap_err().to_string();
        assert!(err.contains("corrupt"), "{err}");
    }

    #[test]
    fn claims_round_trip_through_the_trusted_comment() {
        let claims = Claims {
            timestamp: Some(1_700_000_000),
            file: Some("objectstack.json".into()),
            id: Some("com.example.crm".into()),
            version: Some("1.2.0".into()),
            sha256: Some("ab".repeat(32)),
            expires: OffsetDateTime::from_unix_timestamp(1_800_000_000).ok(),
            malformed_expiry: None,
        };
        assert_eq!(Claims::parse(&claims.to_comment()), claims);
        let plain = Claims::parse("timestamp:1633700835\tfile:test\thashed");
        assert!(!plain.is_objectos());
    }

    #[test]
    fn malformed_signature_files_are_named() {
        for bad in [
            "",
            "hello",
            "untrusted comment: x\nnot base64!\n",
            "untrusted comment: x\nAAAA\ntrusted comment: t\nAAAA\n",
        ] {
            assert!(SignatureFile::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_ids_print_like_minisign_and_parse_back() {
        let id = KeyId([1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(id.to_string(), "0807060504030201");
        assert_eq!(KeyId::parse("0807060504030201"), Some(id));
    }
}
