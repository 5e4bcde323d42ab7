//! `objectos settings set|get|list|unset`.

use schemars::JsonSchema;
use serde::Serialize;

use crate::audit::Origin;
use crate::cli::SettingsCommand;
use crate::commands::Ctx;
use crate::commands::runtime::table;
use crate::error::Exit;
use crate::instance::settings;

#[derive(Serialize, JsonSchema)]
pub struct SettingView {
    pub key: String,
    /// Never present for a secret in a list
    pub value: Option<String>,
    pub secret: bool,
    pub updated_at: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct SettingList {
    pub settings: Vec<SettingView>,
}

pub fn run(cmd: SettingsCommand, ctx: &Ctx) -> anyhow::Result<Exit> {
    let instance = ctx.instance_reading(matches!(cmd, SettingsCommand::List))?;
    let origin = Origin::operator();
    match cmd {
        SettingsCommand::Set {
            key,
            value,
            value_file,
            secret,
        } => {
            if secret && value.as_deref().is_some_and(|v| v != "-") {
                ctx.out.warn(
                    "a secret on the command line is visible in `ps` and the shell's history; pass `-` and pipe it in, or use `--value-file`",
                );
            }
            let value = crate::prompt::value(
                value.as_deref(),
                value_file.as_deref(),
                &format!("Value of `{key}`"),
                secret,
                "--value-file FILE",
            )?;
            settings::set(&instance, &origin, &key, &value, secret)?;
            if ctx.out.json {
                ctx.out.json_doc(
                    "settings.set",
                    &SettingView {
                        key,
                        value: None,
                        secret,
                        updated_at: None,
                    },
                )?;
            } else {
                ctx.out.status(format!(
                    "set `{key}`{}",
                    if secret {
                        " (encrypted to the instance key)"
                    } else {
                        ""
                    }
                ));
            }
        }
        SettingsCommand::Get { key } => {
            let (value, secret) = settings::get(&instance, &origin, &key)?;
            if ctx.out.json {
                ctx.out.json_doc(
                    "settings.get",
                    &SettingView {
                        key,
                        value: Some(value),
                        secret,
                        updated_at: None,
                    },
                )?;
            } else {
                ctx.out.data(value)?;
            }
        }
        SettingsCommand::List => {
            let rows = instance.store.read(|tx| Ok(tx.settings()?))?;
            let views: Vec<SettingView> = rows
                .into_iter()
                .map(|r| SettingView {
                    value: if r.secret { None } else { Some(r.value) },
                    key: r.key,
                    secret: r.secret,
                    updated_at: Some(r.updated_at),
                })
                .collect();
            if ctx.out.json {
                ctx.out
                    .json_doc("settings.list", &SettingList { settings: views })?;
            } else {
                table(
                    ctx,
                    &["key", "value", "updated"],
                    views
                        .into_iter()
                        .map(|v| {
                            vec![
                                v.key,
                                v.value.unwrap_or_else(|| "(secret)".into()),
                                v.updated_at.unwrap_or_default(),
                            ]
                        })
                        .collect(),
                )?;
            }
        }
        SettingsCommand::Unset { key } => {
            settings::unset(&instance, &origin, &key)?;
            if ctx.out.json {
                ctx.out.json_doc(
                    "settings.unset",
                    &SettingView {
                        key,
                        value: None,
                        secret: false,
                        updated_at: None,
                    },
                )?;
            } else {
                ctx.out.status(format!("removed `{key}`"));
            }
        }
    }
    Ok(Exit::Success)
}
