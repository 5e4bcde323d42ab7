//! `objectos init`: create the data dir (idempotent).

use schemars::JsonSchema;
use serde::Serialize;

use crate::cli::InitArgs;
use crate::commands::Ctx;
use crate::error::Exit;
use crate::instance::{Instance, NewServer};

#[derive(Serialize, JsonSchema)]
pub struct InitReport {
    pub data_dir: String,
    pub created: bool,
    pub instance_id: String,
    /// The age recipient of `instance.key` (secrets and backups are encrypted to it)
    pub recipient: String,
    /// The instance's own minisign key id (audit checkpoints and exports)
    pub signing_key_id: String,
}

pub fn run(args: &InitArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let absolute = |p: &std::path::PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
    let server = args.database_url.as_ref().map(|url| NewServer {
        url: url.clone(),
        password_file: args.database_password_file.as_ref().map(absolute),
        admin_url: args.database_admin_url.clone(),
        admin_password_file: args.database_admin_password_file.as_ref().map(absolute),
    });
    let done = Instance::init_with(&ctx.data_dir, server.as_ref())?;
    let report = InitReport {
        data_dir: ctx.data_dir.display().to_string(),
        created: done.created,
        instance_id: done.instance_id,
        recipient: done.recipient,
        signing_key_id: done.signing_key_id,
    };
    if ctx.out.json {
        ctx.out.json_doc("init", &report)?;
    } else if report.created {
        ctx.out.status(format!(
            "initialized `{}`: instance {}, signing key {}, recipient {}",
            report.data_dir, report.instance_id, report.signing_key_id, report.recipient
        ));
        if let Some(url) = &args.database_url {
            ctx.out.status(format!(
                "the database is on PostgreSQL (`{url}`, kept in `database.json`); another host serves it too with a copy of this data dir"
            ));
            if args.database_admin_url.is_some() {
                ctx.out.status(
                    "the schema belongs to the administrative role, which granted the runtime's role what it needs (it cannot alter audit rows); migrations, `apply` and `audit archive` connect as the administrative role",
                );
            } else if let Ok(config) = crate::instance::database::parse_url(url) {
                ctx.out.status(crate::instance::database::grants(&config));
            }
        }
        ctx.out
            .status("next: `objectos trust add KEY.pub`, then `objectos apply ARTIFACT`");
    } else {
        ctx.out.status(format!(
            "`{}` is already initialized (instance {})",
            report.data_dir, report.instance_id
        ));
    }
    Ok(Exit::Success)
}
