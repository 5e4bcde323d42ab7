//! Each class of defect found by attacking the runtime, written as the attack:
//! forged backups, sign-in bursts, cascades across owners, existence oracles on
//! every route, canaries in audited filters, a stored artifact edited behind the
//! tool's back, dropped audit guards, and oversized queries. Every attack has a
//! positive control, so that a test cannot pass because nothing worked at all.

use std::sync::{Arc, Barrier};

use serde_json::{Value, json};

use crate::runtime::urlenc;
use crate::store::PASSWORD;
use crate::util::*;

/// An app made to be attacked: a private parent with a private master-detail
/// child (not controlled by its parent), an object only insiders may read (with
/// an action, a master-detail child of the parent, and a lookup pointing at it),
/// and an audited object with a field the viewer may not read.
fn hardened_app(env: &Env) {
    let app = json!({
        "manifest": {"id": "com.example.hardened", "namespace": "hd", "version": "1.0.0", "name": "Hardened", "engines": {"protocol": "^17"}},
        "objects": [
            {"name": "hd_project", "sharingModel": "private", "fields": {
                "name": {"type": "text", "required": true},
                "budget": {"type": "number"},
                "hidden_ref": {"type": "lookup", "reference": "hd_hidden"}
            }},
            {"name": "hd_task", "sharingModel": "private", "fields": {
                "project": {"type": "master_detail", "reference": "hd_project", "required": true},
                "title": {"type": "text"}
            }},
            {"name": "hd_hidden", "sharingModel": "public_read", "fields": {
                "code": {"type": "text"},
                "project": {"type": "master_detail", "reference": "hd_project"}
            }},
            {"name": "hd_log", "sharingModel": "private", "fields": {
                "topic": {"type": "text"},
                "classified": {"type": "text"},
                "amount": {"type": "number"}
            }}
        ],
        "actions": [
            {"name": "hd_touch", "objectName": "hd_hidden", "label": "Touch", "type": "script", "operation": "update", "patch": {"code": "touched"}}
        ],
        "permissions": [
            {"name": "member", "objects": {
                "hd_project": {"allowCreate": true, "allowRead": true, "allowEdit": true, "allowDelete": true},
                "hd_task": {"allowCreate": true, "allowRead": true, "allowEdit": true, "allowDelete": true},
                "hd_log": {"allowCreate": true, "allowRead": true}
            }, "systemPermissions": ["api_access"]},
            {"name": "insider", "objects": {
                "hd_hidden": {"allowCreate": true, "allowRead": true, "allowEdit": true}
            }},
            {"name": "viewer", "objects": {
                "hd_project": {"allowRead": true, "readScope": "org"},
                "hd_log": {"allowRead": true, "readScope": "org"}
            }, "fields": {"hd_log.classified": {"readable": false, "editable": false}},
            "systemPermissions": ["api_access", "view_audit"]}
        ],
        "x-objectos": {"objects": {"hd_log": {"auditReads": true}}}
    });
    env.write("hard.json", app.to_string());
    env.run(&["build", "hard.json", "-o", "hard-artifact.json"])
        .ok();
    env.run(&["keygen", "-o", "hard-key", "--unencrypted"]).ok();
    env.run(&["sign", "hard-artifact.json", "-k", "hard-key"])
        .ok();
    env.run(&["init"]).ok();
    env.run(&["trust", "add", "hard-key.pub"]).ok();
    env.run(&["apply", "hard-artifact.json", "-y"]).ok();
    env.write("pw", format!("{PASSWORD}\n"));
    env.run(&[
        "bootstrap",
        "--admin-email",
        "admin@example.com",
        "--password-file",
        "pw",
    ])
    .ok();
    for (email, sets) in [
        ("alice@example.com", vec!["member"]),
        ("bob@example.com", vec!["member"]),
        ("ian@example.com", vec!["member", "insider"]),
        ("vera@example.com", vec!["viewer"]),
    ] {
        env.run(&["user", "add", email, "--password-file", "pw"])
            .ok();
        for set in sets {
            env.run(&["permset", "assign", set, email]).ok();
        }
    }
}

fn key(env: &Env, email: &str) -> String {
    env.run(&["apikey", "create", email])
        .ok()
        .stdout
        .trim()
        .to_string()
}

fn create(server: &Server, key: &str, object: &str, body: Value) -> String {
    let (s, body, raw) = server.call(
        "POST",
        &format!("/api/v1/data/{object}"),
        Some(key),
        Some(body),
    );
    assert_eq!(s, 201, "{raw}");
    body["id"].as_str().unwrap().to_string()
}

// --- 1. Forged backups -------------------------------------------------------

/// Unpack a tar into a map of entry → bytes.
fn tar_entries(path: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        out.push((name, bytes));
    }
    out
}

fn write_tar(path: &std::path::Path, entries: &[(String, Vec<u8>)]) {
    let mut out = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        out.append_data(&mut header, name, bytes.as_slice())
            .unwrap();
    }
    out.finish().unwrap();
}

