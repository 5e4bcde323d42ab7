//! Which database a data dir uses: SQLite in the data dir (the default), or
//! the PostgreSQL named by `database.json` (written by `init --database-url`).
//! The file never holds a password: it comes from `PGPASSWORD`, a password
//! file the configuration names, or `PGPASSFILE`/`~/.pgpass`, as libpq reads
//! them.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::error::Failure;

/// The data dir's database configuration (absent: SQLite in `objectos.db`).
pub const DATABASE_CONFIG: &str = "database.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// `postgres`
    pub backend: String,
    /// The connection URL, without a password.
    pub url: String,
    /// A file whose first line is the password (mode 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// The instance whose database it is: a data dir pointed at another
    /// instance's database is refused.
    pub instance_id: String,
    /// The URL of the role that owns the schema (no password), when the
    /// runtime's role does not: migrations, `apply`, `audit archive` and
    /// putting back dropped guards connect with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_url: Option<String>,
    /// A file whose first line is the administrative role's password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_password_file: Option<PathBuf>,
}

impl DatabaseConfig {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(DATABASE_CONFIG)
    }

    /// The data dir's configuration, if it names a database server.
    pub fn load(dir: &Path) -> anyhow::Result<Option<DatabaseConfig>> {
        let path = DatabaseConfig::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read `{}`", path.display()));
            }
        };
        let config: DatabaseConfig = serde_json::from_str(&text).map_err(|e| {
            Failure::error(format!("`{}` is malformed: {e}", path.display()))
                .with_hint("restore it from the data dir's backup, or from another instance's copy")
        })?;
        if config.backend != "postgres" {
            return Err(Failure::error(format!(
                "`{}` names the backend `{}`, which this objectos does not know",
                path.display(),
                config.backend
            ))
            .into());
        }
        Ok(Some(config))
    }

    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        crate::crypto::signing::write_atomic(
            &DatabaseConfig::path(dir),
            text.as_bytes(),
            Some(0o600),
            true,
        )
    }

    /// The connection settings, with the password looked up.
    pub fn connect_config(&self) -> anyhow::Result<crate::store::postgres::Connect> {
        let mut config = parse_url(&self.url)?;
        if let Some(password) = password(&config, self.password_file.as_deref(), true)? {
            config.password(password);
        }
        Ok(crate::store::postgres::Connect {
            config,
            tls: self.tls()?,
        })
    }

    /// The administrative connection, when one is configured.
    pub fn admin_connect(&self) -> anyhow::Result<Option<crate::store::postgres::Connect>> {
        let Some(url) = &self.admin_url else {
            return Ok(None);
        };
        let mut config = parse_url(url)?;
        // Not `PGPASSWORD`: that is the runtime role's.
        if let Some(password) = password(&config, self.admin_password_file.as_deref(), false)? {
            config.password(password);
        }
        let tls = crate::store::postgres::tls::split_url(url)
            .map(|(_, tls)| tls)
            .map_err(|e| Failure::error(format!("bad administrative database URL: {e}")))?;
        Ok(Some(crate::store::postgres::Connect { config, tls }))
    }

    /// The role the runtime connects as.
    pub fn runtime_role(&self) -> anyhow::Result<String> {
        Ok(parse_url(&self.url)?
            .get_user()
            .unwrap_or_default()
            .to_string())
    }

    /// The TLS settings of the URL.
    pub fn tls(&self) -> anyhow::Result<crate::store::postgres::Tls> {
        crate::store::postgres::tls::split_url(&self.url)
            .map(|(_, tls)| tls)
            .map_err(|e| Failure::error(format!("bad database URL: {e}")).into())
    }
}

/// The runtime's role, refused when it is the administrative role itself (the
/// owner would take from itself the rights `audit archive` needs, and the
/// runtime would own what it must not alter).
pub fn checked_runtime_role(
    config: &DatabaseConfig,
    admin: &crate::store::postgres::Connect,
) -> anyhow::Result<String> {
    let role = config.runtime_role()?;
    if admin.config.get_user() == Some(role.as_str()) {
        return Err(Failure::error(format!(
            "the administrative URL names the role `{role}`, the same as the runtime's URL"
        ))
        .with_hint("the administrative role owns the schema; the runtime's must be another role, which it grants only what the runtime needs")
        .into());
    }
    Ok(role)
}

fn bad_url(why: impl std::fmt::Display) -> anyhow::Error {
    Failure::error(format!("bad `--database-url`: {why}"))
        .with_hint("give a URL like `postgres://objectos@db.example:5432/objectos` (`?host=/run/postgresql` for a socket)")
        .into()
}

