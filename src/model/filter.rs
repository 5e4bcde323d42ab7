//! ObjectQL filters: MongoDB-style JSON, and upstream's CEL subset, parsed into one tree.
//!
//! The tree names fields and carries JSON values; checking the fields against an
//! object and the caller's rights, and compiling to SQL, happen elsewhere.

use serde_json::{Map, Value};

// Limits that keep a hostile filter from costing more than a page of work.
use crate::limits::{
    MAX_FILTER_DEPTH as MAX_DEPTH, MAX_FILTER_NODES as MAX_NODES, MAX_IN_VALUES, MAX_QUERY_VALUES,
};

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Matches every record (an empty filter object).
    All,
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Cmp {
        field: String,
        op: Op,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Eq(Value),
    Ne(Value),
    Gt(Value),
    Gte(Value),
    Lt(Value),
    Lte(Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Between(Value, Value),
    Contains(String),
    StartsWith(String),
    EndsWith(String),
    /// `$null: true` matches missing values, `$null: false` present ones.
    Null(bool),
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Eq(_) => "$eq",
            Op::Ne(_) => "$ne",
            Op::Gt(_) => "$gt",
            Op::Gte(_) => "$gte",
            Op::Lt(_) => "$lt",
            Op::Lte(_) => "$lte",
            Op::In(_) => "$in",
            Op::Nin(_) => "$nin",
            Op::Between(..) => "$between",
            Op::Contains(_) => "$contains",
            Op::StartsWith(_) => "$startsWith",
            Op::EndsWith(_) => "$endsWith",
            Op::Null(_) => "$null",
        }
    }

    /// The values compared against, for type checks.
    pub fn values(&self) -> Vec<&Value> {
        match self {
            Op::Eq(v) | Op::Ne(v) | Op::Gt(v) | Op::Gte(v) | Op::Lt(v) | Op::Lte(v) => vec![v],
            Op::In(vs) | Op::Nin(vs) => vs.iter().collect(),
            Op::Between(a, b) => vec![a, b],
            Op::Contains(_) | Op::StartsWith(_) | Op::EndsWith(_) | Op::Null(_) => Vec::new(),
        }
    }
}

/// A filter that could not be parsed, with a JSON pointer into the filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub pointer: String,
    pub message: String,
    /// The limit of `crate::limits` the filter went beyond, if that is the problem.
    pub limit: Option<&'static str>,
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.pointer.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "at `{}`: {}", self.pointer, self.message)
        }
    }
}

impl std::error::Error for FilterError {}

fn err(pointer: &str, message: impl Into<String>) -> FilterError {
    FilterError {
        pointer: pointer.to_string(),
        message: message.into(),
        limit: None,
    }
}

fn over(pointer: &str, limit: &'static str, message: impl Into<String>) -> FilterError {
    FilterError {
        limit: Some(limit),
        ..err(pointer, message)
    }
}

impl Filter {
    /// Every field the filter names, once each, in order of appearance.
    pub fn fields(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        self.walk(&mut |f| {
            if let Filter::Cmp { field, .. } = f
                && !out.contains(&field.as_str())
            {
                out.push(field.as_str());
            }
        });
        out
    }

    /// Whether the filter constrains nothing, by upstream's rule for sharing
    /// criteria (`isMatchAllCriteria`): an empty filter, an `$and` of such
    /// filters, or an `$or` with one. Upstream never seeds a sharing rule whose
    /// criteria match all (it skips the rule), so neither does objectos.
    pub fn is_match_all(&self) -> bool {
        match self {
            Filter::All => true,
            Filter::And(items) => items.iter().all(Filter::is_match_all),
            Filter::Or(items) => items.is_empty() || items.iter().any(Filter::is_match_all),
            Filter::Not(_) | Filter::Cmp { .. } => false,
        }
    }

    pub fn walk<'a>(&'a self, visit: &mut dyn FnMut(&'a Filter)) {
        visit(self);
        match self {
            Filter::And(items) | Filter::Or(items) => items.iter().for_each(|i| i.walk(visit)),
            Filter::Not(inner) => inner.walk(visit),
            Filter::All | Filter::Cmp { .. } => {}
        }
    }