#[test]
fn a_forged_backup_never_puts_an_attackers_key_in_the_trust_store() {
    let env = Env::new();
    hardened_app(&env);
    env.run(&["backup", "-o", "genuine.tar"]).ok();
    // The positive control: the genuine backup restores with the instance's keys.
    env.run(&[
        "--data-dir",
        "r0",
        "restore",
        "genuine.tar",
        "--keys-from",
        "data",
    ])
    .ok();
    env.run(&["--data-dir", "r0", "trust", "list"]).ok();
    // And without a key from outside the backup, nothing is restored.
    let run = env
        .run(&["--data-dir", "r-none", "restore", "genuine.tar"])
        .code(1);
    assert!(run.stderr.contains("--signer"), "{}", run.stderr);
    assert!(!env.path("r-none").exists());

    // The attacker's signing key, trusted by nobody here.
    env.run(&["keygen", "-o", "evil", "--unencrypted"]).ok();
    let evil_pub = env.read("evil.pub");
    let evil_id = evil_pub
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let entries = tar_entries(&env.path("genuine.tar"));

    // (a) An extra trusted key slipped into the archive.
    let mut forged = entries.clone();
    forged.push((
        format!("trust/{evil_id}.pub"),
        evil_pub.clone().into_bytes(),
    ));
    write_tar(&env.path("extra-key.tar"), &forged);
    let run = env
        .run(&[
            "--data-dir",
            "r1",
            "restore",
            "extra-key.tar",
            "--keys-from",
            "data",
        ])
        .code(3);
    assert!(run.stderr.contains("does not list"), "{}", run.stderr);

    // (b) A trusted key's bytes replaced by the attacker's, under the old name.
    let mut forged = entries.clone();
    for (name, bytes) in forged.iter_mut() {
        if name.starts_with("trust/") {
            *bytes = evil_pub.clone().into_bytes();
        }
    }
    write_tar(&env.path("swapped-key.tar"), &forged);
    let run = env
        .run(&[
            "--data-dir",
            "r2",
            "restore",
            "swapped-key.tar",
            "--keys-from",
            "data",
        ])
        .code(3);
    assert!(
        run.stderr
            .contains("not the file its signed manifest describes"),
        "{}",
        run.stderr
    );

    // (c) The checkpoint log or the instance's public key changed.
    for target in ["audit-checkpoints.log", "instance-signing.key.pub"] {
        let mut forged = entries.clone();
        for (name, bytes) in forged.iter_mut() {
            if name == target {
                bytes.extend_from_slice(b"\n");
            }
        }
        write_tar(&env.path("changed.tar"), &forged);
        env.run(&[
            "--data-dir",
            "r3",
            "restore",
            "changed.tar",
            "--keys-from",
            "data",
        ])
        .code(3);
        assert!(!env.path("r3").exists());
    }

    // (d) The attacker rewrites the manifest for their key and signs it with their
    // own key, shipping their key as the instance's: the restorer's key refuses it.
    let mut forged: Vec<(String, Vec<u8>)> = entries
        .iter()
        .filter(|(n, _)| n != "manifest.json" && n != "manifest.json.minisig")
        .cloned()
        .collect();
    forged.push((
        format!("trust/{evil_id}.pub"),
        evil_pub.clone().into_bytes(),
    ));
    for (name, bytes) in forged.iter_mut() {
        if name == "instance-signing.key.pub" {
            *bytes = evil_pub.clone().into_bytes();
        }
    }
    let manifest: Value = serde_json::from_slice(
        &entries
            .iter()
            .find(|(n, _)| n == "manifest.json")
            .unwrap()
            .1,
    )
    .unwrap();
    let mut manifest = manifest.clone();
    let files = manifest["files"].as_object_mut().unwrap();
    for (name, bytes) in &forged {
        use sha2::Digest;
        files.insert(
            name.clone(),
            json!(hex::encode(sha2::Sha256::digest(bytes))),
        );
    }
    let manifest_text = serde_json::to_string_pretty(&manifest).unwrap();
    let evil_key = objectos::crypto::signing::SecretKey::load(&env.read("evil"), None).unwrap();
    let signature = evil_key
        .sign_bytes(manifest_text.as_bytes(), "objectos backup")
        .unwrap();
    forged.push(("manifest.json".into(), manifest_text.into_bytes()));
    forged.push(("manifest.json.minisig".into(), signature.into_bytes()));
    write_tar(&env.path("resigned.tar"), &forged);
    for keys in [
        vec!["--keys-from", "data"],
        vec![
            "--signer",
            "data/instance-signing.key.pub",
            "--keys-from",
            "data",
        ],
    ] {
        let mut args = vec!["--data-dir", "r4", "restore", "resigned.tar"];
        args.extend(keys);
        let run = env.run(&args).code(3);
        assert!(
            run.stderr.contains("was not signed by key"),
            "{}",
            run.stderr
        );
        assert!(!env.path("r4").exists());
    }
}

#[test]
fn an_encrypted_backup_is_checked_against_the_restorers_key_not_its_own() {
    // Two instances in one environment (the victim's and the attacker's), so
    // each has its own SQLite file: this runs on SQLite whatever the suite runs on.
    let env = Env::sqlite();
    hardened_app(&env);
    env.run(&["--data-dir", "victim", "init"]).ok();
    // The positive control: the victim's own encrypted backup, with the
    // victim's key given from outside, restores.
    use age::secrecy::ExposeSecret;
    let identity = age::x25519::Identity::generate();
    env.write(
        "id.txt",
        format!("{}\n", identity.to_string().expose_secret()),
    );
    let recipient = identity.to_public().to_string();
    let recipient = recipient.as_str();
    env.run(&[
        "--data-dir",
        "victim",
        "backup",
        "-o",
        "victim.tar.age",
        "--encrypt-to",
        recipient,
    ])
    .ok();
    env.run(&[
        "--data-dir",
        "back",
        "restore",
        "victim.tar.age",
        "-i",
        "id.txt",
        "--signer",
        "victim/instance-signing.key.pub",
    ])
    .ok();
    // The attack: a whole, self-consistent backup of the attacker's instance
    // (their keys, their trusted signer), encrypted to the victim's recipient,
    // which anyone can do. It vouches for itself, and that is not enough.
    env.run(&["backup", "-o", "evil.tar.age", "--encrypt-to", recipient])
        .ok();
    let run = env
        .run(&[
            "--data-dir",
            "r",
            "restore",
            "evil.tar.age",
            "-i",
            "id.txt",
            "--signer",
            "victim/instance-signing.key.pub",
        ])
        .code(3);
    assert!(
        run.stderr.contains("was not signed by key"),
        "{}",
        run.stderr
    );
    assert!(!env.path("r").exists());
}

