//! No global state: hosts with different adapters and configurations run
//! side by side in one process, and none sees another's configuration or counters.

use crate::support::{mock, mock_on, plugin, spawn_call, within};
use futures_util::future::join_all;
use serde_json::json;
use snakepen::{CallError, Host, Request, Runtime};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_hosts_never_see_each_others_configuration_or_counters() {
    const HOSTS: usize = 12;
    const CALLS: u64 = 60;
    let shared = Runtime::new().unwrap();
    let mut tasks = Vec::new();
    for i in 0..HOSTS {
        let config = json!({
            "responses": [{ "command": "who", "response": { "host": i } }],
            "failures": [{ "command": "who", "every": i + 2, "error": { "kind": "no-such-command", "message": format!("host {i}") } }],
        });
        // Half the hosts share one runtime, half have their own: neither may leak.
        let host = if i % 2 == 0 {
            mock_on(&shared, config).await
        } else {
            mock(config).await
        };
        tasks.push(tokio::spawn(async move {
            let mut failures = 0;
            for _ in 0..CALLS {
                match host.call(Request::new("who", "{}")).await {
                    Ok(response) => assert_eq!(response.json().unwrap(), json!({ "host": i })),
                    Err(CallError::NoSuchCommand(m)) => {
                        assert_eq!(m, format!("host {i}"));
                        failures += 1;
                    }
                    Err(other) => panic!("host {i}: {other:?}"),
                }
                tokio::task::yield_now().await;
            }
            assert_eq!(
                host.counter("calls/who"),
                CALLS,
                "host {i} counted only its own calls"
            );
            assert_eq!(
                failures,
                CALLS / (i as u64 + 2),
                "host {i} failed by its own rule"
            );
            host.counters()
        }));
    }
    // Another adapter in the same process, at the same time.
    let bridge = Host::builder()
        .runtime(&shared)
        .adapter(plugin("python-bridge"))
        .build()
        .await
        .unwrap();
    let bridged = bridge.call(Request::new("who", "{}")).await;
    assert!(
        matches!(bridged, Err(CallError::Unavailable(_))),
        "{bridged:?}"
    );

    for counters in join_all(tasks).await {
        assert_eq!(counters.unwrap()["calls"], CALLS);
    }
    assert!(
        bridge.counters().is_empty(),
        "the bridge's counters are its own"
    );
}

/// The hosts share a runtime of one instance slot, so the kept host can
/// serve only once the dropped host, stopped in the middle of a call, has
/// given back everything it held of what they share.
#[tokio::test]
async fn dropping_one_host_leaves_the_others_serving() {
    let runtime = Runtime::builder().max_instances(1).build().unwrap();
    let kept = mock_on(
        &runtime,
        json!({ "responses": [{ "command": "who", "response": "kept" }] }),
    )
    .await;
    let dropped = mock_on(
        &runtime,
        json!({ "responses": [{ "command": "who", "response": "dropped", "latency_ms": 600_000 }] }),
    )
    .await;
    // The runtime lives on in the hosts alone.
    drop(runtime);
    let stuck = spawn_call(&dropped, Request::new("who", "{}"));
    // The mock counts a call before it waits out its latency, holding the slot.
    within(30, async {
        while dropped.counter("calls") == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let meanwhile = kept
        .call(Request::new("who", "{}").deadline(Duration::from_millis(50)))
        .await;
    assert!(
        matches!(meanwhile, Err(CallError::Timeout(_))),
        "the slot is the dropped host's while its call runs: {meanwhile:?}"
    );
    stuck.abort();
    drop(dropped);
    assert_eq!(
        within(30, kept.call(Request::new("who", "{}")))
            .await
            .unwrap()
            .json()
            .unwrap(),
        json!("kept")
    );
}
