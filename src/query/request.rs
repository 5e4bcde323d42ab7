//! List parameters and query bodies, parsed into one checked shape. Both take
//! objectos's own names and upstream's spellings of the same thing (`select`,
//! `top`, `skip`, the OData `$`-names, `where`/`filter`/`filters`, `sort=name desc`
//! and `-name`, filter ASTs, `?field=value`), so that upstream's client SDK works
//! unchanged. Two spellings of one thing with different values, a repeated
//! single-valued parameter, and anything unknown are refused with a clear 400.
//! Aggregates take upstream's shape too: `count_distinct`, and group keys that
//! bucket a date or date-time (`{"field", "dateGranularity", "alias"}`, in UTC).

use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::limits::{
    DEFAULT_PAGE as DEFAULT_LIMIT, MAX_FIELDS, MAX_GROUPS, MAX_OFFSET, MAX_PAGE as MAX_LIMIT,
};
use crate::model::filter::Filter;
use crate::store::{AggFn, DateGranularity, GroupKey};

#[derive(Debug, Clone, PartialEq)]
pub struct Aggregation {
    pub function: AggFn,
    pub field: Option<String>,
    pub alias: String,
}

/// A text search over the fields the caller can read (or the named ones).
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub text: String,
    pub fields: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QuerySpec {
    pub object: String,
    /// `None`: every readable field.
    pub fields: Option<Vec<String>>,
    pub filter: Filter,
    /// `?field=value` equality conditions, as text: typed against the field later.
    pub equals: Vec<(String, String)>,
    /// (field, descending)
    pub sort: Vec<(String, bool)>,
    pub limit: u64,
    pub offset: u64,
    pub total: bool,
    pub aggregations: Vec<Aggregation>,
    pub group_by: Vec<GroupKey>,
    pub search: Option<Search>,
    /// Lookup fields whose records are shown in place of their ids.
    pub expand: Vec<String>,
}

impl QuerySpec {
    /// Every record of `object` the caller may read, in pages of `limit`.
    pub fn all(object: &str) -> QuerySpec {
        QuerySpec {
            object: object.to_string(),
            fields: None,
            filter: Filter::All,
            equals: Vec::new(),
            sort: Vec::new(),
            limit: DEFAULT_LIMIT,
            offset: 0,
            total: false,
            aggregations: Vec::new(),
            group_by: Vec::new(),
            search: None,
            expand: Vec::new(),
        }
    }