#[test]
fn a_key_cannot_pass_as_another_by_claiming_its_id() {
    let env = Env::new();
    hardened_app(&env);
    // A key whose id field is the trusted key's, with the attacker's key bytes.
    env.run(&["keygen", "-o", "evil", "--unencrypted"]).ok();
    let trusted = env.read("hard-key.pub");
    let evil = env.read("evil.pub");
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let trusted_raw = b64.decode(trusted.lines().nth(1).unwrap()).unwrap();
    let mut evil_raw = b64.decode(evil.lines().nth(1).unwrap()).unwrap();
    evil_raw[2..10].copy_from_slice(&trusted_raw[2..10]);
    let impostor = format!("untrusted comment: impostor\n{}\n", b64.encode(&evil_raw));
    env.write("impostor.pub", &impostor);
    // `trust add` refuses to replace the trusted key with it.
    let run = env.run(&["trust", "add", "impostor.pub"]).code(3);
    assert!(run.stderr.contains("already trusted"), "{}", run.stderr);
    // Placed by hand beside it, or any key under a name not its own, the store is
    // refused as a whole.
    for (contents, says) in [
        (impostor.as_str(), "claim id"),
        (evil.as_str(), "not the key its name says"),
    ] {
        env.write("data/trust/0000000000000001.pub", contents);
        let run = env.run(&["serve", "--listen", "127.0.0.1:0"]).code(3);
        assert!(run.stderr.contains(says), "{}", run.stderr);
        env.run(&["apply", "hard-artifact.json", "-y"]).code(3);
        std::fs::remove_file(env.path("data/trust/0000000000000001.pub")).unwrap();
    }
    // Control: the genuine store serves.
    let server = Server::start(&env);
    assert_eq!(server.call("GET", "/readyz", None, None).0, 200);
}

// --- 2. Sign-in bursts -------------------------------------------------------

