//! Several calls per worker (`max_concurrency`): how many a worker holds,
//! which worker a call goes to, and what a deadline or a crash does to the
//! calls a worker holds.

use super::*;

/// `command` on a task of its own, with a deadline `d` from now.
fn spawn_call_within(
    pool: &Pool,
    command: &'static str,
    session: Option<&'static str>,
    d: Duration,
) -> tokio::task::JoinHandle<Result<Response, CallError>> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.call(command, session, b"{}".to_vec(), within(d)).await })
}

fn worker_of(answer: Result<Response, CallError>) -> u64 {
    String::from_utf8(answer.expect("answered").payload)
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_worker_holds_up_to_max_concurrency_calls_and_calls_go_to_the_least_loaded() {
    let (pool, fake) = fake_pool_of(2, 4, |_| {});
    pool.ready().await.expect("ready");
    // Four calls on two workers of room four: two each, not four on one.
    let first: Vec<_> = (0..4)
        .map(|_| spawn_call(&pool, "wait-who", None))
        .collect();
    let status = until(&pool, |s| s.in_flight == 4).await;
    assert_eq!((status.busy, status.idle), (2, 0), "{status}");
    let more: Vec<_> = (0..4)
        .map(|_| spawn_call(&pool, "wait-who", None))
        .collect();
    until(&pool, |s| s.in_flight == 8).await;
    // A ninth waits for room.
    let ninth = spawn_call(&pool, "echo", None);
    until(&pool, |s| s.waiting == 1).await;
    fake.open_gate(8);
    let mut per_worker = std::collections::HashMap::new();
    for call in first {
        *per_worker
            .entry(worker_of(call.await.unwrap()))
            .or_insert(0) += 1;
    }
    assert_eq!(
        per_worker.values().copied().collect::<Vec<_>>(),
        [2, 2],
        "least loaded first"
    );
    assert_eq!(futures_of(more).await.len(), 2);
    ninth
        .await
        .unwrap()
        .expect("the ninth is served once there is room");
    assert!(until(&pool, |s| s.in_flight == 0).await.all_idle());
}

#[tokio::test(start_paused = true)]
async fn a_strict_session_stays_on_its_worker_while_it_has_room() {
    let (pool, fake) = fake_pool_of(2, 4, |s| s.affinity = Affinity::Strict);
    pool.ready().await.expect("ready");
    let calls: Vec<_> = (0..4)
        .map(|_| spawn_call(&pool, "wait-who", Some("s")))
        .collect();
    until(&pool, |s| s.in_flight == 4).await;
    assert_eq!(pool.status().busy, 1, "all four on the session's worker");
    fake.open_gate(4);
    let workers: std::collections::HashSet<u64> = futures_of(calls).await;
    assert_eq!(workers.len(), 1);
}

async fn futures_of(
    calls: Vec<tokio::task::JoinHandle<Result<Response, CallError>>>,
) -> std::collections::HashSet<u64> {
    let mut workers = std::collections::HashSet::new();
    for call in calls {
        workers.insert(worker_of(call.await.unwrap()));
    }
    workers
}

#[tokio::test(start_paused = true)]
async fn an_async_call_past_its_deadline_is_cancelled_and_its_worker_lives() {
    let (pool, fake) = fake_pool_of(1, 2, |_| {});
    pool.ready().await.expect("ready");
    let worker = pool.workers()[0].id;
    let other = spawn_call(&pool, "wait-who", None);
    let late = spawn_call_within(&pool, "hang-async", None, Duration::from_secs(1));
    match late.await.unwrap() {
        Err(CallError::Timeout(message)) => assert!(message.contains("cancelled"), "{message}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    until_fake(&fake, |f| f.cancels() == 1).await;
    fake.open_gate(1);
    assert_eq!(
        worker_of(other.await.unwrap()),
        worker,
        "its other call is answered"
    );
    let status = until(&pool, |s| s.in_flight == 0).await;
    assert_eq!(status.restarts, 0, "{status}");
    assert!(fake.killed().is_empty());
    assert_eq!(pool.workers()[0].id, worker, "the same worker serves on");
}

#[tokio::test(start_paused = true)]
async fn a_plain_call_past_its_deadline_drains_its_worker_which_goes_after_its_other_calls() {
    let (pool, fake) = fake_pool_of(1, 2, |_| {});
    pool.ready().await.expect("ready");
    let worker = pool.workers()[0].id;
    let other = spawn_call(&pool, "wait-who", None);
    let late = spawn_call_within(&pool, "hang", None, Duration::from_secs(1));
    assert!(matches!(late.await.unwrap(), Err(CallError::Timeout(_))));
    // Drained: a new call waits for the replacement rather than joining it.
    let next = spawn_call(&pool, "who", None);
    until(&pool, |s| s.waiting == 1).await;
    assert!(fake.killed().is_empty(), "not while it still serves a call");
    fake.open_gate(1);
    assert_eq!(
        worker_of(other.await.unwrap()),
        worker,
        "its other call is answered"
    );
    let replacement = worker_of(next.await.unwrap());
    assert_ne!(replacement, worker);
    assert_eq!(
        fake.killed(),
        [worker],
        "killed: its stuck call could not be stopped"
    );
    assert_eq!(pool.status().restarts, 1);
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_dies_fails_every_call_it_held() {
    let (pool, fake) = fake_pool_of(1, 4, |_| {});
    pool.ready().await.expect("ready");
    let held: Vec<_> = (0..3).map(|_| spawn_call(&pool, "wait", None)).collect();
    until(&pool, |s| s.in_flight == 3).await;
    let crash = spawn_call(&pool, "crash", None);
    for call in held.into_iter().chain([crash]) {
        match call.await.unwrap() {
            Err(CallError::WorkerCrashed { exit_status, .. }) => {
                assert!(exit_status.contains("SIGSEGV"), "{exit_status}")
            }
            other => panic!("expected worker-crashed, got {other:?}"),
        }
    }
    let status = until(&pool, |s| s.idle == 1 && s.restarts == 1).await;
    assert_eq!(status.in_flight, 0, "{status}");
    drop(fake);
}
