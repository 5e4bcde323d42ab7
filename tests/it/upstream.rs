//! Apps made the way upstream documents are accepted: upstream-compiled
//! fixtures validate; upstream's capability vocabulary, undeclared capability
//! names, declared system fields, `sys_*` grants and CEL boolean literals are
//! accepted with the meaning objectos gives them; every construct that changes
//! access and that objectos does not enforce is still refused by name.

use serde_json::{Value, json};

use crate::store::PASSWORD;
use crate::util::*;

/// The upstream fixture built to fail closed (see fixtures/upstream/README.md).
const REFUSED_FIXTURE: &str = "helpdesk";

/// Upstream's showcase example, refused for the constructs named in
/// `upstream_showcase_example_is_refused_by_name`.
const REFUSED_EXAMPLE: &str = "example-showcase";

fn upstream(name: &str) -> String {
    fixture(&format!("upstream/{name}/objectstack.json"))
        .to_str()
        .unwrap()
        .to_string()
}

fn pointers(issues: &Value) -> Vec<String> {
    issues
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_upstream_fixture_but_the_fail_closed_ones_validates_builds_and_inspects() {
    let env = Env::new();
    let mut names: Vec<String> = std::fs::read_dir(fixture("upstream"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for expected in [
        "my-app",
        "recipes",
        "example-crm",
        "example-todo",
        REFUSED_FIXTURE,
        REFUSED_EXAMPLE,
    ] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }
    for name in names
        .iter()
        .filter(|n| ![REFUSED_FIXTURE, REFUSED_EXAMPLE, INSERT_ONLY_EXAMPLE].contains(&n.as_str()))
    {
        let report = env
            .run(&["--json", "validate", &upstream(name), "--strict"])
            .ok()
            .json();
        assert_eq!(report["valid"], true, "{name}: {report}");
        let out = format!("{name}.json");
        env.run(&["build", &upstream(name), "-o", &out]).ok();
        env.run(&["inspect", &out]).ok();
    }
    // The fail-closed fixture is refused, and only for what objectos does not enforce.
    let report = env
        .run(&["--json", "validate", &upstream(REFUSED_FIXTURE)])
        .code(3)
        .json();
    for e in report["errors"].as_array().unwrap() {
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("not enforced by objectos"),
            "{e}"
        );
    }
}

/// The CRM example: its guest portal set may create leads and read none (an
/// insert-only web form). objectos implies read from every write right, so it
/// refuses that grant by name rather than let the portal read every lead.
const INSERT_ONLY_EXAMPLE: &str = "example-crm";

#[test]
fn upstream_crm_example_is_refused_for_its_insert_only_grant_alone_and_todo_validates() {
    let env = Env::new();
    let report = env
        .run(&["--json", "validate", &upstream("example-todo"), "--strict"])
        .ok()
        .json();
    assert_eq!(report["valid"], true, "{report}");
    assert!(pointers(&report["warnings"]).is_empty(), "{report}");

    let report = env
        .run(&[
            "--json",
            "validate",
            &upstream(INSERT_ONLY_EXAMPLE),
            "--strict",
        ])
        .code(3)
        .json();
    assert_eq!(
        pointers(&report["errors"]),
        ["/permissions/1/objects/crm_lead/allowRead"],
        "{report}"
    );
    let message = report["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("write without read") && message.contains("not enforced by objectos"),
        "{message}"
    );
    // The same app with the portal's grant removed is accepted as it is: the
    // refusal is that grant and nothing else.
    let mut doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            fixture("upstream")
                .join(INSERT_ONLY_EXAMPLE)
                .join("objectstack.json"),
        )
        .unwrap(),
    )
    .unwrap();
    doc["permissions"][1]["objects"]
        .as_object_mut()
        .unwrap()
        .remove("crm_lead");
    env.write("crm-without-portal.json", doc.to_string());
    let report = env
        .run(&["--json", "validate", "crm-without-portal.json", "--strict"])
        .ok()
        .json();
    assert_eq!(report["valid"], true, "{report}");
    let crm = env
        .run(&["--json", "inspect", "crm-without-portal.json"])
        .ok()
        .json();
    assert_eq!(crm["manifest"]["id"], "com.example.crm");
    assert_eq!(crm["objects"].as_array().unwrap().len(), 6);
    let todo = env
        .run(&["--json", "inspect", &upstream("example-todo")])
        .ok()
        .json();
    assert_eq!(todo["manifest"]["id"], "com.example.todo");
    assert_eq!(todo["objects"][0]["name"], "todo_task");
}

