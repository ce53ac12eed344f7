//! The interpreter the user names is the one that runs, as named: a
//! `--python` wrapper script's environment and limits reach the workers,
//! a wrapper that never starts Python fails `ready()` within the start
//! timeout, and a host out of file descriptors says so.

use crate::support::{bridge, python_module, run, snakepen_command, within};
use serde_json::json;
use snakepen::{Error, PoolConfig, Request};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// An executable `/bin/sh` script `body` in `dir`.
fn script(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("python-wrapper");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_wrappers_environment_and_limits_reach_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    let wrapper = script(
        dir.path(),
        "SNAKEPEN_WRAPPED=yes; export SNAKEPEN_WRAPPED\nulimit -n 300\nexec python3 \"$@\"",
    );
    for fork_server in [true, false] {
        let mut pool = PoolConfig::new(python_module("output"));
        pool.python = wrapper.clone();
        pool.settings.fork_server = fork_server;
        let host = bridge(pool).await;
        within(60, host.ready()).await.expect("the workers start");
        let wrapped = within(
            60,
            host.call(Request::json(
                "environment",
                &json!({"name": "SNAKEPEN_WRAPPED"}),
            )),
        )
        .await
        .unwrap();
        assert_eq!(
            wrapped.json().unwrap(),
            json!("yes"),
            "fork server {fork_server}: the wrapper's environment"
        );
        let limit = within(60, host.call(Request::json("open_files_limit", &json!({}))))
            .await
            .unwrap();
        assert_eq!(
            limit.json().unwrap(),
            json!(300),
            "fork server {fork_server}: the wrapper's ulimit"
        );
        host.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_wrapper_that_never_starts_python_fails_ready_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let wrapper = script(dir.path(), "exec sleep 3600");
    let mut pool = PoolConfig::new(python_module("output"));
    pool.size = 2;
    pool.python = wrapper.clone();
    pool.settings.start_timeout = Duration::from_secs(2);
    let host = bridge(pool).await;
    match within(30, host.ready()).await {
        Err(Error::WorkerStart { message, .. }) => assert!(
            message.contains("did not finish starting within"),
            "the error names the start timeout: {message}"
        ),
        other => panic!("expected a start failure, got {other:?}"),
    }
}

#[test]
fn a_host_out_of_file_descriptors_says_so_and_names_the_fix() {
    use std::os::unix::process::CommandExt;
    let mut command = snakepen_command();
    command
        .args(["call", "--module", &python_module("output")])
        .args(["--pool-size", "10", "--no-fork-server"])
        .args(["environment", r#"{"name": "PATH"}"#]);
    // 10 workers fit the limit of 160 (the pool checks that at start), but
    // the host inherits 130 open descriptors, so it runs out while starting
    // them, as a host whose clients hold descriptors would.
    // SAFETY: setrlimit and dup2 are async-signal-safe and allocate nothing.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 160,
                rlim_max: 160,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            for fd in 20..150 {
                if libc::dup2(2, fd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let output = run(&mut command);
    let stderr = &output.stderr;
    assert!(
        !output.success(),
        "it cannot start 10 workers on 10 free descriptors"
    );
    assert!(
        stderr.contains("out of file descriptors")
            && stderr.contains("160")
            && stderr.contains("ulimit -n"),
        "the error names the limit and the fix: {stderr}"
    );
    assert!(
        !stderr.contains("Install Python"),
        "and does not blame Python: {stderr}"
    );
}
