//! Cassettes against real Python: a session of the demo handlers recorded
//! and replayed with Python unavailable, concurrent recording of calls whose
//! answers differ, secrets kept out of tracebacks, and the committed
//! cassette checked against the live handlers.

use crate::support::{cassette, committed_cassette, python_module, spawn_call, within};
use serde_json::json;
use snakepen::cassette::CassetteFile;
use snakepen::{Affinity, CallError, Cassette, Host, PoolConfig, RecordMode, Request, Response};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn demo_handlers() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/handlers.py");
    path.canonicalize().unwrap().display().to_string()
}

fn strict_pool(module: String, size: usize) -> PoolConfig {
    let mut pool = PoolConfig::new(module);
    pool.size = size;
    pool.settings.affinity = Affinity::Strict;
    pool
}

async fn recording(cassette: Cassette, pool: PoolConfig) -> Host {
    let host = Host::builder()
        .cassette(cassette)
        .pool(pool)
        .build()
        .await
        .expect("the recording host builds");
    within(60, host.ready()).await.expect("the workers start");
    host
}

/// A host whose Python could never start: proof that replay needs none.
async fn replaying_without_python(path: &std::path::Path, module: String) -> Host {
    let mut pool = PoolConfig::new(module);
    pool.python = "/nonexistent/bin/python3".into();
    let host = Host::builder()
        .cassette(Cassette::replay(path))
        .pool(pool)
        .build()
        .await
        .expect("replaying needs no Python");
    assert!(host.status().is_none(), "no worker was started");
    host
}

#[tokio::test]
async fn a_real_session_replays_with_python_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.jsonl");
    let host = recording(
        cassette(&path, RecordMode::Once).match_session(true),
        strict_pool(demo_handlers(), 2),
    )
    .await;
    let calls = [
        Request::json(
            "cart_add",
            &json!({"cart": "a", "item": "tea", "price": 4.5}),
        )
        .session("a"),
        Request::json(
            "cart_add",
            &json!({"cart": "b", "item": "bread", "price": 2.2}),
        )
        .session("b"),
        Request::json(
            "cart_add",
            &json!({"cart": "a", "item": "tea", "price": 4.5, "quantity": 2}),
        )
        .session("a"),
        Request::json("cart_total", &json!({"cart": "a"})).session("a"),
        Request::json("cart_total", &json!({"cart": "b"})).session("b"),
        Request::json("word_stats", &json!({"text": "to be or not to be"})),
        Request::json("describe", &json!({"values": []})),
        Request::json("no_such_function", &json!({})),
    ];
    let mut live = Vec::new();
    for request in &calls {
        live.push(host.call(request.clone()).await);
    }
    assert_eq!(
        live[3].as_ref().unwrap().json().unwrap()["total"],
        13.5,
        "state lived in the session's worker"
    );
    assert!(matches!(live[6], Err(CallError::PythonException { .. })));
    assert!(matches!(live[7], Err(CallError::NoSuchCommand(_))));
    assert_eq!(host.close().await.unwrap(), calls.len());

    let host = replaying_without_python(&path, demo_handlers()).await;
    for (request, live) in calls.iter().zip(&live) {
        let replayed = host.call(request.clone()).await;
        let live = live.clone().map(|mut r| {
            r.worker_pid = None;
            r
        });
        assert_eq!(replayed, live, "{request:?}");
    }
    // The session is part of the match: another session's cart is a miss.
    let err = host
        .call(Request::json("cart_total", &json!({"cart": "a"})).session("b"))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::CassetteMiss(_)), "{err}");
}

#[tokio::test]
async fn thirty_two_tasks_record_and_replay_calls_whose_answers_differ() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tickets.jsonl");
    let mut pool = PoolConfig::new(python_module("handlers"));
    pool.size = 4;
    let host = recording(cassette(&path, RecordMode::All), pool).await;
    let tally = |answers: Vec<Response>| {
        let mut count = BTreeMap::new();
        for answer in answers {
            *count
                .entry(answer.json().unwrap().as_u64().unwrap())
                .or_insert(0) += 1;
        }
        count
    };
    let run = |host: &Host| {
        (0..32)
            .map(|_| spawn_call(host, Request::new("ticket", Vec::new())))
            .collect::<Vec<_>>()
    };
    let mut answers = Vec::new();
    for task in run(&host) {
        answers.push(within(60, task).await.unwrap().unwrap());
    }
    let recorded = tally(answers);
    assert!(
        recorded.len() > 1,
        "the workers gave different tickets: {recorded:?}"
    );
    assert_eq!(host.close().await.unwrap(), 32);

    let host = replaying_without_python(&path, python_module("handlers")).await;
    let mut answers = Vec::new();
    for task in run(&host) {
        answers.push(within(60, task).await.unwrap().unwrap());
    }
    assert_eq!(
        tally(answers),
        recorded,
        "every recording played exactly once"
    );
    let err = host
        .call(Request::new("ticket", Vec::new()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CallError::CassetteMiss(m) if m.used_up == 32),
        "{err}"
    );
}