    /// Whether this is an aggregate query (grouped rows, not records).
    pub fn is_aggregate(&self) -> bool {
        !self.aggregations.is_empty()
    }
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
        ("expand", spec.expand.len()),
        (
            "searchFields",
            spec.search
                .as_ref()
                .and_then(|s| s.fields.as_ref())
                .map_or(0, Vec::len),
        ),
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

/// A filter as JSON: MongoDB-style (`{"stage": {"$in": [...]}}`) or upstream's
/// filter AST (`["stage", "in", [...]]`, `["and", [...], [...]]`).
pub fn parse_filter(value: &Value) -> Result<Filter, ApiError> {
    let value = match value {
        Value::Array(_) => ast_to_json(value)?,
        other => other.clone(),
    };
    Filter::from_json(&value).map_err(|e| match e.limit {
        Some(limit) => over_limit(limit, &e),
        None => bad(format!("the filter is not valid: {e}")),
    })
}

/// Upstream's filter AST as the MongoDB-style filter it means.
fn ast_to_json(ast: &Value) -> Result<Value, ApiError> {
    fn convert(node: &Value, depth: usize) -> Result<Value, ApiError> {
        if depth > crate::limits::MAX_FILTER_DEPTH {
            return Err(over_limit(
                "filter_depth",
                format!(
                    "the filter is nested deeper than {} levels",
                    crate::limits::MAX_FILTER_DEPTH
                ),
            ));
        }
        let Value::Array(items) = node else {
            return Err(bad(
                "a filter AST node is an array: `[field, op, value]` or `[\"and\"|\"or\", …]`",
            ));
        };
        match items.first() {
            Some(Value::String(logic))
                if ["and", "or"].contains(&logic.to_ascii_lowercase().as_str()) =>
            {
                let parts = items[1..]
                    .iter()
                    .map(|n| convert(n, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                if parts.is_empty() {
                    return Err(bad(format!("`{logic}` needs at least one condition")));
                }
                Ok(json!({ format!("${}", logic.to_ascii_lowercase()): parts }))
            }
            Some(Value::String(field)) => {
                let op = items
                    .get(1)
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(format!("the condition on `{field}` needs an operator")))?;
                let value = items.get(2).cloned().unwrap_or(Value::Null);
                if items.len() > 3 {
                    return Err(bad(format!(
                        "the condition on `{field}` is `[field, op, value]`"
                    )));
                }
                let cond = match op.to_ascii_lowercase().as_str() {
                    "=" | "==" | "equals" | "eq" => json!({ "$eq": value }),
                    "!=" | "<>" | "ne" | "neq" | "not_equals" => json!({ "$ne": value }),
                    ">" | "gt" | "after" => json!({ "$gt": value }),
                    ">=" | "gte" => json!({ "$gte": value }),
                    "<" | "lt" | "before" => json!({ "$lt": value }),
                    "<=" | "lte" => json!({ "$lte": value }),
                    "in" => json!({ "$in": value }),
                    "nin" | "not_in" | "notin" => json!({ "$nin": value }),
                    "contains" | "icontains" => json!({ "$contains": value }),
                    "not_contains" | "notcontains" => {
                        return Ok(json!({ "$not": { field.clone(): { "$contains": value } } }));
                    }
                    "startswith" | "starts_with" => json!({ "$startsWith": value }),
                    "endswith" | "ends_with" => json!({ "$endsWith": value }),
                    "between" => json!({ "$between": value }),
                    "is_null" | "isnull" | "is_empty" | "isempty" => json!({ "$null": true }),
                    "is_not_null" | "isnotnull" | "is_not_empty" | "isnotempty" => {
                        json!({ "$null": false })
                    }
                    other => {
                        return Err(bad(format!(
                            "`{other}` is not a filter operator objectos supports"
                        )));
                    }
                };
                Ok(json!({ field.clone(): cond }))
            }
            Some(Value::Array(_)) => {
                let parts = items
                    .iter()
                    .map(|n| convert(n, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(json!({ "$and": parts }))
            }
            None => Ok(json!({})),
            Some(_) => Err(bad(
                "a filter AST node is `[field, op, value]` or `[\"and\"|\"or\", …]`",
            )),
        }
    }
    convert(ast, 0)
}

/// A sort given as text (`-amount,name`, `amount desc, name`) or JSON (`["-a"]`,
/// `[{"field", "order"}]`, `{"field": "desc"}`).
fn parse_sort(value: &Value) -> Result<Vec<(String, bool)>, ApiError> {
    fn item(text: &str) -> Result<(String, bool), ApiError> {
        let text = text.trim();
        if let Some(field) = text.strip_prefix('-') {
            return Ok((field.trim().to_string(), true));
        }
        let mut words = text.split_whitespace();
        let field = words.next().unwrap_or("").to_string();
        let desc = match words.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(bad(format!(
                    "`{other}` is not an order; use `asc` or `desc`"
                )));
            }
        };
        if field.is_empty() || words.next().is_some() {
            return Err(bad(format!(
                "`{text}` is not a sort; use `field`, `-field` or `field desc`"
            )));
        }
        Ok((field, desc))
    }
    fn order(field: &str, order: &Value) -> Result<(String, bool), ApiError> {
        match order.as_str().map(str::to_ascii_lowercase).as_deref() {
            None | Some("asc") if !order.is_string() && !order.is_null() => {
                Err(bad(format!("the order of `{field}` is `asc` or `desc`")))
            }
            None | Some("asc") => Ok((field.to_string(), false)),
            Some("desc") => Ok((field.to_string(), true)),
            Some(other) => Err(bad(format!(
                "`{other}` is not an order; use `asc` or `desc`"
            ))),
        }
    }
    match value {
        Value::Null => Ok(Vec::new()),
        Value::String(text) => text
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(item)
            .collect(),
        Value::Array(entries) => {
            let mut out = Vec::new();
            for entry in entries {
                match entry {
                    Value::String(text) => out.push(item(text)?),
                    Value::Object(map) if map.contains_key("field") => {
                        for key in map.keys() {
                            if key != "field" && key != "order" {
                                return Err(bad(format!(
                                    "a sort entry is `{{\"field\", \"order\"}}`; `{key}` is not part of it"
                                )));
                            }
                        }
                        let field = map["field"]
                            .as_str()
                            .ok_or_else(|| bad("a sort entry's `field` is a field name"))?;
                        out.push(order(field, map.get("order").unwrap_or(&Value::Null))?);
                    }
                    Value::Object(map) => {
                        for (field, o) in map {
                            out.push(order(field, o)?);
                        }
                    }
                    _ => {
                        return Err(bad(
                            "a sort entry is a field name or `{\"field\", \"order\"}`",
                        ));
                    }
                }
            }
            Ok(out)
        }
        Value::Object(map) => map.iter().map(|(f, o)| order(f, o)).collect(),
        _ => Err(bad("a sort is text, an array or an object")),
    }
}

/// A list of names as text (`a,b`) or a JSON array of strings.
fn name_list(value: &Value, what: &str) -> Result<Vec<String>, ApiError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::String(text) => Ok(names(text)),
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(bad(format!("`{what}` holds field names (strings)"))),
            })
            .collect(),
        _ => Err(bad(format!("`{what}` is a list of field names"))),
    }
}

