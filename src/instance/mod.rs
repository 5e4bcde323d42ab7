//! The data dir: the database, the instance's keys, the trust store and the
//! checkpoint log, opened together.

pub mod applied;
pub mod apply;
pub mod backup;
pub mod database;
pub mod rotate;
pub mod settings;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use age::secrecy::ExposeSecret;
use anyhow::Context;

use crate::audit::{self, Event, HmacKey, Origin, Outcome, checkpoint};
use crate::crypto::signing::{self, PublicKey, SecretKey, write_atomic};
use crate::error::{Exit, Failure, exit_of};
use crate::store::postgres::PgBackend;
use crate::store::sqlite::SqliteBackend;
use crate::store::{Backend, Mode, Store, StoreError, Tx};
use crate::timefmt;
use database::DatabaseConfig;

pub const DB_FILE: &str = "objectos.db";
pub const INSTANCE_KEY: &str = "instance.key";
pub const SIGNING_KEY: &str = "instance-signing.key";
pub const SIGNING_PUB: &str = "instance-signing.key.pub";
pub const TRUST_DIR: &str = "trust";
pub const CHECKPOINTS: &str = "audit-checkpoints.log";
/// Keys a rotation retired: `signing-KEYID.pub` (old checkpoints and archives
/// still verify with them) and `instance-KEYID.key` (0600: old audit HMACs can
/// still be confirmed, old encrypted backups still decrypted).
pub const RETIRED_DIR: &str = "retired";
/// The audit action of the row that records restored immutability guards.
pub const GUARDS_RESTORED: &str = "audit.guards_restored";
/// The instance metadata key every change to the trust store touches (a running
/// server reloads its trusted keys when it moves).
pub const TRUST_CHANGED: &str = "trust_changed_at";

/// The database behind a data dir, shared by the store and the operations
/// (backup, doctor) that need the concrete backend.
#[derive(Clone)]
pub enum Database {
    Sqlite(Arc<SqliteBackend>),
    Postgres(Arc<PgBackend>),
}

impl Backend for Database {
    fn transaction(
        &self,
        mode: Mode,
        key: Option<&crate::store::RowKey>,
        work: &mut dyn FnMut(&mut dyn Tx) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        match self {
            Database::Sqlite(db) => db.transaction(mode, key, work),
            Database::Postgres(db) => db.transaction(mode, key, work),
        }
    }

    fn sync_seen(&self) -> crate::store::StoreResult<()> {
        match self {
            Database::Sqlite(db) => db.sync_seen(),
            Database::Postgres(db) => db.sync_seen(),
        }
    }
}

impl Database {
    /// While a server runs: SQLite's way of writing for a long-running
    /// process (none for PostgreSQL or a read-only database).
    pub fn serve_mode(&self) -> anyhow::Result<Option<crate::store::sqlite::ServeMode>> {
        match self {
            Database::Sqlite(db) if db.read_only().is_none() => Ok(Some(db.serve_mode()?)),
            _ => Ok(None),
        }
    }
}

/// The meta key that says every row that grants power is sealed.
const ROWS_SEALED: &str = "rows_sealed";
/// The data dir's own record of the same (see `seal_existing_rows`).
pub const ROWS_SEALED_FILE: &str = "rows-sealed";
/// The audit action of the one-time sealing of older rows.
pub const ROWS_SEALED_ACTION: &str = "store.rows_sealed";

/// The key that seals rows that grant power, from the instance key.
pub fn row_key(identity: &age::x25519::Identity) -> crate::store::RowKey {
    crate::store::RowKey::derive(identity.to_string().expose_secret().as_bytes())
}

pub struct Instance {
    pub dir: PathBuf,
    pub store: Store,
    pub database: Database,
    /// The PostgreSQL configuration (`database.json`), when not SQLite.
    pub database_config: Option<DatabaseConfig>,
    pub id: String,
    identity: age::x25519::Identity,
    pub signer: SecretKey,
    pub hmac: HmacKey,
    /// Audit guards (the immutability triggers) that were missing or altered when
    /// this data dir was opened, and have been put back since (or, opened
    /// read-only, found missing and left for a writer to put back).
    pub guards_restored: Vec<String>,
    read_only: bool,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Instance({})", self.dir.display())
    }
}

