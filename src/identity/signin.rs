//! Signing in with email and password, and the credentials every API request
//! carries (API keys and session tokens), resolved against the database on each
//! request so that a revocation, a disabled user or a lost membership acts at once.
//!
//! Failed sign-ins are throttled in the database, per account and per client
//! address, so the limits hold under any concurrency and across processes: an
//! attempt is counted *before* its password is checked, in one write transaction,
//! so a burst of parallel guesses cannot all slip through between check and count.
//! Past a few free failures each key backs off (doubling waits, capped) instead of
//! locking out, so nobody can lock a reviewer out of their account for long.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Value, json};

use crate::audit::{self, Event, Origin, Outcome, Via};
use crate::authz::Principal;
use crate::error::ApiError;
use crate::identity::{self, API_KEY_PREFIX, SESSION_PREFIX, token_hash};
use crate::instance::Instance;
use crate::model::Model;
use crate::records::to_api;
use crate::store::{KeyKind, SessionRow, ThrottleRow, Tx};
use crate::timefmt;

pub const SESSION_HOURS: i64 = 12;

/// How failures are counted for one kind of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Failures allowed in a window before waits begin.
    pub free: i64,
    /// The first wait; each further failure doubles it.
    pub first: Duration,
    /// The longest wait.
    pub cap: Duration,
    /// Counts start again this long after the first failure.
    pub window: Duration,
}

/// Per account and client address: one source guessing at one account.
pub const PAIR_BACKOFF: Backoff = Backoff {
    free: 5,
    first: Duration::from_secs(1),
    cap: Duration::from_secs(60),
    window: Duration::from_secs(15 * 60),
};

/// Per account, from anywhere: guesses from many addresses together stay
/// bounded (see `max_failures_in_window`). It does not stop the account's owner
/// signing in from an address they signed in from before (see `KNOWN_FOR`), so
/// nobody can lock them out.
pub const ACCOUNT_BACKOFF: Backoff = Backoff {
    free: 50,
    first: Duration::from_secs(1),
    cap: Duration::from_secs(60),
    window: Duration::from_secs(15 * 60),
};