fn login(base: &str, email: &str, password: &str, xff: Option<&str>) -> u16 {
    let client = reqwest::blocking::Client::new();
    let mut req = client
        .post(format!("{base}/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body(json!({"email": email, "password": password}).to_string());
    if let Some(xff) = xff {
        req = req.header("x-forwarded-for", xff);
    }
    req.send().unwrap().status().as_u16()
}

#[test]
fn a_burst_of_parallel_guesses_is_counted_before_any_password_is_checked() {
    let env = Env::new();
    hardened_app(&env);
    // Two servers on one database (the second through a data dir of its own
    // that links to the first's files, as a second host would share a
    // database): the count lives in the database.
    let one = Server::start(&env);
    std::fs::create_dir(env.path("data2")).unwrap();
    for entry in std::fs::read_dir(env.path("data")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "serve.lock" {
            std::os::unix::fs::symlink(entry.path(), env.path("data2").join(entry.file_name()))
                .unwrap();
        }
    }
    let data2 = env.path("data2").display().to_string();
    let two = Server::start_env(&env, &[], &[("OBJECTOS_DATA_DIR", &data2)]);
    // Control: the right password signs in.
    assert_eq!(login(&one.base, "alice@example.com", PASSWORD, None), 200);
    let attempts = 40;
    let barrier = Arc::new(Barrier::new(attempts));
    let handles: Vec<_> = (0..attempts)
        .map(|i| {
            let base = if i % 2 == 0 {
                one.base.clone()
            } else {
                two.base.clone()
            };
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                login(
                    &base,
                    "alice@example.com",
                    &format!("wrong guess {i}"),
                    None,
                )
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + throttled, attempts, "{statuses:?}");
    // Five free failures, and the sixth that starts the wait: no more were checked.
    assert!(checked <= 6, "{checked} passwords checked: {statuses:?}");
    assert!(throttled >= attempts - 6);
    // The right password right after the burst is not let in either...
    assert_eq!(login(&two.base, "alice@example.com", PASSWORD, None), 429);
    // ...and the audit log agrees: at most six wrong passwords were checked.
    let events = env
        .run(&["--json", "audit", "tail", "-n", "100000"])
        .ok()
        .json();
    let checked_rows = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "auth.login" && e["code"] == "invalid_credentials")
        .count();
    assert!(checked_rows <= 6, "{checked_rows}");
    // A backoff, not a lockout: once the wait is over the owner signs in.
    std::thread::sleep(std::time::Duration::from_millis(1300));
    assert_eq!(login(&one.base, "alice@example.com", PASSWORD, None), 200);
    // Another account from elsewhere was never affected... but the same address
    // has a budget of its own (checked below).
    assert_eq!(login(&one.base, "bob@example.com", PASSWORD, None), 200);
}

#[test]
fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
    let env = Env::new();
    hardened_app(&env);
    // From an untrusted peer, a different X-Forwarded-For on every guess does not
    // make a fresh client: the guesses at one account run out of free failures.
    let server = Server::start(&env);
    let statuses: Vec<u16> = (0..8)
        .map(|i| {
            login(
                &server.base,
                "alice@example.com",
                "guess guess guess",
                Some(&format!("198.51.100.{i}")),
            )
        })
        .collect();
    assert_eq!(&statuses[..6], &[401; 6], "{statuses:?}");
    assert_eq!(statuses[6], 429, "{statuses:?}");
    drop(server);
    // Behind a trusted proxy, each forwarded client has its own budget, and the
    // audit row names the client the proxy saw.
    let env = Env::new();
    hardened_app(&env);
    let server = Server::start_with(&env, &["--trusted-proxy", "127.0.0.1"]);
    for i in 0..8 {
        assert_eq!(
            login(
                &server.base,
                "alice@example.com",
                "guess guess guess",
                Some(&format!("198.51.100.{i}")),
            ),
            401
        );
    }
    let events = env.run(&["--json", "audit", "tail", "-n", "3"]).ok().json();
    assert!(events.to_string().contains("198.51.100.7"), "{events}");
    // A forged entry left of the proxy's is not believed over what it saw.
    for _ in 0..6 {
        login(
            &server.base,
            "bob@example.com",
            "guess guess guess",
            Some("6.6.6.6, 203.0.113.9:4711"),
        );
    }
    assert_eq!(
        login(
            &server.base,
            "bob@example.com",
            "guess guess guess",
            Some("7.7.7.7, 203.0.113.9:4711"),
        ),
        429
    );
}

#[test]
fn guessing_from_many_addresses_never_locks_the_owner_out() {
    let env = Env::new();
    hardened_app(&env);
    let server = Server::start_with(&env, &["--trusted-proxy", "127.0.0.1"]);
    let owner_home = "203.0.113.5";
    // The owner signed in from home before.
    assert_eq!(
        login(
            &server.base,
            "alice@example.com",
            PASSWORD,
            Some(owner_home)
        ),
        200
    );
    // Someone guesses from a dozen addresses, five each: past the account's own
    // free failures, so the account waits.
    let mut checked = 0;
    for a in 0..12 {
        for _ in 0..5 {
            let status = login(
                &server.base,
                "alice@example.com",
                "guess guess guess",
                Some(&format!("198.51.100.{a}")),
            );
            assert!(status == 401 || status == 429, "{status}");
            checked += usize::from(status == 401);
        }
    }
    // Fifty free failures for the account, and the one that starts its wait.
    assert_eq!(checked, 51);
    let fresh = login(
        &server.base,
        "alice@example.com",
        "guess guess guess",
        Some("192.0.2.200"),
    );
    assert_eq!(fresh, 429, "the account itself is waiting");
    // The owner, from home, is not kept out by it.
    assert_eq!(
        login(
            &server.base,
            "alice@example.com",
            PASSWORD,
            Some(owner_home)
        ),
        200
    );
    // Every refusal of one wait leaves one audit row, not one per attempt.
    for _ in 0..20 {
        login(
            &server.base,
            "alice@example.com",
            "guess guess guess",
            Some("192.0.2.201"),
        );
    }
    let events = env
        .run(&["--json", "audit", "tail", "-n", "100000"])
        .ok()
        .json();
    let throttled = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["code"] == "too_many_attempts")
        .count();
    assert!((1..=2).contains(&throttled), "{throttled}");
    // An absurdly long email is refused outright, and leaves nothing behind.
    let long = format!("{}@example.com", "a".repeat(100_000));
    assert_eq!(login(&server.base, &long, "x", None), 400);
}

#[test]
fn one_address_guessing_at_many_accounts_is_slowed_down_and_others_are_not() {
    let env = Env::new();
    hardened_app(&env);
    let server = Server::start_with(&env, &["--trusted-proxy", "127.0.0.1"]);
    let guesser = "198.51.100.66";
    // One wrong password at each of many accounts, real and not: no account
    // reaches its own budget, but the address does (ten free failures, then the
    // one that starts its wait).
    let statuses: Vec<u16> = (0..14)
        .map(|i| {
            let email = if i % 2 == 0 {
                format!("nobody{i}@example.com")
            } else if i == 1 {
                "alice@example.com".to_string()
            } else {
                format!("someone{i}@example.com")
            };
            login(&server.base, &email, "guess guess guess", Some(guesser))
        })
        .collect();
    assert_eq!(&statuses[..11], &[401; 11], "{statuses:?}");
    assert_eq!(&statuses[11..], &[429; 3], "{statuses:?}");
    // The address waits even for a right password...
    assert_eq!(
        login(&server.base, "bob@example.com", PASSWORD, Some(guesser)),
        429
    );
    // ...while the same accounts from another address are not affected.
    assert_eq!(
        login(
            &server.base,
            "bob@example.com",
            PASSWORD,
            Some("203.0.113.77")
        ),
        200
    );
    assert_eq!(
        login(
            &server.base,
            "alice@example.com",
            PASSWORD,
            Some("203.0.113.78")
        ),
        200
    );
    // The refusal is audited with the address it counted.
    let events = env
        .run(&["--json", "audit", "tail", "-n", "100000"])
        .ok()
        .json();
    let throttled: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["code"] == "too_many_attempts")
        .collect();
    assert!(!throttled.is_empty(), "{events}");
    assert!(
        throttled.iter().all(|e| e.to_string().contains(guesser)),
        "{throttled:?}"
    );
}

// --- 3 and 4. Cascades and existence oracles ----------------------------------

