//! `-` as a path: standard input where a command reads a file, standard output
//! where it writes one. Every command that takes a file goes through `Input` or
//! `OutputPath`, so `-` means the same everywhere.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::crypto::signing;
use crate::error::{Exit, Failure};

/// How standard input is named where a path would be (`` `<stdin>` is not … ``).
pub const STDIN_LABEL: &str = "<stdin>";

/// Whether a path argument is `-`.
pub fn is_dash(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// A usage error (exit 2) about `-`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Failure::new(Exit::Usage, message)
        .with_hint("see `--help`")
        .into()
}

/// Refuse two inputs that are both `-`: standard input can be read once.
/// `inputs` names each path by the argument that gave it (`ARTIFACT`, `-x`).
pub fn at_most_one_stdin<'a>(
    inputs: impl IntoIterator<Item = (&'a str, &'a Path)>,
) -> anyhow::Result<()> {
    let dashes: Vec<&str> = inputs
        .into_iter()
        .filter(|(_, path)| is_dash(path))
        .map(|(name, _)| name)
        .collect();
    if dashes.len() > 1 {
        return Err(usage(format!(
            "{} are {} `-`, and standard input can be read only once",
            dashes
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(" and "),
            if dashes.len() == 2 { "both" } else { "all" }
        )));
    }
    Ok(())
}

/// A file a command reads whole, or standard input for `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    pub fn new(path: &Path) -> Input {
        if is_dash(path) {
            Input::Stdin
        } else {
            Input::File(path.to_path_buf())
        }
    }

    pub fn is_stdin(&self) -> bool {
        matches!(self, Input::Stdin)
    }

    /// The path, or `<stdin>`: what messages that quote a path show.
    pub fn label(&self) -> &Path {
        match self {
            Input::Stdin => Path::new(STDIN_LABEL),
            Input::File(path) => path,
        }
    }

    /// `` `path` ``, or "standard input".
    pub fn describe(&self) -> String {
        match self {
            Input::Stdin => "standard input".to_string(),
            Input::File(path) => format!("`{}`", path.display()),
        }
    }

    /// A reader of it, for what is read as a stream. Standard input that is a
    /// terminal is refused: nothing would come until someone typed it.
    pub fn open(&self) -> anyhow::Result<Box<dyn Read>> {
        match self {
            Input::Stdin => {
                if std::io::stdin().is_terminal() {
                    return Err(
                        Failure::error("`-` reads standard input, which is a terminal")
                            .with_hint("pipe or redirect the file in, or name it")
                            .into(),
                    );
                }
                Ok(Box::new(std::io::stdin().lock()))
            }
            Input::File(path) => {
                Ok(Box::new(std::fs::File::open(path).with_context(|| {
                    format!("cannot read `{}`", path.display())
                })?))
            }
        }
    }

    /// Every byte of it; more than `limit` bytes is refused, naming it as `what`.
    pub fn read(&self, what: &str, limit: u64) -> anyhow::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.open()?
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", self.describe()))?;
        if bytes.len() as u64 > limit {
            return Err(Failure::error(format!(
                "{} holds more than {limit} bytes, far too large for {what}",
                self.describe()
            ))
            .into());
        }
        Ok(bytes)
    }

    /// Its text (UTF-8), at most `limit` bytes, naming it as `what`.
    pub fn read_text(&self, what: &str, limit: u64) -> anyhow::Result<String> {
        String::from_utf8(self.read(what, limit)?)
            .map_err(|_| anyhow::anyhow!("{} is not text, so not {what}", self.describe()))
    }
}

/// A file a command writes, or standard output for `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputPath {
    Stdout,
    File(PathBuf),
}

impl OutputPath {
    pub fn new(path: &Path) -> OutputPath {
        if is_dash(path) {
            OutputPath::Stdout
        } else {
            OutputPath::File(path.to_path_buf())
        }
    }

    pub fn is_stdout(&self) -> bool {
        matches!(self, OutputPath::Stdout)
    }

    /// `` `path` ``, or "standard output".
    pub fn describe(&self) -> String {
        match self {
            OutputPath::Stdout => "standard output".to_string(),
            OutputPath::File(path) => format!("`{}`", path.display()),
        }
    }

    /// Refuse, before any work, what cannot be written: `--json` and `-o -`
    /// would share standard output (a usage error), and `binary` bytes are not
    /// written onto a terminal.
    pub fn check(&self, json: bool, binary: bool) -> anyhow::Result<()> {
        if !self.is_stdout() {
            return Ok(());
        }
        if json {
            return Err(usage(
                "`--json` and `-o -` would both write to standard output",
            ));
        }
        if binary && std::io::stdout().is_terminal() {
            return Err(
                Failure::error("binary output is not written onto a terminal")
                    .with_hint("redirect standard output to a file, or pass `-o FILE`")
                    .into(),
            );
        }
        Ok(())
    }

    /// Write `bytes` whole: atomically into the file (with `mode`; `create_new`
    /// refuses to replace one), or onto standard output.
    pub fn write(&self, bytes: &[u8], mode: Option<u32>, create_new: bool) -> anyhow::Result<()> {
        match self {
            OutputPath::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes)
                    .and_then(|_| out.flush())
                    .context("cannot write to standard output")
            }
            OutputPath::File(path) => signing::write_atomic(path, bytes, mode, create_new),
        }
    }

    /// Copy a reader onto standard output (a file already staged elsewhere).
    pub fn copy_to_stdout(reader: &mut dyn Read) -> anyhow::Result<u64> {
        let mut out = std::io::stdout().lock();
        let n = std::io::copy(reader, &mut out).context("cannot write to standard output")?;
        out.flush().context("cannot write to standard output")?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dash_is_standard_input_or_output_and_anything_else_a_file() {
        assert!(Input::new(Path::new("-")).is_stdin());
        assert!(!Input::new(Path::new("./-")).is_stdin());
        assert!(OutputPath::new(Path::new("-")).is_stdout());
        assert_eq!(
            OutputPath::new(Path::new("a.json")),
            OutputPath::File(PathBuf::from("a.json"))
        );
    }

    #[test]
    fn only_one_input_may_be_standard_input() {
        assert!(at_most_one_stdin([("OLD", Path::new("-")), ("NEW", Path::new("b"))]).is_ok());
        let err =
            at_most_one_stdin([("OLD", Path::new("-")), ("NEW", Path::new("-"))]).unwrap_err();
        assert_eq!(crate::error::exit_of(&err), Exit::Usage);
        assert!(err.to_string().contains("`OLD` and `NEW`"), "{err}");
    }

    #[test]
    fn a_file_is_read_up_to_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").unwrap();
        let input = Input::new(&path);
        assert_eq!(input.read("a test", 5).unwrap(), b"12345");
        assert!(input.read("a test", 4).is_err());
    }
}