/// Read and check a `postgres://` URL: no password in it, a host, a user
/// (the OS user's name when left out, as libpq does), a database.
pub fn parse_url(url: &str) -> anyhow::Result<postgres::Config> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(bad_url(
            "it must start with `postgres://` or `postgresql://`",
        ));
    }
    let (url, _) = crate::store::postgres::tls::split_url(url).map_err(|e| {
        Failure::error(format!("bad `--database-url`: {e}")).with_hint(
            "`sslmode=verify-full&sslrootcert=/path/to/ca.pem` checks the server's certificate and name",
        )
    })?;
    let mut config = postgres::Config::from_str(&url).map_err(bad_url)?;
    if config.get_password().is_some() {
        return Err(Failure::error(
            "the database URL holds a password, and objectos never stores one in clear",
        )
        .with_hint("take it out of the URL and put it in `~/.pgpass` (or `PGPASSFILE`), in `PGPASSWORD`, or in a file named by `--database-password-file`")
        .into());
    }
    if config.get_hosts().is_empty() {
        return Err(bad_url("it names no host"));
    }
    if config.get_user().is_none() {
        config.user(&crate::audit::os_user());
    }
    if config.get_dbname().is_none() {
        let user = config.get_user().unwrap_or_default().to_string();
        config.dbname(&user);
    }
    config.application_name("objectos");
    Ok(config)
}

/// The password for `config`: `PGPASSWORD`, the configured file, then the
/// libpq password file (`PGPASSFILE`, else `~/.pgpass`).
fn password(
    config: &postgres::Config,
    file: Option<&Path>,
    from_env: bool,
) -> anyhow::Result<Option<String>> {
    if from_env
        && let Ok(p) = std::env::var("PGPASSWORD")
        && !p.is_empty()
    {
        return Ok(Some(p));
    }
    if let Some(file) = file {
        let text = std::fs::read_to_string(file).with_context(|| {
            format!(
                "cannot read the database password file `{}` (named in `{DATABASE_CONFIG}`)",
                file.display()
            )
        })?;
        return Ok(text.lines().next().map(|l| l.trim_end().to_string()));
    }
    let pgpass = match std::env::var_os("PGPASSFILE") {
        Some(p) => PathBuf::from(p),
        None => match std::env::var_os("HOME") {
            Some(home) => Path::new(&home).join(".pgpass"),
            None => return Ok(None),
        },
    };
    let Ok(text) = std::fs::read_to_string(&pgpass) else {
        return Ok(None);
    };
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        // libpq matches a socket connection as `localhost`.
        _ => "localhost".to_string(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let want = [
        host.as_str(),
        port.as_str(),
        config.get_dbname().unwrap_or(""),
        config.get_user().unwrap_or(""),
    ];
    Ok(pgpass_lookup(&text, &want))
}

/// The password of the first `.pgpass` line matching host, port, database,
/// user (`*` matches anything; `\:` and `\\` are escapes).
fn pgpass_lookup(text: &str, want: &[&str; 4]) -> Option<String> {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        field.push(n);
                    }
                }
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut field)),
                c => field.push(c),
            }
        }
        fields.push(field);
        if fields.len() != 5 {
            continue;
        }
        if fields[..4]
            .iter()
            .zip(want)
            .all(|(f, w)| f == "*" || f == w)
        {
            return fields.pop();
        }
    }
    None
}

/// The statements a database administrator runs so that the runtime's role
/// can do its work and nothing more on the audit rows, printed by `init`.
pub fn grants(config: &postgres::Config) -> String {
    let db = config.get_dbname().unwrap_or("objectos");
    format!(
        "-- Run objectos with a role that does not own its tables: the owner can
-- disable the triggers that keep audit rows immutable. For example, with
-- `objectos_owner` owning the schema (it runs `init` and upgrades) and
-- `objectos_app` in `database.json` for everyday commands and `serve`:
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM objectos_app;
GRANT CONNECT ON DATABASE {db} TO objectos_app;
GRANT USAGE ON SCHEMA public TO objectos_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO objectos_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO objectos_app;
REVOKE UPDATE, DELETE, TRUNCATE ON objectos_audit, objectos_audit_anchors, objectos_artifacts FROM objectos_app;
GRANT SELECT, INSERT ON objectos_audit, objectos_artifacts TO objectos_app;"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_lines_match_with_wildcards_and_escapes() {
        let text = "# comment\nother:5432:db:u:nope\n*:5432:objectos:app:s\\:ecret\\\\x\n";
        assert_eq!(
            pgpass_lookup(text, &["localhost", "5432", "objectos", "app"]).as_deref(),
            Some("s:ecret\\x")
        );
        assert_eq!(
            pgpass_lookup(text, &["localhost", "5433", "objectos", "app"]),
            None
        );
    }

    #[test]
    fn a_url_with_a_password_or_a_bad_sslmode_is_refused_with_the_fix() {
        let err = parse_url("postgres://u:secret@h/db")
            .unwrap_err()
            .to_string();
        assert!(err.contains("password"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        let err = parse_url("postgres://u@h/db?sslmode=sometimes")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sslmode=sometimes"), "{err}");
        let tls = parse_url("postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem").unwrap();
        assert_eq!(tls.get_ssl_mode(), postgres::config::SslMode::Require);
        assert!(parse_url("mysql://u@h/db").is_err());
        let ok = parse_url("postgres://u@h:5433/db?sslmode=disable").unwrap();
        assert_eq!(ok.get_dbname(), Some("db"));
    }
}
