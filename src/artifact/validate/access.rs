//! Who may do what: permission sets (object rights, field rights, system
//! permissions) and sharing rules, checked against the objects and fields
//! the definition declares.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::artifact::json::{self, Map, Value};
use crate::artifact::keys;
use crate::model::filter::Filter;
use crate::model::*;

use super::walker::{Below, Step, Walker, esc, is_snake};

/// Upstream's platform objects (`sys_user`, `sys_organization`, …). objectos has
/// none of them and reserves the prefix, so no app object is one.
fn is_platform_object(name: &str) -> bool {
    name.starts_with("sys_")
}

pub(super) fn validate_permission_sets(
    w: &mut Walker<'_>,
    doc: &Map<'_>,
    model: &Model,
) -> Vec<PermissionSetDef> {
    let mut out: Vec<PermissionSetDef> = Vec::new();
    for (i, value) in w.array(doc, "permissions").iter().enumerate() {
        let pointer = format!("/permissions/{i}");
        let Some(map) = w.object(value, &pointer, "a permission set") else {
            continue;
        };
        w.unknown_keys(map, &pointer, keys::permission_set(), "a permission set");
        let Some(name) = w.req_str(
            map,
            "name",
            &pointer,
            "give the permission set a snake_case name such as `sales_rep`",
        ) else {
            continue;
        };
        let name = name.to_string();
        if !is_snake(&name) {
            w.err(
                &format!("{pointer}/name"),
                format!("`{name}` is not snake_case"),
            );
        }
        if name == "admin" {
            w.err(
                &format!("{pointer}/name"),
                "`admin` is objectos's built-in administrator set; choose another name",
            );
        }
        if out.iter().any(|p| p.name == name) {
            w.err(
                &format!("{pointer}/name"),
                format!("the permission set `{name}` is defined twice"),
            );
        }
        if map
            .get("rowLevelSecurity")
            .is_some_and(|r| r.as_array().is_none_or(|a| !a.is_empty()))
        {
            w.unenforced(
                &format!("{pointer}/rowLevelSecurity"),
                "row-level security (`rowLevelSecurity`)",
            );
        }
        if map.get("adminScope").is_some_and(|v| !v.is_null()) {
            w.unenforced(
                &format!("{pointer}/adminScope"),
                "delegated administration (`adminScope`)",
            );
        }
        let mut set = PermissionSetDef {
            label: w
                .opt_str(map, "label", &pointer)
                .unwrap_or(&name)
                .to_string(),
            description: w.opt_str(map, "description", &pointer).map(str::to_string),
            is_default: w.opt_bool(map, "isDefault", &pointer).unwrap_or(false),
            name,
            objects: BTreeMap::new(),
            fields: BTreeMap::new(),
            system_permissions: BTreeSet::new(),
        };
        match map.get("objects") {
            None => w.err(
                &pointer,
                "`objects` is missing; give a map of object name to rights (it may be `{}`)",
            ),
            Some(objects) => {
                if let Some(objects) = w.object(objects, &format!("{pointer}/objects"), "`objects`")
                {
                    // Collected at once from the grants read (the map sorts
                    // them once and builds its tree in bulk), not one insert
                    // at a time: a map's keys are already distinct.
                    let mut grants = Vec::with_capacity(objects.len());
                    for (object, rights) in objects {
                        // Written out only if an issue names it: a large
                        // artifact grants thousands of objects.
                        let here = Below {
                            parent: &pointer,
                            collection: "objects",
                            step: Step::Key(object),
                        };
                        if is_platform_object(object) {
                            w.warn(&here, format!("`{object}` is one of upstream's platform objects, which objectos does not have; the grant is ignored (ignoring a grant can only narrow access)"));
                            w.ignored.push(IgnoredGrant {
                                permission_set: set.name.clone(),
                                target: object.to_string(),
                            });
                            continue;
                        }
                        let exists = model.object(object).is_some();
                        if !exists {
                            w.missing_object(&here, object);
                        }
                        // Read the rights even of a missing object: a refused scope
                        // is worth reporting in the same run.
                        if let Some(rights) = read_rights(w, rights, &here)
                            && exists
                        {
                            grants.push((object.to_string(), rights));
                        }
                    }
                    set.objects = grants.into_iter().collect();
                }
            }
        }
        if let Some(fields) = map.get("fields")
            && let Some(fields) = w.object(fields, &format!("{pointer}/fields"), "`fields`")
        {
            for (key, rights) in fields {
                let here = format!("{pointer}/fields/{}", esc(key));
                let Some((object, field)) = key.split_once('.') else {
                    w.err(&here, format!("`{key}` must be written `object.field` (upstream ignores a bare field name, which would grant nothing you meant)"));
                    continue;
                };
                if is_platform_object(object) {
                    w.warn(&here, format!("`{object}` is one of upstream's platform objects, which objectos does not have; the field grant is ignored (ignoring a grant can only narrow access)"));
                    w.ignored.push(IgnoredGrant {
                        permission_set: set.name.clone(),
                        target: key.to_string(),
                    });
                    continue;
                }
                if SYSTEM_FIELDS.contains(&field) && model.object(object).is_some() {
                    // Whoever reads a record reads its system fields, and only
                    // objectos writes them (`owner_id`: holders of modifyAllRecords).
                    if let Some(rights) = w.object(rights, &here, "field rights") {
                        if w.opt_bool(rights, "readable", &here) == Some(false) {
                            w.unenforced(
                                &here,
                                &format!("hiding the system field `{field}` (field rights)"),
                            );
                        } else {
                            w.warn(&here, format!("field rights on the system field `{field}` are ignored: whoever reads a record reads its system fields, and objectos writes them"));
                        }
                    }
                    continue;
                }
                match model.object(object) {
                    None => {
                        w.missing_object(&here, object);
                        continue;
                    }
                    Some(o) if o.field(field).is_none() => {
                        let hint = keys::suggest(
                            field,
                            &o.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
                        )
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                        w.err(&here, format!("`{object}` has no field `{field}`{hint}"));
                        continue;
                    }
                    Some(_) => {}
                }
                let Some(rights_map) = w.object(rights, &here, "field rights") else {
                    continue;
                };
                w.unknown_keys(rights_map, &here, keys::field_permission(), "field rights");
                let readable = w.opt_bool(rights_map, "readable", &here).unwrap_or(true);
                let editable = w.opt_bool(rights_map, "editable", &here).unwrap_or(false);
                set.fields.insert(
                    (object.to_string(), field.to_string()),
                    FieldRights { readable, editable },
                );
            }
        }
        let system = w.str_list(map, "systemPermissions", &pointer);
        w.permissions(&system, &format!("{pointer}/systemPermissions"));
        set.system_permissions = system.into_iter().collect();
        out.push(set);
    }
    out
}

