//! `objectos man -o DIR`: manual pages for the command and each subcommand.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;
use schemars::JsonSchema;
use serde::Serialize;

use crate::cli::{Cli, ManArgs};
use crate::commands::Ctx;
use crate::error::Exit;

/// `objectos man --json`: what was written.
#[derive(Serialize, JsonSchema)]
pub struct ManReport {
    /// Every page written, as `DIR/NAME.1`
    pub files: Vec<PathBuf>,
}

pub fn run(args: ManArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let pages = render_pages()?;
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create `{}`", args.output.display()))?;
    let mut files = Vec::with_capacity(pages.len());
    for (name, bytes) in &pages {
        let path = args.output.join(name);
        std::fs::write(&path, bytes)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        files.push(path);
    }
    if ctx.out.json {
        ctx.out.json_doc("man", &ManReport { files })?;
    } else {
        ctx.out.status(format!(
            "wrote {} manual pages into `{}`",
            pages.len(),
            args.output.display()
        ));
    }
    Ok(Exit::Success)
}

/// Every page, by file name: `objectos.1`, `objectos-build.1`, `objectos-user-add.1`, …
pub fn render_pages() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut pages = Vec::new();
    let command = Cli::command();
    render(&command, "objectos", &mut pages)?;
    Ok(pages)
}

fn render(
    command: &clap::Command,
    name: &str,
    pages: &mut Vec<(String, Vec<u8>)>,
) -> anyhow::Result<()> {
    let command = command
        .clone()
        .name(name.to_string())
        .display_name(name.to_string());
    let mut bytes = Vec::new();
    clap_mangen::Man::new(command.clone())
        .date("")
        .render(&mut bytes)
        .context("cannot render a manual page")?;
    pages.push((format!("{name}.1"), bytes));
    for sub in command.get_subcommands() {
        if sub.get_name() == "help" || sub.is_hide_set() {
            continue;
        }
        render(sub, &format!("{name}-{}", sub.get_name()), pages)?;
    }
    Ok(())
}

/// Write the pages into `dir` (used by the test that keeps `man/` current).
pub fn write_pages(dir: &Path) -> anyhow::Result<()> {
    for (name, bytes) in render_pages()? {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}
