//! The runtime over HTTP: the permission table, canaries, oracles, injection,
//! revocation, shutdown.

use serde_json::{Value, json};

use crate::util::*;
use crate::world::*;

fn count(world: &World, user: &str, object: &str) -> (u16, usize) {
    let (status, body, _) = world.call(
        user,
        "GET",
        &format!("/api/v1/data/{object}?limit=1000"),
        None,
    );
    (
        status,
        body["records"].as_array().map(Vec::len).unwrap_or(0),
    )
}

fn status(world: &World, user: &str, method: &str, path: &str, body: Option<Value>) -> u16 {
    world.call(user, method, path, body).0
}

#[test]
fn the_permission_table_holds_for_every_user_object_and_operation() {
    let world = World::build();
    let opp_a = world.id("opp_a").to_string();
    let opp_b = world.id("opp_b").to_string();
    let acc_a = world.id("account_a").to_string();
    // user, object, visible in list, get(own-of-a) status, create status
    // (list count) -1 means the list itself is refused with the status in `get`.
    struct Row {
        user: &'static str,
        object: &'static str,
        list: i64,
        get_a: u16,
        create: u16,
    }
    let rows = [
        // Opportunities: private, owner-based; finance gets closed-won through a rule;
        // the manager and the auditor see the whole organization.
        Row {
            user: "rep_a",
            object: "crm_opportunity",
            list: 2,
            get_a: 200,
            create: 201,
        },
        Row {
            user: "rep_b",
            object: "crm_opportunity",
            list: 1,
            get_a: 404,
            create: 201,
        },
        Row {
            user: "manager",
            object: "crm_opportunity",
            list: 3,
            get_a: 200,
            create: 201,
        },
        Row {
            user: "fin",
            object: "crm_opportunity",
            list: 1,
            get_a: 404,
            create: 403,
        },
        Row {
            user: "auditor",
            object: "crm_opportunity",
            list: 3,
            get_a: 200,
            create: 403,
        },
        Row {
            user: "admin",
            object: "crm_opportunity",
            list: -1,
            get_a: 404,
            create: 404,
        },
        Row {
            user: "other",
            object: "crm_opportunity",
            list: 1,
            get_a: 404,
            create: 201,
        },
        Row {
            user: "nobody",
            object: "crm_opportunity",
            list: -1,
            get_a: 403,
            create: 403,
        },
        Row {
            user: "disabled",
            object: "crm_opportunity",
            list: -1,
            get_a: 401,
            create: 401,
        },
        // Accounts: the controller gets finance-industry accounts through a rule to a user.
        Row {
            user: "rep_a",
            object: "crm_account",
            list: 2,
            get_a: 200,
            create: 201,
        },
        Row {
            user: "rep_b",
            object: "crm_account",
            list: 1,
            get_a: 404,
            create: 201,
        },
        Row {
            user: "controller",
            object: "crm_account",
            list: 1,
            get_a: 404,
            create: 403,
        },
        Row {
            user: "fin",
            object: "crm_account",
            list: 0,
            get_a: 404,
            create: 403,
        },
        Row {
            user: "auditor",
            object: "crm_account",
            list: 3,
            get_a: 200,
            create: 403,
        },
        // Contacts are public_read: every rep reads them.
        Row {
            user: "rep_b",
            object: "crm_contact",
            list: 1,
            get_a: 200,
            create: 201,
        },
        Row {
            user: "fin",
            object: "crm_contact",
            list: -1,
            get_a: 404,
            create: 404,
        },
        // Exchange rates: a read-only data source.
        Row {
            user: "rep_a",
            object: "crm_fx_rate",
            list: 1,
            get_a: 200,
            create: 403,
        },
        // Line items follow their opportunity.
        Row {
            user: "rep_a",
            object: "crm_opportunity_line",
            list: 1,
            get_a: 200,
            create: 201,
        },
        Row {
            user: "rep_b",
            object: "crm_opportunity_line",
            list: 0,
            get_a: 404,
            create: 400,
        },
        Row {
            user: "manager",
            object: "crm_opportunity_line",
            list: 1,
            get_a: 200,
            create: 403,
        },
    ];
    let sample_id = |object: &str| match object {
        "crm_opportunity" => world.id("opp_a").to_string(),
        "crm_account" => world.id("account_a").to_string(),
        "crm_contact" => world.id("contact_a").to_string(),
        "crm_fx_rate" => "fx1".to_string(),
        "crm_opportunity_line" => world.id("line_a").to_string(),
        _ => unreachable!(),
    };
    let sample_body = |object: &str| match object {
        "crm_opportunity" => json!({"name": "New", "stage": "proposal"}),
        "crm_account" => json!({"name": "New account"}),
        "crm_contact" => json!({"last_name": "New"}),
        "crm_fx_rate" => json!({"currency": "GBP", "rate": 1.2}),
        "crm_opportunity_line" => json!({"opportunity": opp_a, "quantity": 1}),
        _ => unreachable!(),
    };
    for row in &rows {
        let (list_status, visible) = count(&world, row.user, row.object);
        if row.list < 0 {
            assert_eq!(list_status, row.get_a, "{} list {}", row.user, row.object);
        } else {
            assert_eq!(
                (list_status, visible as i64),
                (200, row.list),
                "{} list {}",
                row.user,
                row.object
            );
            // The query endpoint and a count aggregate agree with the list.
            let (s, body, _) = world.call(
                row.user,
                "POST",
                "/api/v1/query",
                Some(json!({"object": row.object, "limit": 1000})),
            );
            assert_eq!(
                (
                    s,
                    body["records"].as_array().map(Vec::len).unwrap_or(99) as i64
                ),
                (200, row.list),
                "{} query {}",
                row.user,
                row.object
            );
            let (s, body, _) = world.call(row.user, "POST", "/api/v1/query", Some(json!({"object": row.object, "aggregations": [{"function": "count", "alias": "n"}]})));
            assert_eq!(
                (s, body["records"][0]["n"].as_i64().unwrap_or(-1)),
                (200, row.list),
                "{} aggregate {}",
                row.user,
                row.object
            );
            // Meta lists exactly the objects the user can read.
            let (_, meta, _) = world.call(row.user, "GET", "/api/v1/meta/objects", None);
            assert!(
                meta["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|o| o["name"] == row.object),
                "{} meta {}",
                row.user,
                row.object
            );
        }
    }
    for row in &rows {
        let id = sample_id(row.object);
        assert_eq!(
            status(
                &world,
                row.user,
                "GET",
                &format!("/api/v1/data/{}/{id}", row.object),
                None
            ),
            row.get_a,
            "{} get {}",
            row.user,
            row.object
        );
        assert_eq!(
            status(
                &world,
                row.user,
                "POST",
                &format!("/api/v1/data/{}", row.object),
                Some(sample_body(row.object))
            ),
            row.create,
            "{} create {}",
            row.user,
            row.object
        );
    }
    // Update and delete of records the user cannot read are 404; readable but not
    // editable is 403; own records may be changed.
    let cases = [
        (
            "rep_b",
            "PATCH",
            format!("/api/v1/data/crm_opportunity/{opp_a}"),
            404,
        ),
        (
            "rep_b",
            "DELETE",
            format!("/api/v1/data/crm_opportunity/{opp_a}"),
            404,
        ),
        (
            "fin",
            "PATCH",
            format!("/api/v1/data/crm_opportunity/{}", world.id("opp_a_won")),
            403,
        ),
        (
            "manager",
            "PATCH",
            format!("/api/v1/data/crm_opportunity/{opp_b}"),
            403,
        ),
        (
            "manager",
            "DELETE",
            format!("/api/v1/data/crm_opportunity/{opp_b}"),
            403,
        ),
        (
            "auditor",
            "PATCH",
            format!("/api/v1/data/crm_account/{acc_a}"),
            403,
        ),
        (
            "other",
            "PATCH",
            format!("/api/v1/data/crm_opportunity/{opp_a}"),
            404,
        ),
        (
            "admin",
            "PATCH",
            format!("/api/v1/data/crm_opportunity/{opp_a}"),
            404,
        ),
        (
            "rep_a",
            "PATCH",
            "/api/v1/data/crm_fx_rate/fx1".to_string(),
            403,
        ),
        (
            "rep_b",
            "PATCH",
            format!("/api/v1/data/crm_opportunity/{opp_b}"),
            200,
        ),
        (
            "rep_a",
            "PATCH",
            format!("/api/v1/data/crm_opportunity/{opp_a}"),
            200,
        ),
    ];
    for (user, method, path, expected) in cases {
        let body = if method == "PATCH" {
            Some(json!({"name": "Renamed"}))
        } else {
            None
        };
        assert_eq!(
            status(&world, user, method, &path, body),
            expected,
            "{user} {method} {path}"
        );
    }
    // The disabled user and the agent key.
    assert_eq!(
        status(&world, "disabled", "GET", "/api/v1/meta/objects", None),
        401
    );
    let agent = world
        .env
        .run(&["apikey", "create", "rep.a@example.com", "--agent"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let (s, body, _) = world
        .server
        .call("GET", "/api/v1/meta/objects", Some(&agent), None);
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (403, Some("agent_key_not_allowed"))
    );
    let (s, body, _) = world.call("nobody", "GET", "/api/v1/meta/objects", None);
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (403, Some("api_access_required"))
    );
    // Deleting: a rep deletes their own record; its line items go with it.
    assert_eq!(
        status(
            &world,
            "rep_a",
            "DELETE",
            &format!("/api/v1/data/crm_opportunity/{opp_a}"),
            None
        ),
        200
    );
    assert_eq!(
        status(
            &world,
            "rep_a",
            "GET",
            &format!("/api/v1/data/crm_opportunity_line/{}", world.id("line_a")),
            None
        ),
        404
    );
}

/// The records `World::seed` makes: (label, object, the users who may read it).
/// Everyone else gets a refusal for it and never sees it in a list.
const READERS: &[(&str, &str, &[&str])] = &[
    ("opp_a", "crm_opportunity", &["rep_a", "manager", "auditor"]),
    (
        "opp_a_won",
        "crm_opportunity",
        // closed won: shared with the finance team (fin) by a rule
        &["rep_a", "manager", "fin", "auditor"],
    ),
    ("opp_b", "crm_opportunity", &["rep_b", "manager", "auditor"]),
    ("opp_g", "crm_opportunity", &["other"]),
    ("account_a", "crm_account", &["rep_a", "manager", "auditor"]),
    (
        "account_a_fin",
        "crm_account",
        // a finance-industry account: shared with the controller by a rule
        &["rep_a", "manager", "auditor", "controller"],
    ),
    ("account_b", "crm_account", &["rep_b", "manager", "auditor"]),
    (
        "contact_a",
        "crm_contact",
        &["rep_a", "rep_b", "manager", "auditor"],
    ),
    (
        "line_a",
        "crm_opportunity_line",
        &["rep_a", "manager", "auditor"],
    ),
    (
        "fx1",
        "crm_fx_rate",
        &["rep_a", "rep_b", "manager", "fin", "auditor", "controller"],
    ),
];

/// Each canary `World::seed` plants and the only users who may ever see it. Every
/// user listed must see it somewhere in the read sweep (the positive control);
/// nobody else may find it in any response body.
fn canary_readers() -> Vec<(String, &'static [&'static str])> {
    vec![
        (CANARY_NOTE.to_string(), &["manager"]),
        // a password field: written, never read back
        (CANARY_TOKEN.to_string(), &[]),
        (CANARY_CREDIT.to_string(), &["auditor"]),
        (
            CANARY_PROBABILITY.to_string(),
            &["rep_a", "rep_b", "manager", "auditor", "other"],
        ),
        (SECRET_DEAL_A.to_string(), &["rep_a", "manager", "auditor"]),
        (SECRET_DEAL_B.to_string(), &["rep_b", "manager", "auditor"]),
        (SECRET_DEAL_G.to_string(), &["other"]),
    ]
}

