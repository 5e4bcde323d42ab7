//! Reading sources: one JSON file, or a directory of fragments merged in file-name order.
//!
//! Arrays are concatenated, maps merged (the `x-objectos` block included), and a
//! scalar defined twice with different values is an error naming both files.
//! Every top-level array element and map entry remembers the file it came from,
//! so validation can name the source of each problem.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::Failure;

/// The largest artifact or fragment objectos will parse. Hashing streams and has
/// no limit; parsing holds the document in memory.
pub const MAX_DOCUMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Where each part of a merged document came from.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    /// (JSON pointer prefix, file), most specific last.
    entries: Vec<(String, PathBuf)>,
    /// The file for anything not covered by a more specific entry.
    pub default: Option<PathBuf>,
}

impl SourceMap {
    pub fn single(file: &Path) -> Self {
        Self {
            entries: Vec::new(),
            default: Some(file.to_path_buf()),
        }
    }

    fn add(&mut self, pointer: String, file: &Path) {
        self.entries.push((pointer, file.to_path_buf()));
    }

    /// The file a JSON pointer points into.
    pub fn file_of(&self, pointer: &str) -> Option<&Path> {
        self.entries
            .iter()
            .filter(|(prefix, _)| {
                pointer == prefix
                    || (pointer.starts_with(prefix.as_str())
                        && pointer.as_bytes().get(prefix.len()) == Some(&b'/'))
            })
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, file)| file.as_path())
            .or(self.default.as_deref())
    }
}

/// A source read into one JSON document.
#[derive(Debug, Clone)]
pub struct Source {
    pub document: Value,
    pub sources: SourceMap,
    /// The files read, in merge order.
    pub files: Vec<PathBuf>,
}

/// A problem reading a source, before any validation: exit 3 for unparseable
/// input (it is not an artifact), exit 1 for I/O.
pub fn read_source(path: &Path, skip: Option<&Path>) -> anyhow::Result<Source> {
    let meta = std::fs::metadata(path)
        .map_err(|e| anyhow::Error::new(e).context(format!("cannot read `{}`", path.display())))?;
    if meta.is_dir() {
        read_fragments(path, skip)
    } else {
        Source::from_bytes(&read_file(path)?, path)
    }
}

impl Source {
    /// One document's bytes (named `path` in messages) as the whole source.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> anyhow::Result<Source> {
        let document = parse_bytes(bytes, path)?;
        if !document.is_object() {
            return Err(not_an_object(path));
        }
        Ok(Source {
            document,
            sources: SourceMap::single(path),
            files: vec![path.to_path_buf()],
        })
    }
}

/// The refusal of a document that parses but is not a JSON object.
pub fn not_an_object(path: &Path) -> anyhow::Error {
    Failure::verify(format!(
        "`{}` is not a JSON object, so not an ObjectStack definition",
        path.display()
    ))
    .into()
}

/// Read and parse one JSON file with a message that says where it broke.
pub fn parse_file(path: &Path) -> anyhow::Result<Value> {
    parse_bytes(&read_file(path)?, path)
}

/// Every byte of one file, refused (exit 3) when larger than objectos parses.
pub fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)
        .map_err(|e| anyhow::Error::new(e).context(format!("cannot read `{}`", path.display())))?;
    if meta.len() > MAX_DOCUMENT_BYTES {
        return Err(Failure::verify(format!(
            "`{}` is {} MiB; objectos parses artifacts of at most {} MiB",
            path.display(),
            meta.len() / (1024 * 1024),
            MAX_DOCUMENT_BYTES / (1024 * 1024)
        ))
        .into());
    }
    std::fs::read(path)
        .map_err(|e| anyhow::Error::new(e).context(format!("cannot read `{}`", path.display())))
}

pub fn parse_bytes(bytes: &[u8], path: &Path) -> anyhow::Result<Value> {
    serde_json::from_str(document_text(bytes, path)?).map_err(|e| not_json(path, &e))
}

/// The document as text: UTF-8, without a byte-order mark.
pub(crate) fn document_text<'a>(bytes: &'a [u8], path: &Path) -> anyhow::Result<&'a str> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_col(bytes, e.valid_up_to());
        Failure::verify(format!(
            "`{}` is not UTF-8 (invalid byte at line {line}, column {column})",
            path.display()
        ))
        .with_hint("save the file as UTF-8")
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

pub(crate) fn not_json(path: &Path, e: &serde_json::Error) -> anyhow::Error {
    Failure::verify(format!(
        "`{}` is not valid JSON: {} (line {}, column {})",
        path.display(),
        json_error_text(e),
        e.line(),
        e.column()
    ))
    .into()
}

