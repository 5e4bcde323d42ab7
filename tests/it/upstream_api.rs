//! Upstream's spellings of the API, held to the same no-leak rules as objectos's
//! own: search, expand, select, `$orderby` and `?field=value` on a field the
//! caller cannot read are refused or inert exactly as a filter is; versions and
//! `If-Match`; credentials in every header upstream's clients use; discovery that
//! says nothing about data, users or keys.

use serde_json::{Value, json};

use crate::runtime::urlenc;
use crate::util::sql;
use crate::world::*;

fn records(body: &Value) -> Vec<Value> {
    body["records"].as_array().cloned().unwrap_or_default()
}

#[test]
fn new_parameters_obey_the_no_leak_rules_with_positive_controls() {
    let mut world = World::build();
    // A closed-won deal of rep_a's on an account only rep_a may read: the
    // closed-won rule shares the deal (not the account) with finance.
    let account = world.id("account_a").to_string();
    world.create(
        "rep_a",
        "crm_opportunity",
        "opp_expand",
        json!({"name": "Expand me", "amount": 42, "stage": "closed_won", "region": "amer", "account": account}),
    );
    let opp = world.id("opp_expand").to_string();
    let get = |user: &str, path: &str| world.call(user, "GET", path, None);

    // search: the manager, who may read the note, finds the deal by it; a rep,
    // who may not, finds nothing by it, and the canary never shows.
    let q = format!(
        "/api/v1/data/crm_opportunity?search={}",
        urlenc(CANARY_NOTE)
    );
    let (s, body, _) = get("manager", &q);
    assert_eq!(s, 200);
    assert!(!records(&body).is_empty(), "positive control: {body}");
    for user in ["rep_a", "rep_b", "fin", "auditor"] {
        let (s, body, raw) = get(user, &q);
        assert_eq!((s, records(&body).len()), (200, 0), "{user}: {raw}");
        assert!(!raw.contains(CANARY_NOTE));
    }
    // Searching a named field one may not read answers like filtering on it.
    let (s, body, _) = get(
        "rep_a",
        "/api/v1/data/crm_opportunity?search=x&searchFields=discount_approval_note",
    );
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (403, Some("field_predicate_denied"))
    );
    let (s, body, _) = get(
        "rep_a",
        &format!(
            "/api/v1/data/crm_opportunity?search={}&searchFields=name",
            urlenc(SECRET_DEAL_A)
        ),
    );
    assert_eq!(s, 200);
    assert_eq!(
        records(&body).len(),
        1,
        "positive control: a readable field is searched"
    );

    // ?field=value, $orderby, $filter and select on a hidden field answer as
    // objectos's own spellings do.
    for path in [
        format!(
            "/api/v1/data/crm_opportunity?discount_approval_note={}",
            urlenc(CANARY_NOTE)
        ),
        "/api/v1/data/crm_opportunity?$orderby=discount_approval_note desc".to_string(),
        format!(
            "/api/v1/data/crm_opportunity?$filter={}",
            urlenc(&json!({"discount_approval_note": {"$ne": null}}).to_string())
        ),
        "/api/v1/data/crm_opportunity?sort=-discount_approval_note".to_string(),
    ] {
        let (s, body, raw) = get("rep_a", &path);
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (403, Some("field_predicate_denied")),
            "{path}: {raw}"
        );
    }
    for path in [
        "/api/v1/data/crm_opportunity?select=name,discount_approval_note",
        "/api/v1/data/crm_opportunity?$select=discount_approval_note",
        "/api/v1/data/crm_opportunity?expand=discount_approval_note",
    ] {
        let (s, body, raw) = get("rep_a", path);
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (400, Some("unknown_field")),
            "{path}: {raw}"
        );
    }
    // Positive control: the manager filters and sorts on it.
    let (s, body, _) = get(
        "manager",
        &format!(
            "/api/v1/data/crm_opportunity?discount_approval_note={}",
            urlenc(CANARY_NOTE)
        ),
    );
    assert_eq!(s, 200);
    assert!(!records(&body).is_empty());

    // expand: the record pointed to appears only for whoever may read it, with
    // only the fields they may read; otherwise the id stays, as if nothing were
    // there.
    let (s, body, raw) = get(
        "rep_a",
        &format!("/api/v1/data/crm_opportunity/{opp}?expand=account"),
    );
    assert_eq!(s, 200, "{raw}");
    assert_eq!(body["record"]["account"]["id"], account.as_str());
    assert_eq!(body["record"]["account"]["name"], "Acme");
    assert!(
        !raw.contains(CANARY_TOKEN) && !raw.contains(&CANARY_CREDIT.to_string()),
        "{raw}"
    );
    let (s, body, raw) = get(
        "fin",
        &format!("/api/v1/data/crm_opportunity/{opp}?expand=account"),
    );
    assert_eq!(s, 200, "fin reads the closed-won deal: {raw}");
    assert_eq!(body["record"]["account"], account.as_str(), "{raw}");
    assert!(!raw.contains("Acme"), "{raw}");
    let (s, body, raw) = get(
        "fin",
        "/api/v1/data/crm_opportunity?expand=account&select=name,account",
    );
    assert_eq!(s, 200, "{raw}");
    for record in records(&body) {
        assert!(
            record["account"].is_string() || record["account"].is_null(),
            "{raw}"
        );
        assert_eq!(
            record
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>(),
            vec!["id", "name", "account"],
            "select returns the id and what was selected"
        );
    }
    // The records service's search and expand are audited reads like any other.
    let (s, _, raw) = world.call(
        "rep_a",
        "POST",
        "/api/v1/data/crm_opportunity/query",
        Some(json!({"where": {"name": SECRET_DEAL_A}, "select": ["name"], "top": 5, "expand": {"account": {"object": "crm_account"}}})),
    );
    assert_eq!(s, 200, "{raw}");
    assert!(raw.contains(SECRET_DEAL_A));
    // Unknown parameters stay a clear 400.
    for path in [
        "/api/v1/data/crm_opportunity?$expandall=1",
        "/api/v1/data/crm_opportunity?pageSize=5",
        "/api/v1/data/crm_opportunity?top=1&limit=2",
    ] {
        let (s, _, raw) = get("rep_a", path);
        assert_eq!(s, 400, "{path}: {raw}");
    }
}

