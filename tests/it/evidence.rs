//! Audit evidence: `audit export`, `audit verify-archive` and `audit archive`
//! checked with the stock tools an auditor uses, against a tamper corpus (each
//! case caught for its own reason), for determinism, for all-or-nothing
//! archiving, and the checkpoint log's chain across concurrent writers.

use std::path::Path;

use serde_json::{Value, json};
use sha2::Digest;

use crate::store::ready;
use crate::util::*;

#[path = "../../benches/audit/harness.rs"]
mod harness;

/// A data dir with the CRM applied and a few more rows.
fn evidence_env() -> Env {
    let env = Env::new();
    ready(&env);
    for i in 0..6 {
        env.run(&["team", "add", &format!("team{i}")]).ok();
    }
    env
}

fn head(env: &Env) -> i64 {
    env.run(&["--json", "audit", "verify"]).ok().json()["head_seq"]
        .as_i64()
        .unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The entries of a tar, in order.
fn read_tar(path: &Path) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            (name, bytes)
        })
        .collect()
}

/// Write a tar with raw headers, as an attacker would: any name, any type.
fn write_raw_tar(path: &Path, entries: &[(String, tar::EntryType, Vec<u8>)]) {
    let mut out = Vec::new();
    for (name, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        if *kind == tar::EntryType::Symlink {
            h.set_link_name("/etc/passwd").unwrap();
        }
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    std::fs::write(path, out).unwrap();
}

fn write_tar(path: &Path, entries: &[(String, Vec<u8>)]) {
    let typed: Vec<_> = entries
        .iter()
        .map(|(n, b)| (n.clone(), tar::EntryType::Regular, b.clone()))
        .collect();
    write_raw_tar(path, &typed);
}

fn entry<'a>(entries: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    &entries.iter().find(|(n, _)| n == name).unwrap().1
}

fn set_entry(entries: &mut [(String, Vec<u8>)], name: &str, bytes: Vec<u8>) {
    entries.iter_mut().find(|(n, _)| n == name).unwrap().1 = bytes;
}

/// `audit verify-archive --json`, its exit code and document.
fn verify_archive(env: &Env, file: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["--json", "audit", "verify-archive", file];
    args.extend_from_slice(extra);
    let run = env.run(&args);
    let doc = run.json();
    (run.code, doc)
}

fn codes(doc: &Value) -> Vec<String> {
    doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap().to_string())
        .collect()
}

const KEY: &str = "data/instance-signing.key.pub";

// ------------------------------------------------------------------ stock tools

#[test]
fn an_archive_verifies_with_the_stock_tools_and_its_readme_recipe() {
    let env = evidence_env();
    for tool in [
        "age",
        "age-keygen",
        "tar",
        "sha256sum",
        "minisign",
        "ssh-keygen",
    ] {
        if !have_tool(tool) {
            return;
        }
    }
    env.tool("age-keygen", &["-o", "auditor.key"]).ok();
    let recipient = env
        .read("auditor.key")
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    env.tool(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "auditor",
            "-f",
            "auditor_ssh",
        ],
    )
    .ok();
    env.write(
        "recipients.txt",
        format!("# the auditors\n{}", env.read("auditor_ssh.pub")),
    );
    let to = head(&env);
    let doc = env
        .run(&[
            "--json",
            "audit",
            "export",
            "--from",
            "1",
            "--to",
            &to.to_string(),
            "-o",
            "audit.tar.age",
            "--encrypt-to",
            &recipient,
            "-R",
            "recipients.txt",
        ])
        .ok()
        .json();
    assert_eq!(doc["format"], "objectos.audit.export/1");
    assert_eq!(doc["count"], to);
    assert_eq!(doc["recipients"], 2);
    assert_eq!(doc["encrypted"], true);
    // The file is what the report says it is.
    assert_eq!(
        sha256_hex(&std::fs::read(env.path("audit.tar.age")).unwrap()),
        doc["sha256"]
    );
    // 1. age decrypts it, with the X25519 identity and with the SSH key.
    env.tool(
        "age",
        &[
            "-d",
            "-i",
            "auditor.key",
            "-o",
            "audit.tar",
            "audit.tar.age",
        ],
    )
    .ok();
    env.tool(
        "age",
        &[
            "-d",
            "-i",
            "auditor_ssh",
            "-o",
            "audit-ssh.tar",
            "audit.tar.age",
        ],
    )
    .ok();
    assert_eq!(
        std::fs::read(env.path("audit.tar")).unwrap(),
        std::fs::read(env.path("audit-ssh.tar")).unwrap()
    );
    // 2. GNU tar extracts it; the entries are sorted, owned by 0, dated alike.
    let listing = env.tool("tar", &["-tvf", "audit.tar"]).ok().stdout;
    let names: Vec<&str> = listing
        .lines()
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "README.txt",
            "SHA256SUMS",
            "SHA256SUMS.minisig",
            "checkpoints.log",
            "events.jsonl",
            "manifest.json"
        ]
    );
    assert!(listing.lines().all(|l| l.contains(" 0/0 ")), "{listing}");
    std::fs::create_dir(env.path("x")).unwrap();
    env.tool("tar", &["-xf", "audit.tar", "-C", "x"]).ok();
    // 3. minisign checks the signature with the instance's public key.
    let signed = env
        .tool(
            "minisign",
            &["-Vm", "x/SHA256SUMS", "-p", "data/instance-signing.key.pub"],
        )
        .ok();
    assert!(signed.stdout.contains("verified"), "{}", signed.stdout);
    // A key that did not sign it does not verify it.
    env.run(&["keygen", "-o", "other", "--unencrypted"]).ok();
    assert_ne!(
        env.tool("minisign", &["-Vm", "x/SHA256SUMS", "-p", "other.pub"])
            .code,
        0
    );
    // 4. sha256sum checks every file.
    let sums = env
        .tool("sh", &["-c", "cd x && sha256sum -c SHA256SUMS"])
        .ok()
        .stdout;
    for name in [
        "README.txt",
        "checkpoints.log",
        "events.jsonl",
        "manifest.json",
    ] {
        assert!(sums.contains(&format!("{name}: OK")), "{sums}");
    }
    // The events are the rows, in order, and the manifest says so.
    let events = env.read("x/events.jsonl");
    assert_eq!(events.lines().count() as i64, to);
    let manifest: Value = serde_json::from_str(&env.read("x/manifest.json")).unwrap();
    assert_eq!(manifest["count"], to);
    assert_eq!(manifest["range"]["first_seq"], 1);
    assert_eq!(manifest["first_prev_hash"], "0".repeat(64));
    assert_eq!(
        manifest["instance"]["signing_key"]["public_key"],
        env.read(KEY).lines().nth(1).unwrap()
    );
    assert_eq!(manifest["tool"]["version"], env!("CARGO_PKG_VERSION"));
    // 5. The README's own recipe re-walks the chain with Python alone.
    if have_tool("python3") {
        let readme = env.read("x/README.txt");
        let script: String = readme
            .lines()
            .skip_while(|l| !l.contains("import hashlib"))
            .take_while(|l| !l.starts_with("6."))
            .map(|l| l.strip_prefix("       ").unwrap_or(l).to_string() + "\n")
            .collect();
        env.write("x/chain.py", script);
        let run = env.tool("sh", &["-c", "cd x && python3 chain.py"]).ok();
        assert!(
            run.stdout.contains(&format!("{to}/{to} events valid")),
            "{}",
            run.stdout
        );
        // And it catches an altered event.
        let altered = events.replacen("\"team.add\"", "\"team.remove\"", 1);
        std::fs::write(env.path("x/events.jsonl"), altered).unwrap();
        let run = env.tool("sh", &["-c", "cd x && python3 chain.py"]);
        assert_ne!(run.code, 0);
        assert!(run.stderr.contains("the chain breaks"), "{}", run.stderr);
    }
    // And objectos verifies it, decrypting it itself.
    let run = env
        .run(&[
            "audit",
            "verify-archive",
            "audit.tar.age",
            "-i",
            "auditor.key",
            "-p",
            KEY,
        ])
        .ok();
    assert!(
        run.stdout.contains(&format!("{to}/{to} events valid")),
        "{}",
        run.stdout
    );
    // The export is audited; its row falls after the range.
    let rows = env.run(&["--json", "audit", "tail", "-n", "1"]).ok().json();
    let row = &rows["events"][0];
    assert_eq!(row["action"], "audit.export");
    assert_eq!(row["seq"], to + 1);
    assert_eq!(row["changes"]["last_seq"], to);
    assert_eq!(row["changes"]["sha256"], doc["sha256"]);
}

