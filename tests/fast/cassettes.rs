//! Cassettes without Python: the recorder in front of the mock adapter,
//! the replayer, every record mode, the miss report, secrets, concurrency,
//! and damaged files. The committed cassette, recorded from real Python,
//! replays here too.

use crate::support::{cassette, committed_cassette, mock_cassette, within};
use futures_util::future::try_join_all;
use serde_json::json;
use snakepen::cassette::{CassetteFile, MODE_VARIABLE};
use snakepen::{CallError, Cassette, Error, Host, PoolConfig, RecordMode, Request};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Barrier;

fn temp_cassette() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calls.jsonl");
    (dir, path)
}

fn greet(name: &str) -> Request {
    Request::json("greet", &json!({ "name": name, "ts": 1 }))
}

/// Records `requests` through the mock into `path` with `tune` applied, and saves.
async fn record(path: &Path, tune: impl FnOnce(Cassette) -> Cassette, requests: &[Request]) {
    let host = mock_cassette(tune(cassette(path, RecordMode::All)), json!({}))
        .await
        .expect("the recording host builds");
    for request in requests {
        host.call(request.clone()).await.expect("the mock answers");
    }
    host.close().await.expect("the cassette is saved");
}

fn miss(error: CallError) -> (String, u32, Option<String>, Vec<String>, String) {
    match error {
        CallError::CassetteMiss(m) => (m.request, m.used_up, m.closest, m.differences, m.hint),
        other => panic!("expected a cassette miss, got {other:?}"),
    }
}

#[tokio::test]
async fn the_committed_cassette_recorded_from_python_replays_without_python() {
    let path = committed_cassette("demo.jsonl");
    let file = CassetteFile::read(&path).expect("the committed cassette reads");
    assert!(file.interactions.len() >= 20, "{}", file.interactions.len());
    assert!(
        file.interactions
            .iter()
            .any(|i| i.request.session.is_some()),
        "the demo cassette has sessions"
    );
    // A pool that could never start: replaying does not start it.
    let mut pool = PoolConfig::new("examples/handlers.py");
    pool.python = "/nonexistent/python3".into();
    let host = Host::builder()
        .cassette(Cassette::replay(&path))
        .pool(pool)
        .build()
        .await
        .expect("a replaying host needs no Python");
    assert_eq!(host.adapter_name(), "replayer");
    assert!(host.status().is_none(), "no pool was started");
    for recorded in &file.interactions {
        let got = host.call(recorded.request.clone()).await;
        assert_eq!(got, recorded.outcome, "{:?}", recorded.request);
    }
    assert_eq!(host.counter("replayed"), file.interactions.len() as u64);
}

#[tokio::test]
async fn one_line_gives_a_replaying_host() {
    let host = Host::replaying(committed_cassette("demo.jsonl"))
        .await
        .unwrap();
    let answer = host
        .call(Request::json(
            "word_stats",
            &json!({"text": "the cat and the hat", "top": 2}),
        ))
        .await
        .expect("this call is in the demo cassette");
    assert_eq!(answer.json().unwrap()["words"], 5);
}

#[tokio::test]
async fn once_records_a_missing_cassette_then_only_replays() {
    let (_dir, path) = temp_cassette();
    let host = mock_cassette(cassette(&path, RecordMode::Once), json!({}))
        .await
        .unwrap();
    assert_eq!(host.adapter_name(), "recorder");
    let first = host.call(greet("ada")).await.unwrap();
    assert_eq!(host.counter("recorded"), 1);
    host.close().await.unwrap();
    assert!(path.is_file(), "the cassette was written");

    let host = mock_cassette(cassette(&path, RecordMode::Once), json!({}))
        .await
        .unwrap();
    assert_eq!(
        host.adapter_name(),
        "replayer",
        "once + an existing cassette replays"
    );
    assert_eq!(
        host.call(greet("ada")).await.unwrap().payload,
        first.payload
    );
    let (_, _, closest, _, _) = miss(host.call(greet("bob")).await.unwrap_err());
    assert!(closest.is_some());
    host.close().await.unwrap();
    assert_eq!(
        CassetteFile::read(&path).unwrap().interactions.len(),
        1,
        "nothing was added"
    );
}

