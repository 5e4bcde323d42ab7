//! The HTTP API (docs/http-api.md): routes, authentication, limits, request ids, logs and
//! graceful shutdown. Handlers parse, authenticate and call the records service on
//! a blocking thread; they never touch the database themselves.

mod assistant;
pub mod auth;
mod conn;
mod data;
pub mod mcp;
mod meta;
pub mod notify;
pub mod openapi;
mod pending;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::instance::Instance;
use crate::model::Model;
use crate::query::request;
use crate::records::{Records, to_api};

/// Limits of the HTTP surface.
#[derive(Debug, Clone)]
pub struct Limits {
    pub body_bytes: usize,
    pub request_timeout: Duration,
    /// Connections open at once; past it, new ones wait to be accepted.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, and stay
    /// silent (sending and reading nothing) on an open connection.
    pub client_timeout: Duration,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: auth::TrustedProxies,
    /// Browser origins allowed to call the MCP endpoint.
    pub mcp_origins: Vec<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes: crate::limits::MAX_BODY_BYTES,
            request_timeout: Duration::from_secs(crate::limits::REQUEST_TIMEOUT_SECS),
            max_connections: crate::limits::MAX_CONNECTIONS,
            client_timeout: Duration::from_secs(crate::limits::CLIENT_TIMEOUT_SECS),
            trusted_proxies: auth::TrustedProxies::default(),
            mcp_origins: Vec::new(),
        }
    }
}

pub struct AppState {
    pub instance: Instance,
    trusted_proxies: auth::TrustedProxies,
    /// The applied model, with the change counter it was last confirmed at and
    /// the artifact seq it was loaded from.
    model: RwLock<Arc<LoadedModel>>,
    last_checkpoint: std::sync::atomic::AtomicI64,
    /// The newest audit seq seen, read with the change counter at the start
    /// of each request (so a request costs no read of its own for it).
    seen_head: std::sync::atomic::AtomicI64,
    /// The MCP endpoint's sessions and allowed origins.
    pub(crate) mcp: mcp::Endpoint,
    /// Credentials resolved, while the change counter stands still.
    credentials: crate::identity::signin::CredentialCache,
    /// Assistant conversations with a turn under way.
    assistant_turns: assistant::Turns,
}

struct LoadedModel {
    counter: i64,
    seq: i64,
    /// When the trust store last changed, as the model was last checked.
    trust_mark: Option<String>,
    model: Arc<Model>,
}

impl AppState {
    /// The applied model, reloaded (and re-verified) when a new artifact was
    /// applied meanwhile, so no rule outlives a change. The change counter is the
    /// cheap signal: only when it moved is the artifact seq looked at.
    fn model(&self) -> Result<Arc<LoadedModel>, ApiError> {
        // Which model and credentials to serve with: nothing of it is answered.
        let (counter, head) = self
            .instance
            .store
            .peek(|tx| Ok((tx.change_counter()?, tx.audit_head()?)))
            .map_err(to_api)?;
        if let Some((seq, _)) = head {
            self.seen_head
                .fetch_max(seq, std::sync::atomic::Ordering::Relaxed);
        }
        let current = self
            .model
            .read()
            .map(|m| m.clone())
            .map_err(|_| ApiError::internal())?;
        if current.counter == counter {
            return Ok(current);
        }
        let (seq, trust_mark) = self
            .instance
            .store
            .read(|tx| {
                Ok((
                    tx.artifact_seq()?.unwrap_or(0),
                    tx.meta_get(crate::instance::TRUST_CHANGED)?,
                ))
            })
            .map_err(to_api)?;
        let fresh = if current.seq == seq && current.trust_mark == trust_mark {
            Arc::new(LoadedModel {
                counter,
                seq,
                trust_mark,
                model: Arc::clone(&current.model),
            })
        } else {
            let (seq, model) = load_model(&self.instance).map_err(|e| {
                tracing::error!(error = %format!("{e:#}"), "cannot load the applied artifact");
                ApiError::new(503, "not_ready", "the applied artifact cannot be loaded")
            })?;
            Arc::new(LoadedModel {
                counter,
                seq,
                trust_mark,
                model: Arc::new(model),
            })
        };
        if let Ok(mut slot) = self.model.write() {
            *slot = fresh.clone();
        }
        Ok(fresh)
    }

