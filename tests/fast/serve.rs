//! `snakepen serve` over real HTTP on loopback, with the mock adapter (no
//! Python): every endpoint, every error's status, 200 concurrent clients,
//! the body limit, and a SIGTERM drain with calls in flight.

use crate::support::served::{Launch, Served, client, post, refused_to_start};
use crate::support::{snakepen, within};
use futures_util::future::join_all;
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
    assert_eq!(body["adapter"]["contract"], "snakepen:adapter@0.1.4");
    assert_eq!(body["adapter"]["counters"]["calls"], 2);
    assert_eq!(body["pool"], serde_json::Value::Null);
    assert_eq!(body["draining"], false);

    let (status, metrics) = server.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"snakepen_calls_total{pool="default",command="echo",outcome="ok"} 1"#),
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
        metrics.contains(
            r#"snakepen_calls_total{pool="default",command="py",outcome="python-exception"} 2"#
        ),
        "{metrics}"
    );
    // A command that does not exist does not get a time series of its own.
    assert!(
        metrics
            .contains(r#"snakepen_calls_total{pool="default",command="(unknown)",outcome="no-such-command"} 1"#),
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
    // Every client is up before any sends its first call.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(200));
    let clients: Vec<_> = (0..200)
        .map(|n| {
            let url = url.clone();
            let start = std::sync::Arc::clone(&start);
            tokio::spawn(async move {
                // Each client has its own connections.
                let http = client();
                start.wait().await;
                let mut answers = Vec::new();
                for i in 0..5 {
                    let sent = json!([n, i]);
                    let answer =
                        post(&http, &url, &json!({"command": "echo", "payload": sent})).await;
                    answers.push((sent, answer));
                }
                answers
            })
        })
        .collect();
    let answers: Vec<_> = within(60, join_all(clients))
        .await
        .into_iter()
        .flat_map(|client| client.unwrap())
        .collect();
    // An answer counts when it is a 200 that echoes its own call's payload.
    let right = |(sent, (status, body)): &&(serde_json::Value, (u16, serde_json::Value))| {
        *status == 200 && body["payload"]["payload"] == *sent
    };
    let answered = answers.iter().filter(right).count();
    let wrong = answers.iter().find(|a| !right(a));
    assert_eq!(answered, 1000, "the first wrong answer: {wrong:?}");
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
    for call in within(30, join_all(in_flight)).await {
        let (status, body) = call.unwrap();
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
    let stdout = &out.stdout;
    assert!(out.success(), "{}", out.stderr);
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
    let stderr = &out.stderr;
    assert_eq!(out.code, Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.toml:6: unknown field `sise`"),
        "{stderr}"
    );

    // serve refuses the same file before it listens.
    let out = snakepen(&["serve", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("bad.toml:6"));
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
async fn a_memory_limit_raised_in_the_file_lets_the_adapter_use_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snakepen.toml");
    let hostile = crate::support::fixture("hostile");
    std::fs::write(
        &file,
        format!(
            "[adapter]\nname = {:?}\n\n[limits]\nmax_memory_bytes = 268435456\n",
            hostile.display()
        ),
    )
    .unwrap();
    let server = Served::start(&["--config", file.to_str().unwrap()]).await;
    let (status, body) = server
        .call(json!({"command": "grow", "payload": 200}))
        .await;
    assert_eq!(
        (status, &body["payload"]),
        (200, &json!(200)),
        "200 MiB fit: {body}"
    );
    let (status, body) = server
        .call(json!({"command": "grow", "payload": 300}))
        .await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert_eq!(body["error"]["kind"], "adapter-fault", "{status} {body}");
    assert!(message.contains("over its limit of 256 MiB"), "{message}");
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
        "POST /v1/call HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"command\": "
    )
    .unwrap();
    let mut answer = String::new();
    let _ = slow.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("server.body_timeout_ms"), "{answer}");
    // Others were served meanwhile, and still are.
    assert_eq!(server.call(json!({"command": "add"})).await.0, 200);
}

/// Sends `request` as raw bytes and reads the whole answer (the server
/// closes after it, or the 30 s read bound, a guard against a hang, ends it).
fn raw_exchange(server: &Served, request: &str) -> String {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(server.address()).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// The JSON body of a raw answer.
fn body_of(answer: &str) -> serde_json::Value {
    let (_, body) = answer.split_once("\r\n\r\n").unwrap_or(("", ""));
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"))
}

/// A token file with mode `mode` in `dir`.
fn token_file(dir: &std::path::Path, token: &str, mode: u32) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("token");
    std::fs::write(&path, token).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn with_a_token_every_endpoint_but_the_probes_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = mock_config(dir.path());
    let server = Served::start_with_env(
        &["--adapter", "mock", "--adapter-config", &config],
        &[("SNAKEPEN_TOKEN", "s3cret-token")],
    )
    .await;
    let http = client();
    let call = json!({"command": "add"});
    for path in ["/v1/call", "/v1/batch"] {
        let body = if path == "/v1/call" {
            call.clone()
        } else {
            json!({"requests": [call]})
        };
        let missing = http.post(server.at(path)).json(&body).send().await.unwrap();
        assert_eq!(missing.status().as_u16(), 401, "{path} without a token");
        assert_eq!(
            missing.headers()["www-authenticate"].to_str().unwrap(),
            "Bearer",
            "{path}"
        );
        let answer: serde_json::Value = missing.json().await.unwrap();
        assert_eq!(answer["error"]["kind"], "unauthorized", "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Authorization: Bearer"),
            "{answer}"
        );
        let wrong = http
            .post(server.at(path))
            .bearer_auth("s3cret-tokeN")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status().as_u16(), 401, "{path} with a wrong token");
        let right = http
            .post(server.at(path))
            .bearer_auth("s3cret-token")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(right.status().as_u16(), 200, "{path} with the token");
    }
    for path in ["/metrics", "/v1/status"] {
        assert_eq!(server.get(path).await.0, 401, "{path} without a token");
        let right = http
            .get(server.at(path))
            .bearer_auth("s3cret-token")
            .send()
            .await
            .unwrap();
        assert_eq!(right.status().as_u16(), 200, "{path} with the token");
    }
    // The probes stay open: a load balancer has no token.
    assert_eq!(server.get("/healthz").await.0, 200);
    assert_eq!(server.get("/readyz").await.0, 200);
}