#[tokio::test]
async fn a_secret_stays_off_the_disk_even_in_a_python_traceback() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.jsonl");
    let secret = "hunter2-correct-horse";
    let host = recording(
        cassette(&path, RecordMode::Once).filter("message"),
        PoolConfig::new(python_module("handlers")),
    )
    .await;
    let request = Request::json("boom", &json!({ "message": secret }));
    let live = host.call(request.clone()).await.unwrap_err();
    assert!(
        live.to_string().contains(secret),
        "the caller sees the real error"
    );
    host.close().await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(secret), "{text}");
    assert!(text.contains("ValueError"), "{text}");

    let host = Host::replaying(&path).await.unwrap();
    let replayed = host.call(request).await.unwrap_err();
    match replayed {
        CallError::PythonException {
            type_name, message, ..
        } => {
            assert_eq!(type_name, "ValueError");
            assert_eq!(message, "<filtered message>");
        }
        other => panic!("expected the recorded exception, got {other}"),
    }
}

/// The committed cassette says what the demo handlers answer today: its
/// requests, run against live Python, give the recorded outcomes. (When
/// examples/handlers.py changes, `just record-cassette` records it again.)
#[tokio::test]
async fn the_committed_cassette_matches_the_live_handlers() {
    let file = CassetteFile::read(committed_cassette("demo.jsonl")).unwrap();
    let host = Host::builder()
        .adapter("python-bridge")
        .pool(strict_pool(demo_handlers(), 2))
        .build()
        .await
        .unwrap();
    within(60, host.ready()).await.unwrap();
    for (i, recorded) in file.interactions.iter().enumerate() {
        let live = host.call(recorded.request.clone()).await;
        let same = match (&live, &recorded.outcome) {
            (Ok(a), Ok(b)) => a.json().unwrap() == b.json().unwrap(),
            // Tracebacks name the recording machine's paths: compare the rest.
            (
                Err(CallError::PythonException {
                    type_name: t1,
                    message: m1,
                    ..
                }),
                Err(CallError::PythonException {
                    type_name: t2,
                    message: m2,
                    ..
                }),
            ) => (t1, m1) == (t2, m2),
            (Err(a), Err(b)) => a == b,
            _ => false,
        };
        assert!(
            same,
            "interaction {} ({}) is out of date: recorded {:?}, live {:?}. Run `just record-cassette`",
            i + 1,
            recorded.request.command,
            recorded.outcome,
            live
        );
    }
}

/// A streamed call read to its end: its chunks and its outcome.
async fn read_stream(host: &Host, request: Request) -> (Vec<Vec<u8>>, Result<Response, CallError>) {
    within(60, async {
        let mut stream = host.call_stream(request);
        let mut chunks = Vec::new();
        loop {
            match stream.next().await.expect("an item before the end") {
                Ok(snakepen::StreamItem::Chunk(chunk)) => chunks.push(chunk),
                Ok(snakepen::StreamItem::End(mut end)) => {
                    end.worker_pid = None;
                    return (chunks, Ok(end));
                }
                Err(error) => return (chunks, Err(error)),
            }
        }
    })
    .await
}

#[tokio::test]
async fn streams_from_python_are_recorded_chunk_by_chunk_and_replay_without_python() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("streams.jsonl");
    let mut pool = PoolConfig::new(python_module("handlers"));
    pool.size = 1;
    pool.max_concurrency = 4;
    let host = recording(cassette(&path, RecordMode::Once), pool).await;
    let calls = [
        Request::json("count", &json!({"n": 5})),
        Request::json("acount", &json!({"n": 3, "pause": 0.05})),
        Request::json("count", &json!({"n": 9, "fail_after": 4})),
    ];
    let mut live = Vec::new();
    for request in &calls {
        live.push(read_stream(&host, request.clone()).await);
    }
    assert_eq!(
        live[0].0.len(),
        5,
        "the chunks reached the caller as it recorded"
    );
    assert_eq!(live[0].1.as_ref().unwrap().payload, br#""counted 5""#);
    assert_eq!(live[2].0.len(), 4);
    assert!(matches!(live[2].1, Err(CallError::PythonException { .. })));
    assert_eq!(host.close().await.unwrap(), calls.len());

    let file = CassetteFile::read(&path).unwrap();
    assert_eq!(file.version, 2);
    // Two 50 ms pauses lie between the first and last chunk; how late
    // each arrives at the host varies by a few ms on a loaded machine, so
    // half the nominal gap is the bound (a lost timing would give ~0).
    let paused = file.interactions[1].chunks.as_ref().unwrap();
    assert!(
        paused[2].offset >= paused[0].offset + std::time::Duration::from_millis(50),
        "each chunk's time is kept: {paused:?}"
    );

    let host = replaying_without_python(&path, python_module("handlers")).await;
    for (request, live) in calls.iter().zip(&live) {
        let replayed = read_stream(&host, request.clone()).await;
        assert_eq!(&replayed, live, "{request:?}");
    }
}
