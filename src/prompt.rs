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
    let ask = |prompt: &str| {
        dialoguer::Password::new()
            .with_prompt(prompt)
            .allow_empty_password(true)
            .interact()
            .context("cannot read the password from the terminal")
    };
    let answer = ask(prompt)?;
    // Said at once, not after asking for it a second time.
    if answer.is_empty() {
        return Err(Failure::error("the password is empty; nothing was changed")
            .with_hint("type a password (12 characters or more), or pass it with a file")
            .into());
    }
    if confirm && ask("Repeat it")? != answer {
        return Err(Failure::error("the passwords differ; nothing was changed")
            .with_hint("run the command again and type the same password twice")
            .into());
    }
    Ok(answer)
}

/// A value from the command line (`-`: standard input), from a file (`-`:
/// standard input), or asked on the terminal (hidden when `secret`). Text from a
/// file or standard input loses one trailing newline.
pub fn value(
    given: Option<&str>,
    file: Option<&Path>,
    prompt: &str,
    secret: bool,
    flag: &str,
) -> anyhow::Result<String> {
    fn strip_newline(mut text: String) -> String {
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        text
    }
    fn stdin_text() -> anyhow::Result<String> {
        if std::io::stdin().is_terminal() {
            return Err(Failure::error(
                "`-` reads the value from standard input, which is a terminal",
            )
            .with_hint("pipe the value in, or leave VALUE out to be asked for it")
            .into());
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text)
            .context("cannot read the value from standard input")?;
        Ok(strip_newline(text))
    }
    match (given, file) {
        (Some("-"), _) => stdin_text(),
        (Some(v), _) => Ok(v.to_string()),
        (None, Some(path)) if path == Path::new("-") => stdin_text(),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read `{}`", path.display()))?;
            Ok(text.lines().next().unwrap_or("").to_string())
        }
        (None, None) => {
            if !terminal_attached() {
                return Err(
                    Failure::error("a value is needed and no terminal is attached")
                        .with_hint(format!("pass it with `{flag}` or on standard input (`-`)"))
                        .into(),
                );
            }
            let answer = if secret {
                dialoguer::Password::new()
                    .with_prompt(prompt)
                    .allow_empty_password(true)
                    .interact()
            } else {
                dialoguer::Input::<String>::new()
                    .with_prompt(prompt)
                    .allow_empty(true)
                    .interact_text()
            }
            .context("cannot read the value from the terminal")?;
            Ok(answer)
        }
    }
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
