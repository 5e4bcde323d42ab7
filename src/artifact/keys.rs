//! The shapes objectos accepts, as Rust types: the source of
//! `schemas/objectstack.schema.json` and of the key lists validation checks
//! against, so that the schema and the validator cannot drift apart.
//!
//! Keys objectos enforces are typed; upstream keys it carries without enforcing
//! are `Option<Value>` with a doc comment saying so.

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

// The keys each part of a definition may have, sorted: the properties of
// its shape in the schema (`schemas/objectstack.schema.json`). They are written out
// rather than read from the schema at run time, which cost every `verify` a
// millisecond; `key_lists_are_the_schema_properties` holds them to the schema.

/// The keys of the top level of a definition (`Definition`).
#[rustfmt::skip]
const TOP_KEYS: &[&str] = &[
    "actions", "agents", "analyticsCubes", "api", "apis", "apps", "books", "capabilities",
    "connectors", "dashboards", "data", "datasets", "datasourceMapping", "datasources",
    "devPlugins", "docs", "emailTemplates", "flows", "functions", "hooks", "i18n", "jobs",
    "manifest", "mappings", "objectExtensions", "objects", "packages", "pages", "permissions",
    "plugins", "positions", "reports", "requires", "runtimeModule", "server", "sharingRules",
    "skills", "tiers", "tools", "translations", "viewItems", "views", "webhooks", "x-objectos",
];

/// The keys of `manifest` (`ManifestShape`).
#[rustfmt::skip]
const MANIFEST_KEYS: &[&str] = &[
    "contributes", "data", "datasources", "defaultDatasource", "dependencies", "description",
    "engine", "engines", "id", "integrity", "main", "name", "namespace",
    "navigationContributions", "objects", "packaging", "permissions", "runtime", "scope",
    "type", "version",
];

/// The keys of an object (`ObjectShape`).
#[rustfmt::skip]
const OBJECT_KEYS: &[&str] = &[
    "access", "actions", "activityMilestones", "datasource", "description", "displayNameField",
    "editMode", "enable", "external", "externalSharingModel", "fieldGroups", "fields",
    "fileAccessDelegate", "highlightFields", "icon", "indexes", "isSystem", "label",
    "lifecycle", "listViews", "managedBy", "name", "nameField", "ownership", "pluralLabel",
    "protection", "publicSharing", "requiredPermissions", "searchableFields", "sharingModel",
    "stageField", "systemFields", "tenancy", "titleFormat", "userActions", "validations",
];

/// The keys of a field (`FieldShape`).
#[rustfmt::skip]
const FIELD_KEYS: &[&str] = &[
    "accept", "ackPlaintextMasking", "allowCreate", "autonumberFormat", "currencyConfig",
    "defaultValue", "deleteBehavior", "dependsOn", "description", "descriptionField",
    "dimensions", "displayField", "expression", "externalId", "format", "group", "hidden",
    "inlineAmountField", "inlineColumns", "inlineEdit", "inlineHelpText", "inlineTitle",
    "internal", "label", "language", "lookupColumns", "lookupFilters", "lookupPageSize",
    "maskingRule", "max", "maxLength", "maxSize", "min", "minLength", "multiple", "name",
    "options", "placeholder", "precision", "readonly", "readonlyWhen", "reference",
    "referenceVia", "relatedList", "relatedListColumns", "relatedListFilter",
    "relatedListTitle", "required", "requiredPermissions", "requiredWhen", "returnType", "rows",
    "scale", "searchable", "sortable", "step", "storage", "summaryOperations", "system",
    "trackHistory", "type", "unique", "useGrouping", "valueDomain", "visibleWhen", "widget",
];

/// The keys of a select option (`SelectOptionShape`).
#[rustfmt::skip]
const SELECT_OPTION_KEYS: &[&str] = &[
    "color", "default", "description", "label", "value", "visibleWhen",
];

/// The keys of a permission set (`PermissionSetShape`).
#[rustfmt::skip]
const PERMISSION_SET_KEYS: &[&str] = &[
    "adminScope", "description", "fields", "isDefault", "label", "managedBy", "name", "objects",
    "packageId", "protection", "rowLevelSecurity", "systemPermissions", "tabPermissions",
];

/// The keys of an object's grant in a permission set (`ObjectPermissionShape`).
#[rustfmt::skip]
const OBJECT_PERMISSION_KEYS: &[&str] = &[
    "allowCreate", "allowDelete", "allowEdit", "allowExport", "allowPurge", "allowRead",
    "allowRestore", "allowTransfer", "modifyAllRecords", "readScope", "viewAllRecords",
    "writeScope",
];

