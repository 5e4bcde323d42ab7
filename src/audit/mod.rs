//! The audit log: every change and decision appended as an immutable, hash-chained
//! row (docs/audit-log.md), signed checkpoints outside the database, and verification.

pub mod checkpoint;
pub mod verify;

use hmac::Mac;
use serde_json::{Map, Value, json};
use sha2::Digest;

use crate::crypto::canonical;
use crate::store::{AuditRow, Tx};
use crate::timefmt;

pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The surface an event came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Cli,
    Api,
    Agent,
    System,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Cli => "cli",
            Via::Api => "api",
            Via::Agent => "agent",
            Via::System => "system",
        }
    }
}

/// Who did it and through what: the part of a row that is the same for every
/// event of one request or command.
#[derive(Debug, Clone)]
pub struct Origin {
    /// `{"os_user": …}` for the CLI, `{"user_id", "email"}` for a user, both
    /// (`{"os_user", "as": {…}}`) when the CLI acts as a user.
    pub actor: Value,
    pub via: Via,
    pub client: Option<Value>,
    /// Session or API key id.
    pub credential: Option<String>,
    pub request_id: Option<String>,
}

impl Origin {
    /// The host operator running the CLI.
    pub fn operator() -> Origin {
        Origin {
            actor: json!({ "os_user": os_user() }),
            via: Via::Cli,
            client: None,
            credential: None,
            request_id: None,
        }
    }

    /// The CLI operator acting as a user (`import --as`, `export --as`) inside
    /// one organization.
    pub fn operator_as(user_id: &str, email: &str, org_id: &str) -> Origin {
        Origin {
            actor: json!({ "os_user": os_user(), "as": { "user_id": user_id, "email": email }, "organization_id": org_id }),
            via: Via::Cli,
            client: None,
            credential: None,
            request_id: None,
        }
    }

    pub fn user(user_id: &str, email: &str, via: Via) -> Origin {
        Origin {
            actor: json!({ "user_id": user_id, "email": email }),
            via,
            client: None,
            credential: None,
            request_id: None,
        }
    }

    pub fn system() -> Origin {
        Origin {
            actor: json!({ "system": "objectos" }),
            via: Via::System,
            client: None,
            credential: None,
            request_id: None,
        }
    }
}

/// The operating-system user running this process.
pub fn os_user() -> String {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => std::env::var("USER").unwrap_or_else(|_| format!("uid:{uid}")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Denied,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
        }
    }
}

/// What happened, for one row.
#[derive(Debug, Clone)]
pub struct Event {
    pub action: String,
    pub object: Option<String>,
    pub record_id: Option<String>,
    pub changes: Option<Value>,
    pub outcome: Outcome,
    pub code: Option<String>,
}

impl Event {
    pub fn new(action: impl Into<String>) -> Event {
        Event {
            action: action.into(),
            object: None,
            record_id: None,
            changes: None,
            outcome: Outcome::Success,
            code: None,
        }
    }

    pub fn object(mut self, object: impl Into<String>) -> Event {
        self.object = Some(object.into());
        self
    }

    pub fn record(mut self, id: impl Into<String>) -> Event {
        self.record_id = Some(id.into());
        self
    }

    pub fn changes(mut self, changes: Value) -> Event {
        self.changes = Some(changes);
        self
    }

    pub fn outcome(mut self, outcome: Outcome, code: impl Into<String>) -> Event {
        self.outcome = outcome;
        self.code = Some(code.into());
        self
    }
}

/// Build a `changes` value field by field; sensitive values become HMACs.
#[derive(Debug, Default)]
pub struct Changes {
    map: Map<String, Value>,
}

impl Changes {
    pub fn new() -> Changes {
        Changes::default()
    }

    /// A field whose values may be recorded.
    pub fn field(
        &mut self,
        name: &str,
        before: Option<&Value>,
        after: Option<&Value>,
    ) -> &mut Self {
        let mut entry = Map::new();
        entry.insert("before".into(), before.cloned().unwrap_or(Value::Null));
        entry.insert("after".into(), after.cloned().unwrap_or(Value::Null));
        self.map.insert(name.to_string(), Value::Object(entry));
        self
    }

    /// A sensitive field: the row says it changed and carries an HMAC of the new value.
    pub fn sensitive(&mut self, name: &str, after: Option<&Value>, key: &HmacKey) -> &mut Self {
        self.map.insert(
            name.to_string(),
            json!({ "changed": true, "hmac_sha256": after.map(|v| key.hmac(v)), "hmac_key": HMAC_KEY_LABEL }),
        );
        self
    }