// ------------------------------------------------------------------ determinism

#[test]
fn exports_of_the_same_range_are_byte_identical_and_a_signed_one_differs_only_in_its_signature() {
    let env = evidence_env();
    let to = head(&env).to_string();
    let export = |file: &str, extra: &[&str]| {
        let mut args = vec!["audit", "export", "--from", "2", "--to", &to, "-o", file];
        args.extend_from_slice(extra);
        env.run(&args).ok();
    };
    export("u1.tar", &["--no-sign"]);
    // Rows and checkpoints written since (the first export's own) fall after the range.
    env.run(&["team", "add", "later"]).ok();
    export("u2.tar", &["--no-sign"]);
    let u1 = std::fs::read(env.path("u1.tar")).unwrap();
    assert_eq!(u1, std::fs::read(env.path("u2.tar")).unwrap());
    // Standard output gives the same bytes.
    let piped = env
        .cmd()
        .args([
            "audit",
            "export",
            "--from",
            "2",
            "--to",
            &to,
            "-o",
            "-",
            "--no-sign",
        ])
        .output()
        .unwrap();
    assert!(piped.status.success());
    assert_eq!(piped.stdout, u1);
    // Two signed exports: every entry alike but the signature.
    export("s1.tar", &[]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    export("s2.tar", &[]);
    let (s1, s2) = (read_tar(&env.path("s1.tar")), read_tar(&env.path("s2.tar")));
    assert_eq!(s1.len(), 6);
    for ((n1, b1), (n2, b2)) in s1.iter().zip(&s2) {
        assert_eq!(n1, n2);
        if n1 == "SHA256SUMS.minisig" {
            assert_ne!(b1, b2, "the signatures carry their time");
        } else {
            assert_eq!(b1, b2, "{n1}");
        }
    }
    // The unsigned one is the signed one without its signature.
    let unsigned = read_tar(&env.path("u1.tar"));
    let without: Vec<_> = s1
        .into_iter()
        .filter(|(n, _)| n != "SHA256SUMS.minisig")
        .collect();
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|e| e.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&unsigned), names(&without));
    // An unsigned archive's origin cannot be verified, whatever key is given.
    let (code, doc) = verify_archive(&env, "u1.tar", &["-p", KEY]);
    assert_eq!(code, 3);
    assert_eq!(codes(&doc), ["unsigned"]);
    assert_eq!(doc["events_valid"], doc["events"]);
}

// ------------------------------------------------------------------ trust

