//! Shutdown and drop: calls drained, late calls refused, workers stopped.

use super::*;

#[tokio::test(start_paused = true)]
async fn shutdown_drains_calls_in_flight_refuses_new_ones_and_closes() {
    let (pool, fake) = fake_pool(2, |s| s.shutdown_grace = Duration::from_secs(5));
    pool.ready().await.expect("ready");
    let in_flight = spawn_call(&pool, "wait", None);
    until(&pool, |s| s.busy == 1).await;
    let mut shutdown = Box::pin(pool.close());
    // Its first step, before any wait, closes the door.
    poll_once(&mut shutdown).await;
    let refused = call(&pool, "echo", None).await.expect_err("shutting down");
    assert_eq!(refused.kind(), "unavailable");
    fake.open_gate(1);
    in_flight
        .await
        .unwrap()
        .expect("the call in flight finishes");
    shutdown.await;
    assert_eq!(pool.status().stopped, 2);
    assert_eq!(fake.stopped().len(), 2);
    assert!(fake.closed());
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_a_call_that_outlives_the_grace() {
    let (pool, fake) = fake_pool(1, |s| s.shutdown_grace = Duration::from_secs(5));
    pool.ready().await.expect("ready");
    let in_flight = spawn_call(&pool, "wait", None);
    until(&pool, |s| s.busy == 1).await;
    let started = Instant::now();
    pool.close().await;
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    let error = in_flight.await.unwrap().expect_err("stopped");
    assert_eq!(error.kind(), "unavailable");
    assert!(error.to_string().contains("grace"), "{error}");
    assert!(fake.closed());
}

#[tokio::test(start_paused = true)]
async fn dropping_the_pool_aborts_its_workers_at_once() {
    let (pool, fake) = fake_pool(2, |_| {});
    pool.ready().await.expect("ready");
    let workers = pool.workers();
    drop(pool);
    assert_eq!(fake.aborted(), Some(workers));
}

#[tokio::test(start_paused = true)]
async fn a_start_that_never_answers_keeps_its_slot_starting() {
    let (pool, fake) = fake_pool(2, |_| {});
    fake.plan([Plan::Hang]);
    let status = until(&pool, |s| s.idle == 1).await;
    assert_eq!(status.starting, 1);
    call(&pool, "echo", None)
        .await
        .expect("the ready worker serves");
    pool.close().await;
    assert_eq!(pool.status().stopped, 2);
}
