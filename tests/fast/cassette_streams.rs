//! Streams in cassettes, without Python: the recorder in front of the
//! mock's canned streams keeps every chunk with its time, and the replayer
//! gives them back (at once or at their recorded pace) to a caller that
//! reads a stream, or collected to one that does not. The file says
//! version 2 only once it holds a stream.

use crate::support::{cassette, mock_cassette, within};
use serde_json::{Value, json};
use snakepen::cassette::{CassetteFile, Pace};
use snakepen::{CallError, Cassette, Host, RecordMode, Request, StreamItem};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn temp_cassette() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("streams.jsonl");
    (dir, path)
}

/// The mock's canned streams (and one plain answer).
fn streams() -> Value {
    json!({"responses": [
        {"command": "tokens", "chunks": ["The", " answer", {"n": 42}], "chunk_delay_ms": 15,
         "response": {"done": true}},
        {"command": "broken", "chunks": [1, 2, 3, 4], "fail_after": 2,
         "error": {"kind": "python-exception", "type": "ValueError", "message": "mid-stream"}},
        {"command": "secret", "chunks": ["your key is sk-live-0123456789"], "response": "ok"},
        {"command": "plain", "response": {"plain": true}},
    ]})
}

/// Reads a whole streamed call: its chunks (JSON), then its outcome.
async fn read(host: &Host, request: Request) -> (Vec<Value>, Result<Value, CallError>) {
    within(30, async {
        let mut stream = host.call_stream(request);
        let mut chunks = Vec::new();
        loop {
            match stream.next().await.expect("an item before the stream ends") {
                Ok(StreamItem::Chunk(chunk)) => {
                    chunks.push(serde_json::from_slice(&chunk).unwrap())
                }
                Ok(StreamItem::End(end)) => return (chunks, Ok(end.json().unwrap())),
                Err(error) => return (chunks, Err(error)),
            }
        }
    })
    .await
}

fn python_exception(outcome: Result<Value, CallError>) -> String {
    match outcome {
        Err(CallError::PythonException { message, .. }) => message,
        other => panic!("expected the recorded python-exception, got {other:?}"),
    }
}

/// Records the streams through the mock: `tokens` and `broken` streamed,
/// `plain` answered at once.
async fn record_session(path: &Path, tune: impl FnOnce(Cassette) -> Cassette) {
    let host = mock_cassette(tune(cassette(path, RecordMode::All)), streams())
        .await
        .unwrap();
    let (chunks, end) = read(&host, Request::new("tokens", Vec::new())).await;
    assert_eq!(chunks, [json!("The"), json!(" answer"), json!({"n": 42})]);
    assert_eq!(end.unwrap(), json!({"done": true}));
    let (chunks, end) = read(&host, Request::new("broken", Vec::new())).await;
    assert_eq!(chunks, [json!(1), json!(2)]);
    assert_eq!(python_exception(end), "mid-stream");
    host.call(Request::new("plain", Vec::new())).await.unwrap();
    assert_eq!(host.close().await.unwrap(), 3);
}

