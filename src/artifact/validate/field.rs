//! A field: its type, storage, bounds, default, options and reference, each
//! key read in one pass over the field's entries.

use std::collections::BTreeSet;

use crate::artifact::json::{self, Map, Value};
use crate::artifact::keys;
use crate::model::*;

use super::walker::{Below, Step, Walker, is_snake, type_name};

/// The entries of a field that validation reads, found in one pass over its
/// keys: a field is asked for about twenty keys and has a handful, and a large
/// artifact has tens of thousands of fields.
#[derive(Default)]
struct FieldEntries<'v, 'j> {
    name: Option<&'v Value<'j>>,
    field_type: Option<&'v Value<'j>>,
    label: Option<&'v Value<'j>>,
    required: Option<&'v Value<'j>>,
    multiple: Option<&'v Value<'j>>,
    unique: Option<&'v Value<'j>>,
    readonly: Option<&'v Value<'j>>,
    internal: Option<&'v Value<'j>>,
    max_length: Option<&'v Value<'j>>,
    min_length: Option<&'v Value<'j>>,
    min: Option<&'v Value<'j>>,
    max: Option<&'v Value<'j>>,
    required_permissions: Option<&'v Value<'j>>,
    masking_rule: Option<&'v Value<'j>>,
    readonly_when: Option<&'v Value<'j>>,
    reference: Option<&'v Value<'j>>,
    options: Option<&'v Value<'j>>,
    default_value: Option<&'v Value<'j>>,
}