#[test]
fn upstream_showcase_example_is_refused_by_name() {
    let env = Env::new();
    let report = env
        .run(&["--json", "validate", &upstream(REFUSED_EXAMPLE)])
        .code(3)
        .json();
    // (where, the construct's name): each changes access and is not enforced.
    let unenforced = [
        (
            "/objects/5/publicSharing",
            "public share links (`publicSharing`)",
        ),
        (
            "/objects/11/fields/tax_rate/readonlyWhen",
            "conditional read-only (`readonlyWhen`)",
        ),
        (
            "/objects/12/fields/product/readonlyWhen",
            "conditional read-only (`readonlyWhen`)",
        ),
        (
            "/objects/12/fields/quantity/readonlyWhen",
            "conditional read-only (`readonlyWhen`)",
        ),
        (
            "/objects/12/fields/unit_price/readonlyWhen",
            "conditional read-only (`readonlyWhen`)",
        ),
        (
            "/permissions/0/rowLevelSecurity",
            "row-level security (`rowLevelSecurity`)",
        ),
        (
            "/permissions/6/objects/showcase_inquiry/allowRead",
            "`allowRead: false` beside `allowCreate`",
        ),
        (
            "/permissions/7/adminScope",
            "delegated administration (`adminScope`)",
        ),
        (
            "/sharingRules/0/sharedWith/type",
            "sharing to `unit_and_subordinates`",
        ),
    ];
    // Not an access construct: a `tree` field that points at another object.
    // Upstream 17.1.0, which compiled this artifact, accepted it; upstream
    // 17.4.0 refuses the same source (see fixtures/upstream/README.md).
    let tree = "/objects/9/fields/f_tree/reference";
    let errors = report["errors"].as_array().unwrap();
    let mut expected: Vec<&str> = unenforced.iter().map(|(p, _)| *p).collect();
    expected.push(tree);
    expected.sort();
    let mut got = pointers(&report["errors"]);
    got.sort();
    assert_eq!(got, expected, "{report}");
    for (pointer, construct) in unenforced {
        let e = errors.iter().find(|e| e["pointer"] == pointer).unwrap();
        let message = e["message"].as_str().unwrap();
        assert!(
            message.starts_with(construct) && message.contains("is not enforced by objectos"),
            "{pointer}: {message}"
        );
    }
    let e = errors.iter().find(|e| e["pointer"] == tree).unwrap();
    assert_eq!(
        e["message"],
        "a `tree` field points at its own object, `showcase_field_zoo`, not `showcase_category`"
    );
    // Its grants on upstream's platform objects are ignored, with a warning each.
    let mut warned = pointers(&report["warnings"]);
    warned.sort();
    assert_eq!(
        warned,
        [
            "sys_business_unit",
            "sys_business_unit_member",
            "sys_permission_set",
            "sys_position",
            "sys_user",
            "sys_user_position",
        ]
        .map(|o| format!("/permissions/7/objects/{o}"))
    );
    // Neither build nor inspect goes on with it.
    env.run(&["build", &upstream(REFUSED_EXAMPLE), "-o", "showcase.json"])
        .code(3);
    assert!(!env.path("showcase.json").exists());
    env.run(&["inspect", &upstream(REFUSED_EXAMPLE)]).code(3);
}

#[test]
fn the_scaffolded_my_app_validates_with_a_warning_about_its_id() {
    let env = Env::new();
    let report = env
        .run(&["--json", "validate", &upstream("my-app"), "--strict"])
        .ok()
        .json();
    assert_eq!(report["valid"], true);
    assert_eq!(pointers(&report["warnings"]), vec!["/manifest/id"]);
    let message = report["warnings"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("`my-app` is not a reverse-DNS id"),
        "{message}"
    );
    let run = env.run(&["validate", &upstream("my-app")]).ok();
    assert!(run.stderr.contains("warning:"), "{}", run.stderr);
    let doc = env
        .run(&["--json", "inspect", &upstream("my-app")])
        .ok()
        .json();
    assert_eq!(doc["manifest"]["id"], "my-app");
    assert_eq!(doc["objects"][0]["name"], "my_app_note");
    // A reverse-DNS id draws no warning; an empty one is an error.
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(upstream("my-app")).unwrap()).unwrap();
    doc["manifest"]["id"] = json!("com.example.my-app");
    env.write("dns.json", doc.to_string());
    let report = env.run(&["--json", "validate", "dns.json"]).ok().json();
    assert!(pointers(&report["warnings"]).is_empty(), "{report}");
    doc["manifest"]["id"] = json!("  ");
    env.write("blank.json", doc.to_string());
    let report = env
        .run(&["--json", "validate", "blank.json"])
        .code(3)
        .json();
    assert_eq!(pointers(&report["errors"]), vec!["/manifest/id"]);
}

