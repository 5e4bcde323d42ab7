//! What an artifact means to objectos: the typed app model that the toolchain's
//! validation produces and the runtime enforces, with the filter language its
//! sharing rules are written in. Pure data: no database, no I/O. The document
//! itself is kept as JSON so that everything objectos does not model is carried
//! verbatim.

pub mod cel;
pub mod filter;
pub mod values;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde_json::Value;

use crate::model::filter::Filter;

/// The upstream protocol major version objectos speaks.
pub const PROTOCOL_MAJOR: u64 = 17;

/// System permissions objectos defines (docs/security-model.md), each with its meaning in
/// [`system_permission_meaning`]. Apps may define more as `capabilities`; those
/// are granted and required the same way.
///
/// Two of them share a name with upstream's built-in capability vocabulary
/// ([`UPSTREAM_CAPABILITIES`]) and mean, in objectos, what is written here:
/// `manage_users` (manage people) and `manage_metadata`, which decides who may
/// propose metadata (artifact) changes through an agent. objectos's own
/// `apply` stays the operator's, behind a trusted signature; holding
/// `manage_metadata` never applies anything by itself.
pub const SYSTEM_PERMISSIONS: &[&str] = &[
    "manage_users",
    "manage_permissions",
    "manage_settings",
    "approve_actions",
    "view_audit",
    "export_audit",
    "api_access",
    "agent_access",
    "manage_metadata",
];

/// What objectos reserves each of its [`SYSTEM_PERMISSIONS`] for.
pub fn system_permission_meaning(name: &str) -> Option<&'static str> {
    Some(match name {
        "manage_users" => "manage users",
        "manage_permissions" => "assign and revoke permission sets",
        "manage_settings" => "change instance settings",
        "approve_actions" => "review agent actions that wait for approval",
        "view_audit" => "read the audit trail",
        // Archives are whole and unredacted: only the host operator makes them,
        // with the CLI (`audit export`); no HTTP route takes this right.
        "export_audit" => {
            "no HTTP right: audit archives are made by the host operator with the CLI"
        }
        "api_access" => "use the HTTP API",
        "agent_access" => "act through agent keys",
        "manage_metadata" => "propose metadata changes through an agent",
        _ => return None,
    })
}

/// Upstream's built-in platform capabilities (`PLATFORM_CAPABILITIES`, protocol
/// 17). Apps may grant and require them like any capability. Apart from the
/// two that are also objectos's own ([`SYSTEM_PERMISSIONS`]: `manage_users`,
/// `manage_metadata`), holding one has no effect in objectos: no objectos
/// surface asks for it. A `requiredPermissions` that names one is still
/// enforced, as for any capability.
pub const UPSTREAM_CAPABILITIES: &[&str] = &[
    "manage_users",
    "manage_org_users",
    "manage_metadata",
    "manage_org_presentation",
    "manage_platform_settings",
    "setup.access",
    "setup.write",
    "studio.access",
    "manage_sharing",
];

/// Where a permission name an app uses comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermissionOrigin {
    /// One of objectos's [`SYSTEM_PERMISSIONS`]: it means what
    /// [`system_permission_meaning`] says.
    Objectos,
    /// Upstream's built-in vocabulary ([`UPSTREAM_CAPABILITIES`]) that objectos
    /// gives no meaning of its own: holding it does only what the app's
    /// `requiredPermissions` that name it ask for.
    Upstream,
    /// Declared by the app under `capabilities`.
    Declared,
    /// Used by the app (granted or required) without a declaration: an opaque
    /// capability, granted and required like a declared one.
    Undeclared,
}

impl PermissionOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Objectos => "objectos",
            Self::Upstream => "upstream",
            Self::Declared => "app",
            Self::Undeclared => "app_undeclared",
        }
    }
}

