//! Values from text (CSV cells) to the JSON a field takes.

use serde_json::Value;

use crate::model::{FieldDef, Storage};

/// A CSV cell as the field's JSON value; an empty cell is no value.
pub fn from_text(field: &FieldDef, text: &str) -> Result<Option<Value>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    Ok(Some(match field.storage {
        Storage::Number => {
            let n: f64 = text
                .trim()
                .parse()
                .map_err(|_| "is not a number".to_string())?;
            serde_json::Number::from_f64(n)
                .map(Value::Number)
                .ok_or("is not a finite number")?
        }
        Storage::Boolean => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Value::Bool(true),
            "false" | "0" | "no" => Value::Bool(false),
            _ => return Err("is not true or false".into()),
        },
        Storage::Json => serde_json::from_str(text).map_err(|_| "is not JSON".to_string())?,
        _ => Value::String(text.to_string()),
    }))
}