    /// A request's credential, through the cache, at the counter `model` was
    /// confirmed at for this request.
    fn resolve(
        &self,
        model: &LoadedModel,
        token: &str,
    ) -> Result<Option<crate::identity::signin::Resolved>, ApiError> {
        self.credentials
            .resolve(&self.instance, &model.model, token, model.counter)
    }

    /// A checkpoint every 1,000 rows (the minute timer covers the rest), as
    /// of the newest row the last request start saw. The first request to see
    /// the log 1,000 rows past the last checkpoint claims the next one; the
    /// others go on (each of the requests that ended meanwhile used to write
    /// one of its own, one after the other behind the log's lock: seven lines
    /// per thousand rows under a steady stream of creates, and each of those
    /// requests held for milliseconds).
    fn checkpoint_every_thousand(&self) {
        use std::sync::atomic::Ordering;
        let seq = self.seen_head.load(Ordering::Relaxed);
        let last = self.last_checkpoint.load(Ordering::Relaxed);
        if seq - last >= 1000
            && self
                .last_checkpoint
                .compare_exchange(last, seq, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.checkpoint();
        }
    }

    fn checkpoint(&self) {
        use std::sync::atomic::Ordering;
        match self.instance.checkpoint_if_behind() {
            Ok(Some(written)) => {
                self.last_checkpoint
                    .fetch_max(written.seq, Ordering::Relaxed);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "could not write the audit checkpoint")
            }
        }
    }
}

fn load_model(instance: &Instance) -> anyhow::Result<(i64, Model)> {
    let applied = crate::instance::applied::require(instance)?;
    Ok((applied.row.seq, applied.model))
}

/// Check that the instance can serve: an applied artifact whose signer is trusted.
pub fn ready_to_serve(instance: &Instance) -> anyhow::Result<()> {
    load_model(instance).map(|_| ())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            axum::Json(json!({ "error": { "code": self.code, "message": self.message } })),
        )
            .into_response()
    }
}

pub(crate) type ApiResult = Result<Response, ApiError>;

/// How many threads run requests' database work (tokio's default is 512): enough
/// to keep every reader connection busy and to gather concurrent writers into
/// one commit, few enough that the rest queue instead of each holding a thread
/// and its memory. Measured on 2 cores under 32 connections: 8 threads cut get
/// and create throughput, 512 cost twice the memory of 32 for nothing.
pub fn blocking_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .saturating_mul(16)
        .clamp(32, 128)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|_| Err(ApiError::internal()))
}

/// A request body within `crate::limits::MAX_BODY_BYTES`; a larger one is
/// refused with a JSON error naming the limit.
pub struct Body(pub Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(Body)
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        413,
                        "body_too_large",
                        format!(
                            "the body is larger than {} bytes (limit `body_bytes`)",
                            crate::limits::MAX_BODY_BYTES
                        ),
                    )
                } else {
                    ApiError::bad_request("invalid_body", "the body could not be read")
                }
            })
    }
}

pub(crate) fn json_body(bytes: &Bytes) -> Result<Value, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the request needs a JSON body",
        ));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        if e.to_string().contains("recursion limit") {
            request::over_limit(
                "json_depth",
                format!(
                    "the body nests deeper than {} levels",
                    crate::limits::MAX_JSON_DEPTH
                ),
            )
        } else {
            ApiError::bad_request("invalid_body", format!("the body is not JSON: {e}"))
        }
    })?;
    if crate::limits::json_depth(&value) > crate::limits::MAX_JSON_DEPTH {
        return Err(request::over_limit(
            "json_depth",
            format!(
                "the body nests deeper than {} levels",
                crate::limits::MAX_JSON_DEPTH
            ),
        ));
    }
    if let Some(key) = duplicate_key(bytes) {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!("the body names `{key}` twice in one object; name each key once"),
        ));
    }
    Ok(value)
}

/// The first key that one object of the JSON text `bytes` names twice. A parser
/// keeps one of the two values and drops the other without a word, so a body
/// that says two things is refused rather than read as one of them.
pub(crate) fn duplicate_key(bytes: &[u8]) -> Option<String> {
    use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

    const DUPLICATE: &str = "duplicate key: ";

    struct Unique;
    struct UniqueVisitor;

    impl<'de> serde::Deserialize<'de> for Unique {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Unique, D::Error> {
            d.deserialize_any(UniqueVisitor)
        }
    }

    impl<'de> Visitor<'de> for UniqueVisitor {
        type Value = Unique;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_unit<E>(self) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
            while seq.next_element::<Unique>()?.is_some() {}
            Ok(Unique)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<Unique>()?;
                if seen.contains(&key) {
                    return Err(de::Error::custom(format!("{DUPLICATE}{key}")));
                }
                seen.insert(key);
            }
            Ok(Unique)
        }
    }

    // serde_json's message is ours, then ` at line L column C`.
    let error = serde_json::from_slice::<Unique>(bytes).err()?.to_string();
    let key = error.strip_prefix(DUPLICATE)?;
    Some(
        key.rsplit_once(" at line ")
            .map_or(key, |(k, _)| k)
            .to_string(),
    )
}

