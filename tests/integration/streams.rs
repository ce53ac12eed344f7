//! Streamed answers through the pool (`Pool::call_stream`) on real Python:
//! generators and async generators, backpressure, a caller that goes away,
//! a failure mid-stream, deadlines, and a plain call of a streaming handler.

use crate::support::{bridge, python_module, status_until, within};
use snakepen::{CallError, Host, Pool, PoolStream, StreamItem};
use std::time::{Duration, Instant};

async fn pool_of(max_concurrency: usize) -> Host {
    let mut pool = snakepen::PoolConfig::new(python_module("handlers"));
    pool.max_concurrency = max_concurrency;
    pool.settings.kill_grace = Duration::from_millis(500);
    let host = bridge(pool).await;
    within(60, host.ready()).await.expect("the worker starts");
    host
}

async fn stream(
    pool: &Pool,
    command: &str,
    payload: serde_json::Value,
    idle: Option<Duration>,
) -> PoolStream {
    let deadline = Instant::now() + Duration::from_secs(60);
    let payload = serde_json::to_vec(&payload).unwrap();
    within(30, pool.call_stream(command, None, payload, deadline, idle))
        .await
        .expect("the stream starts")
}

/// Every chunk as JSON, then the outcome.
async fn read_all(
    mut stream: PoolStream,
) -> (Vec<serde_json::Value>, Result<serde_json::Value, CallError>) {
    let mut chunks = Vec::new();
    loop {
        match within(60, stream.next()).await {
            Some(Ok(StreamItem::Chunk(chunk))) => {
                chunks.push(serde_json::from_slice(&chunk).unwrap())
            }
            Some(Ok(StreamItem::End(end))) => return (chunks, Ok(end.json().unwrap())),
            Some(Err(error)) => return (chunks, Err(error)),
            None => panic!("the stream ended without an end"),
        }
    }
}

