//! objectos: governed business records and the AI agents that act for their users.
#![forbid(unsafe_code)]

pub mod agent;
pub mod artifact;
pub mod assistant;
pub mod audit;
pub mod authz;
pub mod cli;
pub mod commands;
pub mod crypto;
pub mod error;
pub mod evidence;
#[doc(hidden)]
pub mod fuzzing;
pub mod identity;
pub mod instance;
pub mod limits;
pub mod model;
pub mod output;
pub mod prompt;
pub mod query;
pub mod queue;
pub mod records;
pub mod remote;
pub mod schemas;
pub mod server;
pub mod store;
pub mod tarfile;
pub mod timefmt;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use crate::error::Exit;

/// Parse the command line, run the command, print any error once, and give the
/// exit code every command shares (docs/operations.md).
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    // Known before parsing, so that even a usage error prints its document.
    let json = args
        .iter()
        .skip(1)
        .take_while(|a| a.as_os_str() != "--")
        .any(|a| a.as_os_str() == "--json");
    let cli = match cli::Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err) => {
            return match err.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    let _ = err.print();
                    Exit::Success.into()
                }
                _ => {
                    if json {
                        let text = err.render().to_string();
                        let first = text
                            .lines()
                            .next()
                            .unwrap_or("")
                            .trim_start_matches("error: ");
                        error::ErrorDocument::usage(first).print();
                    }
                    let _ = err.print();
                    Exit::Usage.into()
                }
            };
        }
    };
    match commands::run(cli) {
        Ok(exit) => exit.into(),
        Err(err) if error::is_broken_pipe(&err) => Exit::Success.into(),
        Err(err) => {
            if json && !error::already_reported(&err) {
                error::ErrorDocument::of(&err).print();
            }
            error::report(&err);
            error::exit_of(&err).into()
        }
    }
}
