//! `objectos man -o DIR`: manual pages for the command and each subcommand.
//!
//! clap_mangen renders what `--help` knows (NAME, DESCRIPTION, OPTIONS and the
//! subcommands). A manual page says more, and that is kept here, in tables keyed
//! by command path (`objectos apikey create`): the SYNOPSIS with the full command
//! path, the global options, EXIT STATUS, ENVIRONMENT, FILES, EXAMPLES and SEE ALSO.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Arg, ArgAction, CommandFactory};
use clap_mangen::roff::{Roff, bold, italic, roman};
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
    let root = command_tree();
    let paths = command_paths(&root);
    render(&root, "objectos", &paths, &mut pages)?;
    Ok(pages)
}

/// The command tree as the pages show it: built (so global options are on every
/// subcommand and each knows its full path) with the global options under a
/// heading of their own.
fn command_tree() -> clap::Command {
    let mut root = Cli::command().mut_args(|arg| {
        if arg.is_global_set() {
            arg.help_heading("Global options")
        } else {
            arg
        }
    });
    root.build();
    hide_help_subcommands(&mut root);
    root
}

/// clap's `help` subcommand has no page, so no page lists it.
fn hide_help_subcommands(command: &mut clap::Command) {
    for sub in command.get_subcommands_mut() {
        if sub.get_name() == "help" {
            *sub = sub.clone().hide(true);
        } else {
            hide_help_subcommands(sub);
        }
    }
}

/// Whether a subcommand gets a page (clap's own `help` does not).
fn has_page(sub: &clap::Command) -> bool {
    sub.get_name() != "help" && !sub.is_hide_set()
}

