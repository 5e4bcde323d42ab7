//! The JSON Schemas of everything objectos reads or prints, written to `schemas/`.

use schemars::{JsonSchema, schema_for};
use serde_json::Value;

use crate::output::Document;

fn doc<T: JsonSchema>() -> Value {
    serde_json::to_value(schema_for!(Document<T>)).unwrap_or(Value::Null)
}

/// (file name, schema), every `--json` document and the artifact itself.
pub fn all() -> Vec<(String, Value)> {
    use crate::commands::reports::*;
    let mut out = vec![(
        "objectstack.schema.json".to_string(),
        crate::artifact::keys::definition_schema(),
    )];
    let docs: Vec<(&str, Value)> = vec![
        ("build", doc::<BuildReport>()),
        ("validate", doc::<ValidateReport>()),
        ("keygen", doc::<KeygenReport>()),
        ("sign", doc::<SignReport>()),
        ("verify", doc::<VerifyReport>()),
        ("inspect", doc::<crate::artifact::inspect::Inspection>()),
        ("diff", doc::<DiffReport>()),
    ];
    for (name, schema) in docs {
        out.push((format!("objectos.{name}.schema.json"), schema));
    }
    out
}
