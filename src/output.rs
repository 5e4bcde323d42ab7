//! How commands talk to people and machines: data on stdout, the rest on stderr.

pub mod stdio;

use std::io::{IsTerminal, Write};

use schemars::JsonSchema;
use serde::Serialize;

use crate::cli::ColorChoice;

/// What the global flags asked of the output.
#[derive(Debug, Clone)]
pub struct Output {
    pub json: bool,
    pub quiet: bool,
    pub verbose: bool,
    pub color: bool,
}

impl Output {
    pub fn new(json: bool, quiet: bool, verbose: bool, color: ColorChoice) -> Self {
        let color = match color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stdout().is_terminal()
            }
        };
        Self {
            json,
            quiet,
            verbose,
            color,
        }
    }

    /// A line of data for people (stdout). Silent under `--json`, which prints its
    /// own document instead.
    pub fn data(&self, line: impl AsRef<str>) -> std::io::Result<()> {
        if self.json {
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", line.as_ref())
    }

    /// A line of progress or explanation (stderr), silenced by `-q`.
    pub fn status(&self, line: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", line.as_ref());
        }
    }

    /// A warning (stderr); shown even with `-q`.
    pub fn warn(&self, line: impl AsRef<str>) {
        eprintln!("warning: {}", line.as_ref());
    }

    /// The `--json` document of a command: `{"format": "objectos.<command>/1", …}`.
    pub fn json_doc<T: Serialize>(&self, command: &str, body: &T) -> anyhow::Result<()> {
        print_json_doc(command, body)
    }

    /// Whether a progress bar may be drawn: stderr is a terminal and not `-q`.
    pub fn progress_allowed(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }

    pub fn paint(&self, text: &str, style: Style) -> String {
        if !self.color {
            return text.to_string();
        }
        let code = match style {
            Style::Added => "32",
            Style::Removed => "31",
            Style::Warning => "33",
            Style::Bold => "1",
            Style::Dim => "2",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Style {
    Added,
    Removed,
    Warning,
    Bold,
    Dim,
}

/// Print `{"format": "objectos.<command>/1", …body}` on stdout.
pub fn print_json_doc<T: Serialize>(command: &str, body: &T) -> anyhow::Result<()> {
    let doc = Document {
        format: format_name(command),
        body,
    };
    let mut out = std::io::stdout().lock();
    // An I/O error is returned as itself, not inside serde_json's error (whose
    // `source()` skips it), so that a closed stdout is seen as a broken pipe.
    serde_json::to_writer_pretty(&mut out, &doc).map_err(|e| {
        if e.is_io() {
            anyhow::Error::from(std::io::Error::from(e))
        } else {
            anyhow::Error::from(e)
        }
    })?;
    writeln!(out)?;
    Ok(())
}

pub fn format_name(command: &str) -> String {
    format!("objectos.{command}/1")
}

/// Every `--json` document: the format name, then the command's own fields.
#[derive(Serialize, JsonSchema)]
pub struct Document<T> {
    /// `objectos.<command>/1`
    pub format: String,
    #[serde(flatten)]
    pub body: T,
}
