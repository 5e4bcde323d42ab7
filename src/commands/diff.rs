//! `objectos diff OLD NEW`: what a new artifact would let whom do.

use schemars::JsonSchema;
use serde::Serialize;

use crate::artifact::{self, diff::Change};
use crate::cli::DiffArgs;
use crate::commands::Ctx;
use crate::commands::validate::check_input;
use crate::error::{Exit, Failure, Reported};
use crate::output::Style;
use crate::output::stdio::at_most_one_stdin;

#[derive(Serialize, JsonSchema)]
pub struct DiffReport {
    pub old: String,
    pub new: String,
    pub changes: Vec<Change>,
    pub widening: usize,
    pub breaking: usize,
}

/// One change as `diff` shows it: `+ field crm.x: … [WIDENS ACCESS, BREAKING]`.
pub fn change_line(ctx: &Ctx, c: &Change) -> String {
    let sign = match c.change {
        "added" => ctx.out.paint("+", Style::Added),
        "removed" => ctx.out.paint("-", Style::Removed),
        _ => ctx.out.paint("~", Style::Warning),
    };
    let mut tags = Vec::new();
    if c.widens {
        tags.push(ctx.out.paint("WIDENS ACCESS", Style::Warning));
    }
    if c.breaking {
        tags.push(ctx.out.paint("BREAKING", Style::Removed));
    }
    let tags = if tags.is_empty() {
        String::new()
    } else {
        format!("  [{}]", tags.join(", "))
    };
    format!(
        "{sign} {} {}: {}{tags}",
        c.kind.replace('_', " "),
        c.subject,
        c.detail
    )
}

pub fn run(args: DiffArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    at_most_one_stdin([("OLD", args.old.as_path()), ("NEW", args.new.as_path())])?;
    let old = check_input(&args.old, false)?.into_model()?;
    let new = check_input(&args.new, false)?.into_model()?;
    let mut changes = artifact::diff::diff(&old, &new);
    let widening = changes.iter().filter(|c| c.widens).count();
    let breaking = changes.iter().filter(|c| c.breaking).count();
    if args.breaking_only {
        changes.retain(|c| c.breaking);
    }
    let report = DiffReport {
        old: format!("{} {}", old.manifest.id, old.manifest.version),
        new: format!("{} {}", new.manifest.id, new.manifest.version),
        changes,
        widening,
        breaking,
    };
    if ctx.out.json {
        ctx.out.json_doc("diff", &report)?;
    } else {
        ctx.out.data(format!("{} → {}", report.old, report.new))?;
        if report.changes.is_empty() {
            ctx.out.data("no changes")?;
        }
        for c in &report.changes {
            ctx.out.data(change_line(ctx, c))?;
        }
        ctx.out.data(format!(
            "{} change(s): {} widen access, {} breaking",
            report.changes.len(),
            widening,
            breaking
        ))?;
    }
    if args.deny_widening && widening > 0 {
        if ctx.out.json {
            return Err(Reported(Exit::Verify).into());
        }
        return Err(Failure::verify(format!(
            "{widening} change(s) widen access and `--deny-widening` was given"
        ))
        .with_hint(
            "review the changes marked WIDENS ACCESS; approve them by dropping `--deny-widening`",
        )
        .into());
    }
    Ok(Exit::Success)
}
