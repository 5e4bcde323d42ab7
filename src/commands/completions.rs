//! `objectos completions SHELL`: a completion script on stdout.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::commands::Ctx;
use crate::error::Exit;

pub fn run(args: CompletionsArgs, _ctx: &Ctx) -> anyhow::Result<Exit> {
    let mut command = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut command, "objectos", &mut out);
    Ok(Exit::Success)
}