#[test]
fn versions_etags_and_if_match() {
    let world = World::build();
    let opp = world.id("opp_a").to_string();
    let client = &world.server.client;
    let url = format!("{}/api/v1/data/crm_opportunity/{opp}", world.server.base);
    let key = world.key("rep_a");
    let get = client.get(&url).bearer_auth(key).send().unwrap();
    let etag = get.headers()["etag"].to_str().unwrap().to_string();
    let body: Value = get.json().unwrap();
    assert_eq!(etag, format!("\"{}\"", body["record"]["row_version"]));
    let patch = |tag: Option<&str>, amount: i64| {
        let mut req = client
            .patch(&url)
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(json!({"amount": amount}).to_string());
        if let Some(tag) = tag {
            req = req.header("if-match", tag);
        }
        req.send().unwrap()
    };
    // The version read matches: the update goes through and makes a new one.
    let ok = patch(Some(&etag), 6000);
    assert_eq!(ok.status().as_u16(), 200);
    let new_tag = ok.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(new_tag, etag);
    // The old version no longer matches: 412, nothing written.
    let stale = patch(Some(&etag), 7000);
    assert_eq!(stale.status().as_u16(), 412);
    let body: Value = stale.json().unwrap();
    assert_eq!(body["error"]["code"], "precondition_failed");
    let now: Value = client
        .get(&url)
        .bearer_auth(key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(now["record"]["amount"], 6000);
    // upstream's clients send `updated_at` as the version: honoured too.
    let updated_at = now["record"]["updated_at"].as_str().unwrap().to_string();
    assert_eq!(patch(Some(&updated_at), 6500).status().as_u16(), 200);
    assert_eq!(patch(Some(&updated_at), 6600).status().as_u16(), 412);
    // Without If-Match, as upstream's SDK by default: any version.
    assert_eq!(patch(None, 8000).status().as_u16(), 200);
    // Delete honours it as well.
    let del = |tag: &str| {
        client
            .delete(&url)
            .bearer_auth(key)
            .header("if-match", tag)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(del("\"1\""), 412);
    let current: Value = client
        .get(&url)
        .bearer_auth(key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let tag = format!("\"{}\"", current["record"]["row_version"]);
    assert_eq!(del(&tag), 200);
    // A version is no oracle: for a record the caller cannot read, any If-Match
    // answers 404, exactly as without one.
    let b = world.id("opp_b").to_string();
    let (s, _, _) = world.call(
        "rep_a",
        "DELETE",
        &format!("/api/v1/data/crm_opportunity/{b}"),
        None,
    );
    assert_eq!(s, 404);
    let wrong = client
        .patch(format!(
            "{}/api/v1/data/crm_opportunity/{b}",
            world.server.base
        ))
        .bearer_auth(key)
        .header("if-match", "\"999\"")
        .header("content-type", "application/json")
        .body("{\"amount\": 1}")
        .send()
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 404);
}

#[test]
fn credentials_in_every_header_upstream_clients_use_and_discovery_says_nothing_of_data() {
    let world = World::build();
    let client = &world.server.client;
    let base = &world.server.base;
    let key = world.key("rep_a");
    let list = format!("{base}/api/v1/data/crm_opportunity");
    for (header, value) in [
        ("authorization", format!("Bearer {key}")),
        ("authorization", format!("ApiKey {key}")),
        ("x-api-key", key.to_string()),
    ] {
        let status = client
            .get(&list)
            .header(header, &value)
            .send()
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 200, "{header}");
    }
    // An agent key is refused on REST whichever header carries it.
    let agent = world
        .env
        .run(&["apikey", "create", "rep.a@example.com", "--agent"])
        .ok()
        .stdout
        .trim()
        .to_string();
    for (header, value) in [
        ("authorization", format!("Bearer {agent}")),
        ("authorization", format!("ApiKey {agent}")),
        ("x-api-key", agent.clone()),
    ] {
        let resp = client.get(&list).header(header, &value).send().unwrap();
        assert_eq!(resp.status().as_u16(), 403, "{header}");
        let body: Value = resp.json().unwrap();
        assert_eq!(body["error"]["code"], "agent_key_not_allowed");
    }
    // Discovery is served without credentials and names routes and features,
    // nothing about data, users or keys.
    for path in ["/api/v1/discovery", "/.well-known/objectstack", "/api/v1"] {
        let resp = client.get(format!("{base}{path}")).send().unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let text = resp.text().unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["routes"]["data"], "/api/v1/data");
        assert_eq!(doc["routes"]["metadata"], "/api/v1/meta");
        for secret in [
            "crm_",
            "example.com",
            "osk_",
            SECRET_DEAL_A,
            world.id("opp_a"),
        ] {
            assert!(!text.contains(secret), "{path} mentions {secret}: {text}");
        }
    }
    // Meta is the caller's view, in upstream's shapes.
    let (s, body, _) = world.call("fin", "GET", "/api/v1/meta/object", None);
    assert_eq!(s, 200);
    assert_eq!(body["type"], "object");
    let names: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"crm_opportunity") && !names.contains(&"crm_contact"),
        "{names:?}"
    );
    let (s, body, raw) = world.call("fin", "GET", "/api/v1/meta/object/crm_opportunity", None);
    assert_eq!(s, 200);
    assert_eq!(
        (body["type"].as_str(), body["name"].as_str()),
        (Some("object"), Some("crm_opportunity"))
    );
    assert!(body["item"]["fields"]["name"].is_object());
    assert!(
        !raw.contains("probability"),
        "finance may not read probability: {raw}"
    );
    let (s, _, _) = world.call("fin", "GET", "/api/v1/meta/object/crm_contact", None);
    assert_eq!(s, 404);
    let (s, body, _) = world.call("fin", "GET", "/api/v1/meta/action", None);
    assert_eq!(s, 200);
    assert!(
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["objectName"] != "crm_contact")
    );
    // Sign-in at upstream's route, then the session works like a key.
    world
        .env
        .write("pw2", format!("{}\n", crate::store::PASSWORD));
    world
        .env
        .run(&[
            "user",
            "set-password",
            "rep.a@example.com",
            "--password-file",
            "pw2",
        ])
        .ok();
    let resp: Value = client
        .post(format!("{base}/api/v1/auth/sign-in/email"))
        .header("content-type", "application/json")
        .body(json!({"email": "rep.a@example.com", "password": crate::store::PASSWORD}).to_string())
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = resp["token"].as_str().unwrap();
    assert_eq!(resp["user"]["email"], "rep.a@example.com");
    let status = client
        .get(&list)
        .bearer_auth(token)
        .send()
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
    let out = client
        .post(format!("{base}/api/v1/auth/sign-out"))
        .bearer_auth(token)
        .send()
        .unwrap()
        .status();
    assert_eq!(out.as_u16(), 200);
    let status = client
        .get(&list)
        .bearer_auth(token)
        .send()
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 401);
}

