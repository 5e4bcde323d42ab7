//! List parameters and query bodies, parsed into one checked shape.

use std::collections::HashMap;

use serde_json::Value;

use crate::error::ApiError;
use crate::model::filter::Filter;
use crate::store::AggFn;

use crate::limits::{
    DEFAULT_PAGE as DEFAULT_LIMIT, MAX_FIELDS, MAX_GROUPS, MAX_OFFSET, MAX_PAGE as MAX_LIMIT,
};

#[derive(Debug, Clone, PartialEq)]
pub struct Aggregation {
    pub function: AggFn,
    pub field: Option<String>,
    pub alias: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QuerySpec {
    pub object: String,
    /// `None`: every readable field.
    pub fields: Option<Vec<String>>,
    pub filter: Filter,
    /// (field, descending)
    pub sort: Vec<(String, bool)>,
    pub limit: u64,
    pub offset: u64,
    pub total: bool,
    pub aggregations: Vec<Aggregation>,
    pub group_by: Vec<String>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_query", message)
}

/// A request beyond one of the limits of `crate::limits`.
pub fn over_limit(limit: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("limit_exceeded", format!("{message} (limit `{limit}`)"))
}

/// The list limits every query shape shares.
fn check_lists(spec: &QuerySpec) -> Result<(), ApiError> {
    for (what, n) in [
        ("fields", spec.fields.as_ref().map_or(0, Vec::len)),
        ("sort", spec.sort.len()),
        ("groupBy", spec.group_by.len()),
        ("aggregations", spec.aggregations.len()),
    ] {
        if n > MAX_FIELDS {
            return Err(over_limit(
                "fields",
                format!("`{what}` names {n} entries; at most {MAX_FIELDS}"),
            ));
        }
    }
    Ok(())
}

fn parse_limit(value: Option<u64>) -> Result<u64, ApiError> {
    match value {
        None => Ok(DEFAULT_LIMIT),
        Some(0) => Err(bad("`limit` must be at least 1")),
        Some(n) if n > MAX_LIMIT => Err(over_limit(
            "page",
            format!("`limit` is at most {MAX_LIMIT}"),
        )),
        Some(n) => Ok(n),
    }
}

fn parse_offset(value: Option<u64>) -> Result<u64, ApiError> {
    match value {
        Some(n) if n > MAX_OFFSET => Err(over_limit(
            "offset",
            format!("`offset` is at most {MAX_OFFSET}"),
        )),
        other => Ok(other.unwrap_or(0)),
    }
}

fn names(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

pub fn parse_filter(value: &Value) -> Result<Filter, ApiError> {
    Filter::from_json(value).map_err(|e| match e.limit {
        Some(limit) => over_limit(limit, &e),
        None => bad(format!("the filter is not valid: {e}")),
    })
}

/// `GET /api/v1/data/{object}?filter=…&fields=a,b&sort=-a,b&limit=&offset=&total=true`
pub fn from_list_params(
    object: &str,
    params: &HashMap<String, String>,
) -> Result<QuerySpec, ApiError> {
    for key in params.keys() {
        if !["filter", "fields", "sort", "limit", "offset", "total"].contains(&key.as_str()) {
            return Err(bad(format!(
                "`{key}` is not a list parameter; use filter, fields, sort, limit, offset or total"
            )));
        }
    }
    let number = |key: &str| -> Result<Option<u64>, ApiError> {
        params
            .get(key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| bad(format!("`{key}` must be a whole number")))
            })
            .transpose()
    };
    let filter = match params.get("filter") {
        None => Filter::All,
        Some(text) => {
            if text.len() > 64 * 1024 {
                return Err(over_limit("body_bytes", "the filter is larger than 64 KiB"));
            }
            let value: Value = serde_json::from_str(text)
                .map_err(|e| bad(format!("`filter` is not JSON: {e}")))?;
            parse_filter(&value)?
        }
    };
    let sort = params
        .get("sort")
        .map(|s| {
            names(s)
                .into_iter()
                .map(|n| match n.strip_prefix('-') {
                    Some(f) => (f.to_string(), true),
                    None => (n, false),
                })
                .collect()
        })
        .unwrap_or_default();
    let total = match params.get("total").map(String::as_str) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(_) => return Err(bad("`total` is `true` or `false`")),
    };
    let spec = QuerySpec {
        object: object.to_string(),
        fields: params.get("fields").map(|f| names(f)),
        filter,
        sort,
        limit: parse_limit(number("limit")?)?,
        offset: parse_offset(number("offset")?)?,
        total,
        aggregations: Vec::new(),
        group_by: Vec::new(),
    };
    check_lists(&spec)?;
    Ok(spec)
}

