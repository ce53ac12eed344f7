//! The pool's behaviour on the Ray transport, against the shared local
//! cluster: the same calls, errors, streams, sessions and deadlines as
//! with local workers, and the errors a user can cause with Ray's setup.

use crate::cluster::{ray_pool, shared};
use crate::support::{bridge, status_until, within};
use serde_json::json;
use snakepen::{Affinity, CallError, Host, PoolConfig, RayFrames, Request, StreamItem};
use std::time::Duration;

async fn host_of(pool: PoolConfig) -> Host {
    let host = bridge(pool).await;
    within(120, host.ready()).await.expect("the actors start");
    host
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_errors_and_streams_work_as_on_local_workers() {
    calls_errors_and_streams(RayFrames::Direct, "direct").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_relayed_by_the_driver_work_the_same() {
    calls_errors_and_streams(RayFrames::Driver, "driver").await;
}

async fn calls_errors_and_streams(frames: RayFrames, shown: &str) {
    let mut pool = ray_pool("handlers", 2, &shared());
    pool.ray.as_mut().unwrap().frames = frames;
    let host = host_of(pool).await;
    for worker in host.pool().unwrap().workers() {
        assert_eq!(worker.frames, Some(shown), "{worker:?}");
    }
    let echo = host
        .call(Request::json("echo", &json!({"x": 1})))
        .await
        .unwrap();
    assert_eq!(
        echo.json().unwrap(),
        json!({"args": [], "kwargs": {"x": 1}})
    );
    assert!(echo.worker_pid.is_some(), "the actor's worker says its pid");

    match host
        .call(Request::json("boom", &json!({"message": "no"})))
        .await
    {
        Err(CallError::PythonException {
            type_name,
            message,
            traceback,
        }) => {
            assert_eq!((type_name.as_str(), message.as_str()), ("ValueError", "no"));
            assert!(traceback.contains("boom"), "{traceback}");
        }
        other => panic!("expected the handler's exception, got {other:?}"),
    }
    let missing = host.call(Request::new("nope", Vec::new())).await;
    assert!(
        matches!(missing, Err(CallError::NoSuchCommand(_))),
        "{missing:?}"
    );

    let mut stream = host.call_stream(Request::json("count", &json!({"n": 5})));
    let mut chunks = Vec::new();
    let end = loop {
        match within(60, stream.next()).await.expect("an item") {
            Ok(StreamItem::Chunk(chunk)) => chunks.push(String::from_utf8(chunk).unwrap()),
            Ok(StreamItem::End(end)) => break end,
            Err(e) => panic!("the stream failed: {e}"),
        }
    };
    assert_eq!(chunks, ["0", "1", "2", "3", "4"]);
    assert_eq!(end.payload, br#""counted 5""#);
    host.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_calls_at_once_share_two_actors() {
    let mut pool = ray_pool("handlers", 2, &shared());
    pool.max_concurrency = 50;
    let host = host_of(pool).await;
    let calls = (0..100).map(|i| {
        let host = host.clone();
        tokio::spawn(async move {
            host.call(Request::json("later", &json!({"ms": 200, "value": i})))
                .await
        })
    });
    let answers = within(60, futures_util::future::join_all(calls)).await;
    for (i, answer) in answers.into_iter().enumerate() {
        assert_eq!(answer.unwrap().unwrap().json().unwrap(), json!(i));
    }
    host.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_keeps_its_actor_under_strict_affinity() {
    let mut pool = ray_pool("handlers", 2, &shared());
    pool.settings.affinity = Affinity::Strict;
    let host = host_of(pool).await;
    let pid = |session: &str| {
        let host = host.clone();
        let request = Request::new("pid", Vec::new()).session(session);
        async move {
            host.call(request)
                .await
                .unwrap()
                .json()
                .unwrap()
                .as_u64()
                .unwrap()
        }
    };
    let first = pid("a").await;
    host.call(Request::json("remember", &json!({"key": "k", "value": 7})).session("a"))
        .await
        .unwrap();
    for _ in 0..5 {
        assert_eq!(pid("a").await, first);
        pid("b").await;
    }
    let recalled = host
        .call(Request::json("recall", &json!({"key": "k"})).session("a"))
        .await
        .unwrap();
    assert_eq!(
        recalled.json().unwrap(),
        json!(7),
        "state lived in the session's actor"
    );
    host.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_its_deadline_times_out_and_its_actor_is_replaced() {
    let host = host_of(ray_pool("handlers", 1, &shared())).await;
    let before = host
        .call(Request::new("pid", Vec::new()))
        .await
        .unwrap()
        .json()
        .unwrap();
    let mut slow = Request::json("doze", &json!({"seconds": 30}));
    slow.deadline = Some(Duration::from_millis(500));
    let error = within(60, host.call(slow)).await.unwrap_err();
    assert!(matches!(error, CallError::Timeout(_)), "{error}");
    status_until(&host, |s| s.restarts >= 1 && s.idle == 1).await;
    let after = host
        .call(Request::new("pid", Vec::new()))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_ne!(before, after, "a new actor serves");
    host.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_dies_fails_its_call_and_is_replaced() {
    let host = host_of(ray_pool("handlers", 1, &shared())).await;
    let error = host
        .call(Request::json("die", &json!({"code": 3})))
        .await
        .unwrap_err();
    match &error {
        CallError::WorkerCrashed { exit_status, .. } => {
            assert!(exit_status.contains("exit status 3"), "{exit_status}")
        }
        other => panic!("expected worker-crashed, got {other:?}"),
    }
    status_until(&host, |s| s.restarts >= 1 && s.idle == 1).await;
    host.call(Request::new("nothing", Vec::new()))
        .await
        .unwrap();
    host.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_that_does_not_import_fails_ready_with_its_traceback() {
    let mut pool = ray_pool("broken_syntax", 1, &shared());
    pool.settings.start_timeout = Duration::from_secs(60);
    let host = bridge(pool).await;
    let error = within(120, host.ready()).await.unwrap_err().to_string();
    assert!(error.contains("SyntaxError"), "{error}");
    assert!(error.contains("broken_syntax"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actor_options_no_node_can_meet_fail_ready_at_once_naming_them() {
    let mut pool = ray_pool("handlers", 1, &shared());
    let mut options = serde_json::Map::new();
    options.insert("num_gpus".into(), json!(4));
    pool.ray.as_mut().unwrap().actor_options = options;
    let host = bridge(pool).await;
    let error = within(60, host.ready()).await.unwrap_err().to_string();
    assert!(
        error.contains("GPU") && error.contains("no node of the cluster"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cluster_and_no_ray_are_errors_that_say_what_to_do() {
    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = bridge(ray_pool("handlers", 1, &format!("127.0.0.1:{port}"))).await;
    let error = within(60, host.ready()).await.unwrap_err().to_string();
    assert!(
        error.contains("nothing answers") && error.contains("ray start"),
        "{error}"
    );

    let mut pool = ray_pool("handlers", 1, &shared());
    pool.python = "python3".into(); // this machine's own, which has no ray
    let host = bridge(pool).await;
    let error = within(60, host.ready()).await.unwrap_err().to_string();
    assert!(
        error.contains("has no `ray`") && error.contains("pip install ray"),
        "{error}"
    );
}