/// The PostgreSQL server a new instance keeps its database on.
#[derive(Debug, Clone)]
pub struct NewServer {
    /// `postgres://…`, without a password.
    pub url: String,
    /// A file whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// The role that owns the schema, when the runtime's does not.
    pub admin_url: Option<String>,
    pub admin_password_file: Option<PathBuf>,
}

/// What `init` did.
pub struct Initialized {
    pub created: bool,
    pub instance_id: String,
    pub recipient: String,
    pub signing_key_id: String,
}

/// Open the data dir again (with its current keys) and checkpoint its head.
pub(crate) fn checkpoint_now(dir: &Path) -> anyhow::Result<()> {
    Instance::open(dir)?.checkpoint_if_behind().map(|_| ())
}

/// The signing keys a rotation retired (`retired/signing-*.pub`).
pub fn retired_signing_keys(dir: &Path) -> anyhow::Result<Vec<PublicKey>> {
    let retired = dir.join(RETIRED_DIR);
    if !retired.is_dir() {
        return Ok(Vec::new());
    }
    crate::artifact::verify::keys_in_dir(&retired)
}

/// The instance secrets a rotation retired (`retired/instance-*.key`), as the
/// bytes the audit HMAC keys derive from.
fn retired_secrets(dir: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let retired = dir.join(RETIRED_DIR);
    if !retired.is_dir() {
        return Ok(Vec::new());
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&retired)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "key"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| read_identity(p).map(|id| id.to_string().expose_secret().as_bytes().to_vec()))
        .collect()
}

/// The data dir can be read: a missing one and one this OS user may not read are
/// told apart (the second is not "not a data dir").
fn check_readable(dir: &Path) -> anyhow::Result<()> {
    let denied = |what: &Path| -> anyhow::Error {
        use std::os::unix::fs::MetadataExt;
        let owner = std::fs::metadata(dir)
            .map(|m| format!("; it belongs to uid {}", m.uid()))
            .unwrap_or_default();
        Failure::error(format!(
            "permission denied reading `{}` (objectos runs as OS user `{}`{owner})",
            what.display(),
            audit::os_user()
        ))
        .with_hint("run objectos as the data dir's owner (e.g. `sudo -u objectos objectos …`), or fix the permissions")
        .into()
    };
    if DatabaseConfig::path(dir).exists() {
        return Ok(());
    }
    match std::fs::metadata(Instance::db_path(dir)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(denied(dir)),
        Err(_) => match std::fs::read_dir(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(denied(dir)),
            _ => Err(
                Failure::error(format!("`{}` is not an objectos data dir", dir.display()))
                    .with_hint("run `objectos init` (or pass the right `--data-dir`)")
                    .into(),
            ),
        },
    }
}

fn store_error(e: StoreError, dir: &Path) -> anyhow::Error {
    match e {
        StoreError::ReadOnly | StoreError::CannotOpen(_) if is_read_only_dir(dir) => {
            Failure::error(format!(
                "the data dir `{}` is read-only, and this command writes (an audit row at least)",
                dir.display()
            ))
            .with_hint("run it where the data dir is writable; `audit verify`, `audit tail`, `doctor`, `user list`, `trust list` and `permset show` work on read-only media")
            .into()
        }
        StoreError::CannotOpen(why) => Failure::error(format!(
            "cannot open the database in `{}`: {why}",
            dir.display()
        ))
        .with_hint("check that this OS user may read and write the data dir")
        .into(),
        StoreError::Busy => Failure::error(format!(
            "the database in `{}` is locked by another process",
            dir.display()
        ))
        .with_hint("wait for the other objectos command to finish, or stop the server")
        .into(),
        StoreError::Corrupt(why) => Failure::error(format!(
            "`{}` holds a corrupt database: {why}",
            dir.join(DB_FILE).display()
        ))
        .with_hint("restore from a backup (`objectos restore`)")
        .into(),
        other => anyhow::Error::new(other),
    }
}