#[tokio::test]
async fn a_token_file_is_read_and_a_flag_beats_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = mock_config(dir.path());
    let file = token_file(dir.path(), "from-the-file\n", 0o600);
    let server = Served::start_with_env(
        &[
            "--adapter",
            "mock",
            "--adapter-config",
            &config,
            "--token-file",
            &file,
        ],
        &[("SNAKEPEN_TOKEN", "from-the-environment")],
    )
    .await;
    let call = |token: &'static str| {
        client()
            .post(server.at("/v1/call"))
            .bearer_auth(token)
            .json(&json!({"command": "add"}))
            .send()
    };
    assert_eq!(call("from-the-file").await.unwrap().status().as_u16(), 200);
    assert_eq!(
        call("from-the-environment")
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
}

#[test]
fn a_token_file_that_is_missing_empty_or_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = mock_config(dir.path());
    let serve = |file: &str| {
        let (code, stderr) = refused_to_start(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--adapter",
            "mock",
            "--adapter-config",
            &config,
            "--token-file",
            file,
        ]);
        assert_eq!(code, Some(2), "{file}: {stderr}");
        assert!(stderr.contains(file), "names the file: {stderr}");
        stderr
    };
    let missing = dir.path().join("absent").display().to_string();
    assert!(serve(&missing).contains("cannot read"));
    let readable = token_file(dir.path(), "t0ken", 0o644);
    assert!(serve(&readable).contains("chmod 600"));
    let empty = token_file(dir.path(), "\n", 0o600);
    assert!(serve(&empty).contains("empty"));
}

#[test]
fn listening_beyond_loopback_without_a_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = mock_config(dir.path());
    let (code, stderr) = refused_to_start(&[
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--adapter",
        "mock",
        "--adapter-config",
        &config,
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("0.0.0.0"), "{stderr}");
    assert!(stderr.contains("--token-file"), "{stderr}");
    assert!(stderr.contains("--insecure-no-auth"), "{stderr}");
}

