//! The manifest, the declared capabilities and positions, and objectos's own
//! policy for the objects (`x-objectos`).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::artifact::json::Map;
use crate::artifact::keys;
use crate::model::*;

use super::walker::{Walker, esc, is_reverse_dns, is_snake};

pub(super) fn validate_manifest(w: &mut Walker<'_>, doc: &Map<'_>) -> Option<Manifest> {
    let Some(value) = doc.get("manifest") else {
        w.err("", "`manifest` is missing; every artifact needs `manifest.id`, `manifest.version` and `manifest.name`");
        return None;
    };
    let map = w.object(value, "/manifest", "`manifest`")?;
    w.unknown_keys(map, "/manifest", keys::manifest(), "`manifest`");
    let mut id = w.req_str(
        map,
        "id",
        "/manifest",
        "give the package an id, preferably reverse-DNS such as `com.example.crm`",
    );
    // Upstream takes any string (`npm create objectstack my-app` writes `my-app`);
    // reverse-DNS is its convention, so anything else is a warning. Control
    // characters are refused: a signature's trusted comment cannot carry them,
    // so the artifact could never be verified against its own id.
    if let Some(text) = id {
        if text.chars().any(char::is_control) {
            w.err(
                "/manifest/id",
                "the id holds a control character (a tab or line break, say), which no signature can name; remove it",
            );
            id = None;
        } else if !is_reverse_dns(text) {
            w.warn("/manifest/id", format!("`{text}` is not a reverse-DNS id; objectos accepts it as upstream does, but an id like `com.example.{}` keeps packages of different publishers apart", text.to_ascii_lowercase().replace(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'), "_")));
        }
    }
    let version = w.req_str(
        map,
        "version",
        "/manifest",
        "give it a semantic version such as `1.0.0`",
    );
    let version = version.and_then(|v| match semver::Version::parse(v) {
        Ok(parsed) => Some(parsed),
        Err(_) => {
            w.err(
                "/manifest/version",
                format!(
                    "`{v}` is not a semantic version; write MAJOR.MINOR.PATCH, such as `1.2.0`"
                ),
            );
            None
        }
    });
    let name = w.opt_str(map, "name", "/manifest").map(str::to_string);
    if name.is_none() {
        w.warn(
            "/manifest",
            "`name` is missing; upstream requires a display name for the package",
        );
    }
    let namespace = w.opt_str(map, "namespace", "/manifest").map(str::to_string);
    if let Some(ns) = &namespace {
        let ok = ns.len() >= 2
            && ns.len() <= 20
            && is_snake(ns)
            && ns.starts_with(|c: char| c.is_ascii_lowercase());
        if !ok {
            w.err("/manifest/namespace", format!("`{ns}` is not a namespace; use 2 to 20 lower-case letters, digits and `_`, starting with a letter"));
        }
    }
    if let Some(kind) = w.opt_str(map, "type", "/manifest")
        && !keys::MANIFEST_TYPES.contains(&kind)
    {
        w.err(
            "/manifest/type",
            format!(
                "`{kind}` is not a package type; use one of {}",
                keys::MANIFEST_TYPES.join(", ")
            ),
        );
    }
    let description = w
        .opt_str(map, "description", "/manifest")
        .map(str::to_string);
    let mut protocol = None;
    match map.get("engines") {
        None => w.warn("/manifest", format!("`engines.protocol` is missing; add `\"engines\": {{\"protocol\": \"^{PROTOCOL_MAJOR}\"}}` so tools know which protocol the artifact speaks")),
        Some(engines) => {
            if let Some(engines) = w.object(engines, "/manifest/engines", "`engines`")
                && let Some(range) = w.opt_str(engines, "protocol", "/manifest/engines") {
                    protocol = Some(range.to_string());
                    match semver::VersionReq::parse(range) {
                        Ok(req) => {
                            let compatible = (0..=99).any(|minor| req.matches(&semver::Version::new(PROTOCOL_MAJOR, minor, 0)));
                            if !compatible {
                                w.err("/manifest/engines/protocol", format!("`{range}` does not admit protocol {PROTOCOL_MAJOR}, the one objectos speaks; build the app for `^{PROTOCOL_MAJOR}`"));
                            }
                        }
                        Err(_) => w.err("/manifest/engines/protocol", format!("`{range}` is not a version range; write it like `^{PROTOCOL_MAJOR}`")),
                    }
                }
        }
    }
    Some(Manifest {
        id: id?.to_string(),
        namespace,
        version: version?,
        name,
        description,
        protocol,
    })
}

pub(super) fn collect_names(w: &mut Walker<'_>, doc: &Map<'_>, key: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (i, item) in w.array(doc, key).iter().enumerate() {
        let pointer = format!("/{key}/{i}");
        if let Some(map) = w.object(item, &pointer, "an entry")
            && let Some(name) = w.req_str(map, "name", &pointer, "give it a name")
        {
            if names.iter().any(|n| n == name) {
                w.err(
                    &format!("{pointer}/name"),
                    format!("`{name}` is defined twice"),
                );
            }
            names.push(name.to_string());
        }
    }
    names
}

#[derive(Default)]
pub(super) struct PolicyEntry {
    pub(super) agent_writes: Option<AgentWrites>,
    pub(super) read_only: bool,
    pub(super) audit_reads: bool,
    pub(super) sensitive_fields: Vec<String>,
}

pub(super) struct Policy {
    pub(super) objects: BTreeMap<String, PolicyEntry>,
    pub(super) expires_after: Duration,
}

pub(super) fn read_policy(w: &mut Walker<'_>, doc: &Map<'_>) -> Policy {
    let mut policy = Policy {
        objects: BTreeMap::new(),
        expires_after: Duration::from_secs(7 * 86_400),
    };
    let Some(value) = doc.get("x-objectos") else {
        return policy;
    };
    let Some(map) = w.object(value, "/x-objectos", "`x-objectos`") else {
        return policy;
    };
    // objectos's own block: a misspelt key would silently weaken policy, so unknown
    // keys are always errors here.
    for key in map.keys() {
        if !keys::POLICY_KEYS.contains(&key) {
            w.err(
                &format!("/x-objectos/{}", esc(key)),
                format!("`{key}` is not a key of `x-objectos`; it takes `objects`, `approvals` and `basedOn`"),
            );
        }
    }
    // An artifact written from an approved metadata change names the artifact it
    // changed: `apply` refuses it once that is no longer the one applied.
    if let Some(based) = map.get("basedOn") {
        let ok = based
            .as_str()
            .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()));
        if !ok {
            w.err(
                "/x-objectos/basedOn",
                "`basedOn` is the sha256 (64 hex digits) of the artifact this one changes",
            );
        }
    }
    if let Some(objects) = map.get("objects")
        && let Some(objects) = w.object(objects, "/x-objectos/objects", "`x-objectos.objects`")
    {
        for (name, entry) in objects {
            let pointer = format!("/x-objectos/objects/{}", esc(name));
            let Some(entry) = w.object(entry, &pointer, "an object's policy") else {
                continue;
            };
            for key in entry.keys() {
                if !keys::OBJECT_POLICY_KEYS.contains(&key) {
                    w.err(&format!("{pointer}/{}", esc(key)), format!("`{key}` is not an object policy; use `agentWrites`, `readOnly`, `auditReads` or `sensitiveFields`"));
                }
            }
            let agent_writes = match w.opt_str(entry, "agentWrites", &pointer) {
                None => None,
                Some("direct") => Some(AgentWrites::Direct),
                Some("approval") => Some(AgentWrites::Approval),
                Some("deny") => Some(AgentWrites::Deny),
                Some(other) => {
                    w.err(&format!("{pointer}/agentWrites"), format!("`{other}` is not an agent write policy; use `direct`, `approval` or `deny`"));
                    None
                }
            };
            let read_only = w.opt_bool(entry, "readOnly", &pointer).unwrap_or(false);
            let audit_reads = w.opt_bool(entry, "auditReads", &pointer).unwrap_or(false);
            let sensitive_fields = w.str_list(entry, "sensitiveFields", &pointer);
            policy.objects.insert(
                name.to_string(),
                PolicyEntry {
                    agent_writes,
                    read_only,
                    audit_reads,
                    sensitive_fields,
                },
            );
        }
    }
    if let Some(approvals) = map.get("approvals")
        && let Some(approvals) = w.object(approvals, "/x-objectos/approvals", "`approvals`")
    {
        for key in approvals.keys() {
            if !keys::APPROVALS_KEYS.contains(&key) {
                w.err(
                    &format!("/x-objectos/approvals/{}", esc(key)),
                    format!("`{key}` is not an approvals setting; it takes `expiresAfter`"),
                );
            }
        }
        if let Some(text) = w.opt_str(approvals, "expiresAfter", "/x-objectos/approvals") {
            match crate::timefmt::parse_duration(text) {
                Ok(d) => policy.expires_after = d,
                Err(e) => w.err("/x-objectos/approvals/expiresAfter", e),
            }
        }
    }
    policy
}
