//! The SQLite backend: one file in the data dir, WAL, every commit on disk before
//! it is answered (group commit, see [`WriteGroup`]), schema by
//! append-only migrations tracked in `PRAGMA user_version`.
//!
//! Writes go through one connection (SQLite has one writer at a time); reads use a
//! small pool, so readers never wait for a writer.
//!
//! This file opens the database, lends the readers, runs checkpoints while a
//! server runs, and answers for the backend; group commit and durability are
//! in `commit.rs`, the schema and its migrations in `schema.rs`, a
//! transaction as the shared SQL layer drives it in `engine.rs`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::sql::{Dialect, Engine};
use super::*;

mod anchors;
mod assistant;
mod commit;
mod engine;
mod schema;

use commit::{Durability, WriteGroup, run_cached};
pub use engine::SqliteTx;
use schema::ensure_row_versions;
pub use schema::{AUDIT_GUARDS, MIGRATIONS, migrate};

fn map_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match &e {
        rusqlite::Error::SqliteFailure(err, msg) => match err.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => StoreError::Busy,
            ErrorCode::ConstraintViolation => {
                let text = msg.clone().unwrap_or_default();
                if text.contains("immutable") {
                    StoreError::Immutable(text)
                } else if let Some(cols) = text.strip_prefix("UNIQUE constraint failed: ") {
                    StoreError::Unique(cols.to_string())
                } else {
                    StoreError::Backend(text)
                }
            }
            ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => {
                StoreError::Corrupt(e.to_string())
            }
            ErrorCode::ReadOnly => StoreError::ReadOnly,
            ErrorCode::CannotOpen | ErrorCode::PermissionDenied => {
                StoreError::CannotOpen(e.to_string())
            }
            _ if msg.as_deref().is_some_and(|m| m.contains("immutable")) => {
                StoreError::Immutable(msg.clone().unwrap_or_default())
            }
            _ => StoreError::Backend(e.to_string()),
        },
        _ => StoreError::Backend(e.to_string()),
    }
}

trait Sql<T> {
    fn db(self) -> StoreResult<T>;
}

impl<T> Sql<T> for rusqlite::Result<T> {
    fn db(self) -> StoreResult<T> {
        self.map_err(map_err)
    }
}

pub use super::sql::{quote, table_of};

pub struct SqliteBackend {
    path: PathBuf,
    writer: Mutex<Connection>,
    /// Writers sharing a commit, and the signal that it happened.
    group: Mutex<WriteGroup>,
    committed: std::sync::Condvar,
    durability: Durability,
    /// In a server's way of writing (see `serve_mode`).
    serving: std::sync::atomic::AtomicBool,
    readers: Mutex<Readers>,
    /// Signalled when a reader comes back to the pool.
    reader_back: std::sync::Condvar,
    /// Opened read-only (for commands that write nothing): how connections open.
    read_only: Option<ReadOnly>,
}

/// The read connections: those idle, and how many exist. At most
/// `max_readers()` exist at once; a reader waits for one to come back rather
/// than open another (each holds a page cache, so their number bounds memory).
#[derive(Default)]
struct Readers {
    idle: Vec<Connection>,
    open: usize,
}

/// Two per core (readers wait on I/O a little), at least 2, at most 16.
fn max_readers() -> usize {
    // Asked once: `available_parallelism` reads the cgroup files on every call
    // (a fifth of a busy server's time when it was asked per read).
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() * 2)
            .unwrap_or(4)
            .clamp(2, 16)
    })
}

/// The page cache of each connection, in KiB. Reads do not go through a memory
/// map: the operating system's file cache holds the database for every process
/// without counting against this one, and the process's memory stays what its
/// connections need.
///
/// Each connection has a page cache of its own (the bundled SQLite is built
/// without `SQLITE_ENABLE_MEMORY_MANAGEMENT`, see `.cargo/config.toml`: with
/// it, the caches of all connections formed one pool behind one lock, which
/// the writer waited on behind the readers). At 4 MiB, a rep's list at
/// 240,000 records (3,500 rows to sort, on some 2,900 pages) no longer fitted:
/// every call read each page again from the file (2,900 `pread`s, 3–4 times
/// the time of the same query on a cache that held them). At 16 MiB a
/// server's connections (the writer, the checkpointer and up to
/// `max_readers()` readers) hold at most 96 MiB on 2 cores. Pages are only
/// allocated once read, so a short command stays small.
pub const PAGE_CACHE_KIB: i64 = 16384;

