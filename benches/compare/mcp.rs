//! Workload (f): what an agent does, through the stdio bridge an agent host
//! launches (`objectos mcp`, JSON-RPC lines on stdin and stdout, the agent key
//! in `OBJECTOS_API_KEY`; docs/agents.md): `query_records` calls one after the
//! other, and `delete_record` proposals (each answered `pending_approval`)
//! approved one by one by a manager through `POST /api/v1/pending-actions/{id}/approve`.
//! PocketBase has no counterpart; these are objectos's own figures.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::Options;
use crate::data::Dataset;
use crate::objectos::{OBJECT, Site};
use crate::report::Samples;

pub struct Mcp {
    pub query: Samples,
    pub query_seconds: f64,
    /// A proposal and its approval, together.
    pub decide: Samples,
    pub decide_seconds: f64,
    pub propose: Samples,
    pub approve: Samples,
}

/// A running `objectos mcp` with an initialized session.
struct Bridge {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

impl Bridge {
    fn start(opts: &Options, site: &Site, key: &str) -> Result<Bridge> {
        let log = std::fs::File::create(site.dir().join("mcp-bridge.log"))?;
        let mut child = Command::new(&opts.objectos_bin)
            .args(["mcp", "--server", &site.base()?])
            .env("OBJECTOS_API_KEY", key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("cannot start `objectos mcp`")?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("no stdout")?);
        let mut bridge = Bridge {
            child,
            stdin,
            stdout,
            next_id: 1,
        };
        bridge.request(
            "initialize",
            json!({
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "objectos-bench", "version": "1"}
            }),
        )?;
        bridge.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
        Ok(bridge)
    }

    fn send(&mut self, message: &Value) -> Result<()> {
        writeln!(self.stdin, "{message}")?;
        self.stdin.flush()?;
        Ok(())
    }

    /// One request; its `result` (a JSON-RPC error is an error).
    fn request(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        let mut line = String::new();
        loop {
            line.clear();
            if self.stdout.read_line(&mut line)? == 0 {
                bail!("`objectos mcp` closed its output (see mcp-bridge.log)");
            }
            let message: Value = serde_json::from_str(line.trim())
                .with_context(|| format!("`objectos mcp` wrote a line that is not JSON: {line}"))?;
            if message["id"] != json!(id) {
                continue;
            }
            if !message["error"].is_null() {
                bail!("{method}: {}", message["error"]);
            }
            return Ok(message["result"].clone());
        }
    }

    /// `tools/call`; the tool's structured result (an `isError` result is an error).
    fn tool(&mut self, name: &str, arguments: Value) -> Result<Value> {
        let result = self.request("tools/call", json!({"name": name, "arguments": arguments}))?;
        if result["isError"] == json!(true) {
            bail!("{name}: {}", result["structuredContent"]);
        }
        Ok(result["structuredContent"].clone())
    }

    fn close(mut self) {
        drop(self.stdin);
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn measure(opts: &Options, site: &Site, dataset: &Dataset) -> Result<Mcp> {
    let mut bridge = Bridge::start(opts, site, &site.agent_key)?;
    let query = json!({
        "objectName": OBJECT,
        "where": {"stage": "prospecting"},
        "orderBy": [{"field": "amount", "order": "desc"}],
        "limit": 20
    });
    let first = bridge.tool("query_records", query.clone())?;
    if first["records"].as_array().map(Vec::len) != Some(20) {
        bail!("query_records did not return a page of 20: {first}");
    }
    let mut query_samples = Samples::default();
    let started = Instant::now();
    while started.elapsed() < opts.duration {
        let t = Instant::now();
        bridge.tool("query_records", query.clone())?;
        query_samples.push(t.elapsed());
    }
    let query_seconds = started.elapsed().as_secs_f64();

    // Deals of the agent's user that nobody else reads: closed-lost ones.
    let rep_key = &site.user_keys[0];
    let doc = site.get(
        &format!("/api/v1/data/{OBJECT}?filter=%7B%22stage%22%3A%22closed_lost%22%7D&limit=1000"),
        rep_key,
    )?;
    let ids: Vec<String> = doc["records"]
        .as_array()
        .context("a list without `records`")?
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect();
    if ids.is_empty() {
        bail!("{} has no closed-lost deal to delete", dataset.users[0]);
    }
    let http = reqwest::blocking::Client::new();
    let base = site.base()?;
    let mut decide = Samples::default();
    let mut propose = Samples::default();
    let mut approve = Samples::default();
    let started = Instant::now();
    for id in &ids {
        if started.elapsed() >= opts.duration {
            break;
        }
        let t = Instant::now();
        let answer = bridge.tool(
            "delete_record",
            json!({"objectName": OBJECT, "recordId": id}),
        )?;
        if answer["status"] != json!("pending_approval") {
            bail!("delete_record was not queued: {answer}");
        }
        let pending = answer["pendingActionId"]
            .as_str()
            .context("no pendingActionId")?;
        let proposed = t.elapsed();
        let resp = http
            .post(format!("{base}/api/v1/pending-actions/{pending}/approve"))
            .bearer_auth(&site.manager_key)
            .send()?;
        let status = resp.status();
        let body: Value = resp.json().unwrap_or(Value::Null);
        if !status.is_success() || body["status"] != json!("applied") {
            bail!("approving {pending}: {status}: {body}");
        }
        let total = t.elapsed();
        propose.push(proposed);
        approve.push(total - proposed);
        decide.push(total);
    }
    let decide_seconds = started.elapsed().as_secs_f64();
    bridge.close();
    Ok(Mcp {
        query: query_samples,
        query_seconds,
        decide,
        decide_seconds,
        propose,
        approve,
    })
}
