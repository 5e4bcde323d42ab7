//! `objectos validate`: every problem at once, each with its pointer and file.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Serialize;

use crate::artifact::validate::{Issue, Report};
use crate::artifact::{self};
use crate::cli::ValidateArgs;
use crate::commands::Ctx;
use crate::error::{Exit, Failure, Reported};

#[derive(Serialize, JsonSchema)]
pub struct ValidateReport {
    pub source: PathBuf,
    pub valid: bool,
    pub strict: bool,
    pub errors: Vec<Issue>,
    pub warnings: Vec<Issue>,
}

pub fn run(args: ValidateArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let checked = artifact::check_file(&args.source, args.strict)?;
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
            "ok: `{}` is valid ({} warning(s))",
            args.source.display(),
            report.warnings.len()
        ))?;
        Ok(Exit::Success)
    } else {
        Err(Failure::verify(format!(
            "`{}` is not valid: {} error(s), {} warning(s)",
            args.source.display(),
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
