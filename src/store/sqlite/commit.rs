//! Group commit and durability: how a write joins the open group, when the
//! group commits, and how the log is synced before anyone is answered.

use std::sync::Mutex;

use super::*;

/// Group commit: writers that arrive while another writes join its
/// transaction, each in a savepoint of its own (a failing one undoes only its
/// own work), and the last of the group commits for all: one fsync for many
/// writes, and nobody is answered before the commit that holds their write is
/// on disk.
///
/// In a server (see [`SqliteBackend::serve_mode`]) the fsync is not made
/// inside the commit (the writer runs SQLite's `synchronous = NORMAL`): the
/// last of the group commits, hands the writer to the next group, and only
/// then syncs the log and answers its group. The
/// next group's work overlaps this group's fsync, and an answer still waits
/// for the disk: what `synchronous = FULL` promises, at the cost of one fsync
/// per group instead of one per group in series with the next. Log frames are
/// appended in commit order, so a sync that completes covers every commit
/// made before it began.
///
/// A commit is then visible to readers before its fsync completes; so that
/// nothing read leaves a process before it is on disk, every read waits,
/// before it answers, for the syncs of the commits it may have seen (see
/// [`SqliteBackend::wait_durable`]). Elsewhere (commands run once) each commit
/// syncs before it ends (`synchronous = FULL`).
///
/// The members learn the commit's outcome as soon as it is made. A write
/// answered with a read of what it wrote ([`Mode::WriteThenRead`]: a create
/// answers with the record) reads then, while the log syncs, and the read
/// waits for the sync before it returns; the other members wait for the sync,
/// and the one that committed makes it. Reading after the sync instead made
/// each such answer wait for the next group's sync as well, as the read saw
/// that group's commit.
#[derive(Default)]
pub(super) struct WriteGroup {
    /// A transaction is open on the writer connection, holding the work of
    /// `members` writers of batch `epoch`, not yet committed.
    open: bool,
    epoch: u64,
    members: usize,
    /// Writers waiting for the connection (they will join the open batch).
    waiting: usize,
    /// The outcome of committed batches not yet read by all their members:
    /// epoch → (error, members left to read it).
    outcomes: std::collections::HashMap<u64, (Option<String>, usize)>,
}

/// Which commits are on disk: `committing` is the latest batch whose commit
/// was started, `durable` the latest known synced (with every one before it).
/// A sync that fails leaves the database unusable until restarted, as a
/// commit may be visible that is not on disk.
#[derive(Default)]
pub(super) struct Durability {
    committing: std::sync::atomic::AtomicU64,
    durable: std::sync::atomic::AtomicU64,
    failed: Mutex<Option<String>>,
    synced: std::sync::Condvar,
    /// Syncs of the log under way.
    syncing: std::sync::atomic::AtomicUsize,
}

/// At most this many writers share one commit.
const MAX_GROUP: usize = 64;

/// A group this large commits even with writers waiting, when no sync is under
/// way (see [`WriteGroup::ends`]).
const EARLY_GROUP: usize = 16;

impl WriteGroup {
    /// Whether the writer that just did its work commits the group now. It
    /// does when nobody waits to join, at [`MAX_GROUP`], and when its own work
    /// could not be kept. In a server it also does at [`EARLY_GROUP`] when the
    /// disk is idle (no sync of the log under way): the group's sync starts at
    /// once, rather than after the work of every writer that keeps arriving,
    /// each of whom its first members wait for. While a sync is under way the
    /// group keeps growing: its own sync would queue behind that one.
    fn ends(&self, kept: bool, disk_idle: bool) -> bool {
        !kept
            || self.waiting == 0
            || self.members >= MAX_GROUP
            || (disk_idle && self.members >= EARLY_GROUP)
    }
}

/// One statement without parameters, prepared once per connection: the
/// statements that open, mark and end a transaction run on every write.
pub(super) fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

