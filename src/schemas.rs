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
    let mut out = vec![
        (
            "objectstack.schema.json".to_string(),
            crate::artifact::keys::definition_schema(),
        ),
        // The `manifest.json` of an audit archive.
        (
            "objectos.audit-archive.manifest.schema.json".to_string(),
            serde_json::to_value(schema_for!(crate::evidence::Manifest)).unwrap_or(Value::Null),
        ),
    ];
    let docs: Vec<(&str, Value)> = vec![
        ("error", doc::<crate::error::ErrorDocument>()),
        (
            "instance.rotate-keys",
            doc::<crate::instance::rotate::RotateReport>(),
        ),
        ("build", doc::<BuildReport>()),
        ("validate", doc::<ValidateReport>()),
        ("keygen", doc::<KeygenReport>()),
        ("sign", doc::<SignReport>()),
        ("verify", doc::<VerifyReport>()),
        ("inspect", doc::<crate::artifact::inspect::Inspection>()),
        ("diff", doc::<DiffReport>()),
        ("init", doc::<InitReport>()),
        ("trust.add", doc::<TrustedKey>()),
        ("trust.list", doc::<TrustList>()),
        ("trust.remove", doc::<TrustRemoved>()),
        ("apply", doc::<ApplyReport>()),
        ("bootstrap", doc::<BootstrapReport>()),
        ("user.add", doc::<UserView>()),
        ("user.list", doc::<UserList>()),
        ("user.show", doc::<UserDetail>()),
        ("user.disable", doc::<Done>()),
        ("user.enable", doc::<Done>()),
        ("user.set-password", doc::<Done>()),
        ("org.add", doc::<OrgView>()),
        ("org.list", doc::<OrgList>()),
        ("member.add", doc::<Done>()),
        ("member.remove", doc::<Done>()),
        ("team.add", doc::<TeamView>()),
        ("team.list", doc::<TeamList>()),
        ("team.add-member", doc::<Done>()),
        ("team.remove-member", doc::<Done>()),
        ("permset.list", doc::<PermsetList>()),
        ("permset.show", doc::<PermsetDetail>()),
        ("permset.assign", doc::<Assigned>()),
        ("permset.revoke", doc::<Assigned>()),
        ("apikey.create", doc::<KeyCreated>()),
        ("apikey.list", doc::<KeyList>()),
        ("apikey.revoke", doc::<Done>()),
        ("session.list", doc::<SessionList>()),
        ("session.revoke", doc::<Done>()),
        ("settings.set", doc::<SettingView>()),
        ("settings.get", doc::<SettingView>()),
        ("settings.list", doc::<SettingList>()),
        ("settings.unset", doc::<SettingView>()),
        ("audit.tail", doc::<Tail>()),
        ("audit.verify", doc::<crate::audit::verify::ChainReport>()),
        ("audit.confirm", doc::<crate::commands::audit::Confirmed>()),
        ("audit.export", doc::<ExportReport>()),
        (
            "audit.verify-archive",
            doc::<crate::evidence::verify::ArchiveReport>(),
        ),
        (
            "audit.archive",
            doc::<crate::evidence::archive::ArchiveDone>(),
        ),
        ("doctor", doc::<DoctorReport>()),
        ("import", doc::<crate::commands::bulk::ImportReport>()),
        ("export", doc::<crate::commands::bulk::ExportReport>()),
        ("transfer", doc::<crate::commands::bulk::TransferReport>()),
        ("backup", doc::<crate::instance::backup::BackupReport>()),
        ("restore", doc::<crate::instance::backup::RestoreReport>()),
        ("completions", doc::<CompletionsReport>()),
        ("man", doc::<ManReport>()),
        ("openapi", doc::<crate::commands::reports::OpenapiReport>()),
        ("review", doc::<crate::commands::reports::ReviewReport>()),
        ("chat", doc::<ChatEvent>()),
        ("assistant.export", doc::<AssistantExportReport>()),
    ];
    for (name, schema) in docs {
        out.push((format!("objectos.{name}.schema.json"), schema));
    }
    out
}