async fn produced(host: &Host) -> u64 {
    let pool = host.pool().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = within(30, pool.call("produced", None, b"[]".to_vec(), deadline))
        .await
        .unwrap();
    answer.json().unwrap().as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_chunks_arrive_whole_and_in_order() {
    for max_concurrency in [1, 4] {
        let host = pool_of(max_concurrency).await;
        let pool = host.pool().unwrap();
        for command in ["count", "acount"] {
            let (chunks, end) =
                read_all(stream(pool, command, serde_json::json!([10_000]), None).await).await;
            let expected: Vec<serde_json::Value> =
                (0..10_000).map(serde_json::Value::from).collect();
            assert!(
                chunks == expected,
                "{command} at {max_concurrency}: {} chunks",
                chunks.len()
            );
            let end = end.unwrap();
            if command == "count" {
                assert_eq!(end, "counted 10000");
            } else {
                assert_eq!(end, serde_json::Value::Null);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_holds_the_generator_back_not_the_host_s_memory() {
    let host = pool_of(2).await;
    let pool = host.pool().unwrap();
    let before = produced(&host).await;
    let mut chunks = stream(pool, "count", serde_json::json!([100_000]), None).await;
    for _ in 0..5 {
        assert!(matches!(
            within(30, chunks.next()).await,
            Some(Ok(StreamItem::Chunk(_)))
        ));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ahead = produced(&host).await - before;
    let window = u64::from(snakepen::pool::STREAM_WINDOW);
    assert!(
        ahead <= 5 + window,
        "the generator ran {ahead} chunks ahead of a reader that took 5"
    );
    drop(chunks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_goes_away_closes_the_generator_and_the_worker_lives() {
    for (max_concurrency, command) in [(1, "count"), (4, "count"), (4, "acount")] {
        let host = pool_of(max_concurrency).await;
        let pool = host.pool().unwrap();
        let pid = pool.worker_pids()[0];
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("closed");
        let payload = serde_json::json!({"n": 1_000_000, "marker": marker.display().to_string()});
        let mut chunks = stream(pool, command, payload, None).await;
        for _ in 0..3 {
            assert!(matches!(
                within(30, chunks.next()).await,
                Some(Ok(StreamItem::Chunk(_)))
            ));
        }
        drop(chunks);
        within(30, async {
            while !marker.exists() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        // The worker serves on: same process, no restart.
        produced(&host).await;
        assert_eq!(pool.worker_pids(), [pid], "{command} at {max_concurrency}");
        let status = status_until(&host, |s| s.in_flight == 0).await;
        assert_eq!(status.restarts, 0, "{status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_raises_mid_stream_gives_its_chunks_then_its_exception() {
    let host = pool_of(1).await;
    let pool = host.pool().unwrap();
    let (chunks, end) = read_all(
        stream(
            pool,
            "count",
            serde_json::json!({"n": 10, "fail_after": 5}),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        chunks,
        (0..5).map(serde_json::Value::from).collect::<Vec<_>>()
    );
    match end {
        Err(CallError::PythonException {
            type_name,
            message,
            traceback,
        }) => {
            assert_eq!(type_name, "ValueError");
            assert_eq!(message, "failed after 5 chunks");
            assert!(traceback.contains("count"), "{traceback}");
        }
        other => panic!("expected the exception, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_idle_past_its_limit_ends_with_timeout_after_its_chunks() {
    let host = pool_of(4).await;
    let pool = host.pool().unwrap();
    let pid = pool.worker_pids()[0];
    let payload = serde_json::json!({"n": 5, "pause": 0.0});
    let (chunks, _) =
        read_all(stream(pool, "acount", payload, Some(Duration::from_millis(500))).await).await;
    assert_eq!(chunks.len(), 5, "a stream that keeps up is not cut");
    let mut slow = stream(
        pool,
        "acount",
        serde_json::json!({"n": 5, "pause": 5.0}),
        Some(Duration::from_millis(300)),
    )
    .await;
    match within(30, slow.next()).await {
        Some(Err(CallError::Timeout(message))) => {
            assert!(message.contains("idle deadline"), "{message}")
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    drop(slow);
    produced(&host).await;
    assert_eq!(
        pool.worker_pids(),
        [pid],
        "the async stream was cancelled; its worker lives"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_call_of_a_streaming_handler_gets_its_chunks_and_result_at_once() {
    for max_concurrency in [1, 4] {
        let host = pool_of(max_concurrency).await;
        let pool = host.pool().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let answer = within(30, pool.call("count", None, b"[3]".to_vec(), deadline))
            .await
            .unwrap();
        assert_eq!(
            answer.json().unwrap(),
            serde_json::json!({"chunks": [0, 1, 2], "result": "counted 3"})
        );
    }
}

/// Through the adapter: `Host::call_stream` on python-bridge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_streams_through_python_bridge_and_a_dropped_stream_closes_the_generator() {
    let host = pool_of(1).await;
    let request = snakepen::Request::json("count", &serde_json::json!([1000]));
    let mut stream = host.call_stream(request);
    let mut chunks = Vec::new();
    let end = loop {
        match within(30, stream.next()).await.expect("an item") {
            Ok(StreamItem::Chunk(chunk)) => {
                chunks.push(serde_json::from_slice::<u64>(&chunk).unwrap())
            }
            Ok(StreamItem::End(end)) => break end,
            Err(error) => panic!("{error}"),
        }
    };
    assert_eq!(chunks, (0..1000).collect::<Vec<u64>>());
    assert_eq!(end.json().unwrap(), "counted 1000");
    assert!(
        within(30, stream.next()).await.is_none(),
        "nothing after the end"
    );

    // A plain call of the same handler gets it collected.
    let plain = within(
        30,
        host.call(snakepen::Request::json("count", &serde_json::json!([2]))),
    )
    .await
    .unwrap();
    assert_eq!(
        plain.json().unwrap(),
        serde_json::json!({"chunks": [0, 1], "result": "counted 2"})
    );

    // A caller that goes away after 3 chunks: the generator's finally runs,
    // and the worker serves on.
    let pid = host.pool().unwrap().worker_pids()[0];
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("closed");
    let payload = serde_json::json!({"n": 1_000_000, "marker": marker.display().to_string()});
    let mut stream = host.call_stream(snakepen::Request::json("count", &payload));
    for _ in 0..3 {
        assert!(matches!(
            within(30, stream.next()).await,
            Some(Ok(StreamItem::Chunk(_)))
        ));
    }
    drop(stream);
    within(30, async {
        while !marker.exists() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    produced(&host).await;
    assert_eq!(host.pool().unwrap().worker_pids(), [pid]);
    assert_eq!(host.status().unwrap().restarts, 0);
}