impl SqliteBackend {
    /// Run `work` in the writer's open group (see [`WriteGroup`]). With
    /// `synced`, return once the commit that holds it is on disk; without, as
    /// soon as it is committed, visible to readers ([`Mode::WriteThenRead`]).
    pub(super) fn write_grouped(
        &self,
        key: Option<&RowKey>,
        work: &mut dyn FnMut(&mut dyn Tx) -> anyhow::Result<()>,
        synced: bool,
    ) -> anyhow::Result<()> {
        let poisoned = || anyhow::anyhow!("the writer connection is poisoned");
        {
            let mut g = self.group.lock().map_err(|_| poisoned())?;
            g.waiting += 1;
        }
        let conn = self.writer.lock();
        let mut g = self.group.lock().map_err(|_| poisoned())?;
        g.waiting -= 1;
        let conn = conn.map_err(|_| poisoned())?;
        if let Some(why) = self
            .durability
            .failed
            .lock()
            .map_err(|_| poisoned())?
            .clone()
        {
            return Err(StoreError::Backend(why).into());
        }
        if !g.open {
            run_cached(&conn, "BEGIN IMMEDIATE").db()?;
            g.open = true;
            g.epoch += 1;
            g.members = 0;
        }
        let epoch = g.epoch;
        g.members += 1;
        drop(g);

        run_cached(&conn, "SAVEPOINT objectos_write").db()?;
        let mut tx = SqliteTx { conn: &conn, key };
        let mine = work(&mut tx);
        let kept = if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (an I/O error, say): the
            // batch is lost, for every member.
            false
        } else {
            (mine.is_ok() || run_cached(&conn, "ROLLBACK TO objectos_write").is_ok())
                && run_cached(&conn, "RELEASE objectos_write").is_ok()
        };

