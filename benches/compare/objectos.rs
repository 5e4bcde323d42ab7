//! objectos as a site would run it: the app of `benches/app/` built, signed and
//! applied; users, teams and API keys made with the CLI; records loaded with
//! `objectos import --as` their owner (validated and audited, one row each);
//! `objectos serve` with its request log off, as PocketBase's is.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::Options;
use crate::data::Dataset;
use crate::proc::{self, Server};
use crate::wrk::Target;

pub const OBJECT: &str = "bench_opportunity";
/// The list of workload (a): a rep's prospecting deals (own, or closed-won and
/// so shared, which the filter rules out), largest first.
pub const LIST_QUERY: &str = "filter=%7B%22stage%22%3A%22prospecting%22%7D&sort=-amount&limit=20";
pub const LIST_UNSORTED_QUERY: &str = "filter=%7B%22stage%22%3A%22prospecting%22%7D&limit=20";
pub const LIST_ALL_QUERY: &str = "limit=20";
/// The teams of the "user in 10 teams" case, besides `everyone`.
const EXTRA_TEAMS: usize = 9;

/// Which version of the app is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppVariant {
    /// `benches/app/` as it is: one sharing rule (closed-won to everyone).
    Base,
    /// One more rule: large deals in negotiation, to everyone.
    ExtraRule,
    /// Every user in 10 teams, each the recipient of one rule.
    TenTeams,
}

#[derive(Debug)]
pub struct Site {
    bin: PathBuf,
    dir: PathBuf,
    /// PostgreSQL instead of SQLite (its password from `PGPASSWORD`).
    database_url: Option<String>,
    /// A second `serve` on the same database (PostgreSQL only).
    second: Option<Server>,
    app: PathBuf,
    server: Option<Server>,
    /// The reps, in the data set's order.
    emails: Vec<String>,
    pub user_keys: Vec<String>,
    pub agent_key: String,
    pub manager_key: String,
    version: u32,
    variant: AppVariant,
    target: Option<Target>,
}

impl Site {
    pub fn create(opts: &Options, dataset: &Dataset) -> Result<Site> {
        Site::create_in(opts, dataset, "objectos", None)
    }

    /// A site in `WORK/name`, on PostgreSQL when `database_url` is given.
    pub fn create_in(
        opts: &Options,
        dataset: &Dataset,
        name: &str,
        database_url: Option<&str>,
    ) -> Result<Site> {
        let dir = crate::subdir(&opts.work, name)?;
        let mut site = Site {
            bin: opts.objectos_bin.clone(),
            dir: dir.clone(),
            database_url: database_url.map(str::to_string),
            second: None,
            app: opts.repo.join("benches/app"),
            server: None,
            emails: dataset.users.clone(),
            user_keys: Vec::new(),
            agent_key: String::new(),
            manager_key: String::new(),
            version: 0,
            variant: AppVariant::Base,
            target: None,
        };
        site.cli(&["keygen", "-o", "signing.key", "--unencrypted"])?;
        site.cli(&["init"])?;
        site.cli(&["trust", "add", "signing.key.pub"])?;
        site.apply(AppVariant::Base)?;
        std::fs::write(dir.join("admin-pw"), "bench admin password 1234\n")?;
        site.cli(&[
            "bootstrap",
            "--admin-email",
            "admin@bench.example",
            "--password-file",
            "admin-pw",
        ])?;
        site.cli(&["team", "add", "everyone"])?;
        for email in &dataset.users {
            site.cli(&["user", "add", email, "--no-password"])?;
            site.cli(&["permset", "assign", "sales_rep", email])?;
            site.cli(&["team", "add-member", "everyone", email])?;
            let key = site.cli(&["apikey", "create", email])?;
            site.user_keys.push(key);
        }
        let manager = &dataset.manager;
        site.cli(&["user", "add", manager, "--no-password"])?;
        site.cli(&["permset", "assign", "sales_manager", manager])?;
        site.manager_key = site.cli(&["apikey", "create", manager])?;
        site.agent_key = site.cli(&["apikey", "create", &dataset.users[0], "--agent"])?;
        Ok(site)
    }

    /// Runs the CLI on this site's data dir; its stdout.
    fn cli(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-q")
            .args(args)
            .current_dir(&self.dir)
            .env("OBJECTOS_DATA_DIR", self.dir.join("data"))
            .env_remove("OBJECTOS_API_KEY")
            .env_remove("OBJECTOS_DATABASE_URL");
        if let Some(url) = &self.database_url {
            cmd.env("OBJECTOS_DATABASE_URL", url);
        }
        proc::output(&mut cmd)
    }