#[test]
fn an_archive_never_vouches_for_itself() {
    let env = evidence_env();
    env.run(&["audit", "export", "-o", "a.tar"]).ok();
    // Without -p or --after: origin unverified, exit 3, though all else holds.
    let run = env.run(&["audit", "verify-archive", "a.tar"]).code(3);
    assert!(run.stderr.contains("origin unverified"), "{}", run.stderr);
    let (code, doc) = verify_archive(&env, "a.tar", &[]);
    assert_eq!(code, 3);
    assert_eq!(codes(&doc), ["origin_unverified"]);
    assert_eq!(doc["signature"]["status"], "origin_unverified");
    assert_eq!(doc["events_valid"], doc["events_expected"]);
    // With the instance's key it verifies (the positive control).
    let (code, doc) = verify_archive(&env, "a.tar", &["-p", KEY]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["signature"]["status"], "verified");
    assert!(doc["checkpoints"].as_u64().unwrap() > 0, "{doc}");
    // Another key named with -p refuses it.
    env.run(&["keygen", "-o", "other", "--unencrypted"]).ok();
    let (code, doc) = verify_archive(&env, "a.tar", &["-p", "other.pub"]);
    assert_eq!(code, 3);
    assert_eq!(codes(&doc), ["untrusted_signer"]);
    // Signed with --sign-key: verified with that key, the instance's checkpoints
    // still checked with the instance key the signed manifest names.
    env.run(&["audit", "export", "-o", "b.tar", "--sign-key", "other"])
        .ok();
    let (code, doc) = verify_archive(&env, "b.tar", &["-p", "other.pub"]);
    assert_eq!(code, 0, "{doc}");
    let (code, doc) = verify_archive(&env, "b.tar", &["-p", KEY]);
    assert_eq!(
        (code, codes(&doc)),
        (3, vec!["untrusted_signer".to_string()])
    );
}

// ------------------------------------------------------------------ the tamper corpus

/// Re-chain events from `from` (0-based line) on and re-sign as an insider
/// holding `signer` (not the instance's key), carrying that key inside.
fn insider_rewrite(env: &Env, entries: &mut [(String, Vec<u8>)], signer_file: &str) {
    use objectos::crypto::canonical;
    let text = String::from_utf8(entry(entries, "events.jsonl").to_vec()).unwrap();
    let mut prev = String::new();
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut event: Value = serde_json::from_str(line).unwrap();
        if i == 0 {
            prev = event["prev_hash"].as_str().unwrap().to_string();
        }
        if i == 2 {
            event["action"] = json!("user.disable");
        }
        event["prev_hash"] = json!(prev);
        event.as_object_mut().unwrap().remove("hash");
        let mut sha = sha2::Sha256::new();
        sha.update(hex::decode(&prev).unwrap());
        sha.update(canonical::to_vec(&event).unwrap());
        prev = hex::encode(sha.finalize());
        event["hash"] = json!(prev);
        lines.push(canonical::to_string(&event).unwrap());
    }
    let events = lines.join("\n") + "\n";
    let key = objectos::crypto::signing::SecretKey::load(&env.read(signer_file), None).unwrap();
    let info = json!({"key_id": key.public.id.to_string(), "public_key": key.public.base64});
    let mut manifest: Value = serde_json::from_slice(entry(entries, "manifest.json")).unwrap();
    manifest["last_hash"] = json!(prev);
    manifest["signer"] = info.clone();
    manifest["instance"]["signing_key"] = info;
    manifest["checkpoints"] = json!(0);
    let readme = entry(entries, "README.txt").to_vec();
    for (name, bytes) in [
        ("events.jsonl", events.as_bytes()),
        ("checkpoints.log", b"".as_slice()),
        ("README.txt", &readme),
    ] {
        manifest["files"][name] = json!({"sha256": sha256_hex(bytes), "size": bytes.len()});
    }
    let manifest_text = serde_json::to_string_pretty(&manifest).unwrap() + "\n";
    let sums = format!(
        "{}  README.txt\n{}  checkpoints.log\n{}  events.jsonl\n{}  manifest.json\n",
        sha256_hex(&readme),
        sha256_hex(b""),
        sha256_hex(events.as_bytes()),
        sha256_hex(manifest_text.as_bytes())
    );
    let signature = key.sign_bytes(sums.as_bytes(), "insider").unwrap();
    set_entry(entries, "events.jsonl", events.into_bytes());
    set_entry(entries, "checkpoints.log", Vec::new());
    set_entry(entries, "manifest.json", manifest_text.into_bytes());
    set_entry(entries, "SHA256SUMS", sums.into_bytes());
    set_entry(entries, "SHA256SUMS.minisig", signature.into_bytes());
}