/// The rows of an aggregate answer, each reduced to the named columns.
fn rows_of(body: &Value, columns: &[&str]) -> Vec<Vec<Value>> {
    records(body)
        .iter()
        .map(|r| columns.iter().map(|c| r[*c].clone()).collect())
        .collect()
}

#[test]
fn upstream_aggregates_count_distinct_and_bucket_dates_in_utc() {
    let mut world = World::build();
    let (account_a, account_a_fin) = (
        world.id("account_a").to_string(),
        world.id("account_a_fin").to_string(),
    );
    // The ISO week's edges: 2020-12-31 (a Thursday) and 2021-01-01 (a Friday)
    // are in 2020-W53, 2021-01-04 (a Monday) starts 2021-W01, 2024-12-30 (a
    // Monday) is in 2025-W01.
    for (label, date, stage, account) in [
        ("agg_1", "2020-12-31", "proposal", Some(&account_a)),
        ("agg_2", "2021-01-01", "proposal", Some(&account_a)),
        ("agg_3", "2021-01-04", "negotiation", Some(&account_a_fin)),
        ("agg_4", "2024-12-30", "negotiation", None),
    ] {
        world.create(
            "rep_a",
            "crm_opportunity",
            label,
            json!({"name": format!("AGG-{label}"), "amount": 10, "stage": stage, "close_date": date, "account": account}),
        );
    }
    let mine = json!({"name": {"$startsWith": "AGG-"}});
    let count = json!([{"function": "count", "alias": "n"}]);
    let query = |user: &str, body: Value| {
        world.call(
            user,
            "POST",
            "/api/v1/data/crm_opportunity/query",
            Some(body),
        )
    };

    // count_distinct: the different non-null values (agg_4 has no account).
    let (s, body, raw) = query(
        "rep_a",
        json!({"where": mine, "aggregations": [
            {"function": "count_distinct", "field": "account", "alias": "accounts"},
            {"function": "count", "alias": "n"}
        ]}),
    );
    assert_eq!(s, 200, "{raw}");
    assert_eq!(
        rows_of(&body, &["accounts", "n"]),
        vec![vec![json!(2), json!(4)]]
    );
    let (s, body, raw) = query(
        "rep_a",
        json!({"where": mine, "groupBy": ["stage"], "aggregations": [
            {"function": "count_distinct", "field": "account", "alias": "accounts"}
        ]}),
    );
    assert_eq!(s, 200, "{raw}");
    assert_eq!(
        rows_of(&body, &["stage", "accounts"]),
        vec![
            vec![json!("negotiation"), json!(1)],
            vec![json!("proposal"), json!(1)]
        ]
    );

    // Every granularity, with the result's column named by the alias; the
    // buckets come back in order.
    for (granularity, buckets) in [
        (
            "day",
            vec![
                ("2020-12-31", 1),
                ("2021-01-01", 1),
                ("2021-01-04", 1),
                ("2024-12-30", 1),
            ],
        ),
        (
            "week",
            vec![("2020-W53", 2), ("2021-W01", 1), ("2025-W01", 1)],
        ),
        (
            "month",
            vec![("2020-12", 1), ("2021-01", 2), ("2024-12", 1)],
        ),
        (
            "quarter",
            vec![("2020-Q4", 1), ("2021-Q1", 2), ("2024-Q4", 1)],
        ),
        ("year", vec![("2020", 1), ("2021", 2), ("2024", 1)]),
    ] {
        let (s, body, raw) = query(
            "rep_a",
            json!({"where": mine, "timezone": "UTC", "aggregations": count, "groupBy": [
                {"field": "close_date", "dateGranularity": granularity, "alias": "bucket"}
            ]}),
        );
        assert_eq!(s, 200, "{granularity}: {raw}");
        let want: Vec<Vec<Value>> = buckets
            .iter()
            .map(|(b, n)| vec![json!(b), json!(n)])
            .collect();
        assert_eq!(rows_of(&body, &["bucket", "n"]), want, "{granularity}");
        for row in records(&body) {
            assert!(row.get("close_date").is_none(), "the alias names it: {raw}");
        }
    }
    // Without an alias the column keeps the field's name; plain and bucketed
    // keys mix, and objectos's own endpoint takes the same shape.
    let (s, body, raw) = world.call(
        "rep_a",
        "POST",
        "/api/v1/query",
        Some(json!({"object": "crm_opportunity", "where": mine, "aggregations": count, "timezone": "Etc/UTC", "groupBy": [
            "stage",
            {"field": "close_date", "dateGranularity": "year"}
        ]})),
    );
    assert_eq!(s, 200, "{raw}");
    assert_eq!(
        rows_of(&body, &["stage", "close_date", "n"]),
        vec![
            vec![json!("negotiation"), json!("2021"), json!(1)],
            vec![json!("negotiation"), json!("2024"), json!(1)],
            vec![json!("proposal"), json!("2020"), json!(1)],
            vec![json!("proposal"), json!("2021"), json!(1)],
        ]
    );

    // A date-time is bucketed in UTC whatever offset it carries: 00:30 on New
    // Year's day at +02:00 is still 2020 in UTC.
    sql(
        &world.env.db(),
        &format!(
            "UPDATE rec_crm_opportunity SET created_at = '2021-01-01T00:30:00+02:00' WHERE id = '{}'",
            world.id("agg_2")
        ),
    );
    let (s, body, raw) = query(
        "rep_a",
        json!({"where": {"name": "AGG-agg_2"}, "aggregations": count, "groupBy": [
            {"field": "created_at", "dateGranularity": "day", "alias": "d"},
            {"field": "created_at", "dateGranularity": "week", "alias": "w"}
        ]}),
    );
    assert_eq!(s, 200, "{raw}");
    assert_eq!(
        rows_of(&body, &["d", "w", "n"]),
        vec![vec![json!("2020-12-31"), json!("2020-W53"), json!(1)]]
    );

    // Refusals, each a clear 400 `invalid_query`.
    let refused = |user: &str, body: Value| {
        let (s, got, raw) = query(user, body);
        assert_eq!(
            (s, got["error"]["code"].as_str()),
            (400, Some("invalid_query")),
            "{raw}"
        );
        got["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    for field in ["stage", "amount", "name"] {
        let message = refused(
            "rep_a",
            json!({"aggregations": count, "groupBy": [{"field": field, "dateGranularity": "month"}]}),
        );
        assert!(
            message.contains(field) && message.contains("not a date or datetime field"),
            "{message}"
        );
    }
    for zone in ["Europe/Paris", "America/New_York", "+02:00"] {
        let message = refused(
            "rep_a",
            json!({"aggregations": count, "timezone": zone, "groupBy": [{"field": "close_date", "dateGranularity": "day"}]}),
        );
        assert!(
            message.starts_with("only UTC date buckets are supported"),
            "{message}"
        );
    }
    refused(
        "rep_a",
        json!({"aggregations": [{"function": "count_distinct", "alias": "x"}]}),
    );

    // Field rights: a field the caller may not read is refused in an upstream
    // group key (with or without a date bucket) and in count_distinct exactly as
    // in a plain one, before anything about its type is said; a missing field
    // answers `unknown_field` whichever way it is named.
    let error = |user: &str, body: Value| {
        let (s, got, raw) = query(user, body);
        assert!(!raw.contains(CANARY_NOTE), "{raw}");
        (s, got["error"].clone())
    };
    for (user, field) in [("rep_a", "discount_approval_note"), ("fin", "probability")] {
        let plain = error(user, json!({"aggregations": count, "groupBy": [field]}));
        assert_eq!(
            (plain.0, plain.1["code"].as_str()),
            (403, Some("field_predicate_denied")),
            "{user}.{field}"
        );
        for key in [
            json!({"field": field}),
            json!({"field": field, "alias": "k"}),
            json!({"field": field, "dateGranularity": "month"}),
        ] {
            assert_eq!(
                error(user, json!({"aggregations": count, "groupBy": [key]})),
                plain,
                "{user}: {key}"
            );
        }
        let max = error(
            user,
            json!({"aggregations": [{"function": "max", "field": field, "alias": "m"}]}),
        );
        assert_eq!(max, plain, "{user}.{field}");
        assert_eq!(
            error(
                user,
                json!({"aggregations": [{"function": "count_distinct", "field": field, "alias": "m"}]})
            ),
            max,
            "{user}.{field}"
        );
    }
    let missing = error(
        "rep_a",
        json!({"aggregations": count, "groupBy": ["no_such_field"]}),
    );
    assert_eq!(
        (missing.0, missing.1["code"].as_str()),
        (400, Some("unknown_field"))
    );
    for key in [
        json!({"field": "no_such_field"}),
        json!({"field": "no_such_field", "dateGranularity": "day", "alias": "d"}),
    ] {
        assert_eq!(
            error("rep_a", json!({"aggregations": count, "groupBy": [key]})),
            missing,
            "{key}"
        );
    }
    // Positive control: the manager, who may read the note, groups and counts it.
    let (s, body, raw) = query(
        "manager",
        json!({"where": {"name": {"$in": [SECRET_DEAL_A, SECRET_DEAL_B]}}, "groupBy": [{"field": "discount_approval_note", "alias": "note"}], "aggregations": [
            {"function": "count_distinct", "field": "discount_approval_note", "alias": "notes"}
        ]}),
    );
    assert_eq!(s, 200, "{raw}");
    assert_eq!(
        rows_of(&body, &["note", "notes"]),
        vec![vec![json!(CANARY_NOTE), json!(1)]]
    );

    // A date bucket over an audited object is audited with its shape, and shown
    // to whoever may read the field.
    let (s, _, raw) = world.call(
        "rep_b",
        "POST",
        "/api/v1/query",
        Some(json!({"object": "crm_contact", "aggregations": count, "groupBy": [{"field": "birthdate", "dateGranularity": "year", "alias": "born"}]})),
    );
    assert_eq!(s, 200, "{raw}");
    let (s, events, raw) = world.call("auditor", "GET", "/api/v1/audit/events?limit=1000", None);
    assert_eq!(s, 200, "{raw}");
    let shape = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "record.read" && e["changes"]["read"] == "aggregate")
        .map(|e| e["changes"].clone())
        .unwrap_or_default();
    assert_eq!(
        shape["groupBy"],
        json!([{"field": "birthdate", "dateGranularity": "year"}]),
        "{shape}"
    );
}

