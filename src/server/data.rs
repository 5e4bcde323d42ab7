//! The data routes, answered as upstream shapes them so that its client SDK works
//! unchanged: one record `{object, id, record}` (with its version as `ETag`), a
//! delete `{object, id, success: true}`, a list `{object, records, hasMore,
//! total?}`. Every route calls the records service; none touches the database.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::query::request::{self, QuerySpec};
use crate::records::{Expect, Records, etag};
use crate::server::{ApiResult, AppState, Body, json_body, object_body, with_records};

/// The body of a record answer, serialized from the record as it is (no copy
/// of it as a JSON tree first).
#[derive(serde::Serialize)]
struct RecordBody<'a> {
    object: &'a str,
    id: &'a Value,
    record: &'a Map<String, Value>,
}

/// A record answer: `{object, id, record}` with the record's version as `ETag`.
fn record_response(status: StatusCode, object: &str, record: &Map<String, Value>) -> Response {
    let tag = etag(record);
    let body = RecordBody {
        object,
        id: record.get("id").unwrap_or(&Value::Null),
        record,
    };
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(tag) = tag.and_then(|t| HeaderValue::from_str(&t).ok()) {
        response.headers_mut().insert(axum::http::header::ETAG, tag);
    }
    response
}

/// What a write expects, from `If-Match` (optional: without it, any version).
fn expect(headers: &HeaderMap) -> Result<Expect, ApiError> {
    match headers.get(axum::http::header::IF_MATCH) {
        None => Ok(Expect::Any),
        Some(value) => match value.to_str().map(str::trim) {
            Ok(tag) if !tag.is_empty() => Ok(Expect::Version(tag.to_string())),
            _ => Err(ApiError::bad_request(
                "invalid_header",
                "`If-Match` is a record's `ETag` (its `row_version`, quoted) or `*`",
            )),
        },
    }
}

/// A list or an aggregate, answered alike: aggregate rows are the `records`.
fn run_query(
    r: &Records<'_>,
    a: &crate::server::auth::Authenticated,
    spec: &QuerySpec,
) -> Result<Value, ApiError> {
    if spec.is_aggregate() {
        let rows = r.aggregate(&a.caller, spec)?;
        let total = rows.len();
        return Ok(json!({
            "object": spec.object,
            "records": rows,
            "total": total,
            "hasMore": false,
        }));
    }
    Ok(r.list(&a.caller, spec)?.into_json(&spec.object))
}

pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    Path(object): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> ApiResult {
    let body = with_records(state, headers, move |r, a| {
        let spec = request::from_list_params(&object, &params)?;
        run_query(r, a, &spec)
    })
    .await?;
    Ok(axum::Json(body).into_response())
}

/// `POST /api/v1/query` (the object in the body) and upstream's
/// `POST /api/v1/data/{object}/query`.
pub(super) async fn query(
    State(state): State<Arc<AppState>>,
    object: Option<Path<String>>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult {
    let out = with_records(state, headers, move |r, a| {
        let spec = request::from_body(&json_body(&body)?, object.as_ref().map(|p| p.0.as_str()))?;
        run_query(r, a, &spec)
    })
    .await?;
    Ok(axum::Json(out).into_response())
}

pub(super) async fn create(
    State(state): State<Arc<AppState>>,
    Path(object): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult {
    let name = object.clone();
    let record = with_records(state, headers, move |r, a| {
        let values = object_body(&body)?;
        r.create(&a.caller, &object, &values)
    })
    .await?;
    Ok(record_response(StatusCode::CREATED, &name, &record))
}

pub(super) async fn get_one(
    State(state): State<Arc<AppState>>,
    Path((object, id)): Path<(String, String)>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> ApiResult {
    let name = object.clone();
    let record = with_records(state, headers, move |r, a| {
        // A single record takes only `select`/`fields` and `expand`.
        let mut fields: Option<Vec<String>> = None;
        let mut expand = Vec::new();
        for (key, value) in &params {
            let list = value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            match key.as_str() {
                "select" | "fields" | "$select" => fields.get_or_insert_with(Vec::new).extend(list),
                "expand" | "$expand" => expand.extend(list),
                other => {
                    return Err(ApiError::bad_request(
                        "invalid_query",
                        format!(
                            "`{other}` is not a parameter of a single record; use select or expand"
                        ),
                    ));
                }
            }
        }
        r.get_shaped(&a.caller, &object, &id, fields.as_ref(), &expand)
    })
    .await?;
    Ok(record_response(StatusCode::OK, &name, &record))
}

pub(super) async fn update(
    State(state): State<Arc<AppState>>,
    Path((object, id)): Path<(String, String)>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult {
    let name = object.clone();
    let expected = expect(&headers)?;
    let record = with_records(state, headers, move |r, a| {
        let values = object_body(&body)?;
        r.update_guarded(&a.caller, &object, &id, &values, &expected)
    })
    .await?;
    Ok(record_response(StatusCode::OK, &name, &record))
}

pub(super) async fn delete(
    State(state): State<Arc<AppState>>,
    Path((object, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let expected = expect(&headers)?;
    let name = object.clone();
    let deleted = with_records(state, headers, move |r, a| {
        r.delete_guarded(&a.caller, &object, &id, &expected)
            .map(|_| id)
    })
    .await?;
    Ok(axum::Json(json!({ "object": name, "id": deleted, "success": true })).into_response())
}

pub(super) async fn share(
    State(state): State<Arc<AppState>>,
    Path((object, id)): Path<(String, String)>,
    method: axum::http::Method,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult {
    let add = method == axum::http::Method::POST;
    let result = with_records(state, headers, move |r, a| {
        let body = json_body(&body)?;
        let kind = body.get("type").and_then(Value::as_str).ok_or_else(|| {
            ApiError::bad_request("invalid_body", "`type` (`user` or `team`) is missing")
        })?;
        let value = body.get("value").and_then(Value::as_str).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_body",
                "`value` (an email or a team name) is missing",
            )
        })?;
        let edit = match body.get("accessLevel").and_then(Value::as_str) {
            None | Some("read") => false,
            Some("edit") => true,
            Some(_) => {
                return Err(ApiError::bad_request(
                    "invalid_body",
                    "`accessLevel` is `read` or `edit`",
                ));
            }
        };
        r.share(
            &a.caller,
            &object,
            &id,
            &crate::records::Share {
                kind,
                grantee: value,
                edit,
            },
            add,
        )
    })
    .await?;
    Ok((
        (if add {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        }),
        axum::Json(result),
    )
        .into_response())
}
