//! Every numeric limit of the HTTP API and of ObjectQL, in one place. A query or
//! body beyond a limit is refused with 400 `limit_exceeded` (413 `body_too_large`
//! for the body) naming the limit; too long a head is answered 431 and too slow
//! a request 408, and a connection past `connections` waits in the kernel's
//! queue. `docs/limits.md` and the OpenAPI document (its `x-objectos-limits`
//! and the parameters each limit bounds) give the values of [`ALL`], and tests
//! check both, so neither can drift from what is enforced.

/// The largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How deeply a JSON request body may nest.
pub const MAX_JSON_DEPTH: usize = 32;
/// How deeply a filter may nest (`$and`/`$or`/`$not` and field objects).
pub const MAX_FILTER_DEPTH: usize = 16;
/// Conditions in one filter.
pub const MAX_FILTER_NODES: usize = 512;
/// Values in one `$in`/`$nin` list.
pub const MAX_IN_VALUES: usize = 1000;
/// Values in all of one query's conditions together.
pub const MAX_QUERY_VALUES: usize = 5000;
/// Records in one page (`limit`/`top`).
pub const MAX_PAGE: u64 = 1000;
/// Records in a page when none is asked for.
pub const DEFAULT_PAGE: u64 = 50;
/// The furthest `offset`/`skip`.
pub const MAX_OFFSET: u64 = 10_000_000;
/// Fields named in one `fields`/`select`, sort, group or aggregation list.
pub const MAX_FIELDS: usize = 100;
/// Groups one aggregate query returns.
pub const MAX_GROUPS: u64 = 10_000;
/// The longest credential (API key or session token) looked up.
pub const MAX_TOKEN_BYTES: usize = 256;
/// The longest filter given in a query string (`?filter=…`).
pub const MAX_FILTER_TEXT_BYTES: usize = 64 * 1024;
/// Connections `serve` keeps open at once (`--max-connections`).
pub const MAX_CONNECTIONS: usize = 512;
/// Seconds a client may take to send a request's headers, or stay silent on an
/// open connection (`--client-timeout`).
pub const CLIENT_TIMEOUT_SECS: u64 = 30;
/// Seconds one request may take, from its headers to the end of the answer
/// (`--request-timeout`).
pub const REQUEST_TIMEOUT_SECS: u64 = 30;
/// The most bytes of a request's head (request line and headers).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Audit events in one page of `GET /api/v1/audit/events`.
pub const MAX_AUDIT_PAGE: u64 = 1000;
/// Audit events in a page of `GET /api/v1/audit/events` when none is asked for.
pub const DEFAULT_AUDIT_PAGE: u64 = 100;
/// Audit rows one page of `GET /api/v1/audit/events` scans for the caller's.
pub const MAX_AUDIT_SCAN: usize = 10_000;

/// One limit, for the documentation and the OpenAPI document.
pub struct Limit {
    pub name: &'static str,
    pub value: u64,
    pub what: &'static str,
}

/// Every limit, in the order the documentation lists them.
pub const ALL: &[Limit] = &[
    Limit {
        name: "body_bytes",
        value: MAX_BODY_BYTES as u64,
        what: "bytes in a request body",
    },
    Limit {
        name: "json_depth",
        value: MAX_JSON_DEPTH as u64,
        what: "nesting depth of a JSON request body",
    },
    Limit {
        name: "filter_depth",
        value: MAX_FILTER_DEPTH as u64,
        what: "nesting depth of a filter",
    },
    Limit {
        name: "filter_conditions",
        value: MAX_FILTER_NODES as u64,
        what: "conditions in one filter",
    },
    Limit {
        name: "in_values",
        value: MAX_IN_VALUES as u64,
        what: "values in one `$in` or `$nin` list",
    },
    Limit {
        name: "query_values",
        value: MAX_QUERY_VALUES as u64,
        what: "values in all of one query's conditions",
    },
    Limit {
        name: "page",
        value: MAX_PAGE,
        what: "records in one page (`limit`, `top`)",
    },
    Limit {
        name: "offset",
        value: MAX_OFFSET,
        what: "records skipped (`offset`, `skip`)",
    },
    Limit {
        name: "fields",
        value: MAX_FIELDS as u64,
        what: "fields in one select, sort, group or aggregation list",
    },
    Limit {
        name: "groups",
        value: MAX_GROUPS,
        what: "groups one aggregate query returns",
    },
    Limit {
        name: "filter_text_bytes",
        value: MAX_FILTER_TEXT_BYTES as u64,
        what: "bytes of a filter given in a query string",
    },
    Limit {
        name: "header_bytes",
        value: MAX_HEADER_BYTES as u64,
        what: "bytes of a request's line and headers",
    },
    Limit {
        name: "connections",
        value: MAX_CONNECTIONS as u64,
        what: "connections open at once",
    },
    Limit {
        name: "client_timeout_seconds",
        value: CLIENT_TIMEOUT_SECS,
        what: "seconds to send a request's headers, or to stay silent on an open connection",
    },
    Limit {
        name: "request_timeout_seconds",
        value: REQUEST_TIMEOUT_SECS,
        what: "seconds one request may take",
    },
    Limit {
        name: "audit_page",
        value: MAX_AUDIT_PAGE,
        what: "audit events in one page",
    },
];

/// The depth of a JSON value (a scalar is 0), without recursion.
pub fn json_depth(value: &serde_json::Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        match v {
            serde_json::Value::Array(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            serde_json::Value::Object(map) => stack.extend(map.values().map(|i| (i, depth + 1))),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_limits_are_the_enforced_ones() {
        let page = include_str!("../docs/limits.md");
        for limit in ALL {
            let row = format!("| `{}` | {} |", limit.name, limit.value);
            assert!(page.contains(&row), "docs/limits.md lacks the row `{row}`");
        }
        use crate::identity::signin::{ACCOUNT_BACKOFF, ADDRESS_BACKOFF, PAIR_BACKOFF};
        for (who, b, cap) in [
            ("account and address", PAIR_BACKOFF, "60 s"),
            ("account", ACCOUNT_BACKOFF, "60 s"),
            ("client address", ADDRESS_BACKOFF, "15 min"),
        ] {
            let row = format!(
                "| {who} | {} | 1 s, 2 s, 4 s … up to {cap} | {} |",
                b.free,
                b.max_failures_in_window()
            );
            assert!(page.contains(&row), "docs/limits.md lacks the row `{row}`");
        }
    }

    #[test]
    fn depth_counts_nesting_levels() {
        assert_eq!(json_depth(&serde_json::json!(1)), 0);
        assert_eq!(json_depth(&serde_json::json!({"a": [1, {"b": 2}]})), 3);
    }
}