/// One response of the canary sweep.
struct Seen {
    user: &'static str,
    what: String,
    status: u16,
    json: Value,
    raw: String,
}

/// Every page of the audit log as `user` reads it through the API.
fn audit_pages(world: &World, user: &str) -> Vec<(u16, Value, String)> {
    let mut pages = Vec::new();
    let mut from = 1;
    loop {
        let page = world.call(
            user,
            "GET",
            &format!("/api/v1/audit/events?from={from}&limit=1000"),
            None,
        );
        let next = page.1["next_from"].as_i64();
        let more = page.0 == 200
            && page.1["events"]
                .as_array()
                .is_some_and(|events| !events.is_empty());
        pages.push(page);
        match next {
            Some(next) if more && next > from => from = next,
            _ => return pages,
        }
        assert!(pages.len() < 100, "{user}: the audit log does not end");
    }
}

const SWEEP_OBJECTS: [&str; 7] = [
    "crm_opportunity",
    "crm_account",
    "crm_contact",
    "crm_opportunity_line",
    "crm_product",
    "crm_fx_rate",
    "crm_note",
];

/// Every read surface for every user: meta, list, query, filter, sort, fields,
/// group and aggregates over each canary field, get of every seeded record under
/// every object, and every page of the audit log. Reads only.
fn read_sweep(world: &World) -> Vec<Seen> {
    let fields = [
        "discount_approval_note",
        "integration_token",
        "credit_limit",
        "probability",
        "name",
    ];
    let mut seen: Vec<Seen> = Vec::new();
    let mut read = |user: &'static str, what: String, r: (u16, Value, String)| {
        seen.push(Seen {
            user,
            what,
            status: r.0,
            json: r.1,
            raw: r.2,
        });
    };
    for (user, _) in USERS {
        let user = *user;
        read(
            user,
            "meta".into(),
            world.call(user, "GET", "/api/v1/meta/objects", None),
        );
        for object in SWEEP_OBJECTS {
            read(
                user,
                format!("list {object}"),
                world.call(
                    user,
                    "GET",
                    &format!("/api/v1/data/{object}?limit=1000&total=true"),
                    None,
                ),
            );
            read(
                user,
                format!("meta {object}"),
                world.call(user, "GET", &format!("/api/v1/meta/objects/{object}"), None),
            );
            read(
                user,
                format!("query {object}"),
                world.call(
                    user,
                    "POST",
                    "/api/v1/query",
                    Some(json!({"object": object, "limit": 1000, "total": true})),
                ),
            );
            for field in fields {
                read(
                    user,
                    format!("filter {object}.{field}"),
                    world.call(
                        user,
                        "GET",
                        &format!(
                            "/api/v1/data/{object}?filter={}",
                            urlenc(&json!({field: {"$ne": null}}).to_string())
                        ),
                        None,
                    ),
                );
                read(
                    user,
                    format!("sort {object}.{field}"),
                    world.call(
                        user,
                        "GET",
                        &format!("/api/v1/data/{object}?sort=-{field}"),
                        None,
                    ),
                );
                read(
                    user,
                    format!("fields {object}.{field}"),
                    world.call(
                        user,
                        "GET",
                        &format!("/api/v1/data/{object}?fields={field}"),
                        None,
                    ),
                );
                read(
                    user,
                    format!("query where/orderBy/fields {object}.{field}"),
                    world.call(
                        user,
                        "POST",
                        "/api/v1/query",
                        Some(json!({
                            "object": object,
                            "fields": ["id", field],
                            "where": {field: {"$ne": null}},
                            "orderBy": [{"field": field, "order": "desc"}],
                        })),
                    ),
                );
                read(
                    user,
                    format!("group {object}.{field}"),
                    world.call(
                        user,
                        "POST",
                        "/api/v1/query",
                        Some(json!({"object": object, "groupBy": [field], "aggregations": [{"function": "count"}]})),
                    ),
                );
                for f in ["sum", "max", "min", "avg"] {
                    read(
                        user,
                        format!("{f} {object}.{field}"),
                        world.call(
                            user,
                            "POST",
                            "/api/v1/query",
                            Some(json!({"object": object, "aggregations": [{"function": f, "field": field}]})),
                        ),
                    );
                }
            }
            for (label, _, _) in READERS {
                read(
                    user,
                    format!("get {object}/{label}"),
                    world.call(
                        user,
                        "GET",
                        &format!("/api/v1/data/{object}/{}", world.id(label)),
                        None,
                    ),
                );
            }
        }
        for (i, page) in audit_pages(world, user).into_iter().enumerate() {
            read(user, format!("audit page {i}"), page);
        }
    }
    seen
}

