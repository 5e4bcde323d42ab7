//! The OpenAPI 3.1 document of the HTTP API (`GET /api/v1/openapi.json`,
//! `objectos openapi`): every route of the router, and, for a caller, a schema
//! per object they may read listing only the fields they may read, with the
//! operations they may perform. What they cannot read is absent, as in the
//! metadata routes. A unit test checks the routes against the router's source.

use serde_json::{Map, Value, json};

/// One operation of the router: method, path, summary, and what it answers.
struct Route {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    /// `false` for the routes served without credentials.
    auth: bool,
    body: Option<&'static str>,
    ok: u16,
}

const fn route(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    auth: bool,
    body: Option<&'static str>,
    ok: u16,
) -> Route {
    Route {
        method,
        path,
        summary,
        auth,
        body,
        ok,
    }
}

/// Every route, in the router's order.
const ROUTES: &[Route] = &[
    route(
        "post",
        "/api/v1/auth/login",
        "Sign in with email and password; answers a session token",
        false,
        Some("SignIn"),
        200,
    ),
    route(
        "post",
        "/api/v1/auth/sign-in/email",
        "Sign in (upstream's spelling)",
        false,
        Some("SignIn"),
        200,
    ),
    route(
        "post",
        "/api/v1/auth/logout",
        "End the session the token belongs to",
        true,
        None,
        200,
    ),
    route(
        "post",
        "/api/v1/auth/sign-out",
        "End the session (upstream's spelling)",
        true,
        None,
        200,
    ),
    route(
        "get",
        "/api/v1/auth/get-session",
        "Who the credential is",
        true,
        None,
        200,
    ),
    route(
        "get",
        "/api/v1/data/{object}",
        "List the records you may read",
        true,
        None,
        200,
    ),
    route(
        "post",
        "/api/v1/data/{object}",
        "Create a record",
        true,
        Some("Record"),
        201,
    ),
    route(
        "post",
        "/api/v1/data/{object}/query",
        "Query records with a JSON body",
        true,
        Some("Query"),
        200,
    ),
    route(
        "get",
        "/api/v1/data/{object}/{id}",
        "Read a record",
        true,
        None,
        200,
    ),
    route(
        "patch",
        "/api/v1/data/{object}/{id}",
        "Change fields of a record (If-Match optional)",
        true,
        Some("Record"),
        200,
    ),
    route(
        "delete",
        "/api/v1/data/{object}/{id}",
        "Delete a record and its master-detail children (If-Match optional)",
        true,
        None,
        200,
    ),
    route(
        "post",
        "/api/v1/data/{object}/{id}/shares",
        "Share a record with a user or team",
        true,
        Some("Share"),
        200,
    ),
    route(
        "delete",
        "/api/v1/data/{object}/{id}/shares",
        "Remove a share",
        true,
        Some("Share"),
        200,
    ),
    route(
        "post",
        "/api/v1/query",
        "Query records (`object` in the body)",
        true,
        Some("Query"),
        200,
    ),
    route("get", "/api/v1/meta", "The metadata types", true, None, 200),
    route(
        "get",
        "/api/v1/meta/{type}",
        "The items of a metadata type you may see (`object`, `action`)",
        true,
        None,
        200,
    ),
    route(
        "get",
        "/api/v1/meta/{type}/{name}",
        "One metadata item",
        true,
        None,
        200,
    ),
    route(
        "post",
        "/api/v1/actions/{name}",
        "Run an action by name",
        true,
        Some("ActionRun"),
        200,
    ),
    route(
        "post",
        "/api/v1/actions/{object}/{action}",
        "Run an action of an object",
        true,
        Some("ActionRun"),
        200,
    ),
    route(
        "post",
        "/api/v1/actions/{object}/{action}/{id}",
        "Run an action on a record",
        true,
        Some("ActionRun"),
        200,
    ),
    route(
        "get",
        "/api/v1/audit/events",
        "Audit rows (needs `view_audit`), redacted to what you may read",
        true,
        None,
        200,
    ),
    route(
        "get",
        "/api/v1/pending-actions",
        "Pending actions you may see (your own; your organization's if you review)",
        true,
        None,
        200,
    ),
    route(
        "get",
        "/api/v1/pending-actions/{id}",
        "One pending action, its diff filtered by your field rights",
        true,
        None,
        200,
    ),
    route(
        "post",
        "/api/v1/pending-actions/{id}/approve",
        "Approve: apply as the requester (needs `approve_actions`)",
        true,
        None,
        200,
    ),
    route(
        "post",
        "/api/v1/pending-actions/{id}/reject",
        "Reject, with a reason",
        true,
        Some("Reason"),
        200,
    ),
    route(
        "post",
        "/api/v1/pending-actions/{id}/cancel",
        "Cancel your own request",
        true,
        None,
        200,
    ),
    route(
        "get",
        "/api/v1/assistant/conversations",
        "Your assistant conversations, newest first (needs `agent_access`)",
        true,
        None,
        200,
    ),
    route(
        "post",
        "/api/v1/assistant/conversations",
        "Start an assistant conversation (`{\"title\"?}`; the operator must have configured `ai.endpoint`)",
        true,
        None,
        201,
    ),
    route(
        "get",
        "/api/v1/assistant/conversations/{id}",
        "One of your conversations with its messages (anyone else's is 404)",
        true,
        None,
        200,
    ),
    route(
        "post",
        "/api/v1/assistant/conversations/{id}/messages",
        "Send a message; the turn is streamed as Server-Sent Events (`user_message`, `delta`, `tool_call`, `tool_result`, `pending_approval`, then `done` or `error`)",
        true,
        Some("AssistantMessage"),
        200,
    ),
    route("get", "/api/v1", "Discovery", false, None, 200),
    route("get", "/api/v1/discovery", "Discovery", false, None, 200),
    route(
        "get",
        "/.well-known/objectstack",
        "Discovery",
        false,
        None,
        200,
    ),
    route(
        "get",
        "/api/v1/openapi.json",
        "This document; with a credential, your objects' schemas",
        false,
        None,
        200,
    ),
    route("get", "/healthz", "The process is up", false, None, 200),
    route(
        "get",
        "/readyz",
        "The process can serve (an applied, trusted artifact)",
        false,
        None,
        200,
    ),
    route(
        "post",
        "/api/v1/mcp",
        "MCP (Streamable HTTP) for agent keys",
        true,
        Some("JsonRpc"),
        200,
    ),
    route(
        "get",
        "/api/v1/mcp",
        "MCP: a session's stream (2025-06-18, 2025-11-25)",
        true,
        None,
        200,
    ),
    route(
        "delete",
        "/api/v1/mcp",
        "MCP: end a session",
        true,
        None,
        200,
    ),
];

