//! What a burst of calls leaves behind: the adapter instances a host keeps
//! are bounded (`RuntimeBuilder::max_instances`), so a thousand calls at
//! once cost a bounded amount of the host's memory.

use crate::support::{peak_rss, python_module, snakepen_command};

#[test]
fn a_thousand_calls_at_once_keep_the_host_under_300_mib() {
    let dir = tempfile::tempdir().unwrap();
    let requests = dir.path().join("requests.jsonl");
    let lines: Vec<String> = (0..1_000)
        .map(|i| format!(r#"{{"command": "echo", "payload": {{"value": {i}}}}}"#))
        .collect();
    std::fs::write(&requests, lines.join("\n")).unwrap();
    let peak = peak_rss(
        snakepen_command()
            .args([
                "run",
                "--module",
                &python_module("inputs"),
                "--pool-size",
                "2",
            ])
            .args(["--concurrency", "1000", "--json"])
            .arg(&requests),
    );
    // Each of 256 instances kept 2 MiB of memory and a stack: 450 MB and up.
    assert!(peak < 300 << 20, "the host peaked at {} MiB", peak >> 20);
}
