//! The remote clients (`objectos mcp`, `objectos review`) against a server
//! behind TLS, as a site runs it (TLS at the ingress): a private CA given with
//! `--ca-file` is trusted, and without it, or with another CA, the connection is
//! refused before any credential is sent.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::*;

/// A test CA, another CA that signed nothing, and a certificate for 127.0.0.1
/// and localhost signed by the first (openssl).
fn make_certificates(dir: &Path) {
    let script = r#"set -e
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=objectos test CA" -keyout ca.key -out ca.pem
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=another CA" -keyout other-ca.key -out other-ca.pem
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out server.pem
"#;
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// socat terminating TLS on a free port in front of `upstream`.
struct Proxy {
    child: Child,
    port: u16,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tls_proxy(dir: &Path, upstream: &str) -> Proxy {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("socat")
        .arg(format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
            dir.join("server.pem").display(),
            dir.join("server.key").display()
        ))
        .arg(format!("TCP:{upstream}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn socat");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "socat never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    Proxy { child, port }
}

/// One MCP session through the bridge: initialize, then the tool list.
fn bridge(env: &Env, key: &str, server: &str, ca: Option<&Path>) -> Run {
    let session = [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"tls-host","version":"1"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    ]
    .join("\n");
    let mut cmd = env.cmd();
    cmd.env("OBJECTOS_API_KEY", key)
        .args(["mcp", "--server", server])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ca) = ca {
        cmd.arg("--ca-file").arg(ca);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{session}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap().into()
}

fn review_list(env: &Env, key: &str, server: &str, ca: Option<&Path>) -> Run {
    let mut cmd = env.cmd();
    cmd.env("OBJECTOS_REVIEW_KEY", key)
        .args(["--json", "review", "--list", "--server", server]);
    if let Some(ca) = ca {
        cmd.arg("--ca-file").arg(ca);
    }
    cmd.output().unwrap().into()
}

#[test]
fn remote_clients_trust_a_private_ca_given_with_ca_file_and_nothing_else() {
    if !have_tool("openssl") || !have_tool("socat") {
        return;
    }
    let env = Env::new();
    let server = crate::agents::desk(&env);
    let agent = crate::agents::agent_key(&env, crate::agents::ALICE, &[]);
    let reviewer = crate::agents::user_key(&env, crate::agents::RITA);
    let certs = env.path("tls");
    std::fs::create_dir_all(&certs).unwrap();
    make_certificates(&certs);
    let proxy = tls_proxy(&certs, server.base.trim_start_matches("http://"));
    let ca = certs.join("ca.pem");
    let other = certs.join("other-ca.pem");
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("https://{host}:{}", proxy.port);

        // The bridge: answered through TLS with the private CA.
        let out = bridge(&env, &agent, &url, Some(&ca)).ok();
        let answers: Vec<Value> = out
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let tools = answers
            .iter()
            .find(|a| a["id"] == json!(2))
            .unwrap_or_else(|| panic!("no tool list:\n{}", out.stdout));
        assert!(
            tools["result"]["tools"]
                .as_array()
                .is_some_and(|t| !t.is_empty()),
            "{tools}"
        );
        // Without the CA, or with another one: no session at all.
        for ca in [None, Some(other.as_path())] {
            let out = bridge(&env, &agent, &url, ca);
            assert!(
                !out.stdout.contains("\"tools\""),
                "a tool list without a trusted certificate: {}",
                out.stdout
            );
            assert!(
                out.stderr.to_lowercase().contains("certificate"),
                "the bridge says why ({ca:?}): {}",
                out.stderr
            );
        }

        // The reviewer's terminal client, the same way.
        let listed = review_list(&env, &reviewer, &url, Some(&ca)).ok().json();
        assert!(listed.get("format").is_some(), "{listed}");
        for ca in [None, Some(other.as_path())] {
            let out = review_list(&env, &reviewer, &url, ca);
            assert_ne!(out.code, 0, "review trusted an unknown certificate");
            assert!(
                out.stderr.to_lowercase().contains("certificate"),
                "review says why ({ca:?}): {}",
                out.stderr
            );
        }
    }
    drop(proxy);
}