/// Columns every object's table has, which only the system writes.
pub const SYSTEM_FIELDS: &[&str] = &[
    "id",
    "owner_id",
    "organization_id",
    "created_by",
    "created_at",
    "updated_by",
    "updated_at",
    // The record's version: 1 when created, one more at every change (the
    // `ETag` of the API, and what `If-Match` and pending actions check).
    "row_version",
];

/// How a system field is stored: timestamps as date-times, the rest (ids) as text.
pub fn system_field_storage(name: &str) -> Option<Storage> {
    match name {
        "created_at" | "updated_at" => Some(Storage::DateTime),
        n if SYSTEM_FIELDS.contains(&n) => Some(Storage::Text),
        _ => None,
    }
}

/// The type an app must give a system field it declares for the declaration to
/// be merged with the system field, as `(type, reference)` pairs: a reference
/// of `None` means the type takes none (or, for `user`, `sys_user`). These are
/// the shapes upstream injects the same fields with.
pub fn system_field_shapes(name: &str) -> &'static [(&'static str, Option<&'static str>)] {
    match name {
        "id" => &[("text", None)],
        "owner_id" | "created_by" | "updated_by" => &[("user", None), ("lookup", Some("sys_user"))],
        "created_at" | "updated_at" => &[("datetime", None)],
        "organization_id" => &[("lookup", Some("sys_organization"))],
        _ => &[],
    }
}

/// A system field the app declares itself, merged with the system field: no
/// second column, and the system's rules (objectos fills it; whoever reads the
/// record reads it) apply. Kept for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedSystemField {
    pub name: String,
    pub label: String,
    pub field_type: String,
}

/// A grant a permission set makes on something objectos does not have
/// (upstream's platform objects, `sys_*`), dropped at validation with a warning.
/// Dropping a grant can only narrow access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredGrant {
    pub permission_set: String,
    /// `sys_user`, or `sys_user.email` for a field grant
    pub target: String,
}

/// Every field type protocol 17 defines, in upstream's declaration order.
pub const FIELD_TYPES: &[&str] = &[
    "text",
    "textarea",
    "email",
    "url",
    "phone",
    "password",
    "secret",
    "markdown",
    "html",
    "richtext",
    "number",
    "currency",
    "percent",
    "date",
    "datetime",
    "time",
    "boolean",
    "toggle",
    "select",
    "multiselect",
    "radio",
    "checkboxes",
    "lookup",
    "master_detail",
    "tree",
    "user",
    "image",
    "file",
    "avatar",
    "video",
    "audio",
    "formula",
    "summary",
    "autonumber",
    "composite",
    "repeater",
    "record",
    "location",
    "address",
    "code",
    "json",
    "color",
    "rating",
    "slider",
    "signature",
    "qrcode",
    "progress",
    "tags",
    "vector",
];

#[derive(Debug, Clone)]
pub struct Model {
    pub manifest: Manifest,
    pub objects: Vec<ObjectDef>,
    pub permission_sets: Vec<PermissionSetDef>,
    pub sharing_rules: Vec<SharingRuleDef>,
    pub actions: Vec<ActionDef>,
    /// App-defined capabilities (granted like system permissions), as declared
    /// under `capabilities`.
    pub capabilities: Vec<String>,
    /// Names the app grants or requires without declaring them, and that are
    /// neither objectos's nor upstream's: opaque capabilities, granted and
    /// required exactly like declared ones.
    pub undeclared_capabilities: Vec<String>,
    /// Grants on upstream platform objects, dropped (see [`IgnoredGrant`]).
    pub ignored_grants: Vec<IgnoredGrant>,
    /// Positions declared by the app (kept as teams of that name).
    pub positions: Vec<String>,
    pub approvals_expire_after: Duration,
    index: HashMap<String, usize>,
}

#[derive(Debug, Clone)]
pub struct Manifest {
    pub id: String,
    pub namespace: Option<String>,
    pub version: semver::Version,
    pub name: Option<String>,
    pub description: Option<String>,
    pub protocol: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    User,
    Org,
    None,
}

