//! `objectos openapi`: the OpenAPI document the server answers at
//! `/api/v1/openapi.json`; with `--as`, as that user would get it (read-only
//! on the data dir).

use std::io::Write;

use anyhow::Context;
use schemars::JsonSchema;
use serde::Serialize;

use crate::cli::OpenapiArgs;
use crate::commands::Ctx;
use crate::commands::runtime::required_model;
use crate::error::{Exit, Failure};
use crate::records::{Caller, Records};

/// `objectos openapi --json`: the document, inside the usual envelope.
#[derive(Serialize, JsonSchema)]
pub struct OpenapiReport {
    /// The OpenAPI 3.1 document, as printed without `--json`
    pub document: serde_json::Value,
}

pub fn run(args: OpenapiArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let doc = match &args.email {
        None => crate::server::openapi::document(None),
        Some(email) => {
            let instance = ctx.instance_reading(true)?;
            let model = required_model(&instance)?;
            let caller = Caller::operator_as(&instance, &model, email, args.org.as_deref())?;
            let objects = Records::new(&instance, &model).meta_objects(&caller);
            crate::server::openapi::document(Some(&objects))
        }
    };
    if ctx.out.json && args.output.is_none() {
        ctx.out
            .json_doc("openapi", &OpenapiReport { document: doc })?;
        return Ok(Exit::Success);
    }
    let mut text = serde_json::to_string_pretty(&doc)?;
    text.push('\n');
    match args.output.as_deref() {
        Some(path) if path.as_os_str() != "-" => {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write `{}`", path.display()))?;
            ctx.out.status(format!(
                "wrote the OpenAPI document to `{}`",
                path.display()
            ));
        }
        _ => {
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush())
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                return Err(Failure::error(format!("cannot write the document: {e}")).into());
            }
        }
    }
    Ok(Exit::Success)
}
