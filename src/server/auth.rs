//! Credentials on the API, as upstream's clients send them: `Authorization:
//! Bearer` (an API key or a session token), `Authorization: ApiKey …` and
//! `X-API-Key`. Resolving them, and signing in, belong to `identity`; this module
//! only reads the headers and the client's address.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use serde_json::json;

use crate::audit::{Origin, Via};
use crate::error::ApiError;
use crate::identity::signin::{self, Attempt};
use crate::instance::Instance;
use crate::records::Caller;
use crate::store::KeyKind;

pub use crate::identity::signin::SESSION_HOURS;

/// The token a request carries, from whichever header upstream's clients use.
pub fn token(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = value.trim().split_once(' ')?;
        return (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("apikey"))
            .then_some(token.trim());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Whose credential this is, and what it may do, for a REST request.
pub struct Authenticated {
    pub caller: Caller,
    pub session_id: Option<String>,
}

/// Authenticate a REST request: user keys and sessions only; agent keys are for
/// MCP, whichever header carries them. A known credential refused here (an
/// agent key, a user without `api_access`) leaves a `denied` row.
pub fn authenticate(
    instance: &Instance,
    resolve: &dyn Fn(&str) -> Result<Option<signin::Resolved>, ApiError>,
    headers: &HeaderMap,
    request_id: &str,
) -> Result<Authenticated, ApiError> {
    let token = token(headers).ok_or_else(signin::unauthenticated)?;
    let resolved = signin::require(resolve(token)?)?;
    let principal = resolved.principal;
    let mut origin = Origin::user(&principal.user_id, &principal.email, Via::Api);
    origin.actor["organization_id"] = json!(principal.org_id);
    origin.credential = Some(resolved.credential);
    origin.request_id = Some(request_id.to_string());
    let refusal = if resolved.key_kind == Some(KeyKind::Agent) {
        Some(ApiError::forbidden(
            "agent_key_not_allowed",
            "agent keys work on MCP only, not on REST",
        ))
    } else if !principal.has("api_access") {
        Some(ApiError::forbidden(
            "api_access_required",
            "your permission sets do not grant `api_access`",
        ))
    } else {
        None
    };
    if let Some(e) = refusal {
        let event = crate::audit::Event::new("auth.request")
            .object("api")
            .outcome(crate::audit::Outcome::Denied, e.code)
            .changes(json!({"error": e.message}));
        if let Err(err) = instance
            .store
            .write(|tx| crate::audit::append(tx, &origin, event).map(|_| ()))
        {
            tracing::error!(error = %err, "could not audit a refused request");
        }
        return Err(e);
    }
    Ok(Authenticated {
        caller: Caller { principal, origin },
        session_id: resolved.session_id,
    })
}

/// Addresses (or CIDR blocks) of reverse proxies whose `X-Forwarded-For` is
/// believed; from anyone else the header is ignored.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Parse `IP` or `IP/PREFIX` entries.
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, String> {
        let mut out = Vec::new();
        for entry in entries
            .iter()
            .flat_map(|e| e.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let (ip, prefix) = match entry.split_once('/') {
                Some((ip, p)) => (ip, Some(p)),
                None => (entry, None),
            };
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| format!("`{entry}` is not an IP address or CIDR block"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                None => max,
                Some(p) => p
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| format!("`{entry}` has a bad prefix length"))?,
            };
            out.push((ip, prefix));
        }
        Ok(TrustedProxies(out))
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0
            .iter()
            .any(|(net, prefix)| in_block(ip, *net, *prefix))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy; then
    /// `X-Forwarded-For` is read from the right, hop by hop, while the hop that
    /// added an entry is a trusted proxy. An entry that cannot be read ends the
    /// walk with no address at all, rather than believing what lies beyond it.
    pub fn client(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let mut current = peer?.ip().to_canonical();
        let entries: Vec<String> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|a| a.trim().to_string())
            .collect();
        for entry in entries.iter().rev() {
            if !self.contains(current) {
                return Some(current);
            }
            current = parse_forwarded(entry)?.to_canonical();
        }
        Some(current)
    }
}

/// One `X-Forwarded-For` entry: an address, `a.b.c.d:port`, or `[v6]:port`.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .and_then(|e| e.parse().ok())
}

fn in_block(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix as u32)
            };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix as u32)
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// Sign in with email and password from `address`.
pub fn login(
    instance: &Instance,
    email: &str,
    password: &str,
    organization: Option<&str>,
    address: Option<IpAddr>,
    request_id: &str,
) -> Result<serde_json::Value, ApiError> {
    signin::sign_in(
        instance,
        &Attempt {
            email,
            password,
            organization,
            address,
            request_id,
        },
    )
}

pub fn logout(instance: &Instance, auth: &Authenticated) -> Result<serde_json::Value, ApiError> {
    signin::sign_out(instance, &auth.caller.origin, auth.session_id.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into(), "::1".into()]).unwrap();
        let from_proxy: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let from_stranger: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        let h = headers("203.0.113.9, 10.9.9.9");
        assert_eq!(
            proxies.client(Some(from_proxy), &h),
            Some("203.0.113.9".parse().unwrap())
        );
        assert_eq!(
            proxies.client(Some(from_stranger), &h),
            Some("192.0.2.7".parse().unwrap())
        );
        // A client's own spoofed entries further left are not believed over the
        // address the trusted proxy saw.
        let h = headers("1.1.1.1, 198.51.100.4");
        assert_eq!(
            proxies.client(Some(from_proxy), &h),
            Some("198.51.100.4".parse().unwrap())
        );
        assert_eq!(
            TrustedProxies::default().client(Some(from_proxy), &h),
            Some("10.1.2.3".parse().unwrap())
        );
        // Entries with ports and brackets are read; an unreadable one stops the
        // walk instead of letting the client's own entries through.
        let h = headers("6.6.6.6, 203.0.113.9:5123");
        assert_eq!(
            proxies.client(Some(from_proxy), &h),
            Some("203.0.113.9".parse().unwrap())
        );
        let h = headers("6.6.6.6, unknown");
        assert_eq!(proxies.client(Some(from_proxy), &h), None);
        let h = headers("[2001:db8::7]:443");
        assert_eq!(
            proxies.client(Some(from_proxy), &h),
            Some("2001:db8::7".parse().unwrap())
        );
        // An IPv4 proxy seen through an IPv6 socket is still the proxy.
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:5000".parse().unwrap();
        assert_eq!(
            proxies.client(Some(mapped), &headers("203.0.113.9")),
            Some("203.0.113.9".parse().unwrap())
        );
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["nonsense".into()]).is_err());
    }

    #[test]
    fn tokens_come_from_every_header_upstream_clients_use() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer osk_abc".parse().unwrap());
        assert_eq!(token(&h), Some("osk_abc"));
        h.insert("authorization", "ApiKey osk_def".parse().unwrap());
        assert_eq!(token(&h), Some("osk_def"));
        h.insert("authorization", "Basic Zm9v".parse().unwrap());
        assert_eq!(token(&h), None);
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "osk_ghi".parse().unwrap());
        assert_eq!(token(&h), Some("osk_ghi"));
    }
}