impl Ownership {
    pub fn as_str(self) -> &'static str {
        match self {
            Ownership::User => "user",
            Ownership::Org => "org",
            Ownership::None => "none",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SharingModel {
    Private,
    ControlledByParent,
    PublicRead,
    PublicReadWrite,
}

impl SharingModel {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "private" => Self::Private,
            "public_read" => Self::PublicRead,
            "public_read_write" => Self::PublicReadWrite,
            "controlled_by_parent" => Self::ControlledByParent,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::PublicRead => "public_read",
            Self::PublicReadWrite => "public_read_write",
            Self::ControlledByParent => "controlled_by_parent",
        }
    }

    /// How open the model is by default (0 = private); used to flag widening.
    pub fn openness(self) -> u8 {
        match self {
            Self::Private | Self::ControlledByParent => 0,
            Self::PublicRead => 1,
            Self::PublicReadWrite => 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentWrites {
    Direct,
    Approval,
    Deny,
}

#[derive(Debug, Clone)]
pub struct ObjectDef {
    pub name: String,
    pub label: String,
    pub ownership: Ownership,
    pub sharing_model: SharingModel,
    pub fields: Vec<FieldDef>,
    /// System permissions needed for each operation on the object at all.
    pub required_permissions: ObjectGate,
    /// `x-objectos` policy
    pub agent_writes: AgentWrites,
    pub read_only: bool,
    pub audit_reads: bool,
    /// The `master_detail` field naming the parent, for `controlled_by_parent`.
    pub parent_field: Option<String>,
    /// System fields the app declares too, merged with them; never in `fields`.
    pub merged_system_fields: Vec<MergedSystemField>,
    /// Positions in `fields`, in the order of their names: a lookup by name
    /// without a second copy of every name (a large artifact has tens of
    /// thousands of fields).
    by_name: Vec<u32>,
}

/// Upstream's object-level capability gate: every listed permission is needed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectGate {
    pub read: Vec<String>,
    pub create: Vec<String>,
    pub update: Vec<String>,
    pub delete: Vec<String>,
}

/// How a field's values are stored and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    Text,
    Number,
    Boolean,
    Date,
    DateTime,
    Time,
    /// Arrays and objects, stored as JSON text.
    Json,
}

#[derive(Debug, Clone)]
pub struct FieldDef {
    pub name: String,
    pub label: String,
    /// One of [`FIELD_TYPES`].
    pub field_type: &'static str,
    pub storage: Storage,
    pub required: bool,
    pub unique: Unique,
    /// The default, the object pointed at and the allowed values, boxed:
    /// most fields have none of them (see [`FieldDef::bounds`]).
    pub extras: Option<Box<FieldExtras>>,
    pub multiple: bool,
    /// Nobody writes it through any surface (`readonly`, or computed by upstream).
    pub readonly: bool,
    /// Never returned on any surface (upstream `internal`).
    pub internal: bool,
    /// `maxLength`, `minLength`, `min` and `max`, boxed: most fields have
    /// none, and a large artifact has tens of thousands of fields (64 bytes
    /// of empty slots each).
    pub bounds: Option<Box<Bounds>>,
    pub required_permissions: Vec<String>,
    /// In `sensitiveFields`, or of type `secret`/`password`.
    pub sensitive: bool,
}

/// What few fields have (see [`FieldDef::extras`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldExtras {
    pub default_value: Option<DefaultValue>,
    pub reference: Option<String>,
    /// Allowed values, for select-like types.
    pub options: Vec<String>,
}

/// The bounds a field's values keep (see [`FieldDef::bounds`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Bounds {
    pub max_length: Option<u64>,
    pub min_length: Option<u64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// `value` boxed when anything in it is set; `None` when it is all defaults
