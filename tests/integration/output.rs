//! Worker output is bounded on the host's side: a line is cut into pieces
//! of a fixed size, `\r` ends a line, and the stderr tail kept for crash
//! reports is capped by lines and bytes. A worker writing gigabytes without
//! a newline costs the host no more memory than one that writes nothing.

use crate::support::{peak_rss, python_host, python_module, snakepen_command, within};
use serde_json::json;
use snakepen::{CallError, Host, Request};

/// The most bytes of stderr a crash report carries (the host's cap, with
/// room for the line separators).
const TAIL_CAP: usize = 8 << 10;

async fn output_host() -> Host {
    let host = python_host("output", 1, |_| {}).await;
    within(60, host.ready()).await.expect("the workers start");
    host
}

/// The stderr tail of a call that must have failed as `worker-crashed`.
fn crashed_tail(outcome: Result<snakepen::Response, CallError>) -> String {
    match outcome {
        Err(CallError::WorkerCrashed { stderr_tail, .. }) => stderr_tail,
        Err(other) => panic!("expected worker-crashed, got {}: {other}", other.kind()),
        Ok(_) => panic!("expected worker-crashed, got an answer"),
    }
}

/// The peak memory of `snakepen run` answering one `long_line` call of
/// `mb` MiB, measured in a process of its own (this test binary's memory
/// moves with every test that runs beside this one).
fn peak_reading_a_line_of(mb: u32) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let requests = dir.path().join("requests.jsonl");
    std::fs::write(
        &requests,
        format!("{{\"command\": \"long_line\", \"payload\": {{\"mb\": {mb}}}}}\n"),
    )
    .unwrap();
    peak_rss(
        snakepen_command()
            .args([
                "run",
                "--module",
                &python_module("output"),
                "--fail-on-error",
            ])
            .arg(&requests),
    )
}

#[test]
fn a_long_line_without_a_newline_does_not_grow_the_host() {
    // The handler returns only once the host has read nearly all of it (a
    // pipe holds 64 KiB): the line has passed through the host by then.
    let small = peak_reading_a_line_of(1);
    let mb = 128;
    let large = peak_reading_a_line_of(mb);
    let grown = large.saturating_sub(small);
    assert!(
        grown < (u64::from(mb) << 20) / 2,
        "the host peaked {} MiB higher reading a {mb} MiB line than a 1 MiB one",
        grown >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_progress_bar_on_stderr_is_kept_as_lines_ended_by_carriage_returns() {
    let host = output_host().await;
    let outcome = within(
        60,
        host.call(Request::json(
            "progress_then_crash",
            &json!({"steps": 20000}),
        )),
    )
    .await;
    let tail = crashed_tail(outcome);
    assert!(tail.len() <= TAIL_CAP, "a tail of {} bytes", tail.len());
    let last = tail.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("100%|") && last.ends_with("| 20000/20000"),
        "the last line of the tail is the bar's last state, not {:?}",
        &last[..last.len().min(200)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_stderr_lines_before_a_crash_give_worker_crashed_with_a_bounded_tail() {
    let host = output_host().await;
    let outcome = within(
        120,
        host.call(Request::json(
            "lines_then_crash",
            &json!({"count": 3, "size": 30 << 20}),
        )),
    )
    .await;
    let tail = crashed_tail(outcome);
    assert!(
        tail.len() <= TAIL_CAP,
        "the crash report carries {} bytes of stderr",
        tail.len()
    );
    assert!(
        tail.ends_with("eeee"),
        "the tail ends with the last output: {:?}",
        &tail[tail.len().saturating_sub(300)..]
    );
}
