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

/// Run SQL statements against a database behind the tool's back; a failure is
/// returned as SQLite's message.
pub fn try_sql(db: &Path, sql: &str) -> Result<(), String> {
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
        Env {
            dir: tempfile::tempdir().expect("temp dir"),
        }
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
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
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
        use std::io::Write;
        let mut child = self
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn objectos");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().expect("wait").into()
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