#[tokio::test]
async fn none_needs_the_cassette_and_never_records() {
    let (_dir, path) = temp_cassette();
    let err = mock_cassette(cassette(&path, RecordMode::None), json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CassetteNotFound { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("calls.jsonl") && message.contains("`none`"),
        "{message}"
    );

    record(&path, |c| c, &[greet("ada")]).await;
    let host = mock_cassette(cassette(&path, RecordMode::None), json!({}))
        .await
        .unwrap();
    host.call(greet("ada")).await.unwrap();
    miss(host.call(greet("bob")).await.unwrap_err());
    assert!(
        host.recorded_adapter().is_none(),
        "the real adapter is not even built"
    );
    host.close().await.unwrap();
    assert_eq!(CassetteFile::read(&path).unwrap().interactions.len(), 1);
}

#[tokio::test]
async fn new_episodes_replays_what_it_has_and_records_the_rest() {
    let (_dir, path) = temp_cassette();
    record(&path, |c| c, &[greet("ada"), greet("bob")]).await;
    let before = std::fs::read_to_string(&path).unwrap();

    let host = mock_cassette(cassette(&path, RecordMode::NewEpisodes), json!({}))
        .await
        .unwrap();
    for name in ["ada", "cy", "bob", "dee"] {
        host.call(greet(name)).await.unwrap();
    }
    let real = host
        .recorded_adapter()
        .expect("new_episodes runs the real adapter");
    assert_eq!(real.counter("calls"), 2, "only cy and dee reached the mock");
    assert_eq!((host.counter("replayed"), host.counter("recorded")), (2, 2));
    host.close().await.unwrap();

    let after = std::fs::read_to_string(&path).unwrap();
    assert!(
        after.starts_with(&before),
        "the recorded lines are kept byte for byte"
    );
    let names: Vec<_> = CassetteFile::read(&path)
        .unwrap()
        .interactions
        .iter()
        .map(|i| {
            serde_json::from_slice::<serde_json::Value>(&i.request.payload).unwrap()["name"].clone()
        })
        .collect();
    assert_eq!(names, ["ada", "bob", "cy", "dee"]);
}

#[tokio::test]
async fn all_records_everything_again_and_replaces_the_file_at_shutdown() {
    let (_dir, path) = temp_cassette();
    record(&path, |c| c, &[greet("ada")]).await;
    let host = mock_cassette(
        cassette(&path, RecordMode::All),
        json!({ "responses": [{ "command": "greet", "response": "changed" }] }),
    )
    .await
    .unwrap();
    let answer = host.call(greet("ada")).await.unwrap();
    assert_eq!(answer.json().unwrap(), "changed");
    // Until the host shuts down, the old cassette is untouched.
    let old = CassetteFile::read(&path).unwrap();
    assert_ne!(
        old.interactions[0].outcome.as_ref().unwrap().payload,
        answer.payload
    );
    assert_eq!(host.close().await.unwrap(), 1);
    let new = CassetteFile::read(&path).unwrap();
    assert_eq!(new.interactions.len(), 1);
    assert_eq!(
        new.interactions[0].outcome.as_ref().unwrap().payload,
        answer.payload
    );
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["calls.jsonl"], "no temporary file is left");
}

#[tokio::test]
async fn dropping_a_recording_host_saves_its_cassette_even_in_a_new_folder() {
    let (_dir, path) = temp_cassette();
    let path = path.parent().unwrap().join("new/folder/calls.jsonl");
    let host = mock_cassette(cassette(&path, RecordMode::Once), json!({}))
        .await
        .unwrap();
    host.call(greet("ada")).await.unwrap();
    drop(host);
    assert_eq!(CassetteFile::read(&path).unwrap().interactions.len(), 1);
}

#[tokio::test]
async fn the_environment_variable_overrides_the_mode_and_ci_means_replay_only() {
    let (_dir, path) = temp_cassette();
    let ci = Cassette::new(&path).environment([("CI", "true")]);
    let err = mock_cassette(ci, json!({})).await.unwrap_err();
    assert!(err.to_string().contains("CI is set"), "{err}");

    let forced = Cassette::new(&path)
        .mode(RecordMode::None)
        .environment([("CI", "true"), (MODE_VARIABLE, "all")]);
    let host = mock_cassette(forced, json!({})).await.unwrap();
    assert_eq!(host.record_mode(), Some(RecordMode::All));
    host.call(greet("ada")).await.unwrap();
    host.close().await.unwrap();
    assert!(path.is_file());

    let bad = Cassette::new(&path).environment([(MODE_VARIABLE, "sometimes")]);
    let err = mock_cassette(bad, json!({})).await.unwrap_err();
    assert!(matches!(err, Error::RecordMode { .. }), "{err}");
}