/// The JSON Schema of one field's value, from its metadata view.
fn field_schema(field: &Value) -> Value {
    let t = field["type"].as_str().unwrap_or("text");
    let mut schema = match crate::model::storage_of(t, false) {
        crate::model::Storage::Number => json!({"type": "number"}),
        crate::model::Storage::Boolean => json!({"type": "boolean"}),
        crate::model::Storage::Date => json!({"type": "string", "format": "date"}),
        crate::model::Storage::DateTime => json!({"type": "string", "format": "date-time"}),
        crate::model::Storage::Time => json!({"type": "string", "format": "time"}),
        crate::model::Storage::Json => json!({}),
        _ => json!({"type": "string"}),
    };
    if let Some(options) = field["options"].as_array() {
        let values: Vec<Value> = options.iter().map(|o| o["value"].clone()).collect();
        schema["enum"] = Value::Array(values);
    }
    for (from, to) in [
        ("maxLength", "maxLength"),
        ("min", "minimum"),
        ("max", "maximum"),
    ] {
        if !field[from].is_null() {
            schema[to] = field[from].clone();
        }
    }
    if field["multiple"] == true {
        schema = json!({"type": "array", "items": schema});
    }
    // Every field may be empty unless required.
    if field["required"] != true {
        schema = json!({"anyOf": [schema, {"type": "null"}]});
    }
    if let Some(label) = field["label"].as_str() {
        schema["title"] = json!(label);
    }
    if let Some(target) = field["reference"].as_str() {
        schema["description"] = json!(format!("The id of a `{target}` record"));
    }
    schema
}

