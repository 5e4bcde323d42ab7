//! `objectos doctor`: one line per check, ok / warn / fail.

use std::os::unix::fs::PermissionsExt;

use schemars::JsonSchema;
use serde::Serialize;

use crate::audit::{checkpoint, verify};
use crate::commands::Ctx;
use crate::error::{Exit, Reported};
use crate::instance;
use crate::instance::Database;
use crate::store::{postgres, sqlite};

#[derive(Serialize, JsonSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Serialize, JsonSchema)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

#[derive(Serialize, JsonSchema)]
pub struct DoctorReport {
    pub data_dir: String,
    pub checks: Vec<Check>,
    pub healthy: bool,
}

fn mode_of(path: &std::path::Path) -> Option<u32> {
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

pub fn run(ctx: &Ctx) -> anyhow::Result<Exit> {
    let mut checks = Vec::new();
    let mut add = |name: &str, status: Status, detail: String| {
        checks.push(Check {
            name: name.into(),
            status,
            detail,
        })
    };
    let dir = &ctx.data_dir;
    match mode_of(dir) {
        None => add(
            "data_dir",
            Status::Fail,
            format!("`{}` does not exist; run `objectos init`", dir.display()),
        ),
        Some(mode) if mode & 0o007 != 0 => add(
            "data_dir",
            Status::Warn,
            format!(
                "`{}` is open to other users (mode {mode:03o}); `chmod 700` it",
                dir.display()
            ),
        ),
        Some(mode) => add(
            "data_dir",
            Status::Ok,
            format!("`{}` (mode {mode:03o})", dir.display()),
        ),
    }
    for file in [instance::INSTANCE_KEY, instance::SIGNING_KEY] {
        match mode_of(&dir.join(file)) {
            None => add(file, Status::Fail, "missing".into()),
            Some(mode) if mode & 0o077 != 0 => add(
                file,
                Status::Fail,
                format!("readable by others (mode {mode:03o}); `chmod 600` it"),
            ),
            Some(mode) => add(file, Status::Ok, format!("mode {mode:03o}")),
        }
    }
    let instance = match ctx.instance_reading(true) {
        Ok(i) => Some(i),
        Err(e) => {
            add("database", Status::Fail, format!("{e:#}"));
            None
        }
    };
    if let Some(instance) = &instance {
        add(
            "instance",
            Status::Ok,
            format!(
                "id {}, signing key {} ({}), recipient {}",
                instance.id,
                instance.signing_public().id,
                instance.signing_public().base64,
                instance.recipient()
            ),
        );
        let known = match &instance.database {
            Database::Sqlite(_) => sqlite::MIGRATIONS.len(),
            Database::Postgres(pg) => {
                postgres_checks(pg, instance.database_config.as_ref(), &mut add);
                postgres::MIGRATIONS.len()
            }
        };
        match instance
            .store
            .read(|tx| Ok((tx.integrity_check()?, tx.schema_version()?)))
        {
            Ok((problems, version)) => {
                if problems.is_empty() {
                    let how = match &instance.database {
                        Database::Sqlite(_) => "PRAGMA integrity_check: ok",
                        Database::Postgres(_) => "objectos's tables and counter: ok",
                    };
                    add("integrity", Status::Ok, how.into());
                } else {
                    add("integrity", Status::Fail, problems.join("; "));
                }
                if version == known as i64 {
                    add("schema", Status::Ok, format!("version {version}"));
                } else {
                    add(
                        "schema",
                        Status::Fail,
                        format!("version {version}, expected {known}"),
                    );
                }
            }
            Err(e) => add("integrity", Status::Fail, format!("{e:#}")),
        }
        match instance.store.read(|tx| Ok(tx.rows_unsealed()?)) {
            Ok(bad) if bad.is_empty() => add(
                "seals",
                Status::Ok,
                "every row that grants access (users, memberships, assignments, API keys, sessions, shares) carries this instance's seal".into(),
            ),
            Ok(bad) => {
                const SHOWN: usize = 20;
                let mut rows: Vec<String> = bad
                    .iter()
                    .take(SHOWN)
                    .map(|r| {
                        format!(
                            "{} {} ({})",
                            r.table,
                            r.row,
                            if r.missing { "no seal" } else { "wrong seal" }
                        )
                    })
                    .collect();
                if bad.len() > SHOWN {
                    rows.push(format!("and {} more", bad.len() - SHOWN));
                }
                add(
                    "seals",
                    Status::Fail,
                    format!(
                        "{} rows that grant access were written or changed without the instance key, so they are ignored (someone with write access to the database made them; investigate, then remove them): {}",
                        bad.len(),
                        rows.join("; ")
                    ),
                );
            }
            Err(e) => add("seals", Status::Fail, format!("{e:#}")),
        }
        match checkpoint::read_all(&instance.checkpoints_path()).and_then(|cps| {
            verify::verify_chain(
                &instance.store,
                verify::Checkpoints::log(&cps),
                &instance.checkpoint_keys()?,
                |_| {},
            )
        }) {
            Ok(report) => match report.broken {
                _ if !instance.guards_restored.is_empty() => add(
                    "audit",
                    Status::Fail,
                    format!(
                        "the immutability guards ({}) had been dropped or altered behind objectos's back; they are back now, investigate",
                        instance.guards_restored.join(", ")
                    ),
                ),
                None if !report.guards_restored_at.is_empty() => add(
                    "audit",
                    Status::Warn,
                    format!(
                        "{} rows verify, but the immutability guards were found missing and put back before (rows {})",
                        report.rows,
                        report
                            .guards_restored_at
                            .iter()
                            .map(|s| s.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                None => add(
                    "audit",
                    Status::Ok,
                    format!(
                        "{} rows verify, head seq {} hash {}, {} checkpoints",
                        report.rows,
                        report.head_seq.unwrap_or(0),
                        report.head_hash.unwrap_or_default(),
                        report.checkpoints
                    ),
                ),
                Some(b) => add(
                    "audit",
                    Status::Fail,
                    format!("broken at seq {}: {}", b.seq, b.reason),
                ),
            },
            Err(e) => add("audit", Status::Fail, format!("{e:#}")),
        }
        match crate::instance::applied::load(instance, crate::instance::applied::Purpose::Enforce) {
            Ok(None) => add(
                "artifact",
                Status::Warn,
                "no artifact applied; `objectos apply ARTIFACT`".into(),
            ),
            Ok(Some(a)) => add(
                "artifact",
                Status::Ok,
                format!(
                    "{} {} (sha256 {}), signature by trusted key {} verifies",
                    a.row.id, a.row.version, a.row.sha256, a.row.signer_key_id
                ),
            ),
            Err(e) => add(
                "artifact",
                Status::Fail,
                format!("{e}; `serve` and every command acting as a user will refuse it"),
            ),
        }
        match instance.store.read(|tx| Ok(tx.settings()?)) {
            Ok(settings) => {
                let outbound: Vec<String> = settings
                    .iter()
                    .filter(|s| {
                        s.key.starts_with("integrations.")
                            || s.key.starts_with("outbound.")
                            || s.key == crate::assistant::config::ENDPOINT
                    })
                    .map(|s| s.key.clone())
                    .collect();
                if outbound.is_empty() {
                    add(
                        "network",
                        Status::Ok,
                        "no outbound integrations configured; objectos opens no connections".into(),
                    );
                } else {
                    add(
                        "network",
                        Status::Warn,
                        format!("outbound integrations configured: {}", outbound.join(", ")),
                    );
                }
            }
            Err(e) => add("network", Status::Fail, format!("{e:#}")),
        }
        let (status, detail) = assistant_check(instance);
        add("assistant", status, detail);
        match crate::assistant::transcript::verify(&instance.store) {
            Ok(r) => match r.mismatch {
                None => add(
                    "transcripts",
                    Status::Ok,
                    format!(
                        "{} assistant messages of {} conversations match the audit chain",
                        r.messages, r.conversations
                    ),
                ),
                Some(m) => add(
                    "transcripts",
                    Status::Fail,
                    format!("broken at seq {}: {}", m.seq, m.reason),
                ),
            },
            Err(e) => add("transcripts", Status::Fail, format!("{e:#}")),
        }
    }
    let healthy = !checks.iter().any(|c| c.status == Status::Fail);
    let report = DoctorReport {
        data_dir: dir.display().to_string(),
        checks,
        healthy,
    };
    if ctx.out.json {
        ctx.out.json_doc("doctor", &report)?;
    } else {
        let width = report
            .checks
            .iter()
            .map(|c| c.name.chars().count())
            .max()
            .unwrap_or(0);
        for c in &report.checks {
            let tag = match c.status {
                Status::Ok => ctx.out.paint("ok  ", crate::output::Style::Added),
                Status::Warn => ctx.out.paint("warn", crate::output::Style::Warning),
                Status::Fail => ctx.out.paint("fail", crate::output::Style::Removed),
            };
            ctx.out
                .data(format!("{tag}  {:width$}  {}", c.name, c.detail))?;
        }
    }
    if healthy {
        Ok(Exit::Success)
    } else {
        Err(Reported(Exit::Error).into())
    }
}

/// Where the assistant's model requests would go, and whether that stays
/// inside the site.
fn assistant_check(instance: &instance::Instance) -> (Status, String) {
    use crate::assistant::config::{self, ConfigError, Reach};
    match config::load(instance) {
        Err(e) => (Status::Fail, format!("{e:#}")),
        Ok(Err(ConfigError::Off)) => (
            Status::Ok,
            "off (`ai.endpoint` is not set): no model requests, no connection".into(),
        ),
        Ok(Err(ConfigError::Invalid(why))) => (
            Status::Fail,
            format!("misconfigured: {why}; conversations answer 503 until it is fixed"),
        ),
        Ok(Ok(c)) => {
            let url = c.completions_url();
            let mut detail = format!(
                "model requests go to {url} (model `{}`, {}key, timeout {}s, at most {} tool calls and {} tokens a turn)",
                c.model,
                if c.api_key.is_some() {
                    "with an API "
                } else {
                    "no API "
                },
                c.timeout.as_secs(),
                c.max_tool_calls,
                c.max_turn_tokens
            );
            if !c.unmasked.is_empty() {
                detail.push_str(&format!(
                    "; sensitive values of {} are NOT masked",
                    c.unmasked.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            let reach = config::reach(&c.endpoint);
            let status = match reach {
                Reach::Loopback => Status::Ok,
                Reach::Private => Status::Ok,
                Reach::Public => {
                    detail.push_str("; that is a public address: business context leaves the site");
                    Status::Warn
                }
                Reach::Name => {
                    detail.push_str("; that is a host name, not known here to be loopback or private: check where it resolves");
                    Status::Warn
                }
            };
            if url.scheme() == "http" && reach != Reach::Loopback {
                detail.push_str("; plain `http://` off this host: prompts and answers cross the network in clear");
                return (Status::Warn, detail);
            }
            let status = if !c.unmasked.is_empty() && status == Status::Ok {
                Status::Warn
            } else {
                status
            };
            (status, detail)
        }
    }
}

/// The PostgreSQL server: where, which version, over what, as which role, and
/// what about that role is unsafe.
fn postgres_checks(
    pg: &postgres::PgBackend,
    config: Option<&instance::database::DatabaseConfig>,
    add: &mut dyn FnMut(&str, Status, String),
) {
    let url = config.map(|c| c.url.as_str()).unwrap_or("?");
    let info = match pg.server_info() {
        Ok(info) => info,
        Err(e) => {
            add("postgres", Status::Fail, format!("`{url}`: {e:#}"));
            return;
        }
    };
    let get = |label: &str| {
        info.iter()
            .find(|(l, _)| l == label)
            .map(|(_, v)| v.as_str())
            .unwrap_or("?")
    };
    add(
        "postgres",
        Status::Ok,
        format!(
            "`{url}`: PostgreSQL {}, database `{}`, role `{}`",
            get("server version"),
            get("database"),
            get("role")
        ),
    );
    let local = url.contains("host=/")
        || url.contains("@localhost")
        || url.contains("@127.0.0.1")
        || url.contains("@[::1]");
    let tls = config.and_then(|c| c.tls().ok()).unwrap_or_default();
    match (get("connection encrypted"), local) {
        ("yes", _) if tls.verifies_chain() => add(
            "postgres_tls",
            Status::Ok,
            format!("the connection is encrypted; {}", tls.describe()),
        ),
        ("yes", true) => add(
            "postgres_tls",
            Status::Ok,
            format!(
                "the connection is encrypted; {} over a local connection",
                tls.describe()
            ),
        ),
        ("yes", false) => add(
            "postgres_tls",
            Status::Warn,
            format!(
                "the connection is encrypted, but {} does not check who the server is; `sslmode=verify-full&sslrootcert=CA.pem` does",
                tls.describe()
            ),
        ),
        (_, true) => add(
            "postgres_tls",
            Status::Ok,
            format!(
                "{}: not encrypted, over a local connection (socket or loopback)",
                tls.describe()
            ),
        ),
        _ => add(
            "postgres_tls",
            Status::Warn,
            format!(
                "{}: the connection is not encrypted and leaves this host; use `sslmode=verify-full`, or keep it on a private network",
                tls.describe()
            ),
        ),
    }
    let mut unsafe_role = Vec::new();
    if get("role is superuser") == "yes" {
        unsafe_role.push("is a superuser");
    }
    if get("role owns the audit table") == "yes" {
        unsafe_role
            .push("owns the audit table (it can disable the triggers that keep rows immutable)");
    }
    if get("role may update audit rows") == "yes" {
        unsafe_role.push("holds UPDATE/DELETE/TRUNCATE on the audit table");
    }
    if unsafe_role.is_empty() {
        add(
            "postgres_role",
            Status::Ok,
            "the role can append audit rows and not alter them".into(),
        );
    } else {
        add(
            "postgres_role",
            Status::Warn,
            format!(
                "the role {}; run objectos with a role granted what `objectos init --database-url` prints",
                unsafe_role.join(", ")
            ),
        );
    }
}