#[test]
fn inspect_tells_what_each_permission_name_does_in_objectos() {
    let env = Env::new();
    let run = env.run(&["inspect", &upstream("recipes")]).ok();
    insta::assert_snapshot!("inspect_recipes", run.stdout);
    let doc = env
        .run(&["--json", "inspect", &upstream("recipes")])
        .ok()
        .json();
    let by_name = |name: &str| -> Value {
        doc["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {}", doc["permissions"]))
            .clone()
    };
    for name in [
        "manage_org_users",
        "manage_org_presentation",
        "manage_platform_settings",
        "setup.access",
        "setup.write",
        "studio.access",
    ] {
        let p = by_name(name);
        assert_eq!(p["origin"], "upstream", "{p}");
        assert_eq!(p["has_effect"], false, "{p}");
        assert!(
            p["effect"]
                .as_str()
                .unwrap()
                .starts_with("no effect in objectos"),
            "{p}"
        );
    }
    // An upstream capability an action requires has that effect, and says so.
    let sharing = by_name("manage_sharing");
    assert_eq!(sharing["origin"], "upstream", "{sharing}");
    assert_eq!(sharing["has_effect"], true, "{sharing}");
    assert!(
        sharing["effect"]
            .as_str()
            .unwrap()
            .starts_with("gates what requires it"),
        "{sharing}"
    );
    let metadata = by_name("manage_metadata");
    assert_eq!(metadata["origin"], "objectos");
    assert_eq!(metadata["has_effect"], true);
    assert_eq!(
        metadata["effect"],
        "propose metadata changes through an agent"
    );
    assert_eq!(by_name("manage_users")["origin"], "objectos");
    assert_eq!(by_name("manage_users")["has_effect"], true);
    // Declared and undeclared app capabilities, and what requires them.
    let budget = by_name("recipes_view_budget");
    assert_eq!(budget["origin"], "app");
    assert_eq!(budget["required_by"], json!(["recipes_project.budget"]));
    assert_eq!(budget["granted_by"], json!(["recipes_member"]));
    let archive = by_name("recipes_archive");
    assert_eq!(archive["origin"], "app_undeclared");
    assert_eq!(archive["required_by"], json!(["action archive_project"]));
    let purge = by_name("recipes_purge_tasks");
    assert_eq!(purge["origin"], "app_undeclared");
    assert_eq!(purge["required_by"], json!(["recipes_task (delete)"]));
    assert_eq!(
        by_name("manage_sharing")["required_by"],
        json!(["action reopen_project"])
    );
    // The grants stay grants: the admin set holds all eleven names.
    let admin = doc["system_permissions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["permission_set"] == "recipes_admin")
        .unwrap();
    assert_eq!(admin["permissions"].as_array().unwrap().len(), 11);
}

#[test]
fn grants_on_upstream_platform_objects_are_ignored_with_a_warning() {
    let env = Env::new();
    let report = env
        .run(&["--json", "validate", &upstream("recipes")])
        .ok()
        .json();
    let warnings = report["warnings"].as_array().unwrap();
    for pointer in [
        "/permissions/0/objects/sys_user",
        "/permissions/0/fields/sys_user.email",
    ] {
        let w = warnings
            .iter()
            .find(|w| w["pointer"] == pointer)
            .unwrap_or_else(|| panic!("no warning at {pointer}: {warnings:?}"));
        assert!(w["message"].as_str().unwrap().contains("is ignored"), "{w}");
    }
    let doc = env
        .run(&["--json", "inspect", &upstream("recipes")])
        .ok()
        .json();
    let text = doc["access_matrix"].to_string() + &doc["field_restrictions"].to_string();
    assert!(!text.contains("sys_user"), "{text}");
    assert_eq!(
        doc["ignored_grants"],
        json!([
            {"permission_set": "recipes_member", "target": "sys_user"},
            {"permission_set": "recipes_member", "target": "sys_user.email"}
        ])
    );
    // Any sys_* object, and a grant that would not even parse as rights.
    let mut d = base();
    d["permissions"][0]["objects"]["sys_business_unit"] =
        json!({"allowRead": true, "readScope": "unit"});
    d["permissions"][0]["fields"]["sys_organization.name"] = json!({"readable": false});
    env.write("sys.json", d.to_string());
    let report = env.run(&["--json", "validate", "sys.json"]).ok().json();
    let warned = pointers(&report["warnings"]);
    assert!(warned.contains(&"/permissions/0/objects/sys_business_unit".to_string()));
    assert!(warned.contains(&"/permissions/0/fields/sys_organization.name".to_string()));
}

