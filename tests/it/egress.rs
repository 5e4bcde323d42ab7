//! Zero egress: the quickstart workflow, an MCP session through `objectos mcp`
//! and an audit export, run in a network namespace that holds only loopback
//! (`unshare -n`) and traced with `strace -f` from start-up, open no
//! connection and send no datagram anywhere but to the server's own loopback
//! listener.

use std::process::{Command, Stdio};

use crate::util::*;

/// The whole session, as an operator would type it. `BIN` is the binary.
const SESSION: &str = r#"set -euo pipefail
bin=BIN
"$bin" quickstart --listen 127.0.0.1:0 >qs.out 2>qs.err &
qs=$!
for _ in $(seq 1 600); do
  grep -q 'addr=' qs.err && break
  sleep 0.1
done
addr=$(grep -o 'addr=[^ ]*' qs.err | head -n 1 | cut -d= -f2)
[ -n "$addr" ] || { cat qs.err >&2; exit 1; }
echo "$addr" >addr
# The commands quickstart printed, pointed at the port it bound.
grep '^ *curl ' qs.out | sed "s/127.0.0.1:0/$addr/" | while read -r c; do
  sh -c "$c" >>curl.out
  echo >>curl.out
done
# An MCP session through the stdio bridge, as an agent host runs it: each
# request waits for the answer to the one before.
key=$(grep -o 'OBJECTOS_API_KEY=[^ ]*' qs.out | cut -d= -f2)
coproc MCP { OBJECTOS_API_KEY="$key" "$bin" mcp --server "http://$addr"; }
ask() {
  echo "$1" >&"${MCP[1]}"
  if [ "$2" = answer ]; then
    read -r -t 60 answer <&"${MCP[0]}"
    echo "$answer" >>mcp.out
  fi
}
ask '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"egress-test","version":"1"}}}' answer
ask '{"jsonrpc":"2.0","method":"notifications/initialized"}' none
ask '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' answer
ask '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"query_records","arguments":{"objectName":"crm_opportunity"}}}' answer
bridge=$MCP_PID
eval "exec ${MCP[1]}>&-"
wait "$bridge"
# Evidence, while the server runs.
"$bin" audit export -o evidence.tar
"$bin" audit verify-archive evidence.tar -p data/instance-signing.key.pub
kill -TERM "$qs"
wait "$qs"
"$bin" audit verify
"#;

/// Where a traced call sends to, if it names an Internet or Unix address:
/// `("AF_INET", "127.0.0.1:8080")`, `("AF_UNIX", path)`.
fn destination(line: &str) -> Option<(String, String)> {
    let family = line.split("sa_family=").nth(1)?;
    let family: String = family
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let between = |from: &str, to: char| -> String {
        line.split(from)
            .nth(1)
            .and_then(|rest| rest.split(to).next())
            .unwrap_or("?")
            .to_string()
    };
    let at = match family.as_str() {
        "AF_INET" => format!(
            "{}:{}",
            between("inet_addr(\"", '"'),
            between("sin_port=htons(", ')')
        ),
        "AF_INET6" => format!(
            "[{}]:{}",
            between("inet_pton(AF_INET6, \"", '"'),
            between("sin6_port=htons(", ')')
        ),
        "AF_UNIX" => between("sun_path=\"", '"'),
        _ => "?".to_string(),
    };
    Some((family, at))
}

#[test]
fn quickstart_mcp_and_export_open_no_connection_but_to_their_own_listener() {
    if !have_tool("strace") || !have_tool("unshare") || !have_tool("ip") || !have_tool("curl") {
        return;
    }
    let env = Env::new();
    // A namespace of its own needs privilege (root, or user namespaces).
    let probe = Command::new("unshare")
        .args(["-n", "--", "ip", "link", "set", "lo", "up"])
        .stderr(Stdio::piped())
        .output()
        .expect("run unshare");
    if !have_interop(
        "a network namespace of its own (`unshare -n`)",
        (!probe.status.success())
            .then(|| String::from_utf8_lossy(&probe.stderr).trim().to_string()),
    ) {
        return;
    }
    env.write("session.sh", SESSION.replace("BIN", BIN));
    // Loopback comes up before the trace starts; everything after it is traced.
    let run: Run = Command::new("unshare")
        .current_dir(env.dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.dir.path())
        .env("NO_COLOR", "1")
        .env("OBJECTOS_DATA_DIR", env.path("data"))
        .args([
            "-n",
            "--",
            "sh",
            "-c",
            "ip link set lo up && exec strace -f -qq -s 256 \
             -e trace=connect,sendto,sendmsg,sendmmsg -o trace.txt bash session.sh",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run the session")
        .into();
    let run = run.ok();
    let addr = env.read("addr").trim().to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let port = addr.rsplit(':').next().unwrap();

    // The session did what it says: records, an MCP answer, evidence.
    let curl = env.read("curl.out");
    assert!(curl.contains("\"records\""), "{curl}\n{}", run.stderr);
    let mcp = env.read("mcp.out");
    let answers: Vec<serde_json::Value> = mcp
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let query = answers
        .iter()
        .find(|a| a["id"] == 3)
        .unwrap_or_else(|| panic!("no answer to query_records:\n{mcp}"));
    assert_eq!(
        query["result"]["isError"],
        serde_json::json!(false),
        "{query}"
    );
    assert!(env.path("evidence.tar").is_file());

    // Every destination named in the trace is the server's own listener.
    let trace = env.read("trace.txt");
    let mut loopback = 0;
    for line in trace.lines() {
        let Some((family, at)) = destination(line) else {
            continue;
        };
        match family.as_str() {
            "AF_INET" if at == format!("127.0.0.1:{port}") => loopback += 1,
            // The C library asks its name service cache daemon, when one runs,
            // through a Unix socket on this host; that is no network.
            "AF_UNIX" if at.starts_with("/var/run/nscd/") || at.starts_with("/run/nscd/") => {}
            _ => panic!("a connection to {family} {at}, not to the server's own listener:\n{line}"),
        }
    }
    // Positive control: the trace saw the clients reach the server.
    assert!(
        loopback >= 3,
        "the trace shows {loopback} connections to the listener:\n{trace}"
    );
}

#[test]
fn the_trace_reader_sees_every_destination_strace_prints() {
    let lines = [
        (
            r#"26167 connect(5, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("10.1.2.3")}, 16) = -1 ENETUNREACH (Network is unreachable)"#,
            ("AF_INET", "10.1.2.3:80"),
        ),
        (
            r#"26167 connect(3, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT (No such file or directory)"#,
            ("AF_UNIX", "/var/run/nscd/socket"),
        ),
        (
            r#"7 sendto(4, "x", 1, MSG_NOSIGNAL, {sa_family=AF_INET6, sin6_port=htons(53), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2001:db8::1", &sin6_addr), sin6_scope_id=0}, 28) = 1"#,
            ("AF_INET6", "[2001:db8::1]:53"),
        ),
    ];
    for (line, (family, at)) in lines {
        assert_eq!(
            destination(line),
            Some((family.to_string(), at.to_string())),
            "{line}"
        );
    }
    assert_eq!(destination("7 sendto(4, \"x\", 1, 0, NULL, 0) = 1"), None);
}
