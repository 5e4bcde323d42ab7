//! build, validate, inspect, diff: reproducibility, upstream artifacts, error tables.

use std::path::Path;

use serde_json::{Value, json};

use crate::util::*;

#[test]
fn builds_are_byte_for_byte_reproducible_whatever_the_mtimes_and_listing_order() {
    let env = Env::new();
    env.run(&["build", fixture("crm").to_str().unwrap(), "-o", "one.json"])
        .ok();
    // A copy written in reverse order, with shuffled mtimes.
    let copy = env.path("copy");
    std::fs::create_dir(&copy).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(fixture("crm"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    names.reverse();
    for (i, name) in names.iter().enumerate() {
        let target = copy.join(name);
        std::fs::copy(fixture("crm").join(name), &target).unwrap();
        let when = std::time::SystemTime::UNIX_EPOCH
            + std::time::Duration::from_secs(1_000_000 + (i as u64 * 7919) % 5000);
        std::fs::File::options()
            .write(true)
            .open(&target)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }
    let run = env.run(&["--json", "build", "copy", "-o", "two.json"]).ok();
    assert_eq!(
        std::fs::read(env.path("one.json")).unwrap(),
        std::fs::read(env.path("two.json")).unwrap()
    );
    let doc = run.json();
    assert_eq!(doc["format"], "objectos.build/1");
    assert_eq!(doc["counts"]["objects"], 7);
    assert_eq!(doc["sha256"].as_str().unwrap().len(), 64);
    // The committed artifact is the fixture's current build.
    assert_eq!(
        std::fs::read(repo().join("artifacts/objectstack.json")).unwrap(),
        std::fs::read(env.path("one.json")).unwrap(),
        "artifacts/objectstack.json is stale: run `objectos build fixtures/crm`"
    );
}

#[test]
fn the_built_artifact_is_canonical_and_rebuilding_it_is_a_fixed_point() {
    let env = Env::new();
    env.run(&["build", fixture("crm").to_str().unwrap(), "-o", "a.json"])
        .ok();
    env.run(&["build", "a.json", "-o", "b.json"]).ok();
    assert_eq!(env.read("a.json"), env.read("b.json"));
    let value: Value = serde_json::from_str(&env.read("a.json")).unwrap();
    // Defaults are explicit in the output.
    assert_eq!(value["objects"][0]["ownership"], "user");
    assert_eq!(value["sharingRules"][0]["type"], "criteria");
    assert!(!env.read("a.json").contains('\n'));
}

#[test]
fn upstream_compiled_artifacts_validate_and_build() {
    let env = Env::new();
    for name in [
        "app-default",
        "plugin-pkg",
        "empty-app",
        "fieldzoo",
        "my-app",
        "recipes",
    ] {
        let path = fixture(&format!("upstream/{name}/objectstack.json"));
        env.run(&["validate", path.to_str().unwrap(), "--strict"])
            .ok();
        env.run(&[
            "build",
            path.to_str().unwrap(),
            "-o",
            &format!("{name}.json"),
        ])
        .ok();
        env.run(&["inspect", &format!("{name}.json")]).ok();
    }
}

#[test]
fn every_upstream_field_type_is_accepted() {
    let env = Env::new();
    let doc = env
        .run(&[
            "--json",
            "inspect",
            fixture("upstream/fieldzoo/objectstack.json")
                .to_str()
                .unwrap(),
        ])
        .ok()
        .json();
    let mut types: Vec<String> = doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|o| {
            o["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["type"].as_str().unwrap().to_string())
        })
        .collect();
    types.sort();
    types.dedup();
    assert_eq!(types.len(), 49, "{types:?}");
}

#[test]
fn upstream_constructs_objectos_cannot_enforce_fail_closed_by_name() {
    let env = Env::new();
    let run = env
        .run(&[
            "--json",
            "validate",
            fixture("upstream/helpdesk/objectstack.json")
                .to_str()
                .unwrap(),
        ])
        .code(3);
    let doc = run.json();
    let errors = doc["errors"].as_array().unwrap();
    let pointers: Vec<&str> = errors
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    for expected in [
        "/objects/0/fields/phone/maskingRule",
        "/permissions/0/objects/helpdesk_ticket/readScope",
        "/permissions/1/rowLevelSecurity",
        "/permissions/1/adminScope",
        "/sharingRules/1/sharedWith/type",
        "/sharingRules/2/sharedWith/type",
        "/sharingRules/3/sharedWith/type",
    ] {
        assert!(
            pointers.contains(&expected),
            "missing {expected} in {pointers:?}"
        );
    }
    for e in errors {
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("not enforced by objectos"),
            "{e}"
        );
    }
}

/// A minimal valid definition to break in one place at a time.
fn base() -> Value {
    json!({
        "manifest": {"id": "com.example.t", "namespace": "tt", "version": "1.0.0", "name": "T", "type": "app", "engines": {"protocol": "^17"}},
        "objects": [
            {"name": "tt_parent", "sharingModel": "private", "fields": {"name": {"type": "text", "maxLength": 10}, "kind": {"type": "select", "options": [{"label": "A", "value": "aa"}]}}},
            {"name": "tt_child", "sharingModel": "controlled_by_parent", "fields": {"parent": {"type": "master_detail", "reference": "tt_parent"}}}
        ],
        "permissions": [{"name": "reader", "objects": {"tt_parent": {"allowRead": true}}, "fields": {"tt_parent.name": {"readable": true}}, "systemPermissions": ["api_access"]}],
        "sharingRules": [{"name": "share", "object": "tt_parent", "condition": {"name": "x"}, "sharedWith": {"type": "team", "value": "ops"}}],
        "actions": [{"name": "rename", "label": "Rename", "objectName": "tt_parent", "operation": "update", "patch": {"name": "renamed"}}],
        "x-objectos": {"objects": {"tt_parent": {"sensitiveFields": ["name"]}}}
    })
}

fn set(doc: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = doc
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent}"));
    match target {
        Value::Object(map) => {
            if value.is_null() {
                map.remove(key);
            } else {
                map.insert(key.to_string(), value);
            }
        }
        Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
        _ => panic!("{parent} is not a container"),
    }
}

