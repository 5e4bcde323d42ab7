//! Rows that grant power carry a seal by a key derived from the instance key:
//! someone who can write the database but lacks that key (a PostgreSQL
//! administrator) cannot forge or alter one. Runs on the suite's backend; the
//! tampering is done with the database's own client, as such a person would.

use serde_json::json;

use crate::store::PASSWORD;
use crate::util::*;
use crate::world::World;

fn seals_line(env: &Env) -> (i32, String) {
    let run = env.run(&["doctor"]);
    let status = run.code;
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("seals"))
        .unwrap_or_default()
        .to_string();
    (status, line)
}

fn sign_in(world: &World, email: &str, password: &str) -> u16 {
    world
        .server
        .call(
            "POST",
            "/api/v1/auth/sign-in/email",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .0
}

#[test]
fn rows_that_grant_power_written_without_the_instance_key_are_ignored_and_named_by_doctor() {
    let world = World::build();
    let env = &world.env;
    let db = env.db();
    let opp_a = world.id("opp_a").to_string();
    let get_opp_a = |user: &str| {
        world
            .call(
                user,
                "GET",
                &format!("/api/v1/data/crm_opportunity/{opp_a}"),
                None,
            )
            .0
    };
    let list_opps = |user: &str| {
        world
            .call(user, "GET", "/api/v1/data/crm_opportunity", None)
            .0
    };
    // Positive controls: the owner reads it, another rep does not; a user
    // with no permission set lists nothing; the seals are sound.
    assert_eq!(get_opp_a("rep_a"), 200);
    assert_eq!(get_opp_a("rep_b"), 404);
    assert_eq!(list_opps("nobody"), 403);
    let (status, line) = seals_line(env);
    assert_eq!(status, 0, "{line}");
    assert!(line.contains("ok"), "{line}");

    // 1. A genuine share works; widened to edit behind objectos's back, it is
    // ignored altogether.
    let (status, _, raw) = world.call(
        "rep_a",
        "POST",
        &format!("/api/v1/data/crm_opportunity/{opp_a}/shares"),
        Some(json!({"type": "user", "value": "rep.b@example.com", "accessLevel": "read"})),
    );
    assert_eq!(status, 201, "{raw}");
    assert_eq!(get_opp_a("rep_b"), 200);
    sql(
        &db,
        &format!("UPDATE objectos_shares SET edit = TRUE WHERE record_id = '{opp_a}'"),
    );
    assert_eq!(get_opp_a("rep_b"), 404);

    // 2. A share forged from nothing, with a seal copied from another row:
    // rep_b's deal for rep_a.
    let opp_b = world.id("opp_b").to_string();
    let rep_a_gets_opp_b = || {
        world
            .call(
                "rep_a",
                "GET",
                &format!("/api/v1/data/crm_opportunity/{opp_b}"),
                None,
            )
            .0
    };
    assert_eq!(rep_a_gets_opp_b(), 404);
    sql(
        &db,
        &format!(
            "INSERT INTO objectos_shares (id, object, record_id, grantee_kind, grantee, edit, created_by, created_at, mac) \
             SELECT 'forged-share', object, '{opp_b}', 'user', (SELECT id FROM objectos_users WHERE email = 'rep.a@example.com'), edit, created_by, created_at, mac \
             FROM objectos_shares WHERE record_id = '{opp_a}'"
        ),
    );
    assert_eq!(rep_a_gets_opp_b(), 404);

    // 3. A permission set assigned by hand: no seal.
    sql(
        &db,
        "INSERT INTO objectos_assignments (id, user_id, permset, org_id, created_at) \
         SELECT 'forged-assignment', id, 'sales_manager', '', '2026-01-01T00:00:00Z' FROM objectos_users WHERE email = 'nobody@example.com'",
    );
    assert_eq!(list_opps("nobody"), 403);

    // 4. A revoked key brought back.
    let key = env
        .run(&["apikey", "create", "rep.b@example.com", "--name", "gone"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let with_key = |key: &str| world.server.get("/api/v1/data/crm_opportunity", key).0;
    assert_eq!(with_key(&key), 200);
    let id = sql_query(&db, "SELECT id FROM objectos_api_keys WHERE name = 'gone'")[0][0].clone();
    env.run(&["apikey", "revoke", &id]).ok();
    assert_eq!(with_key(&key), 401);
    sql(
        &db,
        &format!("UPDATE objectos_api_keys SET revoked_at = NULL WHERE id = '{id}'"),
    );
    assert_eq!(with_key(&key), 401);

    // 5. Another user's password hash copied onto a user: the password that
    // signs the admin in does not sign the victim in.
    assert_eq!(sign_in(&world, "admin@example.com", PASSWORD), 200);
    sql(
        &db,
        "UPDATE objectos_users SET password_hash = (SELECT password_hash FROM objectos_users WHERE email = 'admin@example.com') WHERE email = 'fin@example.com'",
    );
    assert_eq!(sign_in(&world, "fin@example.com", PASSWORD), 401);
    // The tampered user is out of reach altogether (their key included).
    assert_eq!(list_opps("fin"), 401);

    // 6. A team membership made by hand grants nothing: the finance team's
    // rule does not reach rep_b (the fin user is no proof here, so a second
    // team member's view is compared before and after).
    let teams_before = sql_query(&db, "SELECT count(*) FROM objectos_team_members")[0][0].clone();
    sql(
        &db,
        "INSERT INTO objectos_team_members (team_id, user_id) \
         SELECT t.id, u.id FROM objectos_teams t, objectos_users u WHERE t.name = 'finance' AND u.email = 'nobody@example.com'",
    );
    let members = env.run(&["--json", "team", "list"]).ok().stdout;
    assert!(!members.contains("nobody@example.com"), "{members}");
    assert_ne!(teams_before, "0");

    // doctor names every one of them and fails.
    let (status, line) = seals_line(env);
    assert_eq!(status, 1, "{line}");
    assert!(line.contains(" 6 rows "), "{line}");
    for what in [
        "objectos_shares",
        &format!("record_id=\"{opp_b}\""),
        "objectos_assignments",
        "objectos_api_keys",
        "objectos_users",
        "objectos_team_members",
        "wrong seal",
        "no seal",
    ] {
        assert!(line.contains(what), "doctor does not name {what}: {line}");
    }
    // The genuine rows were not touched by any of it.
    assert_eq!(get_opp_a("rep_a"), 200);
    assert_eq!(list_opps("rep_b"), 200);
}

#[test]
fn rows_from_before_sealing_are_sealed_once_and_the_chain_says_so() {
    let env = Env::new();
    let admin = crate::store::ready(&env);
    let db = env.db();
    // As a data dir made before seals existed: no seal anywhere, no marker.
    for table in [
        "objectos_users",
        "objectos_memberships",
        "objectos_assignments",
        "objectos_api_keys",
    ] {
        sql(&db, &format!("UPDATE {table} SET mac = NULL"));
    }
    sql(&db, "DELETE FROM objectos_meta WHERE key = 'rows_sealed'");
    std::fs::remove_file(env.path("data/rows-sealed")).unwrap();
    // The next command that opens it for writing seals them, once.
    let (status, line) = seals_line(&env);
    assert_eq!(status, 0, "{line}");
    let events = env
        .run(&["--json", "audit", "tail", "-n", "1000"])
        .ok()
        .json();
    let sealed: Vec<_> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "store.rows_sealed")
        .collect();
    assert_eq!(sealed.len(), 1, "{events}");
    assert!(sealed[0]["changes"]["rows"].as_u64().unwrap() >= 4);
    env.run(&["doctor"]).ok();
    let events = env
        .run(&["--json", "audit", "tail", "-n", "1000"])
        .ok()
        .json();
    assert_eq!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "store.rows_sealed")
            .count(),
        1
    );
    // And the admin's key works.
    let server = Server::start(&env);
    assert_eq!(server.get("/api/v1/auth/get-session", &admin).0, 200);
    drop(server);

    // Someone who can write only the database removes its marker to have a
    // forged row sealed: the data dir (and the chain) still say the rows were
    // sealed, so nothing is sealed again, and the forged row stays out.
    sql(&db, "DELETE FROM objectos_meta WHERE key = 'rows_sealed'");
    sql(
        &db,
        "INSERT INTO objectos_assignments (id, user_id, permset, org_id, created_at) \
         SELECT 'forged', user_id, 'sales_manager', '', '2026-01-01T00:00:00Z' FROM objectos_memberships LIMIT 1",
    );
    let run = env.run(&["doctor"]);
    assert!(run.stderr.contains("TAMPERING"), "{}", run.stderr);
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("seals"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains("sales_manager") && line.contains("no seal"),
        "{line}"
    );
    assert_eq!(run.code, 1);
    // Even with the data dir's marker gone too, the chain remembers.
    std::fs::remove_file(env.path("data/rows-sealed")).unwrap();
    let (status, line) = seals_line(&env);
    assert_eq!(status, 1, "{line}");
    assert!(line.contains("sales_manager"), "{line}");
}