#[test]
fn a_cascade_never_removes_a_record_the_caller_could_not_delete() {
    let env = Env::new();
    hardened_app(&env);
    let server = Server::start(&env);
    let (alice, bob, ian) = (
        key(&env, "alice@example.com"),
        key(&env, "bob@example.com"),
        key(&env, "ian@example.com"),
    );
    let project = create(&server, &alice, "hd_project", json!({"name": "P"}));
    // Alice lets Bob and Ian work on it; they add children of their own.
    for who in ["bob@example.com", "ian@example.com"] {
        let (s, _, raw) = server.call(
            "POST",
            &format!("/api/v1/data/hd_project/{project}/shares"),
            Some(&alice),
            Some(json!({"type": "user", "value": who, "accessLevel": "edit"})),
        );
        assert_eq!(s, 201, "{raw}");
    }
    let task = create(
        &server,
        &bob,
        "hd_task",
        json!({"project": project, "title": "Bob's task"}),
    );
    let hidden = create(
        &server,
        &ian,
        "hd_hidden",
        json!({"project": project, "code": "H-1"}),
    );
    for who in ["bob@example.com", "ian@example.com"] {
        server.call(
            "DELETE",
            &format!("/api/v1/data/hd_project/{project}/shares"),
            Some(&alice),
            Some(json!({"type": "user", "value": who})),
        );
    }
    // Alice deletes her project: Bob's private task and Ian's hidden record are
    // not hers to delete, so nothing is deleted, and the refusal names neither.
    let (s, body, raw) = server.call(
        "DELETE",
        &format!("/api/v1/data/hd_project/{project}"),
        Some(&alice),
        None,
    );
    assert_eq!(s, 403, "{raw}");
    assert_eq!(body["error"]["code"], "dependent_records");
    assert!(
        !raw.contains("hd_hidden") && !raw.contains("hd_task"),
        "{raw}"
    );
    for (k, object, id) in [
        (&alice, "hd_project", &project),
        (&bob, "hd_task", &task),
        (&ian, "hd_hidden", &hidden),
    ] {
        assert_eq!(
            server
                .call("GET", &format!("/api/v1/data/{object}/{id}"), Some(k), None)
                .0,
            200,
            "{object} must survive"
        );
    }
    // Bob removes his task; Ian's hidden record (which Ian may not delete either)
    // still blocks the project.
    server.call(
        "DELETE",
        &format!("/api/v1/data/hd_task/{task}"),
        Some(&bob),
        None,
    );
    let (s, _, raw) = server.call(
        "DELETE",
        &format!("/api/v1/data/hd_project/{project}"),
        Some(&alice),
        None,
    );
    assert_eq!(s, 403, "Ian's hidden record still blocks it: {raw}");
    // Positive control: over her own children, Alice's delete cascades.
    let own = create(&server, &alice, "hd_project", json!({"name": "Q"}));
    let own_task = create(
        &server,
        &alice,
        "hd_task",
        json!({"project": own, "title": "t"}),
    );
    let (s, _, raw) = server.call(
        "DELETE",
        &format!("/api/v1/data/hd_project/{own}"),
        Some(&alice),
        None,
    );
    assert_eq!(s, 200, "{raw}");
    assert_eq!(
        server
            .call(
                "GET",
                &format!("/api/v1/data/hd_task/{own_task}"),
                Some(&alice),
                None
            )
            .0,
        404
    );
}

#[test]
fn no_route_names_an_object_the_caller_cannot_read() {
    let env = Env::new();
    hardened_app(&env);
    let server = Server::start(&env);
    let (alice, ian) = (key(&env, "alice@example.com"), key(&env, "ian@example.com"));
    let hidden = create(&server, &ian, "hd_hidden", json!({"code": "H-2"}));
    let project = create(&server, &alice, "hd_project", json!({"name": "P"}));
    // Positive control: Ian, who may read it, sees it everywhere.
    assert_eq!(
        server
            .call("GET", "/api/v1/data/hd_hidden", Some(&ian), None)
            .0,
        200
    );
    let (_, meta, _) = server.call("GET", "/api/v1/meta/objects/hd_project", Some(&ian), None);
    let reference = |meta: &Value| meta["item"]["fields"]["hidden_ref"]["reference"].clone();
    assert_eq!(reference(&meta), "hd_hidden");
    // For Alice, `hd_hidden` answers exactly as a missing object does, on every
    // route that names it...
    let missing = "hd_nothere";
    let same = |method: &str, path: &str, body: Option<Value>| {
        let (s1, _, raw1) = server.call(method, path, Some(&alice), body.clone());
        let (s2, _, raw2) = server.call(
            method,
            &path.replace("hd_hidden", missing),
            Some(&alice),
            body.map(|b| {
                serde_json::from_str(&b.to_string().replace("hd_hidden", missing)).unwrap()
            }),
        );
        assert_eq!(s1, 404, "{method} {path}: {raw1}");
        assert_eq!(
            (s1, raw1.replace("hd_hidden", missing)),
            (s2, raw2),
            "{method} {path}"
        );
    };
    same("GET", "/api/v1/data/hd_hidden", None);
    same("POST", "/api/v1/data/hd_hidden", Some(json!({"code": "x"})));
    same("GET", &format!("/api/v1/data/hd_hidden/{hidden}"), None);
    same(
        "PATCH",
        &format!("/api/v1/data/hd_hidden/{hidden}"),
        Some(json!({"code": "x"})),
    );
    same("DELETE", &format!("/api/v1/data/hd_hidden/{hidden}"), None);
    same(
        "POST",
        &format!("/api/v1/data/hd_hidden/{hidden}/shares"),
        Some(json!({"type": "user", "value": "alice@example.com"})),
    );
    same("GET", "/api/v1/meta/objects/hd_hidden", None);
    same(
        "POST",
        "/api/v1/query",
        Some(json!({"object": "hd_hidden", "where": {"code": "H-2"}})),
    );
    // ...and routes that do not name it never do.
    let never = |method: &str, path: &str, body: Option<Value>, status: u16| {
        let (s, _, raw) = server.call(method, path, Some(&alice), body);
        assert_eq!(s, status, "{method} {path}: {raw}");
        assert!(
            !raw.contains("hd_hidden"),
            "{method} {path} named it: {raw}"
        );
    };
    never("GET", "/api/v1/meta/objects", None, 200);
    never("GET", "/api/v1/meta/objects/hd_project", None, 200);
    let (_, meta, _) = server.call("GET", "/api/v1/meta/objects/hd_project", Some(&alice), None);
    assert_eq!(reference(&meta), Value::Null);
    never(
        "POST",
        "/api/v1/actions/hd_touch",
        Some(json!({"recordId": hidden})),
        404,
    );
    let (_, a, _) = server.call(
        "POST",
        "/api/v1/actions/hd_touch",
        Some(&alice),
        Some(json!({"recordId": hidden})),
    );
    let (_, b, _) = server.call(
        "POST",
        "/api/v1/actions/no_such_action",
        Some(&alice),
        Some(json!({"recordId": hidden})),
    );
    assert_eq!(
        a.to_string().replace("hd_touch", "no_such_action"),
        b.to_string()
    );
    never(
        "POST",
        "/api/v1/data/hd_project",
        Some(json!({"name": "R", "hidden_ref": hidden})),
        400,
    );
    never(
        "PATCH",
        &format!("/api/v1/data/hd_project/{project}"),
        Some(json!({"hidden_ref": hidden})),
        400,
    );
    never(
        "GET",
        "/api/v1/data/hd_project?fields=name,hidden_ref",
        None,
        200,
    );
    // The hidden record was never touched.
    assert_eq!(
        server
            .call(
                "GET",
                &format!("/api/v1/data/hd_hidden/{hidden}"),
                Some(&ian),
                None
            )
            .1["record"]["code"],
        "H-2"
    );
}