#[tokio::test]
async fn listening_beyond_loopback_is_allowed_with_a_token_or_insecure_no_auth() {
    let dir = tempfile::tempdir().unwrap();
    let config = mock_config(dir.path());
    let args = ["--adapter", "mock", "--adapter-config", &config];
    let open = Served::launch(Launch {
        args: &[&args[..], &["--insecure-no-auth"]].concat(),
        listen: Some("0.0.0.0:0"),
        ..Launch::default()
    })
    .await;
    let answer = raw_exchange(
        &open,
        "GET /v1/status HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let guarded = Served::launch(Launch {
        args: &args,
        env: &[("SNAKEPEN_TOKEN", "t")],
        listen: Some("0.0.0.0:0"),
        ..Launch::default()
    })
    .await;
    let answer = raw_exchange(
        &guarded,
        "GET /v1/status HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}

#[tokio::test]
async fn a_browsers_cross_site_text_plain_post_is_refused_with_415() {
    let (server, _dir) = mock_server(&[]).await;
    let send = |content_type: &'static str| {
        client()
            .post(server.at("/v1/call"))
            .header("content-type", content_type)
            .body(r#"{"command": "add"}"#)
            .send()
    };
    // What a web page's form or fetch() may send to any site without a preflight.
    for simple in [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let refused = send(simple).await.unwrap();
        assert_eq!(refused.status().as_u16(), 415, "{simple}");
        let body: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["kind"], "unsupported-media-type", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("application/json"),
            "{body}"
        );
    }
    let no_type = client()
        .post(server.at("/v1/call"))
        .body(r#"{"command": "add"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(no_type.status().as_u16(), 415);
    for json_type in ["application/json", "Application/JSON; charset=utf-8"] {
        assert_eq!(send(json_type).await.unwrap().status().as_u16(), 200);
    }
}

#[tokio::test]
async fn an_origin_not_allowed_is_refused_with_403() {
    let (server, _dir) = mock_server(&["--allowed-origin", "http://localhost:3000"]).await;
    let from = |origin: &'static str| {
        client()
            .post(server.at("/v1/call"))
            .header("origin", origin)
            .json(&json!({"command": "add"}))
            .send()
    };
    let refused = from("http://evil.example").await.unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["kind"], "forbidden", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.allowed_origins"),
        "{body}"
    );
    assert_eq!(from("null").await.unwrap().status().as_u16(), 403);
    assert_eq!(
        from("http://localhost:3000")
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    // A client that sends no Origin (curl, a program) is not a browser.
    assert_eq!(server.call(json!({"command": "add"})).await.0, 200);
}

#[tokio::test]
async fn a_forged_host_is_refused_as_dns_rebinding() {
    let (server, _dir) = mock_server(&["--allowed-host", "snakepen.internal"]).await;
    let port = server.address().rsplit_once(':').unwrap().1.to_string();
    let status_with = |host: &str| {
        raw_exchange(
            &server,
            &format!("GET /v1/status HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"),
        )
    };
    for forged in [
        format!("evil.example:{port}"),
        "evil.example".to_string(),
        format!("localhost.evil.example:{port}"),
    ] {
        let answer = status_with(&forged);
        assert!(answer.starts_with("HTTP/1.1 403"), "{forged}: {answer}");
        let body = body_of(&answer);
        assert_eq!(body["error"]["kind"], "forbidden", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("server.allowed_hosts"),
            "{body}"
        );
    }
    for allowed in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "localhost".to_string(),
        format!("[::1]:{port}"),
        "snakepen.internal:80".to_string(),
    ] {
        let answer = status_with(&allowed);
        assert!(answer.starts_with("HTTP/1.1 200"), "{allowed}: {answer}");
    }
}

#[tokio::test]
async fn a_wrong_method_gets_405_with_a_typed_body_and_allow() {
    let (server, _dir) = mock_server(&[]).await;
    let response = client().get(server.at("/v1/call")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers()["allow"].to_str().unwrap(), "POST");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["kind"], "bad-request", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("POST"),
        "{body}"
    );
}

