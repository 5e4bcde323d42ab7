//! The shapes objectos accepts, as Rust types: the source of
//! `schemas/objectstack.schema.json` and of the key lists validation checks
//! against, so that the schema and the validator cannot drift apart.
//!
//! Keys objectos enforces are typed; upstream keys it carries without enforcing
//! are `Option<Value>` with a doc comment saying so.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

type Carried = Option<Value>;

/// An ObjectStack definition (`objectstack.json`), protocol 17, as objectos reads it.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(title = "objectstack.json (as accepted by objectos)")]
pub struct Definition {
    pub manifest: ManifestShape,
    pub objects: Option<Vec<ObjectShape>>,
    pub permissions: Option<Vec<PermissionSetShape>>,
    pub sharing_rules: Option<Vec<SharingRuleShape>>,
    pub actions: Option<Vec<ActionShape>>,
    /// App-defined capabilities, granted and required like system permissions.
    /// A name the app grants or requires without declaring it here is an opaque
    /// capability, treated the same way (with a warning)
    pub capabilities: Option<Vec<NamedShape>>,
    /// Positions; objectos keeps a position as a team of that name
    pub positions: Option<Vec<NamedShape>>,
    /// objectos's own policy block
    #[serde(rename = "x-objectos")]
    pub x_objectos: Option<PolicyShape>,
    /// Carried, not enforced
    pub packages: Carried,
    /// Carried, not enforced
    pub datasources: Carried,
    /// Carried, not enforced
    pub datasource_mapping: Carried,
    /// Carried, not enforced
    pub translations: Carried,
    /// Carried, not enforced
    pub i18n: Carried,
    /// Carried, not enforced
    pub object_extensions: Carried,
    /// Carried, not enforced
    pub apps: Carried,
    /// Carried, not enforced
    pub views: Carried,
    /// Carried, not enforced
    pub view_items: Carried,
    /// Carried, not enforced
    pub pages: Carried,
    /// Carried, not enforced
    pub dashboards: Carried,
    /// Carried, not enforced
    pub reports: Carried,
    /// Carried, not enforced
    pub datasets: Carried,
    /// Carried, not enforced
    pub flows: Carried,
    /// Carried, not enforced
    pub jobs: Carried,
    /// Carried, not enforced
    pub email_templates: Carried,
    /// Carried, not enforced
    pub docs: Carried,
    /// Carried, not enforced
    pub books: Carried,
    /// Carried, not enforced
    pub apis: Carried,
    /// Carried, not enforced
    pub webhooks: Carried,
    /// Carried, not enforced
    pub api: Carried,
    /// Carried, not enforced
    pub server: Carried,
    /// Carried, not enforced
    pub agents: Carried,
    /// Carried, not enforced
    pub tools: Carried,
    /// Carried, not enforced
    pub skills: Carried,
    /// Carried, not run: objectos runs no app code
    pub hooks: Carried,
    /// Carried, not run: objectos runs no app code
    pub functions: Carried,
    /// Carried, not enforced
    pub mappings: Carried,
    /// Carried, not enforced
    pub analytics_cubes: Carried,
    /// Carried, not enforced
    pub connectors: Carried,
    /// Seed data; carried, not loaded
    pub data: Carried,
    /// Carried, not enforced
    pub plugins: Carried,
    /// Carried, not enforced
    pub requires: Carried,
    /// Carried, not enforced
    pub tiers: Carried,
    /// Carried, not enforced
    pub dev_plugins: Carried,
    /// Carried, not enforced
    pub runtime_module: Carried,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestShape {
    /// Package id, any non-empty string as upstream takes it; reverse-DNS such
    /// as `com.example.crm` is the convention, and anything else is a warning
    pub id: String,
    /// Prefix of every object name (`<namespace>_…`)
    pub namespace: Option<String>,
    /// Semantic version; `apply` refuses a lower one without `--allow-downgrade`
    pub version: String,
    /// Package type (`app`, `plugin`, …); `build` fills `app`
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    /// `{"protocol": "^17"}`
    pub engines: Option<Map<String, Value>>,
    /// Carried
    pub default_datasource: Carried,
    /// Carried
    pub scope: Carried,
    /// Carried
    pub permissions: Carried,
    /// Carried
    pub objects: Carried,
    /// Carried
    pub datasources: Carried,
    /// Carried
    pub dependencies: Carried,
    /// Carried
    pub contributes: Carried,
    /// Carried
    pub data: Carried,
    /// Carried
    pub navigation_contributions: Carried,
    /// Carried
    pub engine: Carried,
    /// Carried
    pub runtime: Carried,
    /// Carried
    pub packaging: Carried,
    /// Carried
    pub main: Carried,
    /// Carried
    pub integrity: Carried,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectShape {
    /// snake_case, unique, `<namespace>_…`
    pub name: String,
    pub label: Option<String>,
    /// `user` (default), `org` or `none`; `business_unit` is refused (not enforced)
    pub ownership: Option<String>,
    /// `private` (default), `public_read`, `public_read_write`, `controlled_by_parent`
    pub sharing_model: Option<String>,
    /// Field name → definition
    pub fields: Map<String, Value>,
    /// Permissions needed to use the object, all of them: a list, or per
    /// operation. Any name: objectos's system permissions, upstream's built-in
    /// capabilities, or app capabilities, declared or not
    pub required_permissions: Option<Value>,
    /// Carried
    pub plural_label: Carried,
    /// Carried
    pub description: Carried,
    /// Carried
    pub icon: Carried,
    /// Carried
    pub is_system: Carried,
    /// Carried
    pub managed_by: Carried,
    /// Carried
    pub user_actions: Carried,
    /// Refused when it opts out of the organization column
    pub system_fields: Carried,
    /// Carried
    pub datasource: Carried,
    /// Carried
    pub external: Carried,
    /// Carried
    pub indexes: Carried,
    /// Carried
    pub field_groups: Carried,
    /// Refused unless `{"enabled": true}`
    pub tenancy: Carried,
    /// Carried
    pub access: Carried,
    /// Carried
    pub lifecycle: Carried,
    /// Carried
    pub file_access_delegate: Carried,
    /// Carried, not enforced
    pub validations: Carried,
    /// Carried
    pub activity_milestones: Carried,
    /// Carried
    pub name_field: Carried,
    /// Carried
    pub display_name_field: Carried,
    /// Carried
    pub title_format: Carried,
    /// Carried
    pub highlight_fields: Carried,
    /// Carried
    pub stage_field: Carried,
    /// Carried
    pub edit_mode: Carried,
    /// Carried
    pub list_views: Carried,
    /// Carried
    pub searchable_fields: Carried,
    /// Refused when it restricts the API (`apiEnabled: false`, `apiMethods`)
    pub enable: Carried,
    /// Carried (objectos has no external principals)
    pub external_sharing_model: Carried,
    /// Refused when enabled (share links are not offered)
    pub public_sharing: Carried,
    /// Copies of the top-level actions bound to this object; carried
    pub actions: Carried,
    /// Carried
    pub protection: Carried,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldShape {
    /// One of the 49 field types of protocol 17
    #[serde(rename = "type")]
    pub kind: String,
    /// Equal to the map key when present
    pub name: Option<String>,
    pub label: Option<String>,
    pub required: Option<bool>,
    /// `true`/`"organization"` (per organization) or `"global"`
    pub unique: Option<Value>,
    /// A literal, `NOW()`, `current_user`, or a CEL envelope (carried, not evaluated)
    pub default_value: Option<Value>,
    /// Target object of `lookup` and `master_detail`
    pub reference: Option<String>,
    pub multiple: Option<bool>,
    /// `[{"label", "value"}]` for select-like types
    pub options: Option<Vec<Value>>,
    /// Nobody writes it through any surface
    pub readonly: Option<bool>,
    /// Never returned on any surface
    pub internal: Option<bool>,
    pub max_length: Option<u64>,
    pub min_length: Option<u64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Permissions a user must all hold to read (and write) the field; refused
    /// on a system field the app declares (`owner_id`, `created_at`, …), which
    /// whoever reads the record reads
    pub required_permissions: Option<Vec<String>>,
    /// Refused: field masking is not enforced
    pub masking_rule: Carried,
    /// Refused: conditional read-only is not enforced
    pub readonly_when: Carried,
    /// Carried
    pub description: Carried,
    /// Carried
    pub format: Carried,
    /// Carried
    pub storage: Carried,
    /// Carried
    pub searchable: Carried,
    /// Carried
    pub value_domain: Carried,
    /// Carried
    pub rows: Carried,
    /// Carried
    pub precision: Carried,
    /// Carried
    pub scale: Carried,
    /// Carried
    pub use_grouping: Carried,
    /// Carried
    pub accept: Carried,
    /// Carried
    pub max_size: Carried,
    /// Carried
    pub reference_via: Carried,
    /// Carried
    pub delete_behavior: Carried,
    /// Carried
    pub inline_edit: Carried,
    /// Carried
    pub inline_title: Carried,
    /// Carried
    pub inline_amount_field: Carried,
    /// Carried
    pub inline_columns: Carried,
    /// Carried
    pub related_list: Carried,
    /// Carried
    pub related_list_title: Carried,
    /// Carried
    pub related_list_columns: Carried,
    /// Carried
    pub related_list_filter: Carried,
    /// Carried
    pub display_field: Carried,
    /// Carried
    pub description_field: Carried,
    /// Carried
    pub lookup_columns: Carried,
    /// Carried
    pub lookup_page_size: Carried,
    /// Carried
    pub lookup_filters: Carried,
    /// Carried
    pub depends_on: Carried,
    /// Carried
    pub allow_create: Carried,
    /// Carried, not computed
    pub expression: Carried,
    /// Carried
    pub return_type: Carried,
    /// Carried, not computed
    pub summary_operations: Carried,
    /// Carried
    pub language: Carried,
    /// Carried
    pub step: Carried,
    /// Carried
    pub currency_config: Carried,
    /// Carried
    pub dimensions: Carried,
    /// Carried
    pub track_history: Carried,
    /// Carried
    pub group: Carried,
    /// Carried (display only)
    pub visible_when: Carried,
    /// Carried, not enforced
    pub required_when: Carried,
    /// Carried
    pub widget: Carried,
    /// Carried (display only)
    pub hidden: Carried,
    /// Carried
    pub ack_plaintext_masking: Carried,
    /// Carried
    pub system: Carried,
    /// Carried
    pub sortable: Carried,
    /// Carried
    pub inline_help_text: Carried,
    /// Carried
    pub placeholder: Carried,
    /// Carried
    pub autonumber_format: Carried,
    /// Carried
    pub external_id: Carried,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelectOptionShape {
    pub label: Option<String>,
    pub value: String,
    /// Carried
    pub description: Carried,
    /// Carried
    pub color: Carried,
    /// Carried
    pub default: Carried,
    /// Carried
    pub visible_when: Carried,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PermissionSetShape {
    pub name: String,
    pub label: Option<String>,
    pub description: Option<String>,
    /// A default set applies to every user, as upstream binds it to everyone
    pub is_default: Option<bool>,
    /// Object name → rights; a grant on an upstream platform object (`sys_*`)
    /// is ignored with a warning
    pub objects: Map<String, Value>,
    /// `"object.field"` → `{readable, editable}`; grants on `sys_*` objects are
    /// ignored with a warning
    pub fields: Option<Map<String, Value>>,
    /// Permissions granted: objectos's system permissions, upstream's built-in
    /// capabilities (which have no effect in objectos but `manage_users` and
    /// `manage_metadata`), and app capabilities, declared or not
    pub system_permissions: Option<Vec<String>>,
    /// Refused unless empty: row-level security is not enforced
    pub row_level_security: Carried,
    /// Refused: delegated administration is not enforced
    pub admin_scope: Carried,
    /// Carried
    pub package_id: Carried,
    /// Carried
    pub managed_by: Carried,
    /// Carried
    pub tab_permissions: Carried,
    /// Carried
    pub protection: Carried,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectPermissionShape {
    pub allow_read: Option<bool>,
    pub allow_create: Option<bool>,
    pub allow_edit: Option<bool>,
    pub allow_delete: Option<bool>,
    pub view_all_records: Option<bool>,
    pub modify_all_records: Option<bool>,
    /// Gates `objectos export`
    pub allow_export: Option<bool>,
    /// `own` (default) or `org`; hierarchy scopes are refused
    pub read_scope: Option<String>,
    /// `own` (default) or `org`; hierarchy scopes are refused
    pub write_scope: Option<String>,
    /// Carried: objectos offers no such operation
    pub allow_transfer: Carried,
    /// Carried: objectos offers no such operation
    pub allow_restore: Carried,
    /// Carried: objectos offers no such operation
    pub allow_purge: Carried,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldPermissionShape {
    /// Default `true`
    pub readable: Option<bool>,
    /// Default `false`
    pub editable: Option<bool>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SharingRuleShape {
    pub name: String,
    pub object: String,
    /// Default `true`
    pub active: Option<bool>,
    /// An ObjectQL filter object, or `{"dialect": "cel", "source": "…"}`; one that
    /// matches every record is refused
    pub condition: Value,
    /// `read` (default) or `edit`
    pub access_level: Option<String>,
    pub shared_with: SharedWithShape,
    /// `criteria`, the only kind
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Carried
    pub label: Carried,
    /// Carried
    pub description: Carried,
}

#[derive(Serialize, Deserialize, JsonSchema)]
pub struct SharedWithShape {
    /// `user`, `team` or `position`; the others are refused
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionShape {
    pub name: String,
    pub label: Option<Value>,
    pub object_name: Option<String>,
    /// Default `script`
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `update`: the only operation objectos runs
    pub operation: Option<String>,
    /// Field values an `update` action assigns
    pub patch: Option<Map<String, Value>>,
    /// Carried
    pub params: Carried,
    pub confirm_text: Option<Value>,
    pub variant: Option<String>,
    /// Permissions needed to run it, all of them
    pub required_permissions: Option<Vec<String>>,
    pub ai: Option<ActionAiShape>,
    /// Carried
    pub description: Carried,
    /// Carried
    pub icon: Carried,
    /// Carried
    pub locations: Carried,
    /// Carried
    pub component: Carried,
    /// Carried
    pub target: Carried,
    /// Carried
    pub open_in: Carried,
    /// Carried, not run
    pub body: Carried,
    /// Carried
    pub order: Carried,
    /// Carried
    pub success_message: Carried,
    /// Carried
    pub error_message: Carried,
    /// Carried
    pub refresh_after: Carried,
    /// Carried
    pub undoable: Carried,
    /// Carried
    pub result_dialog: Carried,
    /// Carried
    pub visible: Carried,
    /// Carried
    pub disabled: Carried,
    /// Carried
    pub record_id_param: Carried,
    /// Carried
    pub record_id_field: Carried,
    /// Carried
    pub body_shape: Carried,
    /// Carried
    pub method: Carried,
    /// Carried
    pub body_extra: Carried,
    /// Carried
    pub mode: Carried,
    /// Carried
    pub opens_in_new_tab: Carried,
    /// Carried
    pub new_tab_url: Carried,
    /// Carried
    pub on_success: Carried,
    /// Carried
    pub aria: Carried,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionAiShape {
    pub exposed: Option<bool>,
    pub description: Option<String>,
    /// An agent's run waits for a reviewer
    pub requires_confirmation: Option<bool>,
    /// Carried
    pub category: Carried,
    /// Carried
    pub param_hints: Carried,
    /// Carried
    pub output_schema: Carried,
}

#[derive(Serialize, Deserialize, JsonSchema)]
pub struct NamedShape {
    pub name: String,
    pub label: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
pub struct PolicyShape {
    /// Object name → policy
    pub objects: Option<std::collections::BTreeMap<String, ObjectPolicyShape>>,
    pub approvals: Option<ApprovalsShape>,
    /// The sha256 of the artifact this one was written from (an approved
    /// metadata change); `apply` refuses it once that is no longer applied
    #[serde(rename = "basedOn")]
    pub based_on: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectPolicyShape {
    /// `direct` (default), `approval` or `deny`
    pub agent_writes: Option<String>,
    /// Refuse writes on every surface
    pub read_only: Option<bool>,
    /// Audit every read of the object's records
    pub audit_reads: Option<bool>,
    /// Readable and editable only by an explicit grant
    pub sensitive_fields: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalsShape {
    /// How long a pending action waits, such as `7d`
    pub expires_after: Option<String>,
}

/// The keys of the `x-objectos` block, level by level, as validation checks them
/// (an unknown key there is always an error): the block itself, one object's
/// policy under `objects`, and `approvals`. `docs/artifact.md` documents each.
pub const POLICY_KEYS: &[&str] = &["objects", "approvals", "basedOn"];
pub const OBJECT_POLICY_KEYS: &[&str] =
    &["agentWrites", "readOnly", "auditReads", "sensitiveFields"];
pub const APPROVALS_KEYS: &[&str] = &["expiresAfter"];

/// The JSON Schema of what objectos accepts.
pub fn definition_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(Definition)).unwrap_or(Value::Null)
}

fn properties_of(schema: &Value, def: &str) -> Vec<String> {
    let node = if def == "Definition" {
        schema.get("properties")
    } else {
        schema
            .get("$defs")
            .and_then(|d| d.get(def))
            .and_then(|d| d.get("properties"))
    };
    node.and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

struct KeyLists {
    top: Vec<String>,
    manifest: Vec<String>,
    object: Vec<String>,
    field: Vec<String>,
    select_option: Vec<String>,
    permission_set: Vec<String>,
    object_permission: Vec<String>,
    field_permission: Vec<String>,
    sharing_rule: Vec<String>,
    shared_with: Vec<String>,
    action: Vec<String>,
    action_ai: Vec<String>,
}

fn lists() -> &'static KeyLists {
    static LISTS: OnceLock<KeyLists> = OnceLock::new();
    LISTS.get_or_init(|| {
        let schema = definition_schema();
        let field_schema =
            serde_json::to_value(schemars::schema_for!(FieldShape)).unwrap_or(Value::Null);
        let option_schema =
            serde_json::to_value(schemars::schema_for!(SelectOptionShape)).unwrap_or(Value::Null);
        let object_perm = serde_json::to_value(schemars::schema_for!(ObjectPermissionShape))
            .unwrap_or(Value::Null);
        let field_perm = serde_json::to_value(schemars::schema_for!(FieldPermissionShape))
            .unwrap_or(Value::Null);
        KeyLists {
            top: properties_of(&schema, "Definition"),
            manifest: properties_of(&schema, "ManifestShape"),
            object: properties_of(&schema, "ObjectShape"),
            field: properties_of(&field_schema, "Definition"),
            select_option: properties_of(&option_schema, "Definition"),
            permission_set: properties_of(&schema, "PermissionSetShape"),
            object_permission: properties_of(&object_perm, "Definition"),
            field_permission: properties_of(&field_perm, "Definition"),
            sharing_rule: properties_of(&schema, "SharingRuleShape"),
            shared_with: properties_of(&schema, "SharedWithShape"),
            action: properties_of(&schema, "ActionShape"),
            action_ai: properties_of(&schema, "ActionAiShape"),
        }
    })
}

/// A list of the keys a part of the definition may have: sorted (suggestions
/// for a key that is not one of them), and hashed (validation looks up every
/// key of every part of a definition, and a binary search of the sorted list
/// was a tenth of validating a large artifact).
pub struct Known {
    pub sorted: &'static [&'static str],
    set: HashSet<&'static str, BuildHasherDefault<Fnv>>,
}

impl Known {
    pub fn contains(&self, key: &str) -> bool {
        self.set.contains(key)
    }
}

/// FNV-1a: keys are short and few, and not chosen against the table (the
/// lists are ours); SipHash's setup costs more than the keys' bytes.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// FNV-1a of some bytes, for hashing keys outside a table.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hasher = Fnv::default();
    hasher.write(bytes);
    hasher.finish()
}

/// A key list, built once per process (a dozen short lists) and kept.
fn known(list: &'static [String]) -> Known {
    let mut sorted: Vec<&'static str> = list.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let set = sorted.iter().copied().collect();
    Known {
        sorted: Box::leak(sorted.into_boxed_slice()),
        set,
    }
}

macro_rules! key_list {
    ($name:ident, $field:ident) => {
        pub fn $name() -> &'static Known {
            static CELL: OnceLock<Known> = OnceLock::new();
            CELL.get_or_init(|| known(&lists().$field))
        }
    };
}

key_list!(top_level, top);
key_list!(manifest, manifest);
key_list!(object, object);
key_list!(field, field);
key_list!(select_option, select_option);
key_list!(permission_set, permission_set);
key_list!(object_permission, object_permission);
key_list!(field_permission, field_permission);
key_list!(sharing_rule, sharing_rule);
key_list!(shared_with, shared_with);
key_list!(action, action);
key_list!(action_ai, action_ai);

/// Package types upstream defines.
pub const MANIFEST_TYPES: &[&str] = &[
    "plugin", "ui", "driver", "server", "app", "theme", "agent", "objectql", "module", "gateway",
    "adapter",
];

/// Top-level collections carried verbatim; `inspect` lists them as "carried, not enforced".
pub const CARRIED_COLLECTIONS: &[&str] = &[
    "datasources",
    "datasourceMapping",
    "translations",
    "i18n",
    "objectExtensions",
    "apps",
    "views",
    "pages",
    "dashboards",
    "reports",
    "datasets",
    "flows",
    "jobs",
    "emailTemplates",
    "docs",
    "books",
    "apis",
    "webhooks",
    "api",
    "server",
    "agents",
    "tools",
    "skills",
    "hooks",
    "functions",
    "mappings",
    "analyticsCubes",
    "connectors",
    "data",
    "plugins",
    "requires",
    "tiers",
    "devPlugins",
    "runtimeModule",
];

/// The metadata protection envelope upstream's loader puts on any item (ADR-0010).
pub fn is_envelope(key: &str) -> bool {
    matches!(
        key,
        "_lock"
            | "_lockReason"
            | "_lockSource"
            | "_provenance"
            | "_packageId"
            | "_packageVersion"
            | "_lockDocsUrl"
    )
}

/// The closest known key, for "did you mean".
pub fn suggest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| {
            (
                distance(&key.to_ascii_lowercase(), &k.to_ascii_lowercase()),
                *k,
            )
        })
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lists_come_from_the_schema_types() {
        assert!(top_level().contains("x-objectos"));
        assert!(top_level().contains("sharingRules"));
        assert!(object().contains("sharingModel"));
        assert!(field().contains("requiredPermissions"));
        assert!(field().contains("type"));
        assert!(object_permission().contains("viewAllRecords"));
        assert!(shared_with().contains("value"));
        assert!(action_ai().contains("requiresConfirmation"));
    }

    /// The validator's `x-objectos` key lists are the properties of the schema's
    /// policy shapes, so the schema, the validator and the docs name the same keys.
    #[test]
    fn policy_key_lists_are_the_schema_properties() {
        let schema = definition_schema();
        for (def, list) in [
            ("PolicyShape", POLICY_KEYS),
            ("ObjectPolicyShape", OBJECT_POLICY_KEYS),
            ("ApprovalsShape", APPROVALS_KEYS),
        ] {
            let mut expected = properties_of(&schema, def);
            expected.sort();
            let mut actual: Vec<String> = list.iter().map(|k| k.to_string()).collect();
            actual.sort();
            assert_eq!(actual, expected, "{def}");
        }
    }

    #[test]
    fn key_lists_hold_their_keys_and_no_other() {
        for list in [top_level(), object(), field(), select_option(), action_ai()] {
            assert!(!list.sorted.is_empty());
            for key in list.sorted {
                assert!(list.contains(key), "{key}");
                assert!(!list.contains(&format!("{key}x")), "{key}x");
            }
            assert!(list.sorted.windows(2).all(|w| w[0] < w[1]));
        }
        assert!(field().contains("type") && !field().contains("Type"));
        assert!(!object().contains(""));
    }

    #[test]
    fn suggestions_catch_typos() {
        assert_eq!(
            suggest("sharingModle", object().sorted),
            Some("sharingModel")
        );
        assert_eq!(suggest("zzzzzzzz", object().sorted), None);
    }
}
