//! `objectos bootstrap`: the first organization and administrator.

use schemars::JsonSchema;
use serde::Serialize;

use crate::audit::Origin;
use crate::cli::BootstrapArgs;
use crate::commands::Ctx;
use crate::error::Exit;
use crate::{identity, prompt};

#[derive(Serialize, JsonSchema)]
pub struct BootstrapReport {
    pub admin: String,
    pub organization: String,
    /// The admin's first user API key; shown only this once
    pub api_key: String,
}

pub fn run(args: BootstrapArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let instance = ctx.instance()?;
    let password = prompt::password_or_file(
        args.password_file.as_deref(),
        "Password for the administrator",
        true,
        "--password-file FILE",
    )?;
    let (key, user, org) = identity::bootstrap(
        &instance,
        &Origin::operator(),
        &args.admin_email,
        &args.org,
        &password,
    )?;
    if ctx.out.json {
        ctx.out.json_doc(
            "bootstrap",
            &BootstrapReport {
                admin: user.email,
                organization: org.name,
                api_key: key,
            },
        )?;
    } else {
        ctx.out.data(&key)?;
        ctx.out.status(format!(
            "bootstrapped organization `{}` with administrator {}; the API key above is shown only once",
            org.name, user.email
        ));
    }
    Ok(Exit::Success)
}
