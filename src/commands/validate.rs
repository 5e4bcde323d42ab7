//! `objectos validate`: every problem at once, each with its pointer and file.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use schemars::JsonSchema;
use serde::Serialize;

use crate::artifact::build::MAX_DOCUMENT_BYTES;
use crate::artifact::validate::{Issue, Report};
use crate::artifact::{self, Checked};
use crate::cli::ValidateArgs;
use crate::commands::Ctx;
use crate::error::{Exit, Failure, Reported};
use crate::output::stdio::Input;

#[derive(Serialize, JsonSchema)]
pub struct ValidateReport {
    pub source: PathBuf,
    pub valid: bool,
    pub strict: bool,
    pub errors: Vec<Issue>,
    pub warnings: Vec<Issue>,
}

/// Read and validate an artifact, a source file or a directory of fragments;
/// `-` reads one document from standard input (named `<stdin>` in messages).
pub fn check_input(path: &Path, strict: bool) -> anyhow::Result<Checked> {
    let input = Input::new(path);
    if !input.is_stdin() {
        return artifact::check_file(path, strict);
    }
    artifact::check_bytes(&read_document(&input)?, input.label(), strict)
}

/// Every byte of a document to parse; one larger than objectos parses is
/// refused as an unparseable artifact (exit 3), as a file that large is.
pub fn read_document(input: &Input) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    input
        .open()?
        .take(MAX_DOCUMENT_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", input.describe()))?;
    if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(Failure::verify(format!(
            "{} holds more than {} MiB; objectos parses artifacts of at most that",
            input.describe(),
            MAX_DOCUMENT_BYTES / (1024 * 1024)
        ))
        .into());
    }
    Ok(bytes)
}

pub fn run(args: ValidateArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let mut checked = check_input(&args.source, args.strict)?;
    // The process ends once this is reported: the model is left to the exit
    // rather than freed piece by piece (tens of thousands of fields in a large
    // artifact), as `verify` leaves it.
    std::mem::forget(checked.report.model.take());
    let report = ValidateReport {
        source: args.source.clone(),
        valid: checked.report.errors.is_empty(),
        strict: args.strict,
        errors: checked.report.errors.clone(),
        warnings: checked.report.warnings.clone(),
    };
    if ctx.out.json {
        ctx.out.json_doc("validate", &report)?;
        return if report.valid {
            Ok(Exit::Success)
        } else {
            Err(Reported(Exit::Verify).into())
        };
    }
    print_issues(ctx, &checked.report);
    if report.valid {
        ctx.out.data(format!(
            "ok: {} is valid ({} warning(s))",
            Input::new(&args.source).describe(),
            report.warnings.len()
        ))?;
        Ok(Exit::Success)
    } else {
        Err(Failure::verify(format!(
            "{} is not valid: {} error(s), {} warning(s)",
            Input::new(&args.source).describe(),
            report.errors.len(),
            report.warnings.len()
        ))
        .into())
    }
}

/// Print errors and warnings on stderr, one per line: `error: FILE: POINTER: message`.
pub fn print_issues(ctx: &Ctx, report: &Report) {
    for (kind, list) in [("error", &report.errors), ("warning", &report.warnings)] {
        for issue in list {
            let file = issue
                .file
                .as_ref()
                .map(|f| format!("{}: ", f.display()))
                .unwrap_or_default();
            let pointer = if issue.pointer.is_empty() {
                "/"
            } else {
                issue.pointer.as_str()
            };
            if kind == "warning" && ctx.out.quiet {
                continue;
            }
            eprintln!("{kind}: {file}{pointer}: {}", issue.message);
        }
    }
}
