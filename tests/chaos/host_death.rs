//! `kill -9` of the `snakepen` process leaves no Python worker behind.

use crate::support::{alive, plugins_dir, python_module, until_dead, within};
use std::process::{Command, Stdio};

/// The pids of the live processes whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                    .is_some_and(|ppid| ppid == parent.to_string())
            })
        })
        .filter(|&pid| alive(pid))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_host_leaves_no_python_worker_alive() {
    let module = python_module("handlers");
    let mut host = Command::new(env!("CARGO_BIN_EXE_snakepen"))
        .args(["--plugin-dir", plugins_dir().to_str().unwrap()])
        .args([
            "call",
            "--module",
            &module,
            "--pool-size",
            "3",
            "sleep",
            r#"{"ms": 60000}"#,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let host_pid = host.id();
    // Its workers are its children: wait until all three are up (no event
    // crosses the process boundary, so look every few milliseconds).
    let workers = within(60, async {
        loop {
            let children = children_of(host_pid);
            if children.len() == 3 {
                return children;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    host.kill().unwrap(); // SIGKILL
    host.wait().unwrap();
    // A generous bound: the workers die within milliseconds (parent-death signal).
    tokio::time::timeout(std::time::Duration::from_secs(2), until_dead(&workers))
        .await
        .unwrap_or_else(|_| panic!("workers {workers:?} outlived their host by 2 s"));
}
