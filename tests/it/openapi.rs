//! The OpenAPI document: valid OpenAPI 3.1 (checked by openapi-spec-validator),
//! every route, and per caller only what they may read.

use std::process::Command;

use serde_json::Value;

use crate::util::*;
use crate::world::*;

/// Check a document with the stock validator (from the test venv).
fn validate(env: &Env, doc: &Value) {
    let py = repo().join("target/interop/venv/bin/python");
    let problem = (!py.exists()).then(|| "target/interop/venv does not exist".to_string());
    if !have_interop("openapi-spec-validator (target/interop/venv)", problem) {
        return;
    }
    let path = env.write(&format!("openapi-{}.json", uuid_like()), doc.to_string());
    let out = Command::new(&py)
        .args([
            "-c",
            "import json, sys; from openapi_spec_validator import validate; validate(json.load(open(sys.argv[1]))); print('valid')",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "not a valid OpenAPI document:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_openapi_document_is_valid_and_shows_each_caller_only_what_they_read() {
    let world = World::build();
    let env = &world.env;
    // Without a credential: the routes, no object.
    let (status, anonymous, _) = world.server.call("GET", "/api/v1/openapi.json", None, None);
    assert_eq!(status, 200);
    assert_eq!(anonymous["openapi"], "3.1.0");
    for path in [
        "/api/v1/data/{object}",
        "/api/v1/mcp",
        "/api/v1/pending-actions/{id}/approve",
        "/healthz",
    ] {
        assert!(anonymous["paths"][path].is_object(), "{path}");
    }
    assert!(anonymous["components"]["schemas"]["crm_opportunity"].is_null());
    for limit in objectos::limits::ALL {
        assert_eq!(
            anonymous["x-objectos-limits"][limit.name]["value"], limit.value,
            "the served document gives limit `{}`",
            limit.name
        );
    }
    validate(env, &anonymous);

    // The rep: her objects, without the note; the manager: with it.
    let (_, rep, raw) = world.call("rep_a", "GET", "/api/v1/openapi.json", None);
    validate(env, &rep);
    let opp = &rep["components"]["schemas"]["crm_opportunity"]["properties"];
    assert!(
        opp["amount"].is_object() && opp["stage"]["anyOf"].is_null(),
        "{opp}"
    );
    assert!(
        opp["stage"]["enum"]
            .as_array()
            .unwrap()
            .contains(&"closed_won".into()),
        "{opp}"
    );
    assert!(
        !raw.contains("discount_approval_note") && !raw.contains("integration_token"),
        "the rep's document names a field she may not read"
    );
    assert!(rep["paths"]["/api/v1/data/crm_opportunity/{id}"]["patch"].is_object());
    let (_, fin, raw) = world.call("fin", "GET", "/api/v1/openapi.json", None);
    assert!(
        fin["components"]["schemas"]["crm_contact"].is_null(),
        "finance reads no contacts"
    );
    assert!(
        !raw.contains("crm_contact"),
        "an unreadable object is absent everywhere"
    );
    assert!(fin["components"]["schemas"]["crm_opportunity"]["properties"]["probability"].is_null());
    let (_, manager, raw) = world.call("manager", "GET", "/api/v1/openapi.json", None);
    assert!(
        raw.contains("discount_approval_note"),
        "the positive control"
    );
    assert!(manager["components"]["schemas"]["crm_opportunity.update"]["properties"]["discount_approval_note"].is_object());

    // A bad credential is refused, not answered as anonymous; an agent key too.
    let (status, _, _) = world
        .server
        .call("GET", "/api/v1/openapi.json", Some("osk_nope"), None);
    assert_eq!(status, 401);
    let agent = env
        .run(&["apikey", "create", email("rep_a"), "--agent"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let (status, _, _) = world
        .server
        .call("GET", "/api/v1/openapi.json", Some(&agent), None);
    assert_eq!(status, 403);

    // The CLI prints the same documents.
    let printed: Value = serde_json::from_str(&env.run(&["openapi"]).ok().stdout).unwrap();
    assert_eq!(printed, anonymous);
    let as_rep: Value =
        serde_json::from_str(&env.run(&["openapi", "--as", email("rep_a")]).ok().stdout).unwrap();
    assert_eq!(as_rep["components"], rep["components"]);
    assert_eq!(as_rep["paths"], rep["paths"]);
    let wrapped = env.run(&["--json", "openapi"]).ok().json();
    assert_eq!(wrapped["format"], "objectos.openapi/1");
    assert_eq!(wrapped["document"], anonymous);
}
