//! What the benches that write result files share: the repository's root,
//! and the lines saying when, where and on what a result was measured.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// Whether this is `cargo bench` (`--bench`) rather than a smoke run under
/// `cargo test`, and the calls per row: `SNAKEPEN_BENCH_CALLS`, else
/// `default`; `smoke` under `cargo test`.
pub fn calls_per_row(default: usize, smoke: usize) -> (bool, usize) {
    let measuring = std::env::args().any(|a| a == "--bench");
    let calls = match std::env::var("SNAKEPEN_BENCH_CALLS") {
        _ if !measuring => smoke,
        Ok(v) => v
            .parse()
            .expect("SNAKEPEN_BENCH_CALLS is a number of calls"),
        Err(_) => default,
    };
    (measuring, calls)
}

/// `- date: …\n- commit: …\n- machine: …, N cores\n`.
pub fn provenance() -> String {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("- date: {date}\n- commit: {commit}\n- machine: {cpu}, {cores} cores\n")
}

/// The real interpreter behind `python3` (a pyenv shim in front of it costs
/// ~170 ms per pool, which is pyenv's time, not the pool's).
pub fn python() -> String {
    std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .expect("python3 runs")
}

/// The interpreter of `target/{venv}` (`just json-venvs` makes `plain-venv`,
/// the standard library alone, and `orjson-venv`).
pub fn venv_python(venv: &str) -> String {
    let python = root().join("target").join(venv).join("bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run `just json-venvs` (`just bench` does)",
        python.display()
    );
    python.display().to_string()
}