// --- 5. Canaries in audited filters and aggregates ---------------------------

#[test]
fn audit_events_never_show_a_viewer_a_value_of_a_field_they_cannot_read() {
    const CANARY: &str = "CANARY-FILTER-5e1d";
    let env = Env::new();
    hardened_app(&env);
    let server = Server::start(&env);
    let (alice, vera) = (
        key(&env, "alice@example.com"),
        key(&env, "vera@example.com"),
    );
    let log = create(
        &server,
        &alice,
        "hd_log",
        json!({"topic": "TOPIC-VISIBLE", "classified": CANARY, "amount": 7}),
    );
    // Alice, who may read `classified`, reads with it in every place a read row
    // records: a filter, a sort, a group and an aggregate.
    let filter = urlenc(&json!({"classified": CANARY}).to_string());
    for path in [
        format!("/api/v1/data/hd_log?filter={filter}"),
        format!("/api/v1/data/hd_log?filter={filter}&sort=-classified"),
        format!("/api/v1/data/hd_log/{log}"),
    ] {
        let (s, _, raw) = server.call("GET", &path, Some(&alice), None);
        assert_eq!(s, 200, "{raw}");
        assert!(raw.contains(CANARY), "alice may read it: {raw}");
    }
    for body in [
        json!({"object": "hd_log", "where": {"classified": {"$in": [CANARY, "x"]}}, "groupBy": ["classified"], "aggregations": [{"function": "count", "alias": "n"}]}),
        json!({"object": "hd_log", "where": {"$or": [{"classified": CANARY}, {"topic": "TOPIC-VISIBLE"}]}, "aggregations": [{"function": "max", "field": "classified", "alias": "m"}]}),
        json!({"object": "hd_log", "where": {"topic": "TOPIC-VISIBLE"}, "aggregations": [{"function": "sum", "field": "amount", "alias": "s"}]}),
    ] {
        let (s, _, raw) = server.call("POST", "/api/v1/query", Some(&alice), Some(body));
        assert_eq!(s, 200, "{raw}");
    }
    // Vera reads the audit log: the record, its topic and the readable filter are
    // there (positive controls); the canary and the hidden field's name are not.
    let (s, _, raw) = server.call("GET", "/api/v1/audit/events?limit=1000", Some(&vera), None);
    assert_eq!(s, 200, "{raw}");
    assert!(!raw.contains(CANARY), "{raw}");
    assert!(!raw.contains("classified"), "{raw}");
    assert!(
        raw.contains(&log),
        "the read rows name the record vera may read"
    );
    assert!(
        raw.contains("TOPIC-VISIBLE"),
        "a filter on a readable field is shown"
    );
    assert!(raw.contains("\"redacted\""), "{raw}");
    // The host operator's full trail has it all (the canary was really audited).
    let tail = env
        .run(&["--json", "audit", "tail", "-n", "1000"])
        .ok()
        .stdout;
    assert!(tail.contains(CANARY));
    // And the canary is still where it was put.
    assert_eq!(
        sql_query(&env.db(), "SELECT classified FROM rec_hd_log")[0][0],
        CANARY
    );
}

// --- 6. The stored artifact edited behind the tool's back ---------------------

