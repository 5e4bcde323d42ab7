//! Questions asked on a terminal, each with the flag that answers it without one.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::Context;

use crate::error::Failure;

fn terminal_attached() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Read a password from the first line of a file (`-` reads standard input).
pub fn password_from_file(path: &Path) -> anyhow::Result<String> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text)
            .context("cannot read the password from standard input")?;
        text
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the password file `{}`", path.display()))?
    };
    let line = text.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        return Err(
            Failure::error(format!("the password file `{}` is empty", path.display())).into(),
        );
    }
    Ok(line)
}

/// Ask for a password on the terminal, twice when `confirm` (a new password).
/// With no terminal, fail with a hint naming `flag`.
pub fn password(prompt: &str, confirm: bool, flag: &str) -> anyhow::Result<String> {
    if !terminal_attached() {
        return Err(
            Failure::error("a password is needed and no terminal is attached")
                .with_hint(format!("pass `{flag}`"))
                .into(),
        );
    }
    let mut question = dialoguer::Password::new().with_prompt(prompt);
    if confirm {
        question = question.with_confirmation("Repeat it", "the passwords differ");
    }
    let answer = question
        .interact()
        .context("cannot read the password from the terminal")?;
    Ok(answer)
}

/// A password from `--password-file`, or asked on the terminal.
pub fn password_or_file(
    file: Option<&Path>,
    prompt: &str,
    confirm: bool,
    flag: &str,
) -> anyhow::Result<String> {
    match file {
        Some(path) => password_from_file(path),
        None => password(prompt, confirm, flag),
    }
}

/// Ask a yes/no question; with no terminal, fail with a hint naming `flag`.
pub fn confirm(question: &str, flag: &str) -> anyhow::Result<bool> {
    if !terminal_attached() {
        return Err(
            Failure::error("confirmation is needed and no terminal is attached")
                .with_hint(format!("pass `{flag}` to proceed without asking"))
                .into(),
        );
    }
    dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
        .context("cannot read the answer from the terminal")
}