/// (how [`FieldDef::extras`] and [`FieldDef::bounds`] are kept).
pub fn boxed_if_set<T: Default + PartialEq>(value: T) -> Option<Box<T>> {
    (value != T::default()).then(|| Box::new(value))
}

impl FieldDef {
    pub fn default_value(&self) -> Option<&DefaultValue> {
        self.extras.as_ref().and_then(|e| e.default_value.as_ref())
    }

    pub fn reference(&self) -> Option<&str> {
        self.extras.as_ref().and_then(|e| e.reference.as_deref())
    }

    /// Allowed values, for select-like types (empty: any).
    pub fn options(&self) -> &[String] {
        self.extras.as_ref().map_or(&[], |e| &e.options)
    }

    pub fn set_default_value(&mut self, default: DefaultValue) {
        self.extras.get_or_insert_with(Box::default).default_value = Some(default);
    }

    pub fn max_length(&self) -> Option<u64> {
        self.bounds.as_ref().and_then(|b| b.max_length)
    }

    pub fn min_length(&self) -> Option<u64> {
        self.bounds.as_ref().and_then(|b| b.min_length)
    }

    pub fn min(&self) -> Option<f64> {
        self.bounds.as_ref().and_then(|b| b.min)
    }

    pub fn max(&self) -> Option<f64> {
        self.bounds.as_ref().and_then(|b| b.max)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unique {
    No,
    /// One holder per organization (`true` or `"organization"`).
    Organization,
    /// One holder across the instance.
    Global,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DefaultValue {
    /// Boxed: most fields have no default, and every field carries the slot.
    Literal(Box<Value>),
    Now,
    CurrentUser,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ObjectRights {
    pub read: bool,
    pub create: bool,
    pub edit: bool,
    pub delete: bool,
    pub view_all: bool,
    pub modify_all: bool,
    pub export: bool,
    /// `readScope: org`
    pub read_org: bool,
    /// `writeScope: org`
    pub write_org: bool,
}

impl ObjectRights {
    /// The rights after their implications (docs/security-model.md, "Object rights").
    pub fn implied(self) -> ObjectRights {
        let modify_all = self.modify_all;
        let view_all = self.view_all || modify_all;
        let edit = self.edit || modify_all;
        let delete = self.delete || modify_all;
        let read = self.read || self.create || edit || delete || view_all;
        ObjectRights {
            read,
            create: self.create,
            edit,
            delete,
            view_all,
            modify_all,
            export: self.export,
            // A scope widens that set's own read or edit, and grants nothing alone.
            read_org: self.read_org && read,
            write_org: self.write_org && edit,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRights {
    pub readable: bool,
    pub editable: bool,
}

#[derive(Debug, Clone)]
pub struct PermissionSetDef {
    pub name: String,
    pub label: String,
    pub description: Option<String>,
    /// Upstream binds default sets to everyone; so does objectos.
    pub is_default: bool,
    pub objects: BTreeMap<String, ObjectRights>,
    /// (object, field) → rights
    pub fields: BTreeMap<(String, String), FieldRights>,
    pub system_permissions: BTreeSet<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AccessLevel {
    Read,
    Edit,
}

impl AccessLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessLevel::Read => "read",
            AccessLevel::Edit => "edit",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grantee {
    /// A user, by email (or id).
    User(String),
    /// A team; positions are teams of that name.
    Team(String),
}

impl Grantee {
    pub fn describe(&self) -> String {
        match self {
            Grantee::User(u) => format!("user {u}"),
            Grantee::Team(t) => format!("team {t}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SharingRuleDef {
    pub name: String,
    pub object: String,
    pub active: bool,
    pub condition: Filter,
    /// The condition as written, for display.
    pub condition_source: Value,
    pub access: AccessLevel,
    pub shared_with: Grantee,
}

#[derive(Debug, Clone)]
pub struct ActionDef {
    pub name: String,
    pub label: String,
    pub object: Option<String>,
    pub action_type: String,
    /// `operation: "update"` with a `patch`: the only kind objectos runs.
    pub patch: Option<serde_json::Map<String, Value>>,
    pub required_permissions: Vec<String>,
    pub confirm_text: Option<String>,
    pub variant: Option<String>,
    pub ai_exposed: bool,
    pub ai_description: Option<String>,
    pub requires_confirmation: bool,
}

impl ActionDef {
    pub fn executable(&self) -> bool {
        self.patch.is_some() && self.object.is_some()
    }

    /// Whether an agent's run waits for a reviewer (docs/agents.md).
    pub fn needs_review(&self) -> bool {
        self.requires_confirmation
            || self.confirm_text.is_some()
            || self.variant.as_deref() == Some("danger")
    }
}

impl Model {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        manifest: Manifest,
        objects: Vec<ObjectDef>,
        permission_sets: Vec<PermissionSetDef>,
        sharing_rules: Vec<SharingRuleDef>,
        actions: Vec<ActionDef>,
        capabilities: Vec<String>,
        positions: Vec<String>,
        approvals_expire_after: Duration,
    ) -> Model {
        let index = objects
            .iter()
            .enumerate()
            .map(|(i, o)| (o.name.clone(), i))
            .collect();
        Model {
            manifest,
            objects,
            permission_sets,
            sharing_rules,
            actions,
            capabilities,
            undeclared_capabilities: Vec::new(),
            ignored_grants: Vec::new(),
            positions,
            approvals_expire_after,
            index,
        }
    }

    pub fn object(&self, name: &str) -> Option<&ObjectDef> {
        self.index.get(name).map(|i| &self.objects[*i])
    }

    pub fn permission_set(&self, name: &str) -> Option<&PermissionSetDef> {
        self.permission_sets.iter().find(|p| p.name == name)
    }

    pub fn action(&self, name: &str) -> Option<&ActionDef> {
        self.actions.iter().find(|a| a.name == name)
    }

    pub fn rules_for<'a>(
        &'a self,
        object: &'a str,
    ) -> impl Iterator<Item = &'a SharingRuleDef> + 'a {
        self.sharing_rules
            .iter()
            .filter(move |r| r.active && r.object == object)
    }

    /// System permissions, upstream's capabilities and app capabilities
    /// (declared or not): every name a grant or a `requiredPermissions` may use.
    pub fn is_permission(&self, name: &str) -> bool {
        self.permission_origin(name).is_some()
    }

    /// Where a permission name comes from, if the model knows it.
    pub fn permission_origin(&self, name: &str) -> Option<PermissionOrigin> {
        if SYSTEM_PERMISSIONS.contains(&name) {
            Some(PermissionOrigin::Objectos)
        } else if UPSTREAM_CAPABILITIES.contains(&name) {
            Some(PermissionOrigin::Upstream)
        } else if self.capabilities.iter().any(|c| c == name) {
            Some(PermissionOrigin::Declared)
        } else if self.undeclared_capabilities.iter().any(|c| c == name) {
            Some(PermissionOrigin::Undeclared)
        } else {
            None
        }
    }
}

impl ObjectDef {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        label: String,
        ownership: Ownership,
        sharing_model: SharingModel,
        fields: Vec<FieldDef>,
        required_permissions: ObjectGate,
        agent_writes: AgentWrites,
        read_only: bool,
        audit_reads: bool,
    ) -> ObjectDef {
        let mut by_name: Vec<u32> = (0..fields.len() as u32).collect();
        by_name.sort_unstable_by(|&a, &b| fields[a as usize].name.cmp(&fields[b as usize].name));
        let parent_field = if sharing_model == SharingModel::ControlledByParent {
            fields
                .iter()
                .find(|f| f.field_type == "master_detail")
                .map(|f| f.name.clone())
        } else {
            None
        };
        ObjectDef {
            name,
            label,
            ownership,
            sharing_model,
            fields,
            required_permissions,
            agent_writes,
            read_only,
            audit_reads,
            parent_field,
            merged_system_fields: Vec::new(),
            by_name,
        }
    }

    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        let at = self
            .by_name
            .binary_search_by(|&i| self.fields[i as usize].name.as_str().cmp(name))
            .ok()?;
        self.fields.get(self.by_name[at] as usize)
    }

    pub fn has_owner(&self) -> bool {
        self.ownership == Ownership::User
    }
}

/// The storage class of a field type (`multiple` values are always JSON).
pub fn storage_of(field_type: &str, multiple: bool) -> Storage {
    if multiple {
        return Storage::Json;
    }
    match field_type {
        "number" | "currency" | "percent" | "rating" | "slider" | "progress" | "summary" => {
            Storage::Number
        }
        "boolean" | "toggle" => Storage::Boolean,
        "date" => Storage::Date,
        "datetime" => Storage::DateTime,
        "time" => Storage::Time,
        "multiselect" | "checkboxes" | "tags" | "image" | "file" | "avatar" | "video" | "audio"
        | "composite" | "repeater" | "record" | "location" | "address" | "json" | "vector" => {
            Storage::Json
        }
        _ => Storage::Text,
    }
}

/// Types whose values upstream computes (formula, roll-up, numbering); nobody writes them.
pub fn is_computed(field_type: &str) -> bool {
    matches!(field_type, "formula" | "summary" | "autonumber")
}

/// Types that point at another record.
pub fn is_reference(field_type: &str) -> bool {
    matches!(field_type, "lookup" | "master_detail" | "tree")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field type keeps its storage class, and one that differs from a
    /// type by a byte (of the same length and first byte) is stored as text.
    #[test]
    fn every_field_type_has_its_storage_class() {
        use Storage::*;
        let expected = [
            ("text", Text),
            ("textarea", Text),
            ("email", Text),
            ("url", Text),
            ("phone", Text),
            ("password", Text),
            ("secret", Text),
            ("markdown", Text),
            ("html", Text),
            ("richtext", Text),
            ("number", Number),
            ("currency", Number),
            ("percent", Number),
            ("date", Date),
            ("datetime", DateTime),
            ("time", Time),
            ("boolean", Boolean),
            ("toggle", Boolean),
            ("select", Text),
            ("multiselect", Json),
            ("radio", Text),
            ("checkboxes", Json),
            ("lookup", Text),
            ("master_detail", Text),
            ("tree", Text),
            ("user", Text),
            ("image", Json),
            ("file", Json),
            ("avatar", Json),
            ("video", Json),
            ("audio", Json),
            ("formula", Text),
            ("summary", Number),
            ("autonumber", Text),
            ("composite", Json),
            ("repeater", Json),
            ("record", Json),
            ("location", Json),
            ("address", Json),
            ("code", Text),
            ("json", Json),
            ("color", Text),
            ("rating", Number),
            ("slider", Number),
            ("signature", Text),
            ("qrcode", Text),
            ("progress", Number),
            ("tags", Json),
            ("vector", Json),
        ];
        let types: Vec<&str> = expected.iter().map(|(t, _)| *t).collect();
        assert_eq!(types, FIELD_TYPES);
        for (field_type, storage) in expected {
            assert_eq!(storage_of(field_type, false), storage, "{field_type}");
            assert_eq!(storage_of(field_type, true), Json, "{field_type}, multiple");
            let last = field_type.len() - 1;
            let near = format!("{}_", &field_type[..last]);
            assert_eq!(storage_of(&near, false), Text, "{near}");
            assert!(!is_computed(&near), "{near}");
        }
        let computed: Vec<&str> = FIELD_TYPES
            .iter()
            .copied()
            .filter(|t| is_computed(t))
            .collect();
        assert_eq!(computed, ["formula", "summary", "autonumber"]);
    }
}