pub(crate) fn object_body(bytes: &Bytes) -> Result<Map<String, Value>, ApiError> {
    match json_body(bytes)? {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::bad_request(
            "invalid_body",
            "the body is a JSON object of field values",
        )),
    }
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// Authenticate and run `work` with the records service, on a blocking thread.
pub(crate) async fn with_records<T: Send + 'static>(
    state: Arc<AppState>,
    headers: HeaderMap,
    work: impl FnOnce(&Records<'_>, &auth::Authenticated) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let rid = request_id(&headers);
    blocking(move || {
        let model = state.model()?;
        let authed = auth::authenticate(
            &state.instance,
            &|t| state.resolve(&model, t),
            &headers,
            &rid,
        )?;
        let records = Records::new(&state.instance, &model.model);
        let out = work(&records, &authed);
        state.checkpoint_every_thousand();
        out
    })
    .await
}

async fn audit_events(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult {
    let events = with_records(state, headers, move |r, a| {
        let from = match params.get("from").map(|v| v.parse::<i64>()) {
            None => 1,
            Some(Ok(n)) if n >= 1 => n,
            Some(_) => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    "`from` must be a sequence number (a whole number from 1)",
                ));
            }
        };
        let limit = match params.get("limit").map(|v| v.parse::<u64>()) {
            None => crate::limits::DEFAULT_AUDIT_PAGE,
            Some(Ok(n)) if (1..=crate::limits::MAX_AUDIT_PAGE).contains(&n) => n,
            Some(Ok(_)) => {
                return Err(request::over_limit(
                    "audit_page",
                    format!("`limit` is between 1 and {}", crate::limits::MAX_AUDIT_PAGE),
                ));
            }
            Some(Err(_)) => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    "`limit` must be a whole number",
                ));
            }
        } as usize;
        r.audit_events(&a.caller, from, limit)
    })
    .await?;
    Ok(
        axum::Json(json!({ "events": events.events, "next_from": events.next_from }))
            .into_response(),
    )
}

async fn login(
    State(state): State<Arc<AppState>>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult {
    let rid = request_id(&headers);
    let address = state
        .trusted_proxies
        .client(peer.map(|c| (c.0).0), &headers);
    let out = blocking(move || {
        let body = json_body(&body)?;
        let email = body
            .get("email")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad_request("invalid_body", "`email` is missing"))?;
        let password = body
            .get("password")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad_request("invalid_body", "`password` is missing"))?;
        let org = body.get("organization").and_then(Value::as_str);
        auth::login(&state.instance, email, password, org, address, &rid)
    })
    .await?;
    Ok(axum::Json(out).into_response())
}