/// A PostgreSQL store error as the operator should read it: the cause, and the fix.
pub(crate) fn pg_error(e: anyhow::Error, config: &DatabaseConfig) -> anyhow::Error {
    let Some(se) = e.downcast_ref::<StoreError>() else {
        return e;
    };
    let (message, hint) = match se {
        StoreError::CannotOpen(why) if why.contains("wrong credentials") => (
            why.clone(),
            "put the role's password in `~/.pgpass` (or the file `PGPASSFILE` names), in `PGPASSWORD`, or in the file `database.json` names (`password_file`)".to_string(),
        ),
        StoreError::CannotOpen(why) if why.contains("no such database") => (
            why.clone(),
            "create it (`createdb -O ROLE NAME`), or fix the URL in `database.json`".to_string(),
        ),
        StoreError::CannotOpen(why) if why.contains("TLS") => (
            why.clone(),
            "give the certificate of the CA that signed the server's (`?sslmode=verify-full&sslrootcert=/path/to/ca.pem`), or check that the server has TLS on (`ssl = on`)".to_string(),
        ),
        StoreError::CannotOpen(why) => (
            why.clone(),
            format!(
                "check that PostgreSQL runs and accepts connections there, and the URL `{}` in `database.json`",
                config.url
            ),
        ),
        StoreError::Corrupt(why) => (
            why.clone(),
            "check the URL in `database.json`; `objectos init --database-url` makes a new instance in an empty database".to_string(),
        ),
        StoreError::TooNew { .. } => (
            format!("{se}"),
            "another instance upgraded the shared database: upgrade objectos on this host too".to_string(),
        ),
        StoreError::Backend(why) if why.contains("already holds objectos tables") => (
            why.clone(),
            "to serve an instance from a second host, copy its data dir there; to start a new instance, give an empty database".to_string(),
        ),
        StoreError::Backend(why) if why.contains("lacks a privilege") => (
            why.clone(),
            "grant the role what `objectos init` prints (GRANT …), or run this with the owner's URL".to_string(),
        ),
        _ => return e,
    };
    Failure::error(message).with_hint(hint).into()
}

/// The data dir's database: the PostgreSQL `database.json` names, or SQLite.
fn open_database(
    dir: &Path,
    read_only: bool,
) -> anyhow::Result<(Database, Option<DatabaseConfig>)> {
    if let Some(config) = DatabaseConfig::load(dir)? {
        // Migrations run as the owner, when the runtime's role is not.
        if let Some(admin) = config.admin_connect()?
            && !read_only
        {
            let role = config.runtime_role()?;
            drop(
                PgBackend::open_as_owner(admin, false, None, &role)
                    .map_err(|e| pg_error(e, &config))?,
            );
        }
        let connect = config.connect_config()?;
        let backend = PgBackend::open(connect, false, None).map_err(|e| pg_error(e, &config))?;
        return Ok((Database::Postgres(Arc::new(backend)), Some(config)));
    }
    let opened = if read_only {
        SqliteBackend::open_read_only(&Instance::db_path(dir))
    } else {
        SqliteBackend::open(&Instance::db_path(dir), false)
    };
    let backend = opened.map_err(|e| store_error(e, dir))?;
    Ok((Database::Sqlite(Arc::new(backend)), None))
}

pub(crate) fn read_identity(path: &Path) -> anyhow::Result<age::x25519::Identity> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the instance key `{}`", path.display()))?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "`{}` holds no age identity (`AGE-SECRET-KEY-1…`)",
                path.display()
            )
        })?;
    line.parse::<age::x25519::Identity>()
        .map_err(|e| anyhow::anyhow!("`{}` holds a malformed age identity: {e}", path.display()))
}