/// How long an address an account signed in from stays known to it.
pub const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The longest email a sign-in takes (RFC 5321's limit).
const MAX_EMAIL_BYTES: usize = 254;

/// Per client address: one source guessing at many accounts slows down hard.
pub const ADDRESS_BACKOFF: Backoff = Backoff {
    free: 10,
    first: Duration::from_secs(1),
    cap: Duration::from_secs(15 * 60),
    window: Duration::from_secs(15 * 60),
};

impl Backoff {
    /// The wait after the `failures`-th failure of a window.
    pub fn wait_after(&self, failures: i64) -> Duration {
        if failures <= self.free {
            return Duration::ZERO;
        }
        let doublings = (failures - self.free - 1).clamp(0, 30) as u32;
        self.first
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// The most failures one key can see checked in one window, whatever the
    /// concurrency: the free ones, then one per wait.
    pub fn max_failures_in_window(&self) -> i64 {
        let mut failures = self.free;
        let mut elapsed = Duration::ZERO;
        loop {
            let wait = self.wait_after(failures);
            if elapsed + wait >= self.window {
                return failures;
            }
            elapsed += wait;
            failures += 1;
        }
    }
}

pub fn unauthenticated() -> ApiError {
    ApiError::new(
        401,
        "unauthenticated",
        "a valid API key or session token is needed (`Authorization: Bearer …` or `X-API-Key`)",
    )
}

/// An unreadable expiry fails closed: the credential counts as expired.
fn expired(at: Option<&str>, now: &time::OffsetDateTime) -> bool {
    match at {
        None => false,
        Some(text) => timefmt::parse_rfc3339(text).is_none_or(|t| t <= *now),
    }
}

/// Whose credential a token is.
#[derive(Clone)]
pub struct Resolved {
    pub principal: Principal,
    /// The key or session id.
    pub credential: String,
    /// `None` for a session.
    pub key_kind: Option<KeyKind>,
    pub read_only: bool,
    pub session_id: Option<String>,
}

/// Resolve a bearer token (API key or session) to its user's rights in its
/// organization, or `None` when it is unknown, revoked, expired, or its user is
/// disabled or no longer a member.
pub fn resolve_token(
    instance: &Instance,
    model: &Model,
    token: &str,
) -> Result<Option<Resolved>, ApiError> {
    if token.len() > crate::limits::MAX_TOKEN_BYTES {
        return Ok(None);
    }
    resolve_hashed(instance, model, token, &token_hash(token), &timefmt::now())
        .map(|r| r.map(|(resolved, _)| resolved))
}

/// Resolve, with the moment the answer stops holding by itself (the key's or
/// session's expiry, or the end of an assignment in force).
fn resolve_hashed(
    instance: &Instance,
    model: &Model,
    token: &str,
    hash: &str,
    now: &time::OffsetDateTime,
) -> Result<Option<(Resolved, Option<time::OffsetDateTime>)>, ApiError> {
    let hash = hash.to_string();
    let now = *now;
    instance
        .store
        .read(|tx| {
            let (user_id, org_id, credential, key_kind, read_only, session_id, ends) =
                if token.starts_with(API_KEY_PREFIX) {
                    let Some(key) = tx.apikey_by_hash(&hash)? else {
                        return Ok(None);
                    };
                    if key.revoked_at.is_some() || expired(key.expires_at.as_deref(), &now) {
                        return Ok(None);
                    }
                    let ends = key.expires_at.as_deref().and_then(timefmt::parse_rfc3339);
                    (
                        key.user_id,
                        key.org_id,
                        key.id,
                        Some(key.kind),
                        key.read_only,
                        None,
                        ends,
                    )
                } else if token.starts_with(SESSION_PREFIX) {
                    let Some(s) = tx.session_by_hash(&hash)? else {
                        return Ok(None);
                    };
                    if s.revoked_at.is_some() || expired(Some(&s.expires_at), &now) {
                        return Ok(None);
                    }
                    let ends = timefmt::parse_rfc3339(&s.expires_at);
                    (
                        s.user_id,
                        s.org_id,
                        s.id.clone(),
                        None,
                        false,
                        Some(s.id),
                        ends,
                    )
                } else {
                    return Ok(None);
                };
            let Some(user) = tx.user_by_id(&user_id)? else {
                return Ok(None);
            };
            if user.disabled || !tx.orgs_of_user(&user.id)?.iter().any(|o| o.id == org_id) {
                return Ok(None);
            }
            let principal = Principal::load(tx, Some(model), &user, &org_id, &now)?;
            let until = match (ends, principal.changes_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            Ok(Some((
                Resolved {
                    principal,
                    credential,
                    key_kind,
                    read_only,
                    session_id,
                },
                until,
            )))
        })
        .map_err(to_api)
}

/// Resolved credentials of a running server, kept while nothing that could
/// change them has changed: every change to users, memberships, teams,
/// assignments, keys, sessions, shares, settings or the applied artifact moves
/// the database's change counter (in any process), and an entry is used only at
/// the counter it was made at, and only until its key, session or an
/// assignment in force ends. A revocation therefore acts on the next request.
#[derive(Default)]
pub struct CredentialCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, Cached>>,
}

struct Cached {
    counter: i64,
    model: usize,
    until: Option<time::OffsetDateTime>,
    resolved: Resolved,
}

/// At most this many credentials are remembered; past it the cache starts over.
const CACHED_CREDENTIALS: usize = 4096;

impl CredentialCache {
    /// `resolve_token`, answered from the cache when `counter` (read for this
    /// request) and `model` are those the entry was made with.
    pub fn resolve(
        &self,
        instance: &Instance,
        model: &std::sync::Arc<Model>,
        token: &str,
        counter: i64,
    ) -> Result<Option<Resolved>, ApiError> {
        if token.len() > crate::limits::MAX_TOKEN_BYTES {
            return Ok(None);
        }
        let hash = token_hash(token);
        let now = timefmt::now();
        let model_id = std::sync::Arc::as_ptr(model) as usize;
        if let Ok(entries) = self.entries.lock()
            && let Some(hit) = entries.get(&hash)
            && hit.counter == counter
            && hit.model == model_id
            && hit.until.is_none_or(|u| now < u)
        {
            return Ok(Some(hit.resolved.clone()));
        }
        let Some((resolved, until)) = resolve_hashed(instance, model, token, &hash, &now)? else {
            return Ok(None);
        };
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CACHED_CREDENTIALS {
                entries.clear();
            }
            entries.insert(
                hash,
                Cached {
                    counter,
                    model: model_id,
                    until,
                    resolved: resolved.clone(),
                },
            );
        }
        Ok(Some(resolved))
    }
}

/// A key that exists, whatever its state (revoked, expired, its user disabled):
/// (key id, user id, email), so that a refusal of it can be audited.
pub fn known_key(
    instance: &Instance,
    token: &str,
) -> Result<Option<(String, String, String)>, ApiError> {
    if !token.starts_with(API_KEY_PREFIX) || token.len() > crate::limits::MAX_TOKEN_BYTES {
        return Ok(None);
    }
    let hash = token_hash(token);
    instance
        .store
        .read(|tx| {
            let Some(key) = tx.apikey_by_hash(&hash)? else {
                return Ok(None);
            };
            let email = tx
                .user_by_id(&key.user_id)?
                .map(|u| u.email)
                .unwrap_or_default();
            Ok(Some((key.id, key.user_id, email)))
        })
        .map_err(to_api)
}

/// Whether the token is refused outright (for the `unauthenticated` answer).
pub fn require(resolved: Option<Resolved>) -> Result<Resolved, ApiError> {
    resolved.ok_or_else(unauthenticated)
}

/// A sign-in attempt: who, from where, through which request.
pub struct Attempt<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub organization: Option<&'a str>,
    pub address: Option<IpAddr>,
    pub request_id: &'a str,
}