/// `GET /api/v1/auth/get-session`: who the credential is.
async fn session(State(state): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult {
    let out = with_records(state, headers, move |_, a| {
        Ok(json!({
            "user": { "id": a.caller.principal.user_id, "email": a.caller.principal.email },
            "session": a.session_id.as_ref().map(|id| json!({ "id": id })),
        }))
    })
    .await?;
    Ok(axum::Json(out).into_response())
}

async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult {
    let out = with_records(state, headers, move |r, a| auth::logout(r.instance, a)).await?;
    Ok(axum::Json(out).into_response())
}

/// `GET /api/v1/openapi.json`: without a credential, the routes; with one, also
/// a schema per object the caller may read (only the fields they may read).
async fn openapi_document(State(state): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult {
    let credential = headers.contains_key(axum::http::header::AUTHORIZATION)
        || headers.contains_key("x-api-key");
    let doc = if credential {
        with_records(state, headers, move |r, a| {
            Ok(openapi::document(Some(&r.meta_objects(&a.caller))))
        })
        .await?
    } else {
        openapi::document(None)
    };
    Ok(axum::Json(doc).into_response())
}

async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match blocking(move || state.model().map(|_| ())).await {
        Ok(()) => axum::Json(json!({ "status": "ready" })).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        405,
        "method_not_allowed",
        format!("this route does not take `{method}`"),
    )
}

/// Request ids in the response and the log; one log line per request (never the
/// query string or a header value, which may carry data or credentials).
async fn observe(mut req: Request, next: Next) -> Response {
    let rid = request_id(req.headers());
    if let Ok(value) = HeaderValue::from_str(&rid) {
        req.headers_mut().insert("x-request-id", value.clone());
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = Instant::now();
    let mut response = next.run(req).await;
    if let Ok(value) = HeaderValue::from_str(&rid) {
        response.headers_mut().insert("x-request-id", value);
    }
    tracing::info!(request_id = %rid, method = %method, path = %path, status = response.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request");
    response
}

/// Every refusal in the shape of the API's errors: what axum's extractors
/// refuse themselves (a path or query string that is not UTF-8, say) comes as
/// plain text, which a client cannot read as an error.
async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("the request was refused")
            .to_string()
    } else {
        text
    };
    let mut error = match status.as_u16() {
        405 => ApiError::new(405, "method_not_allowed", message),
        413 => ApiError::new(413, "body_too_large", message),
        415 => ApiError::new(415, "unsupported_media_type", message),
        other => ApiError::new(other, "invalid_request", message),
    }
    .into_response();
    for (name, value) in &parts.headers {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            error.headers_mut().insert(name.clone(), value.clone());
        }
    }
    error
}

pub fn router(state: Arc<AppState>, limits: &Limits) -> Router {
    let api = Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/sign-in/email", post(login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/sign-out", post(logout))
        .route("/api/v1/auth/get-session", get(session))
        .route("/api/v1/data/{object}", get(data::list).post(data::create))
        .route("/api/v1/data/{object}/query", post(data::query))
        .route(
            "/api/v1/data/{object}/{id}",
            get(data::get_one).patch(data::update).delete(data::delete),
        )
        .route(
            "/api/v1/data/{object}/{id}/shares",
            post(data::share).delete(data::share),
        )
        .route("/api/v1/query", post(data::query))
        .route("/api/v1/meta", get(meta::types))
        .route("/api/v1/meta/{type}", get(meta::items))
        .route("/api/v1/meta/{type}/{name}", get(meta::item))
        .route("/api/v1/actions/{name}", post(meta::run_named))
        .route("/api/v1/actions/{object}/{action}", post(meta::run))
        .route("/api/v1/actions/{object}/{action}/{id}", post(meta::run))
        .route("/api/v1/audit/events", get(audit_events))
        .route("/api/v1/pending-actions", get(pending::list))
        .route("/api/v1/pending-actions/{id}", get(pending::get))
        .route(
            "/api/v1/pending-actions/{id}/approve",
            post(pending::approve),
        )
        .route("/api/v1/pending-actions/{id}/reject", post(pending::reject))
        .route("/api/v1/pending-actions/{id}/cancel", post(pending::cancel))
        .route(
            "/api/v1/assistant/conversations",
            get(assistant::list).post(assistant::create),
        )
        .route("/api/v1/assistant/conversations/{id}", get(assistant::get))
        .route(
            "/api/v1/assistant/conversations/{id}/messages",
            post(assistant::message),
        )
        .route("/api/v1", get(meta::discovery))
        .route("/api/v1/discovery", get(meta::discovery))
        .route("/.well-known/objectstack", get(meta::discovery))
        .route("/api/v1/openapi.json", get(openapi_document))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(json_errors))
        .with_state(state.clone());
    let agents = Router::new()
        .route_service("/api/v1/mcp", mcp::service(&state))
        .layer(middleware::from_fn_with_state(state, mcp::guard));
    api.merge(agents)
        .layer(middleware::from_fn(observe))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(limits.body_bytes))
}