/// The record, create and update schemas of one object as the caller sees it.
fn object_schemas(object: &Value, schemas: &mut Map<String, Value>) {
    let name = object["name"].as_str().unwrap_or_default();
    let fields = object["fields"].as_object().cloned().unwrap_or_default();
    let mut record = Map::new();
    for system in crate::model::SYSTEM_FIELDS {
        let schema = match *system {
            "row_version" => json!({"type": "integer"}),
            "created_at" | "updated_at" => json!({"type": "string", "format": "date-time"}),
            _ => json!({"type": "string"}),
        };
        record.insert(system.to_string(), schema);
    }
    let mut create = Map::new();
    let mut required = Vec::new();
    let mut update = Map::new();
    for (field, view) in &fields {
        let schema = field_schema(view);
        record.insert(field.clone(), schema.clone());
        if view["creatable"] == true {
            create.insert(field.clone(), schema.clone());
            if view["required"] == true {
                required.push(json!(field));
            }
        }
        if view["editable"] == true {
            update.insert(field.clone(), schema);
        }
    }
    schemas.insert(
        name.to_string(),
        json!({"type": "object", "title": object["label"], "properties": record}),
    );
    schemas.insert(
        format!("{name}.create"),
        json!({"type": "object", "properties": create, "required": required, "additionalProperties": false}),
    );
    schemas.insert(
        format!("{name}.update"),
        json!({"type": "object", "properties": update, "additionalProperties": false}),
    );
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn errors() -> Map<String, Value> {
    let mut out = Map::new();
    for (code, what) in [
        ("400", "Bad input (see docs/errors.md for `error.code`)"),
        ("401", "No credential, or one that no longer works"),
        ("403", "Denied"),
        ("404", "No such thing, or one you may not read"),
        (
            "409",
            "A conflict: unique value, stale change, already decided",
        ),
        ("412", "`If-Match` names another version"),
        (
            "413",
            "The body is larger than `body_bytes` (see `x-objectos-limits`)",
        ),
        ("429", "Too many attempts, or too many pending actions"),
        ("503", "Not ready, or busy"),
    ] {
        out.insert(code.into(), error_response(what));
    }
    out
}

fn parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect()
}

/// A limit's value, by its name in [`crate::limits::ALL`].
fn limit(name: &str) -> u64 {
    crate::limits::ALL
        .iter()
        .find(|l| l.name == name)
        .map(|l| l.value)
        .unwrap_or_else(|| panic!("no limit `{name}`"))
}

/// What bounds every JSON request body.
fn body_limits() -> String {
    format!(
        "At most {} bytes (limit `body_bytes`, else 413), nested at most {} deep (limit `json_depth`)",
        limit("body_bytes"),
        limit("json_depth")
    )
}

/// What one slot of a query means, and the schema of its value in a query
/// string, with the limits that bound it.
fn slot_parameter(slot: &str) -> (String, Value) {
    use crate::limits::DEFAULT_PAGE;
    let text = json!({"type": "string"});
    match slot {
        "where" => (
            format!(
                "A filter as JSON (`{{\"stage\": \"closed_won\", \"amount\": {{\"$gt\": 100}}}}`) or upstream's filter array; at most {} levels deep (limit `filter_depth`), {} conditions (limit `filter_conditions`), {} values in one `$in`/`$nin` (limit `in_values`), {} values in all (limit `query_values`), {} bytes in a query string (limit `filter_text_bytes`)",
                limit("filter_depth"),
                limit("filter_conditions"),
                limit("in_values"),
                limit("query_values"),
                limit("filter_text_bytes"),
            ),
            text,
        ),
        "fields" => (
            format!(
                "Fields to return, comma-separated or repeated; at most {} (limit `fields`)",
                limit("fields")
            ),
            text,
        ),
        "orderBy" => (
            format!(
                "`-amount,name`, `amount desc` or JSON; at most {} fields (limit `fields`)",
                limit("fields")
            ),
            text,
        ),
        "limit" => (
            format!(
                "Records in a page: at most {} (limit `page`; default {DEFAULT_PAGE}); with `aggregations`, groups: at most {} (limit `groups`, also the default)",
                limit("page"),
                limit("groups"),
            ),
            json!({"type": "integer", "minimum": 1, "default": DEFAULT_PAGE}),
        ),
        "offset" => (
            format!(
                "Records to skip: at most {} (limit `offset`)",
                limit("offset")
            ),
            json!({"type": "integer", "minimum": 0, "maximum": limit("offset"), "default": 0}),
        ),
        "total" => (
            "`true` adds the number of matching records".into(),
            json!({"type": "boolean"}),
        ),
        "search" => (
            "Text to look for in the text fields you may read".into(),
            text,
        ),
        "searchFields" => (
            format!(
                "Which of your readable text fields `search` looks in, comma-separated; at most {} (limit `fields`)",
                limit("fields")
            ),
            text,
        ),
        "expand" => (
            format!(
                "Lookup fields whose records to expand (each only if you may read it), comma-separated; at most {} (limit `fields`)",
                limit("fields")
            ),
            text,
        ),
        "aggregations" => (
            format!(
                "Aggregations as JSON (`[{{\"function\": \"sum\", \"field\": \"amount\", \"alias\": \"total\"}}]`); at most {} (limit `fields`)",
                limit("fields")
            ),
            text,
        ),
        "groupBy" => (
            format!(
                "Group keys for `aggregations`, comma-separated or JSON; at most {} (limit `fields`)",
                limit("fields")
            ),
            text,
        ),
        // A slot without a description: the test below fails.
        _ => (String::new(), text),
    }
}