/// Every command path with a page: `objectos`, `objectos build`, `objectos user add`, …
fn command_paths(root: &clap::Command) -> Vec<String> {
    fn walk(command: &clap::Command, path: &str, out: &mut Vec<String>) {
        out.push(path.to_string());
        for sub in command.get_subcommands().filter(|s| has_page(s)) {
            walk(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }
    let mut out = Vec::new();
    walk(root, "objectos", &mut out);
    out
}

fn render(
    command: &clap::Command,
    page_name: &str,
    paths: &[String],
    pages: &mut Vec<(String, Vec<u8>)>,
) -> anyhow::Result<()> {
    let command = command.clone().display_name(page_name.to_string());
    let path = command
        .get_bin_name()
        .unwrap_or_else(|| command.get_name())
        .to_string();
    let version = command.get_version().unwrap_or_default().to_string();
    let man = clap_mangen::Man::new(command.clone())
        .date("")
        .source(format!("objectos {version}"));

    let mut page = Vec::new();
    man.render_title(&mut page)
        .context("cannot render a manual page")?;
    let mut section = |render: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| {
        let mut bytes = Vec::new();
        render(&mut bytes).map(|()| page.extend_from_slice(without_preamble(&bytes)))
    };
    // Flags and paths in running text read badly hyphenated (`--al-low-downgrade`).
    section(&|w| {
        let mut roff = Roff::new();
        roff.control("nh", []);
        roff.control("ad", ["l"]);
        roff.to_writer(w)
    })?;
    section(&|w| man.render_name_section(w))?;
    section(&|w| synopsis(&command, &path).to_writer(w))?;
    section(&|w| man.render_description_section(w))?;
    if command.get_arguments().any(|a| !a.is_hide_set()) {
        section(&|w| man.render_options_section(w))?;
    }
    if command.get_subcommands().any(has_page) {
        section(&|w| man.render_subcommands_section(w))?;
    }
    if command.get_after_long_help().is_some() || command.get_after_help().is_some() {
        section(&|w| man.render_extra_section(w))?;
    }
    section(&|w| extra_sections(&path, paths).to_writer(w))?;
    if !version.is_empty() {
        section(&|w| man.render_version_section(w))?;
    }
    pages.push((format!("{page_name}.1"), page));

    for sub in command.get_subcommands().filter(|s| has_page(s)) {
        render(
            sub,
            &format!("{page_name}-{}", sub.get_name()),
            paths,
            pages,
        )?;
    }
    Ok(())
}

/// Each piece of roff starts with the same two-line preamble; a page needs it once.
fn without_preamble(bytes: &[u8]) -> &[u8] {
    let preamble = Roff::new().render();
    bytes.strip_prefix(preamble.as_bytes()).unwrap_or(bytes)
}

/// SYNOPSIS as a person types it: the full command path, its arguments, then its
/// options with their values (the global options have a section of their own).
fn synopsis(command: &clap::Command, path: &str) -> Roff {
    let mut line = vec![bold(path)];
    let own = |a: &&Arg| {
        !a.is_hide_set()
            && !a.is_positional()
            && !matches!(a.get_id().as_str(), "help" | "version")
            && (path == "objectos" || !a.is_global_set())
    };
    for arg in command.get_positionals().filter(|a| !a.is_hide_set()) {
        let name = value_name(arg);
        let many = matches!(arg.get_action(), ArgAction::Append);
        line.push(roman(" "));
        if arg.is_required_set() {
            line.push(italic(name));
        } else {
            line.push(roman("["));
            line.push(italic(name));
            line.push(roman("]"));
        }
        if many {
            line.push(roman("..."));
        }
    }
    let options: Vec<&Arg> = command.get_arguments().filter(own).collect();
    let required = options.iter().filter(|a| a.is_required_set());
    let optional = options.iter().filter(|a| !a.is_required_set());
    for arg in required.chain(optional) {
        line.push(roman(" "));
        if !arg.is_required_set() {
            line.push(roman("["));
        }
        let flag = match (arg.get_short(), arg.get_long()) {
            (Some(short), _) => format!("-{short}"),
            (None, Some(long)) => format!("--{long}"),
            (None, None) => continue,
        };
        line.push(bold(flag));
        if arg.get_num_args().is_some_and(|n| n.takes_values()) {
            line.push(roman(" "));
            line.push(italic(value_name(arg)));
        }
        if !arg.is_required_set() {
            line.push(roman("]"));
        }
        if matches!(arg.get_action(), ArgAction::Append) {
            line.push(roman("..."));
        }
    }
    if command.get_subcommands().any(has_page) {
        line.push(roman(" "));
        line.push(italic("COMMAND"));
        line.push(roman(" ["));
        line.push(italic("ARGS"));
        line.push(roman("]"));
    }
    let mut roff = Roff::new();
    roff.control("SH", ["SYNOPSIS"]);
    roff.text(line);
    roff
}

/// An argument's value as the synopsis shows it: the value name its author gave,
/// else its possible values (`text|json`), else its name in capitals.
fn value_name(arg: &Arg) -> String {
    let default = arg.get_id().as_str().to_uppercase();
    let named = arg
        .get_value_names()
        .map(|names| {
            names
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|name| !name.is_empty() && *name != default);
    if let Some(name) = named {
        return name;
    }
    let values: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_string())
        .collect();
    if values.is_empty() {
        default
    } else {
        values.join("|")
    }
}

/// Whether `path` is `command` or one of its subcommands.
fn is_under(path: &str, command: &str) -> bool {
    path == command
        || path
            .strip_prefix(command)
            .is_some_and(|rest| rest.starts_with(' '))
}

/// EXIT STATUS, ENVIRONMENT, FILES, EXAMPLES and SEE ALSO for the page of `path`.
fn extra_sections(path: &str, paths: &[String]) -> Roff {
    let mut roff = Roff::new();

    roff.control("SH", ["EXIT STATUS"]);
    roff.text([roman(
        "The same for every command, so that scripts can rely on them:",
    )]);
    for (code, meaning) in EXIT_STATUS {
        roff.control("TP", []);
        roff.text([bold(*code)]);
        roff.text([roman(*meaning)]);
    }

    roff.control("SH", ["ENVIRONMENT"]);
    let root = path == "objectos";
    for (variable, commands, meaning) in ENVIRONMENT {
        let applies = if root {
            // The root page names every variable of a command that exists.
            commands.is_empty() || commands.iter().any(|c| paths.iter().any(|p| p == c))
        } else {
            commands.is_empty() || commands.iter().any(|c| is_under(path, c))
        };
        if !applies {
            continue;
        }
        roff.control("TP", []);
        roff.text([bold(*variable)]);
        if root && !commands.is_empty() {
            roff.text([roman(format!("({}) {meaning}", commands.join(", ")))]);
        } else {
            roff.text([roman(*meaning)]);
        }
    }

    let own_files: Vec<&(&str, &str, &str)> = COMMAND_FILES
        .iter()
        .filter(|(command, _, _)| is_under(path, command))
        .collect();
    let data_dir = root || USES_DATA_DIR.iter().any(|c| is_under(path, c));
    if !own_files.is_empty() || data_dir {
        roff.control("SH", ["FILES"]);
        for (_, file, meaning) in own_files {
            roff.control("TP", []);
            roff.text([italic(*file)]);
            roff.text([roman(*meaning)]);
        }
        if data_dir {
            roff.control("PP", []);
            roff.text([
                roman("The data directory "),
                italic("DIR"),
                roman(" ("),
                bold("--data-dir"),
                roman(", or "),
                bold("OBJECTOS_DATA_DIR"),
                roman("; "),
                italic("./objectos-data"),
                roman(" by default, mode 0700) holds:"),
            ]);
            for (file, meaning) in DATA_DIR_FILES {
                roff.control("TP", []);
                roff.text([italic("DIR"), roman(format!("/{file}"))]);
                roff.text([roman(*meaning)]);
            }
        }
    }

    if let Some((_, examples)) = EXAMPLES.iter().find(|(p, _)| *p == path) {
        roff.control("SH", ["EXAMPLES"]);
        // An empty description continues the example before it.
        for (what, line) in examples.iter() {
            if !what.is_empty() {
                roff.control("PP", []);
                roff.text([roman(*what)]);
            }
            roff.control("RS", ["4"]);
            roff.control("nf", []);
            roff.text([bold(*line)]);
            roff.control("fi", []);
            roff.control("RE", []);
        }
    }

    roff.control("SH", ["SEE ALSO"]);
    let mut see_also: Vec<String> = Vec::new();
    let words: Vec<&str> = path.split(' ').collect();
    for end in 1..words.len() {
        see_also.push(format!("{}(1)", words[..end].join("-")));
    }
    for (command, pages) in SEE_ALSO {
        if is_under(path, command) {
            see_also.extend(pages.iter().map(|p| p.to_string()));
        }
    }
    if root {
        see_also.push("objectos-quickstart(1)".to_string());
    }
    roff.text([roman(see_also.join(", "))]);
    roff
}

/// `EXIT STATUS`, on every page (the exit codes every command shares).
const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "Success."),
    (
        "1",
        "Error: I/O, the database, bad input, a refusal that a flag would lift (a destructive \
         plan without --allow-destructive, a downgrade without --allow-downgrade), not found (including \
         what the user may not see: it is reported as not found, not as denied), a conflict, or a \
         stale or already-decided pending action.",
    ),
    (
        "2",
        "Usage: an unknown command or flag, a missing or malformed argument.",
    ),
    (
        "3",
        "Verification failed: a missing, bad or untrusted signature, a digest mismatch, an \
         expired signature, an invalid or unparseable artifact, a broken audit chain, an \
         audit archive that was tampered with or whose origin no key from outside it vouches \
         for, or diff --deny-widening found a change that widens access.",
    ),
    (
        "4",
        "Unauthenticated or denied: no valid credential, a missing permission, separation of \
         duties, an agent key used where only a user key may be.",
    ),
];

