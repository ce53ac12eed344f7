//! The pool's rules against the fake transport: no Python, no processes,
//! tokio's paused clock wherever time matters (so a backoff of seconds
//! takes microseconds and is measured exactly).

use super::fake::{Fake, Plan};
use super::transport::{Exit, StartFailure};
use super::{Affinity, Pool, PoolConfig, PoolSettings, PoolStatus};
use crate::{CallError, Error, Response};
use std::time::Duration;
use tokio::time::Instant;

/// A pool of `size` fake workers with `settings` changed by `tune`.
fn fake_pool(size: usize, tune: impl FnOnce(&mut PoolSettings)) -> (Pool, Fake) {
    let fake = Fake::default();
    let mut config = PoolConfig::new("handlers.py").size(size);
    config.settings.health_interval = None;
    tune(&mut config.settings);
    let pool = Pool::with_transport(config, fake.clone()).expect("the pool starts");
    (pool, fake)
}

/// A deadline `d` from now on the pool's (tokio's) clock.
fn within(d: Duration) -> std::time::Instant {
    (Instant::now() + d).into_std()
}

async fn call(pool: &Pool, command: &str, session: Option<&str>) -> Result<Response, CallError> {
    let payload = b"{}".to_vec();
    pool.call(command, session, payload, within(Duration::from_secs(30)))
        .await
}

/// Waits until the pool's status satisfies `test` (a minute of the
/// paused clock at most, so a broken rule fails instead of hanging).
async fn until(pool: &Pool, test: impl Fn(&PoolStatus) -> bool) -> PoolStatus {
    let mut changes = pool.subscribe();
    let wait = async {
        loop {
            changes.borrow_and_update();
            let status = pool.status();
            if test(&status) {
                return status;
            }
            changes.changed().await.expect("the pool is alive");
        }
    };
    match tokio::time::timeout(Duration::from_secs(60), wait).await {
        Ok(status) => status,
        Err(_) => panic!("the pool never got there: {}", pool.status()),
    }
}

