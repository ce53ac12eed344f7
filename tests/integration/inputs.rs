//! Bad input costs one call, never a worker: payloads the worker cannot
//! decode, answers it cannot encode or that are over the frame limit, huge
//! names and session ids. And a call that does crash its worker has it
//! replaced at once, so repeating it cannot empty the pool.

use crate::support::{bridge, pid_of, python_module, run, snakepen_command, status_until, within};
use snakepen::{CallError, Host, PoolConfig, PoolSettings, Request};
use std::time::Duration;

async fn inputs(size: usize, tune: impl FnOnce(&mut PoolSettings)) -> Host {
    let mut pool = PoolConfig::new(python_module("inputs"));
    pool.size = size;
    tune(&mut pool.settings);
    let host = bridge(pool).await;
    within(60, host.ready()).await.expect("the workers start");
    host
}

fn request(command: &str, payload: impl Into<Vec<u8>>) -> Request {
    Request::new(command, payload.into())
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn a_payload_nested_too_deep_is_a_bad_request_and_the_worker_lives() {
    let host = inputs(1, |_| {}).await;
    let pid = pid_of(&host).await;
    for depth in [1_000, 100_000] {
        match within(30, host.call(request("echo", nested(depth)))).await {
            Err(CallError::BadRequest(message)) => {
                assert!(message.contains("RecursionError"), "{message}")
            }
            other => panic!("expected bad-request, got {other:?}"),
        }
    }
    assert_eq!(pid_of(&host).await, pid, "the same worker serves on");
    assert_eq!(host.status().unwrap().restarts, 0);
    host.close().await.unwrap();
}

#[tokio::test]
async fn an_answer_nested_too_deep_is_a_python_exception_and_the_worker_lives() {
    let host = inputs(1, |_| {}).await;
    let pid = pid_of(&host).await;
    match within(30, host.call(request("deep", "[100000]"))).await {
        Err(CallError::PythonException {
            type_name, message, ..
        }) => {
            assert_eq!(type_name, "TypeError");
            assert!(message.contains("cannot encode"), "{message}");
        }
        other => panic!("expected python-exception, got {other:?}"),
    }
    assert_eq!(pid_of(&host).await, pid);
    host.close().await.unwrap();
}

#[tokio::test]
async fn an_answer_over_the_frame_limit_is_its_own_error_and_not_a_crash() {
    let host = inputs(1, |s| s.max_frame_bytes = 1 << 20).await;
    let pid = pid_of(&host).await;
    match within(30, host.call(request("big", "[2000000]"))).await {
        Err(CallError::PythonException {
            type_name, message, ..
        }) => {
            assert_eq!(type_name, "snakepen.ReplyTooLarge");
            assert!(message.contains("max_frame_bytes"), "{message}");
        }
        other => panic!("expected snakepen.ReplyTooLarge, got {other:?}"),
    }
    assert_eq!(pid_of(&host).await, pid);
    assert_eq!(host.status().unwrap().restarts, 0);
    host.close().await.unwrap();
}

#[tokio::test]
async fn a_worker_that_crashed_in_a_call_is_replaced_without_backoff() {
    // A backoff this long would outlast the test: each replacement below is
    // only possible because a crash during a call does not wait for it.
    let host = inputs(2, |s| {
        s.restart_backoff = Duration::from_secs(600);
        s.restart_backoff_max = Duration::from_secs(600);
    })
    .await;
    for round in 1..=10u64 {
        let crashed = within(30, host.call(request("crash", ""))).await;
        assert!(
            matches!(crashed, Err(CallError::WorkerCrashed { .. })),
            "{crashed:?}"
        );
        status_until(&host, |s| s.idle == 2 && s.restarts == round).await;
        pid_of(&host).await;
    }
    host.close().await.unwrap();
}

#[tokio::test]
async fn a_huge_command_name_is_cut_in_the_error() {
    let host = inputs(1, |_| {}).await;
    let name = "x".repeat(1 << 20);
    match within(30, host.call(request(&name, ""))).await {
        Err(CallError::NoSuchCommand(message)) => {
            assert!(message.len() < 1_000, "{} bytes of message", message.len());
            assert!(message.contains("1048576 characters"), "{message}");
        }
        other => panic!("expected no-such-command, got {:?}", other.map(|_| ())),
    }
    host.close().await.unwrap();
}

#[tokio::test]
async fn a_session_id_over_the_limit_is_a_bad_request() {
    let host = inputs(1, |s| s.max_session_id_bytes = 64).await;
    let mut call = request("pid", "");
    call.session = Some("s".repeat(65));
    match within(30, host.call(call)).await {
        Err(CallError::BadRequest(message)) => {
            assert!(message.contains("max_session_id_bytes"), "{message}")
        }
        other => panic!("expected bad-request, got {other:?}"),
    }
    let mut call = request("pid", "");
    call.session = Some("s".repeat(64));
    within(30, host.call(call)).await.unwrap();
    host.close().await.unwrap();
}

#[tokio::test]
async fn sessions_over_the_limit_are_refused_until_one_expires() {
    let host = inputs(1, |s| {
        s.max_sessions = 3;
        s.session_ttl = Duration::from_secs(600);
    })
    .await;
    let in_session = |session: &str| {
        let mut call = request("pid", "");
        call.session = Some(session.into());
        call
    };
    for session in ["a", "b", "c"] {
        within(30, host.call(in_session(session))).await.unwrap();
    }
    match within(30, host.call(in_session("d"))).await {
        Err(CallError::Unavailable(message)) => {
            assert!(message.contains("max_sessions"), "{message}")
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    // Bound sessions keep working, and so do calls without one.
    within(30, host.call(in_session("a"))).await.unwrap();
    within(30, host.call(request("pid", ""))).await.unwrap();
    assert_eq!(host.status().unwrap().sessions, 3);

    // Once a bound session expires (its last call bound it for a TTL of
    // zero), a new one takes its place.
    host.pool()
        .unwrap()
        .update_settings(|s| s.session_ttl = Duration::ZERO);
    within(30, host.call(in_session("a"))).await.unwrap();
    within(30, host.call(in_session("d"))).await.unwrap();
    host.close().await.unwrap();
}

#[tokio::test]
async fn the_host_working_directory_is_not_on_the_workers_path() {
    // A stray module where the host runs must not shadow the standard library.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("statistics.py"),
        "raise SystemExit('shadowed')\n",
    )
    .unwrap();
    let output = run(snakepen_command()
        .args([
            "call",
            "--module",
            &python_module("inputs"),
            "origin",
            r#"["statistics"]"#,
        ])
        .current_dir(dir.path()));
    let stdout = &output.stdout;
    assert!(output.success(), "{}", output.stderr);
    assert!(!stdout.contains(dir.path().to_str().unwrap()), "{stdout}");
    assert!(
        stdout.contains("python3"),
        "the standard library's statistics: {stdout}"
    );
}

#[tokio::test]
async fn a_directory_given_as_the_module_is_named_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("handlers.py");
    std::fs::create_dir(&module).unwrap();
    let host = bridge(PoolConfig::new(module.display().to_string())).await;
    let err = within(60, host.ready()).await.unwrap_err().to_string();
    assert!(err.contains("is a directory, not a module"), "{err}");
}