#[test]
fn every_tampering_is_caught_for_its_own_reason() {
    let env = evidence_env();
    let to = head(&env);
    env.run(&[
        "audit",
        "export",
        "--from",
        "1",
        "--to",
        &to.to_string(),
        "-o",
        "a.tar",
    ])
    .ok();
    let pristine = read_tar(&env.path("a.tar"));
    let events: Vec<String> = String::from_utf8(entry(&pristine, "events.jsonl").to_vec())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let with_events = |lines: &[String]| {
        let mut e = pristine.clone();
        set_entry(
            &mut e,
            "events.jsonl",
            (lines.join("\n") + "\n").into_bytes(),
        );
        e
    };
    let check = |name: &str, entries: &[(String, Vec<u8>)], extra: &[&str]| -> Value {
        let file = format!("{name}.tar");
        write_tar(&env.path(&file), entries);
        let mut args = vec!["-p", KEY];
        args.extend_from_slice(extra);
        let (code, doc) = verify_archive(&env, &file, &args);
        assert_eq!(code, 3, "{name} must not verify: {doc}");
        assert_eq!(doc["ok"], false, "{name}");
        doc
    };
    let has = |doc: &Value, code: &str, seq: Option<i64>| {
        assert!(
            doc["problems"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["code"] == code && seq.is_none_or(|s| p["seq"] == s)),
            "expected {code} at {seq:?}: {doc:#}"
        );
    };

    // The untouched entries, written the same way, verify: the harness itself
    // breaks nothing.
    write_tar(&env.path("same.tar"), &pristine);
    let (code, doc) = verify_archive(&env, "same.tar", &["-p", KEY]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["events_valid"], to);

    // An event edited (seq 4): its hash no longer matches, nor the checksum.
    let mut lines = events.clone();
    lines[3] = lines[3].replacen("\"outcome\":\"success\"", "\"outcome\":\"denied\"", 1);
    assert_ne!(lines[3], events[3]);
    let doc = check("edited", &with_events(&lines), &[]);
    has(&doc, "event_altered", Some(4));
    has(&doc, "checksum_mismatch", None);
    assert_eq!(doc["broken"]["seq"], 4);
    assert_eq!(doc["events_valid"], 3);

    // An event removed (seq 5).
    let mut lines = events.clone();
    lines.remove(4);
    let doc = check("removed", &with_events(&lines), &[]);
    has(&doc, "event_missing", Some(5));
    assert_eq!(doc["broken"]["seq"], 5);

    // An event duplicated (seq 5 twice).
    let mut lines = events.clone();
    lines.insert(5, events[4].clone());
    let doc = check("duplicated", &with_events(&lines), &[]);
    has(&doc, "event_duplicated", Some(5));

    // Two events reordered (seqs 5 and 6).
    let mut lines = events.clone();
    lines.swap(4, 5);
    let doc = check("reordered", &with_events(&lines), &[]);
    has(&doc, "events_out_of_order", Some(5));
    assert_eq!(doc["broken"]["code"], "events_out_of_order");

    // The manifest edited: its checksum fails, and it contradicts the events.
    let mut e = pristine.clone();
    let manifest = String::from_utf8(entry(&e, "manifest.json").to_vec()).unwrap();
    let edited = manifest.replacen(
        &format!("\"count\": {to}"),
        &format!("\"count\": {}", to + 1),
        1,
    );
    assert_ne!(edited, manifest);
    set_entry(&mut e, "manifest.json", edited.into_bytes());
    let doc = check("manifest", &e, &[]);
    has(&doc, "checksum_mismatch", None);
    has(&doc, "manifest_mismatch", None);
    assert!(
        doc["problems"]
            .to_string()
            .contains("`manifest.json` does not match"),
        "{doc}"
    );

    // A checksum edited: SHA256SUMS is no longer what was signed.
    let mut e = pristine.clone();
    let sums = String::from_utf8(entry(&e, "SHA256SUMS").to_vec()).unwrap();
    let flipped: String = sums
        .char_indices()
        .map(|(i, c)| {
            if i == 0 {
                if c == 'a' { 'b' } else { 'a' }
            } else {
                c
            }
        })
        .collect();
    set_entry(&mut e, "SHA256SUMS", flipped.into_bytes());
    let doc = check("checksum", &e, &[]);
    has(&doc, "bad_signature", None);
    assert!(
        doc["problems"].to_string().contains("is not what key"),
        "{doc}"
    );

    // The signature edited.
    let mut e = pristine.clone();
    let sig = String::from_utf8(entry(&e, "SHA256SUMS.minisig").to_vec()).unwrap();
    let mut lines: Vec<String> = sig.lines().map(str::to_string).collect();
    let mid = lines[1].len() / 2;
    let c = lines[1].as_bytes()[mid];
    lines[1].replace_range(mid..mid + 1, if c == b'A' { "B" } else { "A" });
    set_entry(
        &mut e,
        "SHA256SUMS.minisig",
        (lines.join("\n") + "\n").into_bytes(),
    );
    let doc = check("signature", &e, &[]);
    has(&doc, "bad_signature", None);

    // The signature made by another key (the manifest unchanged).
    env.run(&["keygen", "-o", "insider", "--unencrypted"]).ok();
    let insider = objectos::crypto::signing::SecretKey::load(&env.read("insider"), None).unwrap();
    let mut e = pristine.clone();
    let resigned = insider
        .sign_bytes(entry(&e, "SHA256SUMS"), "another")
        .unwrap();
    set_entry(&mut e, "SHA256SUMS.minisig", resigned.into_bytes());
    let doc = check("other-key", &e, &[]);
    has(&doc, "untrusted_signer", None);

    // An insider edits an event, re-chains and re-signs everything with a key
    // that is not the instance's, and ships that key inside as the instance's:
    // the chain holds, the signature by the key you trust does not.
    let mut e = pristine.clone();
    insider_rewrite(&env, &mut e, "insider");
    let doc = check("insider", &e, &[]);
    assert_eq!(codes(&doc), ["untrusted_signer"], "{doc}");
    assert_eq!(doc["events_valid"], to, "the rewritten chain is whole");
    write_tar(&env.path("insider-alone.tar"), &e);
    let (code, doc) = verify_archive(&env, "insider-alone.tar", &[]);
    assert_eq!(
        (code, codes(&doc)),
        (3, vec!["origin_unverified".to_string()])
    );
    // The insider's own key inside is no help to them.
    let (code, doc) = verify_archive(&env, "insider-alone.tar", &["-p", "insider.pub"]);
    assert_eq!(
        (code, doc["ok"].clone()),
        (0, json!(true)),
        "with the insider's key, it is the insider's archive"
    );

    // The tar truncated: inside an entry, and at an entry's end.
    let bytes = std::fs::read(env.path("a.tar")).unwrap();
    let events_at = bytes
        .windows(b"events.jsonl".len())
        .position(|w| w == b"events.jsonl")
        .unwrap();
    std::fs::write(env.path("cut.tar"), &bytes[..events_at + 512 + 700]).unwrap();
    let (code, doc) = verify_archive(&env, "cut.tar", &["-p", KEY]);
    assert_eq!(code, 3);
    has(&doc, "truncated", None);
    let manifest_at = bytes
        .windows(b"manifest.json".len())
        .rposition(|w| w == b"manifest.json")
        .unwrap();
    std::fs::write(env.path("cut-at-entry.tar"), &bytes[..manifest_at]).unwrap();
    let (code, doc) = verify_archive(&env, "cut-at-entry.tar", &["-p", KEY]);
    assert_eq!(code, 3);
    has(&doc, "incomplete", None);
    assert!(
        doc["problems"].to_string().contains("manifest.json"),
        "{doc}"
    );

    // Entries that climb out, are absolute, or are links: refused before a
    // byte is used.
    for (name, kind, what) in [
        ("../events.jsonl", tar::EntryType::Regular, "climbs out"),
        (
            "/tmp/events.jsonl",
            tar::EntryType::Regular,
            "absolute path",
        ),
        ("README.txt", tar::EntryType::Symlink, "symbolic link"),
    ] {
        let mut typed: Vec<_> = pristine
            .iter()
            .filter(|(n, _)| n != "README.txt")
            .map(|(n, b)| (n.clone(), tar::EntryType::Regular, b.clone()))
            .collect();
        typed.insert(0, (name.to_string(), kind, b"x".to_vec()));
        write_raw_tar(&env.path("unsafe.tar"), &typed);
        let (code, doc) = verify_archive(&env, "unsafe.tar", &["-p", KEY]);
        assert_eq!(code, 3, "{name}");
        assert_eq!(codes(&doc), ["unsafe_entry"], "{name}: {doc}");
        assert!(
            doc["problems"][0]["message"]
                .as_str()
                .unwrap()
                .contains(what),
            "{doc}"
        );
    }
    // A second copy of a file.
    let mut twice = pristine.clone();
    twice.push((
        "events.jsonl".into(),
        entry(&pristine, "events.jsonl").to_vec(),
    ));
    write_tar(&env.path("twice.tar"), &twice);
    let (_, doc) = verify_archive(&env, "twice.tar", &["-p", KEY]);
    assert_eq!(codes(&doc), ["unexpected_entry"], "{doc}");
}

