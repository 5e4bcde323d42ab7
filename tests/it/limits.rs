//! Limits of the connection layer, each as the client that would abuse it:
//! too many connections, silent ones, headers sent a byte at a time, heads too
//! large, and a flood of large and slow requests — after which the server's
//! memory is measured and it still answers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::util::*;

fn serving(extra: &[&str]) -> (Env, Server, String) {
    let env = Env::new();
    let key = crate::store::ready(&env);
    // The admin holds no rights on records; these give it a rep's.
    env.run(&["permset", "assign", "sales_rep", "admin@example.com"])
        .ok();
    let server = Server::start_with(&env, extra);
    (env, server, key)
}

fn addr(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_string()
}

/// Whether the server closed `stream` within `within` (reads EOF or a reset).
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream
        .set_read_timeout(Some(within))
        .expect("set a read timeout");
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            // Whatever the server says before closing (a 408, say) is read past.
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
        if started.elapsed() > within {
            return false;
        }
    }
}

/// The status of one raw request, and what came back.
fn raw_request(server: &Server, head: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr(server)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server may answer (and close) before the whole head is written.
    let _ = stream.write_all(head);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn healthy(server: &Server) {
    let (status, _, raw) = server.call("GET", "/healthz", None, None);
    assert_eq!(status, 200, "{raw}");
}

#[test]
fn connections_beyond_the_maximum_wait_and_silent_ones_are_closed() {
    let (_env, server, _) = serving(&["--max-connections", "4", "--client-timeout", "3"]);
    // Four silent connections take every place.
    let mut silent: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(addr(&server)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // A fifth client waits (in the kernel's backlog) until a place frees up:
    // when the silent ones are disconnected, not before.
    let base = server.base.clone();
    let asked = Instant::now();
    let fifth = std::thread::spawn(move || {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let status = client
            .get(format!("{base}/healthz"))
            .send()
            .map(|r| r.status().as_u16());
        (status, asked.elapsed())
    });
    for stream in &mut silent {
        assert!(
            closed_within(stream, Duration::from_secs(10)),
            "a silent connection was kept past the client timeout"
        );
    }
    let (status, waited) = fifth.join().unwrap();
    assert_eq!(status.ok(), Some(200));
    assert!(
        waited >= Duration::from_secs(2),
        "the fifth connection was served while four were open ({waited:?})"
    );
    healthy(&server);
}

#[test]
fn headers_sent_a_byte_at_a_time_are_cut_off_at_the_deadline() {
    let (_env, server, _) = serving(&["--client-timeout", "2"]);
    let mut stream = TcpStream::connect(addr(&server)).unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    let started = Instant::now();
    // A header line every half second: never silent, never done.
    let mut cut = false;
    while started.elapsed() < Duration::from_secs(10) {
        if stream.write_all(b"X-Slow: 1\r\n").is_err() {
            cut = true;
            break;
        }
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 1024];
        match stream.read(&mut buf) {
            Ok(0) => {
                cut = true;
                break;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    assert!(
        cut,
        "a client trickling headers kept its connection for 10 s"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    healthy(&server);
}

#[test]
fn a_head_too_large_or_with_too_many_headers_is_refused_with_431() {
    let (_env, server, key) = serving(&[]);
    let big = format!(
        "GET /api/v1/meta/objects HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    let answer = raw_request(&server, big.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let answer = raw_request(
        &server,
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // Positive control: a head within the limits is answered.
    let fine = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Ok: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(8 * 1024)
    );
    let answer = raw_request(&server, fine.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn a_body_trickled_past_the_request_timeout_gets_408_and_the_server_serves_on() {
    // The client timeout is long, so what cuts the request off is the request's
    // own deadline, not the silence of the connection.
    let (_env, server, key) = serving(&["--request-timeout", "2", "--client-timeout", "60"]);
    let body = json!({"object": "crm_opportunity", "limit": 1}).to_string();
    let head = format!(
        "POST /api/v1/query HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // Positive control: the same request sent at once is answered, not timed out.
    let answer = raw_request(&server, format!("{head}{body}").as_bytes());
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let mut stream = TcpStream::connect(addr(&server)).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    // One byte of the body every 300 ms: never silent, never done.
    let mut sent = 0;
    while sent < body.len() - 1 && started.elapsed() < Duration::from_secs(10) {
        if stream.write_all(&body.as_bytes()[sent..sent + 1]).is_err() {
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(300));
        stream.set_nonblocking(true).unwrap();
        let mut peek = [0u8; 1];
        let answered = matches!(stream.peek(&mut peek), Ok(n) if n > 0);
        stream.set_nonblocking(false).unwrap();
        if answered {
            break;
        }
    }
    let elapsed = started.elapsed();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        elapsed >= Duration::from_millis(1500) && elapsed < Duration::from_secs(6),
        "answered after {elapsed:?}, with {sent} of {} bytes sent",
        body.len()
    );
    healthy(&server);
}

/// The server's peak resident memory, in KiB (`VmHWM`).
fn peak_kib(server: &Server) -> u64 {
    let pid = server.child.as_ref().unwrap().id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

#[test]
fn a_flood_of_large_and_slow_requests_leaves_memory_bounded_and_the_server_serving() {
    let (_env, server, key) = serving(&["--max-connections", "64", "--client-timeout", "2"]);
    healthy(&server);
    let before = peak_kib(&server);
    let target = addr(&server);
    let over = "x".repeat(objectos::limits::MAX_BODY_BYTES + 1024);
    let within = json!({"name": "y".repeat(objectos::limits::MAX_BODY_BYTES - 1024)}).to_string();
    let clients: Vec<_> = (0..48)
        .map(|i| {
            let (target, key, over, within) =
                (target.clone(), key.clone(), over.clone(), within.clone());
            std::thread::spawn(move || {
                for round in 0..4 {
                    let Ok(mut s) = TcpStream::connect(&target) else {
                        continue;
                    };
                    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                    match (i + round) % 4 {
                        // A body over the limit, announced.
                        0 => {
                            let _ = write!(
                                s,
                                "POST /api/v1/data/crm_account HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{over}",
                                over.len()
                            );
                        }
                        // A body just within it that is not a record.
                        1 => {
                            let _ = write!(
                                s,
                                "POST /api/v1/query HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{within}",
                                within.len()
                            );
                        }
                        // A body over the limit, chunked (no length announced).
                        2 => {
                            let _ = write!(
                                s,
                                "POST /api/v1/data/crm_account HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                            );
                            for _ in 0..20 {
                                let chunk = &over[..65536];
                                if write!(s, "{:x}\r\n{chunk}\r\n", chunk.len()).is_err() {
                                    break;
                                }
                            }
                        }
                        // A slow client: half a head, then silence.
                        _ => {
                            let _ = s.write_all(b"POST /api/v1/query HTTP/1.1\r\nHost: x\r\n");
                        }
                    }
                    let mut sink = Vec::new();
                    let _ = s.read_to_end(&mut sink);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let after = peak_kib(&server);
    eprintln!("serve peak resident memory: {before} KiB before the flood, {after} KiB after it");
    // 48 clients at once, each with up to 1 MiB in flight: bounded by the body
    // limit times the clients (48 MiB) and a little more for their connections,
    // not by what the clients send (far more than that in all).
    let bound_kib = 48 * (objectos::limits::MAX_BODY_BYTES as u64 / 1024) + 16 * 1024;
    assert!(
        after < before + bound_kib,
        "the flood grew the server to {after} KiB (from {before} KiB)"
    );
    healthy(&server);
    let (status, _, raw) = server.call(
        "POST",
        "/api/v1/data/crm_account",
        Some(&key),
        Some(json!({"name": "after the flood"})),
    );
    assert_eq!(status, 201, "{raw}");
}