#[test]
fn invalid_definitions_report_the_right_pointer() {
    let env = Env::new();
    env.write("base.json", serde_json::to_string(&base()).unwrap());
    env.run(&["validate", "base.json", "--strict"]).ok();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/manifest/version", json!("1.0"), "/manifest/version"),
        ("/manifest/id", json!(""), "/manifest/id"),
        ("/manifest/id", json!("com.example.t\nx"), "/manifest/id"),
        (
            "/manifest/engines",
            json!({"protocol": "^18"}),
            "/manifest/engines/protocol",
        ),
        ("/objects/0/name", json!("TParent"), "/objects/0/name"),
        ("/objects/0/name", json!("other_parent"), "/objects/0/name"),
        ("/manifest/namespace", json!("t"), "/manifest/namespace"),
        (
            "/objects/0/fields/name/type",
            json!("string"),
            "/objects/0/fields/name/type",
        ),
        (
            "/objects/0/fields/name/maxLength",
            json!(0),
            "/objects/0/fields/name/maxLength",
        ),
        (
            "/objects/0/fields/owner_id",
            json!({"type": "text"}),
            "/objects/0/fields/owner_id/type",
        ),
        (
            "/objects/0/fields/link",
            json!({"type": "lookup", "reference": "tt_nowhere"}),
            "/objects/0/fields/link/reference",
        ),
        (
            "/objects/0/fields/kind/defaultValue",
            json!("zz"),
            "/objects/0/fields/kind/defaultValue",
        ),
        (
            "/objects/0/ownership",
            json!("business_unit"),
            "/objects/0/ownership",
        ),
        (
            "/objects/0/sharingModel",
            json!("open"),
            "/objects/0/sharingModel",
        ),
        (
            "/objects/1/fields/parent",
            json!({"type": "text"}),
            "/objects/1/sharingModel",
        ),
        ("/objects/1/name", json!("tt_parent"), "/objects/1/name"),
        (
            "/permissions/0/objects/tt_ghost",
            json!({"allowRead": true}),
            "/permissions/0/objects/tt_ghost",
        ),
        (
            "/permissions/0/objects/tt_parent/readScope",
            json!("unit"),
            "/permissions/0/objects/tt_parent/readScope",
        ),
        // Write without read, said outright (upstream's insert-only grant).
        (
            "/permissions/0/objects/tt_parent",
            json!({"allowCreate": true, "allowRead": false}),
            "/permissions/0/objects/tt_parent/allowRead",
        ),
        (
            "/permissions/0/objects/tt_parent",
            json!({"allowEdit": true, "allowRead": false}),
            "/permissions/0/objects/tt_parent/allowRead",
        ),
        (
            "/permissions/0/fields/tt_parent.nope",
            json!({"readable": true}),
            "/permissions/0/fields/tt_parent.nope",
        ),
        (
            "/permissions/0/fields/name",
            json!({"readable": true}),
            "/permissions/0/fields/name",
        ),
        (
            "/permissions/0/systemPermissions",
            json!([""]),
            "/permissions/0/systemPermissions/0",
        ),
        (
            "/permissions/0/rowLevelSecurity",
            json!([{"name": "r", "object": "tt_parent", "operation": "select", "using": "true"}]),
            "/permissions/0/rowLevelSecurity",
        ),
        (
            "/sharingRules/0/condition",
            json!({"dialect": "cel", "source": "record.name = 'x'"}),
            "/sharingRules/0/condition/source",
        ),
        (
            "/sharingRules/0/condition",
            json!({"nope": 1}),
            "/sharingRules/0/condition",
        ),
        (
            "/sharingRules/0/condition",
            json!({"name": {"$regex": "x"}}),
            "/sharingRules/0/condition/name/$regex",
        ),
        (
            "/sharingRules/0/sharedWith",
            json!({"type": "business_unit", "value": "x"}),
            "/sharingRules/0/sharedWith/type",
        ),
        (
            "/sharingRules/0/accessLevel",
            json!("full"),
            "/sharingRules/0/accessLevel",
        ),
        (
            "/sharingRules/0/object",
            json!("tt_child"),
            "/sharingRules/0/object",
        ),
        (
            "/actions/0/patch",
            json!({"missing": 1}),
            "/actions/0/patch/missing",
        ),
        (
            "/actions/0/objectName",
            json!("tt_ghost"),
            "/actions/0/objectName",
        ),
        (
            "/x-objectos/objects/tt_parent/sensitiveFields",
            json!(["ghost"]),
            "/x-objectos/objects/tt_parent/sensitiveFields/0",
        ),
        (
            "/x-objectos/objects/tt_parent/agentWrites",
            json!("sometimes"),
            "/x-objectos/objects/tt_parent/agentWrites",
        ),
        (
            "/x-objectos/objects/tt_parent/auditRead",
            json!(true),
            "/x-objectos/objects/tt_parent/auditRead",
        ),
        (
            "/x-objectos/objects/tt_ghost",
            json!({"readOnly": true}),
            "/x-objectos/objects/tt_ghost",
        ),
    ];
    for (i, (pointer, value, expected)) in cases.iter().enumerate() {
        let mut doc = base();
        set(&mut doc, pointer, value.clone());
        let name = format!("case{i}.json");
        env.write(&name, serde_json::to_string(&doc).unwrap());
        let run = env.run(&["--json", "validate", &name]);
        assert_eq!(
            run.code, 3,
            "case {i} ({pointer} = {value}) should be invalid:\n{}",
            run.stdout
        );
        let report = run.json();
        let pointers: Vec<&str> = report["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["pointer"].as_str().unwrap())
            .collect();
        assert!(
            pointers.contains(expected),
            "case {i} ({pointer} = {value}): expected {expected}, got {pointers:?}"
        );
        for e in report["errors"].as_array().unwrap() {
            assert_eq!(
                e["file"]
                    .as_str()
                    .map(Path::new)
                    .and_then(Path::file_name)
                    .and_then(|n| n.to_str()),
                Some(name.as_str())
            );
        }
    }
}

