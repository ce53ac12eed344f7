//! Hostile clients against the real `snakepen serve` binary: slowloris
//! headers, idle keep-alive connections, more connections than the limit,
//! a process out of file descriptors, junk command names that try to blow
//! up or forge `/metrics`, and deeply nested payloads under good traffic.
//! Each ends with the server serving.

use crate::support::python_module;
use crate::support::served::{Launch, Served, client, post};
use crate::support::within;
use futures_util::future::join_all;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn mock_args() -> Vec<&'static str> {
    vec!["--adapter", "mock"]
}

/// One keep-alive request on `stream`: the response's status line and body.
async fn exchange(stream: &mut TcpStream, path: &str) -> (String, String) {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    read_response(stream).await
}

/// Reads one response with a `content-length` (all of this server's are,
/// but for streamed batches).
async fn read_response(stream: &mut TcpStream) -> (String, String) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = within(30, stream.read(&mut byte)).await.unwrap();
        assert_eq!(n, 1, "the connection closed mid-response: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no content-length: {head}"));
    let mut body = vec![0; length];
    within(30, stream.read_exact(&mut body)).await.unwrap();
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Waits (up to 30 s, a bound against a hang) until the server closes `stream`.
async fn closed_by_server(stream: &mut TcpStream) {
    let mut buffer = [0u8; 256];
    within(30, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
}

#[tokio::test]
async fn a_slowloris_client_is_cut_off_by_the_header_timeout() {
    let args = [&mock_args()[..], &["--header-timeout-ms", "500"]].concat();
    let server = Served::start(&args).await;
    let mut slow = TcpStream::connect(server.address()).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nx-pad: ")
        .await
        .unwrap();
    let (mut read, mut write) = slow.into_split();
    // One byte at a time, for as long as the server listens.
    let trickle = tokio::spawn(async move {
        loop {
            if write.write_all(b"a").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut buffer = [0u8; 256];
    let closed = within(30, async {
        loop {
            match read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    closed.await;
    trickle.abort();
    // Others are served meanwhile and after.
    assert_eq!(server.get("/healthz").await.0, 200);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_by_the_idle_timeout() {
    let args = [&mock_args()[..], &["--idle-timeout-ms", "500"]].concat();
    let server = Served::start(&args).await;
    let mut idle = TcpStream::connect(server.address()).await.unwrap();
    let (status, _) = exchange(&mut idle, "/healthz").await;
    assert!(status.contains("200"), "{status}");
    closed_by_server(&mut idle).await;
    // A connection that sends nothing at all is idle too.
    let mut silent = TcpStream::connect(server.address()).await.unwrap();
    closed_by_server(&mut silent).await;
}

#[tokio::test]
async fn a_slow_call_is_not_cut_off_by_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mock.json");
    let responses = json!({"responses": [{"command": "slow", "response": 1, "latency_ms": 1500}]});
    std::fs::write(&config, responses.to_string()).unwrap();
    let config = config.display().to_string();
    let server = Served::start(&[
        "--adapter",
        "mock",
        "--adapter-config",
        &config,
        "--idle-timeout-ms",
        "300",
    ])
    .await;
    let (status, body) = server.call(json!({"command": "slow"})).await;
    assert_eq!((status, &body["payload"]), (200, &json!(1)), "{body}");
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused_while_the_first_are_served() {
    let args = [&mock_args()[..], &["--max-connections", "2"]].concat();
    let server = Served::start(&args).await;
    let mut first = TcpStream::connect(server.address()).await.unwrap();
    let mut second = TcpStream::connect(server.address()).await.unwrap();
    assert!(exchange(&mut first, "/healthz").await.0.contains("200"));
    assert!(exchange(&mut second, "/healthz").await.0.contains("200"));

    let mut third = TcpStream::connect(server.address()).await.unwrap();
    let (status, body) = exchange(&mut third, "/healthz").await;
    assert!(status.contains("503"), "{status}: {body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["kind"], "unavailable", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.max_connections"),
        "{body}"
    );
    closed_by_server(&mut third).await;

    // The first two are still served; once one goes, a new one is.
    assert!(exchange(&mut first, "/healthz").await.0.contains("200"));
    drop(second);
    within(30, async {
        loop {
            let mut next = TcpStream::connect(server.address()).await.unwrap();
            if exchange(&mut next, "/healthz").await.0.contains("200") {
                return;
            }
        }
    })
    .await;
}

/// How many descriptors process `pid` has open.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[tokio::test]
async fn out_of_file_descriptors_the_server_keeps_its_connections_and_recovers() {
    let server = Served::launch(Launch {
        args: &mock_args(),
        max_open_files: Some(64),
        ..Launch::default()
    })
    .await;
    let spare = 64 - open_files(server.pid());
    let mut held = Vec::new();
    for _ in 0..spare + 20 {
        held.push(TcpStream::connect(server.address()).await.unwrap());
    }
    // The first connection was accepted before the descriptors ran out.
    let (status, _) = exchange(&mut held[0], "/healthz").await;
    assert!(status.contains("200"), "{status}");
    let log = within(30, async {
        loop {
            let log = server.log_text();
            if log.contains("file descriptors") {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(log.contains("Too many open files"), "{log}");
    // It keeps serving the connections it has.
    let (status, _) = exchange(&mut held[0], "/v1/status").await;
    assert!(status.contains("200"), "{status}");
    drop(held);
    within(30, async {
        loop {
            if let Ok(mut next) = TcpStream::connect(server.address()).await {
                let _ = next
                    .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
                    .await;
                let mut answer = [0u8; 12];
                if next.read_exact(&mut answer).await.is_ok() && answer.ends_with(b"200") {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let log = server.log_text();
    assert_eq!(
        log.matches("out of file descriptors").count(),
        1,
        "logged once: {log}"
    );
    assert!(log.contains("accepting connections again"), "{log}");
}

#[tokio::test]
async fn junk_command_names_leave_metrics_small_and_unforged() {
    let module = python_module("handlers");
    let server = Served::start(&["--module", &module, "--pool-size", "2"]).await;
    let url = server.at("/v1/call");
    // Both workers busy: every junk call fails as pool-exhausted or timeout, not as no-such-command.
    let stop = Arc::new(AtomicBool::new(false));
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let (url, stop) = (url.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let http = client();
                while !stop.load(Ordering::Relaxed) {
                    post(&http, &url, &json!({"command": "sleep", "payload": [300]})).await;
                }
            })
        })
        .collect();
    server
        .status_until(|s| s["pool"]["status"]["busy"] == 2)
        .await;
    let junk: Vec<_> = (0..4)
        .map(|n| {
            let url = url.clone();
            tokio::spawn(async move {
                let http = client();
                for i in 0..750 {
                    let command = match i % 3 {
                        0 => format!("junk-{n}-{i}"),
                        1 => format!("q\"uote\\{n}-{i}"),
                        _ => format!("x{n}-{i}\"}} 1\nsnakepen_fake_total 1\n"),
                    };
                    post(&http, &url, &json!({"command": command, "deadline_ms": 1})).await;
                }
            })
        })
        .collect();
    for j in within(120, join_all(junk)).await {
        j.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for b in within(30, join_all(busy)).await {
        b.unwrap();
    }
    let (status, metrics) = server.get("/metrics").await;
    assert_eq!(status, 200);
    eprintln!("/metrics: {} bytes after 3,000 junk names", metrics.len());
    assert!(
        metrics.len() < 100_000,
        "/metrics is {} bytes after 3,000 junk names",
        metrics.len()
    );
    assert!(
        !metrics.lines().any(|l| l.starts_with("snakepen_fake")),
        "a forged line"
    );
    assert!(
        metrics.contains(r#"snakepen_calls_total{pool="default",command="sleep",outcome="ok"}"#),
        "a real command keeps its label: {metrics}"
    );
    assert!(metrics.contains(r#"command="(unknown)""#), "{metrics}");
}

/// Calls `echo` from `clients` tasks for `period`: how many were answered.
async fn good_traffic(url: &str, clients: usize, period: Duration) -> u64 {
    let answered = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + period;
    let tasks: Vec<_> = (0..clients)
        .map(|n| {
            let (url, answered) = (url.to_string(), Arc::clone(&answered));
            tokio::spawn(async move {
                let http = client();
                while Instant::now() < until {
                    let (status, _) =
                        post(&http, &url, &json!({"command": "echo", "payload": [n]})).await;
                    if status == 200 {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in within(60, join_all(tasks)).await {
        t.unwrap();
    }
    answered.load(Ordering::Relaxed)
}

#[tokio::test]
async fn deeply_nested_payloads_leave_good_traffic_above_ninety_percent() {
    let module = python_module("handlers");
    let server = Served::start(&["--module", &module, "--pool-size", "2"]).await;
    let url = server.at("/v1/call");
    let period = Duration::from_secs(4);
    let calm = good_traffic(&url, 4, period).await;

    let stop = Arc::new(AtomicBool::new(false));
    let attacker = {
        let (url, stop) = (url.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let nested = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
            let body = format!(r#"{{"command": "echo", "payload": {nested}}}"#);
            let http = client();
            let mut sent = 0u64;
            // Twenty a second: before the fix each one killed a worker, whose
            // replacement then waited out the restart backoff.
            let mut pace = tokio::time::interval(Duration::from_millis(50));
            while !stop.load(Ordering::Relaxed) {
                pace.tick().await;
                let _ = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                sent += 1;
            }
            sent
        })
    };
    let attacked = good_traffic(&url, 4, period).await;
    stop.store(true, Ordering::Relaxed);
    let sent = within(30, attacker).await.unwrap();
    assert!(sent > 0);
    eprintln!(
        "good traffic: {calm} answers unattacked, {attacked} under {sent} nested payloads, in {period:?} each"
    );
    assert!(
        attacked * 10 >= calm * 9,
        "good traffic fell from {calm} to {attacked} answers in {period:?} under {sent} nested payloads"
    );
}
