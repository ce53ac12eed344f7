//! What a burst of calls leaves behind: the adapter instances a host keeps
//! are bounded (`RuntimeBuilder::max_instances`), so a thousand calls at
//! once cost a bounded amount of the host's memory.

use crate::support::{plugins_dir, python_module};
use std::process::Command;

/// Runs `command` to its end and returns its peak resident memory in bytes
/// (the kernel's own count, `ru_maxrss`).
// The child is reaped by wait4, which std's Child does not know of.
#[allow(clippy::zombie_processes)]
fn peak_rss(command: &mut Command) -> u64 {
    let child = command.spawn().expect("it starts");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child's pid, writing into the two locals.
    let waited = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(waited, child.id() as i32, "wait4 failed");
    assert_eq!(status, 0, "the command failed");
    usage.ru_maxrss as u64 * 1024
}

#[test]
fn a_thousand_calls_at_once_keep_the_host_under_300_mib() {
    let dir = tempfile::tempdir().unwrap();
    let requests = dir.path().join("requests.jsonl");
    let lines: Vec<String> = (0..1_000)
        .map(|i| format!(r#"{{"command": "echo", "payload": {{"value": {i}}}}}"#))
        .collect();
    std::fs::write(&requests, lines.join("\n")).unwrap();
    let peak = peak_rss(
        Command::new(env!("CARGO_BIN_EXE_snakepen"))
            .args(["--plugin-dir", plugins_dir().to_str().unwrap()])
            .args([
                "run",
                "--module",
                &python_module("inputs"),
                "--pool-size",
                "2",
            ])
            .args(["--concurrency", "1000", "--json"])
            .arg(&requests)
            .stdout(std::process::Stdio::null()),
    );
    // Each of 256 instances kept 2 MiB of memory and a stack: 450 MB and up.
    assert!(peak < 300 << 20, "the host peaked at {} MiB", peak >> 20);
}
