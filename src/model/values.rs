//! Whether a JSON value fits a field: type, length, range and options. Used for
//! defaults and patches at validation time, and for every write at run time.
//! Messages never repeat the value (it may be sensitive).

use serde_json::Value;
use time::format_description::well_known::Rfc3339;

use crate::model::filter::{Filter, Op};
use crate::model::{FieldDef, ObjectDef, Storage, system_field_storage};

/// Check a value against a field. `null` always fits (`required` is checked apart).
pub fn check_value(field: &FieldDef, value: &Value) -> Result<(), String> {
    if value.is_null() {
        return Ok(());
    }
    match field.storage {
        Storage::Text => {
            let text = value.as_str().ok_or_else(|| expected("a string", value))?;
            check_text(field, text)
        }
        Storage::Number => {
            let n = value.as_f64().ok_or_else(|| expected("a number", value))?;
            if let Some(min) = field.min()
                && n < min
            {
                return Err(format!("must be at least {min}"));
            }
            if let Some(max) = field.max()
                && n > max
            {
                return Err(format!("must be at most {max}"));
            }
            Ok(())
        }
        Storage::Boolean => value
            .as_bool()
            .map(|_| ())
            .ok_or_else(|| expected("`true` or `false`", value)),
        Storage::Date => {
            let text = value
                .as_str()
                .ok_or_else(|| expected("a date string (YYYY-MM-DD)", value))?;
            parse_date(text)
                .map(|_| ())
                .ok_or_else(|| "must be a date written YYYY-MM-DD".to_string())
        }
        Storage::DateTime => {
            let text = value
                .as_str()
                .ok_or_else(|| expected("an RFC 3339 time string", value))?;
            time::OffsetDateTime::parse(text, &Rfc3339)
                .map(|_| ())
                .map_err(|_| "must be an RFC 3339 time such as 2026-01-31T09:30:00Z".to_string())
        }
        Storage::Time => {
            let text = value
                .as_str()
                .ok_or_else(|| expected("a time string (HH:MM[:SS])", value))?;
            if parse_time(text) {
                Ok(())
            } else {
                Err("must be a time of day written HH:MM or HH:MM:SS".into())
            }
        }
        Storage::Json => check_json(field, value),
    }
}

fn expected(what: &str, value: &Value) -> String {
    let got = match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    format!("must be {what}, not {got}")
}

fn check_text(field: &FieldDef, text: &str) -> Result<(), String> {
    let chars = text.chars().count() as u64;
    if let Some(max) = field.max_length()
        && chars > max
    {
        return Err(format!("is longer than {max} characters"));
    }
    if let Some(min) = field.min_length()
        && chars < min
        && chars > 0
    {
        return Err(format!("is shorter than {min} characters"));
    }
    // An unbounded text field still has a ceiling: one value is not a file store.
    if field.max_length().is_none() && text.len() > 1024 * 1024 {
        return Err("is longer than 1 MiB".into());
    }
    match field.field_type {
        "email" => {
            let ok = text.split_once('@').is_some_and(|(user, host)| {
                !user.is_empty()
                    && host.contains('.')
                    && !host.starts_with('.')
                    && !host.ends_with('.')
                    && !text.chars().any(char::is_whitespace)
            });
            if !ok {
                return Err("must be an email address".into());
            }
        }
        "select" | "radio"
            if !field.options().is_empty() && !field.options().iter().any(|o| o == text) =>
        {
            return Err(format!("must be one of: {}", field.options().join(", ")));
        }
        _ => {}
    }
    Ok(())
}

fn check_json(field: &FieldDef, value: &Value) -> Result<(), String> {
    let text = serde_json::to_string(value).unwrap_or_default();
    if text.len() > 1024 * 1024 {
        return Err("is larger than 1 MiB".into());
    }
    let listy = field.multiple || matches!(field.field_type, "multiselect" | "checkboxes" | "tags");
    if listy {
        let items = value
            .as_array()
            .ok_or_else(|| expected("an array", value))?;
        let strings = matches!(
            field.field_type,
            "multiselect"
                | "checkboxes"
                | "tags"
                | "select"
                | "lookup"
                | "user"
                | "tree"
                | "text"
                | "email"
                | "url"
                | "phone"
        );
        for item in items {
            if strings && !item.is_string() {
                return Err("must be an array of strings".into());
            }
            if !field.options().is_empty()
                && let Some(s) = item.as_str()
                && !field.options().iter().any(|o| o == s)
            {
                return Err(format!(
                    "holds a value that is not one of: {}",
                    field.options().join(", ")
                ));
            }
        }
        return Ok(());
    }
    if field.field_type == "vector" {
        let items = value
            .as_array()
            .ok_or_else(|| expected("an array of numbers", value))?;
        if !items.iter().all(Value::is_number) {
            return Err("must be an array of numbers".into());
        }
    }
    Ok(())
}

pub fn parse_date(text: &str) -> Option<time::Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &format).ok()
}

fn parse_time(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return false;
    }
    let limits = [23u32, 59, 59];
    parts.iter().zip(limits).all(|(p, max)| {
        p.len() == 2
            && p.chars().all(|c| c.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|v| v <= max)
    })
}

/// Check that a filter's values fit the fields they compare against.
pub fn check_filter_values(object: &ObjectDef, filter: &Filter) -> Result<(), String> {
    let mut problem = None;
    filter.walk(&mut |node| {
        if problem.is_some() {
            return;
        }
        let Filter::Cmp { field, op } = node else {
            return;
        };
        let (storage, kind) = match system_field_storage(field) {
            Some(Storage::DateTime) => (Storage::DateTime, "datetime"),
            Some(storage) => (storage, "text"),
            None => match object.field(field) {
                Some(def) => (def.storage, def.field_type),
                None => return,
            },
        };
        for value in op.values() {
            let fits = match (storage, value) {
                (_, Value::Null) => matches!(op, Op::Eq(_) | Op::Ne(_)),
                (Storage::Number, v) => v.is_number(),
                (Storage::Boolean, v) => v.is_boolean(),
                (Storage::Json, _) => true,
                (_, v) => v.is_string(),
            };
            if !fits {
                problem = Some(format!(
                    "`{field}` is compared with a value of the wrong type for a `{kind}` field"
                ));
                return;
            }
        }
        if matches!(op, Op::Contains(_) | Op::StartsWith(_) | Op::EndsWith(_))
            && matches!(storage, Storage::Number | Storage::Boolean)
        {
            problem = Some(format!(
                "`{}` compares text, and `{field}` is a `{kind}` field",
                op.name()
            ));
        }
    });
    match problem {
        Some(p) => Err(p),
        None => Ok(()),
    }
}