fn str_list(value: Option<&Value>, what: &str) -> Result<Option<Vec<String>>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(format!("`{what}` holds field names (strings)")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(bad(format!("`{what}` is an array of field names"))),
    }
}

/// `POST /api/v1/query` body.
pub fn from_body(body: &Value) -> Result<QuerySpec, ApiError> {
    let map = body
        .as_object()
        .ok_or_else(|| bad("the query is a JSON object"))?;
    for key in map.keys() {
        if ![
            "object",
            "fields",
            "where",
            "orderBy",
            "limit",
            "offset",
            "total",
            "aggregations",
            "groupBy",
        ]
        .contains(&key.as_str())
        {
            return Err(bad(format!(
                "`{key}` is not a query key; use object, fields, where, orderBy, limit, offset, total, aggregations or groupBy"
            )));
        }
    }
    let object = map
        .get("object")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("`object` is missing"))?
        .to_string();
    let filter = match map.get("where") {
        None | Some(Value::Null) => Filter::All,
        Some(w) => parse_filter(w)?,
    };
    let mut sort = Vec::new();
    if let Some(order) = map.get("orderBy") {
        let items = order
            .as_array()
            .ok_or_else(|| bad("`orderBy` is an array of `{\"field\", \"order\"}`"))?;
        for item in items {
            let field = item
                .get("field")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("each `orderBy` entry needs a `field`"))?;
            let desc = match item.get("order").and_then(Value::as_str) {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(other) => {
                    return Err(bad(format!(
                        "`{other}` is not an order; use `asc` or `desc`"
                    )));
                }
            };
            sort.push((field.to_string(), desc));
        }
    }
    let number = |key: &str| -> Result<Option<u64>, ApiError> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| bad(format!("`{key}` must be a whole number"))),
        }
    };
    let mut aggregations = Vec::new();
    if let Some(aggs) = map.get("aggregations") {
        let items = aggs
            .as_array()
            .ok_or_else(|| bad("`aggregations` is an array"))?;
        if items.len() > MAX_FIELDS {
            return Err(over_limit(
                "fields",
                format!("at most {MAX_FIELDS} aggregations"),
            ));
        }
        for (i, item) in items.iter().enumerate() {
            let function = match item.get("function").and_then(Value::as_str) {
                Some("count") => AggFn::Count,
                Some("sum") => AggFn::Sum,
                Some("avg") => AggFn::Avg,
                Some("min") => AggFn::Min,
                Some("max") => AggFn::Max,
                _ => {
                    return Err(bad(
                        "each aggregation needs a `function`: count, sum, avg, min or max",
                    ));
                }
            };
            let field = item
                .get("field")
                .and_then(Value::as_str)
                .map(str::to_string);
            if field.is_none() && function != AggFn::Count {
                return Err(bad("only `count` may go without a `field`"));
            }
            let alias = item
                .get("alias")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("agg_{i}"));
            aggregations.push(Aggregation {
                function,
                field,
                alias,
            });
        }
    }
    let group_by = str_list(map.get("groupBy"), "groupBy")?.unwrap_or_default();
    if !group_by.is_empty() && aggregations.is_empty() {
        return Err(bad("`groupBy` needs `aggregations`"));
    }
    let spec = QuerySpec {
        object,
        fields: str_list(map.get("fields"), "fields")?,
        filter,
        sort,
        limit: if aggregations.is_empty() {
            parse_limit(number("limit")?)?
        } else {
            number("limit")?.unwrap_or(MAX_GROUPS).min(MAX_GROUPS)
        },
        offset: parse_offset(number("offset")?)?,
        total: map.get("total").and_then(Value::as_bool).unwrap_or(false),
        aggregations,
        group_by,
    };
    check_lists(&spec)?;
    Ok(spec)
}