#[test]
fn an_artifact_edited_in_the_database_is_never_enforced() {
    // Tampering through SQLite's own catalog and syntax; tests/it/postgres.rs
    // does the same to PostgreSQL: this runs on SQLite whatever the suite runs on.
    let env = Env::sqlite();
    hardened_app(&env);
    let (alice, bob) = (key(&env, "alice@example.com"), key(&env, "bob@example.com"));
    let server = Server::start(&env);
    let project = create(&server, &alice, "hd_project", json!({"name": "Alice's"}));
    let bobs_view = |server: &Server| {
        server
            .call(
                "GET",
                &format!("/api/v1/data/hd_project/{project}"),
                Some(&bob),
                None,
            )
            .0
    };
    assert_eq!(bobs_view(&server), 404, "control: private to alice");
    // Open the project to everyone, in the stored bytes only (past the guard that
    // keeps applied artifacts immutable).
    let widen = r#"DROP TRIGGER objectos_artifacts_no_update; UPDATE objectos_artifacts SET bytes = CAST(replace(CAST(bytes AS TEXT), '"name":"hd_project","ownership":"user","sharingModel":"private"', '"name":"hd_project","ownership":"user","sharingModel":"public_read"') AS BLOB)"#;
    sql(&env.db(), widen);
    let stored = sql_query(
        &env.db(),
        "SELECT CAST(bytes AS TEXT) FROM objectos_artifacts",
    )[0][0]
        .clone();
    assert!(
        stored.contains(r#""name":"hd_project","ownership":"user","sharingModel":"public_read""#),
        "the edit took"
    );
    // The running server keeps enforcing what it verified.
    assert_eq!(bobs_view(&server), 404);
    drop(server);
    // Nothing that starts now enforces the edited bytes.
    let run = env.run(&["serve", "--listen", "127.0.0.1:0"]).code(3);
    assert!(run.stderr.contains("does not verify"), "{}", run.stderr);
    env.run(&["export", "hd_project", "--as", "bob@example.com"])
        .code(3);
    env.run(&["import", "hd_project", "-", "--as", "bob@example.com"])
        .code(3);
    env.run(&[
        "transfer",
        "--from",
        "alice@example.com",
        "--to",
        "bob@example.com",
    ])
    .code(3);
    let doctor = env.run(&["--json", "doctor"]).code(1).json();
    let artifact = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "artifact")
        .unwrap()
        .clone();
    assert_eq!(artifact["status"], "fail", "{artifact}");
    // Recomputing the recorded digest too does not help: the signature covers it.
    let bytes = sql_query(
        &env.db(),
        "SELECT CAST(bytes AS TEXT) FROM objectos_artifacts",
    )[0][0]
        .clone();
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(bytes.as_bytes()));
    sql(
        &env.db(),
        &format!(
            "DROP TRIGGER objectos_artifacts_no_update; UPDATE objectos_artifacts SET sha256 = '{digest}'"
        ),
    );
    let run = env.run(&["serve", "--listen", "127.0.0.1:0"]).code(3);
    assert!(run.stderr.contains("bad signature"), "{}", run.stderr);
    // Applying the genuine artifact again repairs it.
    env.run(&["apply", "hard-artifact.json", "-y"]).ok();
    let server = Server::start(&env);
    assert_eq!(bobs_view(&server), 404);
}

// --- 7. Dropped audit guards ---------------------------------------------------

#[test]
fn dropped_audit_guards_are_detected_said_loudly_and_put_back() {
    // Tampering through SQLite's own catalog and syntax; tests/it/postgres.rs
    // does the same to PostgreSQL: this runs on SQLite whatever the suite runs on.
    let env = Env::sqlite();
    hardened_app(&env);
    env.run(&["audit", "verify"]).ok();
    env.run(&["doctor"]).ok();
    // Dropped (and one replaced by a guard that guards nothing) behind its back.
    sql(
        &env.db(),
        "DROP TRIGGER objectos_audit_no_update; DROP TRIGGER objectos_audit_no_delete;
         CREATE TRIGGER objectos_audit_no_delete BEFORE DELETE ON objectos_audit WHEN 0 BEGIN SELECT 1; END;",
    );
    assert!(
        try_sql(
            &env.db(),
            "UPDATE objectos_audit SET code = code WHERE seq = 1"
        )
        .is_ok()
    );
    let doctor = env.run(&["--json", "doctor"]).code(1);
    assert!(doctor.stderr.contains("TAMPERING"), "{}", doctor.stderr);
    let audit = doctor.json()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "audit")
        .unwrap()
        .clone();
    assert_eq!(audit["status"], "fail", "{audit}");
    // Back in place: the database refuses again.
    let err = try_sql(
        &env.db(),
        "UPDATE objectos_audit SET code = code WHERE seq = 1",
    )
    .unwrap_err();
    assert!(err.contains("immutable"), "{err}");
    let err = try_sql(&env.db(), "DELETE FROM objectos_audit WHERE seq = 1").unwrap_err();
    assert!(err.contains("immutable"), "{err}");
    // The finding stays in the chain: later verifications pass, and say so.
    let run = env.run(&["--json", "audit", "verify"]).ok();
    assert!(run.stderr.contains("put back before"), "{}", run.stderr);
    assert_eq!(
        run.json()["guards_restored_at"].as_array().unwrap().len(),
        1
    );
    let events = env.run(&["--json", "audit", "tail", "-n", "5"]).ok().json();
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "audit.guards_restored" && e["code"] == "tampering_detected")
    );
}

// --- 8. Oversized queries ------------------------------------------------------