impl Instance {
    pub fn db_path(dir: &Path) -> PathBuf {
        dir.join(DB_FILE)
    }

    /// Create a data dir with its SQLite database, or confirm an existing one
    /// (idempotent). A directory that exists, is not empty and is not a data dir
    /// is refused.
    pub fn init(dir: &Path) -> anyhow::Result<Initialized> {
        Instance::init_with(dir, None)
    }

    /// `init`, with the database on the PostgreSQL server `server` names (an
    /// empty database; its tables, the instance's rows and the first audit row
    /// are made in one transaction, so a failure leaves nothing behind).
    pub fn init_with(dir: &Path, server: Option<&NewServer>) -> anyhow::Result<Initialized> {
        if Instance::db_path(dir).exists() || DatabaseConfig::path(dir).exists() {
            let existing = DatabaseConfig::load(dir)?;
            if let Some(server) = server
                && existing.as_ref().map(|c| c.url.as_str()) != Some(server.url.as_str())
            {
                return Err(Failure::error(format!(
                    "`{}` is already initialized, with {}; nothing was changed",
                    dir.display(),
                    match &existing {
                        Some(c) => format!("the database `{}`", c.url),
                        None => "its SQLite database".to_string(),
                    }
                ))
                .with_hint("a data dir keeps the database it was made with: init a new data dir (then `backup`/`restore` to move records)")
                .into());
            }
            let instance = Instance::open(dir)?;
            return Ok(Initialized {
                created: false,
                instance_id: instance.id.clone(),
                recipient: instance.recipient(),
                signing_key_id: instance.signer.public.id.to_string(),
            });
        }
        if dir.exists() {
            let mut entries = std::fs::read_dir(dir)
                .with_context(|| format!("cannot read `{}`", dir.display()))?;
            if !dir.is_dir() || entries.next().is_some() {
                return Err(Failure::error(format!(
                    "`{}` exists and is not an objectos data dir (it has no `{DB_FILE}`); nothing was changed",
                    dir.display()
                ))
                .with_hint("choose an empty or new directory with `--data-dir`")
                .into());
            }
        }
        // Build the whole data dir beside the target, then move it in place: an
        // interrupted init leaves nothing half-made at the target.
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("cannot create `{}`", parent.display()))?;
        let staging = tempfile::Builder::new()
            .prefix(".objectos-init-")
            .tempdir_in(&parent)
            .with_context(|| format!("cannot create a directory in `{}`", parent.display()))?;
        let s = staging.path();
        set_mode(s, 0o700)?;

        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public().to_string();
        let created = timefmt::rfc3339(timefmt::now());
        let key_text = format!(
            "# created: {created}\n# public key: {recipient}\n{}\n",
            identity.to_string().expose_secret()
        );
        write_atomic(
            &s.join(INSTANCE_KEY),
            key_text.as_bytes(),
            Some(0o600),
            true,
        )?;
        let (sk_text, public) = signing::generate_keypair(None)?;
        write_atomic(&s.join(SIGNING_KEY), sk_text.as_bytes(), Some(0o600), true)?;
        write_atomic(
            &s.join(SIGNING_PUB),
            public.to_file_text().as_bytes(),
            Some(0o644),
            true,
        )?;
        std::fs::create_dir(s.join(TRUST_DIR)).context("cannot create the trust directory")?;
        set_mode(&s.join(TRUST_DIR), 0o755)?;
        // Born sealed: every row that grants power is sealed as it is written.
        write_atomic(&s.join(ROWS_SEALED_FILE), b"1\n", Some(0o600), true)?;
        let instance_id = uuid::Uuid::new_v4().to_string();
        let mut setup = |tx: &mut dyn Tx| -> anyhow::Result<()> {
            tx.meta_set("instance_id", &instance_id)?;
            tx.meta_set("instance_recipient", &recipient)?;
            tx.meta_set("signing_key_id", &public.id.to_string())?;
            tx.meta_set("created_at", &created)?;
            // Born sealed: every row that grants power is sealed as it is written.
            tx.meta_set(ROWS_SEALED, "1")?;
            audit::append(
                tx,
                &Origin::operator(),
                Event::new("instance.init")
                    .object("instance")
                    .record(&instance_id)
                    .changes(serde_json::json!({
                        "recipient": recipient,
                        "signing_key_id": public.id.to_string(),
                    })),
            )?;
            Ok(())
        };
        match server {
            None => {
                let backend =
                    SqliteBackend::open(&s.join(DB_FILE), true).map_err(|e| store_error(e, s))?;
                // Records, credentials and audit rows: the owner's only (SQLite
                // makes its journal files with the same mode).
                set_mode(&s.join(DB_FILE), 0o600)?;
                let store = Store::new(Box::new(backend));
                store.write(setup)?;
            }
            Some(server) => {
                let config = DatabaseConfig {
                    backend: "postgres".into(),
                    url: server.url.clone(),
                    password_file: server.password_file.clone(),
                    instance_id: instance_id.clone(),
                    admin_url: server.admin_url.clone(),
                    admin_password_file: server.admin_password_file.clone(),
                };
                let connect = config.connect_config()?;
                config.save(s)?;
                match config.admin_connect()? {
                    None => {
                        PgBackend::open(connect, true, Some(&mut setup))
                            .map_err(|e| pg_error(e, &config))?;
                    }
                    Some(admin) => {
                        let role = database::checked_runtime_role(&config, &admin)?;
                        // The runtime's role must reach the database before
                        // the owner makes anything there.
                        PgBackend::check_connect(connect).map_err(|e| pg_error(e, &config))?;
                        PgBackend::open_as_owner(admin, true, Some(&mut setup), &role)
                            .map_err(|e| pg_error(e, &config))?;
                    }
                }
            }
        }
        if dir.exists() {
            std::fs::remove_dir(dir)
                .with_context(|| format!("cannot replace the empty `{}`", dir.display()))?;
        }
        let staged = staging.keep();
        std::fs::rename(&staged, dir)
            .with_context(|| format!("cannot move the new data dir to `{}`", dir.display()))?;
        // The first checkpoint covers the init row.
        let instance = Instance::open(dir)?;
        instance.checkpoint_if_behind()?;
        Ok(Initialized {
            created: true,
            instance_id,
            recipient,
            signing_key_id: public.id.to_string(),
        })
    }

    /// Open an existing data dir.
    pub fn open(dir: &Path) -> anyhow::Result<Instance> {
        Instance::open_with(dir, false, true)
    }

    /// Open for writing, but leave rows from before sealing as they are (a
    /// restore checks a backup's chain exactly as it was taken).
    pub fn open_unsealed(dir: &Path) -> anyhow::Result<Instance> {
        Instance::open_with(dir, false, false)
    }

    /// Open an existing data dir for reading only (commands that write nothing):
    /// it works on read-only media, writes no row and no checkpoint.
    pub fn open_read_only(dir: &Path) -> anyhow::Result<Instance> {
        Instance::open_with(dir, true, false)
    }

    fn open_with(dir: &Path, read_only: bool, seal: bool) -> anyhow::Result<Instance> {
        check_readable(dir)?;
        if !read_only && rotate::finish_interrupted(dir)? {
            eprintln!("warning: finished a key rotation that had been interrupted");
        }
        let identity = read_identity(&dir.join(INSTANCE_KEY))?;
        let sk_text = std::fs::read_to_string(dir.join(SIGNING_KEY)).with_context(|| {
            format!(
                "cannot read the instance signing key `{}`",
                dir.join(SIGNING_KEY).display()
            )
        })?;
        let signer =
            SecretKey::load(&sk_text, None).context("cannot load the instance signing key")?;
        let (database, database_config) = open_database(dir, read_only)?;
        let row_key = row_key(&identity);
        let store = Store::new(Box::new(database.clone())).with_row_key(row_key.clone());
        let (id, recipient, key_id) = store
            .read(|tx| {
                Ok((
                    tx.meta_get("instance_id")?,
                    tx.meta_get("instance_recipient")?,
                    tx.meta_get("signing_key_id")?,
                ))
            })
            .map_err(|e| match e.downcast::<StoreError>() {
                Ok(se) => store_error(se, dir),
                Err(e) => e,
            })?;
        let id = id.ok_or_else(|| {
            Failure::error(format!(
                "`{}` has no instance id; it was not made by `objectos init`",
                dir.display()
            ))
        })?;
        if let Some(config) = &database_config
            && config.instance_id != id
        {
            return Err(Failure::error(format!(
                "the database `{}` belongs to objectos instance {id}, not to this data dir's instance {}",
                config.url, config.instance_id
            ))
            .with_hint("point `database.json` at this instance's own database, or use the data dir of the instance that made it")
            .into());
        }
        if recipient.as_deref() != Some(identity.to_public().to_string().as_str()) {
            return Err(Failure::error(format!(
                "`{}` is not this instance's key (the database was initialized with another)",
                dir.join(INSTANCE_KEY).display()
            ))
            .with_hint("put the instance's own `instance.key` back (from its backup)")
            .into());
        }
        if key_id.as_deref() != Some(signer.public.id.to_string().as_str()) {
            return Err(Failure::error(format!(
                "`{}` is not this instance's signing key",
                dir.join(SIGNING_KEY).display()
            ))
            .into());
        }
        let hmac = HmacKey::new(identity.to_string().expose_secret().as_bytes())
            .with_retired(&retired_secrets(dir)?);
        let mut instance = Instance {
            dir: dir.to_path_buf(),
            store,
            database,
            database_config,
            id,
            identity,
            signer,
            hmac,
            guards_restored: Vec::new(),
            read_only,
        };
        instance.guards_restored = instance.restore_audit_guards()?;
        if seal {
            instance.seal_existing_rows(&row_key)?;
        }
        Ok(instance)
    }

    /// Seal, once, the rows that grant power written before objectos sealed
    /// them (a data dir made by an older version), and leave that in the
    /// chain. Whether it was done is kept twice: in the database, and in the
    /// data dir (`rows-sealed`), where someone who can write only the database
    /// cannot remove it to have forged rows sealed. A data dir that says so, or
    /// a chain that already holds the sealing, is never sealed again.
    fn seal_existing_rows(&self, key: &crate::store::RowKey) -> anyhow::Result<()> {
        let file = self.dir.join(ROWS_SEALED_FILE);
        let (marked, done_before) = self.store.read(|tx| {
            Ok((
                tx.meta_get(ROWS_SEALED)?.is_some(),
                tx.audit_last_success(ROWS_SEALED_ACTION)?.is_some(),
            ))
        })?;
        if file.exists() || done_before {
            if !marked {
                eprintln!(
                    "warning: TAMPERING: the database no longer says its rows are sealed, but {} does; nothing was sealed again (rows without a seal stay ignored; `objectos doctor` lists them)",
                    if file.exists() {
                        "the data dir"
                    } else {
                        "its audit chain"
                    }
                );
            }
            if !file.exists() {
                write_atomic(&file, b"1\n", Some(0o600), true)?;
            }
            return Ok(());
        }
        if !marked {
            self.store.write(|tx| {
                if tx.meta_get(ROWS_SEALED)?.is_some() {
                    return Ok(());
                }
                let sealed = tx.rows_reseal(None, key)?;
                tx.meta_set(ROWS_SEALED, "1")?;
                audit::append(
                    tx,
                    &Origin::operator(),
                    Event::new(ROWS_SEALED_ACTION)
                        .object("instance")
                        .record(&self.id)
                        .changes(serde_json::json!({ "rows": sealed })),
                )?;
                Ok(())
            })?;
        }
        write_atomic(&file, b"1\n", Some(0o600), true)?;
        Ok(())
    }

    /// Whether this data dir was opened for reading only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Audit rows are immutable because the database refuses to change them. If
    /// someone dropped or altered those guards behind objectos's back, say so
    /// loudly, put them back, and leave the finding in the chain itself.
    pub fn restore_audit_guards(&self) -> anyhow::Result<Vec<String>> {
        let missing = self.store.read(|tx| Ok(tx.audit_guards_missing()?))?;
        if missing.is_empty() {
            return Ok(missing);
        }
        if self.read_only {
            eprintln!(
                "warning: TAMPERING: the audit log's immutability guards ({}) are missing or altered in `{}`; opened read-only, they were not put back",
                missing.join(", "),
                Instance::db_path(&self.dir).display()
            );
            return Ok(missing);
        }
        eprintln!(
            "warning: TAMPERING: the audit log's immutability guards ({}) were missing or altered in `{}`; someone changed the database behind objectos's back",
            missing.join(", "),
            Instance::db_path(&self.dir).display()
        );
        let restored = self.with_admin_store(|store| {
            store.write(|tx| {
                tx.audit_guards_restore()?;
                audit::append(
                    tx,
                    &Origin::system(),
                    Event::new(GUARDS_RESTORED)
                        .object("audit")
                        .outcome(Outcome::Error, "tampering_detected")
                        .changes(serde_json::json!({ "missing_or_altered": missing })),
                )?;
                Ok(())
            })
        });
        match restored {
            Ok(()) => eprintln!(
                "warning: the guards are back in place; run `objectos audit verify` and investigate"
            ),
            Err(e) => eprintln!("warning: the guards could not be put back: {e:#}"),
        }
        Ok(missing)
    }

    pub fn recipient(&self) -> String {
        self.identity.to_public().to_string()
    }

    pub fn identity(&self) -> &age::x25519::Identity {
        &self.identity
    }

    pub fn signing_public(&self) -> &PublicKey {
        &self.signer.public
    }

    /// Every signing key this instance has had: the current one, then those a
    /// rotation retired. Checkpoints name the one that signed them.
    pub fn checkpoint_keys(&self) -> anyhow::Result<Vec<PublicKey>> {
        let mut keys = vec![self.signer.public.clone()];
        keys.extend(retired_signing_keys(&self.dir)?);
        Ok(keys)
    }

    pub fn trust_dir(&self) -> PathBuf {
        self.dir.join(TRUST_DIR)
    }

    pub fn checkpoints_path(&self) -> PathBuf {
        self.dir.join(CHECKPOINTS)
    }

    /// Sign a checkpoint of the current head if the log does not cover it yet.
    /// The log is locked first and the head read under the lock, so that
    /// processes checkpointing at once append in order, each after the other.
    pub fn checkpoint_if_behind(&self) -> anyhow::Result<Option<checkpoint::Checkpoint>> {
        let mut log = checkpoint::lock(&self.checkpoints_path())?;
        let head = self.store.read(|tx| Ok(tx.audit_head()?))?;
        let Some((seq, hash)) = head else {
            return Ok(None);
        };
        if log.head().is_none_or(|c| c.seq < seq) {
            // Another process's commit may be visible before its sync is done:
            // a checkpoint names only rows on disk.
            self.store.sync_seen()?;
            return Ok(Some(log.append(&self.signer, &self.id, seq, &hash)?));
        }
        Ok(None)
    }

    /// Run an audited change as `origin`: `work` appends its success rows in the
    /// same transaction as its changes; if it fails, one row with outcome
    /// `denied` or `error` is written after the refusal.
    /// Run `work` on the store that may change the schema and take audit rows
    /// out: over the administrative URL when `database.json` names one (the
    /// runtime's role may do neither), else the store itself.
    pub fn with_admin_store<T>(
        &self,
        work: impl FnOnce(&Store) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let Some(config) = &self.database_config else {
            return work(&self.store);
        };
        let Some(admin) = config.admin_connect()? else {
            return work(&self.store);
        };
        let backend = PgBackend::open(admin, false, None).map_err(|e| pg_error(e, config))?;
        let mut store = Store::new(Box::new(backend));
        if let Some(key) = self.store.row_key() {
            store = store.with_row_key(key.clone());
        }
        work(&store)
    }

    /// As `change`, for a change to the schema (applying an artifact).
    pub fn change_schema<T>(
        &self,
        origin: &Origin,
        action: &str,
        object: Option<&str>,
        work: impl FnOnce(&mut dyn Tx) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.audited(origin, action, object, || {
            self.with_admin_store(|store| store.write(work))
        })
    }

    pub fn change<T>(
        &self,
        origin: &Origin,
        action: &str,
        object: Option<&str>,
        work: impl FnOnce(&mut dyn Tx) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.audited(origin, action, object, || self.store.write(work))
    }

    /// Run `attempt` (checks, then its own transactions); if it fails at any point,
    /// write one row with outcome `denied` or `error` after the refusal.
    pub fn audited<T>(
        &self,
        origin: &Origin,
        action: &str,
        object: Option<&str>,
        attempt: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        match attempt() {
            Ok(value) => Ok(value),
            Err(err) => {
                self.refused(origin, action, object, &err);
                Err(err)
            }
        }
    }

    /// Write the row of a refused or failed operation.
    pub fn refused(
        &self,
        origin: &Origin,
        action: &str,
        object: Option<&str>,
        err: &anyhow::Error,
    ) {
        let (outcome, code) = match exit_of(err) {
            Exit::Denied => (Outcome::Denied, "denied"),
            Exit::Verify => (Outcome::Error, "verification_failed"),
            _ => (Outcome::Error, "error"),
        };
        let mut event = Event::new(action)
            .outcome(outcome, code)
            .changes(serde_json::json!({ "error": err.to_string() }));
        if let Some(object) = object {
            event = event.object(object);
        }
        if let Err(log_err) = self
            .store
            .write(|tx| audit::append(tx, origin, event).map(|_| ()))
        {
            eprintln!("warning: the refusal could not be audited: {log_err}");
        }
    }
}

