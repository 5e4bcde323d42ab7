//! One module per command or command group; each is `run(args, ctx) -> Result<Exit>`.

pub(crate) mod build;
mod completions;
pub(crate) mod diff;
mod inspect;
pub(crate) mod keygen;
pub mod man;
pub(crate) mod sign;
pub(crate) mod validate;
pub(crate) mod verify;

use crate::cli::{Cli, Command};
use crate::error::Exit;
use crate::output::Output;

/// What every command may use: the global flags.
pub struct Ctx {
    pub out: Output,
    pub data_dir: std::path::PathBuf,
}

pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    let global = cli.global;
    let ctx = Ctx {
        out: Output::new(global.json, global.quiet, global.verbose, global.color),
        data_dir: global.data_dir,
    };
    match cli.command {
        Command::Build(args) => build::run(args, &ctx),
        Command::Validate(args) => validate::run(args, &ctx),
        Command::Keygen(args) => keygen::run(args, &ctx),
        Command::Sign(args) => sign::run(args, &ctx),
        Command::Verify(args) => verify::run(args, &ctx),
        Command::Inspect(args) => inspect::run(args, &ctx),
        Command::Diff(args) => diff::run(args, &ctx),
        Command::Completions(args) => completions::run(args, &ctx),
        Command::Man(args) => man::run(args, &ctx),
    }
}

/// The `--json` report types, for `schemas`.
pub mod reports {
    pub use super::build::BuildReport;
    pub use super::diff::DiffReport;
    pub use super::keygen::KeygenReport;
    pub use super::sign::SignReport;
    pub use super::validate::ValidateReport;
    pub use super::verify::VerifyReport;
}
