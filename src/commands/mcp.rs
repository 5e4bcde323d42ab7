//! `objectos mcp`: the stdio bridge an agent host launches (see
//! `crate::agent::bridge`). It reads the agent key from `OBJECTOS_API_KEY` and
//! the server's address from `--server`; it never opens the data dir.

use anyhow::Context;

use crate::agent::bridge::Bridge;
use crate::cli::McpArgs;
use crate::commands::Ctx;
use crate::error::{Exit, Failure};
use crate::remote;

/// The variable the agent key comes from.
pub const AGENT_KEY_ENV: &str = "OBJECTOS_API_KEY";

pub fn run(args: McpArgs, _ctx: &Ctx) -> anyhow::Result<Exit> {
    let key = std::env::var(AGENT_KEY_ENV)
        .unwrap_or_default()
        .trim()
        .to_string();
    if key.is_empty() {
        return Err(Failure::denied(format!("no agent key: `{AGENT_KEY_ENV}` is not set"))
            .with_hint("create one with `objectos apikey create EMAIL --agent` and hand it to the agent host in `OBJECTOS_API_KEY`")
            .into());
    }
    let base = remote::check_url(&args.server, args.insecure)?;
    // `--server` names the server (the endpoint is `/api/v1/mcp` on it), or
    // the endpoint itself.
    let endpoint = if base.path().trim_end_matches('/').ends_with("/mcp") {
        base
    } else {
        let mut root = base.clone();
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        root.join("api/v1/mcp")
            .with_context(|| format!("cannot build the MCP address from `{}`", args.server))?
    };
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("objectos-mcp/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(10));
    if let Some(path) = &args.ca_file {
        for cert in remote::ca_certificates(path)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    let client = builder.build().context("cannot set up the HTTP client")?;
    crate::commands::serve::init_logging(crate::cli::LogFormat::Text);
    tracing::info!(%endpoint, "bridging stdio to the MCP endpoint");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(
        Bridge {
            endpoint,
            key,
            client,
        }
        .run(),
    )?;
    Ok(Exit::Success)
}
