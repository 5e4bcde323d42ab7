//! Actions: what each runs against, and what an agent is told of it.

use crate::artifact::json::{Map, Value};
use crate::artifact::keys;
use crate::model::*;

use super::walker::{Walker, esc, type_name};

pub(super) fn validate_actions(w: &mut Walker<'_>, doc: &Map<'_>, model: &Model) -> Vec<ActionDef> {
    let mut out: Vec<ActionDef> = Vec::new();
    for (i, value) in w.array(doc, "actions").iter().enumerate() {
        let pointer = format!("/actions/{i}");
        let Some(map) = w.object(value, &pointer, "an action") else {
            continue;
        };
        w.unknown_keys(map, &pointer, keys::action(), "an action");
        let Some(name) = w.req_str(map, "name", &pointer, "give the action a snake_case name")
        else {
            continue;
        };
        let name = name.to_string();
        if out.iter().any(|a| a.name == name) {
            w.err(&format!("{pointer}/name"), format!("the action `{name}` is defined twice; objectos runs actions by name, so names must be unique"));
            continue;
        }
        let label = match map.get("label") {
            Some(Value::String(s)) => s.to_string(),
            _ => name.clone(),
        };
        let object = w.opt_str(map, "objectName", &pointer).map(str::to_string);
        let object_def = object.as_deref().and_then(|o| {
            let found = model.object(o);
            if found.is_none() {
                w.missing_object(&format!("{pointer}/objectName"), o);
            }
            found
        });
        let action_type = w
            .opt_str(map, "type", &pointer)
            .unwrap_or("script")
            .to_string();
        let required_permissions = w.str_list(map, "requiredPermissions", &pointer);
        w.permissions(
            &required_permissions,
            &format!("{pointer}/requiredPermissions"),
        );
        let mut patch = None;
        match (map.get("operation"), map.get("patch")) {
            (None, None) => {}
            (Some(Value::String(op)), Some(Value::Object(p))) if *op == "update" => {
                match object_def {
                    None if object.is_none() => w.err(
                        &pointer,
                        "an `update` action needs `objectName`, the object whose record it changes",
                    ),
                    None => {}
                    Some(o) => {
                        for (field, v) in p {
                            let here = format!("{pointer}/patch/{}", esc(field));
                            match o.field(field) {
                                None if SYSTEM_FIELDS.contains(&field) => w.err(
                                    &here,
                                    format!("`{field}` is a system field that objectos sets; an action cannot set it"),
                                ),
                                None => {
                                    w.err(&here, format!("`{}` has no field `{field}`", o.name))
                                }
                                Some(f) if f.readonly => w.err(
                                    &here,
                                    format!("`{field}` is read-only; an action cannot set it"),
                                ),
                                Some(f) => {
                                    if let Err(why) = crate::model::values::check_value(f, &v.to_serde()) {
                                        w.err(
                                            &here,
                                            format!("the value does not fit `{field}`: {why}"),
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
                patch = Some(p.to_serde());
            }
            (Some(Value::String(op)), None) if *op == "update" && !map.contains_key("params") => {
                w.err(
                    &pointer,
                    "an `update` action needs a `patch` of field values",
                );
            }
            (Some(other), _) if other.as_str() != Some("update") => {
                w.err(
                    &format!("{pointer}/operation"),
                    format!("`{other}` is not an action operation; the only one is `update`"),
                );
            }
            (None, Some(_)) => w.err(
                &format!("{pointer}/patch"),
                "`patch` needs `operation: \"update\"`",
            ),
            (_, Some(other)) => w.err(
                &format!("{pointer}/patch"),
                format!(
                    "`patch` must be a map of field to value, not {}",
                    type_name(other)
                ),
            ),
            _ => {}
        }
        let ai = map.get("ai").and_then(Value::as_object);
        if let Some(ai_map) = ai {
            w.unknown_keys(
                ai_map,
                &format!("{pointer}/ai"),
                keys::action_ai(),
                "an action's `ai` block",
            );
        }
        let confirm_text = match map.get("confirmText") {
            Some(Value::String(s)) => Some(s.to_string()),
            Some(Value::Object(locales)) => {
                locales.values().find_map(Value::as_str).map(str::to_string)
            }
            _ => None,
        };
        out.push(ActionDef {
            name,
            label,
            object,
            action_type,
            patch,
            required_permissions,
            confirm_text,
            variant: w.opt_str(map, "variant", &pointer).map(str::to_string),
            ai_exposed: ai
                .and_then(|a| a.get("exposed"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            ai_description: ai
                .and_then(|a| a.get("description"))
                .and_then(Value::as_str)
                .map(str::to_string),
            requires_confirmation: ai
                .and_then(|a| a.get("requiresConfirmation"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
        });
    }
    out
}
