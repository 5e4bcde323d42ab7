//! The tools an agent calls, named and shaped as upstream's own MCP server has
//! them (so an agent written for upstream works unchanged), plus objectos's
//! `propose_metadata_change`. Every tool runs as the key's user through the
//! records service, with the agent rules of docs/agents.md: never an administrative
//! system permission; deletes, sensitive writes, writes to `agentWrites:
//! approval` objects, confirmed actions, grants and metadata changes wait in the
//! pending-action queue; `agentWrites: deny` objects refuse; a read-only key
//! never writes or proposes. The one deliberate difference from upstream: what
//! upstream runs at once may come back `pending_approval` here.

use serde_json::{Map, Value, json};

use crate::agent::schema;
use crate::authz::access::ObjectAccess;
use crate::error::ApiError;
use crate::model::filter::Filter;
use crate::model::{AgentWrites, ObjectDef};
use crate::query::request::{self, QuerySpec};
use crate::queue::{Proposal, Queue, QuotaScope, Requester, metadata, prepare};
use crate::records::{Caller, Records};

/// The most records one `query_records` call returns (upstream's limit).
pub const MAX_QUERY_LIMIT: u64 = 50;

/// Who is calling, through which key and client.
pub struct Agent<'c> {
    /// The key's user, with the agent's rights (no administrative permission).
    pub caller: &'c Caller,
    pub key_id: &'c str,
    /// A read-only agent key: reads, never writes or proposes.
    pub read_only: bool,
    /// The MCP client (`{name, version}`), for the queue and the audit.
    pub client: Option<Value>,
    /// Whose open proposals the pending-action quota counts.
    pub quota: QuotaScope,
}

/// What the server tells an agent when it connects.
pub const INSTRUCTIONS: &str = "objectos: query and change this organization's records as your user, with exactly their rights. Deletes, sensitive fields, confirmed actions, grants and metadata changes come back `pending_approval` (with a `pendingActionId`) and wait for a human reviewer; they are not done yet.";

/// A tool as `tools/list` shows it.
pub struct ToolSpec {
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub input_schema: Value,
    pub read_only: bool,
    /// May overwrite or remove what exists, at once or once approved (MCP's
    /// `destructiveHint`; `false` promises only additive changes): updates,
    /// actions (which patch a record), deletes, and metadata proposals (which
    /// may revoke a grant or replace a select's options).
    pub destructive: bool,
    /// Repeating the call changes nothing more. Not so for a write that may be
    /// queued: each call proposes again.
    pub idempotent: bool,
}

fn object_name() -> Value {
    json!({"type": "string", "description": "The object's API name (e.g. `crm_opportunity`)", "minLength": 1, "maxLength": 128})
}

fn record_id() -> Value {
    json!({"type": "string", "description": "The record's id", "minLength": 1, "maxLength": 128})
}

fn filter_schema() -> Value {
    json!({"type": "object", "description": "An ObjectQL filter: `{field: value}` for equality, operators `$eq $ne $gt $gte $lt $lte $in $nin $between $contains $startsWith $endsWith $null`, combined with `$and`, `$or`, `$not`", "additionalProperties": true})
}