/// The entries of an object's grant that validation reads, found in one pass
/// over the grant (as a field's are), each other key reported where it is not
/// a key of a grant, as `unknown_keys` does: a large artifact grants thousands
/// of objects, and a lookup per key read was most of the time spent on its
/// permission sets, after the objects' walk, on one thread.
#[derive(Default)]
struct RightsEntries<'v, 'j> {
    allow_read: Option<&'v Value<'j>>,
    allow_create: Option<&'v Value<'j>>,
    allow_edit: Option<&'v Value<'j>>,
    allow_delete: Option<&'v Value<'j>>,
    allow_export: Option<&'v Value<'j>>,
    allow_restore: Option<&'v Value<'j>>,
    allow_purge: Option<&'v Value<'j>>,
    view_all: Option<&'v Value<'j>>,
    modify_all: Option<&'v Value<'j>>,
    read_scope: Option<&'v Value<'j>>,
    write_scope: Option<&'v Value<'j>>,
}

impl<'v, 'j> RightsEntries<'v, 'j> {
    fn read(w: &mut Walker<'_>, map: &'v Map<'j>, pointer: &(impl fmt::Display + ?Sized)) -> Self {
        let mut found = RightsEntries::default();
        for (key, value) in map {
            // One candidate per length and first and sixth byte, then the
            // whole key compared.
            let bytes = key.as_bytes();
            let (b0, b5) = (bytes.first().copied(), bytes.get(5).copied());
            let candidate = match (bytes.len(), b0, b5) {
                (9, Some(b'a'), Some(b'R')) => ("allowRead", &mut found.allow_read),
                (9, Some(b'a'), Some(b'E')) => ("allowEdit", &mut found.allow_edit),
                (9, Some(b'r'), _) => ("readScope", &mut found.read_scope),
                (10, Some(b'a'), _) => ("allowPurge", &mut found.allow_purge),
                (10, Some(b'w'), _) => ("writeScope", &mut found.write_scope),
                (11, Some(b'a'), Some(b'C')) => ("allowCreate", &mut found.allow_create),
                (11, Some(b'a'), Some(b'D')) => ("allowDelete", &mut found.allow_delete),
                (11, Some(b'a'), Some(b'E')) => ("allowExport", &mut found.allow_export),
                (12, Some(b'a'), _) => ("allowRestore", &mut found.allow_restore),
                (14, Some(b'v'), _) => ("viewAllRecords", &mut found.view_all),
                (16, Some(b'm'), _) => ("modifyAllRecords", &mut found.modify_all),
                _ => {
                    w.unknown_key(key, pointer, keys::object_permission(), "object rights");
                    continue;
                }
            };
            match candidate {
                (expected, slot) if json::same_key(key, expected) => *slot = Some(value),
                _ => w.unknown_key(key, pointer, keys::object_permission(), "object rights"),
            }
        }
        found
    }
}

