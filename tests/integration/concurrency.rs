//! Many callers at once, and callers that give up: no call is lost and no
//! worker is left stuck.

use crate::support::{handlers, spawn_call, status_until, within};
use futures_util::future::join_all;
use snakepen::Request;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_callers_on_four_workers_are_all_answered() {
    let host = handlers(4).await;
    let calls: Vec<_> = (0..200)
        .map(|i| {
            let host = host.clone();
            tokio::spawn(async move {
                let payload = serde_json::json!({"a": i, "b": 1}).to_string();
                host.call(Request::new("add", payload)).await
            })
        })
        .collect();
    let results = within(60, join_all(calls)).await;
    let mut workers = std::collections::HashSet::new();
    for (i, result) in results.into_iter().enumerate() {
        let response = result.expect("the task ran").expect("the call succeeded");
        assert_eq!(response.json().unwrap(), serde_json::json!(i + 1));
        workers.insert(response.worker_pid.unwrap());
    }
    assert_eq!(workers.len(), 4, "every worker served");
    let status = host.status().unwrap();
    assert!(status.all_idle(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_callers_dropped_mid_call_lose_no_worker() {
    let host = handlers(4).await;
    let pids_before = host.pool().unwrap().worker_pids();
    let mut tasks = Vec::new();
    for i in 0..1000u64 {
        let host = host.clone();
        // Each caller gives up after 0 to 4 ms: before checkout, while
        // queued, after dispatch, or while the reply is on its way.
        let patience = Duration::from_micros((i * 397) % 4000);
        tasks.push(tokio::spawn(async move {
            let call = host.call(Request::new("sleep", r#"{"ms": 1}"#));
            let _ = tokio::time::timeout(patience, call).await;
        }));
    }
    within(60, join_all(tasks)).await;
    let status = status_until(&host, |s| s.all_idle()).await;
    assert_eq!(status.restarts, 0, "{status}");
    assert_eq!(host.pool().unwrap().worker_pids().len(), 4);
    let mut pids_after = host.pool().unwrap().worker_pids();
    let mut pids_before = pids_before;
    pids_before.sort();
    pids_after.sort();
    assert_eq!(pids_before, pids_after, "the same workers, none replaced");
    // And every one of them still serves.
    for _ in 0..8 {
        within(30, host.call(Request::new("nothing", "")))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_cannot_get_a_worker_in_time_is_told_how_many_were_busy() {
    let host = handlers(1).await;
    let busy = spawn_call(&host, Request::new("sleep", r#"{"ms": 1500}"#));
    status_until(&host, |s| s.busy == 1).await;
    let waited = host
        .call(Request::new("nothing", "").deadline(Duration::from_millis(200)))
        .await;
    match waited {
        Err(snakepen::CallError::PoolExhausted {
            busy,
            starting,
            dead,
            waited_ms,
        }) => {
            assert_eq!((busy, starting, dead), (1, 0, 0));
            assert!(waited_ms >= 150, "waited {waited_ms} ms");
        }
        other => panic!("expected pool-exhausted, got {other:?}"),
    }
    within(30, busy).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_callers_are_served_first_come_first_served() {
    let host = handlers(1).await;
    // Long enough for five callers to queue, even on a loaded machine.
    let busy = spawn_call(&host, Request::new("sleep", r#"{"ms": 1000}"#));
    status_until(&host, |s| s.busy == 1).await;
    let mut queued = Vec::new();
    for n in 1..=5 {
        queued.push(spawn_call(&host, Request::new("ticket", "")));
        // Each caller is in the queue before the next one comes.
        status_until(&host, |s| s.waiting == n).await;
    }
    within(30, busy).await.unwrap().unwrap();
    for (i, call) in queued.into_iter().enumerate() {
        let served = within(30, call).await.unwrap().unwrap();
        assert_eq!(
            served.json().unwrap(),
            serde_json::json!(i + 1),
            "caller {i} was served out of turn"
        );
    }
}
