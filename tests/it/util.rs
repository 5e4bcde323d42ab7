//! The harness: the real binary in a temp dir with a clean environment.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_objectos");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> PathBuf {
    repo().join("fixtures").join(rel)
}

/// Whether an external tool is here, for the interop tests that check objectos
/// against the real tool. With `OBJECTOS_REQUIRE_INTEROP=1` (CI), a missing tool
/// fails the test. Without it, the test goes on without the part that needs the
/// tool and says so loudly: the warning is written straight to the process's
/// stderr, past the test harness's output capture, so it shows even when the test
/// passes.
/// The Python of the venv scripts/setup makes, once it can import `modules`
/// (e.g. `"mcp, pexpect"`); otherwise what `have_interop` says of it.
pub fn venv_python(modules: &str) -> Option<PathBuf> {
    let py = repo().join("target/interop/venv/bin/python");
    let problem = if !py.exists() {
        Some("target/interop/venv does not exist".to_string())
    } else {
        let out = Command::new(&py)
            .args(["-c", &format!("import {modules}")])
            .output()
            .expect("run the venv's python");
        (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).into_owned())
    };
    have_interop(&format!("{modules} (target/interop/venv)"), problem).then_some(py)
}

pub fn have_tool(name: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if found {
        return true;
    }
    let current = std::thread::current();
    let test = match current.name() {
        Some(name) if name != "main" => name.to_string(),
        _ => "this test".to_string(),
    };
    if std::env::var("OBJECTOS_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!(
            "{test} needs `{name}` (OBJECTOS_REQUIRE_INTEROP=1), which is not installed; install it (scripts/setup)"
        );
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n!!!!!!!!!!\nWARNING: NOT TESTED: {test} needs `{name}`, which is not installed; \
         install it (scripts/setup) or set OBJECTOS_REQUIRE_INTEROP=1 to make this a failure\n!!!!!!!!!!"
    );
    false
}

/// `have_tool` for an interop dependency that is not a command on PATH (the
/// project-local Node and client SDK scripts/setup installs): `problem` is `None`
/// when it is usable, else what is wrong. Same convention: a failure with
/// `OBJECTOS_REQUIRE_INTEROP=1`, else a loud warning past the output capture.
pub fn have_interop(name: &str, problem: Option<String>) -> bool {
    let Some(problem) = problem else {
        return true;
    };
    let current = std::thread::current();
    let test = match current.name() {
        Some(name) if name != "main" => name.to_string(),
        _ => "this test".to_string(),
    };
    if std::env::var("OBJECTOS_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!(
            "{test} needs {name} (OBJECTOS_REQUIRE_INTEROP=1), which is not usable: {problem}; install it (scripts/setup)"
        );
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n!!!!!!!!!!\nWARNING: NOT TESTED: {test} needs {name}, which is not usable: {problem}; \
         install it (scripts/setup) or set OBJECTOS_REQUIRE_INTEROP=1 to make this a failure\n!!!!!!!!!!"
    );
    false
}

/// A data dir's database, opened behind the tool's back. It must exist (nothing is
/// created by accident); a busy timeout lets a running server hold the file.
pub fn db_open(db: &Path) -> rusqlite::Connection {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|e| panic!("open {}: {e}", db.display()));
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    conn
}

/// The PostgreSQL database of the data dir holding `db` (its `database.json`),
/// if it has one.
pub fn pg_database_of(db: &Path) -> Option<String> {
    let config = db.parent()?.join("database.json");
    let text = std::fs::read_to_string(config).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let url = json["url"].as_str()?;
    let path = url.split('?').next()?;
    Some(path.rsplit('/').next()?.to_string())
}

/// Run SQL statements against a database behind the tool's back; a failure is
/// returned as the database's message. A data dir on PostgreSQL is reached
/// through its `database.json`, as the database's superuser.
pub fn try_sql(db: &Path, sql: &str) -> Result<(), String> {
    if let Some(name) = pg_database_of(db) {
        return pg_server().try_psql(&name, sql).map(|_| ());
    }
    db_open(db).execute_batch(sql).map_err(|e| e.to_string())
}

