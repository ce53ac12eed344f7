//! Checkout: every worker at once, callers in order, callers that leave
//! at any point, and the error at the deadline.

use super::*;

#[tokio::test(start_paused = true)]
async fn every_worker_starts_at_once_and_serves_calls() {
    let (pool, fake) = fake_pool(3, |_| {});
    pool.ready().await.expect("ready");
    assert_eq!(fake.starts(), 3);
    assert!(
        fake.start_times()
            .iter()
            .all(|t| *t == fake.start_times()[0])
    );
    let answer = call(&pool, "echo", None).await.expect("answered");
    assert_eq!(answer.payload, b"{}");
    let workers = pool.workers();
    assert_eq!(workers.len(), 3);
    assert!(workers.iter().all(|w| w.pid.is_none()), "{workers:?}");
    assert!(pool.worker_pids().is_empty());
    assert_eq!(*pool.functions(), ["echo".to_string()]);
    assert!(until(&pool, |s| s.idle == 3).await.all_idle());
}

#[tokio::test(start_paused = true)]
async fn callers_queue_in_order_and_each_gets_the_freed_worker() {
    let (pool, fake) = fake_pool(1, |_| {});
    pool.ready().await.expect("ready");
    let holder = spawn_call(&pool, "wait", None);
    until(&pool, |s| s.busy == 1).await;
    let mut answers = Vec::new();
    for n in 0..3 {
        let queued = pool.clone();
        answers.push(tokio::spawn(async move {
            let payload = format!("{n}").into_bytes();
            queued
                .call("wait", None, payload, within(Duration::from_secs(30)))
                .await
        }));
        until(&pool, |s| s.waiting == n + 1).await;
    }
    fake.open_gate(1);
    holder.await.unwrap().expect("the first call is answered");
    for (n, answer) in answers.into_iter().enumerate() {
        // Each queued call is answered only after the one before it.
        assert!(!answer.is_finished());
        fake.open_gate(1);
        let payload = answer.await.unwrap().expect("answered").payload;
        assert_eq!(payload, format!("{n}").into_bytes());
    }
    assert!(until(&pool, |s| s.all_idle()).await.waiting == 0);
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_leaves_the_queue_is_forgotten() {
    let (pool, fake) = fake_pool(1, |_| {});
    pool.ready().await.expect("ready");
    let holder = spawn_call(&pool, "wait", None);
    until(&pool, |s| s.busy == 1).await;
    let mut queued = Box::pin(call(&pool, "echo", None));
    poll_once(&mut queued).await;
    assert_eq!(pool.status().waiting, 1);
    drop(queued);
    assert_eq!(pool.status().waiting, 0);
    fake.open_gate(1);
    holder.await.unwrap().expect("answered");
    let status = until(&pool, |s| s.idle == 1).await;
    assert_eq!((status.busy, status.restarts), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_lease_sent_to_a_caller_that_then_left_comes_back() {
    let (pool, fake) = fake_pool(1, |_| {});
    pool.ready().await.expect("ready");
    let holder = spawn_call(&pool, "wait", None);
    until(&pool, |s| s.busy == 1).await;
    let mut queued = Box::pin(call(&pool, "echo", None));
    poll_once(&mut queued).await;
    fake.open_gate(1);
    holder.await.unwrap().expect("answered");
    // The freed worker was leased to the queued caller, which has not run
    // since: dropping it now drops the lease inside its channel.
    assert_eq!(pool.status().busy, 1, "{}", pool.status());
    drop(queued);
    let status = until(&pool, |s| s.idle == 1).await;
    assert_eq!((status.busy, status.waiting), (0, 0));
    call(&pool, "echo", None)
        .await
        .expect("the worker serves again");
}

#[tokio::test(start_paused = true)]
async fn a_call_dropped_in_flight_is_drained_and_its_worker_kept() {
    let (pool, fake) = fake_pool(1, |_| {});
    pool.ready().await.expect("ready");
    let worker = pool.workers()[0].clone();
    let mut in_flight = Box::pin(call(&pool, "wait", None));
    poll_once(&mut in_flight).await;
    until(&pool, |s| s.busy == 1).await;
    drop(in_flight);
    // The worker still runs the call: it is not lent to anyone meanwhile.
    assert_eq!(pool.status().busy, 1);
    fake.open_gate(1);
    let status = until(&pool, |s| s.idle == 1).await;
    assert_eq!((status.restarts, status.recycles), (0, 0));
    assert_eq!(pool.workers(), [worker]);
}

#[tokio::test(start_paused = true)]
async fn a_pool_with_no_free_worker_says_who_is_busy_at_the_deadline() {
    let (pool, _fake) = fake_pool(1, |_| {});
    pool.ready().await.expect("ready");
    let _holder = spawn_call(&pool, "wait", None);
    until(&pool, |s| s.busy == 1).await;
    let asked = Instant::now();
    let error = pool
        .call("echo", None, Vec::new(), within(Duration::from_millis(250)))
        .await
        .expect_err("no worker is free");
    assert_eq!(asked.elapsed(), Duration::from_millis(250));
    match error {
        CallError::PoolExhausted {
            busy,
            starting,
            dead,
            waited_ms,
        } => assert_eq!((busy, starting, dead, waited_ms), (1, 0, 0, 250)),
        other => panic!("expected pool-exhausted, got {other:?}"),
    }
    assert_eq!(pool.status().waiting, 0);
}