#[test]
fn consecutive_archives_must_join_without_a_gap() {
    let env = evidence_env();
    let h = head(&env);
    let export = |from: i64, to: i64, file: &str| {
        env.run(&[
            "audit",
            "export",
            "--from",
            &from.to_string(),
            "--to",
            &to.to_string(),
            "-o",
            file,
        ])
        .ok();
    };
    export(1, 5, "first.tar");
    export(6, h, "next.tar");
    export(7, h, "gap.tar");
    export(5, h, "overlap.tar");
    // The next one continues the first exactly, trusted through it.
    let (code, doc) = verify_archive(&env, "next.tar", &["--after", "first.tar"]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["after"], "first.tar");
    assert_eq!(doc["signature"]["trusted_from"], "--after first.tar");
    // A gap between two consecutive exports.
    let (code, doc) = verify_archive(&env, "gap.tar", &["--after", "first.tar"]);
    assert_eq!(code, 3);
    assert_eq!(codes(&doc), ["gap"]);
    assert_eq!(doc["problems"][0]["seq"], 6);
    assert!(
        doc["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("seqs 6..=6 are in neither archive"),
        "{doc}"
    );
    let (code, doc) = verify_archive(&env, "overlap.tar", &["--after", "first.tar"]);
    assert_eq!((code, codes(&doc)), (3, vec!["overlap".to_string()]));
    // The previous archive must itself verify.
    std::fs::write(env.path("junk.tar"), b"not an archive").unwrap();
    let run = env
        .run(&["audit", "verify-archive", "next.tar", "--after", "junk.tar"])
        .code(3);
    assert!(run.stderr.contains("previous archive"), "{}", run.stderr);
}

// ------------------------------------------------------------------ archive

#[test]
fn archiving_moves_the_oldest_rows_out_and_the_chain_still_verifies_from_the_anchor() {
    let env = evidence_env();
    let rows_before = head(&env);
    // A bare DELETE is refused, before and after.
    let err = try_sql(&env.db(), "DELETE FROM objectos_audit WHERE seq = 1").unwrap_err();
    assert!(err.contains("immutable"), "{err}");
    let doc = env
        .run(&[
            "--json", "audit", "archive", "--before", "8", "-o", "old.tar",
        ])
        .ok()
        .json();
    assert_eq!(doc["format"], "objectos.audit.archive/1");
    assert_eq!(
        (
            doc["first_seq"].clone(),
            doc["last_seq"].clone(),
            doc["removed"].clone()
        ),
        (json!(1), json!(7), json!(7))
    );
    // The database holds the rest, the anchor, and the row that recorded it.
    let first: i64 = sql_query(&env.db(), "SELECT min(seq) FROM objectos_audit")[0][0]
        .parse()
        .unwrap();
    assert_eq!(first, 8);
    let anchor = sql_query(
        &env.db(),
        "SELECT first_seq, last_seq, last_hash, archive_sha256, removing FROM objectos_audit_anchors",
    );
    assert_eq!(anchor.len(), 1);
    assert_eq!(anchor[0][..2], ["1", "7"]);
    assert_eq!(anchor[0][2], doc["last_hash"].as_str().unwrap());
    assert_eq!(
        anchor[0][3],
        sha256_hex(&std::fs::read(env.path("old.tar")).unwrap())
    );
    assert_eq!(anchor[0][4], "0");
    let err = try_sql(&env.db(), "DELETE FROM objectos_audit WHERE seq = 8").unwrap_err();
    assert!(err.contains("immutable"), "{err}");
    let err = try_sql(&env.db(), "DELETE FROM objectos_audit_anchors").unwrap_err();
    assert!(err.contains("immutable"), "{err}");
    // audit verify starts from the anchor.
    let report = env.run(&["--json", "audit", "verify"]).ok().json();
    assert_eq!(report["archived"]["through_seq"], 7);
    assert_eq!(report["first_seq"], 8);
    assert_eq!(report["head_seq"], rows_before + 1);
    let tail = env.run(&["--json", "audit", "tail", "-n", "1"]).ok().json();
    assert_eq!(tail["events"][0]["action"], "audit.archive");
    assert_eq!(tail["events"][0]["changes"]["last_seq"], 7);
    // The archive verifies offline; the next one continues it.
    let (code, doc) = verify_archive(&env, "old.tar", &["-p", KEY]);
    assert_eq!(code, 0, "{doc}");
    env.run(&["audit", "archive", "--before", "12", "-o", "next.tar"])
        .ok();
    let (code, doc) = verify_archive(&env, "next.tar", &["--after", "old.tar"]);
    assert_eq!(code, 0, "{doc}");
    env.run(&["audit", "verify"]).ok();
    // Archived rows cannot be exported again; the anchor says where they went.
    let run = env
        .run(&["audit", "export", "--from", "3", "-o", "x.tar"])
        .code(1);
    assert!(run.stderr.contains("archived"), "{}", run.stderr);
    // The row that applied the artifact is archived; its anchor carries it, so
    // the artifact in force is still the one the log last applied.
    let apply_rows = sql_query(
        &env.db(),
        "SELECT count(*) FROM objectos_audit WHERE action = 'artifact.apply'",
    );
    assert_eq!(apply_rows[0][0], "0", "the apply row was archived");
    env.run(&["doctor"]).ok();
    // Nothing to archive below the anchor.
    let run = env
        .run(&["audit", "archive", "--before", "5", "-o", "none.tar"])
        .code(1);
    assert!(run.stderr.contains("nothing to archive"), "{}", run.stderr);
    assert!(!env.path("none.tar").exists());
}

#[test]
fn a_failure_between_export_and_delete_leaves_every_row_in_place() {
    let env = evidence_env();
    for point in ["archive-before-delete", "archive-in-transaction"] {
        let before = sql_query(&env.db(), "SELECT count(*), min(seq) FROM objectos_audit");
        let run = env
            .cmd()
            .env("OBJECTOS_TEST_FAIL", point)
            .args(["audit", "archive", "--before", "8", "-o", "old.tar"])
            .output()
            .unwrap();
        let run = Run::from(run).code(1);
        assert!(run.stderr.contains("failure injected"), "{}", run.stderr);
        assert!(run.stderr.contains("were not removed"), "{}", run.stderr);
        // Every row is still there (and one more: the refusal), no anchor, no file.
        let after = sql_query(&env.db(), "SELECT count(*), min(seq) FROM objectos_audit");
        assert_eq!(after[0][1], "1", "{point}");
        assert_eq!(
            after[0][0].parse::<i64>().unwrap(),
            before[0][0].parse::<i64>().unwrap() + 1,
            "{point}"
        );
        assert_eq!(
            sql_query(&env.db(), "SELECT count(*) FROM objectos_audit_anchors")[0][0],
            "0"
        );
        assert!(!env.path("old.tar").exists(), "{point}");
        let tail = env.run(&["--json", "audit", "tail", "-n", "1"]).ok().json();
        assert_eq!(tail["events"][0]["action"], "audit.archive");
        assert_eq!(tail["events"][0]["outcome"], "error");
        env.run(&["audit", "verify"]).ok();
    }
    // Without the failure it goes through.
    env.run(&["audit", "archive", "--before", "8", "-o", "old.tar"])
        .ok();
    env.run(&["audit", "verify"]).ok();
}

// ------------------------------------------------------------------ bad input

#[test]
fn bad_input_is_told_clearly_never_with_a_panic() {
    let env = evidence_env();
    if !have_tool("age-keygen") {
        return;
    }
    env.tool("age-keygen", &["-o", "auditor.key"]).ok();
    env.tool("age-keygen", &["-o", "stranger.key"]).ok();
    let recipient = env
        .read("auditor.key")
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    env.run(&[
        "audit",
        "export",
        "-o",
        "a.tar.age",
        "--encrypt-to",
        &recipient,
    ])
    .ok();
    // A wrong identity.
    let (code, doc) = verify_archive(&env, "a.tar.age", &["-i", "stranger.key", "-p", KEY]);
    assert_eq!((code, codes(&doc)), (3, vec!["cannot_decrypt".to_string()]));
    let run = env
        .run(&[
            "audit",
            "verify-archive",
            "a.tar.age",
            "-i",
            "stranger.key",
            "-p",
            KEY,
        ])
        .code(3);
    assert!(run.stderr.contains("cannot be decrypted"), "{}", run.stderr);
    // No identity at all: unreadable input.
    let run = env
        .run(&["audit", "verify-archive", "a.tar.age", "-p", KEY])
        .code(1);
    assert!(run.stderr.contains("is encrypted"), "{}", run.stderr);
    // The right one (the positive control).
    env.run(&[
        "audit",
        "verify-archive",
        "a.tar.age",
        "-i",
        "auditor.key",
        "-p",
        KEY,
    ])
    .ok();
    // A file that is neither age nor tar, and one that looks like age but is not.
    env.write("notes.json", "{\"not\": \"an archive\"}\n");
    let (code, doc) = verify_archive(&env, "notes.json", &["-p", KEY]);
    assert_eq!((code, codes(&doc)), (3, vec!["not_an_archive".to_string()]));
    env.write("fake.age", "age-encryption.org/v1\n-> nonsense\n");
    let (code, doc) = verify_archive(&env, "fake.age", &["-i", "auditor.key", "-p", KEY]);
    assert_eq!((code, codes(&doc)), (3, vec!["not_an_archive".to_string()]));
    // A missing file, a missing identity file: exit 1.
    env.run(&["audit", "verify-archive", "missing.tar", "-p", KEY])
        .code(1);
    env.run(&["audit", "verify-archive", "a.tar.age", "-i", "missing.key"])
        .code(1);
    // An archive from another instance: its key is not this one's, and it does
    // not continue this instance's archives.
    let other = Env::new();
    other.run(&["init"]).ok();
    other.run(&["team", "add", "elsewhere"]).ok();
    other.run(&["audit", "export", "-o", "theirs.tar"]).ok();
    std::fs::copy(other.path("theirs.tar"), env.path("theirs.tar")).unwrap();
    let (code, doc) = verify_archive(&env, "theirs.tar", &["-p", KEY]);
    assert_eq!(
        (code, codes(&doc)),
        (3, vec!["untrusted_signer".to_string()])
    );
    env.run(&[
        "audit", "export", "--from", "1", "--to", "1", "-o", "ours.tar",
    ])
    .ok();
    std::fs::copy(
        other.path("data/instance-signing.key.pub"),
        env.path("theirs.pub"),
    )
    .unwrap();
    let (code, doc) = verify_archive(
        &env,
        "theirs.tar",
        &["-p", "theirs.pub", "--after", "ours.tar"],
    );
    assert_eq!(code, 3);
    assert!(codes(&doc).contains(&"other_instance".to_string()), "{doc}");
    // Bad flags are usage errors; refusals say what to do.
    env.run(&["audit", "export", "--from", "soon", "-o", "x.tar"])
        .code(2);
    env.run(&[
        "audit",
        "export",
        "-o",
        "x.tar",
        "--no-sign",
        "--sign-key",
        "k",
    ])
    .code(2);
    let run = env.run(&["audit", "export", "-o", "a.tar.age"]).code(1);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    let run = env
        .run(&["audit", "export", "--to", "99999", "-o", "y.tar"])
        .code(1);
    assert!(run.stderr.contains("does not exist yet"), "{}", run.stderr);
    let run = env
        .run(&["audit", "export", "--encrypt-to", "nobody", "-o", "y.tar"])
        .code(1);
    assert!(
        run.stderr.contains("not an age recipient"),
        "{}",
        run.stderr
    );
    env.run(&["--json", "audit", "export", "-o", "-"]).code(2);
}

// ------------------------------------------------------------------ checkpoints

/// Each line of a checkpoint log names the SHA-256 of the one before it.
fn assert_log_is_one_chain(text: &str) {
    let mut prev = "0".repeat(64);
    let mut seen = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let cp: Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            cp["prev"],
            prev.as_str(),
            "line {} forks or breaks the chain",
            i + 1
        );
        assert!(
            seen.insert(prev.clone()),
            "two lines name the same predecessor"
        );
        prev = sha256_hex(line.as_bytes());
    }
}