fn parse_bool(value: &Value, what: &str) -> Result<bool, ApiError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" || s == "1" => Ok(true),
        Value::String(s) if s == "false" || s == "0" => Ok(false),
        Value::Null => Ok(false),
        _ => Err(bad(format!("`{what}` is `true` or `false`"))),
    }
}

fn parse_number(value: &Value, what: &str) -> Result<Option<u64>, ApiError> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| bad(format!("`{what}` must be a whole number"))),
        Value::String(s) => s
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| bad(format!("`{what}` must be a whole number"))),
        _ => Err(bad(format!("`{what}` must be a whole number"))),
    }
}

fn parse_aggregations(value: &Value) -> Result<Vec<Aggregation>, ApiError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err(bad("`aggregations` is an array")),
    };
    if items.len() > MAX_FIELDS {
        return Err(over_limit(
            "fields",
            format!("at most {MAX_FIELDS} aggregations"),
        ));
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(function) = item
            .get("function")
            .and_then(Value::as_str)
            .and_then(AggFn::parse)
        else {
            return Err(bad(
                "each aggregation needs a `function`: count, count_distinct, sum, avg, min or max",
            ));
        };
        let field = item
            .get("field")
            .and_then(Value::as_str)
            .map(str::to_string);
        if field.is_none() && function != AggFn::Count {
            return Err(bad(format!(
                "`{}` needs a `field`; only `count` may go without one",
                function.as_str()
            )));
        }
        let alias = item
            .get("alias")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("agg_{i}"));
        out.push(Aggregation {
            function,
            field,
            alias,
        });
    }
    Ok(out)
}

/// Group keys: field names (text `a,b`, or an array), or upstream's
/// `{"field", "dateGranularity", "alias"}` entries, mixed as one likes; in a
/// query string, the array as JSON.
fn parse_group_by(value: &Value) -> Result<Vec<GroupKey>, ApiError> {
    const SHAPE: &str =
        "a `groupBy` entry is a field name or `{\"field\", \"dateGranularity\", \"alias\"}`";
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::String(text) if text.trim_start().starts_with('[') => {
            let value: Value = serde_json::from_str(text)
                .map_err(|e| bad(format!("`groupBy` is not JSON: {e}")))?;
            return parse_group_by(&value);
        }
        Value::String(text) => return Ok(names(text).into_iter().map(GroupKey::plain).collect()),
        Value::Array(items) => items,
        _ => return Err(bad("`groupBy` is a list of group keys")),
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(field) => Ok(GroupKey::plain(field.clone())),
            Value::Object(map) => {
                if let Some(key) = map
                    .keys()
                    .find(|k| !["field", "dateGranularity", "alias"].contains(&k.as_str()))
                {
                    return Err(bad(format!("{SHAPE}; `{key}` is not part of it")));
                }
                let field = map
                    .get("field")
                    .and_then(Value::as_str)
                    .filter(|f| !f.is_empty())
                    .ok_or_else(|| bad("a `groupBy` entry's `field` is a field name"))?;
                let granularity = match map.get("dateGranularity") {
                    None | Some(Value::Null) => None,
                    Some(g) => {
                        Some(g.as_str().and_then(DateGranularity::parse).ok_or_else(|| {
                            bad("`dateGranularity` is day, week, month, quarter or year")
                        })?)
                    }
                };
                let alias = match map.get("alias") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(a)) if !a.is_empty() => Some(a.clone()),
                    Some(_) => return Err(bad("a `groupBy` entry's `alias` is a name")),
                };
                Ok(GroupKey {
                    field: field.to_string(),
                    granularity,
                    alias,
                })
            }
            _ => Err(bad(SHAPE)),
        })
        .collect()
}

