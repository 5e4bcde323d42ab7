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
        let _ = crate::artifact::validate::validate(&document, &sources, true);
        let _ = crate::artifact::validate::validate(&document, &sources, false);
    }
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
