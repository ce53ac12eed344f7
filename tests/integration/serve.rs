//! `snakepen serve` in front of real Python workers, over real HTTP: the
//! per-call log, metrics of the pool, the shipped clients, slow and vanishing
//! clients, and a drain that runs out of time.

use crate::support::served::{Served, spawn_post};
use crate::support::{Ran, python_module, run, within};
use serde_json::json;
use std::io::Write;
use std::process::Command;

fn handlers() -> String {
    python_module("handlers")
}

/// Runs `program args…`, failing the test with its stderr unless it succeeds.
fn succeeds(program: &str, args: &[&str]) -> Ran {
    let out = run(Command::new(program).args(args));
    assert!(out.success(), "{program} {args:?}: {}", out.stderr);
    out
}

fn examples(file: &str) -> String {
    format!("{}/../examples/{file}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn calls_are_logged_as_json_lines_and_counted_in_metrics() {
    let module = handlers();
    let server = Served::start_with_env(
        &[
            "--module",
            &module,
            "--pool-size",
            "2",
            "--log-format",
            "json",
        ],
        &[(
            "SNAKEPEN_LOG",
            "snakepen::serve=debug,snakepen::worker=info",
        )],
    )
    .await;
    let (status, answer) = server
        .call(json!({"command": "add", "payload": [2, 3], "session": "s-9"}))
        .await;
    assert_eq!((status, &answer["payload"]), (200, &json!(5)), "{answer}");
    let pid = answer["worker_pid"].as_u64().expect("the worker's pid");
    let (status, _) = server
        .call(json!({"command": "talk", "payload": {"text": "hi"}}))
        .await;
    assert_eq!(status, 200);
    let (status, body) = server.call(json!({"command": "boom"})).await;
    assert_eq!(status, 500);
    assert_eq!(body["error"]["detail"]["type_name"], "ValueError", "{body}");
    assert!(
        body["error"]["detail"]["traceback"]
            .as_str()
            .unwrap()
            .contains("boom")
    );

    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains(r#"snakepen_workers{pool="default",state="idle"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("snakepen_queue_wait_seconds_count{pool=\"default\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("snakepen_worker_restarts_total{pool=\"default\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"snakepen_calls_total{pool="default",command="boom",outcome="python-exception"} 1"#
        ),
        "{metrics}"
    );
    let (_, status) = server.get("/v1/status").await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["pool"]["status"]["idle"], 2, "{status}");
    // Workers by id and pid; `worker_pids` stays for older clients.
    let workers = status["pool"]["workers"]
        .as_array()
        .expect("workers are listed");
    assert_eq!(workers.len(), 2, "{status}");
    assert!(workers.iter().all(|w| w["id"].is_u64()), "{status}");
    let pids: Vec<serde_json::Value> = workers.iter().map(|w| w["pid"].clone()).collect();
    assert_eq!(
        serde_json::Value::from(pids),
        status["pool"]["worker_pids"],
        "{status}"
    );

    // The log lines come out as the calls end; the stderr line of `talk` may trail.
    let lines = within(30, async {
        loop {
            let lines: Vec<serde_json::Value> = server
                .log_text()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect();
            let said = lines.iter().any(|l| l["fields"]["stream"] == "stderr");
            if said
                && lines
                    .iter()
                    .filter(|l| l["target"] == "snakepen::serve")
                    .count()
                    == 3
            {
                return lines;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    let add = lines
        .iter()
        .find(|l| l["target"] == "snakepen::serve" && l["fields"]["command"] == "add")
        .expect("a line for the add call");
    assert_eq!(add["level"], "DEBUG");
    assert_eq!(add["fields"]["session"], "s-9");
    assert_eq!(add["fields"]["outcome"], "ok");
    assert_eq!(add["fields"]["worker"].as_u64(), Some(pid));
    assert!(add["fields"]["latency_ms"].as_f64().is_some(), "{add}");
    let talk = lines
        .iter()
        .find(|l| l["fields"]["stream"] == "stderr")
        .unwrap();
    assert_eq!(talk["target"], "snakepen::worker");
    assert_eq!(talk["fields"]["message"], "stderr says hi");
    assert!(
        talk["fields"]["worker"].as_u64().is_some(),
        "tagged with its worker: {talk}"
    );
}

#[tokio::test]
async fn the_python_client_and_the_curl_example_work_against_the_demo_handlers() {
    let module = examples("handlers.py");
    let server = Served::start(&["--module", &module, "--pool-size", "2"]).await;
    let client = examples("client.py");
    let words = r#"{"text": "the cat and the hat"}"#;
    let args = [
        &client,
        "--url",
        &server.url,
        "--session",
        "u1",
        "word_stats",
        words,
    ];
    let out = succeeds("python3", &args);
    let answer: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(answer["words"], 5);

    let out = run(Command::new("python3").arg(examples("client.py")).args([
        "--url",
        &server.url,
        "no_such_thing",
    ]));
    assert_eq!(out.code, Some(1));
    let stderr = &out.stderr;
    assert!(stderr.contains("no-such-command (HTTP 404)"), "{stderr}");

    // The client as a library: a batch with an error in it.
    let script = format!(
        "import sys; sys.path.insert(0, {dir:?})\n\
         from client import Snakepen, SnakepenError\n\
         pen = Snakepen({url:?})\n\
         out = pen.batch([('word_stats', {{'text': 'a b a'}}), ('describe', {{'values': []}})])\n\
         assert out[0]['words'] == 3, out\n\
         assert isinstance(out[1], SnakepenError) and out[1].kind == 'python-exception', out\n\
         print('ok')",
        dir = examples(""),
        url = server.url
    );
    succeeds("python3", &["-c", &script]);

    let out = succeeds("bash", &[&examples("curl.sh"), &server.url]);
    let stdout = &out.stdout;
    let first: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["payload"]["words"], 5, "{stdout}");
    assert_eq!(stdout.lines().nth(1), Some("404"), "{stdout}");
}

#[tokio::test]
async fn a_slow_or_vanishing_client_does_not_hold_a_worker() {
    let module = handlers();
    let server = Served::start(&["--module", &module, "--pool-size", "1"]).await;
    // A client that sends its headers and half a body, then stalls.
    let address = server.url.trim_start_matches("http://").to_string();
    let mut stalled = std::net::TcpStream::connect(&address).unwrap();
    write!(
        stalled,
        "POST /v1/call HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"command\": "
    )
    .unwrap();
    // The one worker still serves others.
    let (status, body) = server.call(json!({"command": "pid"})).await;
    assert_eq!(status, 200, "{body}");
    let pid = body["payload"].clone();

    // A client that goes away while its call runs: the call is cancelled,
    // the worker drained and reused, not killed.
    let url = server.at("/v1/call");
    let vanishing = spawn_post(&url, json!({"command": "sleep", "payload": {"ms": 300}}));
    server
        .status_until(|status| status["pool"]["status"]["busy"] == 1)
        .await;
    vanishing.abort();
    let (status, body) = server.call(json!({"command": "pid"})).await;
    assert_eq!(
        (status, &body["payload"]),
        (200, &pid),
        "the same worker serves: {body}"
    );
    let status = server.status().await;
    assert_eq!(status["pool"]["status"]["restarts"], 0, "{status}");
    drop(stalled);
}

#[tokio::test]
async fn a_call_still_running_when_the_drain_grace_ends_gets_a_clear_503() {
    let module = handlers();
    let mut server = Served::start(&[
        "--module",
        &module,
        "--pool-size",
        "2",
        "--drain-grace-ms",
        "300",
    ])
    .await;
    let url = server.at("/v1/call");
    let long = spawn_post(&url, json!({"command": "sleep", "payload": {"ms": 60000}}));
    let short = spawn_post(&url, json!({"command": "sleep", "payload": {"ms": 100}}));
    server.status_until(|status| status["in_flight"] == 2).await;
    server.terminate();
    let (status, body) = within(30, short).await.unwrap();
    assert_eq!(
        status, 200,
        "the short call finished within the grace: {body}"
    );
    let (status, body) = within(30, long).await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["kind"], "unavailable", "{body}");
    let (exit, _) = server.exit().await;
    assert!(exit.success(), "{exit:?}: {}", server.log_text());
}

#[tokio::test]
async fn a_batch_runs_each_sessions_calls_in_request_order() {
    let module = python_module("sessions");
    let server = Served::start(&[
        "--module",
        &module,
        "--pool-size",
        "2",
        "--affinity",
        "strict",
    ])
    .await;
    let mut requests = Vec::new();
    for s in 0..20 {
        let name = format!("s{s}");
        requests.push(json!({"command": "start", "payload": [name], "session": name}));
        for n in 0..5 {
            requests.push(json!({"command": "step", "payload": [name, n], "session": name}));
        }
    }
    // A call without a session is not held back by any session.
    requests.push(json!({"command": "ping"}));
    for order in ["request", "completion"] {
        let response = crate::support::served::client()
            .post(server.at("/v1/batch"))
            .json(&json!({"requests": requests, "order": order}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{order}");
        let text = within(120, response.text()).await.unwrap();
        let mut results: Vec<serde_json::Value> = if order == "request" {
            let body: serde_json::Value = serde_json::from_str(&text).unwrap();
            body["results"].as_array().unwrap().clone()
        } else {
            let mut lines: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            lines.sort_by_key(|l| l["index"].as_u64().unwrap());
            lines
        };
        assert_eq!(results.len(), 121, "{order}");
        results.pop();
        let failed: Vec<_> = results.iter().filter(|r| r["status"] != 200).collect();
        assert!(
            failed.is_empty(),
            "{order}: {} of 120 calls overtook their session's start: {:?}",
            failed.len(),
            failed.first()
        );
        for (i, result) in results.iter().enumerate() {
            let n = i % 6;
            if n > 0 {
                let expected: Vec<usize> = (0..n).collect();
                // Each order run builds its sessions anew.
                assert_eq!(result["payload"], json!(expected), "{order}: call {i}");
            }
        }
    }
}

/// `POST /v1/stream` from the real binary, read by curl as it comes and by
/// a Python client that hangs up after three events.
#[tokio::test]
async fn a_stream_arrives_as_server_sent_events_and_a_client_that_hangs_up_stops_it() {
    let module = handlers();
    let server = Served::start(&["--module", &module, "--pool-size", "1"]).await;
    let url = server.at("/v1/stream");
    let body = r#"{"command": "count", "payload": [5]}"#;
    let out = succeeds(
        "curl",
        &[
            "-sS",
            "--no-buffer",
            "-H",
            "content-type: application/json",
            "-d",
            body,
            &url,
        ],
    );
    let text = &out.stdout;
    let events: Vec<&str> = text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .collect();
    assert_eq!(events.len(), 6, "{text}");
    for (i, event) in events[..5].iter().enumerate() {
        assert_eq!(*event, format!("event: chunk\ndata: {i}"), "{text}");
    }
    assert!(
        events[5].starts_with("event: end\ndata: {\"payload\":\"counted 5\""),
        "{text}"
    );

    // A handler that raises mid-stream: its chunks, then an error event.
    let body = r#"{"command": "count", "payload": {"n": 9, "fail_after": 2}}"#;
    let out = succeeds(
        "curl",
        &[
            "-sS",
            "-N",
            "-H",
            "content-type: application/json",
            "-d",
            body,
            &url,
        ],
    );
    let text = &out.stdout;
    assert_eq!(text.matches("event: chunk\n").count(), 2, "{text}");
    assert!(
        text.contains("event: error\ndata: {\"error\":{\"kind\":\"python-exception\""),
        "{text}"
    );

    // A client that reads three events and hangs up: the generator's
    // `finally` runs, and the worker serves on.
    let (_, pid) = server.call(json!({"command": "pid"})).await;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("closed");
    let script = format!(
        "import json, urllib.request\n\
         body = json.dumps({{'command': 'count', 'payload': {{'n': 1000000, 'marker': {marker:?}}}}}).encode()\n\
         request = urllib.request.Request({url:?}, data=body, headers={{'content-type': 'application/json'}})\n\
         with urllib.request.urlopen(request) as answer:\n\
         \x20   assert answer.headers['content-type'].startswith('text/event-stream')\n\
         \x20   seen = 0\n\
         \x20   for line in answer:\n\
         \x20       if line.startswith(b'event: chunk'):\n\
         \x20           seen += 1\n\
         \x20       if seen == 3:\n\
         \x20           break\n\
         print('hung up')",
        marker = marker.display().to_string(),
    );
    let out = succeeds("python3", &["-c", &script]);
    assert_eq!(out.stdout.trim(), "hung up");
    within(30, async {
        while !marker.exists() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    let (status, body) = server.call(json!({"command": "pid"})).await;
    assert_eq!((status, &body["payload"]), (200, &pid["payload"]), "{body}");
    let status = server.status().await;
    assert_eq!(status["pool"]["status"]["restarts"], 0, "{status}");

    // Three streams: each timed to its first chunk, its chunks counted.
    let metrics = succeeds("curl", &["-sS", &server.at("/metrics")]).stdout;
    let line = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
            .to_string()
    };
    assert_eq!(line("snakepen_streams_open "), "snakepen_streams_open 0");
    assert!(
        line("snakepen_stream_first_chunk_seconds_count{pool=\"default\",command=\"count\"}")
            .ends_with(" 3")
    );
    assert!(
        line("snakepen_stream_chunks_sum{pool=\"default\",command=\"count\"}")
            .starts_with("snakepen_stream_chunks_sum{pool=\"default\",command=\"count\"} ")
    );
}
