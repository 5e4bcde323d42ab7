//! The artifact toolchain: build, validate, verify, inspect and diff artifacts. It
//! stands on `model` (what an artifact means) and `crypto` (canonical JSON and
//! signatures), and never on the runtime (`store`, `query`, `records`).

pub mod build;
pub mod diff;
pub mod inspect;
pub mod json;
pub mod keys;
pub mod validate;
pub mod verify;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

pub use crate::model::*;

use crate::error::Failure;

/// A definition read and validated.
pub struct Checked {
    pub report: validate::Report,
    /// The files read, in merge order.
    pub files: Vec<PathBuf>,
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
    let meta = std::fs::metadata(path)
        .map_err(|e| anyhow::Error::new(e).context(format!("cannot read `{}`", path.display())))?;
    if meta.is_dir() {
        return check_source(path, strict, None).map(|(_, checked)| checked);
    }
    check_bytes(&build::read_file(path)?, path, strict)
}

/// Read a file or a directory of fragments and validate it, keeping the merged
/// definition (what `build` writes out).
pub fn check_source(
    path: &Path,
    strict: bool,
    skip: Option<&Path>,
) -> anyhow::Result<(build::Source, Checked)> {
    Ok(check_document(build::read_source(path, skip)?, strict))
}

/// Validate a definition already read and merged.
pub fn check_document(source: build::Source, strict: bool) -> (build::Source, Checked) {
    let arena = json::Arena::new();
    let report = validate::validate(
        &json::Value::from_serde(&source.document, &arena),
        &source.sources,
        strict,
    );
    let files = source.files.clone();
    (source, Checked { report, files })
}

/// Validate artifact bytes already read (named `path` in messages), walking the
/// borrowed tree: nothing of the document outlives the check.
pub fn check_bytes(bytes: &[u8], path: &Path, strict: bool) -> anyhow::Result<Checked> {
    let report = check_text(bytes, path, &build::SourceMap::single(path), strict)?;
    Ok(Checked {
        report,
        files: vec![path.to_path_buf()],
    })
}

/// Parse artifact bytes already in memory (the runtime's stored artifact).
pub fn model_from_bytes(bytes: &[u8]) -> anyhow::Result<Model> {
    let path = Path::new("<stored artifact>");
    let report = check_text(bytes, path, &build::SourceMap::default(), false)?;
    Checked {
        report,
        files: Vec::new(),
    }
    .into_model()
}

