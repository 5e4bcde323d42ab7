//! The operator's settings that turn the assistant on and bound it (`ai.*`),
//! read from the store on every turn so that a change takes effect at once.
//! Unset `ai.endpoint` means off: nothing connects anywhere.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;

use crate::error::Failure;
use crate::instance::Instance;
use crate::store::Tx;

pub const ENDPOINT: &str = "ai.endpoint";
pub const MODEL: &str = "ai.model";
pub const API_KEY: &str = "ai.api_key";
pub const TIMEOUT: &str = "ai.timeout";
pub const STREAM: &str = "ai.stream";
pub const MAX_TOKENS: &str = "ai.max_tokens";
pub const MAX_TURN_TOKENS: &str = "ai.max_turn_tokens";
pub const MAX_TOOL_CALLS: &str = "ai.max_tool_calls";
/// `ai.unmask.OBJECT = true`: that object's sensitive values go to the model
/// and into transcripts in clear.
pub const UNMASK_PREFIX: &str = "ai.unmask.";

pub const DEFAULT_TIMEOUT_SECS: u64 = 120;
pub const DEFAULT_MAX_TOKENS: u64 = 1024;
pub const DEFAULT_MAX_TURN_TOKENS: u64 = 32_000;
pub const DEFAULT_MAX_TOOL_CALLS: u64 = 8;

/// Every `ai.*` setting, with what it takes (for errors and docs).
pub const KEYS: &[(&str, &str)] = &[
    (
        ENDPOINT,
        "the OpenAI-compatible base URL (`http://127.0.0.1:11434/v1`)",
    ),
    (MODEL, "the model's name at that endpoint"),
    (API_KEY, "the endpoint's API key (set with `--secret`)"),
    (TIMEOUT, "seconds one model request may take (default 120)"),
    (
        STREAM,
        "`true` (default) to ask for streamed answers, `false` for whole ones",
    ),
    (
        MAX_TOKENS,
        "tokens one model answer may hold (`max_tokens`, default 1024)",
    ),
    (
        MAX_TURN_TOKENS,
        "tokens (sent and received) one turn may spend before it stops (default 32000)",
    ),
    (
        MAX_TOOL_CALLS,
        "tool calls one turn may make before it stops (default 8)",
    ),
    (
        "ai.unmask.OBJECT",
        "`true` to send that object's sensitive values to the model in clear",
    ),
];

/// The assistant's configuration, when the operator has turned it on.
#[derive(Clone)]
pub struct AiConfig {
    /// The base URL; requests go to `{endpoint}/chat/completions` and nowhere else.
    pub endpoint: url::Url,
    pub model: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
    pub stream: bool,
    pub max_tokens: u64,
    pub max_turn_tokens: u64,
    pub max_tool_calls: u64,
    /// Objects whose sensitive values are not masked.
    pub unmasked: BTreeSet<String>,
}

impl fmt::Debug for AiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AiConfig")
            .field("endpoint", &self.endpoint.as_str())
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("stream", &self.stream)
            .field("max_tokens", &self.max_tokens)
            .field("max_turn_tokens", &self.max_turn_tokens)
            .field("max_tool_calls", &self.max_tool_calls)
            .field("unmasked", &self.unmasked)
            .finish()
    }
}

impl AiConfig {
    /// The URL model requests are sent to.
    pub fn completions_url(&self) -> url::Url {
        completions_url(&self.endpoint)
    }
}

