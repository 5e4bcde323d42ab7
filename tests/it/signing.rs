//! Signatures: interop with the real `minisign`, and every way a signature can fail.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::util::*;

#[test]
fn minisign_verifies_what_objectos_signs_with_an_encrypted_key() {
    if !have_tool("minisign") {
        return;
    }
    let env = Env::new();
    env.run(&[
        "build",
        fixture("crm").to_str().unwrap(),
        "-o",
        "artifact.json",
    ])
    .ok();
    env.write("pw", "a long enough password\n");
    env.run(&["keygen", "-o", "release.key", "--password-file", "pw"])
        .ok();
    env.run(&[
        "sign",
        "artifact.json",
        "-k",
        "release.key",
        "--password-file",
        "pw",
        "--expires",
        "30d",
    ])
    .ok();
    let out = env
        .tool(
            "minisign",
            &["-Vm", "artifact.json", "-p", "release.key.pub"],
        )
        .ok();
    assert!(out.stdout.contains("id:com.example.crm"), "{}", out.stdout);
    assert!(out.stdout.contains("sha256:"), "{}", out.stdout);
    // minisign reads objectos's encrypted secret key too.
    env.tool_in(
        "minisign",
        &[
            "-S",
            "-s",
            "release.key",
            "-m",
            "artifact.json",
            "-x",
            "by-minisign.sig",
        ],
        "a long enough password\n",
    )
    .ok();
    env.run(&[
        "verify",
        "artifact.json",
        "-x",
        "by-minisign.sig",
        "-p",
        "release.key.pub",
    ])
    .ok();
}

#[test]
fn objectos_accepts_a_plain_minisign_signature_on_the_signature_alone() {
    if !have_tool("minisign") {
        return;
    }
    let env = Env::new();
    env.run(&[
        "build",
        fixture("crm").to_str().unwrap(),
        "-o",
        "artifact.json",
    ])
    .ok();
    env.tool("minisign", &["-G", "-W", "-p", "m.pub", "-s", "m.key"])
        .ok();
    env.tool(
        "minisign",
        &[
            "-S",
            "-s",
            "m.key",
            "-m",
            "artifact.json",
            "-t",
            "release 1.0.0",
        ],
    )
    .ok();
    let run = env
        .run(&["--json", "verify", "artifact.json", "-p", "m.pub"])
        .ok();
    let doc = run.json();
    assert_eq!(doc["format"], "objectos.verify/1");
    assert_eq!(doc["valid"], true);
    assert_eq!(doc["signed"]["objectos_claims"], false);
    // And minisign signs with an unencrypted objectos key.
    env.run(&["keygen", "-o", "plain.key", "--unencrypted"])
        .ok();
    env.tool(
        "minisign",
        &[
            "-S",
            "-s",
            "plain.key",
            "-m",
            "artifact.json",
            "-x",
            "p.sig",
        ],
    )
    .ok();
    env.run(&[
        "verify",
        "artifact.json",
        "-x",
        "p.sig",
        "-p",
        "plain.key.pub",
    ])
    .ok();
}

fn verify_json(env: &Env, args: &[&str]) -> serde_json::Value {
    let mut full = vec!["--json", "verify"];
    full.extend_from_slice(args);
    let run = env.run(&full);
    assert_eq!(
        run.code, 3,
        "expected exit 3:\n{}\n{}",
        run.stdout, run.stderr
    );
    let doc = run.json();
    assert_eq!(doc["valid"], false);
    doc
}