/// The parameters of a list: every slot of [`crate::query::request::SLOTS`]
/// under its canonical name, its other spellings in the description. Any other
/// name is an equality condition on the field of that name.
fn list_parameters() -> Vec<Value> {
    crate::query::request::SLOTS
        .iter()
        .map(|(slot, spellings)| {
            let (what, schema) = slot_parameter(slot);
            let others: Vec<String> = spellings
                .iter()
                .filter(|s| *s != slot)
                .map(|s| format!("`{s}`"))
                .collect();
            let description = if others.is_empty() {
                what
            } else {
                format!("{what}. Also spelled {}", others.join(", "))
            };
            json!({"name": slot, "in": "query", "required": false, "description": description, "schema": schema})
        })
        .collect()
}

/// The body of a query: the same slots as a list's parameters, by any of their
/// spellings, plus `object` and `timezone`.
fn query_schema() -> Value {
    let mut properties = Map::new();
    properties.insert(
        "object".into(),
        json!({"type": "string", "description": "The object (only in `POST /api/v1/query`; in the path form it must match the path)"}),
    );
    properties.insert(
        "timezone".into(),
        json!({"type": "string", "description": "The time zone of date buckets (only `UTC`)"}),
    );
    for (slot, spellings) in crate::query::request::SLOTS {
        let (what, _) = slot_parameter(slot);
        for spelling in *spellings {
            let description = if spelling == slot {
                what.clone()
            } else {
                format!("Upstream's spelling of `{slot}`")
            };
            properties.insert(spelling.to_string(), json!({"description": description}));
        }
    }
    json!({"type": "object", "description": body_limits(), "properties": properties, "additionalProperties": false})
}

/// The parameters of a single record's read.
fn record_parameters() -> Vec<Value> {
    vec![
        json!({"name": "fields", "in": "query", "required": false, "schema": {"type": "string"},
            "description": "Fields to return, comma-separated or repeated. Also spelled `select`, `$select`"}),
        json!({"name": "expand", "in": "query", "required": false, "schema": {"type": "string"},
            "description": "Lookup fields whose records to expand (each only if you may read it), comma-separated. Also spelled `$expand`"}),
    ]
}

/// The optional `If-Match` of an update or a delete.
fn if_match() -> Value {
    json!({"name": "If-Match", "in": "header", "required": false, "schema": {"type": "string"},
        "description": "The record's `ETag` (its `row_version`, quoted) or `*`; another version is refused with 412. Without it, any version"})
}

/// The `ETag` header of a record answer.
fn etag_header() -> Value {
    json!({"ETag": {"description": "The record's version (`row_version`, quoted), for `If-Match`", "schema": {"type": "string"}}})
}

/// A record answer with its `ETag`.
fn with_etag(response: &Value) -> Value {
    let mut out = response.clone();
    out["headers"] = etag_header();
    out
}