impl<'v, 'j> FieldEntries<'v, 'j> {
    /// The field's entries by key, each other key reported (in the order of
    /// the map) where it is not a key of a field, as `unknown_keys` does. The
    /// keys read here are all keys of a field (a test holds them to
    /// `keys::field()`), so none of them is ever reported.
    fn read(w: &mut Walker<'_>, map: &'v Map<'j>, pointer: &Below<'_>) -> Self {
        let mut found = FieldEntries::default();
        for (key, value) in map {
            // One candidate per length and first and third byte, then the
            // whole key compared: a chain of string comparisons cost more
            // than the rest of reading a field.
            let bytes = key.as_bytes();
            let (b0, b2) = (bytes.first().copied(), bytes.get(2).copied());
            let candidate = match (bytes.len(), b0, b2) {
                (3, Some(b'm'), Some(b'n')) => ("min", &mut found.min),
                (3, Some(b'm'), Some(b'x')) => ("max", &mut found.max),
                (4, Some(b'n'), _) => ("name", &mut found.name),
                (4, Some(b't'), _) => ("type", &mut found.field_type),
                (5, Some(b'l'), _) => ("label", &mut found.label),
                (6, Some(b'u'), _) => ("unique", &mut found.unique),
                (7, Some(b'o'), _) => ("options", &mut found.options),
                (8, Some(b'r'), Some(b'q')) => ("required", &mut found.required),
                (8, Some(b'r'), Some(b'a')) => ("readonly", &mut found.readonly),
                (8, Some(b'm'), _) => ("multiple", &mut found.multiple),
                (8, Some(b'i'), _) => ("internal", &mut found.internal),
                (9, Some(b'm'), Some(b'x')) => ("maxLength", &mut found.max_length),
                (9, Some(b'm'), Some(b'n')) => ("minLength", &mut found.min_length),
                (9, Some(b'r'), _) => ("reference", &mut found.reference),
                (11, Some(b'm'), _) => ("maskingRule", &mut found.masking_rule),
                (12, Some(b'r'), _) => ("readonlyWhen", &mut found.readonly_when),
                (12, Some(b'd'), _) => ("defaultValue", &mut found.default_value),
                (19, Some(b'r'), _) => ("requiredPermissions", &mut found.required_permissions),
                _ => {
                    w.unknown_key(key, pointer, keys::field(), "a field");
                    continue;
                }
            };
            match candidate {
                (expected, slot) if json::same_key(key, expected) => *slot = Some(value),
                _ => w.unknown_key(key, pointer, keys::field(), "a field"),
            }
        }
        found
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn validate_field(
    w: &mut Walker<'_>,
    name: &str,
    value: &Value<'_>,
    pointer: &Below<'_>,
    object: &str,
    declared: &BTreeSet<String>,
    listed_sensitive: bool,
) -> Option<FieldDef> {
    let map = w.object(value, pointer, "a field")?;
    let entries = FieldEntries::read(w, map, pointer);
    let mut ok = true;
    if !is_snake(name) {
        w.err(
            pointer,
            format!(
                "the field name `{name}` is not snake_case; use lower-case letters, digits and `_`"
            ),
        );
        ok = false;
    }
    if name == "owning_business_unit_id" {
        w.unenforced(
            pointer,
            "business-unit ownership (the `owning_business_unit_id` field)",
        );
        ok = false;
    }
    if let Some(inner) = w.str_of(entries.name, "name", pointer)
        && inner != name
    {
        w.err(
            &format!("{pointer}/name"),
            format!(
                "the field is keyed `{name}` but named `{inner}`; drop `name` or make them equal"
            ),
        );
        ok = false;
    }
    let given = w.req_str_of(
        entries.field_type,
        "type",
        pointer,
        "give the field a type such as `text`, `number` or `lookup`",
    )?;
    // The model keeps the list's own entry: no copy of the type per field.
    let Some(field_type) = FIELD_TYPES
        .iter()
        .copied()
        .find(|t| json::same_key(t, given))
    else {
        let hint = keys::suggest(given, FIELD_TYPES)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        w.err(
            &format!("{pointer}/type"),
            format!("`{given}` is not a field type of protocol {PROTOCOL_MAJOR}{hint}"),
        );
        return None;
    };
    let label = w
        .str_of(entries.label, "label", pointer)
        .unwrap_or(name)
        .to_string();
    let required = w
        .bool_of(entries.required, "required", pointer)
        .unwrap_or(false);
    let multiple = w
        .bool_of(entries.multiple, "multiple", pointer)
        .unwrap_or(false);
    let unique = match entries.unique {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Unique::No,
        Some(Value::Bool(true)) => Unique::Organization,
        Some(Value::String(s)) if *s == "organization" => Unique::Organization,
        Some(Value::String(s)) if *s == "global" => Unique::Global,
        Some(other) => {
            w.err(&format!("{pointer}/unique"), format!("`unique` takes `true`, `false`, `\"organization\"` or `\"global\"`, not {other}"));
            ok = false;
            Unique::No
        }
    };
    let readonly = w
        .bool_of(entries.readonly, "readonly", pointer)
        .unwrap_or(false)
        || is_computed(field_type);
    let internal = w
        .bool_of(entries.internal, "internal", pointer)
        .unwrap_or(false);
    let max_length = w.count_of(entries.max_length, "maxLength", pointer);
    let min_length = w.count_of(entries.min_length, "minLength", pointer);
    if let (Some(lo), Some(hi)) = (min_length, max_length)
        && lo > hi
    {
        w.err(
            &format!("{pointer}/minLength"),
            format!("`minLength` {lo} is more than `maxLength` {hi}"),
        );
        ok = false;
    }
    let min = w.number_of(entries.min, "min", pointer);
    let max = w.number_of(entries.max, "max", pointer);
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        w.err(
            &format!("{pointer}/min"),
            format!("`min` {lo} is more than `max` {hi}"),
        );
        ok = false;
    }
    let required_permissions =
        w.str_list_of(entries.required_permissions, "requiredPermissions", pointer);
    if !required_permissions.is_empty() {
        w.permissions(
            &required_permissions,
            &format!("{pointer}/requiredPermissions"),
        );
    }

    // Access constructs objectos does not enforce.
    if entries.masking_rule.is_some() {
        w.unenforced(
            &format!("{pointer}/maskingRule"),
            "field masking (`maskingRule`)",
        );
        ok = false;
    }
    if entries.readonly_when.is_some() {
        w.unenforced(
            &format!("{pointer}/readonlyWhen"),
            "conditional read-only (`readonlyWhen`)",
        );
        ok = false;
    }

    let reference = w
        .str_of(entries.reference, "reference", pointer)
        .map(str::to_string);
    match field_type {
        "lookup" | "master_detail" => match &reference {
            None => {
                w.err(pointer, format!("a `{field_type}` field needs `reference`, the name of the object it points at"));
                ok = false;
            }
            Some(target) if target == "sys_user" && field_type == "lookup" => {}
            // Upstream's organization column, declared by the app: merged with
            // objectos's own (see `merge_system_field`).
            Some(target) if target == "sys_organization" && name == "organization_id" => {}
            Some(target) if !declared.contains(target) => {
                w.err(&format!("{pointer}/reference"), format!("`{target}` is not an object of this artifact; point `reference` at a defined object"));
                ok = false;
            }
            Some(target) if field_type == "master_detail" && target == object => {
                w.err(
                    &format!("{pointer}/reference"),
                    "a `master_detail` field cannot point at its own object",
                );
                ok = false;
            }
            Some(_) => {}
        },
        "tree" => {
            if let Some(target) = &reference
                && target != object
            {
                w.err(
                    &format!("{pointer}/reference"),
                    format!("a `tree` field points at its own object, `{object}`, not `{target}`"),
                );
                ok = false;
            }
        }
        "user" => {
            if let Some(target) = &reference
                && target != "sys_user"
            {
                w.err(
                    &format!("{pointer}/reference"),
                    "a `user` field points at users; drop `reference` or make it `sys_user`",
                );
                ok = false;
            }
        }
        _ => {
            if reference.is_some() {
                w.warn(
                    &format!("{pointer}/reference"),
                    format!("`reference` has no meaning on a `{field_type}` field and is ignored"),
                );
            }
        }
    }
    if multiple && field_type == "master_detail" {
        w.err(
            &format!("{pointer}/multiple"),
            "a `master_detail` field names one parent; drop `multiple`",
        );
        ok = false;
    }

    let mut options = Vec::new();
    if matches!(
        field_type,
        "select" | "multiselect" | "radio" | "checkboxes"
    ) {
        match entries.options {
            None | Some(Value::Null) => {
                w.err(pointer, format!("a `{field_type}` field needs `options`, a list of `{{\"label\", \"value\"}}`"));
                ok = false;
            }
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let here = Below {
                        parent: pointer,
                        collection: "options",
                        step: Step::Index(i),
                    };
                    let value = match item {
                        Value::String(s) => Some(s.to_string()),
                        Value::Object(opt) => {
                            w.unknown_keys(opt, &here, keys::select_option(), "a select option");
                            match opt.get("value") {
                                Some(Value::String(s)) => Some(s.to_string()),
                                Some(Value::Number(n)) => Some(n.to_string()),
                                _ => {
                                    w.err(&here, "an option needs a string `value`");
                                    None
                                }
                            }
                        }
                        other => {
                            w.err(
                                &here,
                                format!(
                                    "an option is a string or `{{\"label\", \"value\"}}`, not {}",
                                    type_name(other)
                                ),
                            );
                            None
                        }
                    };
                    if let Some(value) = value {
                        if options.contains(&value) {
                            w.err(&here, format!("the option value `{value}` is listed twice"));
                            ok = false;
                        }
                        options.push(value);
                    } else {
                        ok = false;
                    }
                }
            }
            Some(other) => {
                w.err(
                    &format!("{pointer}/options"),
                    format!("`options` must be an array, not {}", type_name(other)),
                );
                ok = false;
            }
        }
    }
    let multiple_values = multiple || matches!(field_type, "multiselect" | "checkboxes" | "tags");
    let storage = storage_of(field_type, multiple);
    let mut literal_default = None;
    let default_value = match entries.default_value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if *s == "NOW()" => {
            if !matches!(storage, Storage::Date | Storage::DateTime | Storage::Time) {
                w.err(
                    &format!("{pointer}/defaultValue"),
                    "`NOW()` is a default only for date, datetime and time fields",
                );
                ok = false;
            }
            Some(DefaultValue::Now)
        }
        Some(Value::String(s)) if *s == "current_user" => {
            let fits = field_type == "user"
                || (field_type == "lookup" && reference.as_deref() == Some("sys_user"));
            if !fits || multiple {
                w.err(
                    &format!("{pointer}/defaultValue"),
                    "`current_user` is a default only for single-value user fields",
                );
                ok = false;
            }
            Some(DefaultValue::CurrentUser)
        }
        Some(Value::Object(env)) if env.contains_key("dialect") => {
            w.warn(&format!("{pointer}/defaultValue"), "an expression default is carried but not evaluated by objectos; records get no default for this field");
            None
        }
        Some(literal) => {
            // Checked against the field once it is built, below.
            literal_default = Some(literal.to_serde());
            None
        }
    };
    let mut field = FieldDef {
        name: name.to_string(),
        label,
        sensitive: listed_sensitive || matches!(field_type, "secret" | "password"),
        field_type,
        storage,
        required,
        unique,
        // Most fields have none of these: no empty one is built to compare with.
        extras: (default_value.is_some() || reference.is_some() || !options.is_empty()).then(
            || {
                Box::new(FieldExtras {
                    default_value,
                    reference,
                    options,
                })
            },
        ),
        multiple: multiple_values,
        readonly,
        internal,
        bounds: boxed_if_set(Bounds {
            max_length,
            min_length,
            min,
            max,
        }),
        required_permissions,
    };
    if let Some(literal) = literal_default {
        if let Err(why) = crate::model::values::check_value(&field, &literal) {
            w.err(
                &format!("{pointer}/defaultValue"),
                format!("the default does not fit the field: {why}"),
            );
            ok = false;
        }
        field.set_default_value(DefaultValue::Literal(Box::new(literal)));
    }
    if !ok {
        return None;
    }
    Some(field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::build::SourceMap;
    use crate::artifact::validate::key_tables::{assert_read_and_reported, keys_table};

    /// Every key a field's validation reads is a key of a field, and is read:
    /// none is reported as unknown, each fills its own entry, and a key that
    /// is not a field's is still reported, in the order of the map.
    #[test]
    fn a_fields_entries_are_read_in_one_pass_and_its_unknown_keys_reported() {
        const READ: [&str; 18] = [
            "name",
            "type",
            "label",
            "required",
            "multiple",
            "unique",
            "readonly",
            "internal",
            "maxLength",
            "minLength",
            "min",
            "max",
            "requiredPermissions",
            "maskingRule",
            "readonlyWhen",
            "reference",
            "options",
            "defaultValue",
        ];
        // Keys one byte away from a key read, where its length and first
        // and third bytes are the same: each is an unknown key.
        const NEAR: [&str; 19] = [
            "mix",
            "nope",
            "tape",
            "lapel",
            "unused",
            "optical",
            "reqXired",
            "reXdonly",
            "mXltiple",
            "inXernal",
            "maxLengtX",
            "minLengtX",
            "referencX",
            "maskingRulX",
            "readonlyWheX",
            "defaultValuX",
            "requiredPermissionX",
            "",
            "é",
        ];
        let (text, expected) = keys_table(
            keys::field(),
            &READ,
            "description",
            &NEAR,
            "/objects/0/fields/f",
        );
        let arena = crate::artifact::json::Arena::new();
        let value = Value::parse(&text, &arena).unwrap();
        let map = value.as_object().unwrap();
        let sources = SourceMap::default();
        let mut w = Walker::new(&sources, false);
        let parent = "/objects/0";
        let pointer = Below {
            parent: &parent,
            collection: "fields",
            step: Step::Key("f"),
        };
        let entries = FieldEntries::read(&mut w, map, &pointer);
        let found = [
            entries.name,
            entries.field_type,
            entries.label,
            entries.required,
            entries.multiple,
            entries.unique,
            entries.readonly,
            entries.internal,
            entries.max_length,
            entries.min_length,
            entries.min,
            entries.max,
            entries.required_permissions,
            entries.masking_rule,
            entries.readonly_when,
            entries.reference,
            entries.options,
            entries.default_value,
        ];
        assert_read_and_reported(&READ, &found, &w, &expected);
    }
}