        let disk_idle = self.serving.load(std::sync::atomic::Ordering::SeqCst)
            && self
                .durability
                .syncing
                .load(std::sync::atomic::Ordering::SeqCst)
                == 0;
        let mut g = self.group.lock().map_err(|_| poisoned())?;
        if g.ends(kept, disk_idle) {
            // The last of the group (or a broken batch): commit for everyone.
            let committed = if !kept {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                Err("the transaction was rolled back by the database".to_string())
            } else {
                // Counted before the commit shows: a reader that may see it
                // waits for its sync.
                self.durability
                    .committing
                    .fetch_max(epoch, std::sync::atomic::Ordering::SeqCst);
                run_cached(&conn, "COMMIT").map_err(|e| {
                    let _ = conn.execute_batch("ROLLBACK");
                    format!("the commit failed: {e}")
                })
            };
            g.open = false;
            let others = g.members - 1;
            let serving = self.serving.load(std::sync::atomic::Ordering::SeqCst);
            drop(conn);
            if !serving {
                // The commit synced (`synchronous = FULL`), as did every one
                // before it; one that failed shows nothing to wait for.
                self.durability
                    .durable
                    .fetch_max(epoch, std::sync::atomic::Ordering::SeqCst);
            }
            // The others learn the commit's outcome now, before its sync: a
            // member that reads before it answers ([`Mode::WriteThenRead`])
            // reads while the log syncs, and waits for the sync after.
            if others > 0 {
                g.outcomes.insert(epoch, (committed.clone().err(), others));
            }
            drop(g);
            self.committed.notify_all();
            // Serving, the writer is free for the next group while this one
            // syncs.
            let outcome = match committed {
                Ok(()) if serving => self.sync_log(epoch).err(),
                Ok(()) => None,
                // A commit that failed was counted: the log is synced all the
                // same, so that no reader waits for ever for its sync.
                Err(why) => {
                    if serving && kept {
                        let _ = self.sync_log(epoch);
                    }
                    Some(why)
                }
            };
            return match (mine, outcome) {
                (Err(e), _) => Err(e),
                (Ok(()), None) => Ok(()),
                (Ok(()), Some(why)) => Err(StoreError::Backend(why).into()),
            };
        }
        // Others are about to write: leave the transaction open for them and
        // wait for the commit that holds this write.
        drop(conn);
        let committed = loop {
            if let Some(entry) = g.outcomes.get_mut(&epoch) {
                let outcome = entry.0.clone();
                entry.1 -= 1;
                if entry.1 == 0 {
                    g.outcomes.remove(&epoch);
                }
                break outcome;
            }
            g = self.committed.wait(g).map_err(|_| poisoned())?;
        };
        drop(g);
        mine?;
        if let Some(why) = committed {
            return Err(StoreError::Backend(why).into());
        }
        if synced {
            self.wait_synced(epoch)?;
        }
        Ok(())
    }

    /// Put the write-ahead log on disk, holding at least batch `epoch`'s commit.
    pub(super) fn sync_log(&self, epoch: u64) -> Result<(), String> {
        use std::sync::atomic::Ordering;
        self.durability.syncing.fetch_add(1, Ordering::SeqCst);
        #[cfg(test)]
        tests::slow_sync(&self.path);
        let failure = self
            .sync_files()
            .err()
            .map(|e| format!("the commit could not be put on disk: {e}"));
        self.durability.syncing.fetch_sub(1, Ordering::SeqCst);
        let mut failed = self
            .durability
            .failed
            .lock()
            .map_err(|_| "the durability record is poisoned".to_string())?;
        match &failure {
            None => {
                self.durability.durable.fetch_max(epoch, Ordering::SeqCst);
            }
            Some(why) => {
                tracing::error!(error = %why, "the database is unusable until objectos restarts");
                failed.get_or_insert_with(|| why.clone());
            }
        }
        drop(failed);
        self.durability.synced.notify_all();
        failure.map_or(Ok(()), Err)
    }

    /// [`Backend::sync_seen`]: in a server, its own syncs (other processes
    /// commit with `synchronous = FULL`); in any other process (a command run
    /// beside a server), a sync of the log, which covers every commit made
    /// before it began, whoever made it.
    pub(super) fn sync_seen_here(&self) -> StoreResult<()> {
        if self.serving.load(std::sync::atomic::Ordering::SeqCst) {
            return self.wait_durable();
        }
        if self.read_only.is_some() {
            return Ok(());
        }
        self.sync_files()
            .map_err(|e| StoreError::Backend(format!("cannot sync the write-ahead log: {e}")))
    }

    /// Sync the write-ahead log, which covers every commit written to it
    /// before, by any process. Without a log (the last connection to close
    /// copied it into the database and removed it), the database instead.
    pub(super) fn sync_files(&self) -> std::io::Result<()> {
        match std::fs::File::open(wal_path(&self.path)) {
            Ok(file) => file.sync_data(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::File::open(&self.path).and_then(|f| f.sync_data())
            }
            Err(e) => Err(e),
        }
    }

    /// Wait until every commit of this process a read may have seen is on
    /// disk: called after the read, before its answer leaves. Without writes
    /// in flight (and outside a server) this is two atomic loads.
    pub(super) fn wait_durable(&self) -> StoreResult<()> {
        self.wait_synced(
            self.durability
                .committing
                .load(std::sync::atomic::Ordering::SeqCst),
        )
    }

    /// Wait until batch `target`'s commit, and every one before it, is on disk.
    pub(super) fn wait_synced(&self, target: u64) -> StoreResult<()> {
        use std::sync::atomic::Ordering;
        let d = &self.durability;
        if d.durable.load(Ordering::SeqCst) >= target {
            return Ok(());
        }
        let poisoned = || StoreError::Backend("the durability record is poisoned".into());
        let mut failed = d.failed.lock().map_err(|_| poisoned())?;
        loop {
            if let Some(why) = failed.as_ref() {
                return Err(StoreError::Backend(why.clone()));
            }
            if d.durable.load(Ordering::SeqCst) >= target {
                return Ok(());
            }
            failed = d.synced.wait(failed).map_err(|_| poisoned())?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::tests::{get_meta, set_meta};

    /// Databases whose log syncs take this long (to hold a sync open in a test).
    static SLOW_SYNCS: Mutex<Vec<(PathBuf, Duration)>> = Mutex::new(Vec::new());

    pub(super) fn slow_sync(path: &Path) {
        let delay = SLOW_SYNCS
            .lock()
            .unwrap()
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, d)| *d);
        if let Some(delay) = delay {
            std::thread::sleep(delay);
        }
    }

    /// A new database holding `k` = "before", serving, whose log syncs take
    /// `delay` until [`fast_syncs`].
    fn serving_with_slow_syncs(
        delay: Duration,
    ) -> (tempfile::TempDir, PathBuf, Arc<SqliteBackend>, ServeMode) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let b = Arc::new(SqliteBackend::open(&path, true).unwrap());
        set_meta(&b, "k", "before");
        let serving = b.serve_mode().unwrap();
        SLOW_SYNCS.lock().unwrap().push((path.clone(), delay));
        (dir, path, b, serving)
    }

    fn fast_syncs(path: &Path) {
        SLOW_SYNCS.lock().unwrap().retain(|(p, _)| p != path);
    }

    /// A commit's sync runs after the writer is handed on: the next write
    /// commits while it runs; a read that may see the commit answers only once
    /// it is on disk; a peek (whose result stays in the process) does not wait.
    #[test]
    fn reads_wait_for_the_sync_of_what_they_see_and_writers_do_not() {
        let delay = Duration::from_millis(1200);
        let (_dir, path, b, _serving) = serving_with_slow_syncs(delay);

        let started = std::time::Instant::now();
        let first = std::thread::spawn({
            let b = Arc::clone(&b);
            move || {
                set_meta(&b, "k", "first");
                started.elapsed()
            }
        });
        // The first write has committed; its sync is under way.
        let mut seen = None;
        while started.elapsed() < delay / 2 {
            seen = get_meta(&b, Mode::Peek, "k");
            if seen.as_deref() == Some("first") {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(seen.as_deref(), Some("first"), "the commit is not visible");
        let peeked_at = started.elapsed();
        assert!(peeked_at < delay, "the peek waited for the sync");
        assert!(
            b.durability
                .durable
                .load(std::sync::atomic::Ordering::SeqCst)
                < 2,
            "the first write's sync is already done: the test proves nothing"
        );

        // The writer is free: a second write commits while the first syncs.
        let second = std::thread::spawn({
            let b = Arc::clone(&b);
            move || set_meta(&b, "other", "second")
        });
        let mut second_seen = false;
        while started.elapsed() < delay {
            if get_meta(&b, Mode::Peek, "other").is_some() {
                second_seen = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            second_seen,
            "the second write waited for the first one's sync"
        );

        // A read answers only once what it saw is on disk.
        assert_eq!(get_meta(&b, Mode::Read, "k").as_deref(), Some("first"));
        let read_at = started.elapsed();
        assert!(
            b.durability
                .durable
                .load(std::sync::atomic::Ordering::SeqCst)
                >= b.durability
                    .committing
                    .load(std::sync::atomic::Ordering::SeqCst),
            "a read answered before the commits it may have seen were synced"
        );
        assert!(read_at >= delay, "the read did not wait: {read_at:?}");
        let written_at = first.join().unwrap();
        assert!(written_at >= delay, "the write answered before its sync");
        second.join().unwrap();
        fast_syncs(&path);
    }

    /// When the writer that just did its work commits for its group.
    #[test]
    fn a_group_commits_when_nobody_waits_when_full_and_early_when_the_disk_is_idle() {
        let group = |waiting: usize, members: usize| WriteGroup {
            open: true,
            epoch: 1,
            members,
            waiting,
            outcomes: Default::default(),
        };
        // (waiting, members, kept, disk idle) → commits now
        let table = [
            ((0, 1, true, false), true),
            ((0, 1, true, true), true),
            ((3, 1, true, true), false),
            ((3, EARLY_GROUP - 1, true, true), false),
            ((3, EARLY_GROUP, true, true), true),
            ((3, EARLY_GROUP, true, false), false),
            ((3, MAX_GROUP - 1, true, false), false),
            ((3, MAX_GROUP, true, false), true),
            ((3, 2, false, false), true),
        ];
        for ((waiting, members, kept, idle), commits) in table {
            assert_eq!(
                group(waiting, members).ends(kept, idle),
                commits,
                "waiting {waiting}, members {members}, kept {kept}, disk idle {idle}"
            );
        }
    }

    /// A write then a read of it ([`Mode::WriteThenRead`]): the write returns
    /// once committed, while its sync runs; the read that follows sees it and
    /// returns only once that sync is done. A plain write returns after it.
    #[test]
    fn a_write_then_read_reads_during_the_sync_and_answers_after_it() {
        let delay = Duration::from_millis(800);
        let (_dir, path, b, _serving) = serving_with_slow_syncs(delay);

        // A group of two: the first member waits for the second to commit
        // (and sync) for both.
        let started = std::time::Instant::now();
        let (joined_tx, joined_rx) = std::sync::mpsc::channel::<()>();
        let member = std::thread::spawn({
            let store = crate::store::Store::new(Box::new(crate::instance::Database::Sqlite(
                Arc::clone(&b),
            )));
            move || {
                let out = store.write_then_read(
                    |tx| {
                        tx.meta_set("k", "member")?;
                        // Another writer joins before this one leaves the writer.
                        joined_rx.recv_timeout(Duration::from_secs(5))?;
                        Ok(())
                    },
                    |tx, _| {
                        let read_at = started.elapsed();
                        Ok((tx.meta_get("k")?, read_at))
                    },
                );
                (out.unwrap().1.unwrap(), started.elapsed())
            }
        });
        let committer = std::thread::spawn({
            let b = Arc::clone(&b);
            move || {
                // Wait until the member's group is open, then queue behind it.
                while !b.group.lock().unwrap().open {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let waiting = std::thread::spawn({
                    let b = Arc::clone(&b);
                    move || {
                        set_meta(&b, "other", "x");
                        started.elapsed()
                    }
                });
                while b.group.lock().unwrap().waiting == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                joined_tx.send(()).unwrap();
                waiting.join().unwrap()
            }
        });
        let ((seen, read_at), answered_at) = member.join().unwrap();
        let written_at = committer.join().unwrap();
        fast_syncs(&path);
        // The member read its own write before the group's sync was done...
        assert_eq!(seen.as_deref(), Some("member"));
        assert!(read_at < delay, "the read waited for the sync: {read_at:?}");
        // ...and answered only after it, as the plain write did.
        assert!(
            answered_at >= delay,
            "answered before the sync: {answered_at:?}"
        );
        assert!(
            written_at >= delay,
            "the write returned before its sync: {written_at:?}"
        );
        assert_eq!(
            crate::store::Store::new(Box::new(crate::instance::Database::Sqlite(Arc::clone(&b))))
                .read(|tx| Ok(tx.meta_get("other")?))
                .unwrap()
                .as_deref(),
            Some("x")
        );
    }
}