/// What sign-in answers besides a session (it takes no credential).
fn sign_in_errors() -> Map<String, Value> {
    let mut out = Map::new();
    for (code, what) in [
        ("400", "Bad input (see docs/errors.md for `error.code`)"),
        ("401", "Wrong email or password (`invalid_credentials`)"),
        (
            "413",
            "The body is larger than `body_bytes` (see `x-objectos-limits`)",
        ),
        (
            "429",
            "Too many failed sign-ins for this account or address (`too_many_attempts`); the message says how long to wait",
        ),
    ] {
        out.insert(code.into(), error_response(what));
    }
    out
}

/// The query and header parameters of a route of the table.
fn route_query_parameters(method: &str, path: &str) -> Vec<Value> {
    match (method, path) {
        ("get", "/api/v1/data/{object}") => list_parameters(),
        ("get", "/api/v1/data/{object}/{id}") => record_parameters(),
        ("patch" | "delete", "/api/v1/data/{object}/{id}") => vec![if_match()],
        ("get", "/api/v1/audit/events") => vec![
            json!({"name": "from", "in": "query", "required": false,
                "description": "The first `seq` to look at (the `next_from` of the previous page)",
                "schema": {"type": "integer", "minimum": 1, "default": 1}}),
            json!({"name": "limit", "in": "query", "required": false,
                "description": format!("Events in the page: at most {} (limit `audit_page`)", limit("audit_page")),
                "schema": {"type": "integer", "minimum": 1, "maximum": limit("audit_page"), "default": crate::limits::DEFAULT_AUDIT_PAGE}}),
        ],
        ("get", "/api/v1/pending-actions") => {
            let mut statuses: Vec<&str> = super::pending::STATUSES.to_vec();
            statuses.push("all");
            vec![json!({"name": "status", "in": "query", "required": false,
                "description": "Only the pending actions with this status; `all` (the default) for every one",
                "schema": {"type": "string", "enum": statuses, "default": "all"}})]
        }
        _ => Vec::new(),
    }
}

/// Every limit of [`crate::limits::ALL`] by name: the document's
/// `x-objectos-limits`.
fn limits() -> Value {
    let mut out = Map::new();
    for l in crate::limits::ALL {
        out.insert(
            l.name.to_string(),
            json!({"value": l.value, "description": l.what}),
        );
    }
    Value::Object(out)
}