/// No response holds a canary its caller may not see (per `readers`).
fn assert_no_leak(seen: &[Seen], readers: &[(String, &[&str])]) {
    for s in seen {
        for (canary, may) in readers {
            if !may.contains(&s.user) {
                assert!(
                    !s.raw.contains(canary.as_str()),
                    "{}: `{canary}` leaked by {}: {}",
                    s.user,
                    s.what,
                    s.raw
                );
            }
        }
    }
}

/// The positive control: every user who may see a canary sees it somewhere.
fn assert_readers_see(seen: &[Seen], readers: &[(String, &[&str])], when: &str) {
    for (canary, may) in readers {
        for user in may.iter() {
            assert!(
                seen.iter()
                    .any(|s| s.user == *user && s.raw.contains(canary.as_str())),
                "{when}: {user} may read `{canary}`, yet no response showed it to them"
            );
        }
    }
}

#[test]
fn no_response_ever_contains_a_canary_the_caller_may_not_read() {
    let world = World::build();
    let canaries = canary_readers();
    let objects = SWEEP_OBJECTS;
    let users: Vec<&'static str> = USERS.iter().map(|(user, _)| *user).collect();
    // 1. The read sweep, before anything changes: every user, every read surface.
    let seen = read_sweep(&world);
    assert_no_leak(&seen, &canaries);

    // 2. Positive controls. Each canary reaches every user who may read it, so
    // the canaries are in place and the sweep reads what it claims to read.
    assert_readers_see(&seen, &canaries, "before the writes");
    let find = |user: &str, what: &str| -> &Seen {
        seen.iter()
            .find(|s| s.user == user && s.what == what)
            .unwrap_or_else(|| panic!("no `{what}` for {user}"))
    };

    // Each user gets exactly the records they may read: by id, in the list and
    // from the query endpoint.
    for &user in &users {
        for (label, object, readers) in READERS {
            let id = world.id(label);
            let got = find(user, &format!("get {object}/{label}"));
            if readers.contains(&user) {
                assert_eq!(
                    (got.status, got.json["id"].as_str()),
                    (200, Some(id)),
                    "{user} may read {label}: {}",
                    got.raw
                );
            } else {
                assert_ne!(got.status, 200, "{user} may not read {label}: {}", got.raw);
            }
            // An id asked for under another object is no record of that object.
            for other in objects.iter().filter(|o| *o != object) {
                let got = find(user, &format!("get {other}/{label}"));
                assert_ne!(got.status, 200, "{user}: {label} as a {other}: {}", got.raw);
            }
        }
        for object in objects {
            let expected: std::collections::BTreeSet<&str> = READERS
                .iter()
                .filter(|(_, o, readers)| *o == object && readers.contains(&user))
                .map(|(label, _, _)| world.id(label))
                .collect();
            for surface in ["list", "query"] {
                let got = find(user, &format!("{surface} {object}"));
                let ids: std::collections::BTreeSet<&str> = got.json["records"]
                    .as_array()
                    .map(|records| {
                        records
                            .iter()
                            .map(|r| r["id"].as_str().unwrap_or("(no id)"))
                            .collect()
                    })
                    .unwrap_or_default();
                assert_eq!(ids, expected, "{user}: {surface} {object}: {}", got.raw);
                if got.status == 200 {
                    assert_eq!(
                        got.json["total"].as_u64(),
                        Some(expected.len() as u64),
                        "{user}: {surface} {object} total: {}",
                        got.raw
                    );
                }
            }
        }
    }

    // 3. Writes, only now: every user tries to change every record. Writes that
    // may succeed touch no canary; the ones that would are all refused (the
    // database check below proves it). Every response is checked for canaries.
    let write = |user: &'static str, what: String, r: (u16, Value, String)| -> u16 {
        let seen = Seen {
            user,
            what,
            status: r.0,
            json: r.1,
            raw: r.2,
        };
        assert_no_leak(std::slice::from_ref(&seen), &canaries);
        seen.status
    };
    let owner = |label: &str| match label {
        "opp_a" | "opp_a_won" | "account_a" | "account_a_fin" | "contact_a" | "line_a" => "rep_a",
        "opp_b" | "account_b" => "rep_b",
        "opp_g" => "other",
        _ => "(nobody)",
    };
    let harmless = |object: &str, user: &str| match object {
        "crm_opportunity" => json!({"close_date": "2031-01-31"}),
        "crm_account" => json!({"website": format!("https://{user}.example.com")}),
        "crm_contact" => json!({"first_name": user}),
        "crm_opportunity_line" => json!({"quantity": 4}),
        "crm_fx_rate" => json!({"rate": 1.5}),
        "crm_note" => json!({"body": format!("{user} was here")}),
        _ => json!({"name": format!("{user} was here")}),
    };
    for &user in &users {
        for object in objects {
            for (label, record_object, _) in READERS {
                let path = format!("/api/v1/data/{object}/{}", world.id(label));
                for body in [
                    json!({"discount_approval_note": "x", "credit_limit": 1}),
                    json!({"discount_approval_note": "x"}),
                    json!({"probability": 1}),
                    json!({"credit_limit": 1}),
                    json!({"name": "x", "probability": 1}),
                ] {
                    let what = format!("patch {object}/{label} {body}");
                    let status = write(
                        user,
                        what.clone(),
                        world.call(user, "PATCH", &path, Some(body)),
                    );
                    assert!(
                        !(200..300).contains(&status),
                        "{user}: {what} was allowed ({status})"
                    );
                }
                // The positive control: owners change their records, so the
                // responses of successful writes are checked too.
                let body = harmless(object, user);
                let what = format!("patch {object}/{label} {body}");
                let status = write(
                    user,
                    what.clone(),
                    world.call(user, "PATCH", &path, Some(body)),
                );
                let expected = object == *record_object && owner(label) == user;
                assert_eq!(status == 200, expected, "{user}: {what} answered {status}");
                let what = format!("share {object}/{label}");
                let status = write(
                    user,
                    what.clone(),
                    world.call(
                        user,
                        "POST",
                        &format!("{path}/shares"),
                        Some(json!({"type": "team", "value": "finance"})),
                    ),
                );
                if (200..300).contains(&status) {
                    assert!(
                        object == *record_object && owner(label) == user,
                        "{user}: {what} was allowed ({status})"
                    );
                }
            }
        }
    }
    for &user in &users {
        for action in ["mark_won", "reopen", "send_quote"] {
            for (label, object, _) in READERS {
                let what = format!("action {action} {label}");
                let status = write(
                    user,
                    what.clone(),
                    world.call(
                        user,
                        "POST",
                        &format!("/api/v1/actions/{action}"),
                        Some(json!({"recordId": world.id(label)})),
                    ),
                );
                // Only an owner marks their own deal won; reopen needs an
                // approver who may also edit the deal, and send_quote is a flow.
                let expected =
                    action == "mark_won" && *object == "crm_opportunity" && owner(label) == user;
                assert_eq!(status == 200, expected, "{user}: {what} answered {status}");
            }
        }
    }

    // 4. Sweep again, audit log included (it now holds the writes and the
    // refusals). The owners shared their records with the finance team and
    // marked their deals won, so fin now reads the deals of rep_a and rep_b, and
    // so their names. Sharing hands over records, never a field: every other
    // canary keeps exactly its readers.
    let after_writes: Vec<(String, &[&str])> = canaries
        .iter()
        .map(|(canary, readers)| {
            let readers: &[&str] = if canary == SECRET_DEAL_A {
                &["rep_a", "manager", "fin", "auditor"]
            } else if canary == SECRET_DEAL_B {
                &["rep_b", "manager", "fin", "auditor"]
            } else {
                readers
            };
            (canary.clone(), readers)
        })
        .collect();
    let seen = read_sweep(&world);
    assert_no_leak(&seen, &after_writes);
    assert_readers_see(&seen, &after_writes, "after the writes");
    let got = seen
        .iter()
        .find(|s| s.user == "fin" && s.what == "get crm_opportunity/opp_a")
        .unwrap();
    assert_eq!(got.status, 200, "the share to finance: {}", got.raw);

    // 5. Every canary is still stored where the world put it: none was gone before
    // anyone looked, and no write above reached one.
    world.assert_canaries_in_place();
}

