//! Masking: values of sensitive fields (`sensitiveFields`, types `secret` and
//! `password`) are replaced before a tool result goes to the model or into a
//! transcript, unless the operator turned masking off for that object
//! (`ai.unmask.OBJECT`). What the user may not read at all never got this far:
//! the tools return only readable fields.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::model::Model;

/// What a masked value reads as.
pub const MASK: &str = "[masked]";

/// The object a tool call is about: its `objectName`, or the object of the
/// action it runs.
fn object_of<'m>(model: &'m Model, args: &Value) -> Option<&'m str> {
    if let Some(name) = args.get("objectName").and_then(Value::as_str) {
        return model.object(name).map(|o| o.name.as_str());
    }
    let action = args.get("actionName").and_then(Value::as_str)?;
    model.action(action)?.object.as_deref()
}

fn mask_map(map: &mut Map<String, Value>, names: &BTreeSet<String>) {
    for (key, value) in map.iter_mut() {
        if names.contains(key) && !value.is_null() {
            *value = Value::String(MASK.into());
        }
    }
}

/// The masked fields of the object a tool call is about (none when the
/// operator exempted it).
fn masked_fields(model: &Model, unmasked: &BTreeSet<String>, args: &Value) -> BTreeSet<String> {
    let Some(def) = object_of(model, args)
        .filter(|o| !unmasked.contains(*o))
        .and_then(|o| model.object(o))
    else {
        return BTreeSet::new();
    };
    def.fields
        .iter()
        .filter(|f| f.sensitive)
        .map(|f| f.name.clone())
        .collect()
}

/// The field names a filter tests: every key that is not an operator, and
/// what `$and`, `$or` and `$not` hold.
fn filter_fields(filter: &Value, out: &mut BTreeSet<String>) {
    match filter {
        Value::Object(map) => {
            for (key, value) in map {
                if key.starts_with('$') {
                    filter_fields(value, out);
                } else {
                    out.insert(key.split('.').next().unwrap_or(key).to_string());
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| filter_fields(v, out)),
        _ => {}
    }
}

/// Why a query may not run for the model, if it may not: filtering or sorting
/// on a masked field would tell the model its value a test at a time (a
/// `$startsWith` per character), though every value shown is masked. Grouping
/// and aggregating stay allowed: their keys and results are masked.
///
/// `readable(object, field)` says whether the user may read the field: one
/// they may not is left to the tool, which refuses it as it refuses a field
/// that does not exist (saying "masked" would tell that it exists).
pub fn refused_predicate(
    model: &Model,
    unmasked: &BTreeSet<String>,
    readable: &dyn Fn(&str, &str) -> bool,
    tool: &str,
    args: &Value,
) -> Option<String> {
    if !matches!(tool, "query_records" | "aggregate_records") {
        return None;
    }
    let object = object_of(model, args)?;
    let masked: BTreeSet<String> = masked_fields(model, unmasked, args)
        .into_iter()
        .filter(|f| readable(object, f))
        .collect();
    if masked.is_empty() {
        return None;
    }
    let mut tested = BTreeSet::new();
    if let Some(filter) = args.get("where") {
        filter_fields(filter, &mut tested);
    }
    for order in args
        .get("orderBy")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(field) = order.get("field").and_then(Value::as_str) {
            tested.insert(field.to_string());
        }
    }
    let hit = tested.intersection(&masked).next()?;
    Some(format!(
        "`{hit}` is masked for the assistant: it cannot be filtered or sorted on"
    ))
}

/// Mask a tool's result in place. `unmasked`: objects the operator exempted.
pub fn tool_result(
    model: &Model,
    unmasked: &BTreeSet<String>,
    tool: &str,
    args: &Value,
    result: &mut Value,
) {
    let Some(object) = object_of(model, args) else {
        return;
    };
    if unmasked.contains(object) {
        return;
    }
    let Some(def) = model.object(object) else {
        return;
    };
    let sensitive: BTreeSet<String> = def
        .fields
        .iter()
        .filter(|f| f.sensitive)
        .map(|f| f.name.clone())
        .collect();
    if sensitive.is_empty() {
        return;
    }
    match tool {
        "get_record" => {
            if let Value::Object(m) = result {
                mask_map(m, &sensitive);
            }
        }
        "query_records" => {
            if let Some(list) = result.get_mut("records").and_then(Value::as_array_mut) {
                for r in list.iter_mut().filter_map(Value::as_object_mut) {
                    mask_map(r, &sensitive);
                }
            }
        }
        "create_record" | "update_record" | "run_action" => {
            if let Some(Value::Object(m)) = result.get_mut("record") {
                mask_map(m, &sensitive);
            }
        }
        "aggregate_records" => {
            // A group key or an aggregate over a sensitive field is masked,
            // under its own name or its alias; counts of rows are not values.
            let mut names = sensitive.clone();
            let mut aliases: BTreeMap<String, String> = BTreeMap::new();
            for a in args["aggregations"].as_array().into_iter().flatten() {
                if let (Some(alias), Some(field)) = (a["alias"].as_str(), a["field"].as_str())
                    && sensitive.contains(field)
                    && a["function"] != "count"
                {
                    aliases.insert(alias.into(), field.into());
                }
            }
            for g in args["groupBy"].as_array().into_iter().flatten() {
                if let (Some(field), Some(alias)) = (g["field"].as_str(), g["alias"].as_str())
                    && sensitive.contains(field)
                {
                    aliases.insert(alias.into(), field.into());
                }
            }
            names.extend(aliases.into_keys());
            if let Some(rows) = result.get_mut("rows").and_then(Value::as_array_mut) {
                for r in rows.iter_mut().filter_map(Value::as_object_mut) {
                    mask_map(r, &names);
                }
            }
        }
        _ => {}
    }
}