/// The keys of a field's grant in a permission set (`FieldPermissionShape`).
const FIELD_PERMISSION_KEYS: &[&str] = &["editable", "readable"];

/// The keys of a sharing rule (`SharingRuleShape`).
#[rustfmt::skip]
const SHARING_RULE_KEYS: &[&str] = &[
    "accessLevel", "active", "condition", "description", "label", "name", "object",
    "sharedWith", "type",
];

/// The keys of a sharing rule's `sharedWith` (`SharedWithShape`).
const SHARED_WITH_KEYS: &[&str] = &["type", "value"];

/// The keys of an action (`ActionShape`).
#[rustfmt::skip]
const ACTION_KEYS: &[&str] = &[
    "ai", "aria", "body", "bodyExtra", "bodyShape", "component", "confirmText", "description",
    "disabled", "errorMessage", "icon", "label", "locations", "method", "mode", "name",
    "newTabUrl", "objectName", "onSuccess", "openIn", "opensInNewTab", "operation", "order",
    "params", "patch", "recordIdField", "recordIdParam", "refreshAfter", "requiredPermissions",
    "resultDialog", "successMessage", "target", "type", "undoable", "variant", "visible",
];

/// The keys of an action's `ai` (`ActionAiShape`).
#[rustfmt::skip]
const ACTION_AI_KEYS: &[&str] = &[
    "category", "description", "exposed", "outputSchema", "paramHints", "requiresConfirmation",
];

/// A list of the keys a part of the definition may have: sorted (suggestions
/// for a key that is not one of them), and spread over [`SLOTS`] slots by
/// length and first and last byte, so that a key is compared only with the
/// keys of its slot, at most three (a test holds every list to that).
/// Validation looks up every key of every part of a definition: a binary
/// search of the sorted list was a tenth of validating a large artifact, and
/// a hash set's lookup, which hashes every byte of the key, still most of the
/// cost of a field's unread keys.
pub struct Known {
    pub sorted: &'static [&'static str],
    /// The keys in slot order: slot `s` holds `by_slot[starts[s]..starts[s + 1]]`.
    by_slot: Box<[&'static str]>,
    starts: Box<[u16]>,
}

impl Known {
    #[inline]
    pub fn contains(&self, key: &str) -> bool {
        let at = slot(key.as_bytes());
        let (Some(&from), Some(&to)) = (self.starts.get(at), self.starts.get(at + 1)) else {
            return false;
        };
        self.by_slot
            .get(usize::from(from)..usize::from(to))
            .is_some_and(|keys| keys.iter().any(|k| super::json::same_key(k, key)))
    }
}

/// How many slots a key list is spread over: a few times the longest list.
const SLOTS: usize = 256;

/// The slot of a key: its length and first and last bytes, mixed (the empty
/// key's is 0, where it is compared and matches none).
fn slot(key: &[u8]) -> usize {
    let (Some(&first), Some(&last)) = (key.first(), key.last()) else {
        return 0;
    };
    let mixed = (key.len() as u32).wrapping_mul(0x9e37_79b9)
        ^ u32::from(first).wrapping_mul(0x85eb_ca6b)
        ^ u32::from(last).wrapping_mul(0xc2b2_ae35);
    (mixed >> 24) as usize % SLOTS
}

/// FNV-1a of some bytes: the keys of a map (checked for repeats) are short,
/// and not chosen against the check; SipHash's setup costs more than their
/// bytes.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A key list, spread over its slots once per process and kept.
fn known(sorted: &'static [&'static str]) -> Known {
    let mut by_slot = sorted.to_vec();
    by_slot.sort_by_key(|key| slot(key.as_bytes()));
    let mut starts = vec![0u16; SLOTS + 1];
    for key in sorted {
        starts[slot(key.as_bytes()) + 1] += 1;
    }
    for at in 1..=SLOTS {
        starts[at] += starts[at - 1];
    }
    Known {
        sorted,
        by_slot: by_slot.into_boxed_slice(),
        starts: starts.into_boxed_slice(),
    }
}

macro_rules! key_list {
    ($name:ident, $field:ident) => {
        pub fn $name() -> &'static Known {
            static CELL: OnceLock<Known> = OnceLock::new();
            CELL.get_or_init(|| known($field))
        }
    };
}