#[tokio::test]
async fn a_content_length_over_the_limit_gets_413_before_the_body() {
    let (server, _dir) =
        mock_server(&["--max-body-bytes", "1024", "--body-timeout-ms", "60000"]).await;
    // The body never comes: the answer must not wait for it.
    let answer = raw_exchange(
        &server,
        "POST /v1/call HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 1000000000\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let body = body_of(&answer);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1024 bytes"),
        "{body}"
    );
}

#[tokio::test]
async fn listen_localhost_means_loopback_and_a_bad_flag_is_named() {
    let (_, dir) = mock_server(&[]).await;
    let config = dir.path().join("mock.json").display().to_string();
    let server = Served::launch(Launch {
        args: &["--adapter", "mock", "--adapter-config", &config],
        listen: Some("localhost:0"),
        ..Launch::default()
    })
    .await;
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );
    assert_eq!(server.call(json!({"command": "add"})).await.0, 200);

    let out = snakepen(&[
        "serve",
        "--listen",
        "no-such-host-at-all:80:90",
        "--adapter",
        "mock",
    ]);
    let stderr = &out.stderr;
    assert_eq!(out.code, Some(2), "{stderr}");
    assert!(stderr.contains("--listen"), "{stderr}");
    assert!(!stderr.contains("(command line)"), "{stderr}");
}

#[test]
fn config_check_refuses_what_serve_would_refuse_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("handlers.py"), "def f():\n    pass\n").unwrap();
    for (section, key, value) in [
        ("pool", "start_timeout_ms", "0"),
        ("pool", "max_frame_bytes", "0"),
        ("pool", "max_requests", "0"),
        ("pool", "max_age_ms", "0"),
        ("pool", "max_rss_bytes", "0"),
        ("limits", "call_timeout_ms", "0"),
        ("limits", "max_memory_bytes", "0"),
        ("limits", "max_response_bytes", "0"),
        ("server", "max_body_bytes", "0"),
        ("server", "body_timeout_ms", "0"),
        ("server", "max_batch", "0"),
        ("server", "header_timeout_ms", "0"),
        ("server", "idle_timeout_ms", "0"),
        ("server", "max_connections", "0"),
    ] {
        let file = dir.path().join("snakepen.toml");
        let mut text = String::from(
            "[server]\nlisten = \"127.0.0.1:8787\"\n\n[pool]\nmodule = \"handlers.py\"\n\n[limits]\n",
        );
        let at = text.find(&format!("[{section}]\n")).unwrap() + section.len() + 3;
        text.insert_str(at, &format!("{key} = {value}\n"));
        let line = text[..at].matches('\n').count() + 1;
        std::fs::write(&file, &text).unwrap();
        let out = snakepen(&["config", "check", file.to_str().unwrap()]);
        let stderr = &out.stderr;
        assert_eq!(out.code, Some(2), "{key} = {value}: {stderr}");
        assert!(
            stderr.contains(&format!("snakepen.toml:{line}: ")),
            "{key}: line {line}: {stderr}"
        );
        assert!(stderr.contains(&format!("{section}.{key}")), "{stderr}");
    }
}

