//! The command line's shape: clap types only, no logic (reused by `man` and `completions`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Governed business records and AI agents on your own machines
///
/// objectos compiles app metadata into a signed, reproducible `objectstack.json`,
/// verifies it offline, and runs it with users, permission sets, record access,
/// field security and a hash-chained audit log.
#[derive(Debug, Parser)]
#[command(
    name = "objectos",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Data directory of the runtime
    #[arg(
        long,
        global = true,
        env = "OBJECTOS_DATA_DIR",
        hide_env_values = true,
        default_value = "./objectos-data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,

    /// Print one JSON document (or JSON lines for streams) on stdout and nothing else
    #[arg(long, global = true)]
    pub json: bool,

    /// Print nothing but data and errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Explain more of what is being done
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// When to colour the output (`NO_COLOR` is honoured by `auto`)
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build app metadata into a reproducible, canonical `objectstack.json`
    Build(BuildArgs),
    /// Check an app's sources or a built artifact and report every problem at once
    Validate(ValidateArgs),
    /// Generate a minisign-compatible signing key pair
    Keygen(KeygenArgs),
    /// Sign an artifact, writing `ARTIFACT.minisig`
    Sign(SignArgs),
    /// Verify an artifact's signature, digest, expiry and contents, offline
    Verify(VerifyArgs),
    /// Show what an artifact contains and who may do what with it
    Inspect(InspectArgs),
    /// Compare two artifacts and flag every change that widens access
    Diff(DiffArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
    /// Write the manual pages
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// A directory of fragment files (merged in file-name order) or one JSON file
    #[arg(default_value = ".", value_name = "SOURCE")]
    pub source: PathBuf,

    /// Where to write the artifact
    #[arg(
        short,
        long,
        default_value = "artifacts/objectstack.json",
        value_name = "FILE"
    )]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A directory of fragment files, one source file, or a built artifact
    #[arg(default_value = ".", value_name = "SOURCE|ARTIFACT")]
    pub source: PathBuf,

    /// Treat unknown keys as errors instead of warnings
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Secret key file to write; the public key goes to `KEY.pub`
    #[arg(short, long, value_name = "KEY")]
    pub output: PathBuf,

    /// Read the password protecting the secret key from this file (first line)
    #[arg(long, value_name = "FILE", conflicts_with = "unencrypted")]
    pub password_file: Option<PathBuf>,

    /// Store the secret key without a password (for throwaway or CI keys)
    #[arg(long)]
    pub unencrypted: bool,

    /// Overwrite existing key files
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The artifact to sign
    #[arg(value_name = "ARTIFACT")]
    pub artifact: PathBuf,

    /// Secret key made by `objectos keygen` or `minisign -G`
    #[arg(short = 'k', long = "key", value_name = "KEY")]
    pub key: PathBuf,

    /// Make the signature expire: a duration (`30s`, `12h`, `90d`) or an RFC 3339 time
    #[arg(long, value_name = "WHEN")]
    pub expires: Option<String>,

    /// Read the secret key's password from this file (first line)
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// Signature file to write [default: ARTIFACT.minisig]
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The artifact to verify; its signature is read from `ARTIFACT.minisig`
    #[arg(value_name = "ARTIFACT")]
    pub artifact: PathBuf,

    /// A trusted public key (repeatable)
    #[arg(
        short = 'p',
        long = "pubkey",
        value_name = "KEY.pub",
        required_unless_present = "trust_dir"
    )]
    pub pubkeys: Vec<PathBuf>,

    /// A directory whose `*.pub` files are the trusted keys
    #[arg(long, value_name = "DIR")]
    pub trust_dir: Option<PathBuf>,

    /// Also require the artifact's SHA-256 to be exactly this
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,

    /// Signature file [default: ARTIFACT.minisig]
    #[arg(short = 'x', long, value_name = "FILE")]
    pub signature: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The artifact (or a source directory, built in memory)
    #[arg(value_name = "ARTIFACT")]
    pub artifact: PathBuf,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The artifact in force
    #[arg(value_name = "OLD")]
    pub old: PathBuf,

    /// The artifact proposed
    #[arg(value_name = "NEW")]
    pub new: PathBuf,

    /// Show only changes that break data or clients (removals, type changes, narrowing)
    #[arg(long)]
    pub breaking_only: bool,

    /// Exit 3 if any change widens access (for CI gates)
    #[arg(long)]
    pub deny_widening: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory to write `objectos.1` and one page per command into
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
}
