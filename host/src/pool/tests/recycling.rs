//! Workers replaced while healthy (by count, age and memory), health pings,
//! and handler errors that keep their worker.

use super::*;

#[tokio::test(start_paused = true)]
async fn workers_are_recycled_by_count_age_and_memory() {
    // By count: the second call is the last.
    let (pool, fake) = fake_pool(1, |s| s.max_requests = Some(2));
    pool.ready().await.expect("ready");
    call(&pool, "echo", None).await.expect("answered");
    assert_eq!(fake.starts(), 1);
    call(&pool, "echo", None).await.expect("answered");
    let status = until(&pool, |s| s.recycles == 1 && s.idle == 1).await;
    assert_eq!((status.restarts, fake.starts()), (0, 2));

    // By age: checked after a call.
    let (pool, fake) = fake_pool(1, |s| s.max_age = Some(Duration::from_secs(60)));
    pool.ready().await.expect("ready");
    call(&pool, "echo", None).await.expect("answered");
    assert_eq!(pool.status().recycles, 0);
    tokio::time::sleep(Duration::from_secs(61)).await;
    call(&pool, "echo", None).await.expect("answered");
    until(&pool, |s| s.recycles == 1 && s.idle == 1).await;
    assert_eq!(fake.starts(), 2);

    // By memory, as the connection reports it.
    let (pool, fake) = fake_pool(1, |s| s.max_rss_bytes = Some(100 << 20));
    pool.ready().await.expect("ready");
    let id = pool.workers()[0].id;
    fake.set_memory(id, 99 << 20);
    call(&pool, "echo", None).await.expect("answered");
    assert_eq!(pool.status().recycles, 0);
    fake.set_memory(id, 101 << 20);
    call(&pool, "echo", None).await.expect("answered");
    until(&pool, |s| s.recycles == 1 && s.idle == 1).await;
    assert_eq!(fake.stopped(), [id]);
}

#[tokio::test(start_paused = true)]
async fn a_workers_memory_is_read_only_when_a_memory_limit_is_set() {
    let (pool, fake) = fake_pool(1, |_| {});
    pool.ready().await.expect("ready");
    for _ in 0..3 {
        call(&pool, "echo", None).await.expect("answered");
    }
    assert_eq!(fake.memory_reads(), 0, "no limit, no read of /proc");
    pool.update_settings(|s| s.max_rss_bytes = Some(1 << 30));
    call(&pool, "echo", None).await.expect("answered");
    assert_eq!(fake.memory_reads(), 1, "one read after the call");
}

#[tokio::test(start_paused = true)]
async fn idle_workers_are_pinged_and_an_unhealthy_one_replaced() {
    let (pool, fake) = fake_pool(1, |s| s.health_interval = Some(Duration::from_secs(10)));
    pool.ready().await.expect("ready");
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(fake.pings(), 2);
    assert_eq!(pool.status().restarts, 0);
    let sick = pool.workers()[0].id;
    fake.make_sick(sick);
    tokio::time::sleep(Duration::from_secs(10)).await;
    until(&pool, |s| s.restarts == 1 && s.idle == 1).await;
    assert_eq!(fake.stopped(), [sick]);
}

#[tokio::test(start_paused = true)]
async fn a_handlers_exception_keeps_the_worker() {
    let (pool, fake) = fake_pool(1, |_| {});
    pool.ready().await.expect("ready");
    let error = call(&pool, "fail", None).await.expect_err("it raised");
    assert_eq!(error.kind(), "python-exception");
    let status = until(&pool, |s| s.idle == 1).await;
    assert_eq!((status.restarts, fake.starts()), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn after_a_reload_each_worker_is_replaced_once_its_calls_end() {
    let (pool, fake) = fake_pool(2, |_| {});
    pool.ready().await.expect("ready");
    let before: Vec<_> = pool.workers().iter().map(|w| w.id).collect();
    // One worker busy with a call that waits at the gate.
    let held = spawn_call(&pool, "wait", None);
    until(&pool, |s| s.busy == 1).await;
    pool.inner.core.next_generation();
    // The idle one goes at once; the busy one finishes its call first.
    until(&pool, |s| s.recycles == 1 && s.idle == 1).await;
    assert!(!held.is_finished());
    fake.open_gate(1);
    held.await
        .expect("the task ran")
        .expect("the call held across the reload is answered");
    let status = until(&pool, |s| s.recycles == 2 && s.idle == 2).await;
    assert_eq!((status.restarts, fake.starts()), (0, 4));
    let after: Vec<_> = pool.workers().iter().map(|w| w.id).collect();
    assert!(
        after.iter().all(|id| !before.contains(id)),
        "{before:?} → {after:?}"
    );
    // Calls go on, on the new workers.
    call(&pool, "echo", None).await.expect("answered");
}