/// `ENVIRONMENT`: (variable, the command paths it applies to — none: every
/// page —, what it does). Variables of commands that do not exist yet are kept
/// here so their pages have them as soon as they do.
const ENVIRONMENT: &[(&str, &[&str], &str)] = &[
    (
        "OBJECTOS_DATA_DIR",
        &[],
        "The data directory, when --data-dir is not given (default ./objectos-data).",
    ),
    (
        "OBJECTOS_DATABASE_URL",
        &["objectos init"],
        "The PostgreSQL database of a new instance, when --database-url is not given \
         (postgres://USER@HOST:PORT/DB, never with a password).",
    ),
    (
        "PGPASSWORD",
        &[],
        "On an instance whose database is on PostgreSQL: the role's password, before the file \
         database.json names and the password file.",
    ),
    (
        "PGPASSFILE",
        &[],
        "On an instance whose database is on PostgreSQL: libpq's password file, when not \
         ~/.pgpass.",
    ),
    (
        "NO_COLOR",
        &[],
        "When set to anything but the empty string, --color auto prints no colour.",
    ),
    (
        "OBJECTOS_LOG",
        &["objectos serve"],
        "Which log lines the server writes on stderr, as a tracing filter: a level \
         (error, warn, info, debug, trace) or directives such as objectos=debug. Default info.",
    ),
    (
        "OBJECTOS_TRUSTED_PROXIES",
        &["objectos serve"],
        "Reverse proxies whose X-Forwarded-For names the client, comma-separated, when no \
         --trusted-proxy is given.",
    ),
    (
        "NOTIFY_SOCKET",
        &["objectos serve"],
        "Set by systemd for a Type=notify service: the server reports there when it is ready \
         and when it stops.",
    ),
    (
        "OBJECTOS_MCP_ALLOWED_ORIGINS",
        &["objectos serve"],
        "Browser origins allowed to call the MCP endpoint, comma-separated, when no \
         --mcp-allow-origin is given.",
    ),
    (
        "OBJECTOS_SERVER",
        &["objectos mcp", "objectos review", "objectos chat"],
        "The running server, when --server is not given.",
    ),
    (
        "OBJECTOS_API_KEY",
        &["objectos mcp", "objectos chat"],
        "The key objectos mcp authenticates with (an agent key), and objectos chat (your user \
         key or session token).",
    ),
    (
        "OBJECTOS_REVIEW_KEY",
        &["objectos review"],
        "The reviewer's user API key, when --api-key-file is not given (never an agent key: \
         that is refused).",
    ),
];

/// Commands that open the data dir; a group stands for all of its subcommands.
const USES_DATA_DIR: &[&str] = &[
    "objectos init",
    "objectos trust",
    "objectos apply",
    "objectos bootstrap",
    "objectos user",
    "objectos org",
    "objectos member",
    "objectos team",
    "objectos permset",
    "objectos apikey",
    "objectos session",
    "objectos settings",
    // Not `audit verify-archive`: an auditor verifies an archive without one.
    "objectos audit tail",
    "objectos audit verify",
    "objectos audit confirm",
    "objectos audit export",
    "objectos audit archive",
    "objectos doctor",
    "objectos serve",
    "objectos import",
    "objectos export",
    "objectos transfer",
    "objectos assistant",
    "objectos backup",
    "objectos restore",
    "objectos quickstart",
];

/// The data dir's files (`src/instance`), on the page of every command that opens it.
const DATA_DIR_FILES: &[(&str, &str)] = &[
    (
        "objectos.db",
        "The SQLite database: records, users, organizations, permission sets, API keys, \
         sessions, settings, the applied artifact and the audit log (mode 0600).",
    ),
    (
        "instance.key",
        "The instance's age identity (mode 0600). Secret settings are encrypted to it, and the \
         audit log's HMACs of sensitive values are keyed from it. Only an encrypted backup \
         carries it: keep a copy.",
    ),
    (
        "instance-signing.key",
        "The instance's minisign secret key (mode 0600, unencrypted): it signs the audit \
         checkpoints and backups.",
    ),
    (
        "instance-signing.key.pub",
        "Its public key: objectos restore --signer checks a backup against it.",
    ),
    (
        "trust/",
        "The public keys (*.pub) trusted to sign artifacts, managed with objectos trust.",
    ),
    (
        "audit-checkpoints.log",
        "Signed checkpoints of the audit chain, kept outside the database so that a rewritten \
         database does not verify; each names the one before it. objectos serve also logs each \
         one on standard error.",
    ),
];

/// Files particular to a command: (command path, file, what).
const COMMAND_FILES: &[(&str, &str, &str)] = &[
    (
        "objectos audit export",
        "FILE",
        "The archive written (mode 0600): a tar of README.txt, SHA256SUMS, SHA256SUMS.minisig, \
         checkpoints.log, events.jsonl and manifest.json, age-encrypted as a whole with \
         --encrypt-to or -R. Temporary files are written beside it (in the data dir for -o -).",
    ),
    (
        "objectos audit verify-archive",
        "FILE",
        "The archive read: a tar written by objectos audit export or audit archive, or its \
         age-encrypted form. Nothing is extracted to disk but temporary copies.",
    ),
    (
        "objectos audit archive",
        "FILE",
        "The archive written and verified before any row is removed; removed again if the \
         rows cannot be.",
    ),
    (
        "objectos keygen",
        "KEY",
        "The secret key written (mode 0600), encrypted with the password unless --unencrypted; \
         minisign reads it.",
    ),
    (
        "objectos keygen",
        "KEY.pub",
        "The public key written beside it, as minisign writes one; give it to objectos trust \
         add, objectos verify -p or minisign -V.",
    ),
    (
        "objectos sign",
        "KEY",
        "The secret key read: one made by objectos keygen or by minisign -G, encrypted \
         (its password is asked, or read with --password-file) or not (minisign -G -W).",
    ),
    (
        "objectos sign",
        "ARTIFACT.minisig",
        "The signature written (or the file given with -o), readable by minisign -V.",
    ),
    (
        "objectos verify",
        "ARTIFACT.minisig",
        "The signature read, unless -x names another.",
    ),
    (
        "objectos verify",
        "KEY.pub",
        "A trusted public key, as objectos keygen or minisign -G writes it.",
    ),
    (
        "objectos apply",
        "ARTIFACT.minisig",
        "The signature read, unless -x names another; its key must be in DIR/trust/.",
    ),
    (
        "objectos quickstart",
        "DIR/quickstart/",
        "The sample CRM's sources, the artifact built from them and an unencrypted \
         development signing key, for the demo only.",
    ),
];

