//! Workers that die, hang or never start: only the affected call fails, with
//! a typed error, and the pool heals itself.

use crate::support::{handlers, kill9, pid_of, python_host, spawn_call, status_until, within};
use snakepen::{CallError, Request};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_call_fails_only_that_call_and_is_replaced() {
    let host = handlers(2).await;
    let victim = spawn_call(&host, Request::new("sleep", r#"{"ms": 20000}"#));
    status_until(&host, |s| s.busy == 1).await;
    // The other worker keeps serving meanwhile; the victim is the busy one.
    let other_pid = pid_of(&host).await;
    let victim_pid = host
        .pool()
        .unwrap()
        .worker_pids()
        .into_iter()
        .find(|&p| p != other_pid)
        .unwrap();
    kill9(victim_pid);
    match within(30, victim).await.unwrap() {
        Err(CallError::WorkerCrashed {
            pid, exit_status, ..
        }) => {
            assert_eq!(pid, victim_pid);
            assert_eq!(exit_status, "signal 9 (SIGKILL)");
        }
        other => panic!("expected worker-crashed, got {other:?}"),
    }
    let status = status_until(&host, |s| s.idle == 2).await;
    assert_eq!(status.restarts, 1, "{status}");
    assert!(!host.pool().unwrap().worker_pids().contains(&victim_pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_reports_the_exit_status_and_the_last_lines_of_stderr() {
    let host = handlers(1).await;
    match within(30, host.call(Request::new("die", r#"{"code": 7}"#))).await {
        Err(CallError::WorkerCrashed {
            exit_status,
            stderr_tail,
            ..
        }) => {
            assert_eq!(exit_status, "exit status 7");
            assert!(stderr_tail.contains("about to die with 7"), "{stderr_tail}");
        }
        other => panic!("expected worker-crashed, got {other:?}"),
    }
    // The replacement serves the next call.
    within(30, host.call(Request::new("nothing", "")))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_its_deadline_kills_the_worker_and_times_out() {
    let host = handlers(1).await;
    let pid = host.pool().unwrap().worker_pids()[0];
    let result = within(
        30,
        host.call(Request::new("sleep", r#"{"ms": 30000}"#).deadline(Duration::from_millis(300))),
    )
    .await;
    match result {
        Err(CallError::Timeout(message)) => {
            assert!(
                message.contains("killed") && message.contains(&pid.to_string()),
                "{message}"
            );
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(!crate::support::alive(pid), "the worker was killed");
    let status = status_until(&host, |s| s.idle == 1).await;
    assert_eq!(status.restarts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_with_a_syntax_error_fails_ready_and_calls_with_its_traceback() {
    let host = python_host("broken_syntax", 2, |s| {
        s.restart_backoff = Duration::from_millis(50);
        s.restart_backoff_max = Duration::from_millis(400);
    })
    .await;
    let error = within(30, host.ready())
        .await
        .expect_err("the module cannot import");
    let message = error.to_string();
    assert!(
        message.contains("SyntaxError") && message.contains("broken_syntax.py"),
        "{message}"
    );
    match within(30, host.call(Request::new("oops", ""))).await {
        Err(CallError::PythonException {
            type_name,
            traceback,
            ..
        }) => {
            assert_eq!(type_name, "SyntaxError");
            assert!(traceback.contains("def oops(:"), "{traceback}");
        }
        other => panic!("expected the import's exception, got {other:?}"),
    }
    // Backoff, not a respawn storm: with 50 ms doubling to 400 ms, two
    // slots make at most a handful of attempts in a second.
    let before = host.status().unwrap().start_failures;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let attempts = host.status().unwrap().start_failures - before;
    assert!(attempts <= 8, "{attempts} start attempts in one second");
    // And backoff, not giving up: with the wait capped at 400 ms, both
    // slots go on trying, so four more attempts take about a second; 15 s
    // leaves room for a loaded machine, and a pool that stopped trying
    // never gets there.
    let after = before + attempts;
    let counting = Instant::now();
    status_until(&host, |s| s.start_failures >= after + 4).await;
    let took = counting.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "four more start attempts took {took:?}, with the backoff capped at 400 ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_module_and_a_missing_python_say_what_to_fix() {
    let host = python_host("no_such_module", 1, |_| {}).await;
    let message = within(30, host.ready()).await.unwrap_err().to_string();
    assert!(
        message.contains("no_such_module") && message.contains("could not be imported"),
        "{message}"
    );

    let mut pool = snakepen::PoolConfig::new(crate::support::python_module("handlers"));
    pool.python = "/nonexistent/python3".into();
    pool.settings.restart_backoff = Duration::from_millis(50);
    let host = snakepen::Host::builder()
        .adapter(crate::support::plugin("python-bridge"))
        .pool(pool)
        .build()
        .await
        .unwrap();
    let message = within(30, host.ready()).await.unwrap_err().to_string();
    assert!(
        message.contains("/nonexistent/python3") && message.contains("Install Python"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_stops_answering_pings_is_replaced() {
    let host = python_host("handlers", 1, |s| {
        s.health_interval = Some(Duration::from_millis(50));
        s.health_timeout = Duration::from_millis(200);
    })
    .await;
    within(30, host.ready()).await.unwrap();
    let pid = host.pool().unwrap().worker_pids()[0];
    // A stopped process cannot answer, as if it were stuck.
    std::process::Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
        .unwrap();
    let status = status_until(&host, |s| s.restarts == 1 && s.idle == 1).await;
    assert_eq!(status.size, 1);
    assert!(!host.pool().unwrap().worker_pids().contains(&pid));
}