/// The document: every route; with `objects` (the caller's readable objects as
/// the metadata routes show them), a schema and typed paths per object.
pub fn document(objects: Option<&[Value]>) -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{}{}", r.method, r.path.replace(['/', '{', '}', '.', '-'], "_")),
            "responses": {r.ok.to_string(): json_response("Done", json!({"type": "object"}))},
        });
        let mut params = parameters(r.path);
        params.extend(route_query_parameters(r.method, r.path));
        if matches!(
            (r.method, r.path),
            ("get" | "patch", "/api/v1/data/{object}/{id}") | ("post", "/api/v1/data/{object}")
        ) {
            op["responses"][r.ok.to_string()]["headers"] = etag_header();
        }
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if let Some(body) = r.body {
            op["requestBody"] = json!({"required": true, "description": body_limits(), "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}}});
        }
        if matches!(r.path, "/api/v1/auth/login" | "/api/v1/auth/sign-in/email")
            && let Value::Object(responses) = &mut op["responses"]
        {
            responses.extend(sign_in_errors());
        }
        if r.auth {
            if let Value::Object(responses) = &mut op["responses"] {
                responses.extend(errors());
            }
        } else {
            op["security"] = json!([]);
        }
        paths
            .entry(r.path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item")
            .insert(r.method.to_string(), op);
    }

    let mut schemas = Map::new();
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string", "description": "Stable; see docs/errors.md"},
            "message": {"type": "string"}
        }}}}),
    );
    schemas.insert("SignIn".into(), json!({"type": "object", "required": ["email", "password"], "properties": {"email": {"type": "string"}, "password": {"type": "string"}, "organization": {"type": "string"}}}));
    schemas.insert(
        "Record".into(),
        json!({"type": "object", "description": "Field values", "additionalProperties": true}),
    );
    schemas.insert("Query".into(), query_schema());
    schemas.insert("Share".into(), json!({"type": "object", "required": ["type", "value"], "properties": {"type": {"type": "string", "enum": ["user", "team"]}, "value": {"type": "string", "description": "The user's email or the team's name"}, "accessLevel": {"type": "string", "enum": ["read", "edit"], "default": "read"}}}));
    schemas.insert("ActionRun".into(), json!({"type": "object", "properties": {"recordId": {"type": "string"}, "params": {"type": "object"}}}));
    schemas.insert("AssistantMessage".into(), json!({"type": "object", "required": ["content"], "properties": {"content": {"type": "string", "minLength": 1, "maxLength": 32768}}, "additionalProperties": false}));
    schemas.insert("Reason".into(), json!({"type": "object", "required": ["reason"], "properties": {"reason": {"type": "string"}}}));
    schemas.insert("JsonRpc".into(), json!({"type": "object", "description": "One JSON-RPC 2.0 message (MCP)", "required": ["jsonrpc"], "properties": {"jsonrpc": {"const": "2.0"}}}));

    for object in objects.unwrap_or_default() {
        let Some(name) = object["name"].as_str() else {
            continue;
        };
        object_schemas(object, &mut schemas);
        let may = |what: &str| object["permissions"][what] == true;
        let record = json!({"$ref": format!("#/components/schemas/{name}")});
        let one = json_response(
            "The record",
            json!({"type": "object", "properties": {"object": {"const": name}, "id": {"type": "string"}, "record": record}}),
        );
        let tag = json!([name]);
        let mut collection = Map::new();
        let mut item = Map::new();
        let with_errors = |mut op: Value| {
            if let Value::Object(responses) = &mut op["responses"] {
                responses.extend(errors());
            }
            op
        };
        collection.insert("get".into(), with_errors(json!({
            "tags": tag, "operationId": format!("list_{name}"), "summary": format!("List {name} records"),
            "parameters": list_parameters(),
            "responses": {"200": json_response("A page", json!({"type": "object", "properties": {
                "object": {"const": name}, "records": {"type": "array", "items": record},
                "hasMore": {"type": "boolean"}, "total": {"type": "integer"}}}))}
        })));
        if may("create") {
            collection.insert("post".into(), with_errors(json!({
                "tags": tag, "operationId": format!("create_{name}"), "summary": format!("Create a {name} record"),
                "requestBody": {"required": true, "description": body_limits(), "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}.create")}}}},
                "responses": {"201": with_etag(&one)}
            })));
        }
        let id =
            json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}});
        let mut read = vec![id.clone()];
        read.extend(record_parameters());
        let write = json!([id, if_match()]);
        item.insert("get".into(), with_errors(json!({
            "tags": tag, "operationId": format!("get_{name}"), "summary": format!("Read a {name} record"),
            "parameters": read, "responses": {"200": with_etag(&one)}
        })));
        if may("edit") {
            item.insert("patch".into(), with_errors(json!({
                "tags": tag, "operationId": format!("update_{name}"), "summary": format!("Change a {name} record"),
                "parameters": write,
                "requestBody": {"required": true, "description": body_limits(), "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}.update")}}}},
                "responses": {"200": with_etag(&one)}
            })));
        }
        if may("delete") {
            item.insert("delete".into(), with_errors(json!({
                "tags": tag, "operationId": format!("delete_{name}"), "summary": format!("Delete a {name} record"),
                "parameters": write,
                "responses": {"200": json_response("Deleted", json!({"type": "object", "properties": {"object": {"const": name}, "id": {"type": "string"}, "success": {"type": "boolean"}}}))}
            })));
        }
        paths.insert(format!("/api/v1/data/{name}"), Value::Object(collection));
        paths.insert(format!("/api/v1/data/{name}/{{id}}"), Value::Object(item));
    }

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "objectos",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The HTTP API of objectos. Every route takes `Authorization: Bearer <API key or session token>` (or `X-API-Key`) unless marked otherwise. Errors are `{\"error\": {\"code\", \"message\"}}`. Objects and fields you may not read are not in this document.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"apiKey": []}],
        "x-objectos-limits": limits(),
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key (`osk_…`) or a session token"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The routes the router registers, read from its source:
    /// (method, path) for every `.route(…)` and `.route_service(…)`.
    fn router_routes() -> Vec<(String, String)> {
        let source = include_str!("mod.rs");
        let body = source
            .split("pub fn router(")
            .nth(1)
            .expect("the router function")
            .split("\n}\n")
            .next()
            .unwrap();
        let mut out = Vec::new();
        for part in body.split(".route").skip(1) {
            let service = part.starts_with("_service(");
            let path = part.split('"').nth(1).unwrap().to_string();
            if service {
                // The MCP endpoint: what the SDK's service answers.
                for m in ["post", "get", "delete"] {
                    out.push((m.to_string(), path.clone()));
                }
                continue;
            }
            let handlers: String = part.chars().take_while(|c| *c != ';').collect();
            let handlers = handlers.split(".route").next().unwrap();
            for m in ["get", "post", "patch", "delete"] {
                if handlers.contains(&format!("{m}(")) {
                    out.push((m.to_string(), path.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn every_route_of_the_router_is_in_the_document_and_no_other() {
        let mut routed = router_routes();
        assert!(routed.len() > 30, "{routed:?}");
        routed.sort();
        routed.dedup();
        let mut documented: Vec<(String, String)> = ROUTES
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        documented.sort();
        documented.dedup();
        assert_eq!(routed, documented);
    }

    /// Every limit of `crate::limits::ALL` is in the document with its value,
    /// and the parameters that a limit bounds say so with that value.
    #[test]
    fn every_limit_is_in_the_document_with_its_value() {
        let doc = document(None);
        let listed = doc["x-objectos-limits"].as_object().expect("the limits");
        assert_eq!(listed.len(), crate::limits::ALL.len());
        for l in crate::limits::ALL {
            assert_eq!(listed[l.name]["value"], json!(l.value), "{}", l.name);
            assert_eq!(listed[l.name]["description"], json!(l.what), "{}", l.name);
        }
        let text = doc.to_string();
        assert!(!text.contains("1,000"), "a hardcoded limit");
        let param = |path: &str, method: &str, name: &str| {
            doc["paths"][path][method]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("{method} {path} has no `{name}`"))
                .clone()
        };
        let list = "/api/v1/data/{object}";
        let mentions = |p: &Value, limit: &str| {
            let value = crate::limits::ALL
                .iter()
                .find(|l| l.name == limit)
                .unwrap()
                .value;
            let description = p["description"].as_str().unwrap();
            let at = description
                .find(&format!("(limit `{limit}`"))
                .unwrap_or_else(|| panic!("`{}` does not name `{limit}`", p["name"]));
            let before = description[..at].rsplit([';', ',', ':']).next().unwrap();
            assert!(
                before.contains(&value.to_string()),
                "`{}` does not give `{limit}` = {value}: {description}",
                p["name"]
            );
        };
        let filter = param(list, "get", "where");
        for limit in [
            "filter_depth",
            "filter_conditions",
            "in_values",
            "query_values",
            "filter_text_bytes",
        ] {
            mentions(&filter, limit);
        }
        for (name, limit) in [
            ("limit", "page"),
            ("limit", "groups"),
            ("offset", "offset"),
            ("fields", "fields"),
            ("orderBy", "fields"),
        ] {
            mentions(&param(list, "get", name), limit);
        }
        assert_eq!(
            param(list, "get", "limit")["schema"]["default"],
            json!(crate::limits::DEFAULT_PAGE)
        );
        assert_eq!(
            param(list, "get", "offset")["schema"]["maximum"],
            json!(crate::limits::MAX_OFFSET)
        );
        let audit = param("/api/v1/audit/events", "get", "limit");
        mentions(&audit, "audit_page");
        assert_eq!(
            audit["schema"]["maximum"],
            json!(crate::limits::MAX_AUDIT_PAGE)
        );
        let body = doc["paths"]["/api/v1/data/{object}"]["post"]["requestBody"]["description"]
            .as_str()
            .unwrap();
        let body = json!({"name": "requestBody", "description": body});
        for l in ["body_bytes", "json_depth"] {
            mentions(&body, l);
        }
    }

    /// The list parameters are the query slots, each under its canonical name
    /// with its every other spelling, so they cannot drift from what the parser
    /// takes; a query body names every spelling.
    #[test]
    fn the_list_parameters_are_the_query_slots() {
        let doc = document(Some(&[
            json!({"name": "t", "fields": {}, "permissions": {}}),
        ]));
        for path in ["/api/v1/data/{object}", "/api/v1/data/t"] {
            let params: Vec<&Value> = doc["paths"][path]["get"]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "query")
                .collect();
            let names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
            let slots: Vec<&str> = crate::query::request::SLOTS
                .iter()
                .map(|(s, _)| *s)
                .collect();
            assert_eq!(names, slots, "{path}");
            for (p, (_, spellings)) in params.iter().zip(crate::query::request::SLOTS) {
                let description = p["description"].as_str().unwrap();
                assert!(
                    !slot_parameter(p["name"].as_str().unwrap()).0.is_empty(),
                    "`{}` has no description",
                    p["name"]
                );
                assert!(!description.is_empty());
                for spelling in spellings.iter().skip(1) {
                    assert!(
                        description.contains(&format!("`{spelling}`")),
                        "`{}` does not name `{spelling}`",
                        p["name"]
                    );
                }
            }
        }
        let query = &doc["components"]["schemas"]["Query"]["properties"];
        for (_, spellings) in crate::query::request::SLOTS {
            for spelling in *spellings {
                assert!(
                    query[*spelling].is_object(),
                    "the query body lacks `{spelling}`"
                );
            }
        }
    }

    /// The parameters and headers of the routes besides the lists.
    #[test]
    fn routes_document_their_parameters_and_headers() {
        let doc = document(Some(&[json!({"name": "t", "fields": {},
            "permissions": {"create": true, "edit": true, "delete": true}})]));
        let names = |path: &str, method: &str| -> Vec<String> {
            doc["paths"][path][method]["parameters"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| {
                            format!(
                                "{}:{}",
                                p["in"].as_str().unwrap(),
                                p["name"].as_str().unwrap()
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        for path in ["/api/v1/data/{object}/{id}", "/api/v1/data/t/{id}"] {
            let get = names(path, "get");
            assert!(
                get.contains(&"query:fields".into()) && get.contains(&"query:expand".into()),
                "{get:?}"
            );
            for method in ["patch", "delete"] {
                assert!(
                    names(path, method).contains(&"header:If-Match".into()),
                    "{method} {path}"
                );
            }
            for method in ["get", "patch"] {
                assert!(
                    doc["paths"][path][method]["responses"]["200"]["headers"]["ETag"].is_object(),
                    "{method} {path}"
                );
            }
        }
        for path in ["/api/v1/data/{object}", "/api/v1/data/t"] {
            assert!(
                doc["paths"][path]["post"]["responses"]["201"]["headers"]["ETag"].is_object(),
                "{path}"
            );
        }
        assert_eq!(
            names("/api/v1/audit/events", "get"),
            vec!["query:from", "query:limit"]
        );
        assert_eq!(
            names("/api/v1/pending-actions", "get"),
            vec!["query:status"]
        );
        for path in ["/api/v1/auth/login", "/api/v1/auth/sign-in/email"] {
            for code in ["401", "429"] {
                assert!(
                    doc["paths"][path]["post"]["responses"][code].is_object(),
                    "{path} {code}"
                );
            }
        }
    }

    #[test]
    fn object_schemas_hold_what_the_view_holds() {
        let object = json!({
            "name": "t", "label": "T", "permissions": {"create": true, "edit": false, "delete": false},
            "fields": {
                "a": {"type": "number", "required": true, "creatable": true, "editable": true, "options": null, "maxLength": null, "min": 0, "max": null},
                "s": {"type": "select", "required": false, "creatable": false, "editable": false, "options": [{"label": "x", "value": "x"}]}
            }
        });
        let doc = document(Some(std::slice::from_ref(&object)));
        let record = &doc["components"]["schemas"]["t"]["properties"];
        assert_eq!(record["a"]["type"], "number");
        assert_eq!(record["a"]["minimum"], 0);
        assert_eq!(record["s"]["anyOf"][0]["enum"], json!(["x"]));
        assert!(record["id"].is_object());
        let create = &doc["components"]["schemas"]["t.create"];
        assert_eq!(create["required"], json!(["a"]));
        assert!(create["properties"].get("s").is_none());
        assert!(doc["paths"]["/api/v1/data/t"]["post"].is_object());
        assert!(doc["paths"]["/api/v1/data/t/{id}"]["patch"].is_null());
        assert!(doc["paths"]["/api/v1/data/t/{id}"]["delete"].is_null());
    }
}