/// Accept connections (as many as `limits` allow) and serve `app` on them until
/// `shutdown` completes; then wait for the open ones to finish what they were
/// doing and close.
async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let listener = conn::Bounded::new(listener, limits.max_connections, limits.client_timeout);
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.client_timeout)
        .max_buf_size(crate::limits::MAX_HEADER_BYTES);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, addr) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(addr));
                tower::ServiceExt::oneshot(app.clone(), req.map(axum::body::Body::new))
            },
        );
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Serve on `listener` until `shutdown` completes; in-flight requests finish, the
/// checkpoint is written and the database closed before this returns.
pub async fn serve_with_listener(
    instance: Instance,
    listener: tokio::net::TcpListener,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(std::net::SocketAddr) + Send,
) -> anyhow::Result<()> {
    let (seq, model) = load_model(&instance)?;
    let (counter, trust_mark) = instance.store.read(|tx| {
        Ok((
            tx.change_counter()?,
            tx.meta_get(crate::instance::TRUST_CHANGED)?,
        ))
    })?;
    match crate::instance::apply::ensure_indexes(&instance, &model) {
        Ok(rebuilt) if !rebuilt.is_empty() => {
            tracing::info!(objects = %rebuilt.join(", "), "indexes rebuilt for this version")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "could not check the indexes"),
    }
    if let Err(e) = instance.store.write(|tx| Ok(tx.optimize()?)) {
        tracing::warn!(error = %e, "could not refresh the planner statistics");
    }
    let head = instance
        .store
        .read(|tx| Ok(tx.audit_head()?))?
        .map(|h| h.0)
        .unwrap_or(0);
    // Left when serving ends, before the database closes.
    let serve_mode = instance.database.serve_mode()?;
    let state = Arc::new(AppState {
        instance,
        trusted_proxies: limits.trusted_proxies.clone(),
        model: RwLock::new(Arc::new(LoadedModel {
            counter,
            seq,
            trust_mark,
            model: Arc::new(model),
        })),
        last_checkpoint: std::sync::atomic::AtomicI64::new(head),
        seen_head: std::sync::atomic::AtomicI64::new(head),
        mcp: mcp::Endpoint::new(&limits.mcp_origins)?,
        credentials: Default::default(),
        assistant_turns: Default::default(),
    });
    let app = router(state.clone(), &limits);
    let addr = listener.local_addr()?;
    let ticker_state = state.clone();
    let ticker = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.tick().await;
        loop {
            tick.tick().await;
            ticker_state.mcp.sweep(&ticker_state).await;
            let s = ticker_state.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if let Ok(model) = s.model() {
                    let records = Records::new(&s.instance, &model.model);
                    if let Err(e) = crate::queue::Queue::new(&records).expire_due() {
                        tracing::error!(error = %e, "could not expire pending actions");
                    }
                }
                if let Err(e) = s.instance.restore_audit_guards() {
                    tracing::error!(error = %format!("{e:#}"), "could not check the audit guards");
                }
                s.checkpoint();
                let _ = s.instance.store.write(|tx| Ok(tx.optimize()?));
                let forget_before = crate::timefmt::rfc3339_micros(
                    crate::timefmt::now() - time::Duration::hours(1),
                );
                let _ = s
                    .instance
                    .store
                    .write(|tx| Ok(tx.throttle_prune(&forget_before)?));
            })
            .await;
        }
    });
    tracing::info!(%addr, "listening");
    on_ready(addr);
    // Stopping ends the MCP streams too, or an open one would hold the server.
    let streams = state.mcp.cancellation();
    serve_connections(listener, app, &limits, async move {
        shutdown.await;
        streams.cancel();
    })
    .await;
    ticker.abort();
    let _ = ticker.await;
    state.mcp.shut_down(&state).await;
    tracing::info!("stopped accepting; in-flight requests finished");
    // The last reference closes the database; the checkpoint is written first.
    let s = state.clone();
    let _ = tokio::task::spawn_blocking(move || s.checkpoint()).await;
    drop(serve_mode);
    drop(state);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::duplicate_key;

    #[test]
    fn a_key_named_twice_in_one_object_is_found_at_any_depth() {
        assert_eq!(duplicate_key(br#"{"a": 1, "a": 2}"#).as_deref(), Some("a"));
        assert_eq!(
            duplicate_key(br#"{"x": [{"b": 1, "c": {"d": 1, "d": 2}}]}"#).as_deref(),
            Some("d")
        );
        // An escape spells the same key.
        assert_eq!(
            duplicate_key(br#"{"name": 1, "n\u0061me": 2}"#).as_deref(),
            Some("name")
        );
        assert_eq!(
            duplicate_key(br#"{"a at line 3": 1, "a at line 3": 2}"#).as_deref(),
            Some("a at line 3")
        );
        // The same key in different objects is no duplicate; neither is invalid JSON one.
        assert_eq!(
            duplicate_key(br#"{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}"#),
            None
        );
        assert_eq!(duplicate_key(b"{\"a\": 1"), None);
        assert_eq!(duplicate_key(b"[1, 2.5, null, true, \"s\"]"), None);
    }
}