fn json_error_text(e: &serde_json::Error) -> String {
    // serde_json appends " at line X column Y"; we say it our own way.
    let text = e.to_string();
    match text.find(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

fn line_col(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
    (line, column)
}

fn read_fragments(dir: &Path, skip: Option<&Path>) -> anyhow::Result<Source> {
    let skip = skip.and_then(|p| std::fs::canonicalize(p).ok());
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::Error::new(e).context(format!("cannot read `{}`", dir.display())))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .filter(|p| match (&skip, std::fs::canonicalize(p)) {
            (Some(skip), Ok(real)) => real != *skip,
            _ => true,
        })
        .collect();
    // Byte order of the file name: the same on every machine and file system.
    files.sort_by(|a, b| {
        a.file_name()
            .map(|n| n.as_encoded_bytes().to_vec())
            .cmp(&b.file_name().map(|n| n.as_encoded_bytes().to_vec()))
    });
    if files.is_empty() {
        return Err(Failure::error(format!(
            "`{}` holds no fragment files (`*.json`)",
            dir.display()
        ))
        .with_hint("point at the directory of the app's JSON fragments, or at one JSON file")
        .into());
    }
    let mut document = Map::new();
    let mut sources = SourceMap::default();
    for file in &files {
        let fragment = parse_file(file)?;
        let Value::Object(fragment) = fragment else {
            return Err(Failure::verify(format!(
                "`{}` is not a JSON object; each fragment is a partial ObjectStack definition",
                file.display()
            ))
            .into());
        };
        merge_into(&mut document, fragment, "", file, &mut sources)?;
    }
    Ok(Source {
        document: Value::Object(document),
        sources,
        files,
    })
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn merge_into(
    target: &mut Map<String, Value>,
    fragment: Map<String, Value>,
    pointer: &str,
    file: &Path,
    sources: &mut SourceMap,
) -> anyhow::Result<()> {
    for (key, value) in fragment {
        let here = format!("{pointer}/{}", escape_pointer(&key));
        match (target.get_mut(&key), value) {
            (None, value) => {
                if let Value::Array(items) = &value {
                    for i in 0..items.len() {
                        sources.add(format!("{here}/{i}"), file);
                    }
                }
                sources.add(here, file);
                target.insert(key, value);
            }
            (Some(Value::Array(existing)), Value::Array(items)) => {
                for item in items {
                    sources.add(format!("{here}/{}", existing.len()), file);
                    existing.push(item);
                }
            }
            (Some(Value::Object(existing)), Value::Object(map)) => {
                merge_into(existing, map, &here, file, sources)?;
            }
            (Some(existing), value) if *existing == value => {}
            (Some(_), _) => {
                let first = sources
                    .file_of(&here)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                return Err(Failure::verify(format!(
                    "`{here}` is defined in both `{first}` and `{}` with different values",
                    file.display()
                ))
                .with_hint("define it in one fragment only")
                .into());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merge(fragments: &[(&str, Value)]) -> anyhow::Result<(Value, SourceMap)> {
        let mut doc = Map::new();
        let mut sources = SourceMap::default();
        for (name, value) in fragments {
            let Value::Object(map) = value.clone() else {
                panic!()
            };
            merge_into(&mut doc, map, "", Path::new(name), &mut sources)?;
        }
        Ok((Value::Object(doc), sources))
    }

    #[test]
    fn arrays_concatenate_and_maps_merge_in_order() {
        let (doc, sources) = merge(&[
            ("a.json", json!({"objects": [{"name": "x"}], "x-objectos": {"objects": {"x": {"readOnly": true}}}})),
            ("b.json", json!({"objects": [{"name": "y"}], "x-objectos": {"objects": {"y": {"auditReads": true}}}})),
        ])
        .unwrap();
        assert_eq!(doc["objects"], json!([{"name": "x"}, {"name": "y"}]));
        assert_eq!(
            doc["x-objectos"]["objects"],
            json!({"x": {"readOnly": true}, "y": {"auditReads": true}})
        );
        assert_eq!(
            sources.file_of("/objects/1/fields"),
            Some(Path::new("b.json"))
        );
        assert_eq!(sources.file_of("/objects/0"), Some(Path::new("a.json")));
        assert_eq!(
            sources.file_of("/x-objectos/objects/y/auditReads"),
            Some(Path::new("b.json"))
        );
    }

    #[test]
    fn conflicting_scalars_name_both_files() {
        let err = merge(&[
            ("a.json", json!({"manifest": {"version": "1.0.0"}})),
            ("b.json", json!({"manifest": {"version": "2.0.0"}})),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("a.json") && text.contains("b.json"), "{text}");
    }

    #[test]
    fn json_errors_carry_line_and_column() {
        let err = parse_bytes(b"{\n  \"a\": [1,\n}", Path::new("x.json")).unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
        let err = parse_bytes(b"{\"a\": \"\xff\"}", Path::new("x.json")).unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }
}
