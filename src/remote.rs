//! A client of a running server, for the commands that act through it rather
//! than on the data dir (`objectos review`, `objectos mcp`): they hold only a key,
//! never the instance's keys or database. Plain `http://` is allowed only to a
//! loopback address unless the operator says `--insecure`; `--ca-file` trusts a
//! private CA for `https://`.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::error::{Exit, Failure};

/// Where and how to reach the server.
pub struct Server {
    pub base: reqwest::Url,
    pub client: reqwest::blocking::Client,
}

/// Check the server URL against the transport policy: `https://`, or plain
/// `http://` to this host (elsewhere only with `insecure`).
pub fn check_url(url: &str, insecure: bool) -> anyhow::Result<reqwest::Url> {
    let base = reqwest::Url::parse(url).map_err(|e| {
        Failure::new(Exit::Usage, format!("`{url}` is not a URL: {e}"))
            .with_hint("write it like `http://127.0.0.1:8080` or `https://objectos.example`")
    })?;
    match base.scheme() {
        "https" => {}
        "http" => {
            let loopback = match base.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d == "localhost",
                None => false,
            };
            if !loopback && !insecure {
                return Err(Failure::error(format!(
                    "`{url}` is plain HTTP to another host: the key would cross the network in clear"
                ))
                .with_hint("use `https://` (with `--ca-file` for a private CA), or pass `--insecure` if the network is trusted")
                .into());
            }
        }
        other => {
            return Err(Failure::new(
                Exit::Usage,
                format!("`{other}` is not a scheme objectos speaks; use `http://` or `https://`"),
            )
            .into());
        }
    }
    Ok(base)
}

/// The certificates of a private CA (PEM, one or more).
pub fn ca_certificates(path: &Path) -> anyhow::Result<Vec<reqwest::Certificate>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("cannot read the CA file `{}`", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        Failure::error(format!(
            "`{}` holds no PEM certificate: {e}",
            path.display()
        ))
    })?;
    if certs.is_empty() {
        return Err(
            Failure::error(format!("`{}` holds no PEM certificate", path.display())).into(),
        );
    }
    Ok(certs)
}

/// Check the server URL against the transport policy and build a client.
pub fn connect(
    url: &str,
    insecure: bool,
    ca_file: Option<&Path>,
    timeout: Option<Duration>,
) -> anyhow::Result<Server> {
    let base = check_url(url, insecure)?;
    let mut builder = reqwest::blocking::Client::builder()
        .user_agent(concat!("objectos/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10));
    builder = match timeout {
        Some(t) => builder.timeout(t),
        None => builder.timeout(None),
    };
    if let Some(path) = ca_file {
        for cert in ca_certificates(path)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    let client = builder.build().context("cannot set up the HTTP client")?;
    Ok(Server { base, client })
}

/// A key from a file (its first line) or an environment variable.
pub fn key_from(file: Option<&Path>, env: &str, what: &str) -> anyhow::Result<String> {
    let key = match file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the key file `{}`", path.display()))?
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        None => std::env::var(env).unwrap_or_default().trim().to_string(),
    };
    if key.is_empty() {
        return Err(Failure::denied(format!("no {what} key"))
            .with_hint(format!("pass `--api-key-file FILE` or set `{env}`"))
            .into());
    }
    Ok(key)
}

impl Server {
    pub fn url(&self, path: &str) -> anyhow::Result<reqwest::Url> {
        self.base
            .join(path.trim_start_matches('/'))
            .with_context(|| format!("cannot build a URL for `{path}`"))
    }

    /// Send, and read the answer as JSON; a refusal becomes the failure with the
    /// exit code of its status (`Exit::from_status`), its code and message.
    pub fn json(&self, request: reqwest::blocking::RequestBuilder) -> anyhow::Result<Value> {
        let response = request.send().map_err(|e| {
            Failure::error(format!(
                "cannot reach the server at {}: {}",
                self.base,
                error_chain(&e)
            ))
            .with_hint("is `objectos serve` running there? (`--server URL`)")
        })?;
        let status = response.status();
        let text = response.text().unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let code = body["error"]["code"].as_str().unwrap_or("error");
        let message = body["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("the server answered {status}"));
        let exit = Exit::from_status(status.as_u16());
        Err(Failure::new(exit, format!("{message} ({code})")).into())
    }
}

/// A string an agent (or anyone) wrote, made inert for a terminal: control
/// characters, ANSI escapes and bidirectional overrides are shown as escapes,
/// never acted on.
pub fn inert(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let dangerous = c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{061c}' | '\u{feff}');
        if dangerous {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// An error with every cause under it ("error sending request …: invalid peer
/// certificate: UnknownIssuer"): reqwest's own text stops at the first, which
/// does not say what went wrong.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_overrides_are_shown_not_obeyed() {
        assert_eq!(inert("plain"), "plain");
        assert_eq!(inert("a\u{1b}[31mred"), "a\\u{1b}[31mred");
        assert_eq!(inert("x\u{202e}gnp.exe"), "x\\u{202e}gnp.exe");
        assert_eq!(inert("line\nbreak"), "line\\u{a}break");
    }

    #[test]
    fn plain_http_is_for_loopback_only() {
        assert!(connect("http://127.0.0.1:8080", false, None, None).is_ok());
        assert!(connect("http://localhost:8080", false, None, None).is_ok());
        assert!(connect("http://[::1]:8080", false, None, None).is_ok());
        assert!(connect("http://10.0.0.5:8080", false, None, None).is_err());
        assert!(connect("http://10.0.0.5:8080", true, None, None).is_ok());
        assert!(connect("https://objectos.example", false, None, None).is_ok());
        assert!(connect("ftp://x", false, None, None).is_err());
    }
}