fn read_rights(
    w: &mut Walker<'_>,
    value: &Value<'_>,
    pointer: &(impl fmt::Display + ?Sized),
) -> Option<ObjectRights> {
    let map = w.object(value, pointer, "object rights")?;
    let entries = RightsEntries::read(w, map, pointer);
    for (carried, given) in [
        ("allowRestore", entries.allow_restore),
        ("allowPurge", entries.allow_purge),
    ] {
        if given == Some(&Value::Bool(true)) {
            w.warn(&format!("{pointer}/{carried}"), format!("`{carried}` grants an operation objectos does not offer; it is carried, not enforced"));
        }
    }
    let scope = |w: &mut Walker<'_>, key: &str, given: Option<&Value<'_>>| -> bool {
        match w.str_of(given, key, pointer) {
            None | Some("own") => false,
            Some("org") => true,
            Some(s @ ("own_and_reports" | "unit" | "unit_and_below")) => {
                w.unenforced(
                    &format!("{pointer}/{key}"),
                    &format!("`{key}: {s}` (hierarchy scopes)"),
                );
                false
            }
            Some(other) => {
                w.err(
                    &format!("{pointer}/{key}"),
                    format!("`{other}` is not a scope; use `own` or `org`"),
                );
                false
            }
        }
    };
    let read_org = scope(w, "readScope", entries.read_scope);
    let write_org = scope(w, "writeScope", entries.write_scope);
    // A right not given is not granted.
    let right = |w: &mut Walker<'_>, given: Option<&Value<'_>>, key: &str| {
        w.bool_of(given, key, pointer).unwrap_or(false)
    };
    let rights = ObjectRights {
        read: right(w, entries.allow_read, "allowRead"),
        create: right(w, entries.allow_create, "allowCreate"),
        edit: right(w, entries.allow_edit, "allowEdit"),
        delete: right(w, entries.allow_delete, "allowDelete"),
        view_all: right(w, entries.view_all, "viewAllRecords"),
        modify_all: right(w, entries.modify_all, "modifyAllRecords"),
        export: right(w, entries.allow_export, "allowExport"),
        read_org,
        write_org,
    };
    // In objectos every write right implies read. Upstream honours a write right
    // with `allowRead: false` said outright (an insert-only web form, say):
    // reading it as objectos does would let that set read what its author
    // withheld, so it is refused by name. Left unsaid, read is implied.
    if entries.allow_read == Some(&Value::Bool(false))
        && (rights.create || rights.edit || rights.delete)
        && !(rights.view_all || rights.modify_all)
    {
        w.unenforced(
            &format!("{pointer}/allowRead"),
            "`allowRead: false` beside `allowCreate`, `allowEdit` or `allowDelete` (write without read, such as an insert-only form)",
        );
    }
    Some(rights)
}