/// Waits until the fake saw `test` come true.
async fn until_fake(fake: &Fake, test: impl Fn(&Fake) -> bool) {
    let mut events = fake.events();
    let wait = async {
        loop {
            events.borrow_and_update();
            if test(fake) {
                return;
            }
            events.changed().await.expect("the fake is alive");
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .expect("the fake never saw it");
}

/// Polls `future` once, so that it takes its place (a checkout, a queue).
async fn poll_once<F: Future + Unpin>(future: &mut F) {
    tokio::select! {
        biased;
        _ = future => panic!("it finished at once"),
        _ = std::future::ready(()) => {}
    }
}

fn import_error() -> StartFailure {
    StartFailure::Import {
        type_name: Some("ModuleNotFoundError".into()),
        message: "No module named 'numpyy'".into(),
        traceback: Some("Traceback (most recent call last):\n".into()),
    }
}

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
    let holder = tokio::spawn({
        let pool = pool.clone();
        async move { call(&pool, "wait", None).await }
    });
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
    let holder = tokio::spawn({
        let pool = pool.clone();
        async move { call(&pool, "wait", None).await }
    });
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
    let holder = tokio::spawn({
        let pool = pool.clone();
        async move { call(&pool, "wait", None).await }
    });
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
    let worker = pool.workers()[0];
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
    let _holder = tokio::spawn({
        let pool = pool.clone();
        async move { call(&pool, "wait", None).await }
    });
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

/// Which worker answered `command` (the fake's `who` answers with its id).
async fn who(pool: &Pool, session: Option<&str>) -> u64 {
    let answer = call(pool, "who", session).await.expect("answered");
    String::from_utf8(answer.payload).unwrap().parse().unwrap()
}

#[tokio::test(start_paused = true)]
async fn strict_affinity_waits_for_the_sessions_worker_and_hint_does_not() {
    for affinity in [Affinity::Strict, Affinity::Hint] {
        let (pool, fake) = fake_pool(2, |s| s.affinity = affinity);
        pool.ready().await.expect("ready");
        let bound = who(&pool, Some("s1")).await;
        let holder = tokio::spawn({
            let pool = pool.clone();
            async move { call(&pool, "wait", Some("s1")).await }
        });
        until(&pool, |s| s.busy == 1).await;
        let mut next = Box::pin(who(&pool, Some("s1")));
        match affinity {
            Affinity::Strict => {
                poll_once(&mut next).await;
                assert_eq!(pool.status().waiting, 1, "strict waits for its worker");
                fake.open_gate(1);
                holder.await.unwrap().expect("answered");
                assert_eq!(next.await, bound);
            }
            Affinity::Hint => {
                assert_ne!(next.await, bound, "hint takes the other worker at once");
                fake.open_gate(1);
                holder.await.unwrap().expect("answered");
                // The session moved to the worker that served it.
                assert_ne!(who(&pool, Some("s1")).await, bound);
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_strict_caller_is_not_given_another_sessions_worker() {
    let (pool, fake) = fake_pool(2, |s| s.affinity = Affinity::Strict);
    pool.ready().await.expect("ready");
    let a = who(&pool, Some("s")).await;
    // The idle queue is now [B, A]: this call takes B, the next (strict) A.
    let on_b = tokio::spawn({
        let pool = pool.clone();
        async move { who_after_gate(&pool, None).await }
    });
    until(&pool, |s| s.busy == 1).await;
    let on_a = tokio::spawn({
        let pool = pool.clone();
        async move { who_after_gate(&pool, Some("s")).await }
    });
    until(&pool, |s| s.busy == 2).await;
    let mut strict = Box::pin(who(&pool, Some("s")));
    poll_once(&mut strict).await;
    fake.open_gate(1);
    let b = on_b.await.unwrap();
    assert_ne!(a, b);
    // B came free: the strict caller, waiting for A, does not take it.
    let status = until(&pool, |s| s.idle == 1).await;
    assert_eq!(status.waiting, 1, "{status}");
    fake.open_gate(1);
    assert_eq!(on_a.await.unwrap(), a);
    assert_eq!(strict.await, a);
}

/// Which worker answered, once the gate let it (the fake's `wait-who`).
async fn who_after_gate(pool: &Pool, session: Option<&str>) -> u64 {
    let answer = call(pool, "wait-who", session).await.expect("answered");
    String::from_utf8(answer.payload).unwrap().parse().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_strict_session_past_its_ttl_no_longer_waits_for_its_worker() {
    // A long TTL, so that the sweeper (every 30 s at most) has not yet
    // forgotten the session when the call comes: checkout itself must
    // see that it expired.
    let ttl = Duration::from_secs(120);
    let (pool, fake) = fake_pool(2, |s| {
        s.affinity = Affinity::Strict;
        s.session_ttl = ttl;
    });
    pool.ready().await.expect("ready");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let a = who(&pool, Some("s")).await;
    let holder = tokio::spawn({
        let pool = pool.clone();
        async move { who_after_gate(&pool, Some("s")).await }
    });
    until(&pool, |s| s.busy == 1).await;
    tokio::time::sleep(ttl + Duration::from_secs(3)).await;
    assert_eq!(pool.status().sessions, 1, "not swept yet");
    let free = pool
        .call("who", Some("s"), Vec::new(), within(Duration::from_secs(1)))
        .await
        .expect("the expired session takes the free worker");
    assert_ne!(String::from_utf8(free.payload).unwrap(), a.to_string());
    fake.open_gate(1);
    assert_eq!(holder.await.unwrap(), a);
}

#[tokio::test(start_paused = true)]
async fn a_session_follows_its_worker_while_it_is_free() {
    let (pool, _fake) = fake_pool(4, |s| s.affinity = Affinity::Hint);
    pool.ready().await.expect("ready");
    let bound = who(&pool, Some("a")).await;
    let mut others = std::collections::BTreeSet::new();
    for _ in 0..6 {
        // Other calls take the idle queue's first worker (FIFO), which
        // turns over; the session's calls stay on its worker.
        others.insert(who(&pool, None).await);
        assert_eq!(who(&pool, Some("a")).await, bound);
    }
    assert!(others.len() > 1, "{others:?}");
    assert_eq!(pool.status().sessions, 1);
}

#[tokio::test(start_paused = true)]
async fn a_strict_session_whose_worker_died_is_told_once() {
    let (pool, fake) = fake_pool(2, |s| s.affinity = Affinity::Strict);
    pool.ready().await.expect("ready");
    let before = pool.workers();
    let error = call(&pool, "crash", Some("s"))
        .await
        .expect_err("it crashed");
    assert_eq!(error.kind(), "worker-crashed", "{error:?}");
    until(&pool, |s| s.idle == 2 && s.restarts == 1).await;
    let gone = call(&pool, "echo", Some("s"))
        .await
        .expect_err("its worker is gone");
    assert_eq!(gone.kind(), "session-worker-gone", "{gone:?}");
    call(&pool, "echo", Some("s"))
        .await
        .expect("the session starts again on any worker");
    assert_eq!(fake.starts(), 3);
    assert_ne!(pool.workers(), before);
}

#[tokio::test(start_paused = true)]
async fn a_hint_session_whose_worker_died_moves_on_silently() {
    let (pool, _fake) = fake_pool(1, |s| s.affinity = Affinity::Hint);
    pool.ready().await.expect("ready");
    let _ = call(&pool, "crash", Some("s")).await;
    until(&pool, |s| s.idle == 1).await;
    call(&pool, "echo", Some("s")).await.expect("answered");
}

#[tokio::test(start_paused = true)]
async fn sessions_expire_after_their_ttl_and_are_swept() {
    let ttl = Duration::from_secs(10);
    let (pool, _fake) = fake_pool(2, |s| {
        s.affinity = Affinity::Strict;
        s.session_ttl = ttl;
    });
    pool.ready().await.expect("ready");
    call(&pool, "echo", Some("old")).await.expect("answered");
    tokio::time::sleep(ttl / 2).await;
    assert_eq!(pool.status().sessions, 1, "not yet expired");
    tokio::time::sleep(ttl).await;
    // The sweeper runs every ttl/2: by now it forgot the session.
    assert_eq!(pool.status().sessions, 0);
}

#[tokio::test(start_paused = true)]
async fn an_expired_session_is_free_to_bind_again_even_before_the_sweep() {
    let (pool, _fake) = fake_pool(1, |s| {
        s.affinity = Affinity::Strict;
        s.session_ttl = Duration::from_millis(100);
        s.max_sessions = 1;
    });
    pool.ready().await.expect("ready");
    call(&pool, "echo", Some("a")).await.expect("answered");
    let full = call(&pool, "echo", Some("b"))
        .await
        .expect_err("at the limit");
    assert_eq!(full.kind(), "unavailable", "{full:?}");
    assert!(full.to_string().contains("max_sessions"), "{full}");
    tokio::time::advance(Duration::from_millis(150)).await;
    call(&pool, "echo", Some("b"))
        .await
        .expect("the expired session made room");
}

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
async fn shutdown_drains_calls_in_flight_refuses_new_ones_and_closes() {
    let (pool, fake) = fake_pool(2, |s| s.shutdown_grace = Duration::from_secs(5));
    pool.ready().await.expect("ready");
    let in_flight = tokio::spawn({
        let pool = pool.clone();
        async move { call(&pool, "wait", None).await }
    });
    until(&pool, |s| s.busy == 1).await;
    let mut shutdown = Box::pin(pool.shutdown());
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
    let in_flight = tokio::spawn({
        let pool = pool.clone();
        async move { call(&pool, "wait", None).await }
    });
    until(&pool, |s| s.busy == 1).await;
    let started = Instant::now();
    pool.shutdown().await;
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
    pool.shutdown().await;
    assert_eq!(pool.status().stopped, 2);
}