#[test]
fn concurrent_checkpoint_writers_never_fork_the_log() {
    let env = Env::new();
    ready(&env);
    let server = Server::start(&env);
    std::thread::scope(|scope| {
        for t in 0..6 {
            let env = &env;
            scope.spawn(move || {
                for i in 0..8 {
                    let run = env.run(&["team", "add", &format!("t{t}-{i}")]).ok();
                    // A checkpoint that could not be written is only a warning
                    // to the command; here it must not happen.
                    assert!(
                        !run.stderr.contains("could not write the audit checkpoint"),
                        "{}",
                        run.stderr
                    );
                }
            });
        }
    });
    // A row the server writes itself (a failed sign-in), checkpointed as it
    // stops.
    let (status, _, _) = server.call(
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"email": "nobody@example.com", "password": "wrong"})),
    );
    assert_eq!(status, 401);
    let (code, log) = server.stop();
    assert_eq!(code, 0);
    let text = env.read("data/audit-checkpoints.log");
    // A command checkpoints after its commit, re-reading the head under the
    // log's lock: one whose row another command's checkpoint already covers
    // has nothing left to append. So the count of lines depends on timing;
    // what must hold is one chain, seqs that only grow, and a last line that
    // covers every row. At least two lines: the commands' last row is covered
    // by a command's line, and the server's sign-in row by its own.
    assert!(text.lines().count() >= 2, "{text}");
    assert_log_is_one_chain(&text);
    let seqs: Vec<i64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(
        seqs.last().copied(),
        Some(head(&env)),
        "the head is covered"
    );
    // The server logged its checkpoints on stderr: a copy kept elsewhere.
    assert!(log.contains("audit checkpoint"), "{log}");
    std::fs::write(env.path("journal.log"), &log).unwrap();
    let doc = env
        .run(&["--json", "audit", "verify", "--checkpoints", "journal.log"])
        .ok()
        .json();
    assert!(doc["outside_checkpoints"].as_u64().unwrap() >= 1, "{doc}");
}

