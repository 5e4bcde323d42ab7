//! Tar archives as objectos writes and reads them (backups, audit archives):
//! entries written reproducibly (GNU headers, uid/gid 0, a fixed mtime), and
//! entries of an archive from outside checked before a byte of them is used
//! (a safe relative path, a regular file, once, of a name and size expected).

use std::collections::BTreeSet;
use std::io::{Read, Write};

use anyhow::Context;

/// A regular file's header: the same bytes for the same name, size, mode and
/// mtime on any machine.
fn header(size: u64, mode: u32, mtime: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(mode);
    header.set_mtime(mtime);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    header
}

/// Add a file from memory.
pub fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
    mode: u32,
    mtime: u64,
) -> anyhow::Result<()> {
    let mut header = header(bytes.len() as u64, mode, mtime);
    tar.append_data(&mut header, name, bytes)
        .with_context(|| format!("cannot add `{name}` to the archive"))
}

/// Add a file of `size` bytes from a reader (streamed: memory stays flat).
pub fn append_reader<W: Write, R: Read>(
    tar: &mut tar::Builder<W>,
    name: &str,
    reader: R,
    size: u64,
    mode: u32,
    mtime: u64,
) -> anyhow::Result<()> {
    let mut header = header(size, mode, mtime);
    tar.append_data(&mut header, name, reader)
        .with_context(|| format!("cannot add `{name}` to the archive"))
}

/// Why an entry of a tar from outside is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryProblem {
    #[error("its entry `{0}` has an absolute path")]
    Absolute(String),
    #[error("its entry `{0}` climbs out of the directory it is extracted in (`..`)")]
    ParentDir(String),
    #[error("its entry `{name}` is a {kind}, not a regular file")]
    NotRegular { name: String, kind: &'static str },
    #[error("it holds `{0}` twice")]
    Duplicate(String),
    #[error("it holds an unexpected entry `{0}`")]
    Unexpected(String),
    #[error("its entry `{name}` is {size} bytes, more than the {limit} allowed")]
    TooLarge { name: String, size: u64, limit: u64 },
    #[error("an entry's name is not UTF-8 text")]
    BadName,
}

/// What an archive may hold.
pub struct Rules<'a> {
    /// Directories whose entries may appear (and are skipped).
    pub dirs: &'a [&'a str],
    /// The largest size of a file the archive may hold, by name; `None` for a
    /// name it may not hold.
    pub limit: &'a dyn Fn(&str) -> Option<u64>,
}

/// One entry, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// A directory the rules allow: nothing to read.
    Dir(String),
    File {
        name: String,
        size: u64,
    },
}

/// The entries of one archive, checked one by one as they are read.
#[derive(Debug, Default)]
pub struct Entries {
    seen: BTreeSet<String>,
}

impl Entries {
    pub fn new() -> Entries {
        Entries::default()
    }

    /// Check an entry's path, type, uniqueness, name and size, in that order,
    /// so that each problem is named as itself.
    pub fn check<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        rules: &Rules<'_>,
    ) -> Result<Checked, EntryProblem> {
        let raw = entry.path_bytes();
        let name = std::str::from_utf8(&raw)
            .map_err(|_| EntryProblem::BadName)?
            .to_string();
        if name.starts_with('/') {
            return Err(EntryProblem::Absolute(name));
        }
        if name.split('/').any(|part| part == "..") {
            return Err(EntryProblem::ParentDir(name));
        }
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            let dir = name.trim_end_matches('/');
            if rules.dirs.contains(&dir) && self.seen.insert(name.clone()) {
                return Ok(Checked::Dir(dir.to_string()));
            }
            return Err(EntryProblem::Unexpected(name));
        }
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            let kind = match kind {
                tar::EntryType::Symlink => "symbolic link",
                tar::EntryType::Link => "hard link",
                tar::EntryType::Char => "character device",
                tar::EntryType::Block => "block device",
                tar::EntryType::Fifo => "named pipe",
                _ => "special entry",
            };
            return Err(EntryProblem::NotRegular { name, kind });
        }
        if !self.seen.insert(name.clone()) {
            return Err(EntryProblem::Duplicate(name));
        }
        let limit = (rules.limit)(&name).ok_or_else(|| EntryProblem::Unexpected(name.clone()))?;
        let size = entry.header().size().unwrap_or(u64::MAX);
        if size > limit {
            return Err(EntryProblem::TooLarge { name, size, limit });
        }
        Ok(Checked::File { name, size })
    }
}

