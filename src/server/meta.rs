//! Metadata, actions and discovery, as upstream has them: `GET /api/v1/meta`,
//! `/meta/{type}` (`{type, items}`) and `/meta/{type}/{name}` (`{type, name,
//! item}`), with the caller's view only; `POST /api/v1/actions/{object}/{action}
//! [/{id}]` answering `{success, data}` (and objectos's older
//! `/api/v1/actions/{name}`); and the discovery document, which says what this
//! server is and speaks, and nothing about data, users or keys.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::server::{ApiResult, AppState, Body, json_body, with_records};

/// The metadata types objectos serves, singular as upstream names them.
fn meta_type(name: &str) -> Result<&'static str, ApiError> {
    match name {
        "object" | "objects" => Ok("object"),
        "action" | "actions" => Ok("action"),
        _ => Err(ApiError::not_found(format!(
            "no metadata type `{name}`; objectos serves `object` and `action`"
        ))),
    }
}

pub(super) async fn types(State(state): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult {
    with_records(state, headers, |_, _| Ok(())).await?;
    Ok(axum::Json(json!({ "types": ["object", "action"] })).into_response())
}

pub(super) async fn items(
    State(state): State<Arc<AppState>>,
    Path(kind): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let kind = meta_type(&kind)?;
    let items = with_records(state, headers, move |r, a| {
        Ok(match kind {
            "object" => r.meta_objects(&a.caller),
            _ => r.meta_actions(&a.caller),
        })
    })
    .await?;
    Ok(axum::Json(json!({ "type": kind, "items": items })).into_response())
}

pub(super) async fn item(
    State(state): State<Arc<AppState>>,
    Path((kind, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let kind = meta_type(&kind)?;
    let item_name = name.clone();
    let item = with_records(state, headers, move |r, a| match kind {
        "object" => r.meta_object(&a.caller, &name),
        _ => r.meta_action(&a.caller, &name),
    })
    .await?;
    Ok(axum::Json(json!({ "type": kind, "name": item_name, "item": item })).into_response())
}

/// The record an action runs on, from the path or the body (`recordId`; both
/// must then name the same record). objectos runs only actions that apply the
/// patch their app declares, and those take no parameters: `params` may be
/// absent, `null` or `{}`, and any parameter in it is refused rather than
/// ignored. The checks look at the body alone, so they answer alike whatever
/// the action and the record are, and whether the caller may see them.
fn action_input(
    body: &axum::body::Bytes,
    path_id: Option<String>,
) -> Result<Option<String>, ApiError> {
    let invalid = |message: String| ApiError::bad_request("invalid_body", message);
    let body = if body.is_empty() {
        Value::Object(Default::default())
    } else {
        json_body(body)?
    };
    let map = body
        .as_object()
        .ok_or_else(|| invalid("the body is `{recordId?, params?}`".into()))?;
    for key in map.keys() {
        if key != "recordId" && key != "params" {
            return Err(invalid(format!(
                "`{key}` is not part of an action call; send `{{recordId?, params?}}`"
            )));
        }
    }
    match map.get("params") {
        None | Some(Value::Null) => {}
        Some(Value::Object(params)) => {
            if let Some(name) = params.keys().next() {
                return Err(invalid(format!(
                    "`{name}` is not a parameter of this action: objectos's actions take no parameters (they apply the patch their app declares); send `params` empty or leave it out"
                )));
            }
        }
        Some(_) => return Err(invalid("`params` is an object".into())),
    }
    let body_id = match map.get("recordId") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(_) => return Err(invalid("`recordId` is a record's id (a string)".into())),
    };
    match (path_id, body_id) {
        (Some(path), Some(body)) if path != body => Err(invalid(
            "the path names one record and `recordId` another; give the record once, or the same in both"
                .into(),
        )),
        (path, body) => Ok(path.or(body)),
    }
}

/// `POST /api/v1/actions/{name}` (objectos's route): the updated record.
pub(super) async fn run_named(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult {
    let record = with_records(state, headers, move |r, a| {
        let id = action_input(&body, None)?;
        r.run_action(&a.caller, &name, None, id.as_deref())
    })
    .await?;
    Ok(axum::Json(record).into_response())
}

/// `POST /api/v1/actions/{object}/{action}[/{id}]` (upstream's route):
/// `{success: true, data: {object, id, record}}`.
pub(super) async fn run(
    State(state): State<Arc<AppState>>,
    Path(path): Path<Vec<(String, String)>>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult {
    let segment = |key: &str| path.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let (object, action) = (
        segment("object").unwrap_or_default(),
        segment("action").unwrap_or_default(),
    );
    let path_id = segment("id");
    let shown = object.clone();
    let record = with_records(state, headers, move |r, a| {
        let id = action_input(&body, path_id)?;
        r.run_action(&a.caller, &action, Some(&object), id.as_deref())
    })
    .await?;
    let id = record.get("id").cloned().unwrap_or(Value::Null);
    Ok(axum::Json(json!({
        "success": true,
        "data": { "object": shown, "id": id, "record": record },
    }))
    .into_response())
}

/// The discovery document (`GET /api/v1/discovery`, `GET /api/v1` and
/// `GET /.well-known/objectstack`), served without credentials: versions, routes
/// and features only.
pub(super) async fn discovery() -> axum::response::Response {
    let enabled = |on: bool| json!({ "enabled": on });
    let mut response = axum::Json(json!({
        "name": "objectos",
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": crate::model::PROTOCOL_MAJOR,
        "environment": "production",
        "routes": {
            "data": "/api/v1/data",
            "metadata": "/api/v1/meta",
            "auth": "/api/v1/auth",
            "discovery": "/api/v1/discovery",
            "mcp": "/api/v1/mcp",
            "openapi": "/api/v1/openapi.json",
        },
        "locale": { "default": "en", "supported": ["en"], "timezone": "UTC" },
        "services": {
            "data": { "enabled": true, "status": "available", "route": "/api/v1/data" },
            "metadata": { "enabled": true, "status": "available", "route": "/api/v1/meta" },
            "auth": { "enabled": true, "status": "available", "route": "/api/v1/auth" },
            "mcp": { "enabled": true, "status": "available", "route": "/api/v1/mcp" },
        },
        "capabilities": {
            "comments": enabled(false),
            "automation": enabled(false),
            "cron": enabled(false),
            "search": enabled(true),
            "export": enabled(false),
            "chunkedUpload": enabled(false),
            "transactionalBatch": enabled(false),
            "websockets": enabled(false),
            "files": enabled(false),
            "analytics": enabled(false),
            "ai": enabled(false),
            "notifications": enabled(false),
            "i18n": enabled(false),
        },
        "scoping": { "enabled": false, "resolution": "auto", "scoped": false },
    }))
    .into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}
