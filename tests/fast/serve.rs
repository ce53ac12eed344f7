//! `snakepen serve` over real HTTP on loopback, with the mock adapter (no
//! Python): every endpoint, every error's status, 200 concurrent clients,
//! the body limit, and a SIGTERM drain with calls in flight.

use crate::support::served::{Served, client, post};
use crate::support::{snakepen, within};
use serde_json::json;
use std::io::Write;

/// A mock configuration file: canned answers, one per error kind, and a slow command.
fn mock_config(dir: &std::path::Path) -> String {
    let path = dir.join("mock.json");
    let error =
        |command: &str, error: serde_json::Value| json!({"command": command, "error": error});
    let config = json!({
        "responses": [
            {"command": "add", "response": 3},
            {"command": "slow", "response": {"slept": true}, "latency_ms": 1500},
            error("t", json!({"kind": "timeout"})),
            error("pe", json!({"kind": "pool-exhausted", "busy": 2})),
            error("wc", json!({"kind": "worker-crashed", "pid": 7})),
            error("py", json!({"kind": "python-exception", "type": "ValueError", "message": "bad"})),
            error("br", json!({"kind": "bad-request"})),
            error("nsc", json!({"kind": "no-such-command"})),
            error("swg", json!({"kind": "session-worker-gone"})),
            error("un", json!({"kind": "unavailable"})),
            error("af", json!({"kind": "adapter-fault"})),
        ]
    });
    std::fs::write(&path, config.to_string()).unwrap();
    path.display().to_string()
}

async fn mock_server(extra: &[&str]) -> (Served, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = mock_config(dir.path());
    let mut args = vec!["--adapter", "mock", "--adapter-config", &config];
    args.extend_from_slice(extra);
    (Served::start(&args).await, dir)
}

#[tokio::test]
async fn every_endpoint_answers_over_http() {
    let (server, _dir) = mock_server(&[]).await;
    assert_eq!(
        server.get("/healthz").await,
        (200, r#"{"status":"live"}"#.into())
    );
    assert_eq!(
        server.get("/readyz").await,
        (200, r#"{"status":"ready"}"#.into())
    );

    let (status, answer) = server
        .call(json!({"command": "echo", "payload": {"b": 1, "a": [1, 2]}, "session": "s1", "deadline_ms": 5000}))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["payload"],
        json!({"mock": true, "command": "echo", "session": "s1", "payload": {"b": 1, "a": [1, 2]}})
    );
    let (status, answer) = server.call(json!({"command": "add"})).await;
    assert_eq!((status, &answer["payload"]), (200, &json!(3)));

    let (status, text) = server.get("/v1/status").await;
    assert_eq!(status, 200);
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["adapter"]["name"], "mock");
    assert_eq!(body["adapter"]["contract"], "snakepen:adapter@0.1.1");
    assert_eq!(body["adapter"]["counters"]["calls"], 2);
    assert_eq!(body["pool"], serde_json::Value::Null);
    assert_eq!(body["draining"], false);

    let (status, metrics) = server.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"snakepen_calls_total{command="echo",outcome="ok"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("snakepen_call_duration_seconds_bucket{"),
        "{metrics}"
    );
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
}

