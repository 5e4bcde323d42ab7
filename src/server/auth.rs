//! Credentials on the API: API keys and session tokens, checked on every request
//! against the database, so a revocation or a disabled user takes effect at once.

use axum::http::HeaderMap;
use serde_json::json;

use crate::audit::{self, Event, Origin, Outcome, Via};
use crate::authz::Principal;
use crate::error::ApiError;
use crate::identity::{self, API_KEY_PREFIX, SESSION_PREFIX, token_hash};
use crate::instance::Instance;
use crate::model::Model;
use crate::records::{Caller, to_api};
use crate::store::{KeyKind, SessionRow};
use crate::timefmt;

pub const SESSION_HOURS: i64 = 12;

fn unauthenticated() -> ApiError {
    ApiError::new(
        401,
        "unauthenticated",
        "a valid `Authorization: Bearer` key or session token is needed",
    )
}

/// An unreadable expiry fails closed: the credential counts as expired.
fn expired(at: Option<&str>) -> bool {
    match at {
        None => false,
        Some(text) => timefmt::parse_rfc3339(text).is_none_or(|t| t <= timefmt::now()),
    }
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Whose credential this is, and what it may do, for a REST request.
pub struct Authenticated {
    pub caller: Caller,
    pub session_id: Option<String>,
}

/// Authenticate a REST request: user keys and sessions only; agent keys are for MCP.
pub fn authenticate(
    instance: &Instance,
    model: &Model,
    headers: &HeaderMap,
    request_id: &str,
) -> Result<Authenticated, ApiError> {
    let token = bearer(headers).ok_or_else(unauthenticated)?;
    if token.len() > 256 {
        return Err(unauthenticated());
    }
    let hash = token_hash(token);
    let found = instance
        .store
        .read(|tx| {
            let (user_id, org_id, credential, kind, session_id) =
                if token.starts_with(API_KEY_PREFIX) {
                    let Some(key) = tx.apikey_by_hash(&hash)? else {
                        return Ok(None);
                    };
                    if key.revoked_at.is_some() || expired(key.expires_at.as_deref()) {
                        return Ok(None);
                    }
                    (key.user_id, key.org_id, key.id, Some(key.kind), None)
                } else if token.starts_with(SESSION_PREFIX) {
                    let Some(s) = tx.session_by_hash(&hash)? else {
                        return Ok(None);
                    };
                    if s.revoked_at.is_some() || expired(Some(&s.expires_at)) {
                        return Ok(None);
                    }
                    (s.user_id, s.org_id, s.id.clone(), None, Some(s.id))
                } else {
                    return Ok(None);
                };
            let Some(user) = tx.user_by_id(&user_id)? else {
                return Ok(None);
            };
            if user.disabled || !tx.orgs_of_user(&user.id)?.iter().any(|o| o.id == org_id) {
                return Ok(None);
            }
            let principal = Principal::load(tx, Some(model), &user, &org_id, &timefmt::now())?;
            Ok(Some((principal, credential, kind, session_id)))
        })
        .map_err(to_api)?;
    let (principal, credential, kind, session_id) = found.ok_or_else(unauthenticated)?;
    if kind == Some(KeyKind::Agent) {
        return Err(ApiError::forbidden(
            "agent_key_not_allowed",
            "agent keys work on MCP only, not on REST",
        ));
    }
    if !principal.has("api_access") {
        return Err(ApiError::forbidden(
            "api_access_required",
            "your permission sets do not grant `api_access`",
        ));
    }
    let mut origin = Origin::user(&principal.user_id, &principal.email, Via::Api);
    origin.actor["organization_id"] = json!(principal.org_id);
    origin.credential = Some(credential);
    origin.request_id = Some(request_id.to_string());
    Ok(Authenticated {
        caller: Caller { principal, origin },
        session_id,
    })
}

/// `POST /api/v1/auth/login`: email, password and (for members of several) the
/// organization → an expiring session token. The answer to a failure is the same
/// whether or not the email exists.
pub fn login(
    instance: &Instance,
    email: &str,
    password: &str,
    organization: Option<&str>,
    request_id: &str,
) -> Result<serde_json::Value, ApiError> {
    let email_norm =
        identity::normalize_email(email).unwrap_or_else(|_| email.to_ascii_lowercase());
    if throttle::locked(&email_norm) {
        return Err(ApiError::new(
            429,
            "too_many_attempts",
            "too many failed sign-ins for this email; wait a few minutes",
        ));
    }
    // Password hashing is deliberately expensive: at most two at a time.
    let slot = throttle::slot();
    let user = instance
        .store
        .read(|tx| Ok(tx.user_by_email(&email_norm)?))
        .map_err(to_api)?;
    // Spend the same work whether or not the user exists.
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let ok = match &hash {
        Some(h) => identity::verify_password(h, password),
        None => {
            let _ = identity::verify_password(dummy_hash(), password);
            false
        }
    };
    let failed = |reason: &str| {
        let mut origin = Origin {
            actor: json!({ "email_attempted": email_norm }),
            via: Via::Api,
            client: None,
            credential: None,
            request_id: Some(request_id.to_string()),
        };
        if let Some(u) = &user {
            origin.actor = json!({ "user_id": u.id, "email": u.email });
        }
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
        throttle::failed(&email_norm);
        ApiError::new(
            401,
            "invalid_credentials",
            "the email or the password is wrong",
        )
    };
    let Some(user) = user.clone().filter(|_| ok) else {
        return Err(failed("wrong email or password"));
    };
    if user.disabled {
        return Err(failed("user disabled"));
    }
    drop(slot);
    throttle::succeeded(&email_norm);
    let (token, token_hash) = identity::new_token(SESSION_PREFIX);
    let mut origin = Origin::user(&user.id, &user.email, Via::Api);
    origin.request_id = Some(request_id.to_string());
    let result = instance.store.write(|tx| {
        let org = identity::credential_org(tx, &user, organization).map_err(|e| ApiError::bad_request("organization_required", e.to_string()))?;
        let now = timefmt::now();
        let session = SessionRow {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: user.id.clone(),
            org_id: org.id.clone(),
            hash: token_hash.clone(),
            created_at: timefmt::rfc3339(now),
            expires_at: timefmt::rfc3339(now + time::Duration::hours(SESSION_HOURS)),
            revoked_at: None,
        };
        tx.session_insert(&session)?;
        origin.credential = Some(session.id.clone());
        origin.actor["organization_id"] = json!(org.id);
        audit::append(tx, &origin, Event::new("auth.login").object("session").record(&session.id).changes(json!({ "organization": org.name, "expires_at": session.expires_at })))?;
        Ok(json!({ "token": token, "expires_at": session.expires_at, "user": { "id": user.id, "email": user.email }, "organization": org.name }))
    });
    result.map_err(to_api)
}

pub fn logout(instance: &Instance, auth: &Authenticated) -> Result<serde_json::Value, ApiError> {
    let Some(session_id) = &auth.session_id else {
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
                &auth.caller.origin,
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

/// Sign-in throttling: a lockout after repeated failures for one email, and a cap
/// on concurrent password verifications (argon2 is meant to be costly).
mod throttle {
    use std::collections::HashMap;
    use std::sync::{Condvar, Mutex};
    use std::time::{Duration, Instant};

    const MAX_FAILURES: u32 = 10;
    const WINDOW: Duration = Duration::from_secs(15 * 60);
    const CONCURRENT: usize = 2;

    static FAILURES: Mutex<Option<HashMap<String, (u32, Instant)>>> = Mutex::new(None);
    static SLOTS: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

    pub fn locked(email: &str) -> bool {
        let Ok(mut guard) = FAILURES.lock() else {
            return false;
        };
        let map = guard.get_or_insert_with(HashMap::new);
        match map.get(email) {
            Some((n, since)) if since.elapsed() < WINDOW => *n >= MAX_FAILURES,
            Some(_) => {
                map.remove(email);
                false
            }
            None => false,
        }
    }

    pub fn failed(email: &str) {
        if let Ok(mut guard) = FAILURES.lock() {
            let map = guard.get_or_insert_with(HashMap::new);
            if map.len() > 100_000 {
                map.retain(|_, (_, since)| since.elapsed() < WINDOW);
            }
            let entry = map.entry(email.to_string()).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= WINDOW {
                *entry = (0, Instant::now());
            }
            entry.0 += 1;
        }
    }

    pub fn succeeded(email: &str) {
        if let Ok(mut guard) = FAILURES.lock()
            && let Some(map) = guard.as_mut()
        {
            map.remove(email);
        }
    }

    /// One of the few password verifications allowed at once; freed on drop.
    pub struct Slot;

    pub fn slot() -> Slot {
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