impl Drop for Instance {
    /// A command that wrote audit rows leaves a checkpoint of its head behind
    /// (a checkpoint at shutdown; docs/audit-log.md).
    fn drop(&mut self) {
        if self.read_only {
            return;
        }
        if let Err(e) = self.checkpoint_if_behind() {
            eprintln!("warning: could not write the audit checkpoint: {e}");
        }
    }
}

/// The file a running server holds a shared lock on, so that commands which
/// must not run under a server (quickstart's reset of the demo keys) can tell.
pub const SERVE_LOCK: &str = "serve.lock";

/// A server's hold on its data dir, released when it is dropped.
pub struct ServeLock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

impl ServeLock {
    /// Hold the data dir as its one server: a second `serve` on the same data
    /// dir is refused (its checkpoints, caches and group commits assume one
    /// writer process serving).
    pub fn hold(dir: &Path) -> anyhow::Result<ServeLock> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(SERVE_LOCK))
            .with_context(|| format!("cannot open `{}`", dir.join(SERVE_LOCK).display()))?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map(ServeLock)
            .map_err(|(_, e)| {
                if e == nix::errno::Errno::EWOULDBLOCK {
                    crate::error::Failure::error(format!(
                        "another `objectos serve` is already serving `{}`",
                        dir.display()
                    ))
                    .with_hint("stop it first, or serve another data dir")
                    .into()
                } else {
                    anyhow::anyhow!("cannot lock `{}`: {e}", dir.join(SERVE_LOCK).display())
                }
            })
    }

    /// Whether a server holds the data dir now.
    pub fn held(dir: &Path) -> bool {
        let Ok(file) = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join(SERVE_LOCK))
        else {
            return false;
        };
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).is_err()
    }
}

/// Whether the data dir cannot be written (read-only media or permissions).
pub fn is_read_only_dir(dir: &Path) -> bool {
    nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_err()
        || nix::unistd::access(&Instance::db_path(dir), nix::unistd::AccessFlags::W_OK).is_err()
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of `{}`", path.display()))
}
