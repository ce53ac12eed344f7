//! Faults of the cluster, each on a cluster of its own: the pool's driver
//! killed, a node lost, and what a closed pool leaves behind (nothing).

use crate::cluster::{LocalCluster, live_relays, ray_pool, ray_python};
use crate::support::{bridge, kill9, python_module, status_until, within};
use serde_json::json;
use snakepen::{CallError, Request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_driver_fails_its_calls_typed_and_the_pool_comes_back_then_leaves_nothing() {
    let cluster = LocalCluster::start();
    let host = bridge(ray_pool("handlers", 2, &cluster.address)).await;
    within(120, host.ready()).await.unwrap();
    assert_eq!(live_relays(&cluster.address), 2);
    let pool = host.pool().unwrap();
    let driver = pool.ray_driver_pid().expect("the pool runs a driver");

    let held = {
        let host = host.clone();
        tokio::spawn(async move {
            host.call(Request::json("doze", &json!({"seconds": 20})))
                .await
        })
    };
    status_until(&host, |s| s.busy == 1).await;
    kill9(driver);
    let error = within(60, held).await.unwrap().unwrap_err();
    assert!(
        matches!(&error, CallError::WorkerCrashed { exit_status, .. } if exit_status.contains("driver")),
        "{error:?}"
    );
    // A new driver, new actors: the pool is back to size and serves.
    status_until(&host, |s| s.idle == 2).await;
    assert_ne!(pool.ray_driver_pid(), Some(driver));
    host.call(Request::new("nothing", Vec::new()))
        .await
        .unwrap();

    // Closing the pool leaves no actor of it in the cluster (the dead
    // driver's went with it).
    host.close().await.unwrap();
    assert_eq!(live_relays(&cluster.address), 0);

    // `kill -9` of a serving host: its driver dies with it (its lifeline),
    // and Ray ends the actors the driver owned.
    let python = ray_python().display().to_string();
    let module = python_module("handlers");
    let served = crate::support::served::Served::start(&[
        "--ray",
        &cluster.address,
        "--python",
        &python,
        "--module",
        &module,
        "--pool-size",
        "2",
    ])
    .await;
    let (status, answer) = served
        .call(json!({"command": "add", "payload": {"a": 2, "b": 3}}))
        .await;
    assert_eq!(
        (status, answer["payload"].clone()),
        (200, json!(5)),
        "{answer}"
    );
    assert_eq!(live_relays(&cluster.address), 2);
    // Its workers are named by actor and node, in /v1/status and /metrics.
    let status = served.status().await;
    let workers = status["pool"]["workers"].as_array().unwrap().clone();
    assert_eq!(workers.len(), 2, "{status}");
    assert!(
        workers
            .iter()
            .all(|w| w["actor"].is_string() && w["node"].is_string()),
        "{status}"
    );
    let (_, metrics) = served.get("/metrics").await;
    let actor = workers[0]["actor"].as_str().unwrap();
    assert!(
        metrics.contains("snakepen_worker_info{") && metrics.contains(actor),
        "{metrics}"
    );
    kill9(served.pid());
    within(60, async {
        // Ray's state gives no event to await: look every half second.
        while live_relays(&cluster.address) > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_fails_the_calls_it_held_and_its_actors_come_back_on_the_head() {
    let mut cluster = LocalCluster::start();
    let mut both = vec![cluster.head.clone(), cluster.worker.clone()];
    both.sort();
    // SPREAD is Ray's best effort: a pool whose two actors share a node
    // is closed and made again, until one actor is on each node.
    let mut attempts = 0;
    let host = loop {
        let mut pool = ray_pool("handlers", 2, &cluster.address);
        let mut options = serde_json::Map::new();
        options.insert("scheduling_strategy".into(), json!("SPREAD"));
        pool.ray.as_mut().unwrap().actor_options = options;
        let host = bridge(pool).await;
        within(120, host.ready()).await.unwrap();
        let mut nodes: Vec<_> = host
            .pool()
            .unwrap()
            .workers()
            .into_iter()
            .map(|w| w.node.unwrap())
            .collect();
        nodes.sort();
        if nodes == both {
            break host;
        }
        attempts += 1;
        assert!(
            attempts < 10,
            "SPREAD never put one actor on each node: {nodes:?}"
        );
        host.close().await.unwrap();
    };
    let pool = host.pool().unwrap();

    // One long call on each actor, one actor on each node.
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let host = host.clone();
            tokio::spawn(async move {
                host.call(Request::json("doze", &json!({"seconds": 15})))
                    .await
            })
        })
        .collect();
    status_until(&host, |s| s.busy == 2).await;
    cluster.kill_worker_node();
    let mut lost = 0;
    for call in calls {
        match within(60, call).await.unwrap() {
            Ok(_) => {}
            Err(CallError::WorkerCrashed { exit_status, .. }) => {
                assert!(exit_status.contains("Ray actor"), "{exit_status}");
                lost += 1;
            }
            Err(other) => panic!("expected worker-crashed, got {other}"),
        }
    }
    assert_eq!(
        lost, 1,
        "the call on the lost node failed, the other finished"
    );
    status_until(&host, |s| s.idle == 2 && s.restarts >= 1).await;
    for _ in 0..4 {
        host.call(Request::new("nothing", Vec::new()))
            .await
            .unwrap();
    }
    for worker in pool.workers() {
        assert_eq!(worker.node.as_ref(), Some(&cluster.head), "{worker:?}");
        assert!(
            worker.actor.is_some() && worker.remote_pid.is_some(),
            "{worker:?}"
        );
    }
    host.close().await.unwrap();
}
