//! `snakepen call --module` and `snakepen run`, as a user runs them.

use crate::support::{python_module, snakepen};

#[test]
fn call_runs_a_python_function() {
    let module = python_module("handlers");
    let output = snakepen(&["call", "--module", &module, "add", r#"{"a": 20, "b": 22}"#]);
    assert!(output.success(), "{}", output.stderr);
    assert_eq!(output.stdout.trim(), "42");
}

#[test]
fn call_serves_an_async_handler_on_a_worker_of_several_calls() {
    let module = python_module("handlers");
    let output = snakepen(&[
        "call",
        "--module",
        &module,
        "--max-concurrency",
        "8",
        "later",
        r#"{"ms": 1, "value": [7]}"#,
    ]);
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    assert_eq!(output.stdout.trim(), "[7]");
    let output = snakepen(&[
        "call",
        "--module",
        &module,
        "--max-concurrency",
        "0",
        "later",
    ]);
    assert_eq!(output.code, Some(2), "{}", output.stderr);
    assert!(
        output.stderr.contains("`--max-concurrency` is 0"),
        "{}",
        output.stderr
    );
}

#[test]
fn call_reports_a_python_exception_with_exit_status_1() {
    let module = python_module("handlers");
    let output = snakepen(&["call", "--module", &module, "boom"]);
    assert_eq!(output.code, Some(1));
    let stderr = &output.stderr;
    assert!(
        stderr.contains("python-exception") && stderr.contains("ValueError: boom"),
        "{stderr}"
    );
}

#[test]
fn call_with_a_broken_module_exits_3_with_the_traceback() {
    let module = python_module("broken_syntax");
    let output = snakepen(&["call", "--module", &module, "oops"]);
    assert_eq!(output.code, Some(3));
    let stderr = &output.stderr;
    assert!(
        stderr.contains("SyntaxError") && stderr.contains("def oops(:"),
        "{stderr}"
    );
}

#[test]
fn run_answers_a_file_of_requests_and_summarises() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("requests.jsonl");
    let mut lines = String::from("# a comment line\n");
    for i in 0..50 {
        lines.push_str(&format!(
            "{{\"command\": \"add\", \"payload\": [{i}, 1]}}\n"
        ));
    }
    lines.push_str("{\"command\": \"boom\"}\n");
    lines.push_str("{\"command\": \"pid\", \"session\": \"s1\"}\n");
    std::fs::write(&file, lines).unwrap();
    let module = python_module("handlers");
    let output = snakepen(&[
        "run",
        "--module",
        &module,
        "--pool-size",
        "2",
        "--json",
        file.to_str().unwrap(),
    ]);
    assert!(output.success(), "{}", output.stderr);
    let summary: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(summary["requests"], 52);
    assert_eq!(summary["ok"], 51);
    assert_eq!(summary["errors_by_kind"]["python-exception"], 1);
    let per_worker: u64 = summary["calls_per_worker"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(per_worker, 51);
    assert!(summary["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
}

#[test]
fn run_names_the_line_that_is_not_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("requests.jsonl");
    std::fs::write(&file, "{\"command\": \"add\"}\n{\"comand\": \"add\"}\n").unwrap();
    let module = python_module("handlers");
    let output = snakepen(&["run", "--module", &module, file.to_str().unwrap()]);
    assert_eq!(output.code, Some(2));
    let stderr = &output.stderr;
    assert!(
        stderr.contains("requests.jsonl:2") && stderr.contains("comand"),
        "{stderr}"
    );
}

#[test]
fn printed_lines_reach_the_hosts_log_tagged_with_the_worker() {
    let module = python_module("handlers");
    let output = snakepen(&[
        "--log",
        "info",
        "call",
        "--module",
        &module,
        "talk",
        r#"{"text": "marmalade"}"#,
    ]);
    assert!(output.success(), "{}", output.stderr);
    assert_eq!(
        output.stdout.trim(),
        r#""said""#,
        "stdout holds the reply alone"
    );
    let log = &output.stderr;
    for stream in ["stdout", "stderr"] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("{stream} says marmalade")))
            .unwrap_or_else(|| panic!("no {stream} line in the log:\n{log}"));
        assert!(
            line.contains("pid=") && line.contains(&format!("stream=\"{stream}\"")),
            "{line}"
        );
    }
}

#[test]
fn call_stream_prints_each_chunk_as_a_line_then_the_result() {
    let module = python_module("handlers");
    let output = snakepen(&["call", "--module", &module, "--stream", "count", "[3]"]);
    assert!(output.success(), "{}", output.stderr);
    assert_eq!(output.stdout, "0\n1\n2\n\"counted 3\"\n");
}

#[test]
fn ctrl_c_of_a_streaming_call_closes_the_generator_before_exiting() {
    use std::io::BufRead;
    let module = python_module("handlers");
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("closed");
    let payload = format!(r#"{{"n": 100000000, "marker": "{}"}}"#, marker.display());
    let mut child = crate::support::snakepen_command()
        .args(["call", "--module", &module, "--stream", "count", &payload])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Bounds the whole exchange, the reads included, against a hang.
    let watchdog = crate::support::Watchdog::arm(child.id(), 120);
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for expected in 0..3 {
        let line = lines.next().expect("a chunk line before the end").unwrap();
        assert_eq!(line, expected.to_string());
    }
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    watchdog.disarm("snakepen call --stream after Ctrl-C");
    assert_eq!(status.code(), Some(1), "interrupted is a failed call");
    assert!(
        marker.exists(),
        "the generator's finally ran before the command exited"
    );
}