pub(super) fn validate_sharing_rules(
    w: &mut Walker<'_>,
    doc: &Map<'_>,
    model: &Model,
) -> Vec<SharingRuleDef> {
    let mut out: Vec<SharingRuleDef> = Vec::new();
    for (i, value) in w.array(doc, "sharingRules").iter().enumerate() {
        let pointer = format!("/sharingRules/{i}");
        let Some(map) = w.object(value, &pointer, "a sharing rule") else {
            continue;
        };
        w.unknown_keys(map, &pointer, keys::sharing_rule(), "a sharing rule");
        let name = w
            .req_str(map, "name", &pointer, "give the rule a snake_case name")
            .map(str::to_string);
        if let Some(name) = &name
            && out.iter().any(|r| r.name == *name)
        {
            w.err(
                &format!("{pointer}/name"),
                format!("the sharing rule `{name}` is defined twice"),
            );
        }
        let object = w
            .req_str(
                map,
                "object",
                &pointer,
                "name the object whose records the rule shares",
            )
            .map(str::to_string);
        let object_def = object.as_deref().and_then(|o| {
            let found = model.object(o);
            if found.is_none() {
                w.missing_object(&format!("{pointer}/object"), o);
            }
            found
        });
        if let Some(o) = object_def
            && o.sharing_model == SharingModel::ControlledByParent
        {
            w.err(&format!("{pointer}/object"), format!("`{}` is `controlled_by_parent`: its records follow their parent's access; share the parent object instead", o.name));
        }
        if let Some(kind) = w.opt_str(map, "type", &pointer)
            && kind != "criteria"
        {
            w.err(&format!("{pointer}/type"), format!("`{kind}` sharing rules are not part of protocol {PROTOCOL_MAJOR}; only `criteria` rules exist"));
        }
        let active = w.opt_bool(map, "active", &pointer).unwrap_or(true);
        let access = match w.opt_str(map, "accessLevel", &pointer) {
            None | Some("read") => Some(AccessLevel::Read),
            Some("edit") => Some(AccessLevel::Edit),
            Some(other) => {
                w.err(
                    &format!("{pointer}/accessLevel"),
                    format!("`{other}` is not an access level; use `read` or `edit`"),
                );
                None
            }
        };
        let shared_with = match map.get("sharedWith") {
            None => {
                w.err(&pointer, "`sharedWith` is missing; say who gets access, as `{\"type\": \"team\", \"value\": \"finance\"}`");
                None
            }
            Some(v) => read_grantee(w, v, &format!("{pointer}/sharedWith")),
        };
        let condition_source = map.get("condition").map(Value::to_serde);
        let condition = match &condition_source {
            None => {
                w.err(&pointer, "`condition` is missing; give an ObjectQL filter or `{\"dialect\": \"cel\", \"source\": \"record.stage == 'won'\"}`");
                None
            }
            Some(c) => {
                match Filter::from_condition(c) {
                    Ok(filter) if filter.is_match_all() => {
                        w.err(&format!("{pointer}/condition"), "the condition matches every record; upstream never seeds such a rule (it skips it), and objectos refuses it rather than share every record: give the condition a comparison, or grant `viewAllRecords` in a permission set");
                        None
                    }
                    Ok(filter) => {
                        if let Some(o) = object_def {
                            let mut fine = true;
                            for field in filter.fields() {
                                if o.field(field).is_none() && !SYSTEM_FIELDS.contains(&field) {
                                    w.err(&format!("{pointer}/condition"), format!("the condition names `{field}`, which `{}` does not have", o.name));
                                    fine = false;
                                }
                            }
                            if let Err(e) = crate::model::values::check_filter_values(o, &filter) {
                                w.err(&format!("{pointer}/condition"), e);
                                fine = false;
                            }
                            fine.then_some(filter)
                        } else {
                            None
                        }
                    }
                    Err(e) => {
                        w.err(
                            &format!("{pointer}/condition{}", e.pointer),
                            format!("the condition does not parse: {}", e.message),
                        );
                        None
                    }
                }
            }
        };
        if let (
            Some(name),
            Some(object),
            Some(condition),
            Some(access),
            Some(shared_with),
            Some(source),
        ) = (
            name,
            object,
            condition,
            access,
            shared_with,
            condition_source,
        ) {
            out.push(SharingRuleDef {
                name,
                object,
                active,
                condition,
                condition_source: source,
                access,
                shared_with,
            });
        }
    }
    out
}