/// Every tool, in the order `tools/list` shows them.
pub fn specs() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "list_objects",
            title: "List objects",
            description: "List the objects you may read, with their labels and how many fields you may read.",
            input_schema: json!({"type": "object", "properties": {}, "additionalProperties": false}),
            read_only: true,
            destructive: false,
            idempotent: true,
        },
        ToolSpec {
            name: "describe_object",
            title: "Describe an object",
            description: "Describe one object: the fields you may read (type, label, options, references) and what you may do with its records.",
            input_schema: json!({"type": "object", "properties": {"objectName": object_name()}, "required": ["objectName"], "additionalProperties": false}),
            read_only: true,
            destructive: false,
            idempotent: true,
        },
        ToolSpec {
            name: "validate_expression",
            title: "Validate a filter expression",
            description: "Check a filter (an ObjectQL JSON filter, or a CEL condition such as `record.amount > 100`) against an object's fields you may read, without running it.",
            input_schema: json!({"type": "object", "properties": {
                "objectName": object_name(),
                "expression": {"description": "An ObjectQL filter object, or a CEL condition string"},
                "site": {"type": "string", "enum": ["formula", "validation", "flow_condition", "template"], "description": "Where the expression will live; objectos checks conditions (`validation`, `flow_condition`) and has no formulas or templates"}
            }, "required": ["objectName", "expression"], "additionalProperties": false}),
            read_only: true,
            destructive: false,
            idempotent: true,
        },
        ToolSpec {
            name: "query_records",
            title: "Query records",
            description: "Find records you may read, filtered, sorted and paged (at most 50 a call).",
            input_schema: json!({"type": "object", "properties": {
                "objectName": object_name(),
                "where": filter_schema(),
                "fields": {"type": "array", "items": {"type": "string"}, "maxItems": 100, "description": "Fields to return (default: every field you may read)"},
                "orderBy": {"type": "array", "maxItems": 100, "items": {"type": "object", "properties": {"field": {"type": "string"}, "order": {"type": "string", "enum": ["asc", "desc"]}}, "required": ["field"], "additionalProperties": false}},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_QUERY_LIMIT, "default": MAX_QUERY_LIMIT},
                "offset": {"type": "integer", "minimum": 0, "default": 0}
            }, "required": ["objectName"], "additionalProperties": false}),
            read_only: true,
            destructive: false,
            idempotent: true,
        },
        ToolSpec {
            name: "aggregate_records",
            title: "Aggregate records",
            description: "Count, sum, average, minimum, maximum or count distinct values over the records you may read, optionally grouped by fields (dates bucketed by day, week, month, quarter or year). At most 50 groups come back.",
            input_schema: json!({"type": "object", "properties": {
                "objectName": object_name(),
                "aggregations": {"type": "array", "minItems": 1, "maxItems": 100, "items": {"type": "object", "properties": {
                    "function": {"type": "string", "enum": ["count", "sum", "avg", "min", "max", "count_distinct"]},
                    "field": {"type": "string", "description": "The field (omit for count(*))"},
                    "alias": {"type": "string", "description": "The result column's name"}
                }, "required": ["function", "alias"], "additionalProperties": false}},
                "groupBy": {"type": "array", "maxItems": 100, "items": {"anyOf": [
                    {"type": "string"},
                    {"type": "object", "properties": {
                        "field": {"type": "string"},
                        "dateGranularity": {"type": "string", "enum": ["day", "week", "month", "quarter", "year"]},
                        "alias": {"type": "string"}
                    }, "required": ["field"], "additionalProperties": false}
                ]}},
                "where": filter_schema(),
                "timezone": {"type": "string", "description": "Time zone of date buckets; only UTC is supported"}
            }, "required": ["objectName", "aggregations"], "additionalProperties": false}),
            read_only: true,
            destructive: false,
            idempotent: true,
        },
        ToolSpec {
            name: "get_record",
            title: "Get a record",
            description: "Read one record you may read, with the fields you may read.",
            input_schema: json!({"type": "object", "properties": {"objectName": object_name(), "recordId": record_id()}, "required": ["objectName", "recordId"], "additionalProperties": false}),
            read_only: true,
            destructive: false,
            idempotent: true,
        },
        ToolSpec {
            name: "create_record",
            title: "Create a record",
            description: "Create a record as your user. Some creates wait for a reviewer (the answer is `pending_approval`).",
            input_schema: json!({"type": "object", "properties": {"objectName": object_name(), "data": {"type": "object", "description": "Field values"}}, "required": ["objectName", "data"], "additionalProperties": false}),
            read_only: false,
            destructive: false,
            idempotent: false,
        },
        ToolSpec {
            name: "update_record",
            title: "Update a record",
            description: "Change fields of a record as your user. Changes to sensitive fields or to objects that need approval wait for a reviewer (`pending_approval`).",
            input_schema: json!({"type": "object", "properties": {"objectName": object_name(), "recordId": record_id(), "data": {"type": "object", "description": "Field values to set"}}, "required": ["objectName", "recordId", "data"], "additionalProperties": false}),
            read_only: false,
            destructive: true,
            idempotent: false,
        },
        ToolSpec {
            name: "delete_record",
            title: "Delete a record",
            description: "Propose deleting a record (and the records that depend on it): it always waits for a reviewer (`pending_approval`).",
            input_schema: json!({"type": "object", "properties": {"objectName": object_name(), "recordId": record_id()}, "required": ["objectName", "recordId"], "additionalProperties": false}),
            read_only: false,
            destructive: true,
            idempotent: false,
        },
        ToolSpec {
            name: "list_actions",
            title: "List actions",
            description: "List the actions exposed to agents on objects you may read.",
            input_schema: json!({"type": "object", "properties": {"objectName": object_name()}, "additionalProperties": false}),
            read_only: true,
            destructive: false,
            idempotent: true,
        },
        ToolSpec {
            name: "run_action",
            title: "Run an action",
            description: "Run an action exposed to agents on one record. Actions that ask for confirmation wait for a reviewer (`pending_approval`).",
            input_schema: json!({"type": "object", "properties": {
                "actionName": {"type": "string", "minLength": 1, "maxLength": 128},
                "objectName": object_name(),
                "recordId": record_id(),
                "params": {"type": "object", "properties": {}, "additionalProperties": false,
                           "description": "objectos's actions take no parameters: leave it out, or send {}"}
            }, "required": ["actionName"], "additionalProperties": false}),
            read_only: false,
            destructive: true,
            idempotent: false,
        },
        ToolSpec {
            name: "propose_metadata_change",
            title: "Propose a change to the app or to permissions",
            description: "Propose adding a field, changing a select's options, or granting or revoking a permission set. Always waits for a reviewer; an approved change to the app takes effect when an operator signs and applies it. Needs `manage_metadata`.",
            input_schema: json!({"type": "object", "properties": {
                "kind": {"type": "string", "enum": ["add_field", "change_options", "grant_permission_set", "revoke_permission_set"]},
                "objectName": object_name(),
                "fieldName": {"type": "string"},
                "field": {"type": "object", "description": "The new field's definition (`{\"type\": \"text\", \"label\": …}`) for add_field"},
                "options": {"type": "array", "description": "The select's new options for change_options"},
                "permissionSet": {"type": "string"},
                "user": {"type": "string", "description": "The user's email, for a grant or revocation"},
                "reason": {"type": "string", "description": "Why, for the reviewer", "maxLength": 2000}
            }, "required": ["kind"], "additionalProperties": false}),
            read_only: false,
            destructive: true,
            idempotent: false,
        },
    ]
}

