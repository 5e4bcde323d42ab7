//! `objectos serve`: the HTTP API in the foreground.

use std::net::SocketAddr;

use anyhow::Context;

use crate::cli::{LogFormat, ServeArgs};
use crate::commands::Ctx;
use crate::error::{Exit, Failure};
use crate::server::{self, Limits};

pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("OBJECTOS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}

/// Logging for commands other than `serve`: off unless `OBJECTOS_LOG` names
/// what to log, or `-v` asks for the audit checkpoints a command writes (one
/// line each on stderr, as `serve` logs them).
pub fn init_cli_logging(verbose: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = match EnvFilter::try_from_env("OBJECTOS_LOG") {
        Ok(filter) => filter,
        Err(_) if verbose => {
            EnvFilter::new(format!("off,{}=info", crate::audit::checkpoint::LOG_TARGET))
        }
        Err(_) => return,
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false)
        .try_init();
}

/// The address to listen on; a non-loopback one needs `--public`.
pub fn listen_addr(listen: &str, public: bool) -> anyhow::Result<SocketAddr> {
    let addr: SocketAddr = listen.parse().map_err(|_| {
        Failure::error(format!("`{listen}` is not an address to listen on"))
            .with_hint("write it like `127.0.0.1:8080`")
    })?;
    if !addr.ip().is_loopback() && !public {
        return Err(Failure::error(format!("`{listen}` is not a loopback address"))
            .with_hint("pass `--public` to listen beyond this host (and terminate TLS in the ingress in front)")
            .into());
    }
    Ok(addr)
}

/// Install the SIGINT and SIGTERM handlers now (before the service says it is
/// ready), and return a future that completes when either arrives.
pub fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down: finishing in-flight requests");
    })
}

/// `--trusted-proxy`'s value parser: a bad entry is a usage error (exit 2).
pub fn check_trusted_proxy(text: &str) -> Result<String, String> {
    server::auth::TrustedProxies::parse(&[text.to_string()]).map(|_| text.to_string())
}

pub fn run(args: ServeArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let addr = listen_addr(&args.listen, args.public)?;
    let limits = Limits {
        trusted_proxies: server::auth::TrustedProxies::parse(&args.trusted_proxies)
            .map_err(|e| Failure::error(format!("`--trusted-proxy`: {e}")))?,
        mcp_origins: args.mcp_allowed_origins.clone(),
        max_connections: args.max_connections.max(1),
        client_timeout: std::time::Duration::from_secs(args.client_timeout),
        request_timeout: std::time::Duration::from_secs(args.request_timeout),
        ..Limits::default()
    };
    init_logging(args.log_format);
    if args.public {
        tracing::warn!(
            "listening beyond loopback: objectos speaks plain HTTP; TLS belongs to the ingress in front of it"
        );
    }
    if addr.ip().is_loopback() && limits.trusted_proxies.is_empty() {
        tracing::info!(
            "sign-ins from loopback are throttled per account only; name a local ingress with `--trusted-proxy` to count per client address"
        );
    }
    let instance = ctx.instance()?;
    server::ready_to_serve(&instance)?;
    // Held until the process ends: tells `quickstart` a server uses this dir.
    let _serving = crate::instance::ServeLock::hold(&ctx.data_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(crate::server::blocking_threads())
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let signal = shutdown_signal()?;
        let shutdown = async {
            signal.await;
            if let Err(e) = server::notify::notify("STOPPING=1") {
                tracing::warn!(error = %e, "could not tell systemd the service is stopping");
            }
        };
        server::serve_with_listener(instance, listener, limits, shutdown, |addr| {
            if let Err(e) = server::notify::notify(&format!("READY=1\nSTATUS=listening on {addr}"))
            {
                tracing::warn!(error = %e, "could not tell systemd the service is ready");
            }
        })
        .await
    })?;
    tracing::info!("stopped");
    Ok(Exit::Success)
}
