//! `objectos completions SHELL`: a completion script on stdout.

use std::io::Write;

use clap::CommandFactory;
use schemars::JsonSchema;
use serde::Serialize;

use crate::cli::{Cli, CompletionsArgs};
use crate::commands::Ctx;
use crate::error::Exit;

/// `objectos completions --json`: the script in a document.
#[derive(Serialize, JsonSchema)]
pub struct CompletionsReport {
    /// `bash`, `elvish`, `fish`, `powershell` or `zsh`
    pub shell: String,
    /// The completion script, as printed without `--json`
    pub script: String,
}

pub fn run(args: CompletionsArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    // clap_complete panics when its writer fails, so the script is made in memory
    // and written here, where a closed stdout is an error like any other (and a
    // broken pipe ends quietly).
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "objectos", &mut script);
    if ctx.out.json {
        let script = String::from_utf8(script)
            .map_err(|_| anyhow::anyhow!("the completion script is not UTF-8"))?;
        ctx.out.json_doc(
            "completions",
            &CompletionsReport {
                shell: args.shell.to_string(),
                script,
            },
        )?;
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(&script)?;
        out.flush()?;
    }
    Ok(Exit::Success)
}