/// Run SQL statements against a database behind the tool's back.
#[track_caller]
pub fn sql(db: &Path, sql: &str) {
    if let Err(e) = try_sql(db, sql) {
        panic!("{sql}\n{}: {e}", db.display());
    }
}

/// One query's rows, each value as text: integers and reals as Rust prints them,
/// text as is, NULL as `NULL`, blobs as hex.
pub fn sql_query(db: &Path, sql: &str) -> Vec<Vec<String>> {
    use rusqlite::types::ValueRef;
    if let Some(name) = pg_database_of(db) {
        let out = Command::new(pg_server().bin.join("psql"))
            .args(["-h", &pg_server().socket, "-p", &pg_server().port])
            .args([
                "-U",
                "postgres",
                "-d",
                &name,
                "-qAt",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .args(["-F", "\u{1f}", "-P", "null=NULL", "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "{sql}\n{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                l.split('\u{1f}')
                    .map(|v| match v {
                        "t" => "1".to_string(),
                        "f" => "0".to_string(),
                        v => v.to_string(),
                    })
                    .collect()
            })
            .collect();
    }
    let run = || -> rusqlite::Result<Vec<Vec<String>>> {
        let conn = db_open(db);
        let mut stmt = conn.prepare(sql)?;
        let width = stmt.column_count();
        let rows = stmt.query_map([], |row| {
            (0..width)
                .map(|i| {
                    Ok(match row.get_ref(i)? {
                        ValueRef::Null => "NULL".to_string(),
                        ValueRef::Integer(n) => n.to_string(),
                        ValueRef::Real(x) => x.to_string(),
                        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                        ValueRef::Blob(b) => hex::encode(b),
                    })
                })
                .collect()
        })?;
        rows.collect()
    };
    run().unwrap_or_else(|e| panic!("{sql}\n{}: {e}", db.display()))
}

pub struct Env {
    pub dir: tempfile::TempDir,
    /// The database of this environment's instance when the suite runs on
    /// PostgreSQL (`OBJECTOS_TEST_DATABASE=postgres`): `init` makes the
    /// instance there (through `OBJECTOS_DATABASE_URL`).
    pub pg: Option<PgDb>,
}

/// Whether the suite runs on PostgreSQL (`OBJECTOS_TEST_DATABASE=postgres`);
/// else on SQLite, the default.
pub fn on_postgres() -> bool {
    match std::env::var("OBJECTOS_TEST_DATABASE").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Ok("") | Err(_) => false,
        Ok(other) => panic!("OBJECTOS_TEST_DATABASE={other}: expected `sqlite` or `postgres`"),
    }
}

/// The private PostgreSQL of the tests, started once by `scripts/pg start`.
pub struct PgServer {
    /// The CA that signed the server's TLS certificate.
    pub ca: PathBuf,
    /// A CA that signed nothing of this server's.
    pub other_ca: PathBuf,
    pub host: String,
    pub port: String,
    pub socket: String,
    pub bin: PathBuf,
}

/// The password of the `objectos` role scripts/pg makes.
pub const PG_PASSWORD: &str = "objectos-test";

pub fn pg_server() -> &'static PgServer {
    static SERVER: std::sync::OnceLock<PgServer> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| {
        let out = Command::new(repo().join("scripts/pg"))
            .arg("start")
            .output()
            .expect("run scripts/pg");
        assert!(
            out.status.success(),
            "scripts/pg start failed (PostgreSQL is needed for these tests; run scripts/setup):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("scripts/pg printed no {key}: {text}"))
                .to_string()
        };
        PgServer {
            ca: PathBuf::from(get("OBJECTOS_PG_CA")),
            other_ca: PathBuf::from(get("OBJECTOS_PG_OTHER_CA")),
            host: get("OBJECTOS_PG_HOST"),
            port: get("OBJECTOS_PG_PORT"),
            socket: get("OBJECTOS_PG_SOCKET"),
            bin: PathBuf::from(get("OBJECTOS_PG_BIN")),
        }
    })
}

