//! objectos: governed business records and the AI agents that act for their users.
//!
//! What may use what (checked by `layers::tests`):
//! - the base — `crypto` (signatures, canonical JSON), `model` (what an
//!   artifact means), `timefmt`, `tarfile` — uses nothing but itself and the
//!   shared utilities (`error`, `output`, `limits`, `prompt`);
//! - the artifact toolchain (`artifact`) stands on the base alone, never on the
//!   runtime (`store`, `query`, `records`, `server` …);
//! - `commands` are the CLI's leaves: nothing below them uses them (the report
//!   schemas and the fuzzing entry points excepted, which only name their
//!   types);
//! - every surface (`server`, `agent`, `assistant`, `queue`, `commands`)
//!   reaches records through `records`, the one enforcement path.
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

#[cfg(test)]
mod layers {
    /// The `crate::` modules a source file under `src/<dir>` names.
    fn uses_in(dir: &str) -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut out = Vec::new();
        // A module is its file, its folder, or both (`output.rs` and `output/`).
        let mut stack: Vec<std::path::PathBuf> = [root.join(dir), root.join(format!("{dir}.rs"))]
            .into_iter()
            .filter(|p| p.exists())
            .collect();
        assert!(!stack.is_empty(), "no module `{dir}`");
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                for entry in std::fs::read_dir(&path).unwrap() {
                    stack.push(entry.unwrap().path());
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let ident = |text: &str| -> String {
                text.trim_start()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect()
            };
            for (at, _) in text.match_indices("crate::") {
                let rest = &text[at + 7..];
                // `crate::{a, b::c}` names each of `a` and `b`.
                if let Some(group) = rest.strip_prefix('{') {
                    // The items at the group's own depth: `crate::{a::{b, c}, d}`
                    // names `a` and `d`.
                    let (mut depth, mut start) = (0usize, 0usize);
                    for (i, c) in group.char_indices() {
                        match c {
                            '{' => depth += 1,
                            '}' if depth == 0 => {
                                out.push((path.display().to_string(), ident(&group[start..i])));
                                break;
                            }
                            '}' => depth -= 1,
                            ',' if depth == 0 => {
                                out.push((path.display().to_string(), ident(&group[start..i])));
                                start = i + 1;
                            }
                            _ => {}
                        }
                    }
                } else {
                    out.push((path.display().to_string(), ident(rest)));
                }
            }
        }
        out.retain(|(_, module)| !module.is_empty());
        out
    }

    #[test]
    fn the_base_and_the_toolchain_stand_on_nothing_above_them() {
        const BASE: &[&str] = &["crypto", "model", "timefmt", "tarfile"];
        const SHARED: &[&str] = &["error", "output", "limits", "prompt"];
        let allowed: Vec<&str> = BASE.iter().chain(SHARED).copied().collect();
        for dir in BASE {
            for (file, module) in uses_in(dir) {
                assert!(
                    allowed.contains(&module.as_str()),
                    "{file} (the base) uses crate::{module}"
                );
            }
        }
        for (file, module) in uses_in("artifact") {
            assert!(
                module == "artifact" || allowed.contains(&module.as_str()),
                "{file} (the artifact toolchain) uses crate::{module}"
            );
        }
    }

    #[test]
    fn nothing_below_the_commands_uses_them() {
        for dir in [
            "agent",
            "assistant",
            "audit",
            "authz",
            "evidence",
            "identity",
            "instance",
            "query",
            "queue",
            "records",
            "server",
            "store",
            "remote",
            "output",
        ] {
            for (file, module) in uses_in(dir) {
                assert_ne!(module, "commands", "{file} uses crate::commands");
            }
        }
    }
}