#[test]
fn rows_cut_off_with_their_checkpoints_are_told_by_a_copy_kept_elsewhere() {
    let env = evidence_env();
    std::fs::copy(env.path("data/audit-checkpoints.log"), env.path("copy.log")).unwrap();
    env.run(&["audit", "verify", "--checkpoints", "copy.log"])
        .ok();
    let h = head(&env);
    // The attacker removes the newest two rows and the log lines that name
    // them, and puts the guard back exactly as it was.
    if let Some(pg) = &env.pg {
        // On PostgreSQL, a superuser's session that fires no triggers.
        pg.psql(&format!(
            "SET session_replication_role = replica; DELETE FROM objectos_audit WHERE seq >= {};",
            h - 1
        ));
    } else {
        let guard = sql_query(
            &env.db(),
            "SELECT sql FROM sqlite_master WHERE name = 'objectos_audit_no_delete'",
        )[0][0]
            .clone();
        sql(
            &env.db(),
            &format!(
                "DROP TRIGGER objectos_audit_no_delete; DELETE FROM objectos_audit WHERE seq >= {}; {guard};",
                h - 1
            ),
        );
    }
    let text = env.read("data/audit-checkpoints.log");
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_i64()
                .unwrap()
                < h - 1
        })
        .collect();
    std::fs::write(
        env.path("data/audit-checkpoints.log"),
        kept.join("\n") + "\n",
    )
    .unwrap();
    // The data dir alone cannot tell: its log is a shorter, whole chain…
    env.run(&["audit", "verify"]).ok();
    // …but the copy kept elsewhere names the first missing row.
    let doc = env
        .run(&["--json", "audit", "verify", "--checkpoints", "copy.log"])
        .code(3)
        .json();
    assert_eq!(doc["broken"]["seq"], h - 1, "{doc}");
    assert!(
        doc["broken"]["reason"]
            .as_str()
            .unwrap()
            .contains("copy.log"),
        "{doc}"
    );
    // A line removed from the middle of the log breaks its own chain.
    let env = evidence_env();
    let text = env.read("data/audit-checkpoints.log");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(2);
    std::fs::write(
        env.path("data/audit-checkpoints.log"),
        lines.join("\n") + "\n",
    )
    .unwrap();
    let doc = env.run(&["--json", "audit", "verify"]).code(3).json();
    assert!(
        doc["broken"]["reason"]
            .as_str()
            .unwrap()
            .contains("line 3 of the checkpoint log"),
        "{doc}"
    );
}

