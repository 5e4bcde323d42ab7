//! PocketBase, the peer, set up as its docs advise for the same job: users as
//! its auth collection, a collection whose list and view rule is "owner or
//! closed-won", indexes on (owner, stage) and stage, the request log off
//! (`logs.maxDays = 0`), and the data loaded through its batch API.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::Options;
use crate::data::Dataset;
use crate::proc::{self, Server};
use crate::wrk::Target;

const COLLECTION: &str = "opportunities";
const BASE_RULE: &str = r#"owner = @request.auth.id || stage = "closed_won""#;
/// The peer of objectos's extra rule (large deals in negotiation, to everyone).
const EXTRA_RULE: &str = r#"owner = @request.auth.id || stage = "closed_won" || (stage = "negotiation" && amount >= 900000)"#;
const LIST_QUERY: &str = "filter=(stage%3D%27prospecting%27)&sort=-amount&perPage=20&skipTotal=1";
pub const LIST_UNSORTED_QUERY: &str = "filter=(stage%3D%27prospecting%27)&perPage=20&skipTotal=1";
pub const LIST_ALL_QUERY: &str = "perPage=20&skipTotal=1";
const BATCH: usize = 500;
const SUPERUSER: &str = "admin@bench.example";
const SUPERUSER_PASSWORD: &str = "bench-superuser-1234";

#[derive(Debug)]
pub struct Site {
    bin: PathBuf,
    dir: PathBuf,
    data: PathBuf,
    server: Option<Server>,
    superuser_token: String,
    user_ids: Vec<String>,
    target: Option<Target>,
    http: reqwest::blocking::Client,
    /// `pocketbase --version`.
    pub version: String,
    /// How PocketBase opens SQLite, read from its binary.
    pub durability: String,
}

impl Site {
    pub fn create(opts: &Options, bin: &std::path::Path, dataset: &Dataset) -> Result<Site> {
        let dir = crate::subdir(&opts.work, "pocketbase")?;
        let mut site = Site {
            bin: bin.to_path_buf(),
            data: dir.join("pb_data"),
            dir,
            server: None,
            superuser_token: String::new(),
            user_ids: Vec::new(),
            target: None,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(600))
                .build()?,
            version: proc::version(&bin.to_string_lossy(), "--version"),
            durability: durability(bin),
        };
        proc::output(
            Command::new(bin)
                .args(["superuser", "upsert", SUPERUSER, SUPERUSER_PASSWORD])
                .args(site.dir_args())
                .current_dir(&site.dir),
        )?;
        site.start()?;
        let auth = site.call(
            "POST",
            "/api/collections/_superusers/auth-with-password",
            None,
            Some(json!({"identity": SUPERUSER, "password": SUPERUSER_PASSWORD})),
        )?;
        site.superuser_token = auth["token"]
            .as_str()
            .context("no superuser token")?
            .to_string();
        site.admin(
            "PATCH",
            "/api/settings",
            json!({
                "logs": {"maxDays": 0},
                "batch": {"enabled": true, "maxRequests": BATCH, "timeout": 60, "maxBodySize": 0}
            }),
        )?;
        let users = site.admin_get("/api/collections/users")?;
        let users_id = users["id"].as_str().context("no users collection")?;
        site.admin(
            "POST",
            "/api/collections",
            json!({
                "name": COLLECTION,
                "type": "base",
                "listRule": BASE_RULE,
                "viewRule": BASE_RULE,
                "createRule": r#"@request.auth.id != "" && owner = @request.auth.id"#,
                "updateRule": "owner = @request.auth.id",
                "deleteRule": "owner = @request.auth.id",
                "fields": [
                    {"name": "name", "type": "text", "required": true, "max": 120},
                    {"name": "amount", "type": "number", "min": 0},
                    {"name": "stage", "type": "select", "required": true, "maxSelect": 1,
                     "values": ["prospecting", "proposal", "negotiation", "closed_won", "closed_lost"]},
                    {"name": "region", "type": "select", "maxSelect": 1, "values": ["amer", "emea", "apac"]},
                    {"name": "close_date", "type": "date"},
                    {"name": "discount_note", "type": "text", "max": 4000},
                    {"name": "owner", "type": "relation", "required": true, "maxSelect": 1,
                     "collectionId": users_id, "cascadeDelete": false},
                    {"name": "created", "type": "autodate", "onCreate": true, "onUpdate": false},
                    {"name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true}
                ],
                "indexes": [
                    format!("CREATE INDEX idx_{COLLECTION}_owner_stage ON {COLLECTION} (owner, stage)"),
                    format!("CREATE INDEX idx_{COLLECTION}_stage ON {COLLECTION} (stage)")
                ]
            }),
        )?;
        let requests: Vec<Value> = dataset
            .users
            .iter()
            .map(|email| {
                json!({"method": "POST", "url": "/api/collections/users/records", "body": {
                    "email": email, "password": dataset.password,
                    "passwordConfirm": dataset.password, "verified": true, "name": email
                }})
            })
            .collect();
        for chunk in requests.chunks(BATCH) {
            let answers = site.batch(chunk)?;
            for answer in answers {
                site.user_ids.push(
                    answer["body"]["id"]
                        .as_str()
                        .context("a created user without id")?
                        .to_string(),
                );
            }
        }
        site.stop()?;
        Ok(site)
    }

