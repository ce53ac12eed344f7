//! Sessions: bound to a worker for a TTL read at each use; hint prefers the
//! bound worker, strict requires it and says so when it is gone.

use crate::support::{kill9, pid_in, python_host, spawn_call, status_until, within};
use snakepen::{Affinity, CallError, Host, Request};
use std::time::Duration;

const TTL: Duration = Duration::from_millis(200);

async fn sessions_host(affinity: Affinity) -> Host {
    let host = python_host("handlers", 2, |s| {
        s.affinity = affinity;
        s.session_ttl = TTL;
    })
    .await;
    within(60, host.ready()).await.unwrap();
    host
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_keeps_its_worker_and_its_state() {
    let host = sessions_host(Affinity::Strict).await;
    let first = pid_in(&host, "alice").await.unwrap();
    for i in 0..10 {
        let payload = format!(r#"{{"key": "k{i}", "value": {i}}}"#);
        let r = within(
            30,
            host.call(Request::new("remember", payload).session("alice")),
        )
        .await
        .unwrap();
        assert_eq!(r.worker_pid, Some(first));
    }
    let r = within(
        30,
        host.call(Request::new("recall", r#"{"key": "k9"}"#).session("alice")),
    )
    .await
    .unwrap();
    assert_eq!(r.json().unwrap(), serde_json::json!(9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_expires_after_its_ttl_and_is_swept() {
    let host = sessions_host(Affinity::Strict).await;
    let first = pid_in(&host, "bob").await.unwrap();
    assert_eq!(host.status().unwrap().sessions, 1);
    // The subject here is time itself: let the TTL pass with no call.
    tokio::time::sleep(TTL * 2).await;
    assert_eq!(
        host.status().unwrap().sessions,
        0,
        "the sweeper forgot the session"
    );
    // An expired binding is no binding: losing its old worker is no error.
    kill9(first);
    status_until(&host, |s| s.restarts == 1 && s.idle == 2).await;
    pid_in(&host, "bob")
        .await
        .expect("a fresh session, not a lost one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ttl_is_read_at_each_use() {
    let host = sessions_host(Affinity::Strict).await;
    host.pool()
        .unwrap()
        .update_settings(|s| s.session_ttl = Duration::from_secs(3600));
    let first = pid_in(&host, "carol").await.unwrap();
    tokio::time::sleep(TTL * 2).await;
    assert_eq!(host.status().unwrap().sessions, 1, "the longer TTL holds");
    assert_eq!(pid_in(&host, "carol").await.unwrap(), first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_affinity_says_when_the_bound_worker_died() {
    let host = sessions_host(Affinity::Strict).await;
    host.pool()
        .unwrap()
        .update_settings(|s| s.session_ttl = Duration::from_secs(3600));
    let first = pid_in(&host, "dave").await.unwrap();
    kill9(first);
    status_until(&host, |s| s.restarts == 1).await;
    match pid_in(&host, "dave").await {
        Err(CallError::SessionWorkerGone(message)) => {
            assert!(message.contains("dave"), "{message}")
        }
        other => panic!("expected session-worker-gone, got {other:?}"),
    }
    // Told once: the next call starts the session afresh.
    pid_in(&host, "dave")
        .await
        .expect("the session starts again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_affinity_waits_for_the_bound_worker_when_it_is_busy() {
    let host = sessions_host(Affinity::Strict).await;
    host.pool()
        .unwrap()
        .update_settings(|s| s.session_ttl = Duration::from_secs(3600));
    let bound = pid_in(&host, "erin").await.unwrap();
    let slow = spawn_call(
        &host,
        Request::new("sleep", r#"{"ms": 300}"#).session("erin"),
    );
    status_until(&host, |s| s.busy == 1).await;
    // The other worker is idle, yet the session's call waits for its own.
    assert_eq!(pid_in(&host, "erin").await.unwrap(), bound);
    assert_eq!(
        within(30, slow).await.unwrap().unwrap().worker_pid,
        Some(bound)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hint_affinity_moves_a_session_whose_worker_died() {
    let host = sessions_host(Affinity::Hint).await;
    host.pool()
        .unwrap()
        .update_settings(|s| s.session_ttl = Duration::from_secs(3600));
    let first = pid_in(&host, "frank").await.unwrap();
    assert_eq!(pid_in(&host, "frank").await.unwrap(), first);
    kill9(first);
    status_until(&host, |s| s.restarts == 1).await;
    let second = pid_in(&host, "frank").await.unwrap();
    assert_ne!(second, first);
    assert_eq!(
        pid_in(&host, "frank").await.unwrap(),
        second,
        "rebound to the new worker"
    );
}
