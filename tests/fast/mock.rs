//! The mock adapter: canned answers, a deterministic default, injected
//! latency and failures, and counters a test can read back.

use crate::support::mock;
use futures_util::future::join_all;
use serde_json::json;
use snakepen::{CallError, Request};
use std::time::Duration;

fn call(command: &str, payload: serde_json::Value) -> Request {
    Request::json(command, &payload)
}

#[tokio::test]
async fn a_canned_response_answers_its_command() {
    let host =
        mock(json!({ "responses": [{ "command": "ping", "response": { "pong": true } }] })).await;
    let response = host.call(call("ping", json!({}))).await.unwrap();
    assert_eq!(response.json().unwrap(), json!({ "pong": true }));
    assert_eq!(response.worker_pid, None);
}

#[tokio::test]
async fn an_exact_payload_entry_wins_whatever_the_key_order_and_whitespace() {
    let host = mock(json!({ "responses": [
        { "command": "add", "response": "any payload" },
        { "command": "add", "payload": { "a": 1, "b": 2 }, "response": 3 },
    ] }))
    .await;
    let reordered = Request::new("add", br#"{ "b" : 2,   "a":1 }"#.to_vec());
    assert_eq!(
        host.call(reordered).await.unwrap().json().unwrap(),
        json!(3)
    );
    let other = call("add", json!({ "a": 1, "b": 3 }));
    assert_eq!(
        host.call(other).await.unwrap().json().unwrap(),
        json!("any payload")
    );
}

#[tokio::test]
async fn without_a_canned_entry_the_answer_is_derived_from_the_request_deterministically() {
    let host = mock(json!({})).await;
    let request = call("predict", json!({ "text": "hello" })).session("s1");
    let first = host.call(request.clone()).await.unwrap();
    let second = host.call(request).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(
        first.json().unwrap(),
        json!({ "mock": true, "command": "predict", "session": "s1", "payload": { "text": "hello" } })
    );

    let binary = host
        .call(Request::new("blob", vec![0xff, 0x00, 0x12]))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(binary["payload_len"], 3);
    assert_eq!(binary["payload_fnv1a"].as_str().unwrap().len(), 16);
}

#[tokio::test]
async fn a_canned_error_is_returned_as_the_configured_contract_case() {
    let host = mock(json!({ "responses": [{
        "command": "divide",
        "error": { "kind": "python-exception", "type": "ZeroDivisionError", "message": "division by zero", "traceback": "Traceback…" },
    }] }))
    .await;
    let err = host.call(call("divide", json!([1, 0]))).await.unwrap_err();
    assert_eq!(
        err,
        CallError::PythonException {
            type_name: "ZeroDivisionError".into(),
            message: "division by zero".into(),
            traceback: "Traceback…".into(),
        }
    );
}

#[tokio::test]
async fn every_nth_call_fails_and_the_others_succeed() {
    let host = mock(
        json!({ "failures": [{ "every": 3, "error": { "kind": "worker-crashed", "pid": 7 } }] }),
    )
    .await;
    let mut failed = Vec::new();
    for n in 1..=9 {
        if let Err(e) = host.call(call("ping", json!({}))).await {
            assert!(
                matches!(e, CallError::WorkerCrashed { pid: 7, .. }),
                "{e:?}"
            );
            failed.push(n);
        }
    }
    assert_eq!(failed, [3, 6, 9]);
    assert_eq!(host.counter("failures"), 3);
}

#[tokio::test]
async fn a_seeded_failure_rate_fails_the_same_calls_in_every_host() {
    let config =
        json!({ "failures": [{ "rate": 0.3, "seed": 42, "error": { "kind": "timeout" } }] });
    let mut runs = Vec::new();
    for _ in 0..2 {
        let host = mock(config.clone()).await;
        let mut failed = Vec::new();
        for n in 1..=200 {
            if host.call(call("ping", json!({}))).await.is_err() {
                failed.push(n);
            }
        }
        runs.push(failed);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(
        (30..=90).contains(&runs[0].len()),
        "a 30 % rate failed {} of 200 calls",
        runs[0].len()
    );

    let other_seed =
        mock(json!({ "failures": [{ "rate": 0.3, "seed": 43, "error": { "kind": "timeout" } }] }))
            .await;
    let mut failed = Vec::new();
    for n in 1..=200 {
        if other_seed.call(call("ping", json!({}))).await.is_err() {
            failed.push(n);
        }
    }
    assert_ne!(failed, runs[0], "another seed fails other calls");
}

#[tokio::test]
async fn a_failure_by_command_fails_that_command_only() {
    let host = mock(json!({ "failures": [{ "command": "flaky", "error": { "kind": "bad-request", "message": "nope" } }] })).await;
    assert_eq!(
        host.call(call("flaky", json!({}))).await,
        Err(CallError::BadRequest("nope".into()))
    );
    assert!(host.call(call("steady", json!({}))).await.is_ok());
}

#[tokio::test]
async fn every_is_counted_per_command_when_the_rule_names_one() {
    let host = mock(
        json!({ "failures": [{ "command": "b", "every": 2, "error": { "kind": "timeout" } }] }),
    )
    .await;
    let mut outcomes = Vec::new();
    for command in ["a", "b", "a", "a", "b", "b", "b"] {
        outcomes.push(host.call(call(command, json!({}))).await.is_ok());
    }
    assert_eq!(outcomes, [true, true, true, true, false, true, false]);
}

#[tokio::test]
async fn injected_latency_delays_the_answer_and_a_short_deadline_cuts_it() {
    let host = mock(json!({ "latency_ms": 60_000, "responses": [{ "command": "quick", "response": 1, "latency_ms": 0 }] })).await;
    let err = host
        .call(call("slow", json!({})).deadline(Duration::from_millis(50)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::Timeout(ref m) if m.contains("slow")),
        "{err:?}"
    );
    // The host is not wedged by the abandoned call.
    assert_eq!(
        host.call(call("quick", json!({})))
            .await
            .unwrap()
            .json()
            .unwrap(),
        json!(1)
    );

    let delayed = mock(json!({ "latency_ms": 30 })).await;
    let started = tokio::time::Instant::now();
    delayed.call(call("ping", json!({}))).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(30),
        "the latency was injected"
    );
}

#[tokio::test]
async fn counters_count_calls_per_command_and_can_be_read_back() {
    let host = mock(json!({})).await;
    for command in ["a", "b", "a", "c", "a"] {
        host.call(call(command, json!({}))).await.unwrap();
    }
    let counters = host.counters();
    assert_eq!(counters["calls"], 5);
    assert_eq!(counters["calls/a"], 3);
    assert_eq!(counters["calls/b"], 1);
    assert_eq!(host.counter("calls/never"), 0);
}

#[tokio::test]
async fn concurrent_calls_are_each_counted_once() {
    let host = mock(json!({ "failures": [{ "every": 4, "error": { "kind": "timeout" } }] })).await;
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let host = host.clone();
            tokio::spawn(async move { host.call(call("ping", json!({}))).await.is_ok() })
        })
        .collect();
    let ok: usize = join_all(tasks)
        .await
        .into_iter()
        .map(|ok| usize::from(ok.unwrap()))
        .sum();
    assert_eq!(host.counter("calls"), 200);
    assert_eq!(ok, 150, "exactly every fourth of 200 calls failed");
}
