//! The artifact toolchain: build, validate, verify, inspect and diff artifacts. It
//! stands on `model` (what an artifact means) and `crypto` (canonical JSON and
//! signatures), and never on the runtime (`store`, `query`, `records`).

pub mod build;
pub mod diff;
pub mod inspect;
pub mod keys;
pub mod validate;
pub mod verify;

use std::path::Path;

use serde_json::{Map, Value};

pub use crate::model::*;

use crate::error::Failure;

/// A source read and validated.
pub struct Checked {
    pub source: build::Source,
    pub report: validate::Report,
}

impl Checked {
    /// The model, or an "invalid artifact" failure (exit 3) naming the first error.
    pub fn into_model(self) -> anyhow::Result<Model> {
        if let Some(model) = self.report.model {
            return Ok(model);
        }
        let count = self.report.errors.len();
        let first = self.report.errors.first();
        let message = match first {
            Some(issue) => format!(
                "invalid artifact: {count} error(s); the first, at `{}`{}: {}",
                issue.pointer,
                issue
                    .file
                    .as_ref()
                    .map(|f| format!(" in `{}`", f.display()))
                    .unwrap_or_default(),
                issue.message
            ),
            None => "invalid artifact".to_string(),
        };
        Err(Failure::verify(message)
            .with_hint("run `objectos validate` to see every error")
            .into())
    }
}

/// Read a file or a directory of fragments and validate it.
pub fn check_file(path: &Path, strict: bool) -> anyhow::Result<Checked> {
    check_source(path, strict, None)
}

pub fn check_source(path: &Path, strict: bool, skip: Option<&Path>) -> anyhow::Result<Checked> {
    let source = build::read_source(path, skip)?;
    let report = validate::validate(&source.document, &source.sources, strict);
    Ok(Checked { source, report })
}

/// Validate artifact bytes already read (named `path` in messages).
pub fn check_bytes(bytes: &[u8], path: &Path, strict: bool) -> anyhow::Result<Checked> {
    let document = build::parse_bytes(bytes, path)?;
    if !document.is_object() {
        return Err(Failure::verify(format!(
            "`{}` is not a JSON object, so not an ObjectStack definition",
            path.display()
        ))
        .into());
    }
    let sources = build::SourceMap::single(path);
    let report = validate::validate(&document, &sources, strict);
    Ok(Checked {
        source: build::Source {
            document,
            sources,
            files: vec![path.to_path_buf()],
        },
        report,
    })
}

/// Parse artifact bytes already in memory (the runtime's stored artifact).
pub fn model_from_bytes(bytes: &[u8]) -> anyhow::Result<Model> {
    let document = build::parse_bytes(bytes, Path::new("<stored artifact>"))?;
    let report = validate::validate(&document, &build::SourceMap::default(), false);
    Checked {
        source: build::Source {
            document,
            sources: build::SourceMap::default(),
            files: Vec::new(),
        },
        report,
    }
    .into_model()
}

/// Fill the defaults objectos relies on, with values upstream also accepts, so the
/// artifact says explicitly what it means.
pub fn fill_defaults(document: &mut Value) {
    let Some(doc) = document.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(manifest)) = doc.get_mut("manifest") {
        manifest
            .entry("type")
            .or_insert_with(|| Value::String("app".into()));
    }
    if let Some(Value::Array(objects)) = doc.get_mut("objects") {
        for object in objects.iter_mut().filter_map(Value::as_object_mut) {
            object
                .entry("ownership")
                .or_insert_with(|| Value::String("user".into()));
            object
                .entry("sharingModel")
                .or_insert_with(|| Value::String("private".into()));
        }
    }
    if let Some(Value::Array(rules)) = doc.get_mut("sharingRules") {
        for rule in rules.iter_mut().filter_map(Value::as_object_mut) {
            rule.entry("active").or_insert(Value::Bool(true));
            rule.entry("accessLevel")
                .or_insert_with(|| Value::String("read".into()));
            rule.entry("type")
                .or_insert_with(|| Value::String("criteria".into()));
        }
    }
    if let Some(Value::Array(sets)) = doc.get_mut("permissions") {
        for set in sets.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(Value::Object(fields)) = set.get_mut("fields") {
                for rights in fields.values_mut().filter_map(Value::as_object_mut) {
                    rights.entry("readable").or_insert(Value::Bool(true));
                    rights.entry("editable").or_insert(Value::Bool(false));
                }
            }
        }
    }
    if let Some(Value::Array(actions)) = doc.get_mut("actions") {
        for action in actions.iter_mut().filter_map(Value::as_object_mut) {
            action
                .entry("type")
                .or_insert_with(|| Value::String("script".into()));
        }
    }
}

/// The artifact's bytes: defaults filled, RFC 8785 canonical JSON, one final newline-free line.
pub fn artifact_bytes(document: &Value) -> anyhow::Result<Vec<u8>> {
    let mut document = document.clone();
    fill_defaults(&mut document);
    Ok(crate::crypto::canonical::to_vec(&document)?)
}

/// Count of entries in a top-level array.
pub fn count(document: &Value, key: &str) -> usize {
    document
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::len)
        .unwrap_or(0)
}

/// A map's value at a key, as an object.
pub fn object_at<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Map<String, Value>> {
    map.get(key).and_then(Value::as_object)
}