    /// A plain fact about the change (not a field).
    pub fn note(&mut self, name: &str, value: Value) -> &mut Self {
        self.map.insert(name.to_string(), value);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.map)
    }
}

/// The label of the audit HMAC key derived from the instance key (HKDF-SHA256);
/// rows made with it name it as `hmac_key`, so a value in them is confirmed with
/// the derived key, and a row without it with the instance key itself (as
/// objectos wrote rows before it derived a key of its own for the purpose).
pub const HMAC_KEY_LABEL: &str = "objectos/audit-hmac/v1";

/// The key that HMACs sensitive values: derived from the instance key, so whoever
/// holds `instance.key` can confirm a suspected value and nobody else learns it.
/// One secret, one purpose: the HMAC key is not the age identity itself.
#[derive(Clone)]
pub struct HmacKey {
    derived: Vec<u8>,
    /// The instance secret as used before the derivation (old rows).
    legacy: Vec<u8>,
    /// The keys of instance secrets retired by a key rotation, to confirm
    /// values in rows written before it.
    retired: Vec<HmacKey>,
}

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacKey(<redacted>)")
    }
}

fn hmac_hex(key: &[u8], value: &Value) -> String {
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(
        canonical::value_to_string(value)
            .unwrap_or_default()
            .as_bytes(),
    );
    hex::encode(mac.finalize().into_bytes())
}

impl HmacKey {
    /// From the instance identity's secret line (`AGE-SECRET-KEY-1…`) as bytes:
    /// HKDF-SHA256 with no salt and [`HMAC_KEY_LABEL`] as its info.
    pub fn new(secret: &[u8]) -> HmacKey {
        let mut derived = vec![0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(None, secret)
            .expand(HMAC_KEY_LABEL.as_bytes(), &mut derived)
            .expect("32 bytes is a valid HKDF-SHA256 length");
        HmacKey {
            derived,
            legacy: secret.to_vec(),
            retired: Vec::new(),
        }
    }

    /// This key, also able to confirm values under retired instance secrets.
    pub fn with_retired(mut self, secrets: &[Vec<u8>]) -> HmacKey {
        self.retired = secrets.iter().map(|s| HmacKey::new(s)).collect();
        self
    }

    /// HMAC-SHA256 over the value's canonical JSON, lowercase hex.
    pub fn hmac(&self, value: &Value) -> String {
        hmac_hex(&self.derived, value)
    }

    /// Whether `value` is the value a row's entry recorded an HMAC of: with the
    /// derived key when the entry names it, else with the instance secret.
    pub fn confirms(&self, entry: &Value, digest: &str, value: &Value) -> bool {
        let key = if entry.get("hmac_key").and_then(Value::as_str) == Some(HMAC_KEY_LABEL) {
            &self.derived
        } else {
            &self.legacy
        };
        hmac_hex(key, value) == digest
            || self
                .retired
                .iter()
                .any(|r| r.confirms(entry, digest, value))
    }
}

/// The row as hashed and exported: every column but `hash`.
pub fn row_document(row: &AuditRow) -> Value {
    json!({
        "seq": row.seq,
        "id": row.id,
        "time": row.time,
        "actor": row.actor,
        "via": row.via,
        "client": row.client,
        "credential": row.credential,
        "action": row.action,
        "object": row.object,
        "record_id": row.record_id,
        "changes": row.changes,
        "outcome": row.outcome,
        "code": row.code,
        "request_id": row.request_id,
        "prev_hash": row.prev_hash,
    })
}

/// A JSON column of a row: read (a value), or as the database holds it (text
/// that is, when the row is intact, already canonical).
#[derive(Debug, Clone, Copy)]
pub enum Json<'a> {
    Value(Option<&'a Value>),
    Text(Option<&'a str>),
}

/// A row's members, borrowed, for writing its canonical form.
#[derive(Debug, Clone, Copy)]
pub struct RowView<'a> {
    pub seq: i64,
    pub id: &'a str,
    pub time: &'a str,
    pub actor: Json<'a>,
    pub via: &'a str,
    pub client: Json<'a>,
    pub credential: Option<&'a str>,
    pub action: &'a str,
    pub object: Option<&'a str>,
    pub record_id: Option<&'a str>,
    pub changes: Json<'a>,
    pub outcome: &'a str,
    pub code: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub prev_hash: &'a str,
}

impl AuditRow {
    pub fn view(&self) -> RowView<'_> {
        RowView {
            seq: self.seq,
            id: &self.id,
            time: &self.time,
            actor: Json::Value(Some(&self.actor)),
            via: &self.via,
            client: Json::Value(self.client.as_ref()),
            credential: self.credential.as_deref(),
            action: &self.action,
            object: self.object.as_deref(),
            record_id: self.record_id.as_deref(),
            changes: Json::Value(self.changes.as_ref()),
            outcome: &self.outcome,
            code: self.code.as_deref(),
            request_id: self.request_id.as_deref(),
            prev_hash: &self.prev_hash,
        }
    }
}