/// SEE ALSO beyond the command's parents: (command path, pages).
const SEE_ALSO: &[(&str, &[&str])] = &[
    ("objectos keygen", &["objectos-sign(1)", "minisign(1)"]),
    (
        "objectos sign",
        &["objectos-keygen(1)", "objectos-verify(1)", "minisign(1)"],
    ),
    (
        "objectos verify",
        &["objectos-sign(1)", "objectos-trust(1)", "minisign(1)"],
    ),
    (
        "objectos apply",
        &["objectos-diff(1)", "objectos-verify(1)"],
    ),
    ("objectos diff", &["objectos-apply(1)"]),
    ("objectos backup", &["objectos-restore(1)", "age(1)"]),
    ("objectos restore", &["objectos-backup(1)", "age(1)"]),
    (
        "objectos audit export",
        &[
            "objectos-audit-verify-archive(1)",
            "objectos-audit-archive(1)",
            "age(1)",
            "minisign(1)",
            "tar(1)",
            "sha256sum(1)",
        ],
    ),
    (
        "objectos audit verify-archive",
        &[
            "objectos-audit-export(1)",
            "age(1)",
            "minisign(1)",
            "tar(1)",
            "sha256sum(1)",
        ],
    ),
    (
        "objectos audit archive",
        &[
            "objectos-audit-export(1)",
            "objectos-audit-verify-archive(1)",
            "objectos-audit-verify(1)",
        ],
    ),
];

