//! The python-bridge adapter's policy: per-command timeouts, and retries
//! after a crash for commands marked idempotent only.

use crate::support::{bridge_with, python_module, within};
use serde_json::json;
use snakepen::{CallError, Host, PoolConfig, Request};

/// A python-bridge host with `config` on two workers of tests/python/handlers.py.
async fn bridge(config: serde_json::Value) -> Result<Host, snakepen::Error> {
    let mut pool = PoolConfig::new(python_module("handlers"));
    pool.size = 2;
    bridge_with(config, pool).await
}

fn crash_once(marker: &std::path::Path) -> Request {
    Request::json("crash_once", &json!({ "marker": marker }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_command_is_retried_after_its_worker_crashed() {
    let dir = tempfile::tempdir().unwrap();
    let host = bridge(json!({"commands": {"crash_once": {"idempotent": true}}}))
        .await
        .unwrap();
    within(60, host.ready()).await.unwrap();
    let response = within(30, host.call(crash_once(&dir.path().join("m"))))
        .await
        .unwrap();
    assert_eq!(response.json().unwrap(), "survived");
    assert_eq!(host.status().unwrap().restarts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_other_command_fails_with_the_crash() {
    let dir = tempfile::tempdir().unwrap();
    let host = bridge(json!({})).await.unwrap();
    within(60, host.ready()).await.unwrap();
    match within(30, host.call(crash_once(&dir.path().join("m")))).await {
        Err(CallError::WorkerCrashed { exit_status, .. }) => {
            assert_eq!(exit_status, "exit status 1")
        }
        other => panic!("expected worker-crashed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_timeout_bounds_the_worker_below_the_callers_deadline() {
    let host = bridge(json!({"commands": {"sleep": {"timeout_ms": 200}}}))
        .await
        .unwrap();
    within(60, host.ready()).await.unwrap();
    let slow = Request::new("sleep", r#"{"ms": 20000}"#);
    assert!(matches!(
        within(30, host.call(slow)).await,
        Err(CallError::Timeout(_))
    ));
    let fast = Request::new("sleep", r#"{"ms": 1}"#);
    within(30, host.call(fast)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_a_command_not_marked_idempotent_is_refused_by_name() {
    let error = bridge(json!({"commands": {"charge": {"retries": 2}}}))
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("commands.charge.retries") && message.contains("idempotent"),
        "{message}"
    );
    let error = bridge(json!({"comands": {}})).await.unwrap_err();
    assert!(error.to_string().contains("comands"), "{error}");
}
