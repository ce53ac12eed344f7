//! Worker output is bounded on the host's side: a line is cut into pieces
//! of a fixed size, `\r` ends a line, and the stderr tail kept for crash
//! reports is capped by lines and bytes. A worker writing gigabytes without
//! a newline costs the host no more memory than one that writes nothing.

use crate::support::{python_host, within};
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

/// This process's resident memory (it is the host), from /proc/self/statm.
fn host_rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

/// The stderr tail of a call that must have failed as `worker-crashed`.
fn crashed_tail(outcome: Result<snakepen::Response, CallError>) -> String {
    match outcome {
        Err(CallError::WorkerCrashed { stderr_tail, .. }) => stderr_tail,
        Err(other) => panic!("expected worker-crashed, got {}: {other}", other.kind()),
        Ok(_) => panic!("expected worker-crashed, got an answer"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_line_without_a_newline_does_not_grow_the_host() {
    let host = output_host().await;
    let before = host_rss_bytes();
    // The handler returns only once the host has read nearly all of it (a
    // pipe holds 64 KiB): the line has passed through the host by then.
    let mb = 128;
    let answer = within(
        120,
        host.call(Request::json("long_line", &json!({"mb": mb}))),
    )
    .await
    .expect("the call answers");
    assert_eq!(answer.json().unwrap(), json!(mb));
    let grown = host_rss_bytes().saturating_sub(before);
    assert!(
        grown < (mb << 20) / 2,
        "the host grew by {grown} bytes reading a {mb} MiB line"
    );
    within(
        60,
        host.call(Request::json("environment", &json!({"name": "PATH"}))),
    )
    .await
    .expect("and the worker still serves");
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
