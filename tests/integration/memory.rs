//! What a burst of calls leaves behind: the adapter instances a host keeps
//! are bounded (`RuntimeBuilder::max_instances`), so a thousand calls at
//! once cost a bounded amount of the host's memory.

use crate::support::{python_module, snakepen_command};
use std::process::Command;

/// Runs `command` to its end and returns its peak resident memory in bytes
/// (the kernel's own count, `ru_maxrss`), measured from a small Python
/// parent: a process started straight from this test binary would count
/// the test binary's own resident memory in its peak, since the kernel
/// keeps the larger of the two across the `exec`.
fn peak_rss(command: &Command) -> u64 {
    let measure = "import resource, subprocess, sys\n\
                   done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n\
                   assert done.returncode == 0, f'the command failed: {done.returncode}'\n\
                   print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)";
    let output = crate::support::run(
        Command::new("python3")
            .args(["-c", measure])
            .arg(command.get_program())
            .args(command.get_args()),
    );
    assert!(output.success(), "{}", output.stderr);
    let kib: u64 = output.stdout.trim().parse().expect("a number of KiB");
    kib * 1024
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