/// The view of a row whose JSON columns are taken as the text the database
/// holds: the canonical form of an intact row, written without parsing it
/// (its hash then tells whether it was).
pub fn text_view(row: &crate::store::AuditRowText) -> RowView<'_> {
    RowView {
        seq: row.seq,
        id: &row.id,
        time: &row.time,
        actor: Json::Text(Some(&row.actor)),
        via: &row.via,
        client: Json::Text(row.client.as_deref()),
        credential: row.credential.as_deref(),
        action: &row.action,
        object: row.object.as_deref(),
        record_id: row.record_id.as_deref(),
        changes: Json::Text(row.changes.as_deref()),
        outcome: &row.outcome,
        code: row.code.as_deref(),
        request_id: row.request_id.as_deref(),
        prev_hash: &row.prev_hash,
    }
}

/// Write a row's canonical JSON (RFC 8785) onto the end of `out`: the JCS of
/// [`row_document`], with `hash` among its members when given (the form
/// archives hold, one per line). Written member by member in JCS order rather
/// than through a `Value`, since export and verification do it for every row;
/// strings are escaped as JCS escapes them (serde_json's escapes are the same).
///
/// Returns where in `out` the `hash` member is (or would go): the archive
/// writer splices it into the body it hashed instead of writing the row twice.
pub fn write_row_canonical(
    row: &AuditRow,
    hash: Option<&str>,
    out: &mut Vec<u8>,
) -> Result<usize, serde_json::Error> {
    write_row_view(&row.view(), hash, out)
}

/// [`write_row_canonical`] of a borrowed row.
pub fn write_row_view(
    row: &RowView<'_>,
    hash: Option<&str>,
    out: &mut Vec<u8>,
) -> Result<usize, serde_json::Error> {
    fn key(out: &mut Vec<u8>, key: &str) {
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
    }
    fn text(out: &mut Vec<u8>, name: &str, value: &str) -> Result<(), serde_json::Error> {
        key(out, name);
        serde_json::to_writer(&mut *out, value)?;
        out.push(b',');
        Ok(())
    }
    fn opt_text(
        out: &mut Vec<u8>,
        name: &str,
        value: Option<&str>,
    ) -> Result<(), serde_json::Error> {
        match value {
            Some(v) => text(out, name, v),
            None => {
                key(out, name);
                out.extend_from_slice(b"null,");
                Ok(())
            }
        }
    }
    fn json(out: &mut Vec<u8>, name: &str, value: Json<'_>) -> Result<(), serde_json::Error> {
        key(out, name);
        match value {
            Json::Value(Some(v)) => canonical::write_value(v, out)?,
            Json::Text(Some(t)) => out.extend_from_slice(t.as_bytes()),
            Json::Value(None) | Json::Text(None) => out.extend_from_slice(b"null"),
        }
        out.push(b',');
        Ok(())
    }
    // The members in JCS order (all keys are ASCII, so UTF-16 order is byte order).
    out.push(b'{');
    text(out, "action", row.action)?;
    json(out, "actor", row.actor)?;
    json(out, "changes", row.changes)?;
    json(out, "client", row.client)?;
    opt_text(out, "code", row.code)?;
    opt_text(out, "credential", row.credential)?;
    let hash_at = out.len();
    if let Some(hash) = hash {
        text(out, "hash", hash)?;
    }
    text(out, "id", row.id)?;
    opt_text(out, "object", row.object)?;
    text(out, "outcome", row.outcome)?;
    text(out, "prev_hash", row.prev_hash)?;
    opt_text(out, "record_id", row.record_id)?;
    opt_text(out, "request_id", row.request_id)?;
    key(out, "seq");
    out.extend_from_slice(row.seq.to_string().as_bytes());
    out.push(b',');
    text(out, "time", row.time)?;
    text(out, "via", row.via)?;
    // The last member's comma becomes the closing brace.
    if let Some(last) = out.last_mut() {
        *last = b'}';
    }
    Ok(hash_at)
}

