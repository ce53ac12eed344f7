//! Workers forked from a fork server (PoolSettings::fork_server): served
//! like started ones, replaced by a fork when they die, and the pool goes on
//! when the fork server itself is killed.

use crate::support::{alive, kill9, pid_of, python_host, status_until, until_dead, within};
use snakepen::{CallError, Host, Request};

async fn forking(size: usize) -> Host {
    let host = python_host("handlers", size, |s| s.fork_server = true).await;
    within(60, host.ready()).await.expect("the workers start");
    host
}

#[tokio::test]
async fn forked_workers_serve_print_and_report_their_own_pid() {
    let host = forking(2).await;
    let server = host
        .pool()
        .unwrap()
        .fork_server_pid()
        .expect("the fork server is up");
    let workers = host.pool().unwrap().worker_pids();
    assert_eq!(workers.len(), 2);
    assert!(
        !workers.contains(&server),
        "workers are not the server itself"
    );
    let pid = pid_of(&host).await;
    assert!(workers.contains(&pid), "{pid} is one of {workers:?}");
    let echoed = host
        .call(Request::json("echo", &serde_json::json!({"x": 1})))
        .await
        .unwrap();
    assert_eq!(echoed.json().unwrap()["kwargs"]["x"], 1);
    let err = host
        .call(Request::new("boom", Vec::new()))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::PythonException { .. }), "{err}");
    within(30, host.close()).await.unwrap();
    until_dead(&workers).await;
    until_dead(&[server]).await;
}

#[tokio::test]
async fn a_killed_forked_worker_is_replaced_by_a_fork() {
    let host = forking(2).await;
    let victim = host.pool().unwrap().worker_pids()[0];
    kill9(victim);
    let status = status_until(&host, |s| s.idle == 2 && s.restarts >= 1).await;
    assert_eq!(status.dead, 0);
    assert!(!host.pool().unwrap().worker_pids().contains(&victim));
    assert!(!alive(victim), "the killed worker was reaped");
    pid_of(&host).await;
}

#[tokio::test]
async fn the_pool_keeps_serving_when_its_fork_server_is_killed_and_restarts_it() {
    let host = forking(2).await;
    let pool = host.pool().unwrap();
    let server = pool.fork_server_pid().unwrap();
    let workers = pool.worker_pids();
    kill9(server);
    // The live workers go on serving.
    for _ in 0..20 {
        let pid = pid_of(&host).await;
        assert!(workers.contains(&pid));
    }
    // A worker that dies now is replaced, by a fork of the new server or the usual way.
    kill9(workers[0]);
    status_until(&host, |s| s.idle == 2 && s.restarts >= 1).await;
    within(30, async {
        loop {
            if let Some(pid) = host
                .pool()
                .unwrap()
                .fork_server_pid()
                .filter(|&p| p != server)
            {
                return pid;
            }
            let mut changes = host.pool().unwrap().subscribe();
            let _ =
                tokio::time::timeout(std::time::Duration::from_millis(50), changes.changed()).await;
        }
    })
    .await;
    pid_of(&host).await;
}

#[tokio::test]
async fn preloaded_modules_are_imported_once_and_in_every_forked_worker() {
    let mut pool = snakepen::PoolConfig::new(crate::support::python_module("handlers"));
    pool.size = 2;
    pool.preload = vec!["difflib".into(), "fractions".into()];
    pool.settings.fork_server = true;
    let host = crate::support::bridge(pool).await;
    within(60, host.ready()).await.unwrap();
    for _ in 0..4 {
        for (module, expected) in [("difflib", true), ("fractions", true), ("tkinter", false)] {
            let answer = host
                .call(Request::json("loaded", &serde_json::json!([module])))
                .await
                .unwrap();
            assert_eq!(answer.json().unwrap(), expected, "{module}");
        }
    }
}

#[tokio::test]
async fn a_preload_that_does_not_import_fails_the_start_naming_it() {
    for fork_server in [true, false] {
        let mut pool = snakepen::PoolConfig::new(crate::support::python_module("handlers"));
        pool.preload.push("no_such_preload_module".into());
        pool.settings.fork_server = fork_server;
        let host = crate::support::bridge(pool).await;
        let err = within(60, host.ready()).await.unwrap_err().to_string();
        assert!(
            err.contains("the preload module 'no_such_preload_module'")
                && err.contains("Traceback"),
            "{err}"
        );
    }
}
