//! Races: concurrent writers of one record, a key revoked while in use, two
//! applies at once, two servers on one data dir.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use serde_json::{Value, json};

use crate::world::*;

fn amount(world: &World, path: &str) -> f64 {
    let (status, body, raw) = world.call("rep_a", "GET", path, None);
    assert_eq!(status, 200, "{raw}");
    body["record"]["amount"].as_f64().unwrap()
}

#[test]
fn concurrent_updates_with_if_match_lose_no_update() {
    let world = World::build();
    let id = world.id("opp_a").to_string();
    let path = format!("/api/v1/data/crm_opportunity/{id}");
    let start = amount(&world, &path);
    let base = world.server.base.clone();
    let key = world.key("rep_a").to_string();
    let barrier = Arc::new(Barrier::new(8));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (base, key, path, barrier) =
                (base.clone(), key.clone(), path.clone(), barrier.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                let mut won = 0;
                let mut lost = 0;
                barrier.wait();
                for _ in 0..10 {
                    // Read, then write what was read plus one, if nobody wrote meanwhile.
                    let got = client
                        .get(format!("{base}{path}"))
                        .bearer_auth(&key)
                        .send()
                        .unwrap();
                    let etag = got.headers()["etag"].to_str().unwrap().to_string();
                    let body: Value = got.json().unwrap();
                    let amount = body["record"]["amount"].as_f64().unwrap();
                    let put = client
                        .patch(format!("{base}{path}"))
                        .bearer_auth(&key)
                        .header("if-match", etag)
                        .header("content-type", "application/json")
                        .body(json!({"amount": amount + 1.0}).to_string())
                        .send()
                        .unwrap();
                    match put.status().as_u16() {
                        200 => won += 1,
                        412 => lost += 1,
                        other => panic!("unexpected {other}: {}", put.text().unwrap_or_default()),
                    }
                }
                (won, lost)
            })
        })
        .collect();
    let (mut won, mut lost) = (0, 0);
    for w in workers {
        let (a, b) = w.join().unwrap();
        won += a;
        lost += b;
    }
    assert!(won > 0 && won + lost == 80, "{won} won, {lost} lost");
    let end = amount(&world, &path);
    assert_eq!(
        end,
        start + won as f64,
        "every acknowledged update counted once, none lost"
    );
    world.env.run(&["audit", "verify"]).ok();
}

