//! Sessions: hint and strict affinity, a session's worker dying, and
//! session TTLs.

use super::*;

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
        let holder = spawn_call(&pool, "wait", Some("s1"));
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

/// Which worker answered, once the gate let it (the fake's `wait-who`),
/// however long the test keeps the gate shut.
async fn who_after_gate(pool: &Pool, session: Option<&str>) -> u64 {
    let deadline = within(Duration::from_secs(3600));
    let answer = pool
        .call("wait-who", session, Vec::new(), deadline)
        .await
        .expect("answered");
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
async fn a_session_id_over_its_limit_is_a_bad_request() {
    let (pool, _fake) = fake_pool(1, |s| s.max_session_id_bytes = 8);
    pool.ready().await.expect("ready");
    call(&pool, "echo", Some("12345678"))
        .await
        .expect("8 bytes are within the limit");
    let error = call(&pool, "echo", Some("123456789"))
        .await
        .expect_err("9 bytes are over it");
    assert_eq!(error.kind(), "bad-request", "{error:?}");
}

#[tokio::test(start_paused = true)]
async fn sessions_over_the_limit_are_refused_and_bound_ones_keep_working() {
    let (pool, _fake) = fake_pool(2, |s| {
        s.max_sessions = 2;
        s.session_ttl = Duration::from_secs(10);
    });
    pool.ready().await.expect("ready");
    call(&pool, "echo", Some("a")).await.expect("bound");
    call(&pool, "echo", Some("b")).await.expect("bound");
    let error = call(&pool, "echo", Some("c"))
        .await
        .expect_err("a third session is over the limit");
    assert_eq!(error.kind(), "unavailable", "{error:?}");
    assert!(error.to_string().contains("max_sessions"), "{error}");
    call(&pool, "echo", Some("a"))
        .await
        .expect("a bound session keeps working");
    call(&pool, "echo", None)
        .await
        .expect("a call without a session is not counted");
    tokio::time::advance(Duration::from_secs(11)).await;
    call(&pool, "echo", Some("c"))
        .await
        .expect("expired sessions made room");
}