pub fn urlenc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn filter_oracles_are_refused_and_unreadable_records_are_404() {
    let world = World::build();
    let code =
        |r: (u16, Value, String)| (r.0, r.1["error"]["code"].as_str().unwrap_or("").to_string());
    let denied = (403, "field_predicate_denied".to_string());
    let f = urlenc(&json!({"discount_approval_note": {"$startsWith": "CANARY"}}).to_string());
    assert_eq!(
        code(world.call(
            "rep_a",
            "GET",
            &format!("/api/v1/data/crm_opportunity?filter={f}"),
            None
        )),
        denied
    );
    assert_eq!(
        code(world.call(
            "rep_a",
            "GET",
            "/api/v1/data/crm_opportunity?sort=discount_approval_note",
            None
        )),
        denied
    );
    // A denied read leaves its row, without the value the filter tried.
    let events = world
        .env
        .run(&["--json", "audit", "tail", "-n", "1000"])
        .ok()
        .json();
    let denials: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "record.read" && e["outcome"] == "denied")
        .collect();
    assert_eq!(denials.len(), 2, "{denials:?}");
    assert!(
        denials
            .iter()
            .all(|e| e["code"] == "field_predicate_denied" && !e.to_string().contains("CANARY"))
    );
    assert_eq!(code(world.call("rep_a", "POST", "/api/v1/query", Some(json!({"object": "crm_opportunity", "where": {"$or": [{"name": "x"}, {"discount_approval_note": "y"}]}})))), denied);
    assert_eq!(code(world.call("rep_a", "POST", "/api/v1/query", Some(json!({"object": "crm_opportunity", "groupBy": ["discount_approval_note"], "aggregations": [{"function": "count"}]})))), denied);
    assert_eq!(code(world.call("fin", "POST", "/api/v1/query", Some(json!({"object": "crm_opportunity", "aggregations": [{"function": "sum", "field": "probability"}]})))), denied);
    assert_eq!(code(world.call("rep_a", "POST", "/api/v1/query", Some(json!({"object": "crm_account", "orderBy": [{"field": "credit_limit", "order": "desc"}]})))), denied);
    // The manager may filter on the note.
    assert_eq!(
        world
            .call(
                "manager",
                "GET",
                &format!("/api/v1/data/crm_opportunity?filter={f}"),
                None
            )
            .0,
        200
    );
    // Unreadable record: 404 on get, update and delete, with the same body as a missing one.
    let opp_a = world.id("opp_a");
    let missing = world.call(
        "rep_b",
        "GET",
        "/api/v1/data/crm_opportunity/01a21fd3-0000-7000-8000-000000000000",
        None,
    );
    let hidden = world.call(
        "rep_b",
        "GET",
        &format!("/api/v1/data/crm_opportunity/{opp_a}"),
        None,
    );
    assert_eq!((hidden.0, hidden.2.clone()), (missing.0, missing.2.clone()));
    for method in ["PATCH", "DELETE"] {
        let hidden = world.call(
            "rep_b",
            method,
            &format!("/api/v1/data/crm_opportunity/{opp_a}"),
            Some(json!({"name": "x"})),
        );
        let missing = world.call(
            "rep_b",
            method,
            "/api/v1/data/crm_opportunity/01a21fd3-0000-7000-8000-000000000000",
            Some(json!({"name": "x"})),
        );
        assert_eq!((hidden.0, hidden.2), (404, missing.2));
    }
    // An object the user cannot read at all answers like one that does not exist.
    let none = world.call("fin", "GET", "/api/v1/data/crm_contact", None);
    let ghost = world.call("fin", "GET", "/api/v1/data/crm_ghost", None);
    assert_eq!(none.0, 404);
    assert_eq!(none.1["error"]["code"], ghost.1["error"]["code"]);
    // Writing a field the user may not edit refuses the whole write.
    let before = world
        .call(
            "rep_a",
            "GET",
            &format!("/api/v1/data/crm_opportunity/{opp_a}"),
            None,
        )
        .1;
    let r = world.call(
        "rep_a",
        "PATCH",
        &format!("/api/v1/data/crm_opportunity/{opp_a}"),
        Some(json!({"name": "Changed", "probability": 90})),
    );
    assert_eq!(code(r), (403, "field_not_editable".into()));
    let after = world
        .call(
            "rep_a",
            "GET",
            &format!("/api/v1/data/crm_opportunity/{opp_a}"),
            None,
        )
        .1;
    assert_eq!(before, after);
    // Unique values: the one accepted disclosure, naming only the field.
    let r = world.call(
        "rep_b",
        "POST",
        "/api/v1/data/crm_account",
        Some(json!({"name": "Copy", "account_number": "A-1"})),
    );
    assert_eq!(r.0, 409);
    assert_eq!(r.1["error"]["code"], "unique_violation");
    assert!(
        r.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("account_number")
    );
    assert!(!r.2.contains("Acme"));
}