fn read_grantee(w: &mut Walker<'_>, value: &Value<'_>, pointer: &str) -> Option<Grantee> {
    let map = w.object(value, pointer, "`sharedWith`")?;
    w.unknown_keys(map, pointer, keys::shared_with(), "`sharedWith`");
    let kind = w.req_str(
        map,
        "type",
        pointer,
        "say whether access goes to a `user`, `team` or `position`",
    )?;
    let target = w
        .req_str(map, "value", pointer, "name the user, team or position")?
        .to_string();
    match kind {
        "user" => Some(Grantee::User(target)),
        "team" | "position" => Some(Grantee::Team(target)),
        "unit_and_subordinates" | "business_unit" | "field" => {
            w.unenforced(&format!("{pointer}/type"), &format!("sharing to `{kind}`"));
            None
        }
        other => {
            w.err(
                &format!("{pointer}/type"),
                format!("`{other}` is not a recipient; use `user`, `team` or `position`"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::build::SourceMap;
    use crate::artifact::validate::key_tables::{assert_read_and_reported, keys_table};

    /// Every key a grant's validation reads is a key of a grant, and is read
    /// into its own entry; a key that is not read is reported where it is not
    /// a grant's, in the order of the map.
    #[test]
    fn a_grants_entries_are_read_in_one_pass_and_its_unknown_keys_reported() {
        const READ: [&str; 11] = [
            "allowRead",
            "allowCreate",
            "allowEdit",
            "allowDelete",
            "allowExport",
            "allowRestore",
            "allowPurge",
            "viewAllRecords",
            "modifyAllRecords",
            "readScope",
            "writeScope",
        ];
        // Keys one byte away from a key read, most with its length and first
        // and sixth bytes: each is an unknown key.
        const NEAR: [&str; 13] = [
            "allowReaX",
            "allowEdiX",
            "readScopX",
            "allowPurgX",
            "writeScopX",
            "allowCreatX",
            "allowDeletX",
            "allowExporX",
            "allowRestorX",
            "viewAllRecordX",
            "modifyAllRecordX",
            "allowXead",
            "",
        ];
        let pointer = "/permissions/0/objects/x";
        let (text, expected) = keys_table(
            keys::object_permission(),
            &READ,
            "allowTransfer",
            &NEAR,
            pointer,
        );
        let arena = crate::artifact::json::Arena::new();
        let value = Value::parse(&text, &arena).unwrap();
        let map = value.as_object().unwrap();
        let sources = SourceMap::default();
        let mut w = Walker::new(&sources, false);
        let entries = RightsEntries::read(&mut w, map, pointer);
        let found = [
            entries.allow_read,
            entries.allow_create,
            entries.allow_edit,
            entries.allow_delete,
            entries.allow_export,
            entries.allow_restore,
            entries.allow_purge,
            entries.view_all,
            entries.modify_all,
            entries.read_scope,
            entries.write_scope,
        ];
        assert_read_and_reported(&READ, &found, &w, &expected);
    }
}