/// A read connection lent out of the pool; it goes back when dropped (after a
/// rollback if a transaction was left open).
struct Lease<'b> {
    backend: &'b SqliteBackend,
    conn: Option<Connection>,
}

impl std::ops::Deref for Lease<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("a leased connection")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            self.backend.give_back(conn);
        }
    }
}

/// How often the background checkpoint runs: often enough that the log stays
/// a few megabytes under a steady stream of writes.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// The log's length, in pages, past which the background checkpoint makes it
/// start again from its beginning (16 MiB of 4 KiB pages).
const RESTART_FRAMES: i64 = 4096;

/// How long the background checkpoint waits, once it holds the writer's lock,
/// for readers of an older snapshot to finish before it gives up on starting
/// the log again (it then does what a passive checkpoint does, and tries again
/// at its next turn). Writers wait while it does: with SQLite's usual busy
/// handler, which sleeps for up to tens of milliseconds at a time, each of
/// these waits showed as the slowest creates of a run.
const CHECKPOINT_BUSY: Duration = Duration::from_millis(3);

/// SQLite's own checkpoint threshold, in pages, given back to the writer when
/// the background checkpoints stop.
const AUTOCHECKPOINT_PAGES: i64 = 1000;

/// A server's way of writing (see [`SqliteBackend::serve_mode`]); dropping this
/// stops the checkpoint thread, and each commit syncs and checkpoints by
/// itself again.
pub struct ServeMode {
    backend: Arc<SqliteBackend>,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ServeMode {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Err(e) = self.backend.set_serving(false) {
            tracing::warn!(error = %e, "could not restore the writer's own syncs and checkpoints");
        }
    }
}

/// How a read-only database is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOnly {
    /// Read-only, still seeing other processes' writes.
    Shared,
    /// On read-only media: the file is taken as unchanging (SQLite's
    /// `immutable`), since no lock or WAL index can be made beside it.
    Immutable,
}

fn open_read_only_conn(path: &Path, how: ReadOnly) -> StoreResult<Connection> {
    let conn = match how {
        ReadOnly::Shared => Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ),
        ReadOnly::Immutable => {
            let uri = format!(
                "file:{}?immutable=1",
                path.display()
                    .to_string()
                    .replace('%', "%25")
                    .replace('?', "%3f")
                    .replace('#', "%23")
            );
            Connection::open_with_flags(
                uri,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI,
            )
        }
    }
    .db()?;
    conn.busy_timeout(Duration::from_secs(5)).db()?;
    plan_by_statement(&conn)?;
    conn.execute_batch(&format!(
        "PRAGMA cache_size = -{PAGE_CACHE_KIB}; PRAGMA mmap_size = 0;"
    ))
    .db()?;
    Ok(conn)
}

/// Plan each statement once, whatever its parameters (SQLite's query planner
/// stability guarantee). Without it, a statement whose parameter meets an index
/// with `sqlite_stat4` samples is planned again every time it is bound to new
/// values, so a cached statement is parsed and planned anew on every request:
/// over a quarter of a server's CPU on the get of one record by id. The plan
/// still weighs the index statistics `PRAGMA optimize` gathers (row counts per
/// key prefix), and samples against the literals a statement spells out.
fn plan_by_statement(conn: &Connection) -> StoreResult<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .db()?;
    Ok(())
}

fn configure(conn: &Connection) -> StoreResult<()> {
    conn.busy_timeout(Duration::from_secs(5)).db()?;
    plan_by_statement(conn)?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA cache_size = -{PAGE_CACHE_KIB};
         PRAGMA mmap_size = 0;
         PRAGMA temp_store = MEMORY;"
    ))
    .db()?;
    Ok(())
}