#[test]
fn a_key_revoked_while_in_use_stops_at_once_and_servers_and_applies_do_not_collide() {
    let world = World::build();
    let env = &world.env;
    let key = env
        .run(&["apikey", "create", email("rep_b"), "--name", "busy"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let base = world.server.base.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let revoked_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let hammer = {
        let (base, key, stop, revoked_at) =
            (base.clone(), key.clone(), stop.clone(), revoked_at.clone());
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            let mut late_successes = 0;
            let mut refused = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let sent = Instant::now();
                let status = client
                    .get(format!("{base}/api/v1/data/crm_opportunity?limit=1"))
                    .bearer_auth(&key)
                    .send()
                    .unwrap()
                    .status()
                    .as_u16();
                let after_revoke = revoked_at.lock().unwrap().is_some_and(|t| sent > t);
                match status {
                    200 if after_revoke => late_successes += 1,
                    200 => {}
                    401 => refused += 1,
                    other => panic!("unexpected {other}"),
                }
            }
            (late_successes, refused)
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let id = env
        .run(&["--json", "apikey", "list", "--user", email("rep_b")])
        .ok()
        .json()["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "busy")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    env.run(&["apikey", "revoke", &id]).ok();
    *revoked_at.lock().unwrap() = Some(Instant::now());
    std::thread::sleep(std::time::Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (late, refused) = hammer.join().unwrap();
    assert_eq!(late, 0, "no request sent after the revocation may succeed");
    assert!(refused > 0);

    // A second server on the same data dir is refused; the first keeps serving.
    let second = env
        .cmd()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("already serving"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(world.server.get("/healthz", world.key("rep_a")).0, 200);

    // Rotating the instance keys under a running server is refused, and changes
    // nothing: the server would go on signing with the old key.
    let signing_pub = env.path("data").join("instance-signing.key.pub");
    let before = std::fs::read(&signing_pub).unwrap();
    let rotate = env
        .cmd()
        .args(["instance", "rotate-keys"])
        .output()
        .unwrap();
    assert_eq!(rotate.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&rotate.stderr).contains("a server is serving"),
        "{}",
        String::from_utf8_lossy(&rotate.stderr)
    );
    assert_eq!(std::fs::read(&signing_pub).unwrap(), before);

    // Applies of a new version that adds a column, several at once: exactly one
    // applies it; each other either finds it applied already (a no-op) or is
    // refused cleanly because the artifact changed under its plan — never a
    // database error, a second apply row or a half-applied schema.
    let app = std::fs::read_to_string(env.path("artifact.json")).unwrap();
    let mut doc: Value = serde_json::from_str(&app).unwrap();
    doc["manifest"]["version"] = json!("1.1.0");
    let objects = doc["objects"].as_array_mut().unwrap();
    let first = objects.first_mut().unwrap();
    first["fields"]["race_note"] = json!({"type": "text", "label": "Race note"});
    env.write("next.json", doc.to_string());
    env.run(&["build", "next.json", "-o", "next-artifact.json"])
        .ok();
    env.run(&["sign", "next-artifact.json", "-k", "signer"])
        .ok();
    let applies_before = applied_rows(env);
    let gate = Arc::new(Barrier::new(4));
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let mut cmd = env.cmd();
            cmd.args(["apply", "next-artifact.json", "-y"]);
            let gate = gate.clone();
            std::thread::spawn(move || {
                gate.wait();
                cmd.output().unwrap()
            })
        })
        .collect();
    let outs: Vec<_> = runs.into_iter().map(|t| t.join().unwrap()).collect();
    for o in &outs {
        let stderr = String::from_utf8_lossy(&o.stderr);
        match o.status.code() {
            Some(0) => {}
            Some(1) => assert!(
                stderr.contains("another apply changed the applied artifact"),
                "a loser is told why: {stderr}"
            ),
            other => panic!("{other:?}: {stderr}"),
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!stderr.contains("database error"), "{stderr}");
    }
    assert_eq!(
        applied_rows(env) - applies_before,
        1,
        "exactly one apply changed the schema"
    );
    let applied = env.run(&["--json", "doctor"]).stdout;
    assert!(applied.contains("1.1.0"), "{applied}");
    env.run(&["audit", "verify"]).ok();
}

/// How many `artifact.apply` rows say an artifact was applied.
fn applied_rows(env: &crate::util::Env) -> usize {
    crate::agents::audit(env)
        .iter()
        .filter(|e| e["action"] == "artifact.apply" && e["outcome"] == "success")
        .count()
}

/// Past each thousand audit rows the server writes one checkpoint, however
/// many requests end at once: the first to see the log that far claims it.
/// (Each request that ended meanwhile wrote one of its own, one after the
/// other behind the log's lock: about seven lines per thousand rows under
/// concurrent creates.)
#[test]
fn concurrent_creates_write_one_checkpoint_per_thousand_rows() {
    let world = World::build();
    let lines = || world.env.read("data/audit-checkpoints.log").lines().count();
    let before = lines();
    let base = world.server.base.clone();
    let key = world.key("rep_a").to_string();
    let threads = 16;
    let each = 80;
    let barrier = Arc::new(Barrier::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (base, key, barrier) = (base.clone(), key.clone(), barrier.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                barrier.wait();
                for i in 0..each {
                    let made = client
                        .post(format!("{base}/api/v1/data/crm_opportunity"))
                        .bearer_auth(&key)
                        .json(&json!({"name": format!("race {t}-{i}"), "stage": "prospecting"}))
                        .send()
                        .unwrap();
                    assert_eq!(made.status().as_u16(), 201, "{}", made.text().unwrap());
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    // 1,280 creates, each with its audit row: the log crossed one thousand
    // rows past the last checkpoint once (twice at most, with the rows the
    // world was built with).
    let written = lines() - before;
    assert!(
        (1..=2).contains(&written),
        "{written} checkpoint lines for {} creates",
        threads * each
    );
    world.env.run(&["audit", "verify"]).ok();
}
