//! What an artifact contains and who may do what with it, for people and machines.

use schemars::JsonSchema;
use serde::Serialize;

use crate::artifact::validate::{Issue, Report};
use crate::model::*;

#[derive(Serialize, JsonSchema)]
pub struct Inspection {
    pub manifest: ManifestView,
    pub counts: CountsView,
    pub objects: Vec<ObjectView>,
    /// Permission set × object
    pub access_matrix: Vec<AccessRow>,
    /// Field rights that permission sets declare
    pub field_restrictions: Vec<FieldRow>,
    pub system_permissions: Vec<SystemPermissionRow>,
    /// Every permission name the app grants, requires or declares, with what it
    /// does in objectos
    pub permissions: Vec<PermissionView>,
    /// Grants dropped because they name upstream platform objects (`sys_*`)
    pub ignored_grants: Vec<IgnoredGrantView>,
    pub sharing_rules: Vec<RuleView>,
    pub actions: Vec<ActionView>,
    /// Upstream collections carried verbatim and not enforced
    pub carried_not_enforced: Vec<CarriedView>,
    pub warnings: Vec<Issue>,
}

#[derive(Serialize, JsonSchema)]
pub struct ManifestView {
    pub id: String,
    pub version: String,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub protocol: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct CountsView {
    pub objects: usize,
    pub fields: usize,
    pub permission_sets: usize,
    pub sharing_rules: usize,
    pub actions: usize,
}

#[derive(Serialize, JsonSchema)]
pub struct ObjectView {
    pub name: String,
    pub label: String,
    pub ownership: String,
    pub sharing_model: String,
    pub agent_writes: String,
    pub read_only: bool,
    pub audit_reads: bool,
    pub required_permissions: Vec<String>,
    pub fields: Vec<FieldView>,
    /// System fields the app declares too: merged with the system field, not
    /// extra columns
    pub merged_system_fields: Vec<MergedFieldView>,
}

#[derive(Serialize, JsonSchema)]
pub struct MergedFieldView {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: String,
    pub label: String,
}

#[derive(Serialize, JsonSchema)]
pub struct PermissionView {
    pub name: String,
    /// `objectos` (objectos's own system permission), `upstream` (upstream's
    /// built-in capability, which objectos gives no meaning of its own), `app`
    /// (declared under `capabilities`) or `app_undeclared` (an opaque
    /// capability)
    pub origin: String,
    /// What holding it does in objectos
    pub effect: String,
    /// Whether holding it does anything in objectos: objectos's own meaning
    /// of it, or a `requiredPermissions` of this app that names it (an object,
    /// field or action it gates)
    pub has_effect: bool,
    /// Permission sets that grant it
    pub granted_by: Vec<String>,
    /// What requires it: `object`, `object.field`, `object (delete)`, `action name`
    pub required_by: Vec<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct IgnoredGrantView {
    pub permission_set: String,
    /// `sys_user`, or `sys_user.email` for a field grant
    pub target: String,
}

#[derive(Serialize, JsonSchema)]
pub struct FieldView {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: String,
    pub required: bool,
    pub unique: bool,
    pub readonly: bool,
    pub sensitive: bool,
    pub internal: bool,
    pub reference: Option<String>,
    pub required_permissions: Vec<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct AccessRow {
    pub permission_set: String,
    pub object: String,
    pub read: bool,
    pub create: bool,
    pub edit: bool,
    pub delete: bool,
    pub view_all: bool,
    pub modify_all: bool,
    pub export: bool,
    pub read_scope: String,
    pub write_scope: String,
}

#[derive(Serialize, JsonSchema)]
pub struct FieldRow {
    pub permission_set: String,
    pub object: String,
    pub field: String,
    pub readable: bool,
    pub editable: bool,
}

#[derive(Serialize, JsonSchema)]
pub struct SystemPermissionRow {
    pub permission_set: String,
    pub is_default: bool,
    pub permissions: Vec<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct RuleView {
    pub name: String,
    pub object: String,
    pub active: bool,
    pub access: String,
    pub shared_with: String,
    pub condition: serde_json::Value,
}

#[derive(Serialize, JsonSchema)]
pub struct ActionView {
    pub name: String,
    pub object: Option<String>,
    pub executable: bool,
    pub patch: Option<serde_json::Value>,
    pub required_permissions: Vec<String>,
    pub ai_exposed: bool,
    pub needs_review: bool,
}

#[derive(Serialize, JsonSchema)]
pub struct CarriedView {
    pub key: String,
    pub entries: usize,
}

fn agent_writes(a: AgentWrites) -> &'static str {
    match a {
        AgentWrites::Direct => "direct",
        AgentWrites::Approval => "approval",
        AgentWrites::Deny => "deny",
    }
}

/// One permission set's object rights (implications applied) and field rights.
pub fn set_rows(set: &PermissionSetDef) -> (Vec<AccessRow>, Vec<FieldRow>) {
    let objects = set
        .objects
        .iter()
        .map(|(object, rights)| {
            let r = rights.implied();
            AccessRow {
                permission_set: set.name.clone(),
                object: object.clone(),
                read: r.read,
                create: r.create,
                edit: r.edit,
                delete: r.delete,
                view_all: r.view_all,
                modify_all: r.modify_all,
                export: r.export,
                read_scope: if r.read_org { "org" } else { "own" }.into(),
                write_scope: if r.write_org { "org" } else { "own" }.into(),
            }
        })
        .collect();
    let fields = set
        .fields
        .iter()
        .map(|((object, field), rights)| FieldRow {
            permission_set: set.name.clone(),
            object: object.clone(),
            field: field.clone(),
            readable: rights.readable,
            editable: rights.editable,
        })
        .collect();
    (objects, fields)
}

/// Every permission name the model mentions, with who grants and what requires it.
fn permission_views(model: &Model) -> Vec<PermissionView> {
    use std::collections::BTreeMap;
    let mut names: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for c in model
        .capabilities
        .iter()
        .chain(&model.undeclared_capabilities)
    {
        names.entry(c.clone()).or_default();
    }
    for set in &model.permission_sets {
        for p in &set.system_permissions {
            names.entry(p.clone()).or_default().0.push(set.name.clone());
        }
    }
    let mut require = |p: &String, what: String| {
        let entry = &mut names.entry(p.clone()).or_default().1;
        if !entry.contains(&what) {
            entry.push(what);
        }
    };
    for o in &model.objects {
        let gate = &o.required_permissions;
        for (op, list) in [
            ("read", &gate.read),
            ("create", &gate.create),
            ("update", &gate.update),
            ("delete", &gate.delete),
        ] {
            for p in list {
                let all = [&gate.read, &gate.create, &gate.update, &gate.delete]
                    .iter()
                    .all(|l| l.contains(p));
                require(
                    p,
                    if all {
                        o.name.clone()
                    } else {
                        format!("{} ({op})", o.name)
                    },
                );
            }
        }
        for f in &o.fields {
            for p in &f.required_permissions {
                require(p, format!("{}.{}", o.name, f.name));
            }
        }
    }
    for a in &model.actions {
        for p in &a.required_permissions {
            require(p, format!("action {}", a.name));
        }
    }
    names
        .into_iter()
        .map(|(name, (granted_by, required_by))| {
            let origin = model
                .permission_origin(&name)
                .unwrap_or(PermissionOrigin::Undeclared);
            // A permission something of this app requires gates that thing,
            // whatever objectos itself makes of the name.
            let gates = !required_by.is_empty();
            let effect = match (origin, gates) {
                (PermissionOrigin::Objectos, _) => system_permission_meaning(&name)
                    .unwrap_or_default()
                    .to_string(),
                (PermissionOrigin::Upstream, false) => {
                    "no effect in objectos: an upstream platform capability objectos gives no meaning, and nothing in this app requires it".to_string()
                }
                (PermissionOrigin::Upstream, true) => {
                    "gates what requires it (`required_by`), and nothing else: an upstream platform capability objectos gives no meaning of its own".to_string()
                }
                (PermissionOrigin::Declared, false) => {
                    "no effect in objectos: nothing in this app requires it".to_string()
                }
                (PermissionOrigin::Declared, true) => {
                    "gates what requires it (`required_by`), and nothing else".to_string()
                }
                (PermissionOrigin::Undeclared, false) => {
                    "no effect in objectos: nothing in this app requires it; not declared under `capabilities`, so an opaque capability".to_string()
                }
                (PermissionOrigin::Undeclared, true) => {
                    "gates what requires it (`required_by`), and nothing else; not declared under `capabilities`, so an opaque capability".to_string()
                }
            };
            let has_effect = origin == PermissionOrigin::Objectos || gates;
            PermissionView {
                name,
                origin: origin.as_str().into(),
                effect,
                has_effect,
                granted_by,
                required_by,
            }
        })
        .collect()
}

pub fn inspect(model: &Model, report: &Report) -> Inspection {
    let objects = model
        .objects
        .iter()
        .map(|o| ObjectView {
            name: o.name.clone(),
            label: o.label.clone(),
            ownership: o.ownership.as_str().into(),
            sharing_model: o.sharing_model.as_str().into(),
            agent_writes: agent_writes(o.agent_writes).into(),
            read_only: o.read_only,
            audit_reads: o.audit_reads,
            required_permissions: o.required_permissions.read.clone(),
            fields: o
                .fields
                .iter()
                .map(|f| FieldView {
                    name: f.name.clone(),
                    field_type: f.field_type.to_string(),
                    required: f.required,
                    unique: f.unique != Unique::No,
                    readonly: f.readonly,
                    sensitive: f.sensitive,
                    internal: f.internal,
                    reference: f.reference().map(str::to_string),
                    required_permissions: f.required_permissions.clone(),
                })
                .collect(),
            merged_system_fields: o
                .merged_system_fields
                .iter()
                .map(|m| MergedFieldView {
                    name: m.name.clone(),
                    field_type: m.field_type.clone(),
                    label: m.label.clone(),
                })
                .collect(),
        })
        .collect();
    let mut access_matrix = Vec::new();
    let mut field_restrictions = Vec::new();
    let mut system_permissions = Vec::new();
    for set in &model.permission_sets {
        let (objects, fields) = set_rows(set);
        access_matrix.extend(objects);
        field_restrictions.extend(fields);
        system_permissions.push(SystemPermissionRow {
            permission_set: set.name.clone(),
            is_default: set.is_default,
            permissions: set.system_permissions.iter().cloned().collect(),
        });
    }
    Inspection {
        manifest: ManifestView {
            id: model.manifest.id.clone(),
            version: model.manifest.version.to_string(),
            name: model.manifest.name.clone(),
            namespace: model.manifest.namespace.clone(),
            protocol: model.manifest.protocol.clone(),
        },
        counts: CountsView {
            objects: model.objects.len(),
            fields: model.objects.iter().map(|o| o.fields.len()).sum(),
            permission_sets: model.permission_sets.len(),
            sharing_rules: model.sharing_rules.len(),
            actions: model.actions.len(),
        },
        objects,
        access_matrix,
        field_restrictions,
        system_permissions,
        permissions: permission_views(model),
        ignored_grants: model
            .ignored_grants
            .iter()
            .map(|g| IgnoredGrantView {
                permission_set: g.permission_set.clone(),
                target: g.target.clone(),
            })
            .collect(),
        sharing_rules: model
            .sharing_rules
            .iter()
            .map(|r| RuleView {
                name: r.name.clone(),
                object: r.object.clone(),
                active: r.active,
                access: r.access.as_str().into(),
                shared_with: r.shared_with.describe(),
                condition: r.condition_source.clone(),
            })
            .collect(),
        actions: model
            .actions
            .iter()
            .map(|a| ActionView {
                name: a.name.clone(),
                object: a.object.clone(),
                executable: a.executable(),
                patch: a.patch.clone().map(serde_json::Value::Object),
                required_permissions: a.required_permissions.clone(),
                ai_exposed: a.ai_exposed,
                needs_review: a.needs_review(),
            })
            .collect(),
        carried_not_enforced: report
            .carried
            .iter()
            .map(|(key, entries)| CarriedView {
                key: key.clone(),
                entries: *entries,
            })
            .collect(),
        warnings: report.warnings.clone(),
    }
}

/// The inspection as text: sections with aligned columns.
pub fn render(i: &Inspection) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let yes = |b: bool| if b { "yes" } else { "-" };
    let _ = writeln!(
        s,
        "{} {}{}",
        i.manifest.id,
        i.manifest.version,
        i.manifest
            .name
            .as_ref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "protocol {}, namespace {}",
        i.manifest.protocol.as_deref().unwrap_or("(unstated)"),
        i.manifest.namespace.as_deref().unwrap_or("(none)")
    );
    let _ = writeln!(
        s,
        "{} objects, {} fields, {} permission sets, {} sharing rules, {} actions",
        i.counts.objects,
        i.counts.fields,
        i.counts.permission_sets,
        i.counts.sharing_rules,
        i.counts.actions
    );
    for o in &i.objects {
        let _ = writeln!(s);
        let mut flags = vec![
            format!("ownership {}", o.ownership),
            format!("sharing {}", o.sharing_model),
            format!("agent writes {}", o.agent_writes),
        ];
        if o.read_only {
            flags.push("read-only".into());
        }
        if o.audit_reads {
            flags.push("reads audited".into());
        }
        if !o.required_permissions.is_empty() {
            flags.push(format!("needs {}", o.required_permissions.join("+")));
        }
        let _ = writeln!(s, "object {} \"{}\": {}", o.name, o.label, flags.join(", "));
        let width = o.fields.iter().map(|f| f.name.len()).max().unwrap_or(0);
        for f in &o.fields {
            let mut notes = Vec::new();
            if f.required {
                notes.push("required".to_string());
            }
            if f.unique {
                notes.push("unique".into());
            }
            if f.readonly {
                notes.push("read-only".into());
            }
            if f.sensitive {
                notes.push("sensitive".into());
            }
            if f.internal {
                notes.push("internal".into());
            }
            if let Some(r) = &f.reference {
                notes.push(format!("→ {r}"));
            }
            if !f.required_permissions.is_empty() {
                notes.push(format!("needs {}", f.required_permissions.join("+")));
            }
            let _ = writeln!(
                s,
                "  {:width$}  {:14} {}",
                f.name,
                f.field_type,
                notes.join(", "),
                width = width
            );
        }
        if !o.merged_system_fields.is_empty() {
            let _ = writeln!(
                s,
                "  system fields the app declares too (merged, not extra columns): {}",
                o.merged_system_fields
                    .iter()
                    .map(|m| format!("{} ({})", m.name, m.field_type))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let _ = writeln!(
        s,
        "\naccess matrix (permission set × object: read create edit delete viewAll modifyAll export, scopes)"
    );
    let set_w = i
        .access_matrix
        .iter()
        .map(|r| r.permission_set.len())
        .max()
        .unwrap_or(0);
    let obj_w = i
        .access_matrix
        .iter()
        .map(|r| r.object.len())
        .max()
        .unwrap_or(0);
    for r in &i.access_matrix {
        let _ = writeln!(
            s,
            "  {:set_w$}  {:obj_w$}  R:{:3} C:{:3} E:{:3} D:{:3} VA:{:3} MA:{:3} X:{:3} read:{} write:{}",
            r.permission_set,
            r.object,
            yes(r.read),
            yes(r.create),
            yes(r.edit),
            yes(r.delete),
            yes(r.view_all),
            yes(r.modify_all),
            yes(r.export),
            r.read_scope,
            r.write_scope,
            set_w = set_w,
            obj_w = obj_w
        );
    }
    if !i.field_restrictions.is_empty() {
        let _ = writeln!(s, "\nfield rights declared by permission sets");
        for r in &i.field_restrictions {
            let _ = writeln!(
                s,
                "  {:set_w$}  {}.{}: {}, {}",
                r.permission_set,
                r.object,
                r.field,
                if r.readable {
                    "readable"
                } else {
                    "not readable"
                },
                if r.editable {
                    "editable"
                } else {
                    "not editable"
                },
                set_w = set_w
            );
        }
    }
    let _ = writeln!(s, "\nsystem permissions");
    for r in &i.system_permissions {
        let _ = writeln!(
            s,
            "  {:set_w$}  {}{}",
            r.permission_set,
            if r.permissions.is_empty() {
                "(none)".to_string()
            } else {
                r.permissions.join(", ")
            },
            if r.is_default {
                "  [default: applies to every user]"
            } else {
                ""
            },
            set_w = set_w
        );
    }
    if !i.ignored_grants.is_empty() {
        let _ = writeln!(
            s,
            "\ngrants ignored (upstream platform objects objectos does not have)"
        );
        for g in &i.ignored_grants {
            let _ = writeln!(
                s,
                "  {:set_w$}  {}",
                g.permission_set,
                g.target,
                set_w = set_w
            );
        }
    }
    if !i.permissions.is_empty() {
        let _ = writeln!(s, "\npermission names (what holding one does in objectos)");
        let name_w = i
            .permissions
            .iter()
            .map(|p| p.name.len())
            .max()
            .unwrap_or(0);
        for p in &i.permissions {
            let what = match (p.origin.as_str(), p.has_effect) {
                ("objectos", _) => format!("objectos: {}", p.effect),
                ("upstream", false) => "upstream capability, no effect in objectos".to_string(),
                ("upstream", true) => {
                    "upstream capability, no meaning of its own in objectos: it gates only what requires it"
                        .to_string()
                }
                ("app", false) => "app capability, no effect: nothing requires it".to_string(),
                ("app", true) => "app capability".to_string(),
                (_, false) => {
                    "app capability, undeclared (opaque), no effect: nothing requires it".to_string()
                }
                (_, true) => "app capability, undeclared (opaque)".to_string(),
            };
            let mut notes = vec![what];
            if !p.required_by.is_empty() {
                notes.push(format!("required by {}", p.required_by.join(", ")));
            }
            if !p.granted_by.is_empty() {
                notes.push(format!("granted by {}", p.granted_by.join(", ")));
            }
            let _ = writeln!(
                s,
                "  {:name_w$}  {}",
                p.name,
                notes.join("; "),
                name_w = name_w
            );
        }
    }
    if !i.sharing_rules.is_empty() {
        let _ = writeln!(s, "\nsharing rules");
        for r in &i.sharing_rules {
            let _ = writeln!(
                s,
                "  {}{}: {} records matching {} → {} at {}",
                r.name,
                if r.active { "" } else { " (inactive)" },
                r.object,
                crate::crypto::canonical::to_string(&r.condition).unwrap_or_default(),
                r.shared_with,
                r.access
            );
        }
    }
    if !i.actions.is_empty() {
        let _ = writeln!(s, "\nactions");
        for a in &i.actions {
            let mut notes = Vec::new();
            notes.push(if a.executable {
                "runs".to_string()
            } else {
                "carried, not executable".to_string()
            });
            if let Some(p) = &a.patch {
                notes.push(format!(
                    "sets {}",
                    crate::crypto::canonical::to_string(p).unwrap_or_default()
                ));
            }
            if !a.required_permissions.is_empty() {
                notes.push(format!("needs {}", a.required_permissions.join("+")));
            }
            if a.ai_exposed {
                notes.push("exposed to agents".into());
            }
            if a.needs_review {
                notes.push("agent runs wait for review".into());
            }
            let _ = writeln!(
                s,
                "  {} on {}: {}",
                a.name,
                a.object.as_deref().unwrap_or("(no object)"),
                notes.join(", ")
            );
        }
    }
    if !i.carried_not_enforced.is_empty() {
        let _ = writeln!(s, "\ncarried, not enforced");
        for c in &i.carried_not_enforced {
            let _ = writeln!(s, "  {} ({} entries)", c.key, c.entries);
        }
    }
    s
}