impl PgServer {
    /// Run SQL as the superuser (over the socket); its output, or the error.
    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                &self.socket,
                "-p",
                &self.port,
                "-U",
                "postgres",
                "-d",
                db,
            ])
            .args(["-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("run psql");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    #[track_caller]
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql)
            .unwrap_or_else(|e| panic!("{sql}\n{db}: {e}"))
    }

    /// A new, empty database owned by the `objectos` role.
    pub fn create_db(&'static self) -> PgDb {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("t{}_{n}_{}", std::process::id(), uuid_ish());
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {name} OWNER objectos"),
        );
        PgDb {
            url: format!(
                "postgres://objectos@{}:{}/{name}?sslmode=disable",
                self.host, self.port
            ),
            name,
            server: self,
        }
    }
}

fn uuid_ish() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{nanos:x}")
}

/// One test's database, dropped with it.
pub struct PgDb {
    pub name: String,
    pub url: String,
    pub server: &'static PgServer,
}

impl PgDb {
    #[track_caller]
    pub fn psql(&self, sql: &str) -> String {
        self.server.psql(&self.name, sql)
    }

    pub fn try_psql(&self, sql: &str) -> Result<String, String> {
        self.server.try_psql(&self.name, sql)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = self.server.try_psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Env {
    pub fn new() -> Env {
        Env::with_pg(on_postgres().then(|| pg_server().create_db()))
    }

    /// An environment on SQLite whatever the suite runs on, for the tests of
    /// what only SQLite has (its file, its PRAGMAs, `backup` of it).
    pub fn sqlite() -> Env {
        Env {
            dir: tempfile::tempdir().expect("temp dir"),
            pg: None,
        }
    }

    /// An environment on PostgreSQL whatever the suite runs on.
    pub fn postgres() -> Env {
        Env::with_pg(Some(pg_server().create_db()))
    }

    /// The role's password is in `~/.pgpass` (the commands' `HOME` is the
    /// temp dir), as an operator would keep it.
    fn with_pg(pg: Option<PgDb>) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        if pg.is_some() {
            use std::os::unix::fs::PermissionsExt;
            let pgpass = dir.path().join(".pgpass");
            std::fs::write(
                &pgpass,
                format!("*:*:*:objectos:{PG_PASSWORD}\n*:*:*:objectos_app:{PG_PASSWORD}\n"),
            )
            .unwrap();
            std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        Env { dir, pg }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// The data dir's database.
    pub fn db(&self) -> PathBuf {
        self.path("data/objectos.db")
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    /// The binary, run in the temp dir with nothing of the caller's environment.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("NO_COLOR", "1")
            .env("OBJECTOS_DATA_DIR", self.path("data"))
            .stdin(Stdio::null());
        if let Some(pg) = &self.pg {
            cmd.env("OBJECTOS_DATABASE_URL", &pg.url);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        // The bench smoke test (bench.rs) runs cargo, which may put the binary
        // back in place while another test starts it: a moment of NotFound.
        for _ in 0..100 {
            match self.cmd().args(args).output() {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::thread::sleep(std::time::Duration::from_millis(100))
                }
                other => return other.expect("run objectos").into(),
            }
        }
        self.cmd().args(args).output().expect("run objectos").into()
    }

    /// Run with the clock moved `seconds` ahead (debug builds honour
    /// `OBJECTOS_TEST_CLOCK_SKEW`), so expiry tests need not sleep.
    pub fn run_later(&self, seconds: i64, args: &[&str]) -> Run {
        self.cmd()
            .env("OBJECTOS_TEST_CLOCK_SKEW", seconds.to_string())
            .args(args)
            .output()
            .expect("run objectos")
            .into()
    }

    pub fn run_in(&self, args: &[&str], stdin: &str) -> Run {
        self.output_with(args, stdin.as_bytes()).into()
    }

    /// Run objectos with `stdin` as its standard input (written on a thread
    /// of its own: a command that reads nothing does not block the test), and
    /// keep its output as bytes.
    pub fn output_with(&self, args: &[&str], stdin: &[u8]) -> std::process::Output {
        use std::io::Write;
        let mut child = self
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn objectos");
        let mut pipe = child.stdin.take().unwrap();
        let input = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait");
        writer.join().unwrap();
        out
    }

    /// Run another program in the temp dir.
    pub fn tool(&self, program: &str, args: &[&str]) -> Run {
        Command::new(program)
            .current_dir(self.dir.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"))
            .into()
    }

    pub fn tool_in(&self, program: &str, args: &[&str], stdin: &str) -> Run {
        use std::io::Write;
        let mut child = Command::new(program)
            .current_dir(self.dir.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap().into()
    }

    /// Build the CRM fixture into `artifact.json`, make an unencrypted key `signer`, sign.
    pub fn signed_crm(&self) -> (PathBuf, PathBuf) {
        self.run(&[
            "build",
            fixture("crm").to_str().unwrap(),
            "-o",
            "artifact.json",
        ])
        .ok();
        self.run(&["keygen", "-o", "signer", "--unencrypted"]).ok();
        self.run(&["sign", "artifact.json", "-k", "signer"]).ok();
        (self.path("artifact.json"), self.path("signer.pub"))
    }

    /// A data dir running `app` (an app's JSON source): built, signed with a
    /// fresh key named `NAME-key`, trusted, applied, and bootstrapped with
    /// `admin` (password `crate::store::PASSWORD`). Returns the admin's key.
    pub fn with_app(&self, name: &str, app: &serde_json::Value, admin: &str) -> String {
        let (source, artifact, key) = (
            format!("{name}.json"),
            format!("{name}-artifact.json"),
            format!("{name}-key"),
        );
        self.write(&source, app.to_string());
        self.run(&["build", &source, "-o", &artifact]).ok();
        self.run(&["keygen", "-o", &key, "--unencrypted"]).ok();
        self.run(&["sign", &artifact, "-k", &key]).ok();
        self.run(&["init"]).ok();
        self.run(&["trust", "add", &format!("{key}.pub")]).ok();
        self.run(&["apply", &artifact, "-y"]).ok();
        self.write("pw", format!("{}\n", crate::store::PASSWORD));
        self.run(&["bootstrap", "--admin-email", admin, "--password-file", "pw"])
            .ok()
            .stdout
            .trim()
            .to_string()
    }
}

/// Copy a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `objectos serve` on a free loopback port, stopped with SIGTERM.
pub struct Server {
    pub child: Option<std::process::Child>,
    pub base: String,
    pub log: PathBuf,
    pub client: reqwest::blocking::Client,
}

impl Server {
    pub fn start(env: &Env) -> Server {
        Server::start_with(env, &[])
    }

    pub fn start_with(env: &Env, extra: &[&str]) -> Server {
        Server::start_env(env, extra, &[])
    }

    /// With extra environment variables (`OBJECTOS_TEST_CLOCK_SKEW`, say).
    pub fn start_env(env: &Env, extra: &[&str], vars: &[(&str, &str)]) -> Server {
        let log = env.path(&format!("serve-{}.log", uuid_like()));
        let err = std::fs::File::create(&log).unwrap();
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut cmd = env.cmd();
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let child = cmd
            .args(&args)
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn serve");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let addr = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(at) = text.find("addr=") {
                let rest = &text[at + 5..];
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .trim_matches('"')
                    .to_string();
            }
            if let Some(at) = text.find("\"addr\":\"") {
                let rest = &text[at + 8..];
                break rest.split('"').next().unwrap().to_string();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "serve did not start:\n{text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        Server {
            child: Some(child),
            base: format!("http://{addr}"),
            log,
            client: reqwest::blocking::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    /// (status, JSON body or Null, raw body)
    pub fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let resp = req.send().expect("request");
        let status = resp.status().as_u16();
        let raw = resp.text().unwrap_or_default();
        let json = serde_json::from_str(&raw).unwrap_or(serde_json::Value::Null);
        (status, json, raw)
    }

    pub fn get(&self, path: &str, key: &str) -> (u16, serde_json::Value, String) {
        self.call("GET", path, Some(key), None)
    }

    /// SIGTERM and wait; returns (exit code, log).
    pub fn stop(mut self) -> (i32, String) {
        let mut child = self.child.take().unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = child.wait().unwrap();
        (
            status.code().unwrap_or(-1),
            std::fs::read_to_string(&self.log).unwrap_or_default(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