#[test]
fn oversized_queries_get_a_clear_4xx_naming_the_limit() {
    let env = Env::new();
    hardened_app(&env);
    let server = Server::start(&env);
    let alice = key(&env, "alice@example.com");
    create(
        &server,
        &alice,
        "hd_project",
        json!({"name": "P", "budget": 3}),
    );
    let in_list = |n: usize| -> Vec<Value> { (0..n).map(|i| json!(format!("v{i}"))).collect() };
    let query = |body: Value| server.call("POST", "/api/v1/query", Some(&alice), Some(body));
    let expect = |(s, body, raw): (u16, Value, String), status: u16, limit: &str| {
        assert_eq!(s, status, "{raw}");
        let code = if status == 413 {
            "body_too_large"
        } else {
            "limit_exceeded"
        };
        assert_eq!(body["error"]["code"], code, "{raw}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(limit),
            "{raw}"
        );
    };
    // Positive control: five lists of a thousand values (5,000 in all) answer.
    let five: Vec<Value> = (0..5)
        .map(|_| json!({"name": {"$in": in_list(1000)}}))
        .collect();
    let (s, _, raw) = query(json!({"object": "hd_project", "where": {"$or": five}}));
    assert_eq!(s, 200, "{raw}");
    // Dozens of lists of a thousand: refused by the total, not a 500.
    let many: Vec<Value> = (0..40)
        .map(|_| json!({"name": {"$in": in_list(1000)}}))
        .collect();
    expect(
        query(json!({"object": "hd_project", "where": {"$or": many}})),
        400,
        "query_values",
    );
    expect(
        query(json!({"object": "hd_project", "where": {"name": {"$in": in_list(1001)}}})),
        400,
        "in_values",
    );
    let mut deep = json!({"name": "x"});
    for _ in 0..20 {
        deep = json!({"$not": deep});
    }
    expect(
        query(json!({"object": "hd_project", "where": deep})),
        400,
        "filter_depth",
    );
    expect(
        query(json!({"object": "hd_project", "limit": 1001})),
        400,
        "page",
    );
    let fields: Vec<String> = (0..101).map(|i| format!("f{i}")).collect();
    expect(
        query(json!({"object": "hd_project", "fields": fields})),
        400,
        "fields",
    );
    let mut nested = json!(1);
    for _ in 0..40 {
        nested = json!([nested]);
    }
    expect(
        query(json!({"object": "hd_project", "where": {}, "x": nested})),
        400,
        "json_depth",
    );
    let huge = "x".repeat(1024 * 1024 + 10);
    expect(
        server.call(
            "POST",
            "/api/v1/data/hd_project",
            Some(&alice),
            Some(json!({"name": huge})),
        ),
        413,
        "body_bytes",
    );
    expect(
        server.call(
            "GET",
            "/api/v1/data/hd_project?limit=5000",
            Some(&alice),
            None,
        ),
        400,
        "page",
    );
    // Each further limit, just past it and (positive control) at it.
    let max_offset = objectos::limits::MAX_OFFSET;
    expect(
        query(json!({"object": "hd_project", "offset": max_offset + 1})),
        400,
        "offset",
    );
    let (s, _, raw) = query(json!({"object": "hd_project", "offset": max_offset}));
    assert_eq!(s, 200, "{raw}");
    let max_groups = objectos::limits::MAX_GROUPS;
    let grouped = |limit: u64| {
        json!({"object": "hd_project", "groupBy": ["name"],
               "aggregations": [{"function": "count", "alias": "n"}], "limit": limit})
    };
    expect(query(grouped(max_groups + 1)), 400, "groups");
    let (s, _, raw) = query(grouped(max_groups));
    assert_eq!(s, 200, "{raw}");
    let nodes = objectos::limits::MAX_FILTER_NODES;
    let conditions = |n: usize| -> Value {
        json!({"$or": (0..n).map(|i| json!({"name": format!("n{i}")})).collect::<Vec<_>>()})
    };
    // An `$or` of n equalities counts 1 + 2n conditions (each test and its
    // value): 255 are 511, within 512; 256 are 513, past it.
    expect(
        query(json!({"object": "hd_project", "where": conditions(nodes / 2)})),
        400,
        "filter_conditions",
    );
    let (s, _, raw) = query(json!({"object": "hd_project", "where": conditions(nodes / 2 - 1)}));
    assert_eq!(s, 200, "{raw}");
    // A filter given as JSON text (as a list's `?filter=` or a query body's
    // string `filter` carries it) is measured before it is parsed.
    let text_limit = objectos::limits::MAX_FILTER_TEXT_BYTES;
    // `{"name":"…"}` is 11 bytes and its text: one byte past the limit, then
    // exactly at it.
    let long_filter = json!({"name": "x".repeat(text_limit - 10)}).to_string();
    assert_eq!(long_filter.len(), text_limit + 1);
    expect(
        query(json!({"object": "hd_project", "filter": long_filter})),
        400,
        "filter_text_bytes",
    );
    let short_filter = json!({"name": "x".repeat(text_limit - 11)}).to_string();
    assert_eq!(short_filter.len(), text_limit);
    let (s, _, raw) = query(json!({"object": "hd_project", "filter": short_filter}));
    assert_eq!(s, 200, "{}", &raw[..raw.len().min(300)]);
    let vera = key(&env, "vera@example.com");
    let audit_page = objectos::limits::MAX_AUDIT_PAGE;
    expect(
        server.call(
            "GET",
            &format!("/api/v1/audit/events?limit={}", audit_page + 1),
            Some(&vera),
            None,
        ),
        400,
        "audit_page",
    );
    let (s, _, raw) = server.call(
        "GET",
        &format!("/api/v1/audit/events?limit={audit_page}"),
        Some(&vera),
        None,
    );
    assert_eq!(s, 200, "{raw}");
}