/// EXAMPLES, every command's: (command path, [(what it does, command line)]).
const EXAMPLES: &[(&str, &[(&str, &str)])] = &[
    (
        "objectos",
        &[
            (
                "Try the sample CRM: set it up and serve it on 127.0.0.1:8080.",
                "objectos quickstart",
            ),
            (
                "Build, sign and verify an app, then apply it to a data dir.",
                "objectos build apps/crm -o artifacts/objectstack.json",
            ),
            (
                "",
                "objectos sign artifacts/objectstack.json -k release.key --expires 90d",
            ),
            (
                "",
                "objectos --data-dir /var/lib/objectos apply artifacts/objectstack.json -y",
            ),
            (
                "Check a data dir, as JSON for monitoring.",
                "objectos --json --data-dir /var/lib/objectos doctor",
            ),
        ],
    ),
    (
        "objectos build",
        &[
            (
                "Build the fragments in apps/crm into the default artifacts/objectstack.json.",
                "objectos build apps/crm",
            ),
            (
                "Build into a file of your choice and print the report as JSON.",
                "objectos --json build apps/crm -o dist/crm-1.4.0.json",
            ),
        ],
    ),
    (
        "objectos validate",
        &[
            (
                "Check an app's sources, with unknown keys as errors.",
                "objectos validate apps/crm --strict",
            ),
            (
                "Check a built artifact.",
                "objectos validate artifacts/objectstack.json",
            ),
        ],
    ),
    (
        "objectos keygen",
        &[
            (
                "Make a release key; the password is asked on the terminal.",
                "objectos keygen -o release.key",
            ),
            (
                "Make a key in a script, its password read from a file.",
                "objectos keygen -o release.key --password-file /run/secrets/release-key-password",
            ),
            (
                "Make a throwaway key for CI.",
                "objectos keygen -o ci.key --unencrypted",
            ),
        ],
    ),
    (
        "objectos sign",
        &[
            (
                "Sign an artifact for 90 days, writing artifacts/objectstack.json.minisig.",
                "objectos sign artifacts/objectstack.json -k release.key --expires 90d",
            ),
            (
                "Sign with a key made by the minisign tool, its password read from a file.",
                "objectos sign artifacts/objectstack.json -k ~/.minisign/minisign.key --password-file pw.txt",
            ),
        ],
    ),
    (
        "objectos verify",
        &[
            (
                "Verify an artifact against a trusted public key.",
                "objectos verify artifacts/objectstack.json -p release.key.pub",
            ),
            (
                "Verify against a directory of keys, and pin the exact digest (a CI gate).",
                "objectos verify artifacts/objectstack.json --trust-dir keys --sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            ),
        ],
    ),
    (
        "objectos inspect",
        &[
            (
                "Show an artifact's objects, permission sets and who may do what.",
                "objectos inspect artifacts/objectstack.json",
            ),
            (
                "Inspect sources without building them first, as JSON.",
                "objectos --json inspect apps/crm",
            ),
        ],
    ),
    (
        "objectos diff",
        &[
            (
                "Compare the artifact in force with the one proposed.",
                "objectos diff deployed.json artifacts/objectstack.json",
            ),
            (
                "Fail a CI job (exit 3) when a change widens access.",
                "objectos diff deployed.json artifacts/objectstack.json --deny-widening",
            ),
            (
                "Show only the changes that break data or clients.",
                "objectos diff deployed.json artifacts/objectstack.json --breaking-only",
            ),
        ],
    ),
    (
        "objectos init",
        &[
            ("Create the data dir ./objectos-data.", "objectos init"),
            (
                "Create a data dir elsewhere.",
                "objectos --data-dir /var/lib/objectos init",
            ),
        ],
    ),
    (
        "objectos trust",
        &[
            (
                "Trust the release key, list the trusted keys, stop trusting one.",
                "objectos trust add release.key.pub",
            ),
            ("", "objectos trust list"),
            ("", "objectos trust remove 2E12310DBD53B904"),
        ],
    ),
    (
        "objectos trust add",
        &[(
            "Trust a public key to sign the artifacts this instance applies.",
            "objectos trust add release.key.pub",
        )],
    ),
    (
        "objectos trust list",
        &[
            ("List the trusted keys.", "objectos trust list"),
            ("The same, as JSON.", "objectos --json trust list"),
        ],
    ),
    (
        "objectos trust remove",
        &[
            (
                "Stop trusting a key, by its id.",
                "objectos trust remove 2E12310DBD53B904",
            ),
            (
                "Stop trusting a key, by its file.",
                "objectos trust remove old-release.key.pub",
            ),
        ],
    ),
    (
        "objectos apply",
        &[
            (
                "Show what applying would change, and change nothing.",
                "objectos apply artifacts/objectstack.json --plan",
            ),
            (
                "Apply without being asked (a deployment script).",
                "objectos apply artifacts/objectstack.json -y",
            ),
            (
                "Apply a version that drops a field (its data is lost).",
                "objectos apply artifacts/objectstack.json --allow-destructive -y",
            ),
        ],
    ),
    (
        "objectos bootstrap",
        &[
            (
                "Create the first organization and administrator; the admin's API key is printed.",
                "objectos bootstrap --admin-email admin@example.com --org acme --password-file admin-password.txt",
            ),
            (
                "Keep the admin's API key in a shell variable.",
                "ADMIN_KEY=$(objectos bootstrap --admin-email admin@example.com)",
            ),
        ],
    ),
    (
        "objectos user",
        &[
            (
                "Add a user, look at them, disable them when they leave.",
                "objectos user add ana@example.com --name \"Ana Lima\" --password-file pw.txt",
            ),
            ("", "objectos user show ana@example.com"),
            ("", "objectos user disable ana@example.com"),
        ],
    ),
    (
        "objectos user add",
        &[
            (
                "Add a user with a password read from a file.",
                "objectos user add ana@example.com --name \"Ana Lima\" --password-file pw.txt",
            ),
            (
                "Add a user who signs in with API keys only, in another organization.",
                "objectos user add etl@example.com --no-password --org emea",
            ),
        ],
    ),
    (
        "objectos user list",
        &[
            ("List users.", "objectos user list"),
            ("The same, as JSON.", "objectos --json user list"),
        ],
    ),
    (
        "objectos user show",
        &[(
            "Show a user's organizations, teams, permission sets and keys.",
            "objectos user show ana@example.com",
        )],
    ),
    (
        "objectos user disable",
        &[(
            "Disable a user: their keys and sessions stop working at once.",
            "objectos user disable ana@example.com",
        )],
    ),
    (
        "objectos user enable",
        &[(
            "Let a disabled user back in.",
            "objectos user enable ana@example.com",
        )],
    ),
    (
        "objectos user set-password",
        &[
            (
                "Set a user's password; it is asked on the terminal.",
                "objectos user set-password ana@example.com",
            ),
            (
                "Set it from a file, in a script.",
                "objectos user set-password ana@example.com --password-file pw.txt",
            ),
        ],
    ),
    (
        "objectos org",
        &[
            (
                "Add an organization and list them.",
                "objectos org add emea",
            ),
            ("", "objectos org list"),
        ],
    ),
    (
        "objectos org add",
        &[("Add an organization.", "objectos org add emea")],
    ),
    (
        "objectos org list",
        &[
            ("List organizations.", "objectos org list"),
            ("The same, as JSON.", "objectos --json org list"),
        ],
    ),
    (
        "objectos member",
        &[
            (
                "Make a user a member of an organization, then remove them.",
                "objectos member add ana@example.com emea",
            ),
            ("", "objectos member remove ana@example.com emea"),
        ],
    ),
    (
        "objectos member add",
        &[(
            "Make a user a member of an organization.",
            "objectos member add ana@example.com emea",
        )],
    ),
    (
        "objectos member remove",
        &[(
            "Remove a user from an organization.",
            "objectos member remove ana@example.com emea",
        )],
    ),
    (
        "objectos team",
        &[
            (
                "Add the finance team, put a user in it, list the teams.",
                "objectos team add finance",
            ),
            ("", "objectos team add-member finance ana@example.com"),
            ("", "objectos team list"),
        ],
    ),
    (
        "objectos team add",
        &[(
            "Add a team; sharing rules that name it apply to its members.",
            "objectos team add finance",
        )],
    ),
    (
        "objectos team list",
        &[
            ("List teams and their members.", "objectos team list"),
            ("The same, as JSON.", "objectos --json team list"),
        ],
    ),
    (
        "objectos team add-member",
        &[(
            "Put a user in a team.",
            "objectos team add-member finance ana@example.com",
        )],
    ),
    (
        "objectos team remove-member",
        &[(
            "Take a user out of a team.",
            "objectos team remove-member finance ana@example.com",
        )],
    ),
    (
        "objectos permset",
        &[
            (
                "See the permission sets, then give one to a user for 30 days.",
                "objectos permset list",
            ),
            (
                "",
                "objectos permset assign sales_rep ana@example.com --valid-until 30d",
            ),
        ],
    ),
    (
        "objectos permset list",
        &[(
            "List permission sets and who holds them.",
            "objectos permset list",
        )],
    ),
    (
        "objectos permset show",
        &[(
            "Show what a permission set allows, object by object and field by field.",
            "objectos permset show sales_manager",
        )],
    ),
    (
        "objectos permset assign",
        &[
            (
                "Give a user a permission set.",
                "objectos permset assign sales_rep ana@example.com",
            ),
            (
                "Give it inside one organization only, until a given time.",
                "objectos permset assign finance ana@example.com --org emea --valid-until 2030-01-31T00:00:00Z",
            ),
        ],
    ),
    (
        "objectos permset revoke",
        &[
            (
                "Take a permission set away.",
                "objectos permset revoke sales_rep ana@example.com",
            ),
            (
                "Take away the assignment made for one organization.",
                "objectos permset revoke finance ana@example.com --org emea",
            ),
        ],
    ),
    (
        "objectos apikey",
        &[
            (
                "Create a key, list the keys, revoke one by its displayed prefix.",
                "KEY=$(objectos apikey create ana@example.com --name laptop --expires 90d)",
            ),
            ("", "objectos apikey list --user ana@example.com"),
            ("", "objectos apikey revoke osk_Q3fA9x2c"),
        ],
    ),
    (
        "objectos apikey create",
        &[
            (
                "Create a user key that expires in 90 days; only the key is printed.",
                "KEY=$(objectos apikey create ana@example.com --name laptop --expires 90d)",
            ),
            (
                "Create a read-only agent key for an assistant, for MCP.",
                "objectos apikey create ana@example.com --agent --read-only --name assistant",
            ),
        ],
    ),
    (
        "objectos apikey list",
        &[
            (
                "List every key (never the keys themselves).",
                "objectos apikey list",
            ),
            (
                "List one user's keys, as JSON.",
                "objectos --json apikey list --user ana@example.com",
            ),
        ],
    ),
    (
        "objectos apikey revoke",
        &[(
            "Revoke a key by the prefix objectos apikey list shows.",
            "objectos apikey revoke osk_Q3fA9x2c",
        )],
    ),
    (
        "objectos session",
        &[
            (
                "List a user's sign-in sessions and revoke one.",
                "objectos session list --user ana@example.com",
            ),
            (
                "",
                "objectos session revoke 01962f3c-8a41-7d2e-9b5a-3c1e0f6d4b27",
            ),
        ],
    ),
    (
        "objectos session list",
        &[
            ("List sessions.", "objectos session list"),
            (
                "List one user's sessions.",
                "objectos session list --user ana@example.com",
            ),
        ],
    ),
    (
        "objectos session revoke",
        &[(
            "Revoke a session by the id objectos session list shows.",
            "objectos session revoke 01962f3c-8a41-7d2e-9b5a-3c1e0f6d4b27",
        )],
    ),
    (
        "objectos settings",
        &[
            (
                "Set a plain setting and a secret one, then list them.",
                "objectos settings set ai.model llama-3.1-8b-instruct",
            ),
            (
                "",
                "objectos settings set ai.api_key \"$AI_API_KEY\" --secret",
            ),
            ("", "objectos settings list"),
        ],
    ),
    (
        "objectos settings set",
        &[
            (
                "Set a plain value.",
                "objectos settings set ai.model llama-3.1-8b-instruct",
            ),
            (
                "Set a secret, encrypted to the instance key.",
                "objectos settings set ai.api_key \"$AI_API_KEY\" --secret",
            ),
        ],
    ),
    (
        "objectos settings get",
        &[(
            "Print a value (reading a secret is audited).",
            "objectos settings get ai.model",
        )],
    ),
    (
        "objectos settings list",
        &[
            (
                "List settings; secret values are never shown.",
                "objectos settings list",
            ),
            ("The same, as JSON.", "objectos --json settings list"),
        ],
    ),
    (
        "objectos settings unset",
        &[("Remove a setting.", "objectos settings unset ai.model")],
    ),
    (
        "objectos audit",
        &[
            (
                "Show the newest audit rows, then check the whole chain.",
                "objectos audit tail -n 50",
            ),
            ("", "objectos audit verify"),
            (
                "Export a month for an auditor, who verifies it offline.",
                "objectos audit export --from 2026-01-01 --to 2026-01-31 -o audit-2026-01.tar",
            ),
            (
                "",
                "objectos audit verify-archive audit-2026-01.tar -p instance-signing.key.pub",
            ),
        ],
    ),
    (
        "objectos audit tail",
        &[
            ("Show the 50 newest rows.", "objectos audit tail -n 50"),
            ("The same, as JSON.", "objectos --json audit tail -n 50"),
            (
                "Keep printing rows as they are written, as JSON lines.",
                "objectos --json audit tail --follow",
            ),
        ],
    ),
    (
        "objectos instance",
        &[(
            "Replace the instance's signing and encryption keys (the old ones are kept for verification).",
            "objectos instance rotate-keys",
        )],
    ),
    (
        "objectos instance rotate-keys",
        &[(
            "Replace the instance's signing and encryption keys while no server runs.",
            "objectos --data-dir /var/lib/objectos instance rotate-keys",
        )],
    ),
    (
        "objectos audit verify",
        &[
            (
                "Check the chain against the signed checkpoints (exit 3 when it is broken).",
                "objectos audit verify",
            ),
            (
                "The same, as JSON for monitoring.",
                "objectos --json audit verify",
            ),
            (
                "Also check against the checkpoints the server logged to the journal, kept outside the data dir (this is what tells that the newest rows were cut off).",
                "objectos audit verify --checkpoints serve-journal.log",
            ),
        ],
    ),
    (
        "objectos audit export",
        &[
            (
                "Export January's events, signed by the instance's key.",
                "objectos audit export --from 2026-01-01 --to 2026-01-31 -o audit-2026-01.tar",
            ),
            (
                "Export seqs 1 to 5000 encrypted to an auditor's age key and to an SSH public key file.",
                "objectos audit export --from 1 --to 5000 -o audit.tar.age --encrypt-to age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p -R auditor_ed25519.pub",
            ),
            (
                "Encrypt to every recipient of a file, signed with the compliance team's key.",
                "objectos audit export --from 1 --to 5000 -o audit.tar.age -R auditors.txt --sign-key compliance.key",
            ),
            (
                "Write it to standard output, for a pipe.",
                "objectos audit export --from 1 --to 5000 -o - | ssh vault 'cat > audit.tar'",
            ),
        ],
    ),
    (
        "objectos audit verify-archive",
        &[
            (
                "Verify an archive against the instance's public key obtained from its operator.",
                "objectos audit verify-archive audit-2026-01.tar -p instance-signing.key.pub",
            ),
            (
                "Verify an encrypted one that must continue last month's exactly.",
                "objectos audit verify-archive audit-2026-02.tar.age -i auditor.key --after audit-2026-01.tar",
            ),
            (
                "The same, as JSON, also against checkpoints kept elsewhere.",
                "objectos --json audit verify-archive audit-2026-02.tar -p instance-signing.key.pub --checkpoints serve-journal.log",
            ),
        ],
    ),
    (
        "objectos audit archive",
        &[
            (
                "Move the events of 2025 out of the database into an archive encrypted to the auditors.",
                "objectos audit archive --before 2026-01-01 -o audit-2025.tar.age -R auditors.txt",
            ),
            (
                "Move seqs below 100000 out, as JSON.",
                "objectos --json audit archive --before 100000 -o audit-0-99999.tar",
            ),
        ],
    ),
    (
        "objectos audit confirm",
        &[
            (
                "Check whether row 1042 set the sensitive field discount_approval_note to a suspected value (asked on the terminal).",
                "objectos audit confirm 1042 discount_approval_note",
            ),
            (
                "The same, with the value on standard input.",
                "printf '%s\\n' 'approved by the CFO' | objectos audit confirm 1042 discount_approval_note --value-file -",
            ),
        ],
    ),
    (
        "objectos doctor",
        &[
            ("Check the data dir.", "objectos doctor"),
            (
                "The same, as JSON, for another data dir.",
                "objectos --json --data-dir /var/lib/objectos doctor",
            ),
        ],
    ),
    (
        "objectos serve",
        &[
            ("Serve on 127.0.0.1:8080.", "objectos serve"),
            (
                "Serve behind an ingress on the host's network, logging JSON lines.",
                "objectos serve --listen 0.0.0.0:8080 --public --trusted-proxy 10.0.0.0/8 --log-format json",
            ),
            (
                "Log more of what the server does.",
                "OBJECTOS_LOG=debug objectos serve",
            ),
            (
                "Let a browser-based agent host on another origin call the MCP endpoint.",
                "objectos serve --mcp-allow-origin https://agents.example.com",
            ),
        ],
    ),
    (
        "objectos openapi",
        &[
            (
                "Print the API's routes as an OpenAPI 3.1 document.",
                "objectos openapi -o openapi.json",
            ),
            (
                "The document a user gets, with a schema per object they may read.",
                "objectos openapi --as rep@example.com",
            ),
        ],
    ),
    (
        "objectos mcp",
        &[
            (
                "What an agent host runs (its MCP server entry, with the agent key in OBJECTOS_API_KEY): the bridge to the local server.",
                "objectos mcp",
            ),
            (
                "Bridge to a server elsewhere, over HTTPS with a private CA.",
                "objectos mcp --server https://objectos.example --ca-file ca.pem",
            ),
        ],
    ),
    (
        "objectos review",
        &[
            (
                "Walk through what agents proposed, on a terminal (the reviewer's key in OBJECTOS_REVIEW_KEY).",
                "objectos review",
            ),
            (
                "List the pending actions you may decide, then approve one.",
                "objectos review --list --api-key-file ~/.objectos-review-key",
            ),
            (
                "",
                "objectos review 0192d6c3-7a1e-7c55-9e0a-3f1b2c4d5e6f --approve --api-key-file ~/.objectos-review-key",
            ),
            (
                "Reject one, from a script, with the reason recorded.",
                "objectos --json review 0192d6c3-7a1e-7c55-9e0a-3f1b2c4d5e6f --reject --reason duplicate --api-key-file key",
            ),
        ],
    ),
    (
        "objectos chat",
        &[
            (
                "Talk with the assistant on a terminal, as the user whose key is in OBJECTOS_API_KEY.",
                "objectos chat",
            ),
            (
                "Ask one question from a script and read the events as JSON lines.",
                "objectos --json chat --api-key-file ~/.objectos-key which deals close this month",
            ),
            (
                "Go on with an earlier conversation.",
                "objectos chat --conversation 0192d6c3-7a1e-7c55-9e0a-3f1b2c4d5e6f",
            ),
        ],
    ),
    (
        "objectos assistant",
        &[(
            "Keep a copy of every assistant conversation (each message as sent to the model, with its hash).",
            "objectos assistant export -o transcripts.jsonl",
        )],
    ),
    (
        "objectos assistant export",
        &[
            (
                "Export one user's conversations.",
                "objectos assistant export --user ana@example.com -o ana.jsonl",
            ),
            (
                "Export one conversation to stdout.",
                "objectos assistant export --conversation 0192d6c3-7a1e-7c55-9e0a-3f1b2c4d5e6f",
            ),
        ],
    ),
    (
        "objectos import",
        &[
            (
                "Create accounts from a CSV file as a user, through their rights.",
                "objectos import crm_account accounts.csv --as ana@example.com",
            ),
            (
                "Import JSON lines from standard input, reporting the invalid rows and going on.",
                "cat contacts.jsonl | objectos import crm_contact - --as ana@example.com --format jsonl --skip-invalid",
            ),
        ],
    ),
    (
        "objectos export",
        &[
            (
                "Write the accounts a user may read to a file.",
                "objectos export crm_account --as ana@example.com -o accounts.jsonl",
            ),
            (
                "Export to standard output, as one user in one of their organizations.",
                "objectos export crm_opportunity --as ana@example.com --org emea",
            ),
        ],
    ),
    (
        "objectos transfer",
        &[
            (
                "Give everything a leaver owns to their successor.",
                "objectos transfer --from leaver@example.com --to ana@example.com",
            ),
            (
                "Move only their opportunities.",
                "objectos transfer --from leaver@example.com --to ana@example.com --object crm_opportunity",
            ),
        ],
    ),
    (
        "objectos backup",
        &[
            (
                "Take an encrypted backup, keys included, while the server runs.",
                "objectos backup -o nightly.tar.age --encrypt-to age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
            ),
            (
                "Take an unencrypted backup (the instance keys are left out).",
                "objectos backup -o nightly.tar",
            ),
        ],
    ),
    (
        "objectos restore",
        &[
            (
                "Restore an encrypted backup into a new data dir.",
                "objectos --data-dir /var/lib/objectos-restored restore nightly.tar.age -i backup-identity.txt --signer instance-signing.key.pub",
            ),
            (
                "Restore an unencrypted backup, taking the keys from the old data dir.",
                "objectos --data-dir /var/lib/objectos-restored restore nightly.tar --keys-from /var/lib/objectos",
            ),
        ],
    ),
    (
        "objectos quickstart",
        &[
            (
                "Set up the sample CRM and serve it on 127.0.0.1:8080.",
                "objectos quickstart",
            ),
            (
                "The same, in a scratch data dir and on another port.",
                "objectos --data-dir /tmp/crm-demo quickstart --listen 127.0.0.1:9090",
            ),
        ],
    ),
    (
        "objectos completions",
        &[
            (
                "Install bash completion.",
                "objectos completions bash > /etc/bash_completion.d/objectos",
            ),
            (
                "Install zsh completion (the directory must be on $fpath).",
                "objectos completions zsh > ~/.zfunc/_objectos",
            ),
            (
                "Install fish completion.",
                "objectos completions fish > ~/.config/fish/completions/objectos.fish",
            ),
        ],
    ),
    (
        "objectos man",
        &[
            (
                "Install the manual pages.",
                "objectos man -o /usr/local/share/man/man1",
            ),
            (
                "Write them somewhere and list what was written, as JSON.",
                "objectos --json man -o target/man",
            ),
        ],
    ),
];

/// Write the pages into `dir` (used by the test that keeps `man/` current).
pub fn write_pages(dir: &Path) -> anyhow::Result<()> {
    for (name, bytes) in render_pages()? {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The objectos part of an example's shell line, split into words: from
    /// `objectos` to the first pipe, redirection or closing `)`.
    fn invocation(line: &str) -> Vec<String> {
        let start = line
            .find("objectos ")
            .or_else(|| line.find("objectos").filter(|i| i + 8 == line.len()))
            .unwrap_or_else(|| panic!("no objectos in `{line}`"));
        let rest = &line[start..];
        let end = [" | ", " > ", ")"]
            .iter()
            .filter_map(|stop| rest.find(stop))
            .min()
            .unwrap_or(rest.len());
        let mut words = Vec::new();
        let mut word = String::new();
        let mut quoted = false;
        for c in rest[..end].chars() {
            match c {
                '"' => quoted = !quoted,
                ' ' if !quoted => {
                    if !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                }
                c => word.push(c),
            }
        }
        if !word.is_empty() {
            words.push(word);
        }
        words
    }

    /// The command path a parsed command line runs: `objectos user add`.
    fn path_of(mut matches: &clap::ArgMatches) -> String {
        let mut path = "objectos".to_string();
        while let Some((name, sub)) = matches.subcommand() {
            path.push(' ');
            path.push_str(name);
            matches = sub;
        }
        path
    }

    #[test]
    fn every_command_has_examples_that_parse_and_run_it() {
        let root = command_tree();
        let paths = command_paths(&root);
        for path in &paths {
            assert!(
                EXAMPLES
                    .iter()
                    .any(|(p, examples)| p == path && !examples.is_empty()),
                "`{path}` has no EXAMPLES in src/commands/man.rs"
            );
        }
        for (path, examples) in EXAMPLES {
            assert!(
                paths.iter().any(|p| p == path),
                "EXAMPLES names `{path}`, which is not a command"
            );
            for (_, line) in examples.iter() {
                let words = invocation(line);
                let matches = Cli::command()
                    .try_get_matches_from(&words)
                    .unwrap_or_else(|e| panic!("`{line}` does not parse:\n{e}"));
                let runs = path_of(&matches);
                assert!(
                    is_under(&runs, path),
                    "an example on the page of `{path}` runs `{runs}`: `{line}`"
                );
            }
        }
    }

    #[test]
    fn every_environment_variable_a_command_declares_is_on_its_page() {
        fn walk(command: &clap::Command, path: &str) {
            for arg in command.get_arguments() {
                let Some(env) = arg.get_env() else { continue };
                let env = env.to_string_lossy();
                assert!(
                    ENVIRONMENT.iter().any(|(variable, commands, _)| {
                        *variable == env
                            && (commands.is_empty() || commands.iter().any(|c| is_under(path, c)))
                    }),
                    "`{path}` reads `{env}`, which ENVIRONMENT in src/commands/man.rs does not give it"
                );
            }
            for sub in command.get_subcommands().filter(|s| has_page(s)) {
                walk(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        walk(&command_tree(), "objectos");
    }

    #[test]
    fn file_and_see_also_tables_name_only_real_commands() {
        let paths = command_paths(&command_tree());
        let known = |c: &str| paths.iter().any(|p| p == c);
        for c in USES_DATA_DIR {
            assert!(known(c), "USES_DATA_DIR: `{c}`");
        }
        for (c, _, _) in COMMAND_FILES {
            assert!(known(c), "COMMAND_FILES: `{c}`");
        }
        for (c, _) in SEE_ALSO {
            assert!(known(c), "SEE_ALSO: `{c}`");
        }
    }

    #[test]
    fn a_subcommand_page_has_every_section_and_its_full_path() {
        let pages = render_pages().unwrap();
        let page = |name: &str| {
            let (_, bytes) = pages.iter().find(|(n, _)| n == name).unwrap();
            String::from_utf8(bytes.clone()).unwrap()
        };
        let create = page("objectos-apikey-create.1");
        assert!(
            create.contains(".SH SYNOPSIS\n\\fBobjectos apikey create\\fR \\fIEMAIL\\fR"),
            "{create}"
        );
        for section in [
            ".SH NAME",
            ".SH \"GLOBAL OPTIONS\"",
            ".SH \"EXIT STATUS\"",
            ".SH ENVIRONMENT",
            ".SH FILES",
            ".SH EXAMPLES",
            ".SH \"SEE ALSO\"",
        ] {
            assert!(create.contains(section), "{section}\n{create}");
        }
        // One preamble per page, not one per section.
        assert_eq!(create.matches(".ds Aq").count(), 2, "{create}");
    }
}