/// Every column of an aggregate's result has a name of its own.
fn check_result_names(group_by: &[GroupKey], aggregations: &[Aggregation]) -> Result<(), ApiError> {
    let mut seen = std::collections::HashSet::new();
    for name in group_by
        .iter()
        .map(GroupKey::name)
        .chain(aggregations.iter().map(|a| a.alias.as_str()))
    {
        if !seen.insert(name) {
            return Err(bad(format!(
                "`{name}` names two columns of the result; give one of them an `alias` of its own"
            )));
        }
    }
    Ok(())
}

/// Upstream's `timezone`, the zone date buckets are cut in: only UTC, since
/// objectos carries no time-zone database to cut them in any other.
fn check_timezone(value: &Value) -> Result<(), ApiError> {
    match value {
        Value::Null => Ok(()),
        Value::String(zone) if ["UTC", "Etc/UTC", "Z"].contains(&zone.as_str()) => Ok(()),
        Value::String(_) => Err(bad(
            "only UTC date buckets are supported: objectos has no time-zone database, so `timezone` may only be `UTC` (or `Etc/UTC`, `Z`) or left out",
        )),
        _ => Err(bad(
            "`timezone` is a time-zone name; only `UTC` is supported",
        )),
    }
}

fn parse_search(value: &Value, fields: Option<&Value>) -> Result<Option<Search>, ApiError> {
    let (text, inner_fields) = match value {
        Value::Null => return Ok(None),
        Value::String(s) => (s.clone(), None),
        Value::Object(map) => {
            for key in map.keys() {
                if key != "query" && key != "fields" {
                    return Err(bad(format!(
                        "`search` is `{{\"query\", \"fields\"}}`; `{key}` is not part of it"
                    )));
                }
            }
            (
                map.get("query")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("`search.query` is the text to look for"))?
                    .to_string(),
                map.get("fields"),
            )
        }
        _ => return Err(bad("`search` is the text to look for")),
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    if text.len() > 256 {
        return Err(bad("`search` is at most 256 bytes"));
    }
    let fields = match fields.or(inner_fields) {
        None | Some(Value::Null) => None,
        Some(v) => Some(name_list(v, "searchFields")?),
    };
    Ok(Some(Search { text, fields }))
}

fn parse_expand(value: &Value) -> Result<Vec<String>, ApiError> {
    match value {
        // upstream's `{"rel": {…}}` map: the relationship names; nested queries
        // are not supported.
        Value::Object(map) => {
            for (name, inner) in map {
                let plain = match inner {
                    Value::Object(m) => m.keys().all(|k| k == "object"),
                    Value::Bool(true) | Value::Null => true,
                    _ => false,
                };
                if !plain {
                    return Err(bad(format!(
                        "`expand.{name}` may only name the relationship; nested queries are not supported"
                    )));
                }
            }
            Ok(map.keys().cloned().collect())
        }
        other => name_list(other, "expand"),
    }
}

/// The canonical slots of a query (the list parameters of `GET
/// /api/v1/data/{object}` and the keys of a query body), and every spelling each
/// takes (first is canonical). The OpenAPI document lists its parameters from here.
pub const SLOTS: &[(&str, &[&str])] = &[
    ("where", &["where", "filter", "filters", "$filter"]),
    ("fields", &["fields", "select", "$select"]),
    ("orderBy", &["orderBy", "sort", "$orderby"]),
    ("limit", &["limit", "top", "$top"]),
    ("offset", &["offset", "skip", "$skip"]),
    ("total", &["total", "count", "$count"]),
    ("search", &["search", "$search"]),
    ("searchFields", &["searchFields", "$searchFields"]),
    ("expand", &["expand", "$expand", "populate"]),
    ("aggregations", &["aggregations"]),
    ("groupBy", &["groupBy"]),
];

