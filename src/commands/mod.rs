//! One module per command or command group; each is `run(args, ctx) -> Result<Exit>`.

pub(crate) mod access;
pub(crate) mod apply;
pub(crate) mod audit;
pub(crate) mod bootstrap;
pub(crate) mod build;
pub mod bulk;
pub(crate) mod chat;
mod completions;
pub(crate) mod diff;
pub(crate) mod doctor;
mod evidence;
pub(crate) mod init;
mod inspect;
pub(crate) mod instance_keys;
pub(crate) mod keygen;
pub mod man;
pub(crate) mod mcp;
pub(crate) mod openapi;
pub mod people;
pub(crate) mod quickstart;
pub(crate) mod review;
pub mod runtime;
pub mod serve;
pub(crate) mod settings;
pub(crate) mod sign;
pub(crate) mod trust;
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
    // `serve` logs on its own terms; other commands log the audit checkpoints
    // they write when asked (`-v`, or `OBJECTOS_LOG`), for a journal to keep.
    if !matches!(cli.command, Command::Serve(_)) {
        serve::init_cli_logging(global.verbose);
    }
    match cli.command {
        Command::Build(args) => build::run(args, &ctx),
        Command::Validate(args) => validate::run(args, &ctx),
        Command::Keygen(args) => keygen::run(args, &ctx),
        Command::Sign(args) => sign::run(args, &ctx),
        Command::Verify(args) => verify::run(args, &ctx),
        Command::Inspect(args) => inspect::run(args, &ctx),
        Command::Diff(args) => diff::run(args, &ctx),
        Command::Init(args) => init::run(&args, &ctx),
        Command::Trust(cmd) => trust::run(cmd, &ctx),
        Command::Apply(args) => apply::run(args, &ctx),
        Command::Bootstrap(args) => bootstrap::run(args, &ctx),
        Command::User(cmd) => people::user(cmd, &ctx),
        Command::Org(cmd) => people::org(cmd, &ctx),
        Command::Member(cmd) => people::member(cmd, &ctx),
        Command::Team(cmd) => people::team(cmd, &ctx),
        Command::Permset(cmd) => access::permset(cmd, &ctx),
        Command::Apikey(cmd) => access::apikey(cmd, &ctx),
        Command::Session(cmd) => access::session(cmd, &ctx),
        Command::Settings(cmd) => settings::run(cmd, &ctx),
        Command::Audit(cmd) => audit::run(cmd, &ctx),
        Command::Doctor => doctor::run(&ctx),
        Command::Instance(cmd) => instance_keys::run(cmd, &ctx),
        Command::Review(args) => review::run(args, &ctx),
        Command::Serve(args) => serve::run(args, &ctx),
        Command::Mcp(args) => mcp::run(args, &ctx),
        Command::Openapi(args) => openapi::run(args, &ctx),
        Command::Chat(args) => chat::run(args, &ctx),
        Command::Assistant(cmd) => chat::assistant(cmd, &ctx),
        Command::Import(args) => bulk::import(args, &ctx),
        Command::Export(args) => bulk::export(args, &ctx),
        Command::Transfer(args) => bulk::transfer(args, &ctx),
        Command::Backup(args) => bulk::backup(args, &ctx),
        Command::Restore(args) => bulk::restore(args, &ctx),
        Command::Quickstart(args) => quickstart::run(args, &ctx),
        Command::Completions(args) => completions::run(args, &ctx),
        Command::Man(args) => man::run(args, &ctx),
    }
}

/// The `--json` report types, for `schemas`.
pub mod reports {
    pub use super::access::{
        Assigned, KeyCreated, KeyList, PermsetDetail, PermsetList, SessionList,
    };
    pub use super::apply::ApplyReport;
    pub use super::audit::Tail;
    pub use super::bootstrap::BootstrapReport;
    pub use super::build::BuildReport;
    pub use super::chat::{AssistantExportReport, ChatEvent};
    pub use super::completions::CompletionsReport;
    pub use super::diff::DiffReport;
    pub use super::doctor::DoctorReport;
    pub use super::evidence::ExportReport;
    pub use super::init::InitReport;
    pub use super::keygen::KeygenReport;
    pub use super::man::ManReport;
    pub use super::openapi::OpenapiReport;
    pub use super::people::{Done, OrgList, TeamList, TeamView, UserDetail, UserList};
    pub use super::review::ReviewReport;
    pub use super::runtime::{OrgView, UserView};
    pub use super::settings::{SettingList, SettingView};
    pub use super::sign::SignReport;
    pub use super::trust::{TrustList, TrustRemoved, TrustedKey};
    pub use super::validate::ValidateReport;
    pub use super::verify::VerifyReport;
}
