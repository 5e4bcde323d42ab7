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

/// An address to listen on (`127.0.0.1:8080`): a bad one is a usage error.
fn check_address(text: &str) -> Result<String, String> {
    text.parse::<std::net::SocketAddr>()
        .map(|_| text.to_string())
        .map_err(|_| {
            format!("`{text}` is not an address to listen on; write it like `127.0.0.1:8080`")
        })
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
    /// Create the data dir: database, instance keys, trust store (idempotent)
    ///
    /// The database is SQLite in the data dir unless `--database-url` names an
    /// empty PostgreSQL database; the URL is kept in the data dir's
    /// `database.json` (never a password: it comes from `~/.pgpass`,
    /// `PGPASSFILE`, `PGPASSWORD` or `--database-password-file`).
    Init(InitArgs),
    /// Manage the public keys trusted to sign artifacts
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Verify a signed artifact, show the plan, and shape the database to it
    Apply(ApplyArgs),
    /// Create the first organization and administrator, and print the admin's API key
    ///
    /// The administrator needs a password: it is asked on the terminal, or read
    /// from `--password-file` (its first line; 12 characters or more).
    Bootstrap(BootstrapArgs),
    /// Manage users
    #[command(subcommand)]
    User(UserCommand),
    /// Manage organizations
    #[command(subcommand)]
    Org(OrgCommand),
    /// Add users to organizations or remove them
    #[command(subcommand)]
    Member(MemberCommand),
    /// Manage teams (a sharing rule's position is a team of that name)
    #[command(subcommand)]
    Team(TeamCommand),
    /// List, show, assign and revoke permission sets
    #[command(subcommand)]
    Permset(PermsetCommand),
    /// Create, list and revoke API keys
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// List and revoke sign-in sessions
    #[command(subcommand)]
    Session(SessionCommand),
    /// Read and change settings; secrets are encrypted to the instance key
    #[command(subcommand)]
    Settings(SettingsCommand),
    /// Read and verify the hash-chained audit log
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Check the data dir, keys, database, audit chain and applied artifact
    Doctor,
    /// Manage the instance's own keys
    #[command(subcommand)]
    Instance(InstanceCommand),
    /// Approve or reject what agents proposed, through the running server
    ///
    /// On a terminal: a list, then one action's diff, then approve / reject /
    /// skip. Without one: `--list`, `ID --approve`, `ID --reject --reason TEXT`.
    /// Authenticates with the reviewer's own user key (`--api-key-file` or
    /// `OBJECTOS_REVIEW_KEY`), never an agent key.
    Review(ReviewArgs),
    /// Run the HTTP API in the foreground until SIGINT or SIGTERM
    Serve(ServeArgs),
    /// Print the OpenAPI 3.1 document of the HTTP API (with `--as`, that user's objects)
    Openapi(OpenapiArgs),
    /// Bridge an agent host's stdio to the server's MCP endpoint (agent key from
    /// `OBJECTOS_API_KEY`; never opens the data dir)
    Mcp(McpArgs),
    /// Talk with the assistant as your user, through the running server
    ///
    /// Streams the answer, and shows each tool call it makes and each change
    /// that waits for a reviewer. Authenticates with your user key or session
    /// token (`--api-key-file` or `OBJECTOS_API_KEY`). With MESSAGE it sends
    /// that and exits; otherwise it reads one message per line, with a prompt
    /// on a terminal.
    Chat(ChatArgs),
    /// The assistant's stored conversations, for the host operator
    #[command(subcommand)]
    Assistant(AssistantCommand),
    /// Create records in bulk from JSON lines or CSV, as a user, through the same rules and audit
    Import(ImportArgs),
    /// Write the records a user may read as JSON lines (needs `allowExport`)
    Export(ExportArgs),
    /// Move record ownership from one user to another (for people who leave)
    Transfer(TransferArgs),
    /// Take a consistent backup while the runtime serves (keys only in an encrypted one)
    Backup(BackupArgs),
    /// Restore a backup into an empty data dir, refusing one whose audit chain does not verify
    Restore(RestoreArgs),
    /// Set up the sample CRM end to end (init, sign, apply, bootstrap, users) and serve it
    Quickstart(QuickstartArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
    /// Write the manual pages
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// A directory of fragment files (merged in file-name order) or one JSON file
    /// (`-`: standard input)
    #[arg(default_value = ".", value_name = "SOURCE")]
    pub source: PathBuf,

    /// Where to write the artifact (`-`: standard output)
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
    /// A directory of fragment files, one source file, or a built artifact (`-`:
    /// standard input)
    #[arg(default_value = ".", value_name = "SOURCE|ARTIFACT")]
    pub source: PathBuf,

    /// Treat unknown keys as errors instead of warnings
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Secret key file to write; the public key goes to `KEY.pub` (so not `-`)
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
    /// The artifact to sign (`-`: standard input, with `-o`)
    #[arg(value_name = "ARTIFACT")]
    pub artifact: PathBuf,

    /// Secret key made by `objectos keygen` or `minisign -G`
    #[arg(short = 'k', long = "key", value_name = "KEY")]
    pub key: PathBuf,

    /// Make the signature expire: a duration (`30s`, `12h`, `90d`) or an RFC 3339 time
    #[arg(long, value_name = "WHEN", value_parser = crate::timefmt::check_when)]
    pub expires: Option<String>,

    /// Read the secret key's password from this file (first line)
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// Signature file to write (`-`: standard output) [default: ARTIFACT.minisig]
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The artifact to verify; its signature is read from `ARTIFACT.minisig`
    /// (`-`: standard input, with `-x`)
    #[arg(value_name = "ARTIFACT")]
    pub artifact: PathBuf,

    /// A trusted public key (repeatable; `-`: standard input)
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
    #[arg(long, value_name = "HEX", value_parser = crate::crypto::signing::check_sha256)]
    pub sha256: Option<String>,

    /// Signature file (`-`: standard input) [default: ARTIFACT.minisig]
    #[arg(short = 'x', long, value_name = "FILE")]
    pub signature: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The artifact (or a source directory, built in memory; `-`: standard input)
    #[arg(value_name = "ARTIFACT")]
    pub artifact: PathBuf,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The artifact in force (`-`: standard input, for one of the two)
    #[arg(value_name = "OLD")]
    pub old: PathBuf,

    /// The artifact proposed (`-`: standard input, for one of the two)
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

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Trust a minisign public key to sign artifacts
    Add {
        /// The public key file (`KEY.pub`; `-`: standard input)
        #[arg(value_name = "KEY.pub")]
        key: PathBuf,
    },
    /// List the trusted keys
    List,
    /// Stop trusting a key
    Remove {
        /// The key id (16 hex digits) or its `.pub` file
        #[arg(value_name = "KEYID|KEY.pub")]
        key: String,
    },
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The signed artifact (its signature is `ARTIFACT.minisig`; `-`: standard
    /// input, with `-x`)
    #[arg(value_name = "ARTIFACT")]
    pub artifact: PathBuf,

    /// Print the plan and change nothing
    #[arg(long)]
    pub plan: bool,

    /// Allow dropping objects and fields and changing field types (data is lost)
    #[arg(long)]
    pub allow_destructive: bool,

    /// Allow applying a lower manifest version than the one applied
    #[arg(long)]
    pub allow_downgrade: bool,

    /// Apply without asking
    #[arg(short, long)]
    pub yes: bool,

    /// Signature file (`-`: standard input) [default: ARTIFACT.minisig]
    #[arg(short = 'x', long, value_name = "FILE")]
    pub signature: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Keep the database on this PostgreSQL server (`postgres://USER@HOST:PORT/DB`, no password)
    #[arg(long, value_name = "URL", env = "OBJECTOS_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Read the PostgreSQL password from this file (first line) at every connection
    #[arg(long, value_name = "FILE", requires = "database_url")]
    pub database_password_file: Option<PathBuf>,

    /// The role that owns the schema (`postgres://OWNER@HOST:PORT/DB`, no password):
    /// it makes the tables and grants the `--database-url` role only what the
    /// runtime needs (it cannot alter audit rows); migrations, `apply` and
    /// `audit archive` connect as it
    #[arg(long, value_name = "URL", requires = "database_url")]
    pub database_admin_url: Option<String>,

    /// Read the administrative role's password from this file (first line)
    #[arg(long, value_name = "FILE", requires = "database_admin_url")]
    pub database_admin_password_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// Email of the first administrator
    #[arg(long, value_name = "EMAIL")]
    pub admin_email: String,

    /// Name of the first organization
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub org: String,

    /// Read the administrator's password from this file (first line)
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user (a member of the bootstrap organization unless `--org`)
    Add {
        /// The user's email
        #[arg(value_name = "EMAIL")]
        email: String,
        /// Display name
        #[arg(long, value_name = "TEXT")]
        name: Option<String>,
        /// Organization to join
        #[arg(long, value_name = "NAME")]
        org: Option<String>,
        /// Read the password from this file (first line)
        #[arg(long, value_name = "FILE", conflicts_with = "no_password")]
        password_file: Option<PathBuf>,
        /// No password: the user signs in with API keys only
        #[arg(long)]
        no_password: bool,
    },
    /// List users
    List,
    /// Show a user with their organizations, teams, permission sets and keys
    Show {
        /// The user's email
        #[arg(value_name = "EMAIL")]
        email: String,
    },
    /// Disable a user: their keys and sessions stop working at once
    Disable {
        /// The user's email
        #[arg(value_name = "EMAIL")]
        email: String,
        /// Disable the last enabled administrator too (nobody could manage the
        /// instance over the API afterwards)
        #[arg(long)]
        force: bool,
    },
    /// Enable a disabled user
    Enable {
        /// The user's email
        #[arg(value_name = "EMAIL")]
        email: String,
    },
    /// Set a user's password
    SetPassword {
        /// The user's email
        #[arg(value_name = "EMAIL")]
        email: String,
        /// Read the password from this file (first line)
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Add an organization
    Add {
        /// The organization's name (letters, digits, `_`, `-` and `.`)
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// List organizations
    List,
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Make a user a member of an organization
    Add {
        /// The user's email
        #[arg(value_name = "EMAIL")]
        email: String,
        /// The organization's name
        #[arg(value_name = "ORG")]
        org: String,
    },
    /// Remove a user from an organization
    Remove {
        /// The user's email
        #[arg(value_name = "EMAIL")]
        email: String,
        /// The organization's name
        #[arg(value_name = "ORG")]
        org: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Add a team
    Add {
        /// The team's name (letters, digits, `_`, `-` and `.`)
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// List teams and their members
    List,
    /// Put a user in a team
    AddMember {
        /// The team's name
        #[arg(value_name = "TEAM")]
        team: String,
        /// The user's email
        #[arg(value_name = "EMAIL")]
        email: String,
    },
    /// Take a user out of a team
    RemoveMember {
        /// The team's name
        #[arg(value_name = "TEAM")]
        team: String,
        /// The user's email
        #[arg(value_name = "EMAIL")]
        email: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PermsetCommand {
    /// List permission sets and who holds them
    List,
    /// Show a permission set's rights
    Show {
        /// The permission set's name (`admin`, or one the applied artifact defines)
        #[arg(value_name = "PERMSET")]
        name: String,
    },
    /// Assign a permission set to a user
    Assign {
        /// The permission set's name (`admin`, or one the applied artifact defines)
        #[arg(value_name = "PERMSET")]
        name: String,
        /// The user's email
        #[arg(value_name = "EMAIL")]
        email: String,
        /// Only inside this organization
        #[arg(long, value_name = "NAME")]
        org: Option<String>,
        /// Until this time: a duration (`30d`) or an RFC 3339 time
        #[arg(long, value_name = "TIME", value_parser = crate::timefmt::check_when)]
        valid_until: Option<String>,
    },
    /// Revoke an assignment
    Revoke {
        /// Revoke `admin` from the last enabled administrator too
        #[arg(long)]
        force: bool,
        /// The permission set's name (`admin`, or one the applied artifact defines)
        #[arg(value_name = "PERMSET")]
        name: String,
        /// The user's email
        #[arg(value_name = "EMAIL")]
        email: String,
        /// The organization the assignment was made for
        #[arg(long, value_name = "NAME")]
        org: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Create an API key and print it (shown only this once)
    Create {
        /// The user's email
        #[arg(value_name = "EMAIL")]
        email: String,
        /// An agent key, for MCP only (needs `agent_access`)
        #[arg(long)]
        agent: bool,
        /// An agent key that can read but never write or propose
        #[arg(long, requires = "agent")]
        read_only: bool,
        /// The organization the key works in (needed when the user has several)
        #[arg(long, value_name = "NAME")]
        org: Option<String>,
        /// A label to recognise the key by
        #[arg(long, value_name = "TEXT")]
        name: Option<String>,
        /// Expire the key: a duration (`90d`) or an RFC 3339 time
        #[arg(long, value_name = "WHEN", value_parser = crate::timefmt::check_when)]
        expires: Option<String>,
    },
    /// List API keys (never the keys themselves)
    List {
        /// Only this user's keys
        #[arg(long, value_name = "EMAIL")]
        user: Option<String>,
    },
    /// Revoke a key by id or displayed prefix
    Revoke {
        /// The key's id, or the prefix `apikey list` shows
        #[arg(value_name = "ID|PREFIX")]
        key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// List sessions
    List {
        /// Only this user's sessions
        #[arg(long, value_name = "EMAIL")]
        user: Option<String>,
    },
    /// Revoke a session
    Revoke {
        /// The session's id (see `session list`)
        #[arg(value_name = "ID")]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// Set a value; `--secret` encrypts it to the instance key
    ///
    /// A secret is best read from standard input (`-`), a file (`--value-file`)
    /// or the terminal (leave VALUE out): a VALUE on the command line is visible
    /// in `ps` and the shell's history.
    Set {
        /// The setting's name (e.g. `ai.endpoint`)
        #[arg(value_name = "KEY")]
        key: String,
        /// The value; `-` reads it from standard input; left out, it is read from
        /// `--value-file` or asked on the terminal (hidden with `--secret`). A
        /// secret given here shows in `ps` and the shell's history
        #[arg(value_name = "VALUE")]
        value: Option<String>,
        /// Read the value from this file (its first line; `-` for standard input)
        #[arg(long, value_name = "FILE", conflicts_with = "value")]
        value_file: Option<PathBuf>,
        /// Encrypt the value to the instance key (never stored or shown in clear)
        #[arg(long)]
        secret: bool,
    },
    /// Print a value (reading a secret is audited)
    Get {
        /// The setting's name
        #[arg(value_name = "KEY")]
        key: String,
    },
    /// List settings; secret values are never shown
    List,
    /// Remove a setting
    Unset {
        /// The setting's name
        #[arg(value_name = "KEY")]
        key: String,
    },
}

#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// The pending action to show or decide
    #[arg(value_name = "ID")]
    pub id: Option<String>,

    /// Approve ID: it is applied at once as its requester
    #[arg(long, requires = "id", conflicts_with = "reject")]
    pub approve: bool,

    /// Reject ID (with `--reason`)
    #[arg(long, requires = "id")]
    pub reject: bool,

    /// Why it is rejected (asked on a terminal when left out)
    #[arg(long, value_name = "TEXT", requires = "reject")]
    pub reason: Option<String>,

    /// List the actions you may see instead
    #[arg(long, conflicts_with_all = ["id", "approve", "reject"])]
    pub list: bool,

    /// Which actions `--list` shows
    #[arg(long, value_name = "STATUS", default_value = "pending", value_parser = ["pending", "approved", "applied", "failed", "rejected", "cancelled", "expired", "all"])]
    pub status: String,

    /// The running server
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080",
        env = "OBJECTOS_SERVER"
    )]
    pub server: String,

    /// Read the reviewer's user key from this file (else `OBJECTOS_REVIEW_KEY`)
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,

    /// Allow plain `http://` to a server that is not on this host
    #[arg(long)]
    pub insecure: bool,

    /// Trust this CA (PEM) for an `https://` server
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// The message to send (the rest of the line); without it, messages are read line by line
    #[arg(value_name = "MESSAGE", trailing_var_arg = true)]
    pub message: Vec<String>,

    /// Continue this conversation instead of starting one
    #[arg(long, value_name = "ID")]
    pub conversation: Option<String>,

    /// The new conversation's title
    #[arg(long, value_name = "TEXT", conflicts_with = "conversation")]
    pub title: Option<String>,

    /// The running server
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080",
        env = "OBJECTOS_SERVER"
    )]
    pub server: String,

    /// Read your user key (or session token) from this file (else `OBJECTOS_API_KEY`)
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,

    /// Allow plain `http://` to a server that is not on this host
    #[arg(long)]
    pub insecure: bool,

    /// Trust this CA (PEM) for an `https://` server
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AssistantCommand {
    /// Write stored conversations as JSON lines: every message as sent to the model, with its hash
    Export(AssistantExportArgs),
}

#[derive(Debug, Args)]
pub struct AssistantExportArgs {
    /// Only this user's conversations
    #[arg(long, value_name = "EMAIL")]
    pub user: Option<String>,

    /// Only this conversation
    #[arg(long, value_name = "ID")]
    pub conversation: Option<String>,

    /// Write here instead of stdout (`-` is stdout)
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct OpenapiArgs {
    /// Add a schema per object this user may read (only the fields they may
    /// read), as the server answers them; without it, the routes only
    #[arg(long = "as", value_name = "EMAIL")]
    pub email: Option<String>,

    /// The organization to act in, when the user belongs to several
    #[arg(long, value_name = "NAME", requires = "email")]
    pub org: Option<String>,

    /// Write here instead of stdout (`-` is stdout)
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct McpArgs {
    /// The running server (its MCP endpoint is `/api/v1/mcp` there)
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080",
        env = "OBJECTOS_SERVER"
    )]
    pub server: String,

    /// Allow plain `http://` to a server that is not on this host
    #[arg(long)]
    pub insecure: bool,

    /// Trust this CA (PEM) for an `https://` server
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// Make new signing and encryption keys for the instance
    ///
    /// Secret settings are re-encrypted to the new key, and the old public
    /// signing key and the old identity are kept under `retired/` so that
    /// checkpoints, archives and audit HMACs made before still verify. Encrypted
    /// backups made before still need the old identity to restore. Stop the
    /// server first: it keeps using the keys it started with.
    RotateKeys,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Show the newest audit rows
    Tail {
        /// How many rows
        #[arg(short = 'n', long, default_value_t = 20)]
        n: usize,
        /// Keep printing rows as they are appended (one JSON line per row with
        /// `--json`), until interrupted
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Walk the whole chain and check it against the signed checkpoints
    ///
    /// The chain starts at seq 1, or where `audit archive` left its anchor.
    /// With `--checkpoints`, it is also checked against checkpoints kept outside
    /// the data dir, which is what tells that the newest rows were cut off
    /// together with the newest lines of the data dir's own checkpoint log.
    Verify(AuditVerifyArgs),
    /// Write a range of the audit log as a signed archive an auditor verifies
    /// offline, with stock tools or `audit verify-archive`
    ///
    /// The archive is a tar holding `manifest.json`, `events.jsonl` (one
    /// canonical row per line), `checkpoints.log` (the signed checkpoints in the
    /// range), `SHA256SUMS`, `SHA256SUMS.minisig` and `README.txt`. Unsigned,
    /// unencrypted exports of the same range are byte-identical. The export is
    /// audited; its own row falls after the range.
    Export(AuditExportArgs),
    /// Verify an archive offline: its entries, signature, checksums and hash
    /// chain, and that it continues the previous one
    ///
    /// An archive never vouches for itself: the key it must be signed by comes
    /// from `-p` or from a previous archive you verified (`--after`); without
    /// either the answer is "origin unverified" (exit 3). Needs no data dir.
    #[command(name = "verify-archive")]
    VerifyArchive(VerifyArchiveArgs),
    /// Move the oldest rows out of the database into a signed archive
    ///
    /// Exports the rows before `--before`, verifies the file it wrote, then
    /// removes those rows and records an anchor (the last seq and hash), all
    /// or nothing. `audit verify` then starts from the anchor.
    Archive(AuditArchiveArgs),
    /// Check a suspected value against the HMAC a row recorded instead of a
    /// sensitive field's or a secret setting's value (only the holder of the
    /// instance key can); exit 0 when it matches, 1 when it does not
    Confirm {
        /// The row's seq
        #[arg(value_name = "SEQ")]
        seq: i64,
        /// The field the row changed (`value` for a setting)
        #[arg(value_name = "FIELD")]
        field: String,
        /// Read the suspected value from the first line of this file (`-`: standard
        /// input); without it, it is asked on the terminal
        #[arg(long, value_name = "FILE")]
        value_file: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// Also check against checkpoints kept outside the data dir: a copy of
    /// `audit-checkpoints.log`, a log of `objectos serve` (it logs every
    /// checkpoint), or an earlier archive (unencrypted)
    #[arg(long, value_name = "FILE")]
    pub checkpoints: Option<PathBuf>,
}

/// Where an archive goes, who signs it, and whom it is encrypted to.
#[derive(Debug, Args)]
pub struct ArchiveOutputArgs {
    /// The archive to write (`-` for standard output, never a terminal)
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,

    /// Sign with this minisign secret key instead of the instance's signing key
    #[arg(long, value_name = "KEY")]
    pub sign_key: Option<PathBuf>,

    /// Read the password of an encrypted `--sign-key` from this file (first line)
    #[arg(long, value_name = "FILE", requires = "sign_key")]
    pub password_file: Option<PathBuf>,

    /// Encrypt the whole archive to this age recipient (`age1…` or an
    /// `ssh-ed25519` key); repeatable
    #[arg(long = "encrypt-to", value_name = "RECIPIENT")]
    pub encrypt_to: Vec<String>,

    /// Encrypt to every recipient in this file (one per line, as `age -R` reads);
    /// repeatable
    #[arg(short = 'R', long = "recipients-file", value_name = "FILE")]
    pub recipients_file: Vec<PathBuf>,

    /// Replace FILE if it exists
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct AuditExportArgs {
    /// The first row: a seq, or an RFC 3339 time or a date (`2026-01-31`) for the
    /// first row at or after it [default: the oldest row in the database]
    #[arg(long, value_name = "SEQ|TIME")]
    pub from: Option<String>,

    /// The last row (inclusive): a seq, or a time or date for the last row at or
    /// before it (a date means its end) [default: the newest row]
    #[arg(long, value_name = "SEQ|TIME")]
    pub to: Option<String>,

    #[command(flatten)]
    pub output: ArchiveOutputArgs,

    /// Write no signature (`SHA256SUMS.minisig`); `verify-archive` then answers
    /// "origin unverified"
    #[arg(long, conflicts_with_all = ["sign_key", "password_file"])]
    pub no_sign: bool,
}

#[derive(Debug, Args)]
pub struct AuditArchiveArgs {
    /// Archive every row before this: a seq (not included), or an RFC 3339 time
    /// or a date (`2026-01-01`: the rows of earlier days)
    #[arg(long, value_name = "SEQ|TIME")]
    pub before: String,

    #[command(flatten)]
    pub output: ArchiveOutputArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArchiveArgs {
    /// The archive (`-` for standard input)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// The public key the archive must be signed by (the instance's
    /// `instance-signing.key.pub`, or the `--sign-key` it was exported with);
    /// repeatable
    #[arg(short = 'p', long = "public-key", value_name = "KEY.pub")]
    pub public_keys: Vec<PathBuf>,

    /// An age identity file to decrypt it with; repeatable
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY")]
    pub identities: Vec<PathBuf>,

    /// The archive you verified before, which this one must continue exactly
    /// (no gap, no overlap); the keys it was signed with are trusted for this one
    #[arg(long, value_name = "PREVIOUS_ARCHIVE")]
    pub after: Option<PathBuf>,

    /// Also check the events against checkpoints kept outside the archive (a
    /// copy of the checkpoint log, a log of `objectos serve`)
    #[arg(long, value_name = "FILE")]
    pub checkpoints: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback unless `--public`)
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR", value_parser = check_address)]
    pub listen: String,

    /// Allow listening on a non-loopback address (put TLS in the ingress in front)
    #[arg(long)]
    pub public: bool,

    /// Log format on stderr
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Reverse proxy (IP or CIDR block, repeatable) whose `X-Forwarded-For` names
    /// the client for sign-in throttling and the audit log; ignored from anyone else
    #[arg(
        long = "trusted-proxy",
        value_name = "IP[/PREFIX]",
        env = "OBJECTOS_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = crate::commands::serve::check_trusted_proxy
    )]
    pub trusted_proxies: Vec<String>,

    /// Browser origin (`https://host[:port]`, repeatable) allowed to call the
    /// MCP endpoint; a request carrying any other `Origin` is refused (agent
    /// hosts send none)
    #[arg(
        long = "mcp-allow-origin",
        value_name = "ORIGIN",
        env = "OBJECTOS_MCP_ALLOWED_ORIGINS",
        value_delimiter = ',',
        value_parser = crate::server::mcp::check_origin
    )]
    pub mcp_allowed_origins: Vec<String>,

    /// Connections to keep open at once; more clients wait to be accepted
    #[arg(long, value_name = "N", default_value_t = crate::limits::MAX_CONNECTIONS, value_parser = clap::value_parser!(usize))]
    pub max_connections: usize,

    /// Seconds a client may take to send a request's headers, or stay silent on
    /// an open connection, before it is disconnected
    #[arg(long, value_name = "SECONDS", default_value_t = crate::limits::CLIENT_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub client_timeout: u64,

    /// Seconds one request may take, from its headers to the end of the answer
    /// (a body still arriving counts); past it the answer is 408
    #[arg(long, value_name = "SECONDS", default_value_t = crate::limits::REQUEST_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The object to create records of
    #[arg(value_name = "OBJECT")]
    pub object: String,

    /// JSON lines, or CSV with a header row (by extension, or `--format`); `-` reads stdin
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// The user the records are created as (their create and field rights apply)
    #[arg(long = "as", value_name = "EMAIL")]
    pub email: String,

    /// The organization to act in, when the user belongs to several
    #[arg(long, value_name = "NAME")]
    pub org: Option<String>,

    /// `jsonl` or `csv` (default: by the file's extension, JSON lines otherwise)
    #[arg(long, value_name = "FORMAT", value_parser = ["jsonl", "json", "csv"])]
    pub format: Option<String>,

    /// Report invalid rows and go on, instead of stopping at the first (a CSV
    /// file whose quoting leaves where records start unknowable is refused whole)
    #[arg(long)]
    pub skip_invalid: bool,

    /// Records per transaction
    #[arg(long, default_value_t = 5000, value_name = "N")]
    pub batch: usize,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The object to export
    #[arg(value_name = "OBJECT")]
    pub object: String,

    /// The user whose view is exported
    #[arg(long = "as", value_name = "EMAIL")]
    pub email: String,

    /// The organization to act in, when the user belongs to several
    #[arg(long, value_name = "NAME")]
    pub org: Option<String>,

    /// Write here instead of stdout (`-` is stdout)
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TransferArgs {
    /// The user whose records move
    #[arg(long, value_name = "EMAIL")]
    pub from: String,

    /// The user who receives them
    #[arg(long, value_name = "EMAIL")]
    pub to: String,

    /// Only records of this object
    #[arg(long, value_name = "NAME")]
    pub object: Option<String>,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backup file to write (`-`: standard output)
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,

    /// Encrypt to this age recipient (`age1…` or an SSH public key); repeatable.
    /// Only an encrypted backup carries the instance keys
    #[arg(long = "encrypt-to", value_name = "RECIPIENT")]
    pub encrypt_to: Vec<String>,

    /// Replace FILE if it exists
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file (`-`: standard input)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// An age identity file to decrypt it with (repeatable)
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY")]
    pub identities: Vec<PathBuf>,

    /// The instance's signing public key (`instance-signing.key.pub`), which must
    /// have signed the backup; a backup never vouches for itself
    #[arg(long, value_name = "KEY.pub")]
    pub signer: Option<PathBuf>,

    /// The data dir the backup came from (or a directory holding its keys): its
    /// signing key vouches for the backup, and an unencrypted backup takes
    /// `instance.key` and `instance-signing.key` from there
    #[arg(long, value_name = "DIR")]
    pub keys_from: Option<PathBuf>,

    /// Restore into a new, empty PostgreSQL database (`postgres://USER@HOST:PORT/DB`,
    /// no password) instead of a SQLite file in the data dir; whatever backend
    /// the backup was taken from
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,

    /// Read the PostgreSQL password from this file (first line) at every connection
    #[arg(long, value_name = "FILE", requires = "database_url")]
    pub database_password_file: Option<PathBuf>,

    /// The role that owns the schema (as `init --database-admin-url`): it makes
    /// the tables and grants the `--database-url` role only what the runtime needs
    #[arg(long, value_name = "URL", requires = "database_url")]
    pub database_admin_url: Option<String>,

    /// Read the administrative role's password from this file (first line)
    #[arg(long, value_name = "FILE", requires = "database_admin_url")]
    pub database_admin_password_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// Address to serve on
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR", value_parser = check_address)]
    pub listen: String,

    /// Allow a non-loopback address
    #[arg(long)]
    pub public: bool,
}