impl SqliteBackend {
    /// Open (creating when `create`) and migrate the database.
    pub fn open(path: &Path, create: bool) -> StoreResult<SqliteBackend> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let mut conn = Connection::open_with_flags(path, flags).db()?;
        configure(&conn)?;
        migrate(&mut conn, MIGRATIONS.len())?;
        ensure_row_versions(&conn)?;
        Ok(SqliteBackend {
            path: path.to_path_buf(),
            writer: Mutex::new(conn),
            group: Mutex::new(WriteGroup::default()),
            committed: std::sync::Condvar::new(),
            durability: Durability::default(),
            serving: Default::default(),
            readers: Mutex::new(Readers::default()),
            reader_back: std::sync::Condvar::new(),
            read_only: None,
        })
    }

    /// Open for reading only: nothing is migrated or written. On read-only
    /// media the file is read as unchanging. A database that needs migrating
    /// cannot be read this way.
    pub fn open_read_only(path: &Path) -> StoreResult<SqliteBackend> {
        let mut last = None;
        for how in [ReadOnly::Shared, ReadOnly::Immutable] {
            let attempt = open_read_only_conn(path, how).and_then(|conn| {
                let version: i64 = conn
                    .query_row("PRAGMA user_version", [], |r| r.get(0))
                    .db()?;
                Ok((conn, version))
            });
            match attempt {
                Ok((conn, version)) => {
                    if version > MIGRATIONS.len() as i64 {
                        return Err(StoreError::TooNew {
                            found: version,
                            known: MIGRATIONS.len() as i64,
                        });
                    }
                    if version < MIGRATIONS.len() as i64 {
                        return Err(StoreError::Backend(format!(
                            "the database is at schema version {version} and needs migrating to {}, which a read-only open cannot do; run a command that writes (e.g. `objectos doctor` on a writable copy)",
                            MIGRATIONS.len()
                        )));
                    }
                    return Ok(SqliteBackend {
                        path: path.to_path_buf(),
                        writer: Mutex::new(conn),
                        group: Mutex::new(WriteGroup::default()),
                        committed: std::sync::Condvar::new(),
                        durability: Durability::default(),
                        serving: Default::default(),
                        readers: Mutex::new(Readers::default()),
                        reader_back: std::sync::Condvar::new(),
                        read_only: Some(how),
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| StoreError::Backend("cannot open the database".into())))
    }

    /// How the database was opened read-only, if it was.
    pub fn read_only(&self) -> Option<ReadOnly> {
        self.read_only
    }

    /// A read connection: an idle one, a new one while fewer than
    /// `max_readers()` exist, or the next one given back.
    fn reader(&self) -> StoreResult<Lease<'_>> {
        let poisoned = || StoreError::Backend("reader pool poisoned".into());
        let mut pool = self.readers.lock().map_err(|_| poisoned())?;
        let since = std::time::Instant::now();
        loop {
            if let Some(conn) = pool.idle.pop() {
                return Ok(Lease {
                    backend: self,
                    conn: Some(conn),
                });
            }
            // Past a second of waiting, one more is opened all the same: a
            // reader that needs a second connection while every one is lent
            // (a read inside a read) must not wait for ever.
            if pool.open < max_readers() || since.elapsed() > Duration::from_secs(1) {
                pool.open += 1;
                break;
            }
            pool = self
                .reader_back
                .wait_timeout(pool, Duration::from_millis(100))
                .map_err(|_| poisoned())?
                .0;
        }
        drop(pool);
        let opened = match self.read_only {
            Some(how) => open_read_only_conn(&self.path, how),
            None => Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .db()
            .and_then(|conn| configure(&conn).map(|()| conn)),
        };
        match opened {
            Ok(conn) => Ok(Lease {
                backend: self,
                conn: Some(conn),
            }),
            Err(e) => {
                if let Ok(mut pool) = self.readers.lock() {
                    pool.open -= 1;
                }
                self.reader_back.notify_one();
                Err(e)
            }
        }
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut pool) = self.readers.lock() {
            if pool.open <= max_readers() {
                pool.idle.push(conn);
            } else {
                // One opened past the limit: closed.
                pool.open -= 1;
            }
        }
        self.reader_back.notify_one();
    }

    /// How a long-running server writes, until the answer is dropped: each
    /// group's fsync is made after the writer is handed to the next group
    /// (see [`WriteGroup`]), and the write-ahead log is copied back into the
    /// database on a thread of its own rather than in the commit that crosses
    /// SQLite's threshold (one held the writer for milliseconds, every few
    /// commits). The checkpoints are SQLite's passive ones, which never block a
    /// reader or a writer and copy only what no reader still needs; past
    /// [`RESTART_FRAMES`], one that starts the log again, which holds writers
    /// back for at most [`CHECKPOINT_BUSY`] while readers of an older snapshot
    /// finish.
    pub fn serve_mode(self: &Arc<Self>) -> StoreResult<ServeMode> {
        if self.read_only.is_some() {
            return Err(StoreError::ReadOnly);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .db()?;
        configure(&conn)?;
        conn.busy_timeout(CHECKPOINT_BUSY).db()?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                use std::sync::mpsc::RecvTimeoutError;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
                    let checkpoint = |mode: &str| {
                        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
                            r.get::<_, i64>(1)
                        })
                    };
                    // Under a steady stream of writes a passive checkpoint never
                    // catches up with the end of the log, and the log only
                    // restarts from its beginning once one has: past a size, the
                    // next one waits for the writer (briefly: most is copied).
                    let outcome = checkpoint("PASSIVE").and_then(|frames| {
                        if frames > RESTART_FRAMES {
                            checkpoint("RESTART").map(|_| ())
                        } else {
                            Ok(())
                        }
                    });
                    if let Err(e) = outcome {
                        tracing::warn!(error = %e, "could not checkpoint the write-ahead log");
                    }
                }
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the checkpoint thread: {e}")))?;
        self.set_serving(true)?;
        Ok(ServeMode {
            backend: Arc::clone(self),
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Enter or leave the serving mode's way of writing. Changed under the
    /// writer's lock, so that each group commits one way or the other whole.
    fn set_serving(&self, serving: bool) -> StoreResult<()> {
        let conn = self
            .writer
            .lock()
            .map_err(|_| StoreError::Backend("the writer connection is poisoned".into()))?;
        let (sync, pages) = if serving {
            ("NORMAL", 0)
        } else {
            ("FULL", AUTOCHECKPOINT_PAGES)
        };
        conn.pragma_update(None, "synchronous", sync).db()?;
        conn.pragma_update(None, "wal_autocheckpoint", pages).db()?;
        self.serving
            .store(serving, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// A consistent copy of the database into `target`, taken with SQLite's online
    /// backup while others keep writing.
    pub fn backup_to(&self, target: &Path) -> StoreResult<()> {
        let source = self.reader()?;
        let mut dest = Connection::open(target).db()?;
        let backup = rusqlite::backup::Backup::new(&source, &mut dest).db()?;
        backup
            .run_to_completion(256, Duration::from_millis(5), None)
            .db()?;
        // A copy holds nothing that is not on disk here.
        self.sync_seen_here()
    }
}

/// The write-ahead log beside a database file.
fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_os_string();
    name.push("-wal");
    PathBuf::from(name)
}

impl Backend for SqliteBackend {
    fn sync_seen(&self) -> StoreResult<()> {
        self.sync_seen_here()
    }

    fn transaction(
        &self,
        mode: Mode,
        key: Option<&RowKey>,
        work: &mut dyn FnMut(&mut dyn Tx) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        match mode {
            Mode::Write | Mode::WriteThenRead => {
                if self.read_only.is_some() {
                    return Err(StoreError::ReadOnly.into());
                }
                self.write_grouped(key, work, mode == Mode::Write)
            }
            Mode::Scan => {
                // A connection of its own, with no memory map and a small page
                // cache: a walk over the whole log reads each page once, and
                // a mapped or cached page would stay resident.
                let conn = match self.read_only {
                    Some(how) => open_read_only_conn(&self.path, how)?,
                    None => {
                        let conn = Connection::open_with_flags(
                            &self.path,
                            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                        )
                        .db()?;
                        conn.busy_timeout(Duration::from_secs(5)).db()?;
                        conn
                    }
                };
                conn.execute_batch("PRAGMA mmap_size = 0; PRAGMA cache_size = -2048; BEGIN")
                    .db()?;
                let result = {
                    let mut tx = SqliteTx { conn: &conn, key };
                    work(&mut tx)
                };
                let _ = conn.execute_batch(if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
                result?;
                // A scan exports or checks the audit log: evidence.
                Ok(self.sync_seen_here()?)
            }
            Mode::Read | Mode::Peek => {
                let conn = self.reader()?;
                // Prepared once per connection: a read is often one small query.
                run_cached(&conn, "BEGIN").db()?;
                let result = {
                    let mut tx = SqliteTx { conn: &conn, key };
                    work(&mut tx)
                };
                let _ = run_cached(&conn, if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
                drop(conn);
                result?;
                if mode == Mode::Read {
                    self.wait_durable()?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bundled SQLite is built as `.cargo/config.toml` says: no shared page
    /// cache behind one lock, no global lock around every allocation. A build
    /// that lost those flags (cargo run from outside the repository, say)
    /// fails here rather than serving slower unnoticed.
    #[test]
    fn sqlite_is_built_without_process_wide_locks() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let options: Vec<String> = conn
            .prepare("PRAGMA compile_options")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
        // The control: the list is the build's.
        assert!(options.iter().any(|o| o == "THREADSAFE=1"), "{options:?}");
    }

    pub(super) fn set_meta(b: &SqliteBackend, key: &str, value: &str) {
        b.transaction(Mode::Write, None, &mut |tx| Ok(tx.meta_set(key, value)?))
            .unwrap();
    }

    pub(super) fn get_meta(b: &SqliteBackend, mode: Mode, key: &str) -> Option<String> {
        let mut out = None;
        b.transaction(mode, None, &mut |tx| {
            out = tx.meta_get(key)?;
            Ok(())
        })
        .unwrap();
        out
    }

    /// While a server runs, checkpoints run on their own thread: the writer's
    /// own are off, the log is copied into the database without a write
    /// crossing SQLite's threshold, and dropping the guard gives the writer its
    /// checkpoints back.
    #[test]
    fn background_checkpoints_copy_the_log_and_hand_back_to_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let b = Arc::new(SqliteBackend::open(&path, true).unwrap());
        let threshold = |b: &SqliteBackend| -> i64 {
            b.writer
                .lock()
                .unwrap()
                .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(threshold(&b), AUTOCHECKPOINT_PAGES);
        let guard = b.serve_mode().unwrap();
        assert_eq!(threshold(&b), 0);
        for i in 0..50 {
            set_meta(&b, &format!("k{i}"), &"x".repeat(3000));
        }
        // Far fewer pages than SQLite's threshold: only the thread copies them.
        let since = std::time::Instant::now();
        let wal = wal_path(&path);
        let mut copied = false;
        while since.elapsed() < Duration::from_secs(5) {
            // The database file grows as the log is copied into it.
            let db_len = std::fs::metadata(&path).unwrap().len();
            if db_len > 50 * 3000 {
                copied = true;
                break;
            }
            std::thread::sleep(CHECKPOINT_EVERY);
        }
        assert!(wal.exists());
        assert!(copied, "the log was not copied into the database");
        drop(guard);
        assert_eq!(threshold(&b), AUTOCHECKPOINT_PAGES);
    }

    /// A checkpoint that would start the log again holds the writer's lock
    /// while it waits for readers of an older snapshot: with a reader that
    /// never leaves, it gives up within milliseconds instead of holding every
    /// writer for the connection's busy timeout (five seconds).
    #[test]
    fn a_checkpoint_waiting_for_a_reader_holds_no_writer_for_long() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let b = Arc::new(SqliteBackend::open(&path, true).unwrap());
        set_meta(&b, "k", "before");
        let reader = Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let before: String = reader
            .query_row("SELECT value FROM objectos_meta WHERE key = 'k'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(before, "before");
        let _serving = b.serve_mode().unwrap();
        // Past the length at which the checkpoint starts the log again.
        let big = "x".repeat(64 * 1024);
        for i in 0..(RESTART_FRAMES as usize / 16 + 16) {
            set_meta(&b, &format!("big{i}"), &big);
        }
        // While the background checkpoint holds the checkpoint lock (its
        // restart waits for the reader), another checkpoint is refused as busy
        // and counts no frames (-1): ask again once it has let go.
        let frames = |conn: &Connection| -> Option<i64> {
            (0..1000).find_map(|_| {
                let log: i64 = conn
                    .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
                    .unwrap();
                if log < 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
                (log >= 0).then_some(log)
            })
        };
        let log =
            frames(&b.writer.lock().unwrap()).expect("another checkpoint held the lock for 5 s");
        assert!(
            log > RESTART_FRAMES,
            "the log is too short for the test: {log}"
        );
        // Each of the checkpoint's turns now waits for the reader.
        let started = std::time::Instant::now();
        let mut slowest = Duration::ZERO;
        let mut writes = 0;
        while started.elapsed() < CHECKPOINT_EVERY * 15 {
            let write = std::time::Instant::now();
            set_meta(&b, "k", &format!("after {writes}"));
            slowest = slowest.max(write.elapsed());
            writes += 1;
        }
        assert!(
            slowest < Duration::from_secs(2),
            "a write waited {slowest:?} for the checkpoint"
        );
        assert!(
            writes > 15,
            "only {writes} writes in {:?}",
            started.elapsed()
        );
        // The reader still sees its snapshot; writers went on around it.
        let still: String = reader
            .query_row("SELECT value FROM objectos_meta WHERE key = 'k'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(still, "before");
        assert_eq!(
            get_meta(&b, Mode::Read, "k"),
            Some(format!("after {}", writes - 1))
        );
    }
}
