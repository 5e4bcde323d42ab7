//! age encryption of whole files (backups, audit archives): recipients as
//! operators name them (`age1…`, `ssh-ed25519 …`, a recipients file), streaming
//! encryption, and decryption with identity files. The files are what stock
//! `age -d -i IDENTITY` reads, and `age -r`/`-R` writes.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::error::Failure;

/// A recipient a file is encrypted to.
pub type Recipient = Box<dyn age::Recipient + Send>;

/// An age recipient from its text: `age1…` or an `ssh-ed25519`/`ssh-rsa` key.
pub fn parse_recipient(text: &str) -> anyhow::Result<Recipient> {
    let text = text.trim();
    if let Ok(r) = text.parse::<age::x25519::Recipient>() {
        return Ok(Box::new(r));
    }
    if let Ok(r) = text.parse::<age::ssh::Recipient>() {
        return Ok(Box::new(r));
    }
    Err(Failure::error(format!(
        "`{text}` is not an age recipient (`age1…`) or an SSH public key"
    ))
    .into())
}

/// The recipients of a recipients file, as `age -R` reads one: one per line,
/// blank lines and `#` comments skipped.
pub fn read_recipients_file(path: &Path) -> anyhow::Result<Vec<Recipient>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the recipients file `{}`", path.display()))?;
    let recipients = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(n, l)| parse_recipient(l).with_context(|| format!("`{}` line {n}", path.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if recipients.is_empty() {
        return Err(Failure::error(format!(
            "the recipients file `{}` names no recipient",
            path.display()
        ))
        .into());
    }
    Ok(recipients)
}

/// Every recipient named on the command line (`--encrypt-to`) and in
/// recipients files (`-R`).
pub fn recipients(texts: &[String], files: &[PathBuf]) -> anyhow::Result<Vec<Recipient>> {
    let mut out = texts
        .iter()
        .map(|t| parse_recipient(t))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for file in files {
        out.extend(read_recipients_file(file)?);
    }
    Ok(out)
}

/// Encrypt everything written to the returned writer to `recipients`, into
/// `output`; call `finish` on it to write the last chunk.
pub fn encrypt_to<W: Write>(
    recipients: &[Recipient],
    output: W,
) -> anyhow::Result<age::stream::StreamWriter<W>> {
    let encryptor = age::Encryptor::with_recipients(
        recipients.iter().map(|r| r.as_ref() as &dyn age::Recipient),
    )
    .map_err(|e| anyhow::anyhow!("cannot encrypt: {e}"))?;
    Ok(encryptor.wrap_output(output)?)
}

/// Whether a file's first bytes are an age file's (binary or armored).
pub fn is_encrypted(head: &[u8]) -> bool {
    head.starts_with(b"age-encryption.org/v1")
        || head.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
}

/// The identities of identity files (`-i`), as `age -d -i` reads them.
pub fn read_identities(paths: &[PathBuf]) -> anyhow::Result<Vec<Box<dyn age::Identity>>> {
    let mut out: Vec<Box<dyn age::Identity>> = Vec::new();
    for path in paths {
        let file = age::IdentityFile::from_file(path.display().to_string())
            .with_context(|| format!("cannot read the identity `{}`", path.display()))?;
        out.extend(
            file.into_identities()
                .map_err(|e| anyhow::anyhow!("`{}`: {e}", path.display()))?,
        );
    }
    Ok(out)
}

/// What an encrypted file turned out to be when decrypting it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecryptProblem {
    /// It is not an age file at all.
    NotAge(String),
    /// None of the identities is a recipient of it.
    NoMatchingIdentity(String),
}

/// Decrypt an age stream with `identities`.
pub fn decrypt<R: Read + 'static>(
    input: R,
    identities: &[Box<dyn age::Identity>],
) -> Result<Box<dyn Read>, DecryptProblem> {
    let armored = age::armor::ArmoredReader::new(std::io::BufReader::new(input));
    let decryptor =
        age::Decryptor::new(armored).map_err(|e| DecryptProblem::NotAge(e.to_string()))?;
    let stream = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| DecryptProblem::NoMatchingIdentity(e.to_string()))?;
    Ok(Box::new(stream))
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn a_recipients_file_skips_comments_and_names_a_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let id = age::x25519::Identity::generate();
        let path = dir.path().join("r.txt");
        std::fs::write(&path, format!("# the auditors\n\n{}\n", id.to_public())).unwrap();
        assert_eq!(read_recipients_file(&path).unwrap().len(), 1);
        std::fs::write(&path, "# none\n").unwrap();
        assert!(read_recipients_file(&path).is_err());
        std::fs::write(&path, format!("{}\nnot-a-key\n", id.to_public())).unwrap();
        let err = format!("{:#}", read_recipients_file(&path).err().unwrap());
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn what_is_encrypted_decrypts_with_the_identity_only() {
        let id = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let recipients = vec![parse_recipient(&id.to_public().to_string()).unwrap()];
        let mut out = Vec::new();
        let mut w = encrypt_to(&recipients, &mut out).unwrap();
        w.write_all(b"evidence").unwrap();
        w.finish().unwrap();
        assert!(is_encrypted(&out));
        let key = |i: &age::x25519::Identity| -> Vec<Box<dyn age::Identity>> {
            vec![Box::new(
                i.to_string()
                    .expose_secret()
                    .parse::<age::x25519::Identity>()
                    .unwrap(),
            )]
        };
        let mut clear = String::new();
        decrypt(std::io::Cursor::new(out.clone()), &key(&id))
            .unwrap()
            .read_to_string(&mut clear)
            .unwrap();
        assert_eq!(clear, "evidence");
        assert!(matches!(
            decrypt(std::io::Cursor::new(out), &key(&other)),
            Err(DecryptProblem::NoMatchingIdentity(_))
        ));
        assert!(matches!(
            decrypt(std::io::Cursor::new(b"plain text".to_vec()), &key(&id)),
            Err(DecryptProblem::NotAge(_))
        ));
    }
}
