//! Hostile workers (tests/python/hostile.py): each breaks the protocol or
//! the process rules in one way. Each ends in a typed error for its own call
//! only, a replaced worker, and nothing left running after shutdown.

use crate::support::{alive, python_host, spawn_call, status_until, until_dead, within};
use snakepen::{CallError, Host, Request};
use std::time::Duration;

async fn hostile_pool(size: usize) -> Host {
    let host = python_host("hostile", size, |s| {
        s.kill_grace = Duration::from_millis(500);
        s.max_frame_bytes = 1 << 20;
    })
    .await;
    within(60, host.ready()).await.expect("the workers start");
    host
}

fn crashed(result: Result<snakepen::Response, CallError>) -> (u32, String) {
    match result {
        Err(CallError::WorkerCrashed {
            pid, exit_status, ..
        }) => (pid, exit_status),
        other => panic!("expected worker-crashed, got {other:?}"),
    }
}

/// Runs `request` (which breaks its worker) beside a normal call on the
/// other worker, checks the normal call is unharmed, the pool is whole
/// again, and after shutdown no process of the pool is left.
async fn breaks_only_its_own_call(request: Request) -> (u32, String) {
    let host = hostile_pool(2).await;
    let pids = host.pool().unwrap().worker_pids();
    let hostile = spawn_call(&host, request);
    let normal = within(30, host.call(Request::new("ok", Vec::new())))
        .await
        .expect("the other worker serves");
    assert!(pids.contains(&(normal.json().unwrap().as_u64().unwrap() as u32)));
    let (pid, status) = crashed(within(30, hostile).await.unwrap());
    let status_now = status_until(&host, |s| s.idle == 2 && s.restarts >= 1).await;
    assert_eq!(status_now.dead, 0);
    assert!(!alive(pid), "the broken worker {pid} is gone");
    let after = host.pool().unwrap().worker_pids();
    within(30, host.close()).await.unwrap();
    until_dead(&after).await;
    (pid, status)
}

#[tokio::test]
async fn garbage_on_the_protocol_descriptor() {
    let (_, status) = breaks_only_its_own_call(Request::new("garbage", Vec::new())).await;
    assert!(status.contains("breaking the protocol"), "{status}");
}

#[tokio::test]
async fn a_frame_over_the_limit() {
    let request = Request::json("oversized", &serde_json::json!({ "size": 1u64 << 30 }));
    let (_, status) = breaks_only_its_own_call(request).await;
    assert!(status.contains("over the limit"), "{status}");
}

#[tokio::test]
async fn a_worker_that_hangs_up_and_keeps_running_is_killed() {
    let (_, status) = breaks_only_its_own_call(Request::new("hang_up", Vec::new())).await;
    assert!(status.contains("kept running"), "{status}");
}

#[tokio::test]
async fn a_worker_that_forks_and_exits_leaves_no_child_behind() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("child.pid");
    let request = Request::json(
        "fork_and_exit",
        &serde_json::json!({ "marker": marker.display().to_string() }),
    );
    let (_, status) = breaks_only_its_own_call(request).await;
    assert!(status.contains("exit status 7"), "{status}");
    let child: u32 = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    until_dead(&[child]).await;
}

#[tokio::test]
async fn a_worker_deaf_to_sigterm_is_killed_at_shutdown() {
    let host = hostile_pool(1).await;
    let pid = host
        .call(Request::new("deaf_to_sigterm", Vec::new()))
        .await
        .unwrap()
        .json()
        .unwrap()
        .as_u64()
        .unwrap() as u32;
    assert!(alive(pid));
    within(30, host.close()).await.unwrap();
    assert!(
        !alive(pid),
        "shutdown returned with the deaf worker {pid} still alive"
    );
}