    /// Builds, signs and applies a version of the app (a new version number each time).
    fn apply(&mut self, variant: AppVariant) -> Result<()> {
        self.version += 1;
        let src = self.dir.join(format!("app-{}", self.version));
        std::fs::create_dir_all(&src)?;
        for entry in std::fs::read_dir(&self.app)
            .with_context(|| format!("cannot read {}", self.app.display()))?
        {
            let entry = entry?;
            std::fs::copy(entry.path(), src.join(entry.file_name()))?;
        }
        let manifest_path = src.join("00-manifest.json");
        let mut manifest: Value = serde_json::from_slice(&std::fs::read(&manifest_path)?)?;
        manifest["manifest"]["version"] = json!(format!("1.0.{}", self.version - 1));
        std::fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest)?)?;
        let rules: Vec<Value> = match variant {
            AppVariant::Base => Vec::new(),
            AppVariant::ExtraRule => vec![json!({
                "name": "large_negotiations_to_everyone",
                "label": "Large deals in negotiation, readable by everyone",
                "object": OBJECT,
                "active": true,
                "condition": {"stage": "negotiation", "amount": {"$gte": 900000}},
                "accessLevel": "read",
                "sharedWith": {"type": "team", "value": "everyone"}
            })],
            AppVariant::TenTeams => team_rules(),
        };
        if !rules.is_empty() {
            std::fs::write(
                src.join("31-variant.json"),
                serde_json::to_vec_pretty(&json!({ "sharingRules": rules }))?,
            )?;
        }
        let artifact = format!("app-{}.json", self.version);
        let src_arg = src.to_string_lossy().to_string();
        self.cli(&["build", &src_arg, "-o", &artifact])?;
        self.cli(&["sign", &artifact, "-k", "signing.key"])?;
        self.cli(&["apply", &artifact, "-y"])?;
        self.variant = variant;
        Ok(())
    }

    /// Applies `variant` (with its teams), restarting the server if it runs.
    pub fn apply_variant(&mut self, variant: AppVariant) -> Result<()> {
        let running = self.server.is_some();
        self.stop()?;
        let users = self.emails.clone();
        let had_teams = self.variant == AppVariant::TenTeams;
        let wants_teams = variant == AppVariant::TenTeams;
        if wants_teams && !had_teams {
            for t in 1..=EXTRA_TEAMS {
                let team = format!("team_{t:02}");
                self.cli(&["team", "add", &team])?;
                for email in &users {
                    self.cli(&["team", "add-member", &team, email])?;
                }
            }
        }
        self.apply(variant)?;
        if had_teams && !wants_teams {
            for t in 1..=EXTRA_TEAMS {
                let team = format!("team_{t:02}");
                for email in &users {
                    self.cli(&["team", "remove-member", &team, email])?;
                }
            }
        }
        if running {
            self.start()?;
        }
        Ok(())
    }

    /// Loads records `from..to` of the data set, each owner's through
    /// `objectos import --as` that owner; the seconds the imports took.
    pub fn load(&mut self, dataset: &Dataset, from: usize, to: usize) -> Result<f64> {
        let running = self.server.is_some();
        self.stop()?;
        let mut files = Vec::new();
        for (u, email) in dataset.users.iter().enumerate() {
            let path = self.dir.join(format!("load-{u:02}.jsonl"));
            let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
            for i in (from..to).filter(|i| i % dataset.users.len() == u) {
                let d = dataset.deal(i);
                serde_json::to_writer(
                    &mut out,
                    &json!({
                        "name": d.name,
                        "amount": d.amount,
                        "stage": d.stage,
                        "region": d.region,
                        "close_date": d.close_date,
                        "discount_note": d.discount_note,
                    }),
                )?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            files.push((path, email.clone()));
        }
        let started = Instant::now();
        for (path, email) in &files {
            let file = path.to_string_lossy().to_string();
            self.cli(&["import", OBJECT, &file, "--as", email])?;
        }
        let secs = started.elapsed().as_secs_f64();
        for (path, _) in files {
            let _ = std::fs::remove_file(path);
        }
        if running {
            self.start()?;
        }
        Ok(secs)
    }

    /// `objectos serve` on a free loopback port, request log off.
    pub fn start(&mut self) -> Result<()> {
        if self.server.is_some() {
            return Ok(());
        }
        self.server = Some(self.serve(&self.data_dir(), "serve")?);
        Ok(())
    }

    fn serve(&self, data_dir: &Path, name: &str) -> Result<Server> {
        let mut last = None;
        for attempt in 0..3 {
            let port = proc::free_port()?;
            let mut cmd = Command::new(&self.bin);
            cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
                .current_dir(&self.dir)
                .env("OBJECTOS_DATA_DIR", data_dir)
                .env("OBJECTOS_LOG", "warn");
            let log = self
                .dir
                .join(format!("{name}-{}-{attempt}.log", self.version));
            match Server::start(cmd, format!("http://127.0.0.1:{port}"), "/healthz", &log) {
                Ok(server) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("objectos serve did not start")))
    }

    /// A second instance on the same PostgreSQL database, as a second host
    /// runs it: a copy of the data dir (keys, trust store, configuration).
    /// Its base URL.
    pub fn start_second(&mut self) -> Result<String> {
        if self.database_url.is_none() {
            bail!("a second instance needs PostgreSQL");
        }
        if let Some(second) = &self.second {
            return Ok(second.base.clone());
        }
        let copy = self.dir.join("data2");
        if copy.exists() {
            std::fs::remove_dir_all(&copy)?;
        }
        copy_dir(&self.data_dir(), &copy)?;
        let _ = std::fs::remove_file(copy.join("serve.lock"));
        let server = self.serve(&copy, "serve2")?;
        let base = server.base.clone();
        self.second = Some(server);
        Ok(base)
    }

    pub fn stop(&mut self) -> Result<()> {
        if let Some(second) = self.second.take() {
            second.stop()?;
        }
        match self.server.take() {
            Some(server) => server.stop(),
            None => Ok(()),
        }
    }

    fn server(&self) -> Result<&Server> {
        self.server
            .as_ref()
            .context("objectos serve is not running")
    }

    pub fn pid(&self) -> Result<u32> {
        Ok(self.server()?.pid())
    }

    pub fn base(&self) -> Result<String> {
        Ok(self.server()?.base.clone())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// GET as `key`; the JSON answer, or an error naming the status.
    pub fn get(&self, path: &str, key: &str) -> Result<Value> {
        let url = format!("{}{path}", self.server()?.base);
        let resp = reqwest::blocking::Client::new()
            .get(&url)
            .bearer_auth(key)
            .send()
            .with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        let text = resp.text()?;
        if !status.is_success() {
            bail!("GET {url}: {status}: {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }

    /// Ids of records `key`'s user owns (the `proposal` stage is shared with nobody).
    pub fn own_ids(&self, key: &str, limit: usize) -> Result<Vec<String>> {
        let doc = self.get(
            &format!(
                "/api/v1/data/{OBJECT}?filter=%7B%22stage%22%3A%22proposal%22%7D&limit={limit}"
            ),
            key,
        )?;
        Ok(doc["records"]
            .as_array()
            .context("a list without `records`")?
            .iter()
            .filter_map(|r| r["id"].as_str().map(str::to_string))
            .collect())
    }

    /// The wrk target: every user's key with ten records of their own.
    pub fn credentials(&mut self, dataset: &Dataset) -> Result<Target> {
        // The port changes with every start; the keys and ids do not.
        if let Some(t) = &self.target {
            return Ok(Target {
                base: self.base()?,
                ..t.clone()
            });
        }
        let path = self.dir.join("credentials.tsv");
        let mut out = String::new();
        for (u, key) in self.user_keys.iter().enumerate() {
            let ids = self.own_ids(key, 10)?;
            if ids.is_empty() {
                bail!("{} owns no `proposal` deal to read", dataset.users[u]);
            }
            for id in ids {
                out.push_str(&format!("{key}\t\t{id}\n"));
            }
        }
        std::fs::write(&path, out)?;
        let target = Target {
            name: "objectos",
            base: self.base()?,
            credentials: path,
            auth: "Bearer ",
            list_path: format!("/api/v1/data/{OBJECT}?{LIST_QUERY}"),
            list_unsorted_path: format!("/api/v1/data/{OBJECT}?{LIST_UNSORTED_QUERY}"),
            list_all_path: format!("/api/v1/data/{OBJECT}?{LIST_ALL_QUERY}"),
            get_path: format!("/api/v1/data/{OBJECT}/{{id}}"),
            create_path: format!("/api/v1/data/{OBJECT}"),
            create_body: json!({
                "name": "Created {n}",
                "amount": 5000,
                "stage": "prospecting",
                "region": "emea",
                "close_date": "2026-06-30",
                "discount_note": "none",
            })
            .to_string(),
        };
        self.target = Some(target.clone());
        Ok(target)
    }

    /// Records of the object, counted as the manager (who sees all).
    pub fn count(&self) -> Result<u64> {
        let doc = self.get(
            &format!("/api/v1/data/{OBJECT}?total=true&limit=1"),
            &self.manager_key,
        )?;
        doc["total"].as_u64().context("a list without `total`")
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()))?;
        } else {
            std::fs::copy(&path, to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// Nine more rules, one per team: each a stage and region other than the list's.
fn team_rules() -> Vec<Value> {
    let mut rules = Vec::new();
    let mut t = 0;
    for stage in ["proposal", "negotiation", "closed_lost"] {
        for region in ["amer", "emea", "apac"] {
            t += 1;
            rules.push(json!({
                "name": format!("{stage}_{region}_to_team_{t:02}"),
                "label": format!("{stage} deals in {region}, to team_{t:02}"),
                "object": OBJECT,
                "active": true,
                "condition": {"stage": stage, "region": region},
                "accessLevel": "read",
                "sharedWith": {"type": "team", "value": format!("team_{t:02}")}
            }));
        }
    }
    rules
}