/// What a tool call answered: the result (or the refusal, `is_error`), and what
/// the audit row records of it.
pub struct Outcome {
    pub result: Value,
    pub is_error: bool,
}

impl Outcome {
    fn ok(result: Value) -> Outcome {
        Outcome {
            result,
            is_error: false,
        }
    }

    /// A call of a tool that does not exist (answered as a protocol error; the
    /// audit row records it all the same).
    pub fn unknown_tool(name: &str) -> Outcome {
        Outcome::refused(ApiError::not_found(format!(
            "no tool `{}`",
            name.chars().take(128).collect::<String>()
        )))
    }

    fn refused(e: ApiError) -> Outcome {
        Outcome {
            result: json!({"error": {"code": e.code, "message": e.message, "status": e.status}}),
            is_error: true,
        }
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_arguments", message)
}

fn arg_str<'v>(args: &'v Map<String, Value>, name: &str) -> Result<&'v str, ApiError> {
    args.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad(format!("`{name}` is required (a non-empty string)")))
}

fn arg_object<'v>(
    args: &'v Map<String, Value>,
    name: &str,
) -> Result<&'v Map<String, Value>, ApiError> {
    args.get(name)
        .and_then(Value::as_object)
        .ok_or_else(|| bad(format!("`{name}` is required (an object)")))
}