#[test]
fn injection_attempts_are_refused_or_treated_as_data() {
    let world = World::build();
    let hostile = [
        json!({"name": "x' OR '1'='1"}),
        json!({"name": {"$eq": "\"; DROP TABLE rec_crm_opportunity; --"}}),
        json!({"name": {"$in": ["a') OR 1=1 --", "b"]}}),
        json!({"name": {"$contains": "%"}}),
        json!({"name": {"$startsWith": "_"}}),
        json!({"$or": [{"name": "a"}, {"stage": "x' OR 1=1 --"}]}),
    ];
    for filter in hostile {
        let (s, body, raw) = world.call(
            "rep_b",
            "GET",
            &format!(
                "/api/v1/data/crm_opportunity?filter={}",
                urlenc(&filter.to_string())
            ),
            None,
        );
        assert_eq!(s, 200, "{filter}: {raw}");
        assert_eq!(
            body["records"].as_array().unwrap().len(),
            0,
            "{filter}: {raw}"
        );
    }
    let refused = [
        (
            "GET",
            format!(
                "/api/v1/data/crm_opportunity?filter={}",
                urlenc(r#"{"$where": "1=1"}"#)
            ),
            400,
        ),
        (
            "GET",
            format!(
                "/api/v1/data/crm_opportunity?filter={}",
                urlenc(r#"{"name": {"$regex": ".*"}}"#)
            ),
            400,
        ),
        (
            "GET",
            format!(
                "/api/v1/data/crm_opportunity?filter={}",
                urlenc(r#"{"name\"; DROP TABLE x; --": 1}"#)
            ),
            400,
        ),
        (
            "GET",
            "/api/v1/data/crm_opportunity?sort=name;DROP%20TABLE%20x".to_string(),
            400,
        ),
        (
            "GET",
            "/api/v1/data/crm_opportunity?fields=id,(SELECT%201)".to_string(),
            400,
        ),
        (
            "GET",
            "/api/v1/data/crm_opportunity%22%3B%20DROP%20TABLE%20x".to_string(),
            404,
        ),
        (
            "GET",
            "/api/v1/data/..%2F..%2Fetc%2Fpasswd".to_string(),
            404,
        ),
        (
            "GET",
            "/api/v1/data/crm_opportunity?limit=100000".to_string(),
            400,
        ),
        (
            "GET",
            "/api/v1/data/crm_opportunity?limit=-1".to_string(),
            400,
        ),
        (
            "GET",
            "/api/v1/data/crm_opportunity?unknown=1".to_string(),
            400,
        ),
    ];
    for (method, path, expected) in refused {
        assert_eq!(
            world.call("rep_b", method, &path, None).0,
            expected,
            "{path}"
        );
    }
    let (s, _, raw) = world.call(
        "rep_b",
        "POST",
        "/api/v1/data/crm_opportunity",
        Some(json!({"name": "Robert'); DROP TABLE rec_crm_opportunity;--", "stage": "proposal"})),
    );
    assert_eq!(s, 201, "{raw}");
    let (s, body, _) = world.call(
        "rep_b",
        "GET",
        &format!(
            "/api/v1/data/crm_opportunity?filter={}",
            urlenc(&json!({"name": {"$startsWith": "Robert'"}}).to_string())
        ),
        None,
    );
    assert_eq!((s, body["records"].as_array().unwrap().len()), (200, 1));
    // A deeply nested filter is refused, not a stack overflow.
    let mut deep = json!({"name": "x"});
    for _ in 0..200 {
        deep = json!({"$not": deep});
    }
    assert_eq!(
        world
            .call(
                "rep_b",
                "POST",
                "/api/v1/query",
                Some(json!({"object": "crm_opportunity", "where": deep}))
            )
            .0,
        400
    );
    // Every table is still there.
    assert_eq!(
        world
            .call("rep_a", "GET", "/api/v1/data/crm_opportunity", None)
            .0,
        200
    );
}

#[test]
fn sharing_rules_explicit_shares_and_parents_grant_exactly_what_they_say() {
    let mut world = World::build();
    let opp_a = world.id("opp_a").to_string();
    // A large EMEA deal is shared at edit with the position emea_sales_lead (a team).
    world.create(
        "rep_a",
        "crm_opportunity",
        "big_emea",
        json!({"name": "Big EMEA", "amount": 250000, "region": "emea", "stage": "proposal"}),
    );
    let big = world.id("big_emea").to_string();
    assert_eq!(
        status(
            &world,
            "rep_b",
            "GET",
            &format!("/api/v1/data/crm_opportunity/{big}"),
            None
        ),
        404
    );
    world
        .env
        .run(&["team", "add-member", "emea_sales_lead", "rep.b@example.com"])
        .ok();
    // The running server sees the membership at once.
    assert_eq!(
        status(
            &world,
            "rep_b",
            "GET",
            &format!("/api/v1/data/crm_opportunity/{big}"),
            None
        ),
        200
    );
    assert_eq!(
        status(
            &world,
            "rep_b",
            "PATCH",
            &format!("/api/v1/data/crm_opportunity/{big}"),
            Some(json!({"close_date": "2027-01-31"}))
        ),
        200
    );
    // Deleting needs ownership or modifyAll, not a share.
    assert_eq!(
        status(
            &world,
            "rep_b",
            "DELETE",
            &format!("/api/v1/data/crm_opportunity/{big}"),
            None
        ),
        403
    );
    // When the deal shrinks below the rule's condition, the share is gone.
    assert_eq!(
        status(
            &world,
            "rep_a",
            "PATCH",
            &format!("/api/v1/data/crm_opportunity/{big}"),
            Some(json!({"amount": 10}))
        ),
        200
    );
    assert_eq!(
        status(
            &world,
            "rep_b",
            "GET",
            &format!("/api/v1/data/crm_opportunity/{big}"),
            None
        ),
        404
    );

    // Explicit shares: by the owner only, at read then edit, then removed.
    let share = |user: &str, method: &str, body: Value| {
        world
            .call(
                user,
                method,
                &format!("/api/v1/data/crm_opportunity/{opp_a}/shares"),
                Some(body),
            )
            .0
    };
    assert_eq!(
        share(
            "rep_b",
            "POST",
            json!({"type": "user", "value": "rep.b@example.com"})
        ),
        404
    );
    assert_eq!(
        share(
            "manager",
            "POST",
            json!({"type": "user", "value": "rep.b@example.com"})
        ),
        403
    );
    assert_eq!(
        share(
            "rep_a",
            "POST",
            json!({"type": "user", "value": "rep.b@example.com", "accessLevel": "read"})
        ),
        201
    );
    assert_eq!(
        status(
            &world,
            "rep_b",
            "GET",
            &format!("/api/v1/data/crm_opportunity/{opp_a}"),
            None
        ),
        200
    );
    assert_eq!(
        status(
            &world,
            "rep_b",
            "PATCH",
            &format!("/api/v1/data/crm_opportunity/{opp_a}"),
            Some(json!({"name": "x"}))
        ),
        403
    );
    assert_eq!(
        share(
            "rep_a",
            "POST",
            json!({"type": "user", "value": "rep.b@example.com", "accessLevel": "edit"})
        ),
        201
    );
    assert_eq!(
        status(
            &world,
            "rep_b",
            "PATCH",
            &format!("/api/v1/data/crm_opportunity/{opp_a}"),
            Some(json!({"name": "x"}))
        ),
        200
    );
    // The line item under the shared deal follows it.
    assert_eq!(
        status(
            &world,
            "rep_b",
            "GET",
            &format!("/api/v1/data/crm_opportunity_line/{}", world.id("line_a")),
            None
        ),
        200
    );
    assert_eq!(
        share(
            "rep_a",
            "DELETE",
            json!({"type": "user", "value": "rep.b@example.com"})
        ),
        200
    );
    assert_eq!(
        status(
            &world,
            "rep_b",
            "GET",
            &format!("/api/v1/data/crm_opportunity/{opp_a}"),
            None
        ),
        404
    );
    assert_eq!(
        status(
            &world,
            "rep_b",
            "GET",
            &format!("/api/v1/data/crm_opportunity_line/{}", world.id("line_a")),
            None
        ),
        404
    );
    // Shares to a user of another organization are refused; the org wall holds.
    assert_eq!(
        share(
            "rep_a",
            "POST",
            json!({"type": "user", "value": "other@globex.com"})
        ),
        400
    );
    // Shares are audited (and shown to an auditor who may read the records).
    let events = world
        .call("auditor", "GET", "/api/v1/audit/events?limit=1000", None)
        .1;
    let shares = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "share.add" && e["outcome"] == "success")
        .count();
    assert_eq!(shares, 2);
}

#[test]
fn actions_run_for_holders_of_their_permissions_and_governance_holds() {
    let world = World::build();
    let opp_a = world.id("opp_a").to_string();
    let run = |user: &str, action: &str, id: &str| {
        world.call(
            user,
            "POST",
            &format!("/api/v1/actions/{action}"),
            Some(json!({"recordId": id})),
        )
    };
    let r = run("rep_a", "mark_won", &opp_a);
    assert_eq!(r.0, 200, "{}", r.2);
    assert_eq!(r.1["stage"], "closed_won");
    // It runs as an update by whoever runs it: the manager may read rep B's deal
    // but not edit it.
    assert_eq!(run("manager", "mark_won", world.id("opp_b")).0, 403);
    let r = run("rep_a", "reopen", &opp_a);
    assert_eq!(
        (r.0, r.1["error"]["code"].as_str()),
        (403, Some("missing_permission"))
    );
    let r = run("rep_a", "send_quote", &opp_a);
    assert_eq!(
        (r.0, r.1["error"]["code"].as_str()),
        (400, Some("action_not_executable"))
    );
    assert_eq!(run("rep_b", "mark_won", &opp_a).0, 404);
    assert_eq!(run("rep_a", "no_such_action", &opp_a).0, 404);
    // readOnly objects refuse writes; auditReads objects audit every read.
    assert_eq!(
        world
            .call(
                "rep_a",
                "POST",
                "/api/v1/data/crm_fx_rate",
                Some(json!({"currency": "GBP", "rate": 1.1}))
            )
            .1["error"]["code"],
        "read_only_object"
    );
    world.call("rep_b", "GET", "/api/v1/data/crm_contact", None);
    world.call(
        "rep_b",
        "GET",
        &format!("/api/v1/data/crm_contact/{}", world.id("contact_a")),
        None,
    );
    let events = world
        .call("auditor", "GET", "/api/v1/audit/events?limit=1000", None)
        .1;
    let reads: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "record.read" && e["actor"]["email"] == "rep.b@example.com")
        .collect();
    assert_eq!(reads.len(), 2);
    world.call("rep_b", "POST", "/api/v1/query", Some(json!({"object": "crm_contact", "groupBy": ["last_name"], "aggregations": [{"function": "count"}]})));
    let events = world
        .env
        .run(&["--json", "audit", "tail", "-n", "5"])
        .ok()
        .json();
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "record.read" && e["changes"]["read"] == "aggregate"),
        "aggregates on auditReads objects are audited"
    );
    assert_eq!(reads[0]["changes"]["ids"][0], world.id("contact_a"));
    assert_eq!(reads[0]["via"], "api");
    // Writes carry their changes; the sensitive note only as an HMAC.
    world.call("manager", "POST", "/api/v1/data/crm_opportunity", Some(json!({"name": "M", "stage": "proposal", "discount_approval_note": "approved 12% by CFO"})));
    let events = world
        .env
        .run(&["--json", "audit", "tail", "-n", "1000"])
        .ok()
        .stdout;
    assert!(!events.contains("approved 12% by CFO"));
    assert!(events.contains("hmac_sha256"));
    // Through the API, an admin (no rights on business objects) sees none of
    // their rows: an object they cannot read does not exist for them. The
    // auditor sees them, with the sensitive note as a redacted entry.
    let api_events = world
        .call("admin", "GET", "/api/v1/audit/events?limit=1000", None)
        .1;
    let api_events = api_events["events"].as_array().unwrap().clone();
    assert!(
        api_events
            .iter()
            .all(|e| !e["object"].as_str().unwrap_or("").starts_with("crm_")),
        "{api_events:?}"
    );
    let auditor_events = world
        .call("auditor", "GET", "/api/v1/audit/events?limit=1000", None)
        .2;
    assert!(auditor_events.contains("crm_opportunity"));
    assert!(auditor_events.contains("redacted"));
    // Denied writes leave a row too.
    world.call(
        "fin",
        "POST",
        "/api/v1/data/crm_opportunity",
        Some(json!({"name": "nope"})),
    );
    let events = world
        .call("auditor", "GET", "/api/v1/audit/events?limit=1000", None)
        .1;
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "record.create"
                && e["outcome"] == "denied"
                && e["actor"]["email"] == "fin@example.com")
    );
    // view_audit is needed to read the log.
    assert_eq!(
        world.call("rep_a", "GET", "/api/v1/audit/events", None).0,
        403
    );
}