#[tokio::test]
async fn a_recorded_stream_keeps_its_chunks_with_their_times_and_replays_without_the_adapter() {
    let (_dir, path) = temp_cassette();
    record_session(&path, |c| c).await;

    let file = CassetteFile::read(&path).unwrap();
    assert_eq!(
        file.version, 2,
        "a cassette that holds a stream is version 2"
    );
    let tokens = &file.interactions[0];
    let chunks = tokens
        .chunks
        .as_ref()
        .expect("a streamed call keeps its chunks");
    assert_eq!(chunks.len(), 3);
    // The mock waited 15 ms between chunks, 30 ms from first to last. When
    // each chunk reaches the recorder varies by a few ms on a loaded
    // machine, so half of that is the bound (lost times would give ~0).
    assert!(
        chunks[2].offset >= chunks[0].offset + Duration::from_millis(15),
        "{chunks:?}"
    );
    assert_eq!(chunks[1].chunk, br#"" answer""#);
    let broken = &file.interactions[1];
    assert_eq!(broken.chunks.as_ref().map(Vec::len), Some(2));
    assert!(broken.outcome.is_err());
    assert_eq!(
        file.interactions[2].chunks, None,
        "an answer at once has no chunks"
    );

    // Replayed with no mock: the same chunks, then the same end.
    let host = Host::replaying(&path).await.unwrap();
    let (chunks, end) = read(&host, Request::new("tokens", Vec::new())).await;
    assert_eq!(chunks, [json!("The"), json!(" answer"), json!({"n": 42})]);
    assert_eq!(end.unwrap(), json!({"done": true}));
    let (chunks, end) = read(&host, Request::new("broken", Vec::new())).await;
    assert_eq!(chunks, [json!(1), json!(2)]);
    assert_eq!(python_exception(end), "mid-stream");
    // An answer recorded at once comes as the end of a stream with no chunks.
    let (chunks, end) = read(&host, Request::new("plain", Vec::new())).await;
    assert!(chunks.is_empty());
    assert_eq!(end.unwrap(), json!({"plain": true}));

    // `snakepen replay` reads a streamed recording as a stream, chunks and all.
    let checked = crate::support::snakepen(&["replay", path.to_str().unwrap()]);
    assert!(checked.success(), "{checked:?}");
    assert!(
        checked
            .stdout
            .contains("3 interactions replayed, 3 identical"),
        "{checked:?}"
    );
}

#[tokio::test]
async fn a_caller_that_reads_no_stream_gets_the_chunks_collected_as_a_worker_gives_them() {
    let (_dir, path) = temp_cassette();
    record_session(&path, |c| c).await;
    let host = Host::replaying(&path).await.unwrap();
    let plain = host.call(Request::new("tokens", Vec::new())).await.unwrap();
    assert_eq!(
        plain.json().unwrap(),
        json!({"chunks": ["The", " answer", {"n": 42}], "result": {"done": true}})
    );
    let error = host
        .call(Request::new("broken", Vec::new()))
        .await
        .unwrap_err();
    assert!(
        matches!(error, CallError::PythonException { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn replay_at_the_recorded_pace_waits_at_least_the_recorded_times() {
    let (_dir, path) = temp_cassette();
    record_session(&path, |c| c).await;
    let recorded = CassetteFile::read(&path).unwrap().interactions[0]
        .chunks
        .clone()
        .unwrap();
    let last = recorded.last().unwrap().offset;

    let host = Host::builder()
        .cassette(Cassette::replay(&path).pace(Pace::Recorded))
        .build()
        .await
        .unwrap();
    let started = Instant::now();
    let mut stream = host.call_stream(Request::new("tokens", Vec::new()));
    let mut arrived = Vec::new();
    while let Some(item) = within(30, stream.next()).await {
        if let StreamItem::Chunk(_) = item.unwrap() {
            arrived.push(started.elapsed());
        }
    }
    assert_eq!(arrived.len(), 3);
    // A lower bound, never a speed: the replayer sleeps whole milliseconds
    // of the recorded gaps.
    let floor = Duration::from_millis(u64::try_from(last.as_millis()).unwrap())
        .saturating_sub(Duration::from_millis(1));
    assert!(arrived[2] >= floor, "{arrived:?} against {recorded:?}");
}

#[tokio::test]
async fn a_cassette_without_streams_stays_version_1_and_new_episodes_add_streams_to_it() {
    let (_dir, path) = temp_cassette();
    let host = mock_cassette(cassette(&path, RecordMode::All), streams())
        .await
        .unwrap();
    host.call(Request::new("plain", Vec::new())).await.unwrap();
    // A plain call of a streaming command is recorded as the answer it gave.
    host.call(Request::new("tokens", Vec::new())).await.unwrap();
    host.close().await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with(r#"{"format":"snakepen-cassette","version":1,"#),
        "{text}"
    );
    assert!(!text.contains("\"at_ms\""), "{text}");

    let host = mock_cassette(cassette(&path, RecordMode::NewEpisodes), streams())
        .await
        .unwrap();
    // What it holds replays: the plain recording comes as one answer.
    let (chunks, end) = read(&host, Request::new("tokens", Vec::new())).await;
    assert!(chunks.is_empty());
    assert_eq!(end.unwrap()["result"], json!({"done": true}));
    // What it lacks runs, streamed, and is recorded with its chunks.
    let (chunks, _) = read(&host, Request::new("broken", Vec::new())).await;
    assert_eq!(chunks, [json!(1), json!(2)]);
    host.close().await.unwrap();
    let file = CassetteFile::read(&path).unwrap();
    assert_eq!(file.version, 2, "its first stream makes it version 2");
    assert_eq!(file.interactions.len(), 3);
    assert_eq!(file.interactions[2].chunks.as_ref().map(Vec::len), Some(2));
}

#[tokio::test]
async fn a_secret_of_the_request_never_reaches_the_disk_in_a_chunk() {
    let (_dir, path) = temp_cassette();
    let host = mock_cassette(
        cassette(&path, RecordMode::All).filter("api_key"),
        streams(),
    )
    .await
    .unwrap();
    let request = Request::json("secret", &json!({"api_key": "sk-live-0123456789"}));
    let (chunks, _) = read(&host, request.clone()).await;
    assert_eq!(
        chunks,
        [json!("your key is sk-live-0123456789")],
        "the caller gets it"
    );
    host.close().await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("sk-live"), "{text}");
    assert!(text.contains("your key is <filtered api_key>"), "{text}");

    let host = Host::replaying(&path).await.unwrap();
    let (chunks, end) = read(&host, request).await;
    assert_eq!(chunks, [json!("your key is <filtered api_key>")]);
    assert_eq!(end.unwrap(), json!("ok"));
}

#[tokio::test]
async fn a_stream_its_caller_left_is_not_recorded() {
    let (_dir, path) = temp_cassette();
    let host = mock_cassette(cassette(&path, RecordMode::All), streams())
        .await
        .unwrap();
    let mut stream = host.call_stream(Request::new("tokens", Vec::new()));
    let first = within(30, stream.next()).await.unwrap().unwrap();
    assert!(matches!(first, StreamItem::Chunk(_)));
    drop(stream);
    // The call after it is recorded, and is the only one.
    host.call(Request::new("plain", Vec::new())).await.unwrap();
    assert_eq!(host.close().await.unwrap(), 1);
    let file = CassetteFile::read(&path).unwrap();
    let commands: Vec<_> = file
        .interactions
        .iter()
        .map(|i| i.request.command.as_str())
        .collect();
    assert_eq!(commands, ["plain"]);
}