#[test]
fn a_key_rotation_seals_every_sound_row_anew_and_leaves_forged_ones_out() {
    let env = Env::new();
    let admin = crate::store::ready(&env);
    let db = env.db();
    env.run(&["user", "add", "x@example.com", "--no-password"])
        .ok();
    sql(
        &db,
        "INSERT INTO objectos_assignments (id, user_id, permset, org_id, created_at, mac) \
         SELECT 'forged', id, 'sales_manager', '', '2026-01-01T00:00:00Z', 'ab' FROM objectos_users WHERE email = 'x@example.com'",
    );
    env.run(&["instance", "rotate-keys"]).ok();
    let (status, line) = seals_line(&env);
    assert_eq!(status, 1, "{line}");
    assert!(line.contains(" 1 rows"), "{line}");
    assert!(line.contains("permset=\"sales_manager\""), "{line}");
    sql(&db, "DELETE FROM objectos_assignments WHERE id = 'forged'");
    let (status, line) = seals_line(&env);
    assert_eq!(status, 0, "{line}");
    let server = Server::start(&env);
    assert_eq!(server.get("/api/v1/auth/get-session", &admin).0, 200);
}

#[test]
fn a_grant_made_through_objectos_replaces_a_forged_row_instead_of_sealing_it() {
    let env = Env::new();
    crate::store::ready(&env);
    let db = env.db();
    env.run(&["user", "add", "y@example.com", "--no-password"])
        .ok();
    sql(
        &db,
        "INSERT INTO objectos_assignments (id, user_id, permset, org_id, valid_until, created_at) \
         SELECT 'forged', id, 'sales_rep', '', NULL, '2020-01-01T00:00:00Z' FROM objectos_users WHERE email = 'y@example.com'",
    );
    let (status, _) = seals_line(&env);
    assert_eq!(status, 1);
    env.run(&["permset", "assign", "sales_rep", "y@example.com"])
        .ok();
    // The row is objectos's own now (a new id, sealed), not the forged one
    // with a seal put on it.
    assert!(
        sql_query(
            &db,
            "SELECT id FROM objectos_assignments WHERE id = 'forged'"
        )
        .is_empty()
    );
    let (status, line) = seals_line(&env);
    assert_eq!(status, 0, "{line}");
}