    fn dir_args(&self) -> Vec<String> {
        let d = |name: &str| self.dir.join(name).to_string_lossy().to_string();
        vec![
            format!("--dir={}", d("pb_data")),
            format!("--migrationsDir={}", d("pb_migrations")),
            format!("--hooksDir={}", d("pb_hooks")),
            format!("--publicDir={}", d("pb_public")),
            "--automigrate=false".to_string(),
        ]
    }

    pub fn start(&mut self) -> Result<()> {
        if self.server.is_some() {
            return Ok(());
        }
        let mut last = None;
        for attempt in 0..3 {
            let port = proc::free_port()?;
            let mut cmd = Command::new(&self.bin);
            cmd.arg("serve")
                .arg(format!("--http=127.0.0.1:{port}"))
                .args(self.dir_args())
                .current_dir(&self.dir);
            let log = self.dir.join(format!("serve-{attempt}.log"));
            match Server::start(cmd, format!("http://127.0.0.1:{port}"), "/api/health", &log) {
                Ok(server) => {
                    self.server = Some(server);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("pocketbase serve did not start")))
    }

    pub fn stop(&mut self) -> Result<()> {
        match self.server.take() {
            Some(server) => server.stop(),
            None => Ok(()),
        }
    }

    fn server(&self) -> Result<&Server> {
        self.server
            .as_ref()
            .context("pocketbase serve is not running")
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.data
    }

    pub fn pid(&self) -> Result<u32> {
        Ok(self.server()?.pid())
    }

    /// One request; the JSON answer, or an error naming the status and body.
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Value> {
        let url = format!("{}{path}", self.server()?.base);
        let mut req = self
            .http
            .request(reqwest::Method::from_bytes(method.as_bytes())?, &url);
        if let Some(token) = token {
            req = req.header("Authorization", token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().with_context(|| format!("{method} {url}"))?;
        let status = resp.status();
        let text = resp.text()?;
        if !status.is_success() {
            bail!("PocketBase: {method} {path}: {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn admin(&self, method: &str, path: &str, body: Value) -> Result<Value> {
        self.call(method, path, Some(&self.superuser_token), Some(body))
    }

    fn admin_get(&self, path: &str) -> Result<Value> {
        self.call("GET", path, Some(&self.superuser_token), None)
    }

    /// One batch (one transaction); every answer must be a success.
    fn batch(&self, requests: &[Value]) -> Result<Vec<Value>> {
        let answers = self.admin("POST", "/api/batch", json!({ "requests": requests }))?;
        let answers = answers
            .as_array()
            .context("the batch API answered no list")?
            .clone();
        if let Some(bad) = answers
            .iter()
            .find(|a| !(200..300).contains(&a["status"].as_u64().unwrap_or(0)))
        {
            bail!("PocketBase: a batch request failed: {bad}");
        }
        Ok(answers)
    }

    /// Loads records `from..to` through the batch API as the superuser, with a
    /// fresh server (so its peak memory under load is not the load's); the
    /// seconds the batches took.
    pub fn load(&mut self, dataset: &Dataset, from: usize, to: usize) -> Result<f64> {
        self.stop()?;
        self.start()?;
        let path = format!("/api/collections/{COLLECTION}/records");
        let started = Instant::now();
        let mut i = from;
        while i < to {
            let end = (i + BATCH).min(to);
            let requests: Vec<Value> = (i..end)
                .map(|n| {
                    let d = dataset.deal(n);
                    json!({"method": "POST", "url": path, "body": {
                        "name": d.name, "amount": d.amount, "stage": d.stage, "region": d.region,
                        "close_date": format!("{} 00:00:00.000Z", d.close_date),
                        "discount_note": d.discount_note, "owner": self.user_ids[d.owner],
                    }})
                })
                .collect();
            self.batch(&requests)?;
            i = end;
        }
        let secs = started.elapsed().as_secs_f64();
        self.stop()?;
        Ok(secs)
    }

    /// The wrk target: every user's auth token with ten records of their own.
    pub fn credentials(&mut self, dataset: &Dataset) -> Result<Target> {
        let base = self.server()?.base.clone();
        if let Some(t) = &self.target {
            return Ok(Target { base, ..t.clone() });
        }
        let path = self.dir.join("credentials.tsv");
        let mut out = String::new();
        for (u, email) in dataset.users.iter().enumerate() {
            let auth = self.call(
                "POST",
                "/api/collections/users/auth-with-password",
                None,
                Some(json!({"identity": email, "password": dataset.password})),
            )?;
            let token = auth["token"].as_str().context("no user token")?.to_string();
            let owner = &self.user_ids[u];
            let page = self.call(
                "GET",
                &format!(
                    "/api/collections/{COLLECTION}/records?filter=(stage%3D%27proposal%27%26%26owner%3D%27{owner}%27)&perPage=10&skipTotal=1"
                ),
                Some(&token),
                None,
            )?;
            let ids: Vec<&str> = page["items"]
                .as_array()
                .context("a list without `items`")?
                .iter()
                .filter_map(|r| r["id"].as_str())
                .collect();
            if ids.is_empty() {
                bail!("{email} owns no `proposal` deal in PocketBase");
            }
            for id in ids {
                out.push_str(&format!("{token}\t{owner}\t{id}\n"));
            }
        }
        std::fs::write(&path, out)?;
        let target = Target {
            name: "PocketBase",
            base,
            credentials: path,
            auth: "",
            list_path: format!("/api/collections/{COLLECTION}/records?{LIST_QUERY}"),
            list_unsorted_path: format!(
                "/api/collections/{COLLECTION}/records?{LIST_UNSORTED_QUERY}"
            ),
            list_all_path: format!("/api/collections/{COLLECTION}/records?{LIST_ALL_QUERY}"),
            get_path: format!("/api/collections/{COLLECTION}/records/{{id}}"),
            create_path: format!("/api/collections/{COLLECTION}/records"),
            create_body: json!({
                "name": "Created {n}",
                "amount": 5000,
                "stage": "prospecting",
                "region": "emea",
                "close_date": "2026-06-30 00:00:00.000Z",
                "discount_note": "none",
                "owner": "{owner}",
            })
            .to_string(),
        };
        self.target = Some(target.clone());
        Ok(target)
    }

    /// Switches the list and view rule to the peer of objectos's extra sharing rule.
    pub fn set_extra_rule(&mut self, on: bool) -> Result<()> {
        let rule = if on { EXTRA_RULE } else { BASE_RULE };
        self.admin(
            "PATCH",
            &format!("/api/collections/{COLLECTION}"),
            json!({"listRule": rule, "viewRule": rule}),
        )?;
        Ok(())
    }

    pub fn count(&self) -> Result<u64> {
        let page = self.admin_get(&format!("/api/collections/{COLLECTION}/records?perPage=1"))?;
        page["totalItems"]
            .as_u64()
            .context("a list without `totalItems`")
    }
}

/// PocketBase opens SQLite with a DSN of `_pragma=…` settings; its synchronous
/// one says whether a commit waits for the disk.
fn durability(bin: &std::path::Path) -> String {
    let Ok(bytes) = std::fs::read(bin) else {
        return "unknown (cannot read its binary)".to_string();
    };
    let needle = b"_pragma=synchronous(";
    let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) else {
        return "unknown (no synchronous pragma found in its binary)".to_string();
    };
    let rest = &bytes[at + needle.len()..];
    let value: String = rest
        .iter()
        .take_while(|&&b| b != b')')
        .map(|&b| b as char)
        .collect();
    let journal = if bytes.windows(22).any(|w| w == b"_pragma=journal_mode(W") {
        "WAL"
    } else {
        "its default journal"
    };
    format!(
        "SQLite in {journal} mode with synchronous={value}{}",
        if value.eq_ignore_ascii_case("NORMAL") {
            ": a commit is safe from a crash of the process but not of the machine (WAL is not fsynced per commit), where objectos fsyncs every commit before it answers"
        } else {
            ""
        }
    )
}
