//! Exit codes (docs/operations.md) and the one error type that carries them to the edge.

use std::fmt;
use std::process::ExitCode;

/// The exit codes every command shares; scripts rely on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    /// I/O, database, bad input, or a refusal that a flag would lift.
    Error = 1,
    /// Bad usage; clap exits with this code on its own.
    Usage = 2,
    /// A signature, digest, expiry, artifact or audit chain did not verify.
    Verify = 3,
    /// A permission was missing.
    Denied = 4,
}

impl Exit {
    /// The exit code of a command that a runtime refused with this HTTP status,
    /// one table for every command that talks to the runtime or acts as a user:
    /// unauthenticated or denied exit 4; not found (which includes what the
    /// caller may not see), conflict, stale and every other refusal exit 1.
    pub fn from_status(status: u16) -> Exit {
        match status {
            200..=299 => Exit::Success,
            401 | 403 => Exit::Denied,
            _ => Exit::Error,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// An error that knows its exit code and, where there is one, the fix to suggest.
///
/// Commands return `anyhow::Result`; a `Failure` anywhere in the chain decides the
/// exit code, and anything else exits 1.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
            hint: None,
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self::new(Exit::Error, message)
    }

    pub fn verify(message: impl Into<String>) -> Self {
        Self::new(Exit::Verify, message)
    }

    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(Exit::Denied, message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Already reported on stdout (a `--json` document or a report that carries the
/// failure itself); only the exit code is left to give.
#[derive(Debug)]
pub struct Reported(pub Exit);

impl fmt::Display for Reported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit {}", self.0 as u8)
    }
}

impl std::error::Error for Reported {}

/// The exit code for an error chain: the first `Failure` or `Reported` in it, else 1.
pub fn exit_of(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(failure) = cause.downcast_ref::<Failure>() {
            return failure.exit;
        }
        if let Some(reported) = cause.downcast_ref::<Reported>() {
            return reported.0;
        }
        if let Some(api) = cause.downcast_ref::<ApiError>() {
            return api.exit();
        }
    }
    Exit::Error
}

/// Print an error the one way this tool prints errors:
/// `error: …`, then `  caused by: …` per source, then `hint: …`.
pub fn report(err: &anyhow::Error) {
    use std::io::Write;
    if err.chain().any(|c| c.downcast_ref::<Reported>().is_some()) {
        return;
    }
    let mut stderr = std::io::stderr().lock();
    let mut chain = err.chain();
    if let Some(first) = chain.next() {
        let _ = writeln!(stderr, "error: {first}");
    }
    let mut hint = None;
    for cause in err.chain() {
        if let Some(failure) = cause.downcast_ref::<Failure>()
            && hint.is_none()
        {
            hint = failure.hint.clone();
        }
    }
    for cause in chain {
        let _ = writeln!(stderr, "  caused by: {cause}");
    }
    if let Some(hint) = hint {
        let _ = writeln!(stderr, "hint: {hint}");
    }
}

/// The `--json` document of a failure, for every command alike:
/// `{"format": "objectos.error/1", "error": {"code", "message", "hint"}, "exit"}`.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ErrorDocument {
    pub error: ErrorBody,
    /// The exit code the command ends with
    pub exit: u8,
}

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ErrorBody {
    /// Stable: `usage`, `error`, `verification_failed`, `denied`, or the API's
    /// code when the refusal came from the records service (`not_found`, …)
    pub code: String,
    pub message: String,
    /// What to do about it, where there is something to suggest
    pub hint: Option<String>,
    /// The causes, outermost first
    pub causes: Vec<String>,
}

impl ErrorDocument {
    pub fn of(err: &anyhow::Error) -> ErrorDocument {
        let exit = exit_of(err);
        let mut code = None;
        let mut hint = None;
        for cause in err.chain() {
            if let Some(api) = cause.downcast_ref::<ApiError>() {
                code.get_or_insert(api.code.to_string());
            }
            if let Some(failure) = cause.downcast_ref::<Failure>()
                && hint.is_none()
            {
                hint = failure.hint.clone();
            }
        }
        ErrorDocument {
            error: ErrorBody {
                code: code.unwrap_or_else(|| exit_name(exit).to_string()),
                message: err.to_string(),
                hint,
                causes: err.chain().skip(1).map(|c| c.to_string()).collect(),
            },
            exit: exit as u8,
        }
    }

    pub fn usage(message: &str) -> ErrorDocument {
        ErrorDocument {
            error: ErrorBody {
                code: exit_name(Exit::Usage).to_string(),
                message: message.to_string(),
                hint: Some("see `--help`".into()),
                causes: Vec::new(),
            },
            exit: Exit::Usage as u8,
        }
    }

    /// Print it on stdout, as the one document of a `--json` run.
    pub fn print(&self) {
        let _ = crate::output::print_json_doc("error", self);
    }
}

fn exit_name(exit: Exit) -> &'static str {
    match exit {
        Exit::Success => "success",
        Exit::Error => "error",
        Exit::Usage => "usage",
        Exit::Verify => "verification_failed",
        Exit::Denied => "denied",
    }
}

/// Whether the error was already reported on stdout by the command itself.
pub fn already_reported(err: &anyhow::Error) -> bool {
    err.chain().any(|c| c.downcast_ref::<Reported>().is_some())
}

/// True when the error is a closed stdout (`objectos … | head`), which exits 0.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn exit_code_comes_from_the_failure_anywhere_in_the_chain() {
        let err = Err::<(), _>(Failure::verify("bad signature"))
            .context("verifying `a.json`")
            .unwrap_err();
        assert_eq!(exit_of(&err), Exit::Verify);
    }

    #[test]
    fn http_refusals_map_to_exit_codes_by_one_table() {
        for (status, exit) in [
            (200, Exit::Success),
            (400, Exit::Error),
            (401, Exit::Denied),
            (403, Exit::Denied),
            (404, Exit::Error),
            (409, Exit::Error),
            (412, Exit::Error),
            (422, Exit::Error),
            (429, Exit::Error),
            (500, Exit::Error),
            (503, Exit::Error),
        ] {
            assert_eq!(Exit::from_status(status), exit, "{status}");
            if status >= 400 {
                // Not through a constructor: `every_api_error_code_is_documented`
                // reads those for the codes the API answers with.
                let refusal = ApiError {
                    status,
                    code: "test",
                    message: String::new(),
                };
                assert_eq!(refusal.exit(), exit, "{status}");
            }
        }
    }

    #[test]
    fn plain_errors_exit_one() {
        let err = anyhow::anyhow!("disk on fire");
        assert_eq!(exit_of(&err), Exit::Error);
    }
}

/// A refusal of a request on any surface (REST, MCP, CLI import/export), with the
/// HTTP status and the stable code of docs/errors.md (`field_predicate_denied`, …).
/// Messages never carry values of fields the caller cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(400, code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(403, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, "not_found", message)
    }

    pub fn internal() -> ApiError {
        ApiError::new(
            500,
            "internal",
            "the request failed inside objectos; the log says why",
        )
    }

    /// The exit code of a CLI command refused this way.
    pub fn exit(&self) -> Exit {
        Exit::from_status(self.status)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ApiError {}