key_list!(top_level, TOP_KEYS);
key_list!(manifest, MANIFEST_KEYS);
key_list!(object, OBJECT_KEYS);
key_list!(field, FIELD_KEYS);
key_list!(select_option, SELECT_OPTION_KEYS);
key_list!(permission_set, PERMISSION_SET_KEYS);
key_list!(object_permission, OBJECT_PERMISSION_KEYS);
key_list!(field_permission, FIELD_PERMISSION_KEYS);
key_list!(sharing_rule, SHARING_RULE_KEYS);
key_list!(shared_with, SHARED_WITH_KEYS);
key_list!(action, ACTION_KEYS);
key_list!(action_ai, ACTION_AI_KEYS);

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

    /// The schema of a shape that is a root of its own (not under `$defs`).
    fn root<T: JsonSchema>() -> (Value, &'static str) {
        let schema = serde_json::to_value(schemars::schema_for!(T)).unwrap();
        (schema, "Definition")
    }

    /// The validator's key lists are the properties of the schema's shapes,
    /// so the schema, the validator and the docs name the same keys: a shape
    /// that gains or loses a key fails here until its list says so too.
    #[test]
    fn key_lists_are_the_schema_properties() {
        let schema = definition_schema();
        let own = |def: &'static str| (schema.clone(), def);
        let lists: [(&str, (Value, &str), &[&str]); 15] = [
            ("top level", own("Definition"), TOP_KEYS),
            ("manifest", own("ManifestShape"), MANIFEST_KEYS),
            ("object", own("ObjectShape"), OBJECT_KEYS),
            ("field", root::<FieldShape>(), FIELD_KEYS),
            (
                "select option",
                root::<SelectOptionShape>(),
                SELECT_OPTION_KEYS,
            ),
            (
                "permission set",
                own("PermissionSetShape"),
                PERMISSION_SET_KEYS,
            ),
            (
                "object permission",
                root::<ObjectPermissionShape>(),
                OBJECT_PERMISSION_KEYS,
            ),
            (
                "field permission",
                root::<FieldPermissionShape>(),
                FIELD_PERMISSION_KEYS,
            ),
            ("sharing rule", own("SharingRuleShape"), SHARING_RULE_KEYS),
            ("shared with", own("SharedWithShape"), SHARED_WITH_KEYS),
            ("action", own("ActionShape"), ACTION_KEYS),
            ("action ai", own("ActionAiShape"), ACTION_AI_KEYS),
            ("x-objectos", own("PolicyShape"), POLICY_KEYS),
            (
                "x-objectos object",
                own("ObjectPolicyShape"),
                OBJECT_POLICY_KEYS,
            ),
            (
                "x-objectos approvals",
                own("ApprovalsShape"),
                APPROVALS_KEYS,
            ),
        ];
        for (what, (schema, def), list) in lists {
            let mut expected = properties_of(&schema, def);
            expected.sort();
            assert!(!expected.is_empty(), "{what}: `{def}` has no properties");
            let mut actual: Vec<String> = list.iter().map(|k| k.to_string()).collect();
            actual.sort();
            assert_eq!(actual, expected, "the keys of {what} (`{def}`)");
        }
    }

    #[test]
    fn key_lists_hold_their_keys_and_no_other() {
        let lists = [
            top_level(),
            manifest(),
            object(),
            field(),
            select_option(),
            permission_set(),
            object_permission(),
            field_permission(),
            sharing_rule(),
            shared_with(),
            action(),
            action_ai(),
        ];
        for list in lists {
            assert!(!list.sorted.is_empty());
            assert!(list.sorted.len() <= SLOTS / 2, "a list fills its slots");
            // Every key is in its slot, and a slot holds few: the point of them.
            assert_eq!(list.by_slot.len(), list.sorted.len());
            assert_eq!(usize::from(list.starts[SLOTS]), list.sorted.len());
            for at in 0..SLOTS {
                let keys =
                    &list.by_slot[usize::from(list.starts[at])..usize::from(list.starts[at + 1])];
                assert!(keys.len() <= 3, "slot {at} holds {keys:?}");
                assert!(keys.iter().all(|k| slot(k.as_bytes()) == at), "{keys:?}");
            }
            for key in list.sorted {
                assert!(list.contains(key), "{key}");
                assert!(!list.contains(&format!("{key}x")), "{key}x");
                assert!(!list.contains(&key[1..]), "{key} less its first byte");
                let last = key.len() - 1;
                assert!(
                    !list.contains(&format!("{}_", &key[..last])),
                    "{key} with its last byte changed"
                );
            }
            assert!(!list.contains(""));
            assert!(list.sorted.windows(2).all(|w| w[0] < w[1]));
        }
        assert!(field().contains("type") && !field().contains("Type"));
        assert!(select_option().contains("value") && !select_option().contains("Value"));
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