/// Parse and validate a document's bytes. A large one is read in outline, its
/// objects parsed as they are walked (see [`json::Outline`]); a small one, or
/// one the outline cannot take, is parsed whole, and that parse says what is
/// wrong with it.
fn check_text(
    bytes: &[u8],
    path: &Path,
    sources: &build::SourceMap,
    strict: bool,
) -> anyhow::Result<validate::Report> {
    let text = build::document_text(bytes, path)?;
    let arena = json::Arena::new();
    if let Some(outline) = json::Outline::read(text, &arena)
        && let Some(report) = validate::validate_outline(&outline, sources, strict)
    {
        return Ok(report);
    }
    let document = json::Value::parse(text, &arena).map_err(|e| build::not_json(path, &e))?;
    if !document.is_object() {
        return Err(build::not_an_object(path));
    }
    Ok(validate::validate(&document, sources, strict))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What validation reports (errors, warnings, carried collections, the model),
    /// as text to compare.
    fn said(report: &validate::Report) -> String {
        let text = format!(
            "{:?}\n{:?}\n{:?}\n{:?}",
            report.errors, report.warnings, report.carried, report.model
        );
        // Lookup indexes are hash maps, printed in no fixed order; what they index
        // is printed in full beside them.
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("index: {") {
            out.push_str(&rest[..at]);
            rest = &rest[at..];
            rest = &rest[rest.find('}').map_or(rest.len(), |end| end + 1)..];
        }
        out.push_str(rest);
        out
    }

    /// The borrowed tree `verify`, `validate` and the runtime walk reports exactly
    /// what the same definition read into a `serde_json::Value` (as `build` reads
    /// fragments) reports: on every upstream fixture, and on broken variants of one
    /// (duplicate keys, unknown keys, wrong types, escapes in names).
    #[test]
    fn the_borrowed_tree_and_a_serde_json_document_validate_the_same() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/upstream");
        let mut texts = Vec::new();
        for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let path = entry.path().join("objectstack.json");
            if let Ok(text) = std::fs::read_to_string(&path) {
                texts.push(text);
            }
        }
        assert!(texts.len() >= 5, "the upstream fixtures are missing");
        let base = texts[0].clone();
        let body = base.trim_start().trim_start_matches('{');
        texts.push(format!(r#"{{"objects":[],"objects":[{{"name":7}}],{body}"#));
        texts.push(format!(
            r#"{{"x-unknown\/key~":1,"manifest":{{"id":"a"}},{body}"#
        ));
        texts.push(format!(
            r#"{{"permissions":{{"a":1}},"sharingRules":"no",{body}"#
        ));
        texts.push(r#"{"manifest":{"id":"com.x.y","version":"1.0.0","namespace":"x"},"objects":[{"name":"x_a","fields":{"b\u0061d name":{"type":"text"},"ok":{"type":"select","options":["a","a"]},"ok":{"type":"nope"}}}]}"#.to_string());
        let mut valid = 0;
        for text in &texts {
            let path = Path::new("t.json");
            let sources = build::SourceMap::single(path);
            let value: Value = serde_json::from_str(text).unwrap_or_default();
            let arena = json::Arena::new();
            let from_serde =
                validate::validate(&json::Value::from_serde(&value, &arena), &sources, true);
            let checked = check_bytes(text.as_bytes(), path, true).map(|c| c.report);
            let Ok(from_tree) = checked else {
                panic!("the tree did not parse what serde_json parsed");
            };
            assert_eq!(said(&from_tree), said(&from_serde), "{text:.200}");
            valid += usize::from(from_tree.model.is_some());
        }
        // Positive and negative controls: some pass, the broken ones do not.
        assert!(
            valid >= 5 && valid < texts.len(),
            "{valid} of {}",
            texts.len()
        );
    }
    /// The pointers of issues inside a field or an option (written out only
    /// when an issue names them) are RFC 6901 pointers to them, and a default
    /// that does not fit its field is reported with the field's other errors.
    #[test]
    fn issues_inside_fields_and_options_point_at_them() {
        let text = r#"{"manifest":{"id":"com.x.p","version":"1.0.0","namespace":"xy"},"objects":[{"name":"xy_a","fields":{
            "a/b~c":{"type":"select","options":["one",{"label":"Two"},"one"]},
            "n":{"type":"number","defaultValue":"high","maxLength":0},
            "ok":{"type":"text","defaultValue":"fine","colour":"red"}}}]}"#;
        let path = Path::new("t.json");
        let report = match check_bytes(text.as_bytes(), path, false) {
            Ok(checked) => checked.report,
            Err(e) => panic!("{e}"),
        };
        let errors: Vec<&str> = report.errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            errors,
            [
                "/objects/0/fields/a~1b~0c",
                "/objects/0/fields/a~1b~0c/options/1",
                "/objects/0/fields/a~1b~0c/options/2",
                "/objects/0/fields/n/maxLength",
                "/objects/0/fields/n/defaultValue",
            ],
            "{:?}",
            report.errors
        );
        let warnings: Vec<&str> = report.warnings.iter().map(|w| w.pointer.as_str()).collect();
        assert!(
            warnings.contains(&"/objects/0/fields/ok/colour"),
            "{warnings:?}"
        );
        assert!(report.model.is_none());
        // The control: without the broken fields, the same object is valid and
        // keeps its default.
        let fixed = r#"{"manifest":{"id":"com.x.p","version":"1.0.0","name":"P","namespace":"xy"},"objects":[{"name":"xy_a","fields":{"ok":{"type":"text","defaultValue":"fine"}}}]}"#;
        let model = check_bytes(fixed.as_bytes(), path, false)
            .ok()
            .and_then(|c| c.report.model);
        let default = model
            .as_ref()
            .and_then(|m| m.objects.first())
            .and_then(|o| o.field("ok"))
            .and_then(|f| f.default_value().cloned());
        assert!(
            matches!(&default, Some(crate::model::DefaultValue::Literal(v)) if **v == "fine"),
            "{default:?}"
        );
    }

    /// Objects walked in parts on several threads give the report one thread
    /// gives: the same errors and warnings in the same order, a name repeated
    /// across parts caught, and an undeclared permission used in several parts
    /// warned about once, where it is first used.
    #[test]
    fn objects_walked_in_parts_report_what_one_walk_reports() {
        let objects: Vec<serde_json::Value> = (0..100)
            .map(|i| {
                let name = if i == 70 {
                    "x_o10".to_string()
                } else {
                    format!("x_o{i}")
                };
                let mut fields = serde_json::json!({"title": {"type": "text"}});
                if i == 3 || i == 50 || i == 95 {
                    fields["bad"] = serde_json::json!({"type": "nope"});
                }
                if i == 5 || i == 60 || i == 99 {
                    fields["gated"] =
                        serde_json::json!({"type": "text", "requiredPermissions": ["perm_x"]});
                }
                if i == 80 {
                    fields["gated"] =
                        serde_json::json!({"type": "text", "requiredPermissions": ["perm_y"]});
                }
                if i % 17 == 0 {
                    fields["title"]["colour"] = serde_json::json!("red");
                }
                serde_json::json!({"name": name, "fields": fields})
            })
            .collect();
        let document = serde_json::json!({
            "manifest": {"id": "com.x.parts", "version": "1.0.0", "namespace": "x"},
            "objects": objects,
        });
        let arena = json::Arena::new();
        let tree = json::Value::from_serde(&document, &arena);
        let text = document.to_string();
        let outline = json::Outline::read_from(&text, 0, &arena);
        let sources = build::SourceMap::single(Path::new("t.json"));
        let walk = |source, parts| {
            validate::validate_in_parts(&tree, source, &sources, false, parts)
                .unwrap_or_else(|| panic!("{parts} parts: an element did not parse"))
        };
        let one = walk(validate::Objects::InDocument, 1);
        let outlined = outline
            .as_ref()
            .map(|o| (o.document(), validate::Objects::Text(o.objects())));
        for parts in [1, 2, 3, 4] {
            let many = walk(validate::Objects::InDocument, parts);
            assert_eq!(said(&many), said(&one), "{parts} parts");
            // The same from the document's text read in outline.
            let Some((document, elements)) = outlined else {
                panic!("no outline of the document");
            };
            let from_text = validate::validate_in_parts(document, elements, &sources, false, parts)
                .unwrap_or_else(|| panic!("{parts} parts in outline: an element did not parse"));
            assert_eq!(said(&from_text), said(&one), "{parts} parts in outline");
        }
        // The controls: what the parts had to get right is in the report.
        let warned_x: Vec<&str> = one
            .warnings
            .iter()
            .filter(|w| w.message.contains("perm_x"))
            .map(|w| w.pointer.as_str())
            .collect();
        assert_eq!(warned_x, ["/objects/5/fields/gated/requiredPermissions/0"]);
        assert!(one.warnings.iter().any(|w| w.message.contains("perm_y")));
        assert!(one.errors.iter().any(|e| e.pointer == "/objects/70/name"));
        assert_eq!(
            one.errors
                .iter()
                .filter(|e| e.pointer.ends_with("/fields/bad/type"))
                .count(),
            3
        );
    }
}
