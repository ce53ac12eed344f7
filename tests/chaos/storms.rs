//! Storms against a live pool: workers `kill -9`ed under load, ten thousand
//! callers dropped at random points, and a module that is slow to import.
//! Each ends with the pool whole and every call answered or typed.

use crate::support::{alive, bridge, bridge_with, python_module, status_until, within};
use futures_util::future::join_all;
use serde_json::json;
use snakepen::{CallError, Host, PoolConfig, PoolStatus, Request};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A small deterministic random source (xorshift64*), seeded per test.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A ready python-bridge host of `size` workers with `config` on `pool`.
async fn ready_bridge(size: usize, config: serde_json::Value, mut pool: PoolConfig) -> Host {
    pool.size = size;
    let host = bridge_with(config, pool).await.expect("the host builds");
    within(60, host.ready()).await.expect("the workers start");
    host
}

/// Sends SIGKILL to `pid`: whether there was a process to send it to (a
/// worker that is already gone makes it fail with ESRCH, which is fine here).
fn sigkill(pid: u32) -> bool {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) == 0 }
}

/// What the pool shows once it is whole again after workers were killed:
/// every killed worker replaced exactly once, and the workers serving now
/// all alive and none of them one that was killed.
fn replaced_each_once(host: &Host, killed: &BTreeSet<u32>, status: &PoolStatus) {
    assert_eq!(
        status.restarts,
        killed.len() as u64,
        "each of the {} workers killed was replaced once: {status:?}",
        killed.len()
    );
    let serving = host.pool().unwrap().worker_pids();
    assert_eq!(serving.len(), status.size, "{serving:?}, {status:?}");
    for pid in &serving {
        assert!(
            !killed.contains(pid) && alive(*pid),
            "worker {pid} serves, yet was killed or is gone"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_storm_loses_no_call_and_the_pool_recovers() {
    let config = json!({ "commands": { "echo": { "idempotent": true, "retries": 3 } } });
    let host = ready_bridge(8, config, PoolConfig::new(python_module("handlers"))).await;
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..16)
        .map(|caller| {
            let host = host.clone();
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut outcomes: BTreeMap<&'static str, u64> = BTreeMap::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let request = Request::json("echo", &json!({ "caller": caller, "n": n }))
                        .deadline(Duration::from_secs(10));
                    let kind = match within(30, host.call(request)).await {
                        Ok(answer) => {
                            let value = answer.json().unwrap();
                            assert_eq!(value["kwargs"]["n"], n, "an answer to another call");
                            "ok"
                        }
                        Err(e) => e.kind(),
                    };
                    *outcomes.entry(kind).or_default() += 1;
                }
                outcomes
            })
        })
        .collect();

    let mut dice = Dice(0x5eed_cafe_f00d_0001);
    let mut killed = BTreeSet::new();
    for _round in 0..30 {
        let mut pids = host.pool().unwrap().worker_pids();
        for _ in 0..2 {
            if pids.is_empty() {
                break;
            }
            let pid = pids.swap_remove(dice.below(pids.len() as u64) as usize);
            if sigkill(pid) {
                killed.insert(pid);
            }
        }
        // The storm's rhythm: a round every 25 ms (a schedule, not a wait for an event).
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let storm_over = Instant::now();
    // Whole again, and past every death the storm caused (a worker killed
    // last may still count as idle until the pool sees it go).
    let status = status_until(&host, |s| {
        s.idle + s.busy == 8 && s.starting == 0 && s.dead == 0 && s.restarts >= killed.len() as u64
    })
    .await;
    let recovery = storm_over.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut totals: BTreeMap<&'static str, u64> = BTreeMap::new();
    for outcomes in within(60, join_all(callers)).await {
        for (kind, count) in outcomes.unwrap() {
            *totals.entry(kind).or_default() += count;
        }
    }
    let calls: u64 = totals.values().sum();
    let ok = totals.get("ok").copied().unwrap_or(0);
    eprintln!(
        "crash storm: {} workers killed; {calls} calls: {totals:?}; \
         {} restarts; 8 workers ready again {recovery:?} after the storm",
        killed.len(),
        status.restarts
    );
    replaced_each_once(&host, &killed, &status);
    // Each round kills up to two of the workers that are ready then (fewer
    // when the storm has left fewer standing): a storm, not a few kills.
    assert!(
        status.restarts >= 15,
        "the pool replaced only {} workers: too few for a storm",
        status.restarts
    );
    for kind in totals.keys() {
        assert!(
            ["ok", "worker-crashed"].contains(kind),
            "an unexpected outcome: {totals:?}"
        );
    }
    assert!(
        ok * 100 >= calls * 99,
        "fewer than 99 % of idempotent calls succeeded: {totals:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_callers_dropped_at_random_points_lose_no_worker() {
    let host = ready_bridge(4, json!({}), PoolConfig::new(python_module("handlers"))).await;
    // 8 callers, 10 000 calls in all, each given up after a random
    // patience of 0 to 4 ms: some leave while queued, some while their
    // request is on a worker, some get their answer.
    let loops: Vec<_> = (0..8u64)
        .map(|caller| {
            let host = host.clone();
            let mut dice = Dice(0x0dd_ba11_5eed_0002 ^ (caller << 32));
            tokio::spawn(async move {
                let mut answered = 0;
                for n in 0..10_000 / 8 {
                    let patience = Duration::from_micros(dice.below(4_000));
                    let request = Request::json("echo", &json!({ "caller": caller, "n": n }));
                    if tokio::time::timeout(patience, host.call(request))
                        .await
                        .is_ok()
                    {
                        answered += 1;
                    }
                }
                answered
            })
        })
        .collect();
    let answered: u64 = within(120, join_all(loops))
        .await
        .into_iter()
        .map(|answered| answered.unwrap())
        .sum();
    let status = status_until(&host, |s| s.idle == 4 && s.busy == 0 && s.waiting == 0).await;
    eprintln!(
        "cancellation storm: {answered} of 10000 answered before their callers left; {status:?}"
    );
    assert!(
        answered < 10_000,
        "no caller left before its answer, so none was dropped mid-call"
    );
    assert_eq!(status.restarts, 0, "no worker was lost: {status:?}");
    assert_eq!(status.dead + status.starting, 0);
    // And the pool serves normally afterwards.
    host.call(Request::json("echo", &json!({}))).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_of_a_slow_starting_pool_get_the_typed_error_then_answers() {
    let mut pool = PoolConfig::new(python_module("slow_import"));
    pool.size = 2;
    pool.env.push(("SLOW_IMPORT_SECONDS".into(), "2".into()));
    let host = bridge(pool).await;
    let early = host
        .call(Request::new("ping_me", Vec::new()).deadline(Duration::from_secs(1)))
        .await;
    match early {
        Err(CallError::PoolExhausted {
            busy,
            starting,
            dead,
            waited_ms,
        }) => {
            assert_eq!((busy, starting, dead), (0, 2, 0));
            // The deadline covers the whole call, so the checkout waited for
            // what was left of it once the adapter asked for a worker: it
            // waited to the end rather than failing fast.
            assert!((500..=1100).contains(&waited_ms), "{waited_ms}");
        }
        other => panic!("expected pool-exhausted while the workers import, got {other:?}"),
    }
    within(60, host.ready()).await.unwrap();
    let answer = host
        .call(Request::new("ping_me", Vec::new()))
        .await
        .unwrap();
    assert_eq!(answer.json().unwrap(), "pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_fork_server_under_load_fails_no_call() {
    let mut pool = PoolConfig::new(python_module("handlers"));
    pool.settings.fork_server = true;
    // Workers are killed too, mid-call: the calls are idempotent and retried.
    let config = json!({ "commands": { "echo": { "idempotent": true, "retries": 3 } } });
    let host = ready_bridge(4, config, pool).await;
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..8)
        .map(|caller| {
            let host = host.clone();
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut answered = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let request = Request::json("echo", &json!({ "caller": caller }));
                    within(30, host.call(request))
                        .await
                        .expect("every call is answered");
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    let pool = host.pool().unwrap();
    let mut killed = Vec::new();
    let mut workers_killed = BTreeSet::new();
    for _ in 0..5 {
        // Each time, wait for the restarted server, then kill it again.
        let server = within(30, async {
            loop {
                if let Some(pid) = pool.fork_server_pid().filter(|p| !killed.contains(p)) {
                    return pid;
                }
                let mut changes = pool.subscribe();
                let _ = tokio::time::timeout(Duration::from_millis(50), changes.changed()).await;
            }
        })
        .await;
        sigkill(server);
        killed.push(server);
        // And a worker too: its replacement comes from the new server or is started.
        if let Some(&worker) = pool.worker_pids().first()
            && sigkill(worker)
        {
            workers_killed.insert(worker);
        }
    }
    let status = status_until(&host, |s| {
        s.idle + s.busy == 4
            && s.dead == 0
            && s.starting == 0
            && s.restarts >= workers_killed.len() as u64
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let answered: u64 = within(60, join_all(callers))
        .await
        .into_iter()
        .map(|answered| answered.unwrap())
        .sum();
    eprintln!("fork server killed 5 times under load: {answered} calls answered; {status:?}");
    assert!(answered > 0);
    // The servers' deaths cost no worker: only the workers killed were replaced.
    replaced_each_once(&host, &workers_killed, &status);
}

/// Streams under load: many at once on workers of several calls, callers
/// that hang up at random points (after some chunks, or before the first),
/// and a worker killed midway. Every stream that is read to its end gets
/// every chunk in order, or a typed error; no worker is lost or left
/// stuck, and the pool ends whole with nothing in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_streams_and_hang_ups_leaves_the_pool_whole() {
    use snakepen::StreamItem;
    let mut pool = PoolConfig::new(python_module("handlers"));
    pool.max_concurrency = 8;
    let host = ready_bridge(2, json!({}), pool).await;
    let mut dice = Dice(0x5eed_57ea);
    let mut tasks = Vec::new();
    for i in 0..400u64 {
        let host = host.clone();
        let (command, n) = if i % 2 == 0 {
            ("count", 50 + dice.below(200))
        } else {
            ("acount", 20 + dice.below(50))
        };
        // Half are read to their end; the others hang up after 0 to 9 chunks.
        let hang_up_after = (i % 4 == 1).then(|| dice.below(10));
        tasks.push(tokio::spawn(async move {
            let mut stream = host.call_stream(Request::json(command, &json!([n])));
            let mut next = 0u64;
            loop {
                if hang_up_after == Some(next) {
                    return Ok(());
                }
                match stream.next().await {
                    Some(Ok(StreamItem::Chunk(chunk))) => {
                        let value: u64 = serde_json::from_slice(&chunk).unwrap();
                        assert_eq!(value, next, "chunks in order");
                        next += 1;
                    }
                    Some(Ok(StreamItem::End(_))) => {
                        assert_eq!(next, n, "every chunk before the end");
                        return Ok(());
                    }
                    Some(Err(error)) => return Err(error),
                    None => panic!("a stream ended without its end"),
                }
            }
        }));
    }
    // Midway, a worker dies with the streams it held.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let victim = host.pool().unwrap().worker_pids()[0];
    sigkill(victim);
    for result in within(120, join_all(tasks)).await {
        match result.expect("no task panicked") {
            // The streams the killed worker held end with its crash.
            Ok(()) | Err(CallError::WorkerCrashed { .. }) => {}
            Err(other) => panic!("an untyped or unexpected failure: {other:?}"),
        }
    }
    let status = status_until(&host, |s| s.idle == 2 && s.in_flight == 0).await;
    assert_eq!(status.dead, 0, "{status}");
    // And it serves on.
    let answer = within(30, host.call(Request::json("count", &json!([3]))))
        .await
        .unwrap();
    assert_eq!(answer.json().unwrap()["result"], "counted 3");
}
