//! An object: its name, ownership, sharing model, the constructs objectos
//! does not enforce, its gate, and its fields (system fields merged).

use std::collections::BTreeSet;

use crate::artifact::json::{Map, Value};
use crate::artifact::keys;
use crate::model::*;

use super::field::validate_field;
use super::manifest::Policy;
use super::walker::{Below, Step, Walker, esc, is_snake, type_name};

pub(super) fn validate_object(
    w: &mut Walker<'_>,
    value: &Value<'_>,
    pointer: &str,
    manifest: &Option<Manifest>,
    declared: &BTreeSet<String>,
    policy: &Policy,
) -> Option<ObjectDef> {
    let map = w.object(value, pointer, "an object")?;
    w.unknown_keys(map, pointer, keys::object(), "an object");
    let name = w
        .req_str(
            map,
            "name",
            pointer,
            "give the object a snake_case name such as `crm_account`",
        )?
        .to_string();
    let mut ok = true;
    if !is_snake(&name) {
        w.err(&format!("{pointer}/name"), format!("`{name}` is not snake_case; use lower-case letters, digits and `_`, such as `crm_account`"));
        ok = false;
    }
    if let Some(Manifest {
        namespace: Some(ns),
        ..
    }) = manifest
        && !name.starts_with(&format!("{ns}_"))
        && !name.starts_with("sys_")
    {
        w.err(&format!("{pointer}/name"), format!("`{name}` does not start with the namespace prefix `{ns}_`; upstream requires every object of namespace `{ns}` to be named `{ns}_…`"));
        ok = false;
    }
    if name.starts_with("sys_") || name.starts_with("objectos_") {
        w.err(
            &format!("{pointer}/name"),
            format!("`{name}` is reserved for the platform; choose another name"),
        );
        ok = false;
    }
    let label = w
        .opt_str(map, "label", pointer)
        .unwrap_or(&name)
        .to_string();
    let ownership = match w.opt_str(map, "ownership", pointer) {
        None | Some("user") => Ownership::User,
        Some("org") => Ownership::Org,
        Some("none") => Ownership::None,
        Some("business_unit") => {
            w.unenforced(&format!("{pointer}/ownership"), "ownership `business_unit`");
            ok = false;
            Ownership::User
        }
        Some(other) => {
            w.err(
                &format!("{pointer}/ownership"),
                format!("`{other}` is not an ownership; use `user`, `org` or `none`"),
            );
            ok = false;
            Ownership::User
        }
    };
    let sharing_model = match w.opt_str(map, "sharingModel", pointer) {
        None => SharingModel::Private,
        Some(text) => SharingModel::parse(text).unwrap_or_else(|| {
            w.err(&format!("{pointer}/sharingModel"), format!("`{text}` is not a sharing model; use `private`, `public_read`, `public_read_write` or `controlled_by_parent`"));
            ok = false;
            SharingModel::Private
        }),
    };
    // Constructs that shape access and that objectos does not enforce.
    if map.get("systemFields") == Some(&Value::Bool(false))
        || map.get("systemFields").and_then(|s| s.get("tenant")) == Some(&Value::Bool(false))
    {
        w.unenforced(
            &format!("{pointer}/systemFields"),
            "opting out of the organization column (`systemFields`)",
        );
        ok = false;
    }
    if let Some(tenancy) = map.get("tenancy") {
        let plain = tenancy
            .as_object()
            .is_some_and(|t| t.get("enabled") == Some(&Value::Bool(true)) && t.len() == 1);
        if !plain {
            w.unenforced(&format!("{pointer}/tenancy"), "custom `tenancy`");
            ok = false;
        }
    }
    if map.get("publicSharing").and_then(|p| p.get("enabled")) == Some(&Value::Bool(true)) {
        w.unenforced(
            &format!("{pointer}/publicSharing"),
            "public share links (`publicSharing`)",
        );
        ok = false;
    }
    if let Some(enable) = map.get("enable").and_then(Value::as_object)
        && (enable.get("apiEnabled") == Some(&Value::Bool(false))
            || enable.contains_key("apiMethods"))
    {
        w.unenforced(
            &format!("{pointer}/enable"),
            "restricting the API surface (`enable.apiEnabled`/`apiMethods`)",
        );
        ok = false;
    }
    let gate = read_gate(w, map, pointer);

    let entry = policy.objects.get(&name);
    let sensitive: BTreeSet<&str> = entry
        .map(|e| e.sensitive_fields.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let mut fields = Vec::with_capacity(
        map.get("fields")
            .and_then(Value::as_object)
            .map_or(0, Map::len),
    );
    let mut merged = Vec::new();
    match map.get("fields") {
        None => {
            w.err(
                pointer,
                format!(
                    "`fields` is missing; `{name}` needs a map of field name to field definition"
                ),
            );
            ok = false;
        }
        Some(Value::Object(field_map)) => {
            for (field_name, field_value) in field_map {
                let here = Below {
                    parent: &pointer,
                    collection: "fields",
                    step: Step::Key(field_name),
                };
                match validate_field(
                    w,
                    field_name,
                    field_value,
                    &here,
                    &name,
                    declared,
                    sensitive.contains(field_name),
                ) {
                    Some(field) if SYSTEM_FIELDS.contains(&field.name.as_str()) => {
                        match merge_system_field(w, field, &here, ownership) {
                            Some(m) => merged.push(m),
                            None => ok = false,
                        }
                    }
                    Some(field) => fields.push(field),
                    None => ok = false,
                }
            }
        }
        Some(Value::Array(_)) => {
            w.err(
                &format!("{pointer}/fields"),
                "`fields` must be a map of field name to definition, not an array",
            );
            ok = false;
        }
        Some(other) => {
            w.err(
                &format!("{pointer}/fields"),
                format!("`fields` must be a map, not {}", type_name(other)),
            );
            ok = false;
        }
    }
    if sharing_model == SharingModel::ControlledByParent {
        let masters: Vec<&FieldDef> = fields
            .iter()
            .filter(|f| f.field_type == "master_detail")
            .collect();
        if masters.len() != 1 {
            w.err(&format!("{pointer}/sharingModel"), format!(
                "`controlled_by_parent` needs exactly one `master_detail` field naming the parent; `{name}` has {}",
                masters.len()
            ));
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    let mut object = ObjectDef::new(
        name,
        label,
        ownership,
        sharing_model,
        fields,
        gate,
        entry
            .and_then(|e| e.agent_writes)
            .unwrap_or(AgentWrites::Direct),
        entry.is_some_and(|e| e.read_only),
        entry.is_some_and(|e| e.audit_reads),
    );
    object.merged_system_fields = merged;
    Some(object)
}

/// A field the app declares under a system field's name. With the type upstream
/// gives that field it is merged with the system field: no second column, and
/// objectos's rules for the system field apply. Another type is an error, and so
/// is anything on the declaration that would narrow who reads or writes the
/// field, since objectos would not enforce it. Settings objectos ignores for a
/// system field are warnings.
pub(super) fn merge_system_field(
    w: &mut Walker<'_>,
    field: FieldDef,
    pointer: &Below<'_>,
    ownership: Ownership,
) -> Option<MergedSystemField> {
    let name = field.name.as_str();
    let shapes = system_field_shapes(name);
    let fits = !field.multiple
        && shapes
            .iter()
            .any(|(t, r)| field.field_type == *t && r.is_none_or(|r| field.reference() == Some(r)));
    if !fits {
        let expected = shapes
            .iter()
            .map(|(t, r)| match r {
                None => format!("`{t}`"),
                Some(r) => format!("`{t}` with `reference: \"{r}\"`"),
            })
            .collect::<Vec<_>>()
            .join(" or ");
        let actual = match (field.reference(), field.multiple) {
            (_, true) => format!("a multi-value `{}`", field.field_type),
            (Some(r), false) if is_reference(field.field_type) => {
                format!("`{}` to `{r}`", field.field_type)
            }
            _ => format!("`{}`", field.field_type),
        };
        w.err(
            &format!("{pointer}/type"),
            format!("`{name}` is a system field every object has; a declaration of it is merged with it only as a single {expected}, not {actual}; use that type or rename the field"),
        );
        return None;
    }
    let mut ok = true;
    if !field.required_permissions.is_empty() {
        w.unenforced(
            &format!("{pointer}/requiredPermissions"),
            &format!("`requiredPermissions` on the system field `{name}` (whoever reads a record reads its system fields)"),
        );
        ok = false;
    }
    if field.internal {
        w.unenforced(
            &format!("{pointer}/internal"),
            &format!("hiding the system field `{name}` (`internal`)"),
        );
        ok = false;
    }
    if name == "owner_id" && field.readonly {
        w.unenforced(
            &format!("{pointer}/readonly"),
            "a read-only `owner_id` (holders of `modifyAllRecords` may reassign a record)",
        );
        ok = false;
    }
    if field.sensitive {
        w.unenforced(
            pointer,
            &format!("a sensitive system field `{name}` (`x-objectos` `sensitiveFields`)"),
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    if field.unique != Unique::No && name != "id" {
        w.warn(
            &format!("{pointer}/unique"),
            format!(
                "`unique` on the system field `{name}` is ignored; objectos fills `{name}` itself"
            ),
        );
    }
    let own_default = match name {
        "created_at" | "updated_at" => DefaultValue::Now,
        "owner_id" | "created_by" | "updated_by" => DefaultValue::CurrentUser,
        _ => DefaultValue::Literal(Box::new(serde_json::Value::Null)),
    };
    if let Some(default) = field.default_value()
        && *default != own_default
    {
        w.warn(
            &format!("{pointer}/defaultValue"),
            format!("the default of the system field `{name}` is ignored; objectos fills `{name}` itself"),
        );
    }
    if name == "owner_id" && ownership != Ownership::User {
        w.warn(
            pointer,
            format!("`owner_id` on an object with ownership `{}` is merged with objectos's system column, which stays empty and which nobody sets; upstream would keep it as an ordinary user field, so rename it if the app stores a user there", ownership.as_str()),
        );
    }
    Some(MergedSystemField {
        name: field.name,
        label: field.label,
        field_type: field.field_type.to_string(),
    })
}

fn read_gate(w: &mut Walker<'_>, map: &Map<'_>, pointer: &str) -> ObjectGate {
    let here = format!("{pointer}/requiredPermissions");
    match map.get("requiredPermissions") {
        None | Some(Value::Null) => ObjectGate::default(),
        Some(Value::Array(_)) => {
            let all = w.str_list(map, "requiredPermissions", pointer);
            w.permissions(&all, &here);
            ObjectGate {
                read: all.clone(),
                create: all.clone(),
                update: all.clone(),
                delete: all,
            }
        }
        Some(Value::Object(ops)) => {
            for key in ops.keys() {
                if !["read", "create", "update", "delete"].contains(&key) {
                    w.err(&format!("{here}/{}", esc(key)), format!("`{key}` is not an operation; use `read`, `create`, `update` or `delete`"));
                }
            }
            let mut gate = ObjectGate::default();
            for (key, slot) in [
                ("read", &mut gate.read),
                ("create", &mut gate.create),
                ("update", &mut gate.update),
                ("delete", &mut gate.delete),
            ] {
                *slot = w.str_list(ops, key, &here);
                let list = slot.clone();
                w.permissions(&list, &format!("{here}/{key}"));
            }
            gate
        }
        Some(other) => {
            w.err(
                &here,
                format!(
                    "`requiredPermissions` must be an array or a map of operation to array, not {}",
                    type_name(other)
                ),
            );
            ObjectGate::default()
        }
    }
}