/// Slots that may be repeated in a query string (their values are joined).
const REPEATABLE: &[&str] = &["fields", "orderBy", "expand", "searchFields", "groupBy"];

fn slot_of(key: &str) -> Option<&'static str> {
    SLOTS
        .iter()
        .find(|(_, spellings)| spellings.contains(&key))
        .map(|(slot, _)| *slot)
}

/// The slots a request filled, and the names that fill none.
type Folded = (Map<String, Value>, Vec<(String, Value)>);

/// Fold the spellings into their slots: two spellings with different values
/// are refused.
fn fold(
    entries: impl IntoIterator<Item = (String, Value)>,
    repeat_joins: bool,
) -> Result<Folded, ApiError> {
    let mut slots: Map<String, Value> = Map::new();
    let mut seen: Vec<(&'static str, String)> = Vec::new();
    let mut rest = Vec::new();
    for (key, value) in entries {
        let Some(slot) = slot_of(&key) else {
            rest.push((key, value));
            continue;
        };
        match slots.get_mut(slot) {
            None => {
                slots.insert(slot.to_string(), value);
                seen.push((slot, key));
            }
            Some(existing) => {
                let first = seen
                    .iter()
                    .find(|(s, _)| *s == slot)
                    .map(|(_, k)| k.clone())
                    .unwrap_or_default();
                if repeat_joins
                    && REPEATABLE.contains(&slot)
                    && let (Value::String(a), Value::String(b)) = (&*existing, &value)
                {
                    *existing = Value::String(format!("{a},{b}"));
                    continue;
                }
                if *existing != value {
                    return Err(bad(if first == key {
                        format!("`{key}` is given twice; give it once")
                    } else {
                        format!(
                            "`{first}` and `{key}` say the same thing with different values; give one"
                        )
                    }));
                }
                if first == key && !REPEATABLE.contains(&slot) {
                    return Err(bad(format!("`{key}` is given twice; give it once")));
                }
            }
        }
    }
    Ok((slots, rest))
}

/// Build the spec from folded slots.
fn from_slots(object: &str, slots: &Map<String, Value>) -> Result<QuerySpec, ApiError> {
    let get = |k: &str| slots.get(k).unwrap_or(&Value::Null);
    let filter = match get("where") {
        Value::Null => Filter::All,
        Value::String(text) if text.trim().is_empty() => Filter::All,
        Value::String(text) => {
            if text.len() > crate::limits::MAX_FILTER_TEXT_BYTES {
                return Err(over_limit(
                    "filter_text_bytes",
                    format!(
                        "the filter is larger than {} bytes",
                        crate::limits::MAX_FILTER_TEXT_BYTES
                    ),
                ));
            }
            let value: Value = serde_json::from_str(text)
                .map_err(|e| bad(format!("the filter is not JSON: {e}")))?;
            parse_filter(&value)?
        }
        other => parse_filter(other)?,
    };
    let sort = match get("orderBy") {
        Value::String(text) if text.trim_start().starts_with(['[', '{']) => {
            let value: Value = serde_json::from_str(text)
                .map_err(|e| bad(format!("the sort is not JSON: {e}")))?;
            parse_sort(&value)?
        }
        other => parse_sort(other)?,
    };
    let aggregations = match get("aggregations") {
        Value::String(text) => {
            let value: Value = serde_json::from_str(text)
                .map_err(|e| bad(format!("`aggregations` is not JSON: {e}")))?;
            parse_aggregations(&value)?
        }
        other => parse_aggregations(other)?,
    };
    let group_by = parse_group_by(get("groupBy"))?;
    if !group_by.is_empty() && aggregations.is_empty() {
        return Err(bad("`groupBy` needs `aggregations`"));
    }
    check_result_names(&group_by, &aggregations)?;
    let fields = match get("fields") {
        Value::Null => None,
        other => Some(name_list(other, "fields")?),
    };
    let limit = parse_number(get("limit"), "limit")?;
    let spec = QuerySpec {
        object: object.to_string(),
        fields,
        filter,
        equals: Vec::new(),
        sort,
        limit: match (aggregations.is_empty(), limit) {
            (true, limit) => parse_limit(limit)?,
            (false, Some(n)) if n > MAX_GROUPS => {
                return Err(over_limit(
                    "groups",
                    format!("an aggregate returns at most {MAX_GROUPS} groups"),
                ));
            }
            (false, limit) => limit.unwrap_or(MAX_GROUPS),
        },
        offset: parse_offset(parse_number(get("offset"), "offset")?)?,
        total: parse_bool(get("total"), "total")?,
        aggregations,
        group_by,
        search: parse_search(get("search"), slots.get("searchFields"))?,
        expand: parse_expand(get("expand"))?,
    };
    Ok(spec)
}

/// `GET /api/v1/data/{object}?…`: every spelling of §list parameters; any other
/// name is an equality condition on that field (`?stage=won`).
pub fn from_list_params(object: &str, params: &[(String, String)]) -> Result<QuerySpec, ApiError> {
    for (key, _) in params {
        if key.starts_with('$') && slot_of(key).is_none() {
            return Err(bad(format!(
                "`{key}` is not supported; the `$` parameters are $filter, $select, $orderby, $top, $skip, $count, $search, $searchFields and $expand"
            )));
        }
    }
    let (slots, rest) = fold(
        params
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone()))),
        true,
    )?;
    let mut spec = from_slots(object, &slots)?;
    for (field, value) in rest {
        if spec.equals.iter().any(|(f, _)| *f == field) {
            return Err(bad(format!("`{field}` is given twice; give it once")));
        }
        spec.equals
            .push((field, value.as_str().unwrap_or_default().to_string()));
    }
    check_lists(&spec)?;
    Ok(spec)
}