/// Whether bytes start like a tar (the `ustar` magic of a POSIX or GNU header).
pub fn looks_like_tar(bytes: &[u8]) -> bool {
    bytes.len() >= 262 && &bytes[257..262] == b"ustar"
}

/// One regular file of a tar in memory, at most `limit` bytes; the other
/// entries are skipped, but an unsafe one refuses the whole archive.
pub fn read_member(tar_bytes: &[u8], name: &str, limit: u64) -> anyhow::Result<Option<Vec<u8>>> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut entries = Entries::new();
    let any = |_: &str| Some(u64::MAX);
    let rules = Rules {
        dirs: &[],
        limit: &any,
    };
    let mut found = None;
    for entry in archive.entries()? {
        let mut entry = entry?;
        if let Checked::File { name: n, size } = entries.check(&entry, &rules)?
            && n == name
        {
            if size > limit {
                anyhow::bail!("`{name}` is {size} bytes, more than the {limit} allowed");
            }
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            found = Some(bytes);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_tar(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            // Written raw, as an attacker would: the builder refuses `..`.
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_size(data.len() as u64);
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            if *kind == tar::EntryType::Symlink {
                h.set_link_name("/etc/passwd").unwrap();
            }
            h.set_cksum();
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    fn first_problem(bytes: &[u8], rules: &Rules<'_>) -> Option<EntryProblem> {
        let mut archive = tar::Archive::new(bytes);
        let mut entries = Entries::new();
        for entry in archive.entries().unwrap() {
            if let Err(p) = entries.check(&entry.unwrap(), rules) {
                return Some(p);
            }
        }
        None
    }

    #[test]
    fn each_unsafe_entry_is_named_as_itself() {
        let limit = |n: &str| (n == "a.txt" || n == "../a.txt" || n == "/a.txt").then_some(10);
        let rules = Rules {
            dirs: &["trust"],
            limit: &limit,
        };
        let file = tar::EntryType::Regular;
        let cases: Vec<(Vec<u8>, EntryProblem)> = vec![
            (
                raw_tar(&[("/a.txt", file, b"x")]),
                EntryProblem::Absolute("/a.txt".into()),
            ),
            (
                raw_tar(&[("../a.txt", file, b"x")]),
                EntryProblem::ParentDir("../a.txt".into()),
            ),
            (
                raw_tar(&[("a.txt", tar::EntryType::Symlink, b"")]),
                EntryProblem::NotRegular {
                    name: "a.txt".into(),
                    kind: "symbolic link",
                },
            ),
            (
                raw_tar(&[("a.txt", file, b"x"), ("a.txt", file, b"y")]),
                EntryProblem::Duplicate("a.txt".into()),
            ),
            (
                raw_tar(&[("b.txt", file, b"x")]),
                EntryProblem::Unexpected("b.txt".into()),
            ),
            (
                raw_tar(&[("a.txt", file, b"0123456789ab")]),
                EntryProblem::TooLarge {
                    name: "a.txt".into(),
                    size: 12,
                    limit: 10,
                },
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(first_problem(&bytes, &rules), Some(expected));
        }
        let ok = raw_tar(&[
            ("trust/", tar::EntryType::Directory, b""),
            ("a.txt", file, b"x"),
        ]);
        assert_eq!(first_problem(&ok, &rules), None);
    }

    #[test]
    fn written_entries_are_the_same_bytes_every_time() {
        let write = || {
            let mut tar = tar::Builder::new(Vec::new());
            append_bytes(&mut tar, "a.txt", b"hello", 0o644, 1_700_000_000).unwrap();
            append_reader(&mut tar, "b.txt", &b"world"[..], 5, 0o600, 1_700_000_000).unwrap();
            tar.into_inner().unwrap()
        };
        let bytes = write();
        assert_eq!(bytes, write());
        assert!(looks_like_tar(&bytes));
        assert_eq!(
            read_member(&bytes, "b.txt", 100).unwrap().as_deref(),
            Some(&b"world"[..])
        );
        assert!(read_member(&bytes, "c.txt", 100).unwrap().is_none());
    }
}