#[test]
fn system_fields_declared_with_their_own_type_are_merged() {
    let env = Env::new();
    let doc = env
        .run(&["--json", "inspect", &upstream("recipes")])
        .ok()
        .json();
    let object = |name: &str| {
        doc["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .unwrap()
            .clone()
    };
    let names = |o: &Value, key: &str| -> Vec<String> {
        o[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect()
    };
    let project = object("recipes_project");
    assert_eq!(
        names(&project, "fields"),
        vec!["name", "active", "archived", "budget", "reviewer"]
    );
    assert_eq!(
        names(&project, "merged_system_fields"),
        vec![
            "owner_id",
            "created_at",
            "created_by",
            "updated_at",
            "updated_by"
        ]
    );
    let task = object("recipes_task");
    assert_eq!(names(&task, "fields"), vec!["title", "project", "done"]);
    assert_eq!(names(&task, "merged_system_fields"), vec!["id"]);
    assert_eq!(doc["counts"]["fields"], 8);

    // Every accepted shape, one object at a time.
    for (field, decl) in [
        ("owner_id", json!({"type": "user"})),
        (
            "owner_id",
            json!({"type": "user", "reference": "sys_user", "defaultValue": "current_user"}),
        ),
        (
            "owner_id",
            json!({"type": "lookup", "reference": "sys_user", "required": true}),
        ),
        (
            "created_by",
            json!({"type": "lookup", "reference": "sys_user"}),
        ),
        ("updated_by", json!({"type": "user", "label": "Changed by"})),
        (
            "created_at",
            json!({"type": "datetime", "defaultValue": "NOW()"}),
        ),
        (
            "updated_at",
            json!({"type": "datetime", "readonly": true, "hidden": true}),
        ),
        ("id", json!({"type": "text", "unique": true})),
        (
            "organization_id",
            json!({"type": "lookup", "reference": "sys_organization"}),
        ),
    ] {
        let mut d = base();
        d["objects"][0]["fields"][field] = decl.clone();
        env.write("ok.json", d.to_string());
        let report = env
            .run(&["--json", "validate", "ok.json", "--strict"])
            .ok()
            .json();
        assert_eq!(report["valid"], true, "{field} {decl}: {report}");
        assert!(
            pointers(&report["warnings"]).is_empty(),
            "{field} {decl}: {report}"
        );
        let inspected = env.run(&["--json", "inspect", "ok.json"]).ok().json();
        let o = &inspected["objects"][0];
        assert!(!names(o, "fields").contains(&field.to_string()), "{o}");
        assert_eq!(names(o, "merged_system_fields"), vec![field.to_string()]);
    }

    // A mismatching type names the field and the type it needs.
    for (field, decl, expected) in [
        (
            "owner_id",
            json!({"type": "text"}),
            "`user` or `lookup` with `reference: \"sys_user\"`",
        ),
        (
            "owner_id",
            json!({"type": "lookup", "reference": "tt_child"}),
            "not `lookup` to `tt_child`",
        ),
        (
            "owner_id",
            json!({"type": "user", "multiple": true}),
            "not a multi-value `user`",
        ),
        ("created_by", json!({"type": "text"}), "`user` or `lookup`"),
        (
            "updated_by",
            json!({"type": "number"}),
            "`user` or `lookup`",
        ),
        ("created_at", json!({"type": "date"}), "`datetime`"),
        ("updated_at", json!({"type": "text"}), "`datetime`"),
        ("id", json!({"type": "number"}), "`text`"),
        ("id", json!({"type": "autonumber"}), "`text`"),
        (
            "organization_id",
            json!({"type": "text"}),
            "`lookup` with `reference: \"sys_organization\"`",
        ),
    ] {
        let mut d = base();
        d["objects"][0]["fields"][field] = decl.clone();
        env.write("bad.json", d.to_string());
        let report = env.run(&["--json", "validate", "bad.json"]).code(3).json();
        let pointer = format!("/objects/0/fields/{field}/type");
        let e = report["errors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["pointer"] == pointer.as_str())
            .unwrap_or_else(|| panic!("{field} {decl}: no error at {pointer}: {report}"));
        let message = e["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("`{field}` is a system field")) && message.contains(expected),
            "{field} {decl}: {message}"
        );
    }

    // What objectos ignores on a merged declaration is said; an owner_id on an
    // object without per-record owners is merged with a warning.
    let mut d = base();
    d["objects"][0]["fields"]["created_by"] =
        json!({"type": "user", "unique": true, "defaultValue": "someone"});
    d["objects"][1]["ownership"] = json!("org");
    d["objects"][1]["fields"]["owner_id"] = json!({"type": "user"});
    env.write("ignored.json", d.to_string());
    let report = env.run(&["--json", "validate", "ignored.json"]).ok().json();
    let warned = pointers(&report["warnings"]);
    for p in [
        "/objects/0/fields/created_by/unique",
        "/objects/0/fields/created_by/defaultValue",
        "/objects/1/fields/owner_id",
    ] {
        assert!(warned.contains(&p.to_string()), "{p} in {warned:?}");
    }
}

#[test]
fn capability_names_from_upstream_or_undeclared_are_accepted() {
    let env = Env::new();
    let mut d = base();
    d["objects"][0]["requiredPermissions"] = json!({"delete": ["tt_purge"]});
    d["objects"][0]["fields"]["name"]["requiredPermissions"] = json!(["setup.access"]);
    d["actions"][0]["requiredPermissions"] = json!(["studio.access", "tt_rename"]);
    d["permissions"][0]["systemPermissions"] = json!([
        "api_access",
        "manage_metadata",
        "manage_sharing",
        "manage_org_users",
        "manage_org_presentation",
        "manage_platform_settings",
        "setup.write",
        "tt_purge",
        "tt_rename",
        "manage_user"
    ]);
    env.write("caps.json", d.to_string());
    let report = env
        .run(&["--json", "validate", "caps.json", "--strict"])
        .ok()
        .json();
    assert_eq!(report["valid"], true, "{report}");
    // One warning per undeclared name, at its first use; a near miss is named.
    assert_eq!(
        pointers(&report["warnings"]),
        vec![
            "/objects/0/requiredPermissions/delete/0",
            "/permissions/0/systemPermissions/8",
            "/permissions/0/systemPermissions/9",
        ]
    );
    let typo = report["warnings"][2]["message"].as_str().unwrap();
    assert!(typo.contains("did you mean `manage_users`?"), "{typo}");
    let doc = env.run(&["--json", "inspect", "caps.json"]).ok().json();
    let origin = |name: &str| {
        doc["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name}"))["origin"]
            .clone()
    };
    assert_eq!(origin("tt_purge"), "app_undeclared");
    assert_eq!(origin("manage_user"), "app_undeclared");
    assert_eq!(origin("setup.access"), "upstream");
    assert_eq!(origin("manage_metadata"), "objectos");
    // An empty name is an error wherever it appears.
    for (pointer, expected) in [
        (
            "/permissions/0/systemPermissions",
            "/permissions/0/systemPermissions/0",
        ),
        (
            "/actions/0/requiredPermissions",
            "/actions/0/requiredPermissions/0",
        ),
        (
            "/objects/0/fields/name/requiredPermissions",
            "/objects/0/fields/name/requiredPermissions/0",
        ),
    ] {
        let mut d = base();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        d.pointer_mut(parent).unwrap()[key] = json!([""]);
        env.write("empty.json", d.to_string());
        let report = env
            .run(&["--json", "validate", "empty.json"])
            .code(3)
            .json();
        assert_eq!(pointers(&report["errors"]), vec![expected]);
    }
}

#[test]
fn cel_boolean_literals_work_and_match_all_conditions_are_refused() {
    let env = Env::new();
    let with_condition = |condition: Value| {
        let mut d = base();
        d["objects"][0]["fields"]["flag"] = json!({"type": "boolean"});
        d["sharingRules"][0]["condition"] = condition;
        d
    };
    for condition in [
        json!("record.flag == true"),
        json!("record.flag != false"),
        json!("true == record.flag"),
        json!({"dialect": "cel", "source": "record.flag == false && true"}),
        json!({"dialect": "cel", "source": "record.flag in [true] && (true || record.name == 'x') && record.flag == true"}),
        json!({"flag": true}),
    ] {
        env.write("c.json", with_condition(condition.clone()).to_string());
        let report = env
            .run(&["--json", "validate", "c.json", "--strict"])
            .ok()
            .json();
        assert_eq!(report["valid"], true, "{condition}: {report}");
    }
    for (condition, pointer, says) in [
        (
            json!("true"),
            "/sharingRules/0/condition",
            "matches every record",
        ),
        (
            json!({"dialect": "cel", "source": "(true)"}),
            "/sharingRules/0/condition",
            "matches every record",
        ),
        (
            json!("record.flag == true || true"),
            "/sharingRules/0/condition",
            "matches every record",
        ),
        (
            json!({}),
            "/sharingRules/0/condition",
            "matches every record",
        ),
        (
            json!({"$and": [{}]}),
            "/sharingRules/0/condition",
            "matches every record",
        ),
        (
            json!({"dialect": "cel", "source": "false"}),
            "/sharingRules/0/condition/source",
            "`false` alone",
        ),
        (
            json!("record.flag == true && false"),
            "/sharingRules/0/condition",
            "`false` alone",
        ),
        (
            json!("record.flag == 'yes'"),
            "/sharingRules/0/condition",
            "wrong type",
        ),
        (
            json!("record.name == true"),
            "/sharingRules/0/condition",
            "wrong type",
        ),
        (
            json!("record.created_at == true"),
            "/sharingRules/0/condition",
            "wrong type",
        ),
        (
            json!("record.flag"),
            "/sharingRules/0/condition",
            "expected a comparison",
        ),
    ] {
        env.write("c.json", with_condition(condition.clone()).to_string());
        let report = env.run(&["--json", "validate", "c.json"]).code(3).json();
        let e = report["errors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["pointer"] == pointer)
            .unwrap_or_else(|| panic!("{condition}: no error at {pointer}: {report}"));
        assert!(
            e["message"].as_str().unwrap().contains(says),
            "{condition}: {e}"
        );
    }
}

/// A minimal valid definition to change one construct at a time.
fn base() -> Value {
    json!({
        "manifest": {"id": "com.example.t", "namespace": "tt", "version": "1.0.0", "name": "T", "type": "app", "engines": {"protocol": "^17"}},
        "objects": [
            {"name": "tt_parent", "sharingModel": "private", "fields": {"name": {"type": "text", "maxLength": 10}}},
            {"name": "tt_child", "sharingModel": "controlled_by_parent", "fields": {"parent": {"type": "master_detail", "reference": "tt_parent"}}}
        ],
        "positions": [{"name": "tt_lead"}],
        "permissions": [{"name": "reader", "objects": {"tt_parent": {"allowRead": true}}, "fields": {"tt_parent.name": {"readable": true}}, "systemPermissions": ["api_access"]}],
        "sharingRules": [{"name": "share", "object": "tt_parent", "condition": {"name": "x"}, "sharedWith": {"type": "position", "value": "tt_lead"}}],
        "actions": [{"name": "rename", "label": "Rename", "objectName": "tt_parent", "operation": "update", "patch": {"name": "renamed"}}]
    })
}

#[test]
fn every_construct_that_changes_access_and_is_not_enforced_is_refused_by_name() {
    let env = Env::new();
    env.write("base.json", base().to_string());
    env.run(&["validate", "base.json", "--strict"]).ok();
    // (what to change, JSON pointer of the value, new value, where the error is, the construct's name)
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "/objects/0/ownership",
            json!("business_unit"),
            "/objects/0/ownership",
            "ownership `business_unit`",
        ),
        (
            "/objects/0/fields/owning_business_unit_id",
            json!({"type": "lookup", "reference": "sys_business_unit"}),
            "/objects/0/fields/owning_business_unit_id",
            "business-unit ownership (the `owning_business_unit_id` field)",
        ),
        (
            "/permissions/0/objects/tt_parent/readScope",
            json!("unit"),
            "/permissions/0/objects/tt_parent/readScope",
            "`readScope: unit` (hierarchy scopes)",
        ),
        (
            "/permissions/0/objects/tt_parent/readScope",
            json!("unit_and_below"),
            "/permissions/0/objects/tt_parent/readScope",
            "`readScope: unit_and_below` (hierarchy scopes)",
        ),
        (
            "/permissions/0/objects/tt_parent/readScope",
            json!("own_and_reports"),
            "/permissions/0/objects/tt_parent/readScope",
            "`readScope: own_and_reports` (hierarchy scopes)",
        ),
        (
            "/permissions/0/objects/tt_parent/writeScope",
            json!("unit_and_below"),
            "/permissions/0/objects/tt_parent/writeScope",
            "`writeScope: unit_and_below` (hierarchy scopes)",
        ),
        (
            "/permissions/0/rowLevelSecurity",
            json!([{"name": "r", "object": "tt_parent", "operation": "select", "using": "true"}]),
            "/permissions/0/rowLevelSecurity",
            "row-level security (`rowLevelSecurity`)",
        ),
        (
            "/permissions/0/adminScope",
            json!({"businessUnit": "support"}),
            "/permissions/0/adminScope",
            "delegated administration (`adminScope`)",
        ),
        (
            "/sharingRules/0/sharedWith",
            json!({"type": "business_unit", "value": "bu"}),
            "/sharingRules/0/sharedWith/type",
            "sharing to `business_unit`",
        ),
        (
            "/sharingRules/0/sharedWith",
            json!({"type": "unit_and_subordinates", "value": "bu"}),
            "/sharingRules/0/sharedWith/type",
            "sharing to `unit_and_subordinates`",
        ),
        (
            "/sharingRules/0/sharedWith",
            json!({"type": "field", "value": "name"}),
            "/sharingRules/0/sharedWith/type",
            "sharing to `field`",
        ),
        (
            "/objects/0/fields/name/maskingRule",
            json!("phone"),
            "/objects/0/fields/name/maskingRule",
            "field masking (`maskingRule`)",
        ),
        (
            "/objects/0/fields/name/readonlyWhen",
            json!("record.name == 'x'"),
            "/objects/0/fields/name/readonlyWhen",
            "conditional read-only (`readonlyWhen`)",
        ),
        (
            "/objects/0/systemFields",
            json!({"tenant": false}),
            "/objects/0/systemFields",
            "opting out of the organization column (`systemFields`)",
        ),
        (
            "/objects/0/systemFields",
            json!(false),
            "/objects/0/systemFields",
            "opting out of the organization column (`systemFields`)",
        ),
        (
            "/objects/0/tenancy",
            json!({"enabled": true, "strategy": "shared"}),
            "/objects/0/tenancy",
            "custom `tenancy`",
        ),
        (
            "/objects/0/publicSharing",
            json!({"enabled": true}),
            "/objects/0/publicSharing",
            "public share links (`publicSharing`)",
        ),
        (
            "/objects/0/enable",
            json!({"apiEnabled": false}),
            "/objects/0/enable",
            "restricting the API surface",
        ),
        (
            "/objects/0/enable",
            json!({"apiMethods": ["get"]}),
            "/objects/0/enable",
            "restricting the API surface",
        ),
        (
            "/objects/0/fields/owner_id",
            json!({"type": "user", "requiredPermissions": ["api_access"]}),
            "/objects/0/fields/owner_id/requiredPermissions",
            "`requiredPermissions` on the system field `owner_id`",
        ),
        (
            "/objects/0/fields/created_at",
            json!({"type": "datetime", "internal": true}),
            "/objects/0/fields/created_at/internal",
            "hiding the system field `created_at` (`internal`)",
        ),
        (
            "/objects/0/fields/owner_id",
            json!({"type": "lookup", "reference": "sys_user", "readonly": true}),
            "/objects/0/fields/owner_id/readonly",
            "a read-only `owner_id`",
        ),
        (
            "/permissions/0/fields/tt_parent.created_by",
            json!({"readable": false}),
            "/permissions/0/fields/tt_parent.created_by",
            "hiding the system field `created_by` (field rights)",
        ),
    ];
    for (i, (pointer, value, expected, construct)) in cases.iter().enumerate() {
        let mut doc = base();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        doc.pointer_mut(parent)
            .unwrap_or_else(|| panic!("no {parent}"))[key] = value.clone();
        let name = format!("case{i}.json");
        env.write(&name, doc.to_string());
        let report = env.run(&["--json", "validate", &name]).code(3).json();
        let e = report["errors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["pointer"] == *expected)
            .unwrap_or_else(|| {
                panic!("case {i} ({pointer} = {value}): no error at {expected}: {report}")
            });
        let message = e["message"].as_str().unwrap();
        assert!(
            message.starts_with(construct) && message.contains("is not enforced by objectos"),
            "case {i} ({pointer} = {value}): {message}"
        );
    }
    // The field grant that does not hide a system field is ignored, not refused.
    let mut doc = base();
    doc["permissions"][0]["fields"]["tt_parent.created_by"] =
        json!({"readable": true, "editable": true});
    env.write("shown.json", doc.to_string());
    let report = env.run(&["--json", "validate", "shown.json"]).ok().json();
    assert_eq!(
        pointers(&report["warnings"]),
        vec!["/permissions/0/fields/tt_parent.created_by"]
    );
}

/// The recipes app with one set every user holds that lets them use the API.
fn recipes_instance(env: &Env) {
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(upstream("recipes")).unwrap()).unwrap();
    doc["permissions"].as_array_mut().unwrap().push(json!({
        "name": "recipes_api", "isDefault": true, "objects": {}, "systemPermissions": ["api_access"]
    }));
    env.write("recipes.json", doc.to_string());
    env.run(&["build", "recipes.json", "-o", "recipes-artifact.json"])
        .ok();
    env.run(&["keygen", "-o", "recipes-key", "--unencrypted"])
        .ok();
    env.run(&["sign", "recipes-artifact.json", "-k", "recipes-key"])
        .ok();
    env.run(&["init"]).ok();
    env.run(&["trust", "add", "recipes-key.pub"]).ok();
    env.run(&["apply", "recipes-artifact.json", "-y"]).ok();
    env.write("pw", format!("{PASSWORD}\n"));
    env.run(&[
        "bootstrap",
        "--admin-email",
        "admin@example.com",
        "--password-file",
        "pw",
    ])
    .ok();
    for (email, set) in [
        ("mel@example.com", "recipes_member"),
        ("lee@example.com", "recipes_member"),
        ("nia@example.com", "recipes_member"),
        ("ada@example.com", "recipes_admin"),
    ] {
        env.run(&["user", "add", email, "--no-password"]).ok();
        env.run(&["permset", "assign", set, email]).ok();
    }
    env.run(&["team", "add", "recipes_lead"]).ok();
    env.run(&["team", "add-member", "recipes_lead", "lee@example.com"])
        .ok();
}

#[test]
fn the_recipes_app_runs_as_declared() {
    let env = Env::new();
    recipes_instance(&env);
    // Declared system fields are the system columns: each exactly once.
    let columns: Vec<String> = sql_query(
        &env.db(),
        if env.pg.is_some() {
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'rec_recipes_project' ORDER BY ordinal_position"
        } else {
            "SELECT name FROM pragma_table_info('rec_recipes_project')"
        },
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect();
    for system in [
        "id",
        "owner_id",
        "organization_id",
        "created_by",
        "created_at",
        "updated_by",
        "updated_at",
    ] {
        assert_eq!(
            columns.iter().filter(|c| *c == system).count(),
            1,
            "{system} in {columns:?}"
        );
    }
    let key = |email: &str| {
        env.run(&["apikey", "create", email])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    let (mel, lee, nia, ada) = (
        key("mel@example.com"),
        key("lee@example.com"),
        key("nia@example.com"),
        key("ada@example.com"),
    );
    let server = Server::start(&env);
    // The record of a single-record answer, bare or wrapped as `{record}`.
    let record =
        |got: &Value| -> Value { got.get("record").cloned().unwrap_or_else(|| got.clone()) };
    let create = |who: &str, object: &str, body: Value| -> Value {
        let (s, json, raw) = server.call(
            "POST",
            &format!("/api/v1/data/{object}"),
            Some(who),
            Some(body),
        );
        assert_eq!(s, 201, "{raw}");
        json
    };
    // mel holds the declared capability that the budget field requires.
    let open = create(
        &mel,
        "recipes_project",
        json!({"name": "Open", "active": true, "archived": false, "budget": 100}),
    );
    let open_id = record(&open)["id"].as_str().unwrap().to_string();
    let closed = create(
        &mel,
        "recipes_project",
        json!({"name": "Closed", "active": false, "archived": true}),
    );
    let closed_id = record(&closed)["id"].as_str().unwrap().to_string();
    let (s, got, raw) = server.get(&format!("/api/v1/data/recipes_project/{open_id}"), &mel);
    assert_eq!(s, 200, "{raw}");
    let rec = record(&got);
    assert_eq!(rec["budget"], 100, "{got}");
    assert!(rec["owner_id"].is_string(), "{got}");
    assert!(rec["created_at"].is_string(), "{got}");
    // ada sees every project (viewAllRecords) but not the budget she may not read.
    let (s, got, raw) = server.get(&format!("/api/v1/data/recipes_project/{open_id}"), &ada);
    assert_eq!(s, 200, "{raw}");
    assert!(record(&got).get("budget").is_none(), "{got}");
    assert_eq!(record(&got)["name"], "Open", "{got}");
    // The sharing rules in upstream's CEL: `record.active == true` shares the open
    // project with the lead (read), `record.archived == false && true` lets the
    // lead edit it; the closed project matches neither.
    let (s, _, raw) = server.get(&format!("/api/v1/data/recipes_project/{open_id}"), &lee);
    assert_eq!(s, 200, "{raw}");
    let (s, _, raw) = server.call(
        "PATCH",
        &format!("/api/v1/data/recipes_project/{open_id}"),
        Some(&lee),
        Some(json!({"name": "Renamed by the lead"})),
    );
    assert_eq!(s, 200, "{raw}");
    let (s, _, _) = server.get(&format!("/api/v1/data/recipes_project/{closed_id}"), &lee);
    assert_eq!(s, 404);
    // nia holds the same set, but is no lead: neither project is hers.
    let (s, _, _) = server.get(&format!("/api/v1/data/recipes_project/{open_id}"), &nia);
    assert_eq!(s, 404);
    // An undeclared capability gates its action: ada holds it, mel does not.
    let run = |who: &str, action: &str, id: &str| {
        server.call(
            "POST",
            &format!("/api/v1/actions/{action}"),
            Some(who),
            Some(json!({"recordId": id})),
        )
    };
    let (s, _, raw) = run(&mel, "archive_project", &open_id);
    assert_eq!(s, 403, "{raw}");
    let (s, _, raw) = run(&ada, "archive_project", &open_id);
    assert_eq!(s, 200, "{raw}");
    // So does one of upstream's capabilities, held as an opaque name.
    let (s, _, raw) = run(&mel, "reopen_project", &open_id);
    assert_eq!(s, 403, "{raw}");
    let (s, _, raw) = run(&ada, "reopen_project", &open_id);
    assert_eq!(s, 200, "{raw}");
    // And an undeclared capability gates deleting tasks.
    let task = create(
        &ada,
        "recipes_task",
        json!({"title": "T", "project": open_id}),
    );
    let task_id = record(&task)["id"].as_str().unwrap().to_string();
    let (s, _, raw) = server.call(
        "DELETE",
        &format!("/api/v1/data/recipes_task/{task_id}"),
        Some(&ada),
        None,
    );
    assert!(s == 200 || s == 204, "{s} {raw}");
}