/// `{base}/chat/completions`.
pub fn completions_url(base: &url::Url) -> url::Url {
    let mut url = base.clone();
    let path = format!("{}/chat/completions", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

/// Check an `ai.endpoint` value: an `http(s)` base URL with a host, and no
/// credentials, query or fragment (the key goes in `ai.api_key`).
pub fn parse_endpoint(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text.trim()).map_err(|e| {
        format!("`{text}` is not a URL ({e}); write it like `http://127.0.0.1:11434/v1`")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`{}` is not a scheme the assistant speaks; use `http://` or `https://`",
            url.scheme()
        ));
    }
    if url.host().is_none() {
        return Err(format!("`{text}` names no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "the endpoint carries credentials; put the key in `ai.api_key` (`--secret`) instead"
                .into(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{text}` has a query or fragment; give the base URL only (`…/v1`)"
        ));
    }
    Ok(url)
}

/// Where a host is, as far as objectos can tell without resolving a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    Loopback,
    Private,
    /// A public address.
    Public,
    /// A name other than `localhost`: where it goes depends on the resolver.
    Name,
}

pub fn reach(url: &url::Url) -> Reach {
    let ip: Option<IpAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(ip.into()),
        Some(url::Host::Ipv6(ip)) => Some(ip.into()),
        Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
            return Reach::Loopback;
        }
        _ => None,
    };
    match ip.map(|ip| ip.to_canonical()) {
        None => Reach::Name,
        Some(ip) if ip.is_loopback() => Reach::Loopback,
        Some(IpAddr::V4(v4)) if v4.is_private() || v4.is_link_local() => Reach::Private,
        // Carrier-grade NAT (100.64.0.0/10), as site networks use it.
        Some(IpAddr::V4(v4)) if v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 => {
            Reach::Private
        }
        Some(IpAddr::V6(v6))
            if (v6.segments()[0] & 0xfe00) == 0xfc00 || (v6.segments()[0] & 0xffc0) == 0xfe80 =>
        {
            Reach::Private
        }
        Some(_) => Reach::Public,
    }
}

fn number(key: &str, text: &str, min: u64, max: u64) -> Result<u64, String> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("`{key}` is a whole number from {min} to {max}"))
}

fn boolean(key: &str, text: &str) -> Result<bool, String> {
    match text.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("`{key}` is `true` or `false`")),
    }
}

/// Check an `ai.*` setting before it is stored (`settings set`): a value the
/// assistant could not use is refused there, not at the first conversation.
pub fn validate_setting(key: &str, value: &str, secret: bool) -> anyhow::Result<()> {
    let problem = match key {
        ENDPOINT => parse_endpoint(value).err(),
        MODEL if value.trim().is_empty() || value.len() > 256 => {
            Some("`ai.model` is the model's name (1 to 256 characters)".into())
        }
        MODEL => None,
        API_KEY if !secret => Some(
            "`ai.api_key` is a secret: set it with `--secret` so it is stored encrypted".into(),
        ),
        API_KEY => None,
        TIMEOUT => number(key, value, 1, 3600).err(),
        MAX_TOKENS => number(key, value, 1, 1_000_000).err(),
        MAX_TURN_TOKENS => number(key, value, 1, 100_000_000).err(),
        MAX_TOOL_CALLS => number(key, value, 0, 1000).err(),
        STREAM => boolean(key, value).err(),
        k if k.starts_with(UNMASK_PREFIX) && k.len() > UNMASK_PREFIX.len() => {
            boolean(key, value).err()
        }
        _ => Some(format!(
            "`{key}` is not an assistant setting; they are {}",
            KEYS.iter()
                .map(|(k, _)| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    };
    match problem {
        None if secret && key != API_KEY => Err(Failure::error(format!(
            "`{key}` is not a secret; only `ai.api_key` is set with `--secret`"
        ))
        .into()),
        None => Ok(()),
        Some(p) => Err(Failure::error(p).into()),
    }
}

/// Why the assistant cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("the assistant is off: the operator has not set `ai.endpoint`")]
    Off,
    #[error("the assistant is misconfigured: {0}")]
    Invalid(String),
}

fn plain(tx: &mut dyn Tx, key: &str) -> anyhow::Result<Option<String>> {
    Ok(tx.setting_get(key)?.filter(|r| !r.secret).map(|r| r.value))
}

/// Read the configuration; `Err(Off)` when `ai.endpoint` is not set.
pub fn load(instance: &Instance) -> anyhow::Result<Result<AiConfig, ConfigError>> {
    let (settings, key_row) = instance.store.read(|tx| {
        let mut values = std::collections::BTreeMap::new();
        for (key, _) in KEYS {
            if let Some(v) = plain(tx, key)? {
                values.insert(key.to_string(), v);
            }
        }
        for row in tx.settings()? {
            if row.key.starts_with(UNMASK_PREFIX) && !row.secret {
                values.insert(row.key.clone(), row.value.clone());
            }
        }
        Ok((values, tx.setting_get(API_KEY)?))
    })?;
    let Some(endpoint) = settings.get(ENDPOINT) else {
        return Ok(Err(ConfigError::Off));
    };
    let invalid = |m: String| Ok(Err(ConfigError::Invalid(m)));
    let endpoint = match parse_endpoint(endpoint) {
        Ok(u) => u,
        Err(e) => return invalid(e),
    };
    let Some(model) = settings.get(MODEL).filter(|m| !m.trim().is_empty()) else {
        return invalid("`ai.model` is not set".into());
    };
    let num = |key: &str, default: u64, min: u64, max: u64| match settings.get(key) {
        None => Ok(default),
        Some(v) => number(key, v, min, max),
    };
    let timeout = num(TIMEOUT, DEFAULT_TIMEOUT_SECS, 1, 3600);
    let max_tokens = num(MAX_TOKENS, DEFAULT_MAX_TOKENS, 1, 1_000_000);
    let max_turn_tokens = num(MAX_TURN_TOKENS, DEFAULT_MAX_TURN_TOKENS, 1, 100_000_000);
    let max_tool_calls = num(MAX_TOOL_CALLS, DEFAULT_MAX_TOOL_CALLS, 0, 1000);
    let stream = settings
        .get(STREAM)
        .map(|v| boolean(STREAM, v))
        .unwrap_or(Ok(true));
    let (timeout, max_tokens, max_turn_tokens, max_tool_calls, stream) =
        match (timeout, max_tokens, max_turn_tokens, max_tool_calls, stream) {
            (Ok(a), Ok(b), Ok(c), Ok(d), Ok(e)) => (a, b, c, d, e),
            (a, b, c, d, e) => {
                let first = [a.err(), b.err(), c.err(), d.err(), e.err()]
                    .into_iter()
                    .flatten()
                    .next()
                    .unwrap_or_default();
                return invalid(first);
            }
        };
    let api_key = match key_row {
        None => None,
        Some(row) if !row.secret => {
            return invalid("`ai.api_key` is stored in clear; set it again with `--secret`".into());
        }
        Some(row) => {
            let clear = base64::engine::general_purpose::STANDARD
                .decode(&row.value)
                .ok()
                .and_then(|c| age::decrypt(instance.identity(), &c).ok())
                .and_then(|c| String::from_utf8(c).ok());
            match clear {
                Some(k) => Some(k.trim().to_string()),
                None => {
                    return invalid(
                        "`ai.api_key` cannot be decrypted with the instance key".into(),
                    );
                }
            }
        }
    };
    let unmasked = settings
        .iter()
        .filter(|(k, v)| k.starts_with(UNMASK_PREFIX) && v.trim() == "true")
        .map(|(k, _)| k[UNMASK_PREFIX.len()..].to_string())
        .collect();
    Ok(Ok(AiConfig {
        endpoint,
        model: model.clone(),
        api_key,
        timeout: Duration::from_secs(timeout),
        stream,
        max_tokens,
        max_turn_tokens,
        max_tool_calls,
        unmasked,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_an_endpoint_is_reached() {
        let r = |u: &str| reach(&url::Url::parse(u).unwrap());
        assert_eq!(r("http://127.0.0.1:11434/v1"), Reach::Loopback);
        assert_eq!(r("http://localhost:8000/v1"), Reach::Loopback);
        assert_eq!(r("http://[::1]:8000/v1"), Reach::Loopback);
        assert_eq!(r("http://10.1.2.3/v1"), Reach::Private);
        assert_eq!(r("http://192.168.0.4/v1"), Reach::Private);
        assert_eq!(r("http://[fd00::1]/v1"), Reach::Private);
        assert_eq!(r("https://8.8.8.8/v1"), Reach::Public);
        assert_eq!(r("https://api.example.com/v1"), Reach::Name);
    }

    #[test]
    fn completions_go_under_the_base_path() {
        let u = url::Url::parse("http://127.0.0.1:11434/v1/").unwrap();
        assert_eq!(
            completions_url(&u).as_str(),
            "http://127.0.0.1:11434/v1/chat/completions"
        );
        let u = url::Url::parse("http://gw.internal").unwrap();
        assert_eq!(
            completions_url(&u).as_str(),
            "http://gw.internal/chat/completions"
        );
    }

    #[test]
    fn settings_the_assistant_could_not_use_are_refused() {
        assert!(validate_setting(ENDPOINT, "http://127.0.0.1:1/v1", false).is_ok());
        assert!(validate_setting(ENDPOINT, "ftp://x", false).is_err());
        assert!(validate_setting(ENDPOINT, "http://u:p@x/v1", false).is_err());
        assert!(validate_setting(API_KEY, "sk-1", false).is_err());
        assert!(validate_setting(API_KEY, "sk-1", true).is_ok());
        assert!(validate_setting(MODEL, "llama3", true).is_err());
        assert!(validate_setting(TIMEOUT, "0", false).is_err());
        assert!(validate_setting(MAX_TOOL_CALLS, "3", false).is_ok());
        assert!(validate_setting("ai.unmask.crm_account", "true", false).is_ok());
        assert!(validate_setting("ai.unmask.crm_account", "yes", false).is_err());
        assert!(validate_setting("ai.colour", "x", false).is_err());
    }
}