#[test]
fn credentials_revoked_while_serving_stop_at_the_next_request() {
    let mut world = World::build();
    // A server whose clock the test moves (instead of sleeping for expiries).
    let clock = world.env.path("clock");
    std::fs::write(&clock, "0").unwrap();
    if let Some(mut child) = world.server.child.take() {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let clock_var = clock.display().to_string();
    world.server = Server::start_env(
        &world.env,
        &[],
        &[("OBJECTOS_TEST_CLOCK_FILE", clock_var.as_str())],
    );
    let env = &world.env;
    env.run(&[
        "user",
        "set-password",
        "rep.a@example.com",
        "--password-file",
        "pw",
    ])
    .ok();
    // Sign-in: the same answer for a wrong password and an unknown email.
    let login = |email: &str, password: &str| {
        world.server.call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": email, "password": password})),
        )
    };
    let wrong = login("rep.a@example.com", "not the password");
    let unknown = login("nobody-here@example.com", "not the password");
    assert_eq!((wrong.0, wrong.2.clone()), (401, unknown.2.clone()));
    let ok = login("rep.a@example.com", crate::store::PASSWORD);
    assert_eq!(ok.0, 200, "{}", ok.2);
    let token = ok.1["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("oss_"));
    assert_eq!(
        world.server.get("/api/v1/data/crm_opportunity", &token).0,
        200
    );
    // Revoke the session with the CLI while the server runs.
    let sessions = env
        .run(&["--json", "session", "list", "--user", "rep.a@example.com"])
        .ok()
        .json();
    let id = sessions["sessions"][0]["id"].as_str().unwrap().to_string();
    env.run(&["session", "revoke", &id]).ok();
    assert_eq!(
        world.server.get("/api/v1/data/crm_opportunity", &token).0,
        401
    );
    // Logout ends a session too.
    let token2 = login("rep.a@example.com", crate::store::PASSWORD).1["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        world
            .server
            .call("POST", "/api/v1/auth/logout", Some(&token2), None)
            .0,
        200
    );
    assert_eq!(
        world.server.get("/api/v1/data/crm_opportunity", &token2).0,
        401
    );
    // A revoked key.
    let key = env
        .run(&["apikey", "create", "rep.b@example.com", "--name", "temp"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_eq!(
        world.server.get("/api/v1/data/crm_opportunity", &key).0,
        200
    );
    let prefix = key.chars().take(12).collect::<String>();
    env.run(&["apikey", "revoke", &prefix]).ok();
    assert_eq!(
        world.server.get("/api/v1/data/crm_opportunity", &key).0,
        401
    );
    // A disabled user: keys refused at once; enabled again, they work.
    assert_eq!(
        status(&world, "rep_a", "GET", "/api/v1/data/crm_opportunity", None),
        200
    );
    env.run(&["user", "disable", "rep.a@example.com"]).ok();
    assert_eq!(
        status(&world, "rep_a", "GET", "/api/v1/data/crm_opportunity", None),
        401
    );
    assert_eq!(login("rep.a@example.com", crate::store::PASSWORD).0, 401);
    env.run(&["user", "enable", "rep.a@example.com"]).ok();
    assert_eq!(
        status(&world, "rep_a", "GET", "/api/v1/data/crm_opportunity", None),
        200
    );
    // A permission set revoked while serving takes effect at once.
    env.run(&["permset", "revoke", "sales_rep", "rep.a@example.com"])
        .ok();
    assert_eq!(
        status(&world, "rep_a", "GET", "/api/v1/data/crm_opportunity", None),
        403
    );
    // Time ends rights too, even with nothing written meanwhile (the server
    // remembers resolved credentials, never past a key's expiry or the end of
    // an assignment in force).
    let brief = env
        .run(&["apikey", "create", "rep.b@example.com", "--expires", "1h"])
        .ok()
        .stdout
        .trim()
        .to_string();
    env.run(&[
        "permset",
        "assign",
        "sales_ops",
        "rep.b@example.com",
        "--valid-until",
        "1h",
    ])
    .ok();
    let rep_b = world.key("rep_b").to_string();
    let opp_a = format!("/api/v1/data/crm_opportunity/{}", world.id("opp_a"));
    assert_eq!(
        world.server.get("/api/v1/data/crm_opportunity", &brief).0,
        200
    );
    assert_eq!(
        world.server.get(&opp_a, &rep_b).0,
        200,
        "sales_ops sees every deal"
    );
    // An hour and a second later, for the server alone.
    std::fs::write(&clock, "3601").unwrap();
    assert_eq!(
        world.server.get("/api/v1/data/crm_opportunity", &brief).0,
        401,
        "the key expired"
    );
    assert_eq!(
        world.server.get(&opp_a, &rep_b).0,
        404,
        "the assignment ended"
    );
    // Failed and successful sign-ins are audited (failed ones belong to no
    // organization: the host operator reads them).
    let events = world
        .env
        .run(&["--json", "audit", "tail", "-n", "100000"])
        .ok()
        .json();
    let logins: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "auth.login")
        .collect();
    assert!(logins.iter().any(|e| e["outcome"] == "denied"));
    assert!(logins.iter().any(|e| e["outcome"] == "success"));
    assert!(!events.to_string().contains(crate::store::PASSWORD));
    // Repeated failures for one email make it wait: five free, the sixth starts
    // the backoff.
    for _ in 0..6 {
        assert_eq!(login("target@example.com", "guess").0, 401);
    }
    assert_eq!(login("target@example.com", "guess").0, 429);
}

#[test]
fn graceful_shutdown_loses_no_acknowledged_write() {
    let world = World::build();
    let key = world.key("rep_b").to_string();
    let base = world.server.base.clone();
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (key, base, acked) = (key.clone(), base.clone(), acked.clone());
        workers.push(std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            for i in 0..1000 {
                let resp = client
                    .post(format!("{base}/api/v1/data/crm_note"))
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(json!({"title": format!("note {w}-{i}")}).to_string())
                    .send();
                match resp {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let body: Value = r.json().unwrap();
                        acked
                            .lock()
                            .unwrap()
                            .push(body["id"].as_str().unwrap().to_string());
                    }
                    _ => break,
                }
            }
        }));
    }
    std::thread::sleep(std::time::Duration::from_millis(600));
    let World { env, server, .. } = world;
    let (code, log) = server.stop();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("shutting down"), "{log}");
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty());
    let stored: std::collections::HashSet<String> =
        sql_query(&env.db(), "SELECT id FROM rec_crm_note")
            .into_iter()
            .map(|row| row[0].clone())
            .collect();
    for id in &acked {
        assert!(stored.contains(id), "acknowledged write {id} was lost");
    }
    // The checkpoint at shutdown covers the last row.
    env.run(&["audit", "verify"]).ok();
    let head = env.run(&["--json", "audit", "verify"]).ok().json()["head_seq"]
        .as_i64()
        .unwrap();
    let last_cp = env
        .read("data/audit-checkpoints.log")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|c| c["seq"].as_i64())
        .max()
        .unwrap();
    assert_eq!(last_cp, head);
}