#[test]
fn all_errors_are_reported_at_once_with_their_fragment_files() {
    let env = Env::new();
    env.write("src/a.json", r#"{"manifest": {"id": "com.example.t", "version": "1.0.0", "name": "T"}, "objects": [{"name": "t_a", "fields": {"x": {"type": "nope"}}}]}"#);
    env.write("src/b.json", r#"{"objects": [{"name": "t_b", "fields": {"y": {"type": "lookup", "reference": "t_zz"}}}], "permissions": [{"name": "p", "objects": {"t_q": {}}}]}"#);
    let doc = env.run(&["--json", "validate", "src"]).code(3).json();
    let errors = doc["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3, "{errors:?}");
    let by_pointer = |p: &str| {
        errors
            .iter()
            .find(|e| e["pointer"] == p)
            .unwrap_or_else(|| panic!("{p} in {errors:?}"))
    };
    assert!(
        by_pointer("/objects/0/fields/x/type")["file"]
            .as_str()
            .unwrap()
            .ends_with("a.json")
    );
    assert!(
        by_pointer("/objects/1/fields/y/reference")["file"]
            .as_str()
            .unwrap()
            .ends_with("b.json")
    );
    assert!(
        by_pointer("/permissions/0/objects/t_q")["file"]
            .as_str()
            .unwrap()
            .ends_with("b.json")
    );
}

#[test]
fn unknown_keys_warn_and_fail_under_strict() {
    let env = Env::new();
    let mut doc = base();
    doc["objects"][0]["sharingModle"] = json!("private");
    env.write("d.json", serde_json::to_string(&doc).unwrap());
    let run = env.run(&["validate", "d.json"]).ok();
    assert!(
        run.stderr.contains("did you mean `sharingModel`"),
        "{}",
        run.stderr
    );
    let report = env
        .run(&["--json", "validate", "d.json", "--strict"])
        .code(3)
        .json();
    assert_eq!(report["errors"][0]["pointer"], "/objects/0/sharingModle");
}

#[test]
fn bad_input_is_a_clear_error_never_a_panic() {
    let env = Env::new();
    env.write(
        "broken.json",
        "{\n  \"manifest\": {\n    \"id\": ,\n  }\n}\n",
    );
    let run = env.run(&["validate", "broken.json"]).code(3);
    assert!(run.stderr.contains("line 3"), "{}", run.stderr);
    env.write("latin1.json", b"{\"manifest\": \"caf\xe9\"}");
    let run = env.run(&["validate", "latin1.json"]).code(3);
    assert!(run.stderr.contains("UTF-8"), "{}", run.stderr);
    let run = env.run(&["validate", "missing.json"]).code(1);
    assert!(run.stderr.contains("missing.json"), "{}", run.stderr);
    std::fs::create_dir(env.path("empty")).unwrap();
    let run = env.run(&["build", "empty", "-o", "x.json"]).code(1);
    assert!(run.stderr.contains("no fragment files"), "{}", run.stderr);
    assert!(!env.path("x.json").exists());
    env.write("array.json", "[1, 2]");
    env.run(&["validate", "array.json"]).code(3);
    // Conflicting fragments name both files.
    env.write(
        "frags/a.json",
        r#"{"manifest": {"id": "com.example.a", "version": "1.0.0"}}"#,
    );
    env.write("frags/b.json", r#"{"manifest": {"id": "com.example.b"}}"#);
    let run = env.run(&["build", "frags", "-o", "y.json"]).code(3);
    assert!(
        run.stderr.contains("a.json") && run.stderr.contains("b.json"),
        "{}",
        run.stderr
    );
    // Nothing half-written.
    assert!(!env.path("y.json").exists());
    for run in [
        env.run(&["validate", "broken.json"]),
        env.run(&["inspect", "broken.json"]),
    ] {
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
}

#[test]
fn inspect_shows_the_access_matrix_and_what_is_carried() {
    let env = Env::new();
    let run = env.run(&["inspect", fixture("crm").to_str().unwrap()]).ok();
    insta::assert_snapshot!("inspect_crm", run.stdout);
    let doc = env
        .run(&[
            "--json",
            "inspect",
            fixture("upstream/fieldzoo/objectstack.json")
                .to_str()
                .unwrap(),
        ])
        .ok()
        .json();
    assert_eq!(doc["format"], "objectos.inspect/1");
    let carried: Vec<&str> = doc["carried_not_enforced"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert!(carried.is_empty() || carried.iter().all(|k| !k.is_empty()));
    let helpdesk_like = env.write(
        "carried.json",
        serde_json::to_string(&{
            let mut d = base();
            d["flows"] = json!([{"name": "f"}]);
            d["hooks"] = json!([{"name": "h"}]);
            d
        })
        .unwrap(),
    );
    let doc = env
        .run(&["--json", "inspect", helpdesk_like.to_str().unwrap()])
        .ok()
        .json();
    let carried: Vec<&str> = doc["carried_not_enforced"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(carried, vec!["flows", "hooks"]);
}

fn crm_variant(env: &Env, name: &str, edit: impl Fn(&mut Value)) -> String {
    env.run(&["build", fixture("crm").to_str().unwrap(), "-o", "base.json"])
        .ok();
    let mut doc: Value = serde_json::from_str(&env.read("base.json")).unwrap();
    edit(&mut doc);
    env.write(name, serde_json::to_string(&doc).unwrap());
    name.to_string()
}

#[test]
fn diff_flags_every_widening() {
    let env = Env::new();
    let new = crm_variant(&env, "new.json", |doc| {
        doc["manifest"]["version"] = json!("1.1.0");
        // sales_rep gains viewAll on opportunities and may now read the sensitive note
        doc["permissions"][0]["objects"]["crm_opportunity"]["viewAllRecords"] = json!(true);
        doc["permissions"][0]["fields"]["crm_opportunity.discount_approval_note"] =
            json!({"readable": true, "editable": false});
        // accounts become public
        doc["objects"][0]["sharingModel"] = json!("public_read");
        // a new sharing rule
        doc["sharingRules"].as_array_mut().unwrap().push(json!({"name": "all_to_finance", "object": "crm_opportunity", "condition": {"amount": {"$gt": 0}}, "sharedWith": {"type": "team", "value": "finance"}}));
        // a field dropped
        doc["objects"][1]["fields"]
            .as_object_mut()
            .unwrap()
            .remove("birthdate");
        // finance gains a system permission
        doc["permissions"][3]["systemPermissions"] = json!(["api_access", "view_audit"]);
    });
    let run = env.run(&["diff", "base.json", &new]).ok();
    insta::assert_snapshot!("diff_crm_widening", run.stdout);
    let doc = env.run(&["--json", "diff", "base.json", &new]).ok().json();
    assert_eq!(doc["format"], "objectos.diff/1");
    let widening: Vec<String> = doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["widens"] == true)
        .map(|c| c["subject"].as_str().unwrap().to_string())
        .collect();
    for expected in [
        "sales_rep:crm_opportunity",
        "sales_rep:crm_opportunity.discount_approval_note",
        "crm_account.sharingModel",
        "all_to_finance",
        "finance:view_audit",
    ] {
        assert!(
            widening.iter().any(|w| w == expected),
            "{expected} not flagged in {widening:?}"
        );
    }
    assert!(!widening.iter().any(|w| w.contains("birthdate")));
    env.run(&["diff", "base.json", &new, "--deny-widening"])
        .code(3);
    let breaking = env
        .run(&["--json", "diff", "base.json", &new, "--breaking-only"])
        .ok()
        .json();
    let subjects: Vec<&str> = breaking["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, vec!["crm_contact.birthdate"]);
    // Identical artifacts: nothing to flag.
    env.run(&["diff", "base.json", "base.json", "--deny-widening"])
        .ok();
}

#[test]
fn narrowing_is_not_widening() {
    let env = Env::new();
    let new = crm_variant(&env, "narrow.json", |doc| {
        doc["permissions"][0]["objects"]["crm_account"]["allowDelete"] = json!(false);
        doc["objects"][1]["sharingModel"] = json!("private");
    });
    let doc = env
        .run(&["--json", "diff", "base.json", &new, "--deny-widening"])
        .ok()
        .json();
    assert_eq!(doc["widening"], 0);
    assert!(doc["breaking"].as_u64().unwrap() >= 2);
}
