//! Entry points for the fuzz targets in `fuzz/` (not part of the product's
//! interface): each feeds arbitrary bytes to one parser the way the product
//! does, and must return — an error is fine, a panic is a finding.

use serde_json::Value;

/// An ObjectQL query body (`POST /api/v1/query`): the duplicate-key check every
/// body passes, the query, its filter alone, and the same text as a list's
/// query string.
pub fn query_json(data: &[u8]) {
    let _ = crate::server::duplicate_key(data);
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        if crate::limits::json_depth(&value) > crate::limits::MAX_JSON_DEPTH {
            return;
        }
        let _ = crate::query::request::from_body(&value, None);
        let _ = crate::query::request::from_body(&value, Some("crm_account"));
        let _ = crate::query::request::parse_filter(&value);
        let _ = crate::model::filter::Filter::from_json(&value);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let params: Vec<(String, String)> = url::form_urlencoded::parse(text.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let _ = crate::query::request::from_list_params("crm_account", &params);
    }
}

/// A CEL filter expression (sharing rule conditions, `validate_expression`).
pub fn filter_cel(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::model::cel::parse(text);
    }
}

/// An artifact source file through build's parser and validation, and the
/// same bytes as a built artifact loaded into a model.
pub fn artifact(data: &[u8]) {
    let path = std::path::Path::new("fuzz.json");
    if let Ok(document) = crate::artifact::build::parse_bytes(data, path) {
        let sources = crate::artifact::build::SourceMap::single(path);
        let arena = crate::artifact::json::Arena::new();
        let tree = crate::artifact::json::Value::from_serde(&document, &arena);
        let _ = crate::artifact::validate::validate(&tree, &sources, true);
        let _ = crate::artifact::validate::validate(&tree, &sources, false);
    }
    // The borrowed tree the runtime and `verify` walk, on the same bytes.
    let _ = crate::artifact::check_bytes(data, path, true);
    let _ = crate::artifact::model_from_bytes(data);
}

/// minisign public keys, signature files and their trusted comments.
pub fn minisign(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let key = crate::crypto::signing::PublicKey::parse(text);
    if let (Ok(signature), Ok(key)) = (crate::crypto::signing::SignatureFile::parse(text), &key) {
        let _ = signature.check(key, &crate::crypto::signing::blake2b_512(data));
    }
    let _ = crate::crypto::signing::Claims::parse(text);
    let _ = crate::crypto::signing::secret_key_is_encrypted(text);
}

/// An audit archive as `audit verify-archive` reads it.
pub fn archive(data: &[u8]) {
    let options = crate::evidence::verify::Options {
        trusted: Vec::new(),
        trust_own_signer: true,
        identities: Vec::new(),
        after: None,
        outside: None,
    };
    let input: Box<dyn std::io::Read> = Box::new(std::io::Cursor::new(data.to_vec()));
    let _ = crate::evidence::verify::verify(input, "fuzz.tar", &options, &());
}

/// A message posted to the MCP endpoint: the guard's envelope reading and
/// duplicate-key check, then the SDK's JSON-RPC decoding the service does.
pub fn mcp_message(data: &[u8]) {
    let _ = crate::server::duplicate_key(data);
    crate::server::mcp::read_envelope_for_fuzzing(data);
    let _ = serde_json::from_slice::<rmcp::model::ClientJsonRpcMessage>(data);
}

/// An import file, as JSON lines and as CSV, against `object`.
pub fn import(data: &[u8], object: &crate::model::ObjectDef) {
    let _ = crate::commands::bulk::read_rows_for_fuzzing(data, false, object);
    let _ = crate::commands::bulk::read_rows_for_fuzzing(data, true, object);
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The committed seed corpus of `target`, every file of it.
    fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target);
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| {
                let path = entry.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                (path.display().to_string(), bytes)
            })
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{} holds no seed", dir.display());
        files
    }

    /// Every seed of every target runs through its entry point without a panic:
    /// the short mode of the fuzzers, so a parser change that breaks on a known
    /// input fails here, not only in a long fuzz run.
    #[test]
    fn every_committed_seed_runs_through_its_target() {
        type Target = (&'static str, fn(&[u8]));
        let targets: [Target; 6] = [
            ("query_json", super::query_json),
            ("filter_cel", super::filter_cel),
            ("artifact", super::artifact),
            ("minisign", super::minisign),
            ("archive", super::archive),
            ("mcp_message", super::mcp_message),
        ];
        let mut seen = 0;
        for (target, run) in targets {
            for (name, bytes) in corpus(target) {
                let outcome = std::panic::catch_unwind(|| run(&bytes));
                assert!(outcome.is_ok(), "{target}: {name} panicked");
                seen += 1;
            }
        }
        let model = crate::artifact::model_from_bytes(include_bytes!("../fuzz/import-model.json"))
            .expect("fuzz/import-model.json is a built artifact");
        for (name, bytes) in corpus("import") {
            for object in ["crm_account", "crm_opportunity"] {
                let object = model.object(object).expect("the CRM defines it");
                let outcome = std::panic::catch_unwind(|| super::import(&bytes, object));
                assert!(outcome.is_ok(), "import: {name} panicked");
            }
            seen += 1;
        }
        // Every target directory is covered by a line above.
        let dirs = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus"))
            .unwrap()
            .count();
        assert_eq!(dirs, 7, "a fuzz target's corpus is not replayed here");
        assert!(seen >= 7);
    }
}
