//! How a pool starts, recycles, shuts down, and lives beside other pools.

use crate::support::{alive, handlers, python_host, spawn_call, status_until, within};
use snakepen::{CallError, Request};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_recycled_after_max_requests() {
    let host = python_host("handlers", 1, |s| s.max_requests = Some(3)).await;
    within(60, host.ready()).await.unwrap();
    let mut pids = Vec::new();
    for _ in 0..6 {
        let r = within(30, host.call(Request::new("pid", "")))
            .await
            .unwrap();
        pids.push(r.worker_pid.unwrap());
    }
    assert_eq!(pids[0], pids[2]);
    assert_ne!(pids[2], pids[3], "a new worker after 3 requests");
    assert_eq!(pids[3], pids[5]);
    let status = status_until(&host, |s| s.recycles == 2).await;
    assert_eq!(status.restarts, 0, "a recycle is not a crash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_past_its_max_age_is_recycled_at_its_health_check() {
    let host = python_host("handlers", 1, |s| {
        s.max_age = Some(Duration::from_millis(100));
        s.health_interval = Some(Duration::from_millis(20));
    })
    .await;
    within(60, host.ready()).await.unwrap();
    let first = host.pool().unwrap().worker_pids()[0];
    let status = status_until(&host, |s| s.recycles >= 1 && s.idle == 1).await;
    assert_eq!(status.restarts, 0, "{status}");
    let now = within(30, host.call(Request::new("pid", "")))
        .await
        .unwrap();
    assert_ne!(now.worker_pid, Some(first));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_recycled_when_their_memory_grows_past_the_limit() {
    let host = python_host("handlers", 1, |s| s.max_rss_bytes = Some(1)).await;
    within(60, host.ready()).await.unwrap();
    let a = within(30, host.call(Request::new("pid", "")))
        .await
        .unwrap();
    let b = within(30, host.call(Request::new("pid", "")))
        .await
        .unwrap();
    assert_ne!(a.worker_pid, b.worker_pid);
    assert!(host.status().unwrap().recycles >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_calls_in_flight_finish_then_stops_every_worker() {
    let host = handlers(2).await;
    let pids = host.pool().unwrap().worker_pids();
    let in_flight = spawn_call(&host, Request::new("sleep", r#"{"ms": 300}"#));
    status_until(&host, |s| s.busy == 1).await;
    within(30, host.close()).await.unwrap();
    assert!(
        within(30, in_flight).await.unwrap().is_ok(),
        "the call in flight finished"
    );
    for pid in pids {
        assert!(!alive(pid), "worker {pid} still runs after shutdown");
    }
    match host.call(Request::new("nothing", "")).await {
        Err(CallError::Unavailable(message)) => {
            assert!(message.contains("shutting down"), "{message}")
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_a_call_that_outlives_the_grace_period() {
    let host = python_host("handlers", 1, |s| {
        s.shutdown_grace = Duration::from_millis(100)
    })
    .await;
    within(60, host.ready()).await.unwrap();
    let pid = host.pool().unwrap().worker_pids()[0];
    let in_flight = spawn_call(&host, Request::new("sleep", r#"{"ms": 30000}"#));
    status_until(&host, |s| s.busy == 1).await;
    within(30, host.close()).await.unwrap();
    assert!(matches!(
        within(30, in_flight).await.unwrap(),
        Err(CallError::Unavailable(_))
    ));
    assert!(!alive(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_host_kills_its_workers_and_nothing_else() {
    let keep = handlers(1).await;
    let dropped = handlers(2).await;
    let doomed = dropped.pool().unwrap().worker_pids();
    drop(dropped);
    crate::support::until_dead(&doomed).await;
    within(30, keep.call(Request::new("nothing", "")))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_with_different_modules_never_share_workers() {
    let a = handlers(2).await;
    let b = python_host("other", 2, |_| {}).await;
    within(60, b.ready()).await.unwrap();
    let pids_a = a.pool().unwrap().worker_pids();
    let pids_b = b.pool().unwrap().worker_pids();
    assert!(pids_a.iter().all(|p| !pids_b.contains(p)));
    for _ in 0..10 {
        let ra = within(30, a.call(Request::new("pid", ""))).await.unwrap();
        let rb = within(30, b.call(Request::new("whoami", "")))
            .await
            .unwrap();
        assert!(pids_a.contains(&ra.worker_pid.unwrap()));
        assert!(pids_b.contains(&rb.worker_pid.unwrap()));
        assert_eq!(rb.json().unwrap(), "other");
    }
    assert!(matches!(
        within(30, a.call(Request::new("whoami", ""))).await,
        Err(CallError::NoSuchCommand(_))
    ));
}
