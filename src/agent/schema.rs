//! A tool's arguments checked against the input schema `tools/list` shows, so
//! that what the schema refuses is refused the same way whatever the tool:
//! `invalid_arguments`, or `limit_exceeded` past one of its maximums (as on
//! REST). Only the keywords the tools' schemas use are understood.

use serde_json::Value;

use crate::error::ApiError;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_arguments", message)
}

fn over(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("limit_exceeded", message)
}

/// Check `value` (a tool's arguments) against `schema`.
pub fn check(schema: &Value, value: &Value) -> Result<(), ApiError> {
    at(schema, value, "")
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn at(schema: &Value, value: &Value, path: &str) -> Result<(), ApiError> {
    let shown = if path.is_empty() {
        "the arguments".to_string()
    } else {
        format!("`{path}`")
    };
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array)
        && !any.iter().any(|s| at(s, value, path).is_ok())
    {
        return Err(bad(format!("{shown} is none of the shapes it may take")));
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let names: Vec<String> = allowed.iter().map(Value::to_string).collect();
        return Err(bad(format!("{shown} is one of {}", names.join(", "))));
    }
    let max = |key: &str| schema.get(key).and_then(Value::as_u64);
    let min = |key: &str| schema.get(key).and_then(Value::as_u64);
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Some(map) = value.as_object() else {
                return Err(bad(format!("{shown} is an object")));
            };
            let properties = schema.get("properties").and_then(Value::as_object);
            for name in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !map.contains_key(name) {
                    return Err(bad(format!("`{}` is required", child(path, name))));
                }
            }
            for (name, v) in map {
                match properties.and_then(|p| p.get(name)) {
                    Some(s) => at(s, v, &child(path, name))?,
                    None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        let known: Vec<&str> = properties
                            .into_iter()
                            .flat_map(|p| p.keys())
                            .map(String::as_str)
                            .collect();
                        return Err(bad(if known.is_empty() {
                            format!("{shown} takes no members (`{name}` was given)")
                        } else if path.is_empty() {
                            format!(
                                "`{name}` is not an argument of this tool; it takes {}",
                                known.join(", ")
                            )
                        } else {
                            format!(
                                "`{name}` is not a member of {shown}; it takes {}",
                                known.join(", ")
                            )
                        }));
                    }
                    None => {}
                }
            }
        }
        Some("string") => {
            let Some(text) = value.as_str() else {
                return Err(bad(format!("{shown} is a string")));
            };
            let n = text.chars().count() as u64;
            if min("minLength").is_some_and(|m| n < m) {
                return Err(bad(format!("{shown} may not be empty")));
            }
            if let Some(m) = max("maxLength").filter(|m| n > *m) {
                return Err(over(format!("{shown} is at most {m} characters")));
            }
        }
        Some("integer") => {
            let Some(n) = value.as_i64() else {
                // A whole number too large for i64 is past any maximum here.
                if value.as_u64().is_some() && schema.get("maximum").is_some() {
                    return Err(over(format!("{shown} is too large")));
                }
                return Err(bad(format!("{shown} is a whole number")));
            };
            let minimum = schema.get("minimum").and_then(Value::as_i64);
            let maximum = schema.get("maximum").and_then(Value::as_i64);
            if let Some(m) = minimum.filter(|m| n < *m) {
                return Err(bad(match maximum {
                    Some(top) => format!("{shown} is a whole number from {m} to {top}"),
                    None => format!("{shown} is a whole number of at least {m}"),
                }));
            }
            if let Some(m) = maximum.filter(|m| n > *m) {
                return Err(over(format!("{shown} is at most {m}")));
            }
        }
        Some("number") if !value.is_number() => {
            return Err(bad(format!("{shown} is a number")));
        }
        Some("boolean") if !value.is_boolean() => {
            return Err(bad(format!("{shown} is true or false")));
        }
        Some("array") => {
            let Some(items) = value.as_array() else {
                return Err(bad(format!("{shown} is an array")));
            };
            let n = items.len() as u64;
            if let Some(m) = min("minItems").filter(|m| n < *m) {
                return Err(bad(format!("{shown} needs at least {m} item(s)")));
            }
            if let Some(m) = max("maxItems").filter(|m| n > *m) {
                return Err(over(format!("{shown} holds at most {m} items")));
            }
            if let Some(item) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    at(item, v, &format!("{path}[{i}]"))?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn query() -> Value {
        crate::agent::tools::specs()
            .into_iter()
            .find(|s| s.name == "query_records")
            .map(|s| s.input_schema)
            .unwrap_or_default()
    }

    fn code(args: Value) -> Option<&'static str> {
        check(&query(), &args).err().map(|e| e.code)
    }

    #[test]
    fn arguments_outside_the_schema_are_invalid_arguments() {
        assert_eq!(code(json!({"objectName": "o"})), None);
        assert_eq!(
            code(json!({"objectName": "o", "limit": 50, "offset": 0})),
            None
        );
        for args in [
            json!({}),
            json!({"objectName": 5}),
            json!({"objectName": ""}),
            json!({"objectName": "o", "limit": 0}),
            json!({"objectName": "o", "limit": -1}),
            json!({"objectName": "o", "limit": 2.5}),
            json!({"objectName": "o", "limit": "many"}),
            json!({"objectName": "o", "offset": -1}),
            json!({"objectName": "o", "fields": "name"}),
            json!({"objectName": "o", "orderBy": [{"field": "a", "order": "sideways"}]}),
            json!({"objectName": "o", "extra": 1}),
        ] {
            assert_eq!(code(args.clone()), Some("invalid_arguments"), "{args}");
        }
    }

    #[test]
    fn past_a_maximum_is_limit_exceeded() {
        assert_eq!(
            code(json!({"objectName": "o", "limit": 51})),
            Some("limit_exceeded")
        );
        assert_eq!(
            code(json!({"objectName": "o".repeat(129)})),
            Some("limit_exceeded")
        );
        assert_eq!(
            code(json!({"objectName": "o", "fields": vec!["a"; 101]})),
            Some("limit_exceeded")
        );
    }
}
