//! Zero orphans for everything a handler starts: a child in the worker's
//! process group, a worker that closed its lifeline and holds the GIL in C,
//! and a double-forked `setsid` daemon are all gone once their host is,
//! after a normal shutdown and after `kill -9` of the `snakepen` process,
//! with and without the fork server.

use crate::support::{
    alive, python_host, python_module, sleeping_in_c, snakepen_command, spawn_call, within,
};
use serde_json::json;
use snakepen::Request;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// What a handler of tests/python/orphans.py leaves behind.
#[derive(Clone, Copy, Debug)]
enum Leftover {
    /// `sleep 301`, started with `subprocess.Popen`.
    Child,
    /// The worker itself, its lifeline closed, asleep in C with the GIL.
    Worker,
    /// A double-forked `setsid` daemon.
    Daemon,
}

impl Leftover {
    /// The command and its payload; `blocks` keeps the call running after it
    /// has left its process, so that the host dies while the call is in flight.
    fn request(self, marker: &Path, blocks: bool) -> (&'static str, serde_json::Value) {
        let marker = marker.to_str().unwrap();
        let then_ms = if blocks { 120_000 } else { 0 };
        match self {
            Leftover::Child => ("sleeper", json!({"marker": marker, "then_ms": then_ms})),
            Leftover::Worker => ("unkillable", json!({"marker": marker, "seconds": 300})),
            Leftover::Daemon => ("daemon", json!({"marker": marker, "then_ms": then_ms})),
        }
    }
}

/// Looks every few milliseconds (no event crosses the process boundary)
/// until the handler has written the pid of what it left to `marker`.
async fn marked_pid(marker: &Path) -> u32 {
    within(60, async {
        loop {
            if let Some(pid) = std::fs::read_to_string(marker)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                return pid;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// Waits (generously) until `pid` no longer runs; if it still does, kills it
/// (so that a failing run leaves nothing behind either) and fails.
async fn expect_gone(pid: u32, what: String) {
    let gone = tokio::time::timeout(Duration::from_secs(10), async {
        while alive(pid) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    if gone.is_err() {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
        panic!("{what}: process {pid} outlived its host by 10 s");
    }
}

/// Runs `leftover`'s handler on the real binary, `kill -9`s the binary
/// while the call is in flight, and expects what the handler left to die.
async fn leaves_nothing_after_kill9(leftover: Leftover) {
    for fork_server in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("pid");
        let (command, payload) = leftover.request(&marker, true);
        let mut host = snakepen_command();
        host.args(["call", "--module", &python_module("orphans")])
            .args(["--pool-size", "1"]);
        if !fork_server {
            host.arg("--no-fork-server");
        }
        let mut host = host
            .args([command, &payload.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = marked_pid(&marker).await;
        if matches!(leftover, Leftover::Worker) {
            within(60, async {
                while !sleeping_in_c(pid) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await;
        }
        host.kill().unwrap(); // SIGKILL
        host.wait().unwrap();
        expect_gone(
            pid,
            format!("{leftover:?}, kill -9, fork server {fork_server}"),
        )
        .await;
    }
}

/// Runs `leftover`'s handler on a host in this process, shuts the host down
/// (the call still running when it blocks), and expects what it left to be gone.
async fn leaves_nothing_after_shutdown(leftover: Leftover, blocks: bool) {
    for fork_server in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("pid");
        let host = python_host("orphans", 1, |s| {
            s.fork_server = fork_server;
            s.shutdown_grace = Duration::from_millis(100);
        })
        .await;
        within(60, host.ready()).await.expect("the workers start");
        let (command, payload) = leftover.request(&marker, blocks);
        let call = spawn_call(&host, Request::json(command, &payload));
        let pid = marked_pid(&marker).await;
        if !blocks {
            within(60, call).await.unwrap().expect("the call answers");
        }
        within(60, host.close()).await.unwrap();
        expect_gone(
            pid,
            format!("{leftover:?}, shutdown, fork server {fork_server}"),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handlers_child_dies_with_its_killed_host() {
    leaves_nothing_after_kill9(Leftover::Child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_its_lifeline_holding_the_gil_dies_with_its_killed_host() {
    leaves_nothing_after_kill9(Leftover::Worker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setsid_daemon_dies_with_its_killed_host() {
    leaves_nothing_after_kill9(Leftover::Daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handlers_child_is_gone_after_shutdown() {
    leaves_nothing_after_shutdown(Leftover::Child, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_its_lifeline_holding_the_gil_is_gone_after_shutdown() {
    leaves_nothing_after_shutdown(Leftover::Worker, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setsid_daemon_is_gone_after_shutdown() {
    leaves_nothing_after_shutdown(Leftover::Daemon, false).await;
}
