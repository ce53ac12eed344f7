//! The mock's canned streams, through `Host::call_stream`: chunks with a
//! delay between them, a failure after N chunks, a caller that reads no
//! stream, and a caller that goes away.

use crate::support::mock;
use serde_json::json;
use snakepen::{CallError, Request, StreamItem};
use std::time::{Duration, Instant};

async fn items(
    host: &snakepen::Host,
    command: &str,
) -> (Vec<serde_json::Value>, Result<serde_json::Value, CallError>) {
    let mut stream = host.call_stream(Request::new(command, Vec::new()));
    let mut chunks = Vec::new();
    loop {
        match stream.next().await.expect("an item") {
            Ok(StreamItem::Chunk(chunk)) => chunks.push(serde_json::from_slice(&chunk).unwrap()),
            Ok(StreamItem::End(end)) => return (chunks, Ok(end.json().unwrap())),
            Err(error) => return (chunks, Err(error)),
        }
    }
}

#[tokio::test]
async fn the_mock_streams_its_chunks_then_ends_or_fails() {
    let host = mock(json!({"responses": [
        {"command": "tokens", "chunks": ["a", "b", {"c": 3}], "chunk_delay_ms": 20, "response": {"done": true}},
        {"command": "broken", "chunks": [1, 2, 3, 4], "fail_after": 2,
         "error": {"kind": "python-exception", "type": "ValueError", "message": "mid-stream"}},
    ]}))
    .await;
    let started = Instant::now();
    let (chunks, end) = items(&host, "tokens").await;
    assert_eq!(chunks, [json!("a"), json!("b"), json!({"c": 3})]);
    assert_eq!(end.unwrap(), json!({"done": true}));
    assert!(
        started.elapsed() >= Duration::from_millis(40),
        "two delays between three chunks"
    );

    let (chunks, end) = items(&host, "broken").await;
    assert_eq!(chunks, [json!(1), json!(2)]);
    match end {
        Err(CallError::PythonException {
            type_name, message, ..
        }) => {
            assert_eq!(
                (type_name.as_str(), message.as_str()),
                ("ValueError", "mid-stream")
            )
        }
        other => panic!("expected the canned error, got {other:?}"),
    }

    // A caller that reads no stream gets the chunks collected.
    let plain = host.call(Request::new("tokens", Vec::new())).await.unwrap();
    assert_eq!(
        plain.json().unwrap(),
        json!({"chunks": ["a", "b", {"c": 3}], "result": {"done": true}})
    );
    // A command with no stream answers a streaming caller at its end.
    let (chunks, end) = items(&host, "ping").await;
    assert!(chunks.is_empty());
    assert_eq!(end.unwrap()["mock"], true);
}

#[tokio::test]
async fn a_caller_that_goes_away_ends_the_mock_s_stream() {
    // One adapter instance: the next call needs the one the stream held.
    let runtime = snakepen::Runtime::builder()
        .max_instances(1)
        .build()
        .unwrap();
    let chunks: Vec<u32> = (0..200).collect();
    let host = snakepen::Host::builder()
        .runtime(&runtime)
        .adapter(crate::support::plugin("mock"))
        .config(json!({"responses": [
            {"command": "slow", "chunks": chunks, "chunk_delay_ms": 100},
        ]}))
        .build()
        .await
        .unwrap();
    let mut stream = host.call_stream(Request::new("slow", Vec::new()));
    assert!(matches!(
        stream.next().await,
        Some(Ok(StreamItem::Chunk(_)))
    ));
    drop(stream);
    // Had the stream run on, its instance would be busy for 20 s.
    crate::support::within(10, host.call(Request::new("ping", Vec::new())))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_stream_setting_without_chunks_is_refused_naming_the_entry() {
    for (config, says) in [
        (
            json!({"responses": [{"command": "x", "response": 1, "chunk_delay_ms": 5}]}),
            "give its `chunks` too",
        ),
        (
            json!({"responses": [{"command": "x", "chunks": [1], "response": 1, "fail_after": 1}]}),
            "give the `error`",
        ),
        (
            json!({"responses": [{"command": "x", "chunks": [1], "fail_after": 3,
                "error": {"kind": "timeout"}}]}),
            "has 1 chunks",
        ),
    ] {
        let built = snakepen::Host::builder()
            .adapter(crate::support::plugin("mock"))
            .config(config)
            .build()
            .await;
        let Err(err) = built else { panic!("refused") };
        let message = err.to_string();
        assert!(
            message.contains("responses[0]") && message.contains(says),
            "{message}"
        );
    }
}