fn reason_of(env: &Env, args: &[&str]) -> String {
    verify_json(env, args)["reason"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_flipped_byte_anywhere_in_the_artifact_is_a_bad_signature() {
    let env = Env::new();
    let (artifact, _) = env.signed_crm();
    let original = std::fs::read(&artifact).unwrap();
    for at in [
        0,
        original.len() / 3,
        original.len() / 2,
        original.len() - 1,
    ] {
        let mut bytes = original.clone();
        bytes[at] ^= 0x01;
        std::fs::write(&artifact, &bytes).unwrap();
        assert_eq!(
            reason_of(&env, &["artifact.json", "-p", "signer.pub"]),
            "bad_signature",
            "byte {at}"
        );
        // Without --json too: exit 3 and the reason in words.
        let run = env
            .run(&["verify", "artifact.json", "-p", "signer.pub"])
            .code(3);
        assert!(run.stderr.contains("bad signature"), "{}", run.stderr);
    }
    std::fs::write(&artifact, &original).unwrap();
    env.run(&["verify", "artifact.json", "-p", "signer.pub"])
        .ok();
}

fn rewrite_signature(env: &Env, edit: impl Fn(&mut Vec<String>)) {
    let text = env.read("artifact.json.minisig");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    edit(&mut lines);
    env.write("artifact.json.minisig", lines.join("\n") + "\n");
}

#[test]
fn signature_tampering_is_named() {
    let env = Env::new();
    env.signed_crm();
    let pristine = env.read("artifact.json.minisig");

    // A flipped byte in the signature itself.
    rewrite_signature(&env, |lines| {
        let mut raw = B64.decode(&lines[1]).unwrap();
        raw[40] ^= 0x80;
        lines[1] = B64.encode(raw);
    });
    assert_eq!(
        reason_of(&env, &["artifact.json", "-p", "signer.pub"]),
        "bad_signature"
    );

    // An edited trusted comment (a later expiry, say).
    env.write("artifact.json.minisig", &pristine);
    rewrite_signature(&env, |lines| {
        lines[2] = lines[2].replace("version:1.0.0", "version:9.9.9")
    });
    let doc = verify_json(&env, &["artifact.json", "-p", "signer.pub"]);
    assert_eq!(doc["reason"], "bad_signature");
    assert!(
        doc["message"].as_str().unwrap().contains("trusted comment"),
        "{doc}"
    );

    // The key id changed: nobody trusted signed it.
    env.write("artifact.json.minisig", &pristine);
    rewrite_signature(&env, |lines| {
        let mut raw = B64.decode(&lines[1]).unwrap();
        raw[3] ^= 0x01;
        lines[1] = B64.encode(raw);
    });
    assert_eq!(
        reason_of(&env, &["artifact.json", "-p", "signer.pub"]),
        "untrusted_key"
    );

    // Garbage.
    env.write("artifact.json.minisig", "untrusted comment: x\n!!!\n");
    assert_eq!(
        reason_of(&env, &["artifact.json", "-p", "signer.pub"]),
        "malformed_signature"
    );
    std::fs::remove_file(env.path("artifact.json.minisig")).unwrap();
    assert_eq!(
        reason_of(&env, &["artifact.json", "-p", "signer.pub"]),
        "malformed_signature"
    );
}

#[test]
fn a_wrong_key_is_an_untrusted_key() {
    let env = Env::new();
    env.signed_crm();
    env.run(&["keygen", "-o", "other", "--unencrypted"]).ok();
    let doc = verify_json(&env, &["artifact.json", "-p", "other.pub"]);
    assert_eq!(doc["reason"], "untrusted_key");
    // A trust directory holding only other keys says the same.
    std::fs::create_dir(env.path("trust")).unwrap();
    std::fs::copy(env.path("other.pub"), env.path("trust/other.pub")).unwrap();
    assert_eq!(
        reason_of(&env, &["artifact.json", "--trust-dir", "trust"]),
        "untrusted_key"
    );
    std::fs::copy(env.path("signer.pub"), env.path("trust/signer.pub")).unwrap();
    env.run(&["verify", "artifact.json", "--trust-dir", "trust"])
        .ok();
}

#[test]
fn an_expired_signature_is_refused() {
    let env = Env::new();
    env.run(&[
        "build",
        fixture("crm").to_str().unwrap(),
        "-o",
        "artifact.json",
    ])
    .ok();
    env.run(&["keygen", "-o", "signer", "--unencrypted"]).ok();
    env.run(&["sign", "artifact.json", "-k", "signer", "--expires", "1h"])
        .ok();
    // Valid now, expired two hours from now.
    env.run(&["verify", "artifact.json", "-p", "signer.pub"])
        .ok();
    let run = env.run_later(
        7200,
        &["--json", "verify", "artifact.json", "-p", "signer.pub"],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(run.json()["reason"], "expired");
    // An expiry already past is refused at signing time.
    env.run(&[
        "sign",
        "artifact.json",
        "-k",
        "signer",
        "--expires",
        "2001-01-01T00:00:00Z",
    ])
    .code(1);
    // A value that is no time at all is a usage error.
    env.run(&["sign", "artifact.json", "-k", "signer", "--expires", "soon"])
        .code(2);
}

#[test]
fn digest_claims_and_pins_must_match() {
    let env = Env::new();
    env.signed_crm();
    let pin = "0".repeat(64);
    assert_eq!(
        reason_of(
            &env,
            &["artifact.json", "-p", "signer.pub", "--sha256", &pin]
        ),
        "digest_mismatch"
    );
    let real = env
        .run(&["--json", "verify", "artifact.json", "-p", "signer.pub"])
        .ok()
        .json()["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    env.run(&[
        "verify",
        "artifact.json",
        "-p",
        "signer.pub",
        "--sha256",
        &real,
    ])
    .ok();
    env.run(&[
        "verify",
        "artifact.json",
        "-p",
        "signer.pub",
        "--sha256",
        "nothex",
    ])
    .code(2);

    // A signature whose comment claims another digest (signed by minisign, so the
    // signature itself is good).
    if have_tool("minisign") {
        env.tool("minisign", &["-G", "-W", "-p", "m.pub", "-s", "m.key"])
            .ok();
        let claim = format!(
            "id:com.example.crm\tversion:1.0.0\tsha256:{}",
            "ab".repeat(32)
        );
        env.tool(
            "minisign",
            &[
                "-S",
                "-s",
                "m.key",
                "-m",
                "artifact.json",
                "-x",
                "claim.sig",
                "-t",
                &claim,
            ],
        )
        .ok();
        assert_eq!(
            reason_of(&env, &["artifact.json", "-x", "claim.sig", "-p", "m.pub"]),
            "digest_mismatch"
        );
    }
}

#[test]
fn a_validly_signed_invalid_artifact_is_refused() {
    if !have_tool("minisign") {
        return;
    }
    let env = Env::new();
    env.write(
        "bad.json",
        r#"{"manifest": {"id": "com.example.x", "version": "one"}}"#,
    );
    env.tool("minisign", &["-G", "-W", "-p", "m.pub", "-s", "m.key"])
        .ok();
    env.tool("minisign", &["-S", "-s", "m.key", "-m", "bad.json"])
        .ok();
    assert_eq!(
        reason_of(&env, &["bad.json", "-p", "m.pub"]),
        "invalid_artifact"
    );
    env.write("notjson.json", "{ nope");
    env.tool("minisign", &["-S", "-s", "m.key", "-m", "notjson.json"])
        .ok();
    assert_eq!(
        reason_of(&env, &["notjson.json", "-p", "m.pub"]),
        "invalid_artifact"
    );
}

#[test]
fn a_100_mb_artifact_is_hashed_as_a_stream_and_refused_cleanly() {
    if !have_tool("minisign") {
        return;
    }
    let env = Env::new();
    let path = env.path("huge.json");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        f.write_all(b"{\"manifest\":{\"id\":\"com.example.big\",\"version\":\"1.0.0\"},\"pad\":\"")
            .unwrap();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..100 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(b"\"}").unwrap();
    }
    env.tool("minisign", &["-G", "-W", "-p", "m.pub", "-s", "m.key"])
        .ok();
    env.tool("minisign", &["-S", "-s", "m.key", "-m", "huge.json"])
        .ok();
    let doc = verify_json(&env, &["huge.json", "-p", "m.pub"]);
    assert_eq!(doc["reason"], "invalid_artifact");
    // The signature was checked (streamed) before the size refusal.
    let checks = doc["checks"].as_array().unwrap();
    assert!(
        checks
            .iter()
            .any(|c| c["name"] == "signature" && c["ok"] == true),
        "{doc}"
    );
    let run = env.run(&["validate", "huge.json"]).code(3);
    assert!(run.stderr.contains("MiB"), "{}", run.stderr);
}

#[test]
fn keygen_protects_the_secret_key_and_refuses_to_overwrite() {
    let env = Env::new();
    env.write("pw", "a long enough password\n");
    env.run(&["keygen", "-o", "k", "--password-file", "pw"])
        .ok();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(env.path("k"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        env.read("k.pub")
            .starts_with("untrusted comment: minisign public key ")
    );
    env.run(&["keygen", "-o", "k", "--unencrypted"]).code(1);
    env.run(&["keygen", "-o", "k", "--unencrypted", "--force"])
        .ok();
    // No terminal and no password: an error with a hint, not a hang.
    let run = env.run(&["keygen", "-o", "k2"]).code(1);
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
    env.write("short", "abc\n");
    env.run(&["keygen", "-o", "k3", "--password-file", "short"])
        .code(1);
    // A wrong password when signing.
    env.run(&["build", fixture("crm").to_str().unwrap(), "-o", "a.json"])
        .ok();
    env.run(&["keygen", "-o", "enc", "--password-file", "pw"])
        .ok();
    env.write("wrong", "not the password at all\n");
    let run = env
        .run(&["sign", "a.json", "-k", "enc", "--password-file", "wrong"])
        .code(1);
    assert!(run.stderr.contains("password"), "{}", run.stderr);
}

#[test]
fn objectos_signs_with_keys_made_by_the_stock_minisign() {
    if !have_tool("minisign") {
        return;
    }
    let env = Env::new();
    env.run(&[
        "build",
        fixture("crm").to_str().unwrap(),
        "-o",
        "artifact.json",
    ])
    .ok();

    // Unencrypted (`-W`): the stock tool leaves the key's checksum empty.
    env.tool("minisign", &["-G", "-W", "-p", "x.pub", "-s", "x.key"])
        .ok();
    let signed = env
        .run(&["--json", "sign", "artifact.json", "-k", "x.key"])
        .ok()
        .json();
    assert_eq!(signed["format"], "objectos.sign/1");
    let verified = env
        .run(&["--json", "verify", "artifact.json", "-p", "x.pub"])
        .ok()
        .json();
    assert_eq!(verified["valid"], true);
    assert_eq!(verified["signed"]["objectos_claims"], true);
    let out = env
        .tool("minisign", &["-Vm", "artifact.json", "-p", "x.pub"])
        .ok();
    assert!(out.stdout.contains("id:com.example.crm"), "{}", out.stdout);

    // Encrypted (the tool's default), its password read from a file.
    env.tool_in(
        "minisign",
        &["-G", "-p", "e.pub", "-s", "e.key"],
        "a long enough password\na long enough password\n",
    )
    .ok();
    env.write("pw", "a long enough password\n");
    env.run(&[
        "sign",
        "artifact.json",
        "-k",
        "e.key",
        "--password-file",
        "pw",
        "-o",
        "e.minisig",
    ])
    .ok();
    env.run(&["verify", "artifact.json", "-x", "e.minisig", "-p", "e.pub"])
        .ok();
    env.tool(
        "minisign",
        &["-Vm", "artifact.json", "-x", "e.minisig", "-p", "e.pub"],
    )
    .ok();

    // A stock key whose secret half was damaged is refused, not used.
    let text = env.read("x.key");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut bytes = B64.decode(&lines[1]).unwrap();
    bytes[70] ^= 1;
    lines[1] = B64.encode(&bytes);
    env.write("damaged.key", lines.join("\n") + "\n");
    let run = env
        .run(&[
            "sign",
            "artifact.json",
            "-k",
            "damaged.key",
            "-o",
            "d.minisig",
        ])
        .code(1);
    assert!(run.stderr.contains("corrupt"), "{}", run.stderr);
}