#[test]
fn serve_refuses_to_start_without_a_trusted_artifact_and_listens_on_loopback() {
    let env = Env::new();
    env.run(&["init"]).ok();
    let run = env.run(&["serve", "--listen", "127.0.0.1:0"]).code(1);
    assert!(run.stderr.contains("objectos apply"), "{}", run.stderr);
    let run = env.run(&["serve", "--listen", "0.0.0.0:0"]).code(1);
    assert!(run.stderr.contains("--public"), "{}", run.stderr);
    crate::store::ready(&env);
    let server = Server::start(&env);
    assert_eq!(server.call("GET", "/healthz", None, None).0, 200);
    assert_eq!(server.call("GET", "/readyz", None, None).0, 200);
    assert_eq!(
        server
            .call("GET", "/api/v1/data/crm_opportunity", None, None)
            .0,
        401
    );
    assert_eq!(server.call("GET", "/nope", None, None).0, 404);
    // Oversized bodies are refused.
    let big = "x".repeat(2 * 1024 * 1024);
    let key = env
        .run(&["apikey", "create", "admin@example.com"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let (s, _, _) = server.call(
        "POST",
        "/api/v1/data/crm_note",
        Some(&key),
        Some(json!({"title": big})),
    );
    assert_eq!(s, 413);
    let (code, _) = server.stop();
    assert_eq!(code, 0);
    // Untrust the signer: serve refuses with a message saying what to do.
    let id = env.run(&["--json", "trust", "list"]).ok().json()["keys"][0]["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    env.run(&["trust", "remove", &id]).ok();
    let run = env.run(&["serve", "--listen", "127.0.0.1:0"]).code(1);
    assert!(run.stderr.contains("no longer trusted"), "{}", run.stderr);
}

/// A small app built for the edge cases of field defaults, scopes and cascades.
fn edge_app(env: &Env) -> Server {
    let app = json!({
        "manifest": {"id": "com.example.edge", "namespace": "edge", "version": "1.0.0", "name": "Edge", "engines": {"protocol": "^17"}},
        "objects": [
            {"name": "edge_case", "sharingModel": "private", "fields": {
                "title": {"type": "text", "required": true},
                "status": {"type": "select", "readonly": true, "defaultValue": "open", "options": [{"label": "Open", "value": "open"}, {"label": "Approved", "value": "approved"}]},
                "secret_code": {"type": "text", "defaultValue": "none"},
                "parent_case": {"type": "lookup", "reference": "edge_case"}
            }},
            {"name": "edge_step", "sharingModel": "controlled_by_parent", "fields": {
                "case": {"type": "master_detail", "reference": "edge_case", "required": true},
                "note": {"type": "text"}
            }}
        ],
        "permissions": [
            {"name": "editor", "objects": {"edge_case": {"allowCreate": true, "allowEdit": true, "allowDelete": true}, "edge_step": {"allowCreate": true, "allowRead": true}}, "fields": {"edge_case.secret_code": {"readable": false, "editable": false}}, "systemPermissions": ["api_access"]},
            {"name": "org_reader", "objects": {"edge_case": {"allowRead": true, "writeScope": "org"}}},
            {"name": "scope_only", "objects": {"edge_case": {"readScope": "org"}}}
        ]
    });
    env.write("edge.json", app.to_string());
    env.run(&["build", "edge.json", "-o", "edge-artifact.json"])
        .ok();
    env.run(&["keygen", "-o", "edge-key", "--unencrypted"]).ok();
    env.run(&["sign", "edge-artifact.json", "-k", "edge-key"])
        .ok();
    env.run(&["init"]).ok();
    env.run(&["trust", "add", "edge-key.pub"]).ok();
    env.run(&["apply", "edge-artifact.json", "-y"]).ok();
    env.write("pw", format!("{}\n", crate::store::PASSWORD));
    env.run(&[
        "bootstrap",
        "--admin-email",
        "admin@example.com",
        "--password-file",
        "pw",
    ])
    .ok();
    for (email, sets) in [
        ("a@example.com", vec!["editor"]),
        ("b@example.com", vec!["editor", "org_reader"]),
        ("c@example.com", vec!["scope_only"]),
    ] {
        env.run(&["user", "add", email, "--no-password"]).ok();
        for set in sets {
            env.run(&["permset", "assign", set, email]).ok();
        }
    }
    Server::start(env)
}

#[test]
fn defaults_scopes_and_cascades_grant_nothing_extra() {
    let env = Env::new();
    let server = edge_app(&env);
    let key = |email: &str| {
        env.run(&["apikey", "create", email])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    let (a, b) = (key("a@example.com"), key("b@example.com"));
    // A caller may not set a read-only field just because it has a default...
    let (s, body, _) = server.call(
        "POST",
        "/api/v1/data/edge_case",
        Some(&a),
        Some(json!({"title": "t", "status": "approved"})),
    );
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (403, Some("field_not_editable"))
    );
    // ...nor a field hidden from them that has one.
    let (s, _, _) = server.call(
        "POST",
        "/api/v1/data/edge_case",
        Some(&a),
        Some(json!({"title": "t", "secret_code": "mine"})),
    );
    assert_eq!(s, 403);
    // Left out, the defaults apply.
    let (s, body, raw) = server.call(
        "POST",
        "/api/v1/data/edge_case",
        Some(&a),
        Some(json!({"title": "A's case"})),
    );
    assert_eq!(s, 201, "{raw}");
    assert_eq!(body["record"]["status"], "open");
    assert!(
        body["record"]
            .as_object()
            .unwrap()
            .get("secret_code")
            .is_none()
    );
    let case_a = body["id"].as_str().unwrap().to_string();
    // A reference to a record the caller cannot read is refused like a missing one.
    let (s, body, _) = server.call(
        "POST",
        "/api/v1/data/edge_case",
        Some(&b),
        Some(json!({"title": "b", "parent_case": case_a})),
    );
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (400, Some("invalid_reference"))
    );
    // b holds edit (own records) from one set and writeScope org from a set that
    // grants no edit: together they do not edit a's record.
    let (s, _, _) = server.call(
        "PATCH",
        &format!("/api/v1/data/edge_case/{case_a}"),
        Some(&b),
        Some(json!({"title": "hijacked"})),
    );
    assert_eq!(s, 404);
    assert_eq!(
        server
            .call(
                "GET",
                &format!("/api/v1/data/edge_case/{case_a}"),
                Some(&a),
                None
            )
            .1["record"]["title"],
        "A's case"
    );
    // A scope alone grants no read.
    let c = key("c@example.com");
    assert_eq!(
        server
            .call("GET", "/api/v1/data/edge_case", Some(&c), None)
            .0,
        403
    );
    env.run(&["permset", "assign", "editor", "c@example.com"])
        .ok();
    let (_, body, _) = server.call("GET", "/api/v1/data/edge_case", Some(&c), None);
    assert_eq!(
        body["records"].as_array().unwrap().len(),
        0,
        "readScope:org from a set without read must not widen the editor set"
    );
    // A child under the case that a may not delete blocks the parent's delete.
    let (s, _, raw) = server.call(
        "POST",
        "/api/v1/data/edge_step",
        Some(&a),
        Some(json!({"case": case_a, "note": "n"})),
    );
    assert_eq!(s, 201, "{raw}");
    let (s, _, _) = server.call(
        "DELETE",
        &format!("/api/v1/data/edge_case/{case_a}"),
        Some(&a),
        None,
    );
    assert_eq!(s, 403);
    assert_eq!(
        server
            .call(
                "GET",
                &format!("/api/v1/data/edge_case/{case_a}"),
                Some(&a),
                None
            )
            .0,
        200
    );
}

#[test]
fn a_missing_checkpoint_log_fails_verification() {
    let env = Env::new();
    crate::store::ready(&env);
    env.run(&["audit", "verify"]).ok();
    std::fs::remove_file(env.path("data/audit-checkpoints.log")).unwrap();
    let run = env.run(&["audit", "verify"]).code(3);
    assert!(run.stderr.contains("checkpoint"), "{}", run.stderr);
}