/// The key a client address is counted under: IPv6 by its /64 (one host holds
/// a whole /64), IPv4 by the address; a loopback peer is a local proxy whose
/// clients cannot be told apart, so it has no key of its own.
fn address_key(address: Option<IpAddr>) -> Option<String> {
    match address?.to_canonical() {
        ip if ip.is_loopback() => None,
        IpAddr::V4(v4) => Some(v4.to_string()),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            Some(format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
        }
    }
}

/// The throttle keys of one attempt.
struct Keys {
    /// (key, backoff): pair, account and, when the client is known, address.
    counted: Vec<(String, Backoff)>,
    /// The account's own key, which a known address does not wait for.
    account: String,
    /// Marks the address as one this account signed in from.
    known: String,
}

fn throttle_keys(email: &str, address: Option<IpAddr>) -> Keys {
    let addr = address_key(address);
    let place = addr.clone().unwrap_or_else(|| "local".into());
    let account = format!("account:{email}");
    let mut counted = vec![
        (format!("pair:{email}|{place}"), PAIR_BACKOFF),
        (account.clone(), ACCOUNT_BACKOFF),
    ];
    if let Some(a) = addr {
        counted.push((format!("address:{a}"), ADDRESS_BACKOFF));
    }
    Keys {
        counted,
        account,
        known: format!("known:{email}|{place}"),
    }
}

/// Count this attempt against every key before its password is checked: refused
/// (with the seconds to wait, and whether this wait was audited already) while a
/// key is backing off.
fn reserve(
    tx: &mut dyn Tx,
    keys: &Keys,
    now: time::OffsetDateTime,
) -> anyhow::Result<Result<(), (u64, bool)>> {
    let known = tx.throttle_get(&keys.known)?.is_some_and(|r| {
        timefmt::parse_rfc3339(&r.window_start).is_some_and(|at| now - at < KNOWN_FOR)
    });
    let mut rows = Vec::new();
    let mut wait = 0u64;
    let mut blocking = Vec::new();
    for (key, backoff) in &keys.counted {
        let row = tx.throttle_get(key)?.filter(|r| {
            timefmt::parse_rfc3339(&r.window_start)
                .is_some_and(|start| now - start < backoff.window)
        });
        let blocked_for = row
            .as_ref()
            .and_then(|r| r.blocked_until.as_deref())
            .and_then(timefmt::parse_rfc3339)
            .filter(|until| *until > now)
            .map(|until| (until - now).whole_seconds().max(1) as u64);
        // The owner, from an address they signed in from before, does not wait
        // for guesses others made at their account.
        if let Some(seconds) = blocked_for
            && !(known && *key == keys.account)
        {
            wait = wait.max(seconds);
            blocking.push(key.clone());
        }
        rows.push((key, backoff, row));
    }
    if wait > 0 {
        // One audit row per wait and key, not one per refused attempt: a flood of
        // refusals must not flood the log.
        let mut reported = true;
        for key in &blocking {
            if let Some(mut row) = tx.throttle_get(key)?
                && !row.reported
            {
                reported = false;
                row.reported = true;
                tx.throttle_put(&row)?;
            }
        }
        return Ok(Err((wait, reported)));
    }
    for (key, backoff, row) in rows {
        let failures = row.as_ref().map(|r| r.failures).unwrap_or(0) + 1;
        let window_start = row
            .map(|r| r.window_start)
            .unwrap_or_else(|| timefmt::rfc3339_micros(now));
        let pause = backoff.wait_after(failures);
        tx.throttle_put(&ThrottleRow {
            key: key.clone(),
            failures,
            window_start,
            blocked_until: (!pause.is_zero()).then(|| {
                timefmt::rfc3339_micros(now + time::Duration::try_from(pause).unwrap_or_default())
            }),
            reported: false,
        })?;
    }
    Ok(Ok(()))
}