#[tokio::test]
async fn each_error_kind_has_its_status_and_a_json_body() {
    let (server, _dir) = mock_server(&[]).await;
    for (command, status, kind) in [
        ("t", 504, "timeout"),
        ("pe", 503, "pool-exhausted"),
        ("wc", 502, "worker-crashed"),
        ("py", 500, "python-exception"),
        ("br", 400, "bad-request"),
        ("nsc", 404, "no-such-command"),
        ("swg", 409, "session-worker-gone"),
        ("un", 503, "unavailable"),
        ("af", 500, "adapter-fault"),
    ] {
        let response = client()
            .post(server.at("/v1/call"))
            .json(&json!({"command": command}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{command}");
        let retry_after = response.headers().get("retry-after").cloned();
        assert_eq!(
            retry_after.is_some(),
            status == 503,
            "{command}: Retry-After"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["kind"], kind, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    let (_, body) = server.call(json!({"command": "py"})).await;
    assert_eq!(body["error"]["detail"]["type_name"], "ValueError", "{body}");

    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains(r#"snakepen_calls_total{command="py",outcome="python-exception"} 2"#),
        "{metrics}"
    );
    // A command that does not exist does not get a time series of its own.
    assert!(
        metrics
            .contains(r#"snakepen_calls_total{command="(unknown)",outcome="no-such-command"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("snakepen_adapter_faults_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn bad_bodies_are_refused_with_400_413_and_404() {
    let (server, _dir) = mock_server(&["--max-body-bytes", "1024"]).await;
    let http = client();
    let send = |body: &'static str| {
        http.post(server.at("/v1/call"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let malformed = send("{\"command\": ").await.unwrap();
    assert_eq!(malformed.status().as_u16(), 400);
    let body: serde_json::Value = malformed.json().await.unwrap();
    assert_eq!(body["error"]["kind"], "bad-request");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("EOF"),
        "{body}"
    );

    let misspelt = send(r#"{"comand": "add"}"#).await.unwrap();
    assert_eq!(misspelt.status().as_u16(), 400);
    let body: serde_json::Value = misspelt.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `comand`"),
        "{body}"
    );

    let big = json!({"command": "echo", "payload": "x".repeat(4096)});
    let (status, body) = server.call(big).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1024 bytes"),
        "{body}"
    );

    let (status, text) = server.get("/v2/nothing").await;
    assert_eq!(status, 404);
    assert!(text.contains("/v1/call"), "{text}");

    // The server is unharmed.
    assert_eq!(server.call(json!({"command": "add"})).await.0, 200);
}

#[tokio::test]
async fn a_batch_is_answered_in_order_or_as_it_finishes() {
    let (server, _dir) = mock_server(&[]).await;
    let requests = json!([
        {"command": "slow"},
        {"command": "add"},
        {"command": "t"},
    ]);
    let (status, body) = post(
        &client(),
        &server.at("/v1/batch"),
        &json!({"requests": requests}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["payload"], json!({"slept": true}));
    assert_eq!(
        (results[1]["status"].clone(), results[1]["payload"].clone()),
        (json!(200), json!(3))
    );
    assert_eq!(results[2]["status"], 504);
    assert_eq!(results[2]["error"]["kind"], "timeout");

    let response = client()
        .post(server.at("/v1/batch"))
        .json(&json!({"requests": requests, "order": "completion"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    let text = response.text().await.unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[2]["index"], 0, "the slow call finishes last: {text}");
    let mut indexes: Vec<u64> = lines.iter().map(|l| l["index"].as_u64().unwrap()).collect();
    indexes.sort();
    assert_eq!(indexes, [0, 1, 2]);
}

#[tokio::test]
async fn two_hundred_concurrent_clients_are_all_answered() {
    let (server, _dir) = mock_server(&[]).await;
    let url = server.at("/v1/call");
    let clients: Vec<_> = (0..200)
        .map(|n| {
            let url = url.clone();
            tokio::spawn(async move {
                // Each client has its own connections.
                let http = client();
                let mut answered = 0;
                for i in 0..5 {
                    let (status, body) =
                        post(&http, &url, &json!({"command": "echo", "payload": [n, i]})).await;
                    assert_eq!(status, 200, "{body}");
                    assert_eq!(body["payload"]["payload"], json!([n, i]));
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    let mut answered = 0;
    for c in clients {
        answered += within(60, c).await.unwrap();
    }
    assert_eq!(answered, 1000);
    let body = server.status().await;
    assert_eq!(body["adapter"]["counters"]["calls"], 1000);
    assert_eq!(body["in_flight"], 0);
}

#[tokio::test]
async fn sigterm_lets_calls_in_flight_finish_and_refuses_new_ones() {
    let (mut server, _dir) = mock_server(&["--drain-grace-ms", "10000"]).await;
    let url = server.at("/v1/call");
    let in_flight: Vec<_> = (0..20)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { post(&client(), &url, &json!({"command": "slow"})).await })
        })
        .collect();
    // Wait until all twenty are in the server.
    server.status_until(|body| body["in_flight"] == 20).await;
    server.terminate();
    // A new call while the twenty drain: refused with 503, not left hanging.
    let refused = within(30, async {
        loop {
            let (status, body) = server.call(json!({"command": "add"})).await;
            if status == 503 {
                return body;
            }
            assert_eq!(status, 200, "{body}");
        }
    })
    .await;
    assert_eq!(refused["error"]["kind"], "unavailable", "{refused}");
    assert_eq!(server.get("/readyz").await.0, 503);
    for call in in_flight {
        let (status, body) = within(30, call).await.unwrap();
        assert_eq!(status, 200, "an in-flight call was lost: {body}");
        assert_eq!(body["payload"], json!({"slept": true}));
    }
    let (status, rest) = server.exit().await;
    assert!(status.success(), "{status:?}: {}", server.log_text());
    assert_eq!(
        rest.last().map(String::as_str),
        Some("snakepen serve: stopped")
    );
}

#[tokio::test]
async fn a_configuration_file_is_checked_with_its_lines() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../snakepen.example.toml");
    let out = snakepen(&["config", "check", example]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("valid; listens on 127.0.0.1:8787; adapter python-bridge"),
        "{stdout}"
    );
    assert!(stdout.contains("4 workers of"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let mut file = std::fs::File::create(&bad).unwrap();
    write!(
        file,
        "[server]\nlisten = \"127.0.0.1:1\"\n\n[pool]\nmodule = \"handlers.py\"\nsise = 4\n"
    )
    .unwrap();
    let out = snakepen(&["config", "check", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.toml:6: unknown field `sise`"),
        "{stderr}"
    );

    // serve refuses the same file before it listens.
    let out = snakepen(&["serve", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml:6"));
}

#[tokio::test]
async fn a_configuration_file_drives_the_server_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snakepen.toml");
    std::fs::write(
        &file,
        "[server]\nlisten = \"127.0.0.1:1\"   # overridden by --listen\nmax_body_bytes = 2048\n\n\
         [adapter]\nname = \"mock\"\n[adapter.config]\nresponses = [{ command = \"add\", response = 42 }]\n",
    )
    .unwrap();
    let server = Served::start(&["--config", file.to_str().unwrap()]).await;
    let (status, body) = server.call(json!({"command": "add"})).await;
    assert_eq!((status, &body["payload"]), (200, &json!(42)), "{body}");
    let (status, body) = server
        .call(json!({"command": "echo", "payload": "x".repeat(4096)}))
        .await;
    assert_eq!(status, 413, "the file's limit holds: {body}");
}

#[tokio::test]
async fn a_body_that_trickles_in_too_slowly_gets_408() {
    use std::io::Read;
    let (server, _dir) = mock_server(&["--body-timeout-ms", "200"]).await;
    let address = server.url.trim_start_matches("http://").to_string();
    let mut slow = std::net::TcpStream::connect(address).unwrap();
    // A generous bound on the read: it only guards against a hang.
    slow.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        slow,
        "POST /v1/call HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"command\": "
    )
    .unwrap();
    let mut answer = String::new();
    let _ = slow.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("server.body_timeout_ms"), "{answer}");
    // Others were served meanwhile, and still are.
    assert_eq!(server.call(json!({"command": "add"})).await.0, 200);
}