/// Upstream's action route, `POST /api/v1/actions/{object}/{action}[/{id}]` with
/// `{recordId?, params?}`: the record from the path or the body (never two
/// different ones), no parameter the action does not declare (objectos's
/// actions declare none), and a record the caller cannot read answered exactly
/// like one that does not exist.
#[test]
fn actions_by_path_and_body_refuse_what_they_do_not_take() {
    let world = World::build();
    let opp_a = world.id("opp_a").to_string();
    let opp_b = world.id("opp_b").to_string();
    let missing = "0190f5c1-dead-7000-8000-00000000beef";
    let run = |id: Option<&str>, body: Value| {
        let path = match id {
            Some(id) => format!("/api/v1/actions/crm_opportunity/mark_won/{id}"),
            None => "/api/v1/actions/crm_opportunity/mark_won".to_string(),
        };
        world.call("rep_a", "POST", &path, Some(body))
    };
    let refused = |(s, body, raw): (u16, Value, String), code: &str| {
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (400, Some(code)),
            "{raw}"
        );
        raw
    };
    let stage = |user: &str, id: &str| {
        let (s, body, raw) = world.call(
            user,
            "GET",
            &format!("/api/v1/data/crm_opportunity/{id}"),
            None,
        );
        assert_eq!(s, 200, "{raw}");
        body["record"]["stage"].as_str().unwrap().to_string()
    };

    // Parameters the action does not declare are refused, not ignored: on
    // either form, and alike for a record one may not read.
    for id in [Some(opp_a.as_str()), None] {
        let raw = refused(
            run(
                id,
                json!({"recordId": opp_a, "params": {"stage": "prospecting"}}),
            ),
            "invalid_body",
        );
        assert!(raw.contains("`stage` is not a parameter"), "{raw}");
    }
    refused(
        run(Some(&opp_b), json!({"params": {"x": 1}})),
        "invalid_body",
    );
    refused(run(Some(&opp_a), json!({"params": [1]})), "invalid_body");
    refused(run(Some(&opp_a), json!({"recordId": 7})), "invalid_body");
    refused(run(Some(&opp_a), json!({"other": true})), "invalid_body");
    // A path id and a different `recordId`: refused, whichever record either
    // names, without a word about them.
    for (path, body) in [
        (&opp_a, &opp_b),
        (&opp_b, &opp_a),
        (&opp_a, &missing.to_string()),
    ] {
        let raw = refused(run(Some(path), json!({"recordId": body})), "invalid_body");
        assert!(
            !raw.contains(SECRET_DEAL_B) && !raw.contains(SECRET_DEAL_A),
            "{raw}"
        );
    }
    assert_eq!(stage("rep_a", &opp_a), "proposal", "nothing ran");
    assert_eq!(stage("rep_b", &opp_b), "negotiation", "nothing ran");

    // The record rep_a may not read is answered like one that is not there.
    let not_found = |id: &str, body: Value| {
        let (s, body, raw) = run(Some(id), body);
        assert_eq!(s, 404, "{raw}");
        assert!(!raw.contains(SECRET_DEAL_B), "{raw}");
        (
            body["error"]["code"].clone(),
            body["error"]["message"].as_str().unwrap().replace(id, "ID"),
        )
    };
    for body in [json!({}), json!({"params": {}})] {
        assert_eq!(not_found(&opp_b, body.clone()), not_found(missing, body));
    }
    let (s, _, raw) = run(None, json!({"recordId": opp_b}));
    assert_eq!(s, 404, "{raw}");
    assert_eq!(stage("rep_b", &opp_b), "negotiation");

    // The positive controls: the path form, with the same id in the body too and
    // empty `params`; then the body form with `params: null`.
    let (s, body, raw) = run(Some(&opp_a), json!({"recordId": opp_a, "params": {}}));
    assert_eq!(s, 200, "{raw}");
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["id"], json!(opp_a));
    assert_eq!(body["data"]["record"]["stage"], "closed_won");
    assert_eq!(stage("rep_a", &opp_a), "closed_won");
    let opp_a_won = world.id("opp_a_won").to_string();
    let (s, body, raw) = run(None, json!({"recordId": opp_a_won, "params": null}));
    assert_eq!(s, 200, "{raw}");
    assert_eq!(body["data"]["id"], json!(opp_a_won));
}