/// A right password: the pair starts afresh, the account and the address get
/// back the attempt this one reserved (an owner's sign-in must not give someone
/// guessing elsewhere a fresh budget), and the address becomes known to the
/// account.
fn release(tx: &mut dyn Tx, keys: &Keys, now: time::OffsetDateTime) -> anyhow::Result<()> {
    for (key, backoff) in &keys.counted {
        if key.starts_with("pair:") {
            tx.throttle_delete(key)?;
        } else if let Some(mut row) = tx.throttle_get(key)? {
            row.failures = (row.failures - 1).max(0);
            if backoff.wait_after(row.failures).is_zero() {
                row.blocked_until = None;
            }
            tx.throttle_put(&row)?;
        }
    }
    tx.throttle_put(&ThrottleRow {
        key: keys.known.clone(),
        failures: 0,
        window_start: timefmt::rfc3339_micros(now),
        blocked_until: None,
        reported: false,
    })?;
    Ok(())
}

fn client_of(address: Option<IpAddr>) -> Option<Value> {
    address.map(|ip| json!({ "address": ip.to_string() }))
}

/// `POST /api/v1/auth/login` (and upstream's `/auth/sign-in/email`): email,
/// password and, for members of several, the organization → an expiring session
/// token. A failure answers the same whether or not the email exists.
pub fn sign_in(instance: &Instance, attempt: &Attempt<'_>) -> Result<Value, ApiError> {
    if attempt.email.trim().len() > MAX_EMAIL_BYTES || attempt.password.len() > 4096 {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the email or the password is far too long",
        ));
    }
    let email = identity::normalize_email(attempt.email)
        .unwrap_or_else(|_| attempt.email.trim().to_ascii_lowercase());
    let keys = throttle_keys(&email, attempt.address);
    let mut origin = Origin {
        actor: json!({ "email_attempted": email }),
        via: Via::Api,
        client: client_of(attempt.address),
        credential: None,
        request_id: Some(attempt.request_id.to_string()),
    };
    let reserved = instance
        .store
        .write(|tx| reserve(tx, &keys, timefmt::now()))
        .map_err(to_api)?;
    if let Err((wait, reported)) = reserved {
        if reported {
            tracing::info!(request_id = %attempt.request_id, "sign-in refused while waiting (already audited)");
        } else {
            let event = Event::new("auth.login")
                .object("session")
                .outcome(Outcome::Denied, "too_many_attempts")
                .changes(json!({ "reason": "throttled", "retry_after_seconds": wait }));
            if let Err(e) = instance
                .store
                .write(|tx| audit::append(tx, &origin, event).map(|_| ()))
            {
                tracing::error!(error = %e, "could not audit a throttled sign-in");
            }
        }
        return Err(ApiError::new(
            429,
            "too_many_attempts",
            format!("too many failed sign-ins; try again in {wait} s"),
        ));
    }
    // Password hashing is deliberately expensive: at most two at a time.
    let slot = slots::take();
    let user = instance
        .store
        .read(|tx| Ok(tx.user_by_email(&email)?))
        .map_err(to_api)?;
    // Spend the same work whether or not the user exists.
    let ok = match user.as_ref().and_then(|u| u.password_hash.as_deref()) {
        Some(hash) => identity::verify_password(hash, attempt.password),
        None => {
            let _ = identity::verify_password(dummy_hash(), attempt.password);
            false
        }
    };
    drop(slot);
    if let Some(u) = &user {
        origin.actor = json!({ "user_id": u.id, "email": u.email });
    }
    let failed = |reason: &str| {
        let event = Event::new("auth.login")
            .object("session")
            .outcome(Outcome::Denied, "invalid_credentials")
            .changes(json!({ "reason": reason }));
        if let Err(e) = instance
            .store
            .write(|tx| audit::append(tx, &origin, event).map(|_| ()))
        {
            tracing::error!(error = %e, "could not audit a failed sign-in");
        }
        ApiError::new(
            401,
            "invalid_credentials",
            "the email or the password is wrong",
        )
    };
    let Some(user) = user.filter(|_| ok) else {
        return Err(failed("wrong email or password"));
    };
    if user.disabled {
        return Err(failed("user disabled"));
    }
    // The password was right: that counts as such whatever happens next (a
    // member of several organizations who named none, say).
    instance
        .store
        .write(|tx| release(tx, &keys, timefmt::now()))
        .map_err(to_api)?;
    let (token, hash) = identity::new_token(SESSION_PREFIX);
    origin.actor = json!({ "user_id": user.id, "email": user.email });
    instance
        .store
        .write(|tx| {
            let org = identity::credential_org(tx, &user, attempt.organization)
                .map_err(|e| ApiError::bad_request("organization_required", e.to_string()))?;
            let now = timefmt::now();
            let session = SessionRow {
                id: uuid::Uuid::now_v7().to_string(),
                user_id: user.id.clone(),
                org_id: org.id.clone(),
                hash: hash.clone(),
                created_at: timefmt::rfc3339(now),
                expires_at: timefmt::rfc3339(now + time::Duration::hours(SESSION_HOURS)),
                revoked_at: None,
            };
            tx.session_insert(&session)?;
            let mut origin = origin.clone();
            origin.credential = Some(session.id.clone());
            origin.actor["organization_id"] = json!(org.id);
            audit::append(
                tx,
                &origin,
                Event::new("auth.login")
                    .object("session")
                    .record(&session.id)
                    .changes(json!({ "organization": org.name, "expires_at": session.expires_at })),
            )?;
            Ok(json!({
                "token": token,
                "expires_at": session.expires_at,
                "user": { "id": user.id, "email": user.email },
                "organization": org.name,
            }))
        })
        .map_err(to_api)
}

