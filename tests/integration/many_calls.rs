//! Several calls per worker (`max_concurrency`) on real Python: async
//! handlers on the worker's event loop, plain functions on its threads,
//! deadlines that cancel or drain, and a worker killed with its calls.

use crate::support::{alive, bridge, python_module, spawn_call, status_until, within};
use futures_util::future::join_all;
use snakepen::{CallError, Host, Request};
use std::collections::HashSet;
use std::time::{Duration, Instant};

async fn pool_of(size: usize, max_concurrency: usize) -> Host {
    let mut pool = snakepen::PoolConfig::new(python_module("handlers"));
    pool.size = size;
    pool.max_concurrency = max_concurrency;
    pool.settings.kill_grace = Duration::from_millis(500);
    let host = bridge(pool).await;
    within(60, host.ready()).await.expect("the workers start");
    host
}

fn request(command: &str, payload: serde_json::Value) -> Request {
    Request::json(command, &payload)
}

/// 200 calls of `command` (which waits 0.2 s) at once on 2 workers of 100:
/// a worker holding one call at a time would need 20 s.
async fn two_hundred_at_once(command: &str) {
    let host = pool_of(2, 100).await;
    let started = Instant::now();
    let calls: Vec<_> = (0..200)
        .map(|_| spawn_call(&host, request(command, serde_json::json!([0.2]))))
        .collect();
    let results = within(60, join_all(calls)).await;
    let elapsed = started.elapsed();
    let mut pids = HashSet::new();
    for result in results {
        let answer = result.unwrap().expect("every call is answered");
        pids.insert(answer.json().unwrap().as_u64().unwrap());
    }
    assert_eq!(pids.len(), 2, "both workers served");
    // A bound no pool of one call per worker could meet (it would take
    // 20 s), with room for a slow machine; not a speed measurement.
    assert!(elapsed < Duration::from_secs(10), "{command}: {elapsed:?}");
    let status = status_until(&host, |s| s.in_flight == 0).await;
    assert_eq!(status.restarts, 0, "{status}");
}

/// A call waits for its worker inside an adapter instance: a host that
/// owns its runtime makes room for as many as its pool holds at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_the_pool_can_hold_is_in_flight_at_once() {
    let host = pool_of(2, 150).await;
    let calls: Vec<_> = (0..300)
        .map(|_| spawn_call(&host, request("nap", serde_json::json!([3]))))
        .collect();
    let status = status_until(&host, |s| s.in_flight == 300).await;
    assert_eq!(status.waiting, 0, "{status}");
    for result in within(60, join_all(calls)).await {
        result.unwrap().expect("answered");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_async_calls_share_two_workers() {
    two_hundred_at_once("nap").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_plain_calls_share_two_workers_threads() {
    two_hundred_at_once("doze").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_call_past_its_deadline_is_cancelled_and_its_worker_lives() {
    let host = pool_of(1, 4).await;
    let pid = host.pool().unwrap().worker_pids()[0];
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("finally");
    let other = spawn_call(&host, request("nap", serde_json::json!([1.0])));
    let mut late = request(
        "nap_then_mark",
        serde_json::json!({"seconds": 60, "marker": marker.display().to_string()}),
    );
    late.deadline = Some(Duration::from_millis(300));
    match within(30, host.call(late)).await {
        Err(CallError::Timeout(message)) => assert!(message.contains("cancelled"), "{message}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The coroutine was cancelled: its `finally` ran, long before its 60 s.
    within(30, async {
        while !marker.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let answer = within(30, other)
        .await
        .unwrap()
        .expect("its other call is answered");
    assert_eq!(answer.worker_pid, Some(pid));
    assert_eq!(
        host.pool().unwrap().worker_pids(),
        [pid],
        "the same worker serves on"
    );
    let status = host.status().unwrap();
    assert_eq!(status.restarts, 0, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_call_past_its_deadline_drains_its_worker_after_its_other_calls() {
    let host = pool_of(1, 4).await;
    let pid = host.pool().unwrap().worker_pids()[0];
    let other = spawn_call(&host, request("doze", serde_json::json!([1.0])));
    let mut late = request("doze", serde_json::json!([30]));
    late.deadline = Some(Duration::from_millis(300));
    assert!(matches!(
        within(30, host.call(late)).await,
        Err(CallError::Timeout(_))
    ));
    let answer = within(30, other)
        .await
        .unwrap()
        .expect("its other call is answered");
    assert_eq!(answer.worker_pid, Some(pid));
    status_until(&host, |s| s.restarts == 1 && s.idle == 1).await;
    assert!(!alive(pid), "the drained worker {pid} was stopped");
    let next = within(30, host.call(request("pid", serde_json::json!([])))).await;
    assert_ne!(next.unwrap().worker_pid, Some(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_holding_fifty_calls_fails_each_and_is_replaced() {
    let host = pool_of(1, 64).await;
    let pid = host.pool().unwrap().worker_pids()[0];
    let calls: Vec<_> = (0..50)
        .map(|_| spawn_call(&host, request("nap", serde_json::json!([60]))))
        .collect();
    // Every call reached the worker (one leased but not yet sent when the
    // worker dies goes to its replacement instead, by design).
    within(30, async {
        loop {
            let running = host.call(request("napping", serde_json::json!([]))).await;
            if running.unwrap().json().unwrap() == 50 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    for result in within(30, join_all(calls)).await {
        match result.unwrap() {
            Err(CallError::WorkerCrashed { exit_status, .. }) => {
                assert!(exit_status.contains("SIGKILL"), "{exit_status}")
            }
            other => panic!("expected worker-crashed, got {other:?}"),
        }
    }
    let status = status_until(&host, |s| s.idle == 1 && s.in_flight == 0).await;
    assert_eq!(status.restarts, 1, "{status}");
}