#[tokio::test]
async fn hide_internals_keeps_tracebacks_and_paths_from_callers_and_logs_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mock.json");
    let config = json!({"responses": [
        {"command": "py", "error": {"kind": "python-exception", "type": "KeyError", "message": "'k'",
            "traceback": "Traceback (most recent call last):\n  File \"/srv/secret/app.py\", line 3"}},
        {"command": "wc", "error": {"kind": "worker-crashed", "pid": 7, "exit_status": "signal 11 (SIGSEGV)",
            "stderr_tail": "reading /srv/secret/keys.pem"}},
        {"command": "nsc", "error": {"kind": "no-such-command", "message": "x; the module has: admin_reset, a, b"}},
        {"command": "af", "error": {"kind": "adapter-fault", "message": "wasm trap at /srv/secret/plugins/x.wasm"}},
        {"command": "un", "error": {"kind": "unavailable", "message": "cannot import /srv/secret/app.py"}},
    ]});
    std::fs::write(&path, config.to_string()).unwrap();
    let path = path.display().to_string();
    let args = ["--adapter", "mock", "--adapter-config", &path];
    let developer = Served::start(&args).await;
    let (_, body) = developer.call(json!({"command": "py"})).await;
    assert!(
        body.to_string().contains("/srv/secret"),
        "shown by default: {body}"
    );

    let server = Served::start(&[&args[..], &["--hide-internals"]].concat()).await;
    for (command, kind) in [
        ("py", "python-exception"),
        ("wc", "worker-crashed"),
        ("nsc", "no-such-command"),
        ("af", "adapter-fault"),
        ("un", "unavailable"),
    ] {
        let (_, body) = server.call(json!({"command": command})).await;
        let text = body.to_string();
        assert_eq!(body["error"]["kind"], kind, "{body}");
        assert!(!text.contains("/srv/secret"), "{command}: {body}");
        assert!(!text.contains("Traceback"), "{command}: {body}");
        assert!(!text.contains("SIGSEGV"), "{command}: {body}");
        assert!(!text.contains("admin_reset"), "{command}: {body}");
        let id = body["error"]["request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{command}: no request id: {body}"))
            .to_string();
        // The operator finds it all in the log, by the id.
        let log = within(30, async {
            loop {
                let log = server.log_text();
                if log.contains(&id) {
                    return log;
                }
                tokio::task::yield_now().await;
            }
        })
        .await;
        let line = log.lines().find(|l| l.contains(&id)).unwrap();
        assert!(line.contains("WARN"), "{line}");
        if command != "nsc" {
            assert!(
                line.contains("secret") || line.contains("SIGSEGV"),
                "{line}"
            );
        }
    }
    let (_, body) = server.call(json!({"command": "py"})).await;
    assert_eq!(body["error"]["detail"]["type_name"], "KeyError", "{body}");
}

#[tokio::test]
async fn thousands_of_junk_command_names_leave_metrics_small_and_unforged() {
    let (server, _dir) = mock_server(&[]).await;
    let url = server.at("/v1/call");
    let clients: Vec<_> = (0..8)
        .map(|n| {
            let url = url.clone();
            tokio::spawn(async move {
                let http = client();
                for i in 0..400 {
                    let command = match i % 4 {
                        0 => format!("junk-{n}-{i}-{}", "x".repeat(200)),
                        1 => format!("q\"uote{n}-{i}"),
                        2 => format!("new\nline{n}-{i}"),
                        _ => format!("x{n}-{i}\"}} 1\nsnakepen_fake_total 1\n"),
                    };
                    post(&http, &url, &json!({"command": command})).await;
                }
            })
        })
        .collect();
    for c in within(120, join_all(clients)).await {
        c.unwrap();
    }
    let (status, metrics) = server.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.len() < 100_000,
        "/metrics is {} bytes after 3,200 junk names",
        metrics.len()
    );
    for line in metrics.lines() {
        assert!(!line.starts_with("snakepen_fake"), "a forged line: {line}");
        if !line.starts_with('#') {
            let quotes = line.matches('"').count() - line.matches("\\\"").count();
            assert_eq!(quotes % 2, 0, "unbalanced quotes: {line}");
        }
    }
    assert!(metrics.ends_with("# EOF\n"));
}

#[tokio::test]
async fn a_batch_keeps_a_sessions_calls_in_order_and_others_concurrent() {
    let (server, _dir) = mock_server(&[]).await;
    let requests = json!([
        {"command": "slow", "session": "a"},
        {"command": "add", "session": "a"},
        {"command": "add", "session": "b"},
        {"command": "add"},
    ]);
    let response = client()
        .post(server.at("/v1/batch"))
        .json(&json!({"requests": requests, "order": "completion"}))
        .send()
        .await
        .unwrap();
    let text = within(60, response.text()).await.unwrap();
    let indexes: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["index"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(indexes.len(), 4, "{text}");
    let at = |index: u64| indexes.iter().position(|&i| i == index).unwrap();
    assert!(
        at(0) < at(1),
        "session a's second call finished before its first: {text}"
    );
    // Session b and the call without a session did not wait for session a's slow call.
    assert!(at(2) < at(0) && at(3) < at(0), "{text}");
}

#[test]
fn session_ttl_ms_is_a_flag_of_the_pool() {
    let (code, stderr) =
        refused_to_start(&["serve", "--adapter", "mock", "--session-ttl-ms", "1000"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--session-ttl-ms"), "{stderr}");
    assert!(stderr.contains("--module"), "{stderr}");
}