/// Upstream's SDK's bulk writes (`createMany`, `updateMany`, `deleteMany`,
/// `batch`, `batchTransaction`) are not served: each answers as
/// docs/http-api.md says, and writes nothing.
#[test]
fn bulk_writes_of_upstreams_sdk_are_refused_as_documented() {
    let world = World::build();
    let count = |world: &World| {
        let (s, body, raw) = world.call(
            "rep_a",
            "GET",
            "/api/v1/data/crm_opportunity?total=true",
            None,
        );
        assert_eq!(s, 200, "{raw}");
        body["total"].as_u64().unwrap()
    };
    let before = count(&world);
    let opp_a = world.id("opp_a").to_string();
    for (path, body) in [
        ("createMany", json!([{"name": "Bulk", "amount": 1}])),
        (
            "updateMany",
            json!({"records": [{"id": opp_a, "data": {"amount": 2}}]}),
        ),
        ("deleteMany", json!({"ids": [opp_a]})),
        (
            "batch",
            json!({"operation": "delete", "records": [{"id": opp_a}]}),
        ),
    ] {
        let (s, body, raw) = world.call(
            "rep_a",
            "POST",
            &format!("/api/v1/data/crm_opportunity/{path}"),
            Some(body),
        );
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (405, Some("method_not_allowed")),
            "{path}: {raw}"
        );
    }
    let (s, body, raw) = world.call(
        "rep_a",
        "POST",
        "/api/v1/batch",
        Some(json!({"operations": [], "atomic": true})),
    );
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{raw}"
    );
    assert_eq!(count(&world), before, "nothing was written");
    let (s, record, _) = world.call(
        "rep_a",
        "GET",
        &format!("/api/v1/data/crm_opportunity/{opp_a}"),
        None,
    );
    assert_eq!(
        (s, record["record"]["amount"].as_f64()),
        (200, Some(5000.0))
    );
    let (_, discovery, _) = world.server.call("GET", "/api/v1/discovery", None, None);
    assert!(
        discovery.to_string().contains("\"transactionalBatch\""),
        "{discovery}"
    );
}