/// `hash = SHA-256(prev_hash as 32 raw bytes ‖ JCS(row without hash))`, lowercase hex.
pub fn row_hash(row: &AuditRow) -> Option<String> {
    let mut body = Vec::with_capacity(512);
    write_row_canonical(row, None, &mut body).ok()?;
    row_hash_of(&row.prev_hash, &body)
}

/// The hash of a row from its `prev_hash` and its canonical body.
pub fn row_hash_of(prev_hash: &str, body: &[u8]) -> Option<String> {
    let mut prev = [0u8; 32];
    hex::decode_to_slice(prev_hash, &mut prev).ok()?;
    let mut sha = sha2::Sha256::new();
    sha.update(prev);
    sha.update(body);
    Some(hex::encode(sha.finalize()))
}

/// Append a row, chained to the current head, in the caller's transaction.
pub fn append(tx: &mut dyn Tx, origin: &Origin, event: Event) -> anyhow::Result<AuditRow> {
    let (seq, prev_hash) = match tx.audit_head()? {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, ZERO_HASH.to_string()),
    };
    let mut row = AuditRow {
        seq,
        id: uuid::Uuid::now_v7().to_string(),
        time: timefmt::rfc3339_micros(timefmt::now()),
        actor: origin.actor.clone(),
        via: origin.via.as_str().to_string(),
        client: origin.client.clone(),
        credential: origin.credential.clone(),
        action: event.action,
        object: event.object,
        record_id: event.record_id,
        changes: event.changes,
        outcome: event.outcome.as_str().to_string(),
        code: event.code,
        request_id: origin.request_id.clone(),
        prev_hash,
        hash: String::new(),
    };
    row.hash =
        row_hash(&row).ok_or_else(|| anyhow::anyhow!("the audit head's hash is malformed"))?;
    tx.audit_insert(&row)?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, prev: &str) -> AuditRow {
        AuditRow {
            seq,
            id: "id".into(),
            time: "2026-01-01T00:00:00.000000Z".into(),
            actor: json!({"os_user": "ops"}),
            via: "cli".into(),
            client: None,
            credential: None,
            action: "user.add".into(),
            object: Some("user".into()),
            record_id: Some("u1".into()),
            changes: Some(json!({"email": {"before": null, "after": "a@b.c"}})),
            outcome: "success".into(),
            code: None,
            request_id: None,
            prev_hash: prev.into(),
            hash: String::new(),
        }
    }

    #[test]
    fn the_hash_covers_prev_hash_bytes_and_the_canonical_row() {
        let r = row(1, ZERO_HASH);
        let h = row_hash(&r).unwrap();
        // Recompute by hand, as an auditor would.
        let mut sha = sha2::Sha256::new();
        sha.update([0u8; 32]);
        sha.update(canonical::to_vec(&row_document(&r)).unwrap());
        assert_eq!(h, hex::encode(sha.finalize()));
        let mut changed = r.clone();
        changed.action = "user.remove".into();
        assert_ne!(row_hash(&changed).unwrap(), h);
        assert!(row_hash(&row(1, "zz")).is_none());
    }

    /// Known answers computed outside objectos (Python's hashlib over the JCS
    /// text below), not by the functions under test.
    #[test]
    fn the_row_hash_matches_a_known_answer() {
        let r = row(1, ZERO_HASH);
        assert_eq!(
            String::from_utf8(canonical::to_vec(&row_document(&r)).unwrap()).unwrap(),
            r#"{"action":"user.add","actor":{"os_user":"ops"},"changes":{"email":{"after":"a@b.c","before":null}},"client":null,"code":null,"credential":null,"id":"id","object":"user","outcome":"success","prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","record_id":"u1","request_id":null,"seq":1,"time":"2026-01-01T00:00:00.000000Z","via":"cli"}"#
        );
        assert_eq!(
            row_hash(&r).unwrap(),
            "c3f000a0db51ca4bc306733b2b8fcdc593649dc8fdc57399ce32aeae543dd06c"
        );
    }

    /// HKDF-SHA256(no salt, info "objectos/audit-hmac/v1") then HMAC-SHA256 over
    /// the value's JCS, computed with Python's hmac module; old rows use the
    /// instance secret itself.
    #[test]
    fn audit_hmacs_match_known_answers_for_the_derived_and_the_legacy_key() {
        let key = HmacKey::new(b"AGE-SECRET-KEY-1TEST");
        let value = json!("the secret");
        let derived = "bd84678aadb91a6d9000e9dc50d5032e990d6dd7dc6eec01290e69ff59abe0ad";
        let legacy = "9b03050683c055ee647acc1109c2115031349458485632eaab230efa3304e821";
        assert_eq!(key.hmac(&value), derived);
        let new_row = json!({"changed": true, "hmac_sha256": derived, "hmac_key": HMAC_KEY_LABEL});
        let old_row = json!({"changed": true, "hmac_sha256": legacy});
        assert!(key.confirms(&new_row, derived, &value));
        assert!(key.confirms(&old_row, legacy, &value));
        assert!(!key.confirms(&old_row, derived, &value));
        assert!(!key.confirms(&new_row, derived, &json!("another")));
    }

    /// The hand-written canonical form is exactly the JCS of the row's document,
    /// whatever its strings and values hold.
    #[test]
    fn rows_are_written_as_their_documents_jcs() {
        let mut odd = row(42, ZERO_HASH);
        odd.action = "weird \"quoted\" \\ \u{1}\u{1f}\u{7f} \n\t é € 😀 /".into();
        odd.actor = json!({"email": "ü@x", "user_id": "u", "z": [1, 2.5, 1e21, -0.0, null, true]});
        odd.client = Some(json!({"name": "\u{2028}", "version": "1"}));
        odd.changes =
            Some(json!({"\u{20ac}": 1, "\r": 2, "\u{1f600}": 3, "\u{fb33}": {"b": 1, "a": 2}}));
        odd.credential = Some("key".into());
        odd.code = Some("c".into());
        odd.request_id = Some("r".into());
        odd.object = None;
        odd.record_id = None;
        for r in [row(1, ZERO_HASH), odd] {
            let mut mine = Vec::new();
            write_row_canonical(&r, None, &mut mine).unwrap();
            assert_eq!(
                String::from_utf8(mine).unwrap(),
                canonical::to_string(&row_document(&r)).unwrap()
            );
            let mut with_hash = Vec::new();
            write_row_canonical(&r, Some("ab"), &mut with_hash).unwrap();
            let mut doc = row_document(&r);
            doc["hash"] = json!("ab");
            assert_eq!(
                String::from_utf8(with_hash).unwrap(),
                canonical::to_string(&doc).unwrap()
            );
        }
    }

    /// A row as the database holds it (its JSON columns as canonical text)
    /// writes the same bytes as the row read; text that is not canonical does
    /// not (and its hash then tells).
    #[test]
    fn a_stored_rows_text_is_its_canonical_form() {
        let mut r = row(3, ZERO_HASH);
        r.client = Some(json!({"version": "1", "name": "cli"}));
        let stored = crate::store::AuditRowText {
            seq: r.seq,
            id: r.id.clone(),
            time: r.time.clone(),
            actor: canonical::to_string(&r.actor).unwrap(),
            via: r.via.clone(),
            client: r.client.as_ref().map(|c| canonical::to_string(c).unwrap()),
            credential: None,
            action: r.action.clone(),
            object: r.object.clone(),
            record_id: r.record_id.clone(),
            changes: r.changes.as_ref().map(|c| canonical::to_string(c).unwrap()),
            outcome: r.outcome.clone(),
            code: None,
            request_id: None,
            prev_hash: r.prev_hash.clone(),
            hash: String::new(),
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write_row_view(&text_view(&stored), None, &mut a).unwrap();
        write_row_canonical(&r, None, &mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            stored.parse(),
            AuditRow {
                hash: String::new(),
                ..r.clone()
            }
        );
        let spaced = crate::store::AuditRowText {
            actor: "{ \"os_user\": \"ops\" }".into(),
            ..stored
        };
        let mut c = Vec::new();
        write_row_view(&text_view(&spaced), None, &mut c).unwrap();
        assert_ne!(c, b);
        let mut d = Vec::new();
        write_row_canonical(&spaced.parse(), None, &mut d).unwrap();
        assert_eq!(d, b, "read, it is the same row");
    }

    #[test]
    fn sensitive_values_become_keyed_hmacs() {
        let key = HmacKey::new(b"AGE-SECRET-KEY-1TEST");
        let mut c = Changes::new();
        c.sensitive("note", Some(&json!("the secret")), &key);
        let v = c.into_value();
        let text = v.to_string();
        assert!(!text.contains("the secret"));
        assert_eq!(v["note"]["hmac_sha256"], key.hmac(&json!("the secret")));
        assert_ne!(
            key.hmac(&json!("the secret")),
            HmacKey::new(b"other").hmac(&json!("the secret"))
        );
    }
}