/// Query bodies: objectos's `POST /api/v1/query` (the object in the body) and
/// upstream's `POST /api/v1/data/{object}/query` (`path_object`; a body `object`
/// must name the same one).
pub fn from_body(body: &Value, path_object: Option<&str>) -> Result<QuerySpec, ApiError> {
    let map = body
        .as_object()
        .ok_or_else(|| bad("the query is a JSON object"))?;
    let object = match (map.get("object"), path_object) {
        (Some(Value::String(o)), Some(p)) if o != p => {
            return Err(bad(format!(
                "the body names object `{o}`, the path `{p}`; they must be the same"
            )));
        }
        (_, Some(p)) => p.to_string(),
        (Some(Value::String(o)), None) => o.clone(),
        (Some(_), None) => return Err(bad("`object` is the name of an object")),
        (None, None) => return Err(bad("`object` is missing")),
    };
    let mut entries = Vec::new();
    for (key, value) in map {
        if key == "object" {
            continue;
        }
        // Only in a body: in a query string, `?timezone=` stays a condition on a
        // field of that name.
        if key == "timezone" {
            check_timezone(value)?;
            continue;
        }
        if slot_of(key).is_none() {
            return Err(bad(format!(
                "`{key}` is not a query key; use fields, where, orderBy, limit, offset, total, search, searchFields, expand, aggregations, groupBy or timezone (or upstream's select, filter, sort, top, skip, count)"
            )));
        }
        entries.push((key.clone(), value.clone()));
    }
    let (slots, _) = fold(entries, false)?;
    let spec = from_slots(&object, &slots)?;
    check_lists(&spec)?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn upstream_spellings_mean_the_same_as_ours() {
        let ours = from_list_params(
            "o",
            &params(&[
                ("filter", r#"{"stage":"won"}"#),
                ("fields", "name,amount"),
                ("sort", "-amount,name"),
                ("limit", "5"),
                ("offset", "10"),
                ("total", "true"),
            ]),
        )
        .unwrap();
        for list in [
            vec![
                ("$filter", r#"{"stage":"won"}"#),
                ("$select", "name,amount"),
                ("$orderby", "amount desc, name asc"),
                ("$top", "5"),
                ("$skip", "10"),
                ("$count", "true"),
            ],
            vec![
                ("where", r#"["stage", "=", "won"]"#),
                ("select", "name"),
                ("select", "amount"),
                (
                    "sort",
                    r#"[{"field":"amount","order":"desc"},{"field":"name","order":"asc"}]"#,
                ),
                ("top", "5"),
                ("skip", "10"),
                ("count", "true"),
            ],
        ] {
            assert_eq!(from_list_params("o", &params(&list)).unwrap(), ours);
        }
    }

    #[test]
    fn other_names_are_equality_conditions_and_conflicts_are_refused() {
        let spec = from_list_params("o", &params(&[("stage", "won"), ("top", "3")])).unwrap();
        assert_eq!(spec.equals, vec![("stage".to_string(), "won".to_string())]);
        assert_eq!(spec.limit, 3);
        for bad_list in [
            vec![("top", "1"), ("limit", "2")],
            vec![("top", "1"), ("top", "2")],
            vec![("$expandall", "x")],
            vec![("stage", "a"), ("stage", "b")],
            vec![("sort", "name sideways")],
            vec![("filter", "not json")],
            vec![("filter", r#"["stage", "like", "x"]"#)],
        ] {
            assert!(
                from_list_params("o", &params(&bad_list)).is_err(),
                "{bad_list:?}"
            );
        }
    }

    #[test]
    fn filter_asts_become_filters() {
        let f = parse_filter(&json!([
            "and",
            ["amount", ">", 5],
            ["stage", "in", ["a", "b"]]
        ]))
        .unwrap();
        assert_eq!(
            f,
            parse_filter(
                &json!({"$and": [{"amount": {"$gt": 5}}, {"stage": {"$in": ["a", "b"]}}]})
            )
            .unwrap()
        );
        let f = parse_filter(&json!([
            ["closed", "is_null"],
            ["name", "starts_with", "A"]
        ]))
        .unwrap();
        assert_eq!(f.fields(), vec!["closed", "name"]);
    }

    #[test]
    fn query_bodies_take_upstream_keys_and_refuse_a_second_object() {
        let spec = from_body(
            &json!({"object": "o", "select": ["a"], "filter": {"a": 1}, "sort": ["-a"], "top": 3, "skip": 1, "search": {"query": "acme", "fields": ["a"]}, "expand": {"acct": {"object": "account"}}}),
            Some("o"),
        )
        .unwrap();
        assert_eq!(spec.fields, Some(vec!["a".to_string()]));
        assert_eq!(spec.sort, vec![("a".to_string(), true)]);
        assert_eq!((spec.limit, spec.offset), (3, 1));
        assert_eq!(spec.search.unwrap().fields, Some(vec!["a".to_string()]));
        assert_eq!(spec.expand, vec!["acct".to_string()]);
        assert!(from_body(&json!({"object": "other"}), Some("o")).is_err());
        assert!(from_body(&json!({"object": "o", "having": {}}), None).is_err());
        assert!(from_body(&json!({"object": "o", "top": 1, "limit": 2}), None).is_err());
    }

    fn code_and_message(e: ApiError) -> (String, String) {
        assert_eq!(e.status, 400);
        (e.code.to_string(), e.message)
    }

    #[test]
    fn upstream_aggregate_shapes_parse_into_group_keys() {
        let spec = from_body(
            &json!({
                "aggregations": [
                    {"function": "count", "alias": "n"},
                    {"function": "count_distinct", "field": "account", "alias": "accounts"}
                ],
                "groupBy": [
                    "stage",
                    {"field": "region"},
                    {"field": "close_date", "dateGranularity": "week", "alias": "week"},
                    {"field": "created_at", "dateGranularity": "quarter", "alias": null}
                ],
                "timezone": "UTC"
            }),
            Some("o"),
        )
        .unwrap();
        assert_eq!(
            spec.group_by,
            vec![
                GroupKey::plain("stage"),
                GroupKey::plain("region"),
                GroupKey {
                    field: "close_date".into(),
                    granularity: Some(DateGranularity::Week),
                    alias: Some("week".into()),
                },
                GroupKey {
                    field: "created_at".into(),
                    granularity: Some(DateGranularity::Quarter),
                    alias: None,
                },
            ]
        );
        assert_eq!(
            spec.group_by.iter().map(GroupKey::name).collect::<Vec<_>>(),
            vec!["stage", "region", "week", "created_at"]
        );
        assert_eq!(spec.aggregations[1].function, AggFn::CountDistinct);
        assert_eq!(spec.aggregations[1].field.as_deref(), Some("account"));
        for g in ["day", "week", "month", "quarter", "year"] {
            let spec = from_body(
                &json!({"aggregations": [{"function": "count", "alias": "n"}], "groupBy": [{"field": "d", "dateGranularity": g}]}),
                Some("o"),
            )
            .unwrap();
            assert_eq!(
                spec.group_by[0].granularity.map(DateGranularity::as_str),
                Some(g)
            );
        }
        // In a query string: names, or the array as JSON.
        let spec = from_list_params(
            "o",
            &params(&[
                ("aggregations", r#"[{"function":"count","alias":"n"}]"#),
                (
                    "groupBy",
                    r#"[{"field":"d","dateGranularity":"year","alias":"y"}]"#,
                ),
            ]),
        )
        .unwrap();
        assert_eq!(spec.group_by[0].name(), "y");
        let spec = from_list_params(
            "o",
            &params(&[
                ("aggregations", r#"[{"function":"count","alias":"n"}]"#),
                ("groupBy", "a"),
                ("groupBy", "b"),
            ]),
        )
        .unwrap();
        assert_eq!(
            spec.group_by,
            vec![GroupKey::plain("a"), GroupKey::plain("b")]
        );
    }

    #[test]
    fn malformed_aggregates_and_other_time_zones_are_refused() {
        let count = json!([{"function": "count", "alias": "n"}]);
        for body in [
            json!({"aggregations": [{"function": "count_distinct", "alias": "n"}]}),
            json!({"aggregations": [{"function": "median", "field": "a"}]}),
            json!({"aggregations": count, "groupBy": [{"field": "d", "dateGranularity": "hour"}]}),
            json!({"aggregations": count, "groupBy": [{"field": "d", "dateGranularity": 3}]}),
            json!({"aggregations": count, "groupBy": [{"field": "d", "granularity": "day"}]}),
            json!({"aggregations": count, "groupBy": [{"dateGranularity": "day"}]}),
            json!({"aggregations": count, "groupBy": [{"field": "d", "alias": ""}]}),
            json!({"aggregations": count, "groupBy": [7]}),
            json!({"aggregations": count, "groupBy": {"field": "d"}}),
            // Two columns of the result under one name.
            json!({"aggregations": count, "groupBy": ["d", {"field": "d", "dateGranularity": "year"}]}),
            json!({"aggregations": count, "groupBy": [{"field": "e", "alias": "n"}]}),
            json!({"aggregations": [{"function": "count", "alias": "n"}, {"function": "max", "field": "a", "alias": "n"}]}),
        ] {
            let e = from_body(&body, Some("o")).expect_err(&body.to_string());
            assert_eq!(code_and_message(e).0, "invalid_query", "{body}");
        }
        for zone in [json!("UTC"), json!("Etc/UTC"), json!("Z"), Value::Null] {
            assert!(
                from_body(&json!({"aggregations": count, "timezone": zone}), Some("o")).is_ok(),
                "{zone}"
            );
        }
        for zone in [
            json!("Europe/Paris"),
            json!("utc+1"),
            json!("America/New_York"),
            json!(0),
        ] {
            let (code, message) = code_and_message(
                from_body(&json!({"aggregations": count, "timezone": zone}), Some("o"))
                    .unwrap_err(),
            );
            assert_eq!(code, "invalid_query", "{zone}");
            assert!(message.contains("UTC"), "{zone}: {message}");
        }
        let (_, message) = code_and_message(
            from_body(&json!({"timezone": "Europe/Paris"}), Some("o")).unwrap_err(),
        );
        assert!(
            message.starts_with("only UTC date buckets are supported"),
            "{message}"
        );
        // In a query string, `timezone` stays a condition on a field of that name.
        let spec = from_list_params("o", &params(&[("timezone", "Europe/Paris")])).unwrap();
        assert_eq!(
            spec.equals,
            vec![("timezone".to_string(), "Europe/Paris".to_string())]
        );
    }
}
