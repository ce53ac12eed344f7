//! Workers that fail: start failures and their backoff, crashes, protocol
//! errors, deaths while idle, and calls past their deadline.

use super::*;

#[tokio::test(start_paused = true)]
async fn failed_starts_back_off_doubling_up_to_the_ceiling() {
    let (pool, fake) = fake_pool(1, |s| {
        s.restart_backoff = Duration::from_millis(100);
        s.restart_backoff_max = Duration::from_millis(500);
    });
    let failure = StartFailure::Timeout {
        after: Duration::from_secs(1),
    };
    fake.plan(std::iter::repeat_n(Plan::Fail(failure), 5));
    pool.ready().await.expect_err("the first start fails");
    until_fake(&fake, |f| f.starts() == 6).await;
    pool.ready().await.expect("the sixth start succeeds");
    let times = fake.start_times();
    let gaps: Vec<u128> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    assert_eq!(gaps, [100, 200, 400, 500, 500]);
    assert_eq!(pool.status().start_failures, 5);
}

#[tokio::test(start_paused = true)]
async fn a_young_death_after_failed_starts_continues_the_backoff_and_a_healthy_run_ends_it() {
    let tune = |s: &mut PoolSettings| {
        s.restart_backoff = Duration::from_millis(100);
        s.restart_backoff_max = Duration::from_secs(60);
    };
    let failure = || Plan::Fail(StartFailure::Protocol("garbage".into()));
    // Two failed starts, then a worker that dies at once: the third wait
    // is twice the second, as if its start had failed too.
    let (pool, fake) = fake_pool(1, tune);
    fake.plan([failure(), failure()]);
    until_fake(&fake, |f| f.starts() == 3).await;
    pool.ready().await.expect("the third start succeeds");
    let died = Instant::now();
    fake.end(pool.workers()[0].id, Exit::Code(1));
    until_fake(&fake, |f| f.starts() == 4).await;
    assert_eq!(fake.start_times()[3] - died, Duration::from_millis(400));

    // The same, but the worker ran longer than a healthy uptime first:
    // the streak is forgotten and it is replaced at once.
    let (pool, fake) = fake_pool(1, tune);
    fake.plan([failure(), failure()]);
    until_fake(&fake, |f| f.starts() == 3).await;
    pool.ready().await.expect("the third start succeeds");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let died = Instant::now();
    fake.end(pool.workers()[0].id, Exit::Code(1));
    until_fake(&fake, |f| f.starts() == 4).await;
    assert_eq!(fake.start_times()[3], died);
}

#[tokio::test(start_paused = true)]
async fn a_module_that_never_imports_fails_ready_and_every_call_at_once() {
    let (pool, fake) = fake_pool(2, |s| s.restart_backoff = Duration::from_secs(1));
    fake.plan(std::iter::repeat_n(Plan::Fail(import_error()), 100));
    match pool.ready().await {
        Err(Error::WorkerStart { message, .. }) => {
            assert!(message.contains("No module named 'numpyy'"), "{message}")
        }
        other => panic!("expected a start failure, got {other:?}"),
    }
    until(&pool, |s| s.dead == 2).await;
    let asked = Instant::now();
    match call(&pool, "echo", None).await {
        Err(CallError::PythonException { type_name, .. }) => {
            assert_eq!(type_name, "ModuleNotFoundError")
        }
        other => panic!("expected the import's exception, got {other:?}"),
    }
    assert_eq!(asked.elapsed(), Duration::ZERO, "no wait for a deadline");
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_crashes_in_a_call_is_replaced_at_once() {
    let (pool, fake) = fake_pool(1, |s| s.restart_backoff = Duration::from_secs(3));
    pool.ready().await.expect("ready");
    let crashed = Instant::now();
    match call(&pool, "crash", None).await {
        Err(CallError::WorkerCrashed { exit_status, .. }) => {
            assert_eq!(exit_status, "signal 11 (SIGSEGV)")
        }
        other => panic!("expected worker-crashed, got {other:?}"),
    }
    until(&pool, |s| s.idle == 1).await;
    assert_eq!(
        fake.start_times()[1],
        crashed,
        "no backoff: a call's input killed it"
    );
    assert_eq!(pool.status().restarts, 1);
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_breaks_the_protocol_is_replaced() {
    let (pool, fake) = fake_pool(1, |_| {});
    pool.ready().await.expect("ready");
    let error = call(&pool, "break", None).await.expect_err("broken");
    assert_eq!(error.kind(), "worker-crashed");
    until(&pool, |s| s.idle == 1 && s.restarts == 1).await;
    assert_eq!(fake.stopped().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_young_worker_dying_idle_backs_off_unless_killed_from_outside() {
    for (exit, backoff) in [
        (Exit::Code(1), Duration::from_secs(2)),
        (Exit::Signal(libc::SIGKILL), Duration::ZERO),
    ] {
        let (pool, fake) = fake_pool(1, |s| s.restart_backoff = Duration::from_secs(2));
        pool.ready().await.expect("ready");
        let died = Instant::now();
        fake.end(pool.workers()[0].id, exit.clone());
        until(&pool, |s| s.idle == 1 && s.restarts == 1).await;
        assert_eq!(fake.start_times()[1] - died, backoff, "{exit}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_old_worker_dying_idle_is_replaced_at_once() {
    let (pool, fake) = fake_pool(1, |s| s.restart_backoff = Duration::from_secs(2));
    pool.ready().await.expect("ready");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let died = Instant::now();
    fake.end(pool.workers()[0].id, Exit::Code(1));
    until(&pool, |s| s.idle == 1 && s.restarts == 1).await;
    assert_eq!(fake.start_times()[1], died);
}

#[tokio::test(start_paused = true)]
async fn a_call_past_its_deadline_times_out_and_its_worker_is_replaced() {
    let (pool, _fake) = fake_pool(1, |_| {});
    pool.ready().await.expect("ready");
    let before = pool.workers();
    let error = pool
        .call("hang", None, Vec::new(), within(Duration::from_secs(2)))
        .await
        .expect_err("it hangs");
    assert_eq!(error.kind(), "timeout", "{error:?}");
    let status = until(&pool, |s| s.idle == 1).await;
    assert_eq!(status.restarts, 1);
    assert_ne!(pool.workers(), before);
}