/// The arguments must be the tool's: unknown names are refused.
fn only(args: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    for key in args.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(bad(format!(
                "`{key}` is not an argument of this tool; it takes {}",
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

impl Agent<'_> {
    fn requester(&self) -> Requester<'_> {
        Requester {
            caller: self.caller,
            key_id: self.key_id,
            client: self.client.clone(),
            quota: self.quota,
        }
    }

    fn writes(&self) -> Result<(), ApiError> {
        if self.read_only {
            return Err(ApiError::forbidden(
                "read_only_key",
                "this agent key may read only: it neither writes nor proposes",
            ));
        }
        Ok(())
    }

    /// The object's agent policy: `deny` refuses, `approval` queues.
    fn policy<'m>(&self, records: &Records<'m>, object: &str) -> Result<&'m ObjectDef, ApiError> {
        let access = records.object_access(self.caller, object)?;
        if access.object.agent_writes == AgentWrites::Deny {
            return Err(ApiError::forbidden(
                "agent_writes_denied",
                format!("agents may not write `{object}` records"),
            ));
        }
        Ok(access.object)
    }

    /// Run one tool.
    pub fn call(&self, records: &Records<'_>, tool: &str, args: &Value) -> Outcome {
        let empty = Map::new();
        let map = match args {
            Value::Object(m) => m,
            Value::Null => &empty,
            _ => return Outcome::refused(bad("the arguments are a JSON object")),
        };
        // What the schema `tools/list` shows refuses, refused the same way for
        // every tool, before anything is read.
        if let Some(spec) = specs().into_iter().find(|s| s.name == tool)
            && let Err(e) = schema::check(&spec.input_schema, &Value::Object(map.clone()))
        {
            return Outcome::refused(e);
        }
        match self.dispatch(records, tool, map, args) {
            Ok(result) => Outcome::ok(result),
            Err(e) => Outcome::refused(e),
        }
    }

    fn dispatch(
        &self,
        records: &Records<'_>,
        tool: &str,
        args: &Map<String, Value>,
        raw: &Value,
    ) -> Result<Value, ApiError> {
        let caller = self.caller;
        match tool {
            "list_objects" => {
                only(args, &[])?;
                let objects: Vec<Value> = records
                    .meta_objects(caller)
                    .into_iter()
                    .map(|o| {
                        json!({
                            "name": o["name"],
                            "label": o["label"],
                            "fieldCount": o["fields"].as_object().map_or(0, |f| f.len()),
                        })
                    })
                    .collect();
                let total = objects.len();
                Ok(json!({"objects": objects, "totalCount": total}))
            }
            "describe_object" => {
                only(args, &["objectName"])?;
                let mut view = records.meta_object(caller, arg_str(args, "objectName")?)?;
                // Upstream's tool lists the fields as an array.
                let fields: Vec<Value> = match view.get_mut("fields").map(Value::take) {
                    Some(Value::Object(map)) => map.into_iter().map(|(_, f)| f).collect(),
                    _ => Vec::new(),
                };
                view["fields"] = json!(fields);
                view["enableFeatures"] = json!({});
                Ok(view)
            }
            "validate_expression" => {
                only(args, &["objectName", "expression", "site"])?;
                let object = arg_str(args, "objectName")?;
                let access = records.object_access(caller, object)?;
                match args.get("site").map(|s| s.as_str()) {
                    None | Some(Some("validation" | "flow_condition")) => {}
                    Some(Some(site @ ("formula" | "template"))) => {
                        return Err(bad(format!(
                            "objectos has no {site}s; it checks conditions (site `validation` or `flow_condition`)"
                        )));
                    }
                    Some(_) => {
                        return Err(bad(
                            "`site` is one of formula, validation, flow_condition, template",
                        ));
                    }
                }
                Ok(validate_expression(
                    &access,
                    args.get("expression").unwrap_or(&Value::Null),
                ))
            }
            "query_records" => {
                only(
                    args,
                    &[
                        "objectName",
                        "where",
                        "fields",
                        "orderBy",
                        "limit",
                        "offset",
                    ],
                )?;
                let object = arg_str(args, "objectName")?;
                let mut body = Map::new();
                for key in ["where", "fields", "orderBy", "offset"] {
                    if let Some(v) = args.get(key) {
                        body.insert(key.into(), v.clone());
                    }
                }
                body.insert(
                    "limit".into(),
                    args.get("limit").cloned().unwrap_or(json!(MAX_QUERY_LIMIT)),
                );
                let spec = request::from_body(&Value::Object(body), Some(object))?;
                let page = records.list(caller, &spec)?;
                Ok(page.into_json(object))
            }
            "aggregate_records" => {
                only(
                    args,
                    &["objectName", "aggregations", "groupBy", "where", "timezone"],
                )?;
                let object = arg_str(args, "objectName")?;
                let mut body = Map::new();
                for key in ["aggregations", "groupBy", "where", "timezone"] {
                    if let Some(v) = args.get(key) {
                        body.insert(key.into(), v.clone());
                    }
                }
                let spec: QuerySpec = request::from_body(&Value::Object(body), Some(object))?;
                if !spec.is_aggregate() {
                    return Err(bad("`aggregations` needs at least one aggregation"));
                }
                let rows = records.aggregate(caller, &spec)?;
                // Capped like query_records, as upstream does.
                let total = rows.len();
                let truncated = total > MAX_QUERY_LIMIT as usize;
                let rows: Vec<Value> = rows
                    .into_iter()
                    .take(MAX_QUERY_LIMIT as usize)
                    .map(Value::Object)
                    .collect();
                let mut out = json!({"rows": rows, "totalGroups": total});
                if truncated {
                    out["truncated"] = json!(true);
                }
                Ok(out)
            }
            "get_record" => {
                only(args, &["objectName", "recordId"])?;
                let object = arg_str(args, "objectName")?;
                let id = arg_str(args, "recordId")?;
                // Upstream answers the record itself.
                records.get(caller, object, id).map(Value::Object)
            }
            "create_record" => {
                only(args, &["objectName", "data"])?;
                self.writes()?;
                let object = arg_str(args, "objectName")?;
                let data = arg_object(args, "data")?;
                let o = self.policy(records, object)?;
                if o.agent_writes == AgentWrites::Approval || writes_sensitive(o, data) {
                    let p = prepare::create(records, caller, object, data, tool, raw)?;
                    return self.queue(records, p);
                }
                let record = records.create(caller, object, data)?;
                let id = record.get("id").cloned().unwrap_or(Value::Null);
                Ok(json!({"object": object, "id": id, "record": record}))
            }
            "update_record" => {
                only(args, &["objectName", "recordId", "data"])?;
                self.writes()?;
                let object = arg_str(args, "objectName")?;
                let id = arg_str(args, "recordId")?;
                let data = arg_object(args, "data")?;
                let o = self.policy(records, object)?;
                if o.agent_writes == AgentWrites::Approval || writes_sensitive(o, data) {
                    let p = prepare::update(records, caller, object, id, data, tool, raw, None)?;
                    return self.queue(records, p);
                }
                let record = records.update(caller, object, id, data)?;
                Ok(json!({"object": object, "id": id, "record": record}))
            }
            "delete_record" => {
                only(args, &["objectName", "recordId"])?;
                self.writes()?;
                let object = arg_str(args, "objectName")?;
                let id = arg_str(args, "recordId")?;
                self.policy(records, object)?;
                let p = prepare::delete(records, caller, object, id, tool, raw)?;
                self.queue(records, p)
            }
            "list_actions" => {
                only(args, &["objectName"])?;
                let on = args.get("objectName").and_then(Value::as_str);
                if let Some(o) = on {
                    records.object_access(caller, o)?;
                }
                // Only actions exposed to agents that this user may run, in
                // upstream's item shape.
                let actions: Vec<Value> = records
                    .meta_actions(caller)
                    .into_iter()
                    .filter(|a| a["ai"]["exposed"] == true && a["permitted"] == true)
                    .filter(|a| a["executable"] == true)
                    .filter(|a| on.is_none_or(|o| a["objectName"] == o))
                    .map(|a| {
                        let review = a["ai"]["requiresConfirmation"] == true
                            || !a["confirmText"].is_null()
                            || a["variant"] == "danger";
                        json!({
                            "name": a["name"],
                            "objectName": a["objectName"],
                            "label": a["label"],
                            "description": a["ai"]["description"],
                            "type": a["type"],
                            "requiresRecord": true,
                            "requiresConfirmation": review,
                            "destructive": a["variant"] == "danger",
                            "params": [],
                        })
                    })
                    .collect();
                let total = actions.len();
                Ok(json!({"actions": actions, "totalCount": total}))
            }
            "run_action" => {
                only(args, &["actionName", "objectName", "recordId", "params"])?;
                self.writes()?;
                let name = arg_str(args, "actionName")?;
                let no_action = || ApiError::not_found(format!("no action `{name}`"));
                // Only actions exposed to agents, on objects the user may read.
                let action = records
                    .model
                    .action(name)
                    .filter(|a| a.ai_exposed)
                    .filter(|a| {
                        args.get("objectName")
                            .and_then(Value::as_str)
                            .is_none_or(|o| a.object.as_deref() == Some(o))
                    })
                    .ok_or_else(no_action)?;
                let object = action.object.clone().ok_or_else(|| {
                    ApiError::bad_request(
                        "action_not_executable",
                        format!("`{name}` is carried from the app but objectos does not run it"),
                    )
                })?;
                let o = self
                    .policy(records, &object)
                    .map_err(|e| if e.status == 404 { no_action() } else { e })?;
                let (Some(patch), true) = (&action.patch, action.executable()) else {
                    return Err(ApiError::bad_request(
                        "action_not_executable",
                        format!("`{name}` is carried from the app but objectos does not run it"),
                    ));
                };
                let missing: Vec<&String> = action
                    .required_permissions
                    .iter()
                    .filter(|p| !caller.principal.has(p))
                    .collect();
                if !missing.is_empty() {
                    return Err(ApiError::forbidden(
                        "missing_permission",
                        format!(
                            "running `{name}` needs {}",
                            missing
                                .iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                let id = arg_str(args, "recordId")?;
                // Upstream runs a confirmed action at once; here it always waits.
                if action.needs_review()
                    || o.agent_writes == AgentWrites::Approval
                    || writes_sensitive(o, patch)
                {
                    let p = prepare::update(
                        records,
                        caller,
                        &object,
                        id,
                        patch,
                        tool,
                        raw,
                        Some(name),
                    )?;
                    return self.queue(records, p);
                }
                let record = records.run_action(caller, name, Some(&object), Some(id))?;
                Ok(json!({"object": object, "id": id, "record": record}))
            }
            "propose_metadata_change" => {
                self.writes()?;
                let kind = arg_str(args, "kind")?;
                let p = match kind {
                    "grant_permission_set" => metadata::grant(records, caller, raw, false, raw)?,
                    "revoke_permission_set" => metadata::grant(records, caller, raw, true, raw)?,
                    "add_field" | "change_options" => metadata::change(records, caller, raw, raw)?,
                    other => {
                        return Err(bad(format!(
                            "`{other}` is not a change to propose; use add_field, change_options, grant_permission_set or revoke_permission_set"
                        )));
                    }
                };
                self.queue(records, p)
            }
            other => Err(ApiError::not_found(format!("no tool `{other}`"))),
        }
    }

    fn queue(&self, records: &Records<'_>, p: Proposal) -> Result<Value, ApiError> {
        Queue::new(records).propose(&self.requester(), p)
    }
}

/// Whether a write touches a sensitive field (those wait for a reviewer).
fn writes_sensitive(object: &ObjectDef, data: &Map<String, Value>) -> bool {
    data.keys()
        .any(|k| object.field(k).is_some_and(|f| f.sensitive))
}

/// `validate_expression`: parse, and check every field it names is one the
/// caller may read (an unreadable field is reported as unknown).
fn validate_expression(access: &ObjectAccess<'_>, expression: &Value) -> Value {
    let parsed = match expression {
        Value::String(source) => {
            Filter::from_condition(&json!({"dialect": "cel", "source": source}))
        }
        other => Filter::from_json(other),
    };
    let in_scope: Vec<String> = crate::model::SYSTEM_FIELDS
        .iter()
        .map(|s| s.to_string())
        .chain(access.readable_fields().map(|f| f.name.clone()))
        .collect();
    // Upstream's shape: the dialect, the roots a CEL condition binds, the fields.
    let in_scope = json!({
        "dialect": "cel",
        "roots": ["record"],
        "fields": in_scope,
        "functions": crate::model::cel::FUNCTIONS,
    });
    match parsed {
        Err(e) => {
            json!({"ok": false, "errors": [e.to_string()], "warnings": [], "inScope": in_scope})
        }
        Ok(filter) => {
            let errors: Vec<String> = filter
                .fields()
                .into_iter()
                .filter(|f| !access.field_readable(f))
                .map(|f| format!("`{}` has no field `{f}`", access.object.name))
                .collect();
            json!({
                "ok": errors.is_empty(),
                "errors": errors,
                "warnings": [],
                "inferredType": "boolean",
                "inScope": in_scope,
            })
        }
    }
}
