//! One cassette plan, decided by the host from the record mode and what the
//! file holds, and followed by the recorder: `once` records a cassette that
//! holds nothing recorded yet (an empty file, or a header only), as it
//! records a missing one.

use crate::support::{cassette, mock_cassette};
use serde_json::json;
use snakepen::cassette::{CassetteFile, Plan};
use snakepen::{CallError, Error, Host, RecordMode, Request};
use std::path::{Path, PathBuf};

const HEADER_ONLY: &str = "{\"format\":\"snakepen-cassette\",\"version\":1,\"options\":{}}\n";

fn cassette_holding(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calls.jsonl");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn ping() -> Request {
    Request::json("ping", &json!({ "n": 1 }))
}

async fn host(path: &Path, mode: RecordMode) -> Result<Host, Error> {
    mock_cassette(cassette(path, mode), json!({})).await
}

/// Records one call with `once` and checks it was saved: the host ran the
/// recorder (not the replayer), and the recorder recorded (not replayed).
async fn once_records(path: &Path) {
    let host = host(path, RecordMode::Once).await.unwrap();
    assert_eq!(host.cassette_plan(), Some(Plan::RecordMissing));
    assert_eq!(host.adapter_name(), "recorder");
    host.call(ping()).await.expect("the mock answers");
    assert_eq!(host.counter("recorded"), 1);
    assert_eq!(host.close().await.unwrap(), 1);
    let saved = CassetteFile::read(path).unwrap();
    assert_eq!(saved.interactions.len(), 1);
    assert_eq!(saved.interactions[0].request.command, "ping");

    let host = self::host(path, RecordMode::Once).await.unwrap();
    assert_eq!(host.cassette_plan(), Some(Plan::ReplayOnly));
    assert_eq!(host.adapter_name(), "replayer");
    host.call(ping()).await.expect("recorded, so replayed");
}

#[tokio::test]
async fn once_records_over_an_empty_file() {
    let (_dir, path) = cassette_holding("");
    once_records(&path).await;
}

#[tokio::test]
async fn once_records_a_cassette_that_holds_only_its_header() {
    let (_dir, path) = cassette_holding(HEADER_ONLY);
    once_records(&path).await;
}

#[tokio::test]
async fn none_refuses_an_empty_file_and_replays_a_header_only_one_as_misses() {
    let (_dir, path) = cassette_holding("");
    let err = host(&path, RecordMode::None).await.unwrap_err();
    assert!(matches!(err, Error::Cassette { .. }), "{err:?}");
    assert!(err.to_string().contains("is empty"), "{err}");

    let (_dir, path) = cassette_holding(HEADER_ONLY);
    let host = host(&path, RecordMode::None).await.unwrap();
    assert_eq!(host.cassette_plan(), Some(Plan::ReplayOnly));
    let err = host.call(ping()).await.unwrap_err();
    assert!(matches!(err, CallError::CassetteMiss(_)), "{err}");
}

#[tokio::test]
async fn new_episodes_records_what_is_missing_and_all_records_everything_again() {
    let (_dir, path) = cassette_holding("");
    let host = host(&path, RecordMode::All).await.unwrap();
    assert_eq!(host.cassette_plan(), Some(Plan::ReRecord));
    host.call(ping()).await.unwrap();
    host.close().await.unwrap();

    let host = self::host(&path, RecordMode::NewEpisodes).await.unwrap();
    assert_eq!(host.cassette_plan(), Some(Plan::RecordMissing));
    host.call(ping()).await.unwrap();
    assert_eq!((host.counter("replayed"), host.counter("recorded")), (1, 0));
    host.call(Request::json("ping", &json!({ "n": 2 })))
        .await
        .unwrap();
    assert_eq!((host.counter("replayed"), host.counter("recorded")), (1, 1));
    host.close().await.unwrap();
    assert_eq!(CassetteFile::read(&path).unwrap().interactions.len(), 2);

    let host = self::host(&path, RecordMode::All).await.unwrap();
    assert_eq!(host.cassette_plan(), Some(Plan::ReRecord));
    host.call(ping()).await.unwrap();
    assert_eq!((host.counter("replayed"), host.counter("recorded")), (0, 1));
    host.close().await.unwrap();
    assert_eq!(CassetteFile::read(&path).unwrap().interactions.len(), 1);
}
