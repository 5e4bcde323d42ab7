//! The pending-action queue over REST, for reviewers and requesters (user keys
//! and sessions; agent keys are refused like on every REST route).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::queue::Queue;
use crate::server::{ApiResult, AppState, Body, json_body, with_records};

/// The statuses a pending action can have (`?status=`; the OpenAPI document
/// lists the same).
pub(super) const STATUSES: &[&str] = &[
    "pending",
    "approved",
    "applied",
    "failed",
    "rejected",
    "cancelled",
    "expired",
];

pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> ApiResult {
    let items = with_records(state, headers, move |r, a| {
        let mut status = None;
        for (key, value) in &params {
            match key.as_str() {
                "status" if value == "all" => {}
                "status" if STATUSES.contains(&value.as_str()) => status = Some(value.clone()),
                "status" => {
                    return Err(ApiError::bad_request(
                        "invalid_query",
                        format!("`status` is one of {} or `all`", STATUSES.join(", ")),
                    ));
                }
                other => {
                    return Err(ApiError::bad_request(
                        "invalid_query",
                        format!("`{other}` is not a parameter here; use status"),
                    ));
                }
            }
        }
        Queue::new(r).list(&a.caller, status.as_deref())
    })
    .await?;
    Ok(axum::Json(json!({ "pendingActions": items })).into_response())
}

pub(super) async fn get(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let item = with_records(state, headers, move |r, a| {
        Queue::new(r).get(&a.caller, &id)
    })
    .await?;
    Ok(axum::Json(item).into_response())
}

pub(super) async fn approve(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let item = with_records(state, headers, move |r, a| {
        Queue::new(r).approve(&a.caller, &id)
    })
    .await?;
    Ok(axum::Json(item).into_response())
}

pub(super) async fn reject(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult {
    let item = with_records(state, headers, move |r, a| {
        let body = json_body(&body)?;
        let reason = body
            .get("reason")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad_request("invalid_body", "a rejection needs a `reason`"))?;
        Queue::new(r).reject(&a.caller, &id, reason)
    })
    .await?;
    Ok(axum::Json(item).into_response())
}

pub(super) async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let item = with_records(state, headers, move |r, a| {
        Queue::new(r).cancel(&a.caller, &id)
    })
    .await?;
    Ok(axum::Json(item).into_response())
}