    /// Parse a JSON filter (`{"stage": {"$in": ["won"]}, "amount": {"$gt": 5}}`).
    pub fn from_json(value: &Value) -> Result<Filter, FilterError> {
        let mut nodes = 0;
        let filter = parse_object(value, "", 0, &mut nodes)?;
        let values = filter.value_count();
        if values > MAX_QUERY_VALUES {
            return Err(over(
                "",
                "query_values",
                format!(
                    "the filter compares with {values} values; one query may use at most {MAX_QUERY_VALUES}"
                ),
            ));
        }
        Ok(filter)
    }

    /// How many values the filter's conditions bind (each becomes a parameter).
    pub fn value_count(&self) -> usize {
        let mut n = 0;
        self.walk(&mut |f| {
            if let Filter::Cmp { op, .. } = f {
                n += op.values().len().max(1);
            }
        });
        n
    }

    /// Parse a sharing-rule condition: a JSON filter, or `{"dialect": "cel", "source": …}`.
    pub fn from_condition(value: &Value) -> Result<Filter, FilterError> {
        if let Value::Object(map) = value
            && let Some(dialect) = map.get("dialect")
        {
            let dialect = dialect
                .as_str()
                .ok_or_else(|| err("/dialect", "`dialect` must be a string"))?;
            if dialect != "cel" {
                return Err(err(
                    "/dialect",
                    format!(
                        "the condition dialect `{dialect}` is not supported; use `cel` or an ObjectQL filter object"
                    ),
                ));
            }
            let source = map
                .get("source")
                .and_then(Value::as_str)
                .ok_or_else(|| err("/source", "a CEL condition needs a `source` string"))?;
            if let Some(extra) = map.keys().find(|k| *k != "dialect" && *k != "source") {
                return Err(err(
                    &format!("/{extra}"),
                    format!("a CEL condition has only `dialect` and `source`, not `{extra}`"),
                ));
            }
            return crate::model::cel::parse(source).map_err(|e| err("/source", e));
        }
        if let Value::String(source) = value {
            return crate::model::cel::parse(source).map_err(|e| err("", e));
        }
        Filter::from_json(value)
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn bump(nodes: &mut usize, depth: usize, pointer: &str) -> Result<(), FilterError> {
    *nodes += 1;
    if *nodes > MAX_NODES {
        return Err(over(
            pointer,
            "filter_conditions",
            format!("the filter has more than {MAX_NODES} conditions"),
        ));
    }
    if depth > MAX_DEPTH {
        return Err(over(
            pointer,
            "filter_depth",
            format!("the filter is nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    Ok(())
}

fn parse_object(
    value: &Value,
    pointer: &str,
    depth: usize,
    nodes: &mut usize,
) -> Result<Filter, FilterError> {
    bump(nodes, depth, pointer)?;
    let Value::Object(map) = value else {
        return Err(err(pointer, "a filter is a JSON object of conditions"));
    };
    let mut parts = Vec::new();
    for (key, value) in map {
        let here = format!("{pointer}/{}", escape(key));
        let part = match key.as_str() {
            "$and" | "$or" => {
                let Value::Array(items) = value else {
                    return Err(err(&here, format!("`{key}` takes an array of filters")));
                };
                if items.is_empty() {
                    return Err(err(&here, format!("`{key}` needs at least one filter")));
                }
                let mut parsed = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    parsed.push(parse_object(
                        item,
                        &format!("{here}/{i}"),
                        depth + 1,
                        nodes,
                    )?);
                }
                if key == "$and" {
                    Filter::And(parsed)
                } else {
                    Filter::Or(parsed)
                }
            }
            "$not" => Filter::Not(Box::new(parse_object(value, &here, depth + 1, nodes)?)),
            op if op.starts_with('$') => {
                return Err(err(
                    &here,
                    format!(
                        "`{op}` is not a logical operator; use `$and`, `$or` or `$not`, or name a field"
                    ),
                ));
            }
            field => parse_field(field, value, &here, depth + 1, nodes)?,
        };
        parts.push(part);
    }
    Ok(match parts.len() {
        0 => Filter::All,
        1 => parts.pop().unwrap_or(Filter::All),
        _ => Filter::And(parts),
    })
}

fn parse_field(
    field: &str,
    value: &Value,
    pointer: &str,
    depth: usize,
    nodes: &mut usize,
) -> Result<Filter, FilterError> {
    bump(nodes, depth, pointer)?;
    if field.is_empty() {
        return Err(err(pointer, "a field name is empty"));
    }
    let ops = match value {
        Value::Object(map) if map.keys().any(|k| k.starts_with('$')) => map,
        Value::Object(_) => {
            return Err(err(
                pointer,
                format!(
                    "the condition on `{field}` is an object without operators; compare with `$eq`, `$in`, …"
                ),
            ));
        }
        Value::Array(_) => {
            return Err(err(
                pointer,
                format!("the condition on `{field}` is an array; use `{{\"$in\": [...]}}`"),
            ));
        }
        scalar => {
            return Ok(Filter::Cmp {
                field: field.to_string(),
                op: Op::Eq(scalar.clone()),
            });
        }
    };
    let mut parts = Vec::new();
    for (name, operand) in ops {
        let here = format!("{pointer}/{}", escape(name));
        let op = parse_op(name, operand, &here)?;
        bump(nodes, depth + 1, &here)?;
        parts.push(Filter::Cmp {
            field: field.to_string(),
            op,
        });
    }
    Ok(if parts.len() == 1 {
        parts.pop().unwrap_or(Filter::All)
    } else {
        Filter::And(parts)
    })
}

fn scalar(operand: &Value, pointer: &str, name: &str) -> Result<Value, FilterError> {
    match operand {
        Value::Array(_) | Value::Object(_) => Err(err(
            pointer,
            format!("`{name}` compares with one value (a string, number, boolean or null)"),
        )),
        v => Ok(v.clone()),
    }
}

fn string(operand: &Value, pointer: &str, name: &str) -> Result<String, FilterError> {
    operand
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| err(pointer, format!("`{name}` takes a string")))
}

fn list(operand: &Value, pointer: &str, name: &str) -> Result<Vec<Value>, FilterError> {
    let Value::Array(items) = operand else {
        return Err(err(pointer, format!("`{name}` takes an array of values")));
    };
    if items.len() > MAX_IN_VALUES {
        return Err(over(
            pointer,
            "in_values",
            format!("`{name}` takes at most {MAX_IN_VALUES} values"),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| scalar(v, &format!("{pointer}/{i}"), name))
        .collect()
}

fn parse_op(name: &str, operand: &Value, pointer: &str) -> Result<Op, FilterError> {
    Ok(match name {
        "$eq" => Op::Eq(scalar(operand, pointer, name)?),
        "$ne" => Op::Ne(scalar(operand, pointer, name)?),
        "$gt" => Op::Gt(scalar(operand, pointer, name)?),
        "$gte" => Op::Gte(scalar(operand, pointer, name)?),
        "$lt" => Op::Lt(scalar(operand, pointer, name)?),
        "$lte" => Op::Lte(scalar(operand, pointer, name)?),
        "$in" => Op::In(list(operand, pointer, name)?),
        "$nin" => Op::Nin(list(operand, pointer, name)?),
        "$between" => {
            let items = list(operand, pointer, name)?;
            let [low, high] = <[Value; 2]>::try_from(items).map_err(|_| {
                err(
                    pointer,
                    "`$between` takes exactly two values, `[low, high]`",
                )
            })?;
            Op::Between(low, high)
        }
        "$contains" => Op::Contains(string(operand, pointer, name)?),
        "$startsWith" => Op::StartsWith(string(operand, pointer, name)?),
        "$endsWith" => Op::EndsWith(string(operand, pointer, name)?),
        "$null" => Op::Null(
            operand
                .as_bool()
                .ok_or_else(|| err(pointer, "`$null` takes `true` or `false`"))?,
        ),
        other => {
            return Err(err(
                pointer,
                format!(
                    "`{other}` is not an operator; use one of $eq $ne $gt $gte $lt $lte $in $nin $between $contains $startsWith $endsWith $null"
                ),
            ));
        }
    })
}

/// The filter back as JSON (for plans, diffs and messages).
pub fn to_json(filter: &Filter) -> Value {
    match filter {
        Filter::All => Value::Object(Map::new()),
        Filter::And(items) => {
            serde_json::json!({ "$and": items.iter().map(to_json).collect::<Vec<_>>() })
        }
        Filter::Or(items) => {
            serde_json::json!({ "$or": items.iter().map(to_json).collect::<Vec<_>>() })
        }
        Filter::Not(inner) => serde_json::json!({ "$not": to_json(inner) }),
        Filter::Cmp { field, op } => {
            let operand = match op {
                Op::Eq(v) | Op::Ne(v) | Op::Gt(v) | Op::Gte(v) | Op::Lt(v) | Op::Lte(v) => {
                    v.clone()
                }
                Op::In(vs) | Op::Nin(vs) => Value::Array(vs.clone()),
                Op::Between(a, b) => Value::Array(vec![a.clone(), b.clone()]),
                Op::Contains(s) | Op::StartsWith(s) | Op::EndsWith(s) => Value::String(s.clone()),
                Op::Null(b) => Value::Bool(*b),
            };
            let mut inner = Map::new();
            inner.insert(op.name().to_string(), operand);
            let mut outer = Map::new();
            outer.insert(field.clone(), Value::Object(inner));
            Value::Object(outer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bare_values_are_equality_and_keys_are_anded() {
        let f = Filter::from_json(&json!({"stage": "won", "amount": {"$gt": 5}})).unwrap();
        assert_eq!(
            f,
            Filter::And(vec![
                Filter::Cmp {
                    field: "stage".into(),
                    op: Op::Eq(json!("won"))
                },
                Filter::Cmp {
                    field: "amount".into(),
                    op: Op::Gt(json!(5))
                },
            ])
        );
        assert_eq!(f.fields(), vec!["stage", "amount"]);
    }

    #[test]
    fn every_documented_operator_parses() {
        let f = Filter::from_json(&json!({
            "$or": [
                {"a": {"$eq": 1, "$ne": 2}},
                {"b": {"$gte": 1, "$lte": 2, "$lt": 3}},
                {"c": {"$in": [1, 2], "$nin": [3]}},
                {"d": {"$between": [1, 9]}},
                {"e": {"$contains": "x", "$startsWith": "y", "$endsWith": "z"}},
                {"$not": {"f": {"$null": true}}},
                {"$and": [{"g": true}]}
            ]
        }));
        assert!(f.is_ok(), "{f:?}");
    }

    #[test]
    fn unknown_operators_and_bad_operands_name_their_place() {
        let cases = [
            (json!({"a": {"$regex": "x"}}), "/a/$regex"),
            (json!({"a": {"$in": "x"}}), "/a/$in"),
            (json!({"a": {"$between": [1]}}), "/a/$between"),
            (json!({"$or": {"a": 1}}), "/$or"),
            (json!({"$where": "1=1"}), "/$where"),
            (json!({"a": [1, 2]}), "/a"),
            (json!({"a": {"b": 1}}), "/a"),
            (json!({"a": {"$eq": {"$gt": 1}}}), "/a/$eq"),
            (json!([1]), ""),
        ];
        for (filter, pointer) in cases {
            let e = Filter::from_json(&filter).unwrap_err();
            assert_eq!(e.pointer, pointer, "{filter}: {e}");
        }
    }

    #[test]
    fn depth_and_size_are_limited() {
        let mut deep = json!({"a": 1});
        for _ in 0..40 {
            deep = json!({"$not": deep});
        }
        assert!(
            Filter::from_json(&deep)
                .unwrap_err()
                .message
                .contains("deeper")
        );
        let wide: Vec<Value> = (0..600).map(|i| json!({"a": i})).collect();
        assert!(
            Filter::from_json(&json!({"$or": wide}))
                .unwrap_err()
                .message
                .contains("more than")
        );
    }

    #[test]
    fn match_all_follows_upstreams_rule() {
        let all = |v: Value| Filter::from_condition(&v).unwrap().is_match_all();
        assert!(all(json!({})));
        assert!(all(json!({"$and": [{}, {}]})));
        assert!(all(json!({"$or": [{"a": 1}, {}]})));
        assert!(all(json!("true")));
        assert!(all(json!("record.a == 1 || true")));
        assert!(!all(json!({"a": 1})));
        assert!(!all(json!({"$and": [{}, {"a": 1}]})));
        assert!(!all(json!("record.a == 1 && true")));
        assert!(!all(json!({"$not": {}})));
    }

    #[test]
    fn conditions_take_json_or_cel() {
        let a = Filter::from_condition(&json!({"dialect": "cel", "source": "record.amount >= 100000 && record.region == 'emea'"})).unwrap();
        let b =
            Filter::from_condition(&json!({"amount": {"$gte": 100000}, "region": "emea"})).unwrap();
        assert_eq!(a, b);
        assert!(Filter::from_condition(&json!({"dialect": "sql", "source": "1=1"})).is_err());
    }
}