#[test]
fn a_checkpoint_log_from_before_chaining_still_verifies_and_chains_on() {
    use objectos::crypto::canonical;
    let env = evidence_env();
    // Rewrite the log as objectos wrote it before checkpoints were chained.
    let key =
        objectos::crypto::signing::SecretKey::load(&env.read("data/instance-signing.key"), None)
            .unwrap();
    let mut old = String::new();
    for line in env.read("data/audit-checkpoints.log").lines() {
        let cp: Value = serde_json::from_str(line).unwrap();
        let message = json!({"instance": cp["instance"], "seq": cp["seq"], "hash": cp["hash"], "time": cp["time"]});
        let signature = key
            .sign_bytes(
                &canonical::to_vec(&message).unwrap(),
                "objectos audit checkpoint",
            )
            .unwrap();
        let legacy = json!({"instance": cp["instance"], "seq": cp["seq"], "hash": cp["hash"], "time": cp["time"], "key_id": cp["key_id"], "signature": signature});
        old.push_str(&canonical::to_string(&legacy).unwrap());
        old.push('\n');
    }
    assert!(!old.contains("\"prev\""));
    std::fs::write(env.path("data/audit-checkpoints.log"), &old).unwrap();
    env.run(&["audit", "verify"]).ok();
    env.run(&["team", "add", "after-upgrade"]).ok();
    let text = env.read("data/audit-checkpoints.log");
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(
        last["prev"],
        sha256_hex(old.lines().last().unwrap().as_bytes()).as_str(),
        "the chain starts after the old lines"
    );
    env.run(&["audit", "verify"]).ok();
    // An export of a range of old checkpoints verifies too.
    env.run(&["audit", "export", "-o", "a.tar"]).ok();
    let (code, doc) = verify_archive(&env, "a.tar", &["-p", KEY]);
    assert_eq!(code, 0, "{doc}");
}

// ------------------------------------------------------------------ the HTTP API

#[test]
fn the_audit_api_refuses_users_without_view_audit_and_agent_keys_and_exports_nothing() {
    let env = Env::new();
    ready(&env);
    for (email, sets) in [
        ("rep@example.com", vec!["sales_rep"]),
        ("auditor@example.com", vec!["auditor", "sales_rep"]),
    ] {
        env.run(&["user", "add", email, "--password-file", "pw"])
            .ok();
        for set in sets {
            env.run(&["permset", "assign", set, email]).ok();
        }
    }
    let key = |args: &[&str]| env.run(args).ok().stdout.trim().to_string();
    let rep = key(&["apikey", "create", "rep@example.com"]);
    let auditor = key(&["apikey", "create", "auditor@example.com"]);
    let auditor_agent = key(&["apikey", "create", "auditor@example.com", "--agent"]);
    let server = Server::start(&env);
    // A row of their organization: the rep creates an account.
    let (status, _, raw) = server.call(
        "POST",
        "/api/v1/data/crm_account",
        Some(&rep),
        Some(json!({"name": "Acme"})),
    );
    assert_eq!(status, 201, "{raw}");
    // The auditor's user key reads the log (the positive control).
    let (status, body, raw) = server.get("/api/v1/audit/events?limit=1000", &auditor);
    assert_eq!(status, 200, "{raw}");
    assert!(
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "record.create"),
        "{raw}"
    );
    // A `from` or `limit` that is not a sequence number is bad input, not page 1.
    for query in ["from=abc", "from=0", "from=-3", "limit=x", "limit=0"] {
        let (status, body, raw) = server.get(&format!("/api/v1/audit/events?{query}"), &auditor);
        assert_eq!(status, 400, "{query}: {raw}");
        assert!(body["error"]["code"].is_string(), "{query}: {raw}");
    }
    // A user without view_audit, and the auditor's own agent key, are refused.
    let (status, body, _) = server.get("/api/v1/audit/events", &rep);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("missing_permission"))
    );
    let (status, body, _) = server.get("/api/v1/audit/events", &auditor_agent);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("agent_key_not_allowed"))
    );
    // There is no HTTP export: archives are the host operator's, with the CLI.
    for (method, path) in [
        ("GET", "/api/v1/audit/export"),
        ("POST", "/api/v1/audit/export"),
        ("GET", "/api/v1/audit/archive"),
    ] {
        let (status, _, _) = server.call(method, path, Some(&auditor), None);
        assert!(status == 404 || status == 405, "{method} {path}: {status}");
    }
}

// ------------------------------------------------------------------ the benchmark

#[test]
fn the_evidence_benchmark_runs_in_its_short_mode_and_measures() {
    let dir = tempfile::tempdir().unwrap();
    let figures = harness::run(Path::new(BIN), dir.path(), 2_000);
    let report = figures.report();
    assert_eq!(figures.events, 2_002);
    for t in [&figures.export, &figures.verify] {
        assert!(t.seconds > 0.0, "{report}");
        assert!(t.peak_rss_kib > 0, "the peak RSS was measured: {report}");
    }
    assert!(figures.archive_bytes > 2_000 * 300, "{report}");
    assert!(report.contains("events/s"), "{report}");
}