/// End a session (`POST /api/v1/auth/logout`).
pub fn sign_out(
    instance: &Instance,
    origin: &Origin,
    session_id: Option<&str>,
) -> Result<Value, ApiError> {
    let Some(session_id) = session_id else {
        return Err(ApiError::bad_request(
            "not_a_session",
            "logout ends sessions; API keys are revoked with `objectos apikey revoke`",
        ));
    };
    instance
        .store
        .write(|tx| {
            tx.session_revoke(session_id, &timefmt::rfc3339(timefmt::now()))?;
            audit::append(
                tx,
                origin,
                Event::new("auth.logout")
                    .object("session")
                    .record(session_id),
            )?;
            Ok(json!({ "logged_out": true }))
        })
        .map_err(to_api)
}

/// An argon2id hash of a random password, made once: verifying against it costs
/// what a real verification costs, so timing does not tell whether an email exists.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        identity::hash_password(&uuid::Uuid::new_v4().to_string()).unwrap_or_default()
    })
}

/// A cap on concurrent password verifications (argon2 is meant to be costly).
mod slots {
    use std::sync::{Condvar, Mutex};

    const CONCURRENT: usize = 2;
    static SLOTS: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

    /// One of the few verifications allowed at once; freed on drop.
    pub struct Slot;

    pub fn take() -> Slot {
        let (lock, cvar) = &SLOTS;
        if let Ok(mut busy) = lock.lock() {
            while *busy >= CONCURRENT {
                match cvar.wait(busy) {
                    Ok(b) => busy = b,
                    Err(_) => return Slot,
                }
            }
            *busy += 1;
        }
        Slot
    }

    impl Drop for Slot {
        fn drop(&mut self) {
            let (lock, cvar) = &SLOTS;
            if let Ok(mut busy) = lock.lock() {
                *busy = busy.saturating_sub(1);
            }
            cvar.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_the_first_past_the_free_failures_and_stop_at_the_cap() {
        let b = PAIR_BACKOFF;
        assert_eq!(b.wait_after(5), Duration::ZERO);
        assert_eq!(b.wait_after(6), Duration::from_secs(1));
        assert_eq!(b.wait_after(7), Duration::from_secs(2));
        assert_eq!(b.wait_after(12), Duration::from_secs(60));
        assert_eq!(b.wait_after(10_000), Duration::from_secs(60));
    }

    #[test]
    fn the_bounds_per_window_are_what_docs_limits_says() {
        assert_eq!(PAIR_BACKOFF.max_failures_in_window(), 25);
        assert_eq!(ACCOUNT_BACKOFF.max_failures_in_window(), 70);
        assert_eq!(ADDRESS_BACKOFF.max_failures_in_window(), 20);
    }

    #[test]
    fn addresses_are_keyed_by_host_and_ipv6_by_its_slash_64() {
        let key = |s: &str| address_key(Some(s.parse().unwrap()));
        assert_eq!(key("192.0.2.7"), Some("192.0.2.7".into()));
        assert_eq!(key("::ffff:192.0.2.7"), Some("192.0.2.7".into()));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("127.0.0.1"), None);
        assert_eq!(key("::1"), None);
    }
}