#[tokio::test]
async fn a_miss_shows_the_closest_recording_and_what_differs() {
    let (_dir, path) = temp_cassette();
    record(
        &path,
        |c| c,
        &[greet("ada"), Request::json("add", &json!([1, 2]))],
    )
    .await;
    let host = Host::replaying(&path).await.unwrap();

    let err = host
        .call(Request::json("greet", &json!({ "name": "bob", "ts": 2 })))
        .await
        .unwrap_err();
    let message = err.to_string();
    let (request, used_up, closest, differences, hint) = miss(err);
    assert_eq!(used_up, 0);
    assert!(
        request.contains(r#"greet {"name":"bob","ts":2}"#),
        "{request}"
    );
    assert!(closest.unwrap().contains(r#""name":"ada""#));
    assert_eq!(differences, [r#"/name: "ada" -> "bob""#, "/ts: 1 -> 2"]);
    assert!(
        hint.contains("ignore") && hint.contains("new_episodes"),
        "{hint}"
    );
    assert!(
        message.contains("calls.jsonl") && message.contains("`none`"),
        "{message}"
    );

    let (_, _, closest, _, hint) = miss(
        host.call(Request::json("shout", &json!({})))
            .await
            .unwrap_err(),
    );
    assert!(closest.is_none());
    assert!(
        hint.contains("add, greet"),
        "the hint lists what was recorded: {hint}"
    );
}

#[tokio::test]
async fn identical_requests_replay_once_each_in_order_unless_repeats_are_allowed() {
    let (_dir, path) = temp_cassette();
    let config = json!({ "failures": [{ "command": "greet", "every": 2, "error": { "kind": "bad-request", "message": "every second greeting fails" } }] });
    let host = mock_cassette(cassette(&path, RecordMode::All), config)
        .await
        .unwrap();
    let recorded = [
        host.call(greet("ada")).await,
        host.call(greet("ada")).await,
        host.call(greet("ada")).await,
    ];
    assert!(recorded[1].is_err() && recorded[0].is_ok());
    host.close().await.unwrap();

    let host = Host::replaying(&path).await.unwrap();
    for expected in &recorded {
        assert_eq!(&host.call(greet("ada")).await, expected);
    }
    let err = host.call(greet("ada")).await.unwrap_err();
    assert!(err.to_string().contains("already replayed"), "{err}");
    let (_, used_up, _, _, hint) = miss(err);
    assert_eq!(used_up, 3);
    assert!(hint.contains("allow_repeats"), "{hint}");

    let host = Host::builder()
        .cassette(Cassette::replay(&path).allow_repeats(true))
        .build()
        .await
        .unwrap();
    for _ in 0..3 {
        host.call(greet("ada")).await.ok();
    }
    assert_eq!(
        host.call(greet("ada")).await,
        recorded[2],
        "the last one repeats"
    );
}

#[tokio::test]
async fn ignored_fields_and_sessions_in_matching() {
    let (_dir, path) = temp_cassette();
    let sessioned = |name: &str, session: &str| greet(name).session(session);
    record(
        &path,
        |c| c.ignore("ts").match_session(true),
        &[sessioned("ada", "s1"), sessioned("ada", "s2")],
    )
    .await;
    // The options it was recorded with are in the file, and replay uses them.
    let host = Host::replaying(&path).await.unwrap();
    let moved = Request::json("greet", &json!({ "name": "ada", "ts": 99 })).session("s2");
    let answer = host.call(moved).await.expect("ts is ignored");
    assert_eq!(
        answer.json().unwrap()["session"],
        "s2",
        "the session's own recording"
    );
    let (_, _, _, differences, hint) = miss(host.call(sessioned("ada", "s3")).await.unwrap_err());
    assert!(
        differences.iter().any(|d| d.starts_with("session:")),
        "{differences:?}"
    );
    assert!(hint.contains("match_session"), "{hint}");
}

#[tokio::test]
async fn secrets_never_reach_the_disk_and_replay_matches_them_back() {
    let (_dir, path) = temp_cassette();
    let secret = "sk-live-4f9a8c7e2b";
    let request = Request::json(
        "predict",
        &json!({ "prompt": "hello", "auth": { "api_key": secret }, "note": format!("key {secret}") }),
    );
    let host = mock_cassette(
        cassette(&path, RecordMode::Once).filter("api_key"),
        json!({}),
    )
    .await
    .unwrap();
    let live = host.call(request.clone()).await.unwrap();
    assert!(
        String::from_utf8_lossy(&live.payload).contains(secret),
        "the caller gets the real answer"
    );
    host.close().await.unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(secret), "the secret is on disk:\n{text}");
    assert!(text.contains("<filtered api_key>"), "{text}");

    let host = Host::replaying(&path).await.unwrap();
    let replayed = host
        .call(request)
        .await
        .expect("the real secret matches its placeholder");
    assert!(!String::from_utf8_lossy(&replayed.payload).contains(secret));
}

#[tokio::test]
async fn thirty_two_concurrent_tasks_record_and_replay_one_cassette() {
    let (_dir, path) = temp_cassette();
    let host = mock_cassette(cassette(&path, RecordMode::Once), json!({}))
        .await
        .unwrap();
    let calls = |host: &Host| {
        (0..32)
            .map(|i| {
                let host = host.clone();
                tokio::spawn(async move {
                    let own = host
                        .call(Request::json("task", &json!({ "task": i })))
                        .await;
                    let shared = host.call(Request::json("tick", &json!({}))).await;
                    (own.unwrap().payload, shared.unwrap().payload)
                })
            })
            .collect::<Vec<_>>()
    };
    let mut recorded = Vec::new();
    for task in calls(&host) {
        recorded.push(within(60, task).await.unwrap());
    }
    assert_eq!(host.close().await.unwrap(), 64);

    let file = CassetteFile::read(&path).unwrap();
    assert_eq!(file.interactions.len(), 64, "every line whole, none lost");
    let host = Host::replaying(&path).await.unwrap();
    let mut replayed = Vec::new();
    for task in calls(&host) {
        replayed.push(within(60, task).await.unwrap());
    }
    assert_eq!(replayed, recorded, "each task got its own answers");
    assert_eq!(host.counter("replayed"), 64);
    let (_, used_up, _, _, _) = miss(
        host.call(Request::json("tick", &json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(used_up, 32);
}

#[tokio::test]
async fn a_cut_off_cassette_is_refused_with_the_line_and_the_fix() {
    let (_dir, path) = temp_cassette();
    record(&path, |c| c, &[greet("ada"), greet("bob")]).await;
    let text = std::fs::read(&path).unwrap();
    std::fs::write(&path, &text[..text.len() - 10]).unwrap();
    let err = Host::replaying(&path).await.unwrap_err();
    assert!(
        matches!(err, Error::Cassette { line: Some(3), .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("cut off") && message.contains("Delete line 3"),
        "{message}"
    );
}

#[tokio::test]
async fn an_unknown_version_or_a_foreign_file_is_refused() {
    let (_dir, path) = temp_cassette();
    std::fs::write(&path, "{\"format\":\"snakepen-cassette\",\"version\":7}\n").unwrap();
    let err = Host::replaying(&path).await.unwrap_err().to_string();
    assert!(
        err.contains("version 7") && err.contains("reads versions 1 to 2"),
        "{err}"
    );

    // Too large for any integer type: still a version, not a missing one.
    let huge = "{\"format\":\"snakepen-cassette\",\"version\":99999999999999999999999}\n";
    std::fs::write(&path, huge).unwrap();
    let err = Host::replaying(&path).await.unwrap_err().to_string();
    assert!(
        err.contains("format version 1e+23") && err.contains("reads versions 1 to 2"),
        "{err}"
    );
    std::fs::write(
        &path,
        "{\"format\":\"snakepen-cassette\",\"version\":\"one\"}\n",
    )
    .unwrap();
    let err = Host::replaying(&path).await.unwrap_err().to_string();
    assert!(err.contains("is \"one\", not a number"), "{err}");

    std::fs::write(&path, "{\"interactions\":[]}\n").unwrap();
    let err = Host::replaying(&path).await.unwrap_err().to_string();
    assert!(err.contains("not a snakepen cassette"), "{err}");

    std::fs::write(&path, "").unwrap();
    let err = Host::replaying(&path).await.unwrap_err().to_string();
    assert!(err.contains("is empty"), "{err}");
}

#[tokio::test]
async fn the_file_is_a_header_then_one_interaction_per_line_in_a_stable_order() {
    let (_dir, path) = temp_cassette();
    record(&path, |c| c.ignore("ts"), &[greet("ada")]).await;
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].starts_with(
            r#"{"format":"snakepen-cassette","version":1,"options":{"ignore":["ts"]}"#
        ),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with(r#"{"command":"greet","request":{"name":"ada","ts":1},"response":{"#),
        "{}",
        lines[1]
    );
}

/// One host's life with a cassette of its own: record `answer`, then
/// replay it. At each `meet` the other host of the test is alive too (both
/// recording, then both replaying), so the two cassettes are in use at once.
async fn replays_its_own_cassette(answer: &str, meet: Arc<Barrier>) {
    let (_dir, path) = temp_cassette();
    let config = json!({ "responses": [{ "command": "greet", "response": answer }] });
    let host = mock_cassette(cassette(&path, RecordMode::All), config)
        .await
        .unwrap();
    meet.wait().await;
    host.call(greet("ada")).await.unwrap();
    host.close().await.unwrap();
    let host = Host::replaying(&path).await.unwrap();
    meet.wait().await;
    assert_eq!(
        host.call(greet("ada")).await.unwrap().json().unwrap(),
        answer
    );
    // Neither host goes before the other has replayed.
    meet.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_alive_at_once_each_replay_their_own_cassette() {
    let meet = Arc::new(Barrier::new(2));
    let hosts = [
        tokio::spawn(replays_its_own_cassette("hello", Arc::clone(&meet))),
        tokio::spawn(replays_its_own_cassette("bonjour", meet)),
    ];
    // The first to fail ends the test with its own message (the other then
    // waits at the barrier for good).
    within(30, try_join_all(hosts)).await.unwrap();
}
