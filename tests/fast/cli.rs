//! The `snakepen` command line, run as a user would run it.

use crate::support::{fixture, run, snakepen, snakepen_command};

#[test]
fn call_prints_the_response_as_json() {
    let output = snakepen(&["call", "--adapter", "mock", "ping", "{}"]);
    assert!(output.success(), "{}", output.stderr);
    let value: serde_json::Value = serde_json::from_str(output.stdout.trim()).unwrap();
    assert_eq!(value["command"], "ping");
}

#[test]
fn call_with_a_configuration_file_and_full_output() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mock.toml");
    std::fs::write(
        &config,
        "[[responses]]\ncommand = \"ping\"\nresponse = \"pong\"\n",
    )
    .unwrap();
    let output = snakepen(&[
        "call",
        "-a",
        "mock",
        "--adapter-config",
        config.to_str().unwrap(),
        "--full",
        "ping",
    ]);
    assert!(output.success(), "{}", output.stderr);
    let value: serde_json::Value = serde_json::from_str(output.stdout.trim()).unwrap();
    assert_eq!(
        value,
        serde_json::json!({ "payload": "pong", "worker_pid": null })
    );
}

#[test]
fn a_call_error_exits_1_and_says_its_kind() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mock.json");
    std::fs::write(&config, r#"{"failures": [{"command": "boom", "error": {"kind": "python-exception", "type": "KeyError", "message": "'x'"}}]}"#).unwrap();
    let output = snakepen(&[
        "call",
        "-a",
        "mock",
        "--adapter-config",
        config.to_str().unwrap(),
        "boom",
    ]);
    assert_eq!(output.code, Some(1));
    assert!(
        output.stderr.contains("python-exception") && output.stderr.contains("KeyError"),
        "{}",
        output.stderr
    );
}

#[test]
fn a_payload_that_is_not_json_is_refused_with_an_example() {
    let output = snakepen(&["call", "-a", "mock", "ping", "{x: 1}"]);
    assert_eq!(output.code, Some(2), "bad usage: {}", output.stderr);
    assert!(
        output.stderr.contains("not valid JSON") && output.stderr.contains(r#"'{"x": 1}'"#),
        "{}",
        output.stderr
    );
}

#[test]
fn a_payload_nested_too_deep_is_called_that_and_not_invalid() {
    let nested = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
    let output = snakepen(&["call", "-a", "mock", "ping", &nested(127)]);
    assert!(
        !output.stderr.contains("PAYLOAD"),
        "127 levels are read: {}",
        output.stderr
    );
    for levels in [128, 200] {
        let output = snakepen(&["call", "-a", "mock", "ping", &nested(levels)]);
        assert_eq!(output.code, Some(2), "{}", output.stderr);
        assert!(
            output
                .stderr
                .contains(&format!("nests arrays or objects {levels} levels deep"))
                && output.stderr.contains("reads at most 127")
                && !output.stderr.contains("not valid JSON"),
            "{}",
            output.stderr
        );
    }
    // Brackets inside a string are text, not nesting.
    let text = format!("[\"{}\"", "[".repeat(300));
    let output = snakepen(&["call", "-a", "mock", "ping", &text]);
    assert!(
        output.stderr.contains("not valid JSON"),
        "{}",
        output.stderr
    );
}

/// A configuration file of the hostile adapter and `extra` lines, in `dir`.
fn hostile_config(dir: &std::path::Path, extra: &str) -> String {
    let file = dir.join("snakepen.toml");
    let hostile = fixture("hostile");
    std::fs::write(
        &file,
        format!("[adapter]\nname = {:?}\n\n{extra}", hostile.display()),
    )
    .unwrap();
    file.display().to_string()
}

#[test]
fn every_limit_is_set_from_a_flag_and_from_the_file() {
    let hostile = fixture("hostile");
    let hostile = hostile.to_str().unwrap();
    // Under the default 64 MiB, 100 MiB does not fit; with the flag it does.
    let output = snakepen(&["call", "-a", hostile, "grow", "100"]);
    assert_eq!(output.code, Some(1), "{}", output.stderr);
    assert!(
        output.stderr.contains("over its limit of 64 MiB"),
        "{}",
        output.stderr
    );
    let output = snakepen(&[
        "call",
        "-a",
        hostile,
        "--max-memory-bytes",
        "134217728",
        "grow",
        "100",
    ]);
    assert!(output.success(), "{}", output.stderr);
    assert_eq!(output.stdout.trim(), "100");

    let dir = tempfile::tempdir().unwrap();
    let config = hostile_config(
        dir.path(),
        "[limits]\nmax_memory_bytes = 134217728\nmax_response_bytes = 10\ncall_timeout_ms = 100\n\
         max_table_elements = 30000\nmax_stack_bytes = 1048576\nmax_instances = 4\n",
    );
    let output = snakepen(&["call", "--config", &config, "grow", "100"]);
    assert!(
        output.success(),
        "the file's memory limit: {}",
        output.stderr
    );
    let output = snakepen(&["call", "--config", &config, "huge", "11"]);
    assert!(
        output.stderr.contains("over its limit of 10 B"),
        "the file's answer limit: {}",
        output.stderr
    );
    let output = snakepen(&["call", "--config", &config, "spin"]);
    assert!(
        output.stderr.contains("error: timeout:") && output.stderr.contains("deadline"),
        "the file's call timeout: {}",
        output.stderr
    );
    // Flags override the file.
    let output = snakepen(&[
        "call",
        "--config",
        &config,
        "--max-response-bytes",
        "100",
        "huge",
        "11",
    ]);
    assert!(output.success(), "{}", output.stderr);
    let output = snakepen(&[
        "call",
        "--config",
        &config,
        "--call-timeout-ms",
        "60000",
        "ok",
    ]);
    assert!(output.success(), "{}", output.stderr);
}

#[test]
fn run_takes_the_same_configuration_file_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let config = hostile_config(dir.path(), "[limits]\nmax_memory_bytes = 134217728\n");
    let requests = dir.path().join("requests.jsonl");
    std::fs::write(&requests, "{\"command\": \"grow\", \"payload\": 100}\n").unwrap();
    let requests = requests.to_str().unwrap();
    let output = snakepen(&[
        "run",
        "--config",
        &config,
        "--json",
        "--fail-on-error",
        requests,
    ]);
    assert!(output.success(), "{}\n{}", output.stdout, output.stderr);
    let output = snakepen(&[
        "run",
        "--config",
        &config,
        "--max-memory-bytes",
        "67108864",
        "--fail-on-error",
        requests,
    ]);
    assert_eq!(
        output.code,
        Some(1),
        "the flag lowered the file's limit: {}",
        output.stdout
    );
}

#[test]
fn a_limit_over_the_runtime_ceiling_is_refused_naming_the_flag_or_key() {
    let output = snakepen(&[
        "call",
        "-a",
        "mock",
        "--max-memory-bytes",
        "8589934592",
        "ping",
    ]);
    assert_eq!(output.code, Some(2), "{}", output.stderr);
    assert!(
        output.stderr.contains("`--max-memory-bytes` = 8589934592 (8 GiB) is over the most the runtime can honour, 4294967296 (4 GiB)"),
        "{}",
        output.stderr
    );
    for (flag, value) in [
        ("--max-stack-bytes", "1024"),
        ("--max-instances", "0"),
        ("--max-table-elements", "2000000"),
        ("--call-timeout-ms", "0"),
        ("--max-response-bytes", "0"),
    ] {
        let output = snakepen(&["call", "-a", "mock", flag, value, "ping"]);
        assert_eq!(output.code, Some(2), "{flag}: {}", output.stderr);
        assert!(
            output.stderr.contains(&format!("`{flag}` = ")),
            "{flag}: {}",
            output.stderr
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let config = hostile_config(dir.path(), "[limits]\nmax_memory_bytes = 8589934592\n");
    let output = snakepen(&["config", "check", &config]);
    assert_eq!(output.code, Some(2), "{}", output.stderr);
    assert!(
        output.stderr.contains("snakepen.toml:5: `limits.max_memory_bytes` = 8589934592 (8 GiB) is over the most the runtime can honour, 4294967296 (4 GiB)"),
        "{}",
        output.stderr
    );
    let config = hostile_config(dir.path(), "[limits]\nmax_memory_bytes = 268435456\n");
    let output = snakepen(&["config", "check", &config]);
    assert!(output.success(), "{}", output.stderr);
}

#[test]
fn a_bad_adapter_exits_3_with_the_reason() {
    let output = snakepen(&[
        "call",
        "-a",
        fixture("contract-next").to_str().unwrap(),
        "ping",
    ]);
    assert_eq!(output.code, Some(3));
    assert!(
        output.stderr.contains("snakepen:adapter@0.2.0"),
        "{}",
        output.stderr
    );
}

#[test]
fn inspect_names_the_contract_and_world() {
    let output = snakepen(&["inspect", "mock"]);
    assert!(output.success(), "{}", output.stderr);
    let text = output.stdout;
    assert!(text.contains("snakepen:adapter@0.1.4"), "{text}");
    assert!(text.contains("snakepen:adapter/plugin@0.1.4"), "{text}");
    assert!(text.contains("snakepen:adapter/counters@0.1.4"), "{text}");
}

#[test]
fn inspect_json_of_a_foreign_component_describes_it_and_exits_non_zero() {
    let output = snakepen(&[
        "inspect",
        "--json",
        fixture("other-world").to_str().unwrap(),
    ]);
    assert_eq!(output.code, Some(3));
    let value: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(value["contract"], serde_json::Value::Null);
    assert_eq!(
        value["exports"],
        serde_json::json!(["example:greeter/greet@1.0.0"])
    );
    assert!(value["refused"].as_str().unwrap().contains("another world"));
}

#[test]
fn every_subcommand_has_help() {
    for args in [&["--help"][..], &["call", "--help"], &["inspect", "--help"]] {
        let output = snakepen(args);
        assert!(output.success(), "{args:?}");
        assert!(output.stdout.contains("Usage:"), "{args:?}");
    }
}

#[test]
fn replay_checks_a_cassette_on_its_own() {
    let cassette = crate::support::committed_cassette("demo.jsonl");
    let output = snakepen(&["replay", cassette.to_str().unwrap()]);
    assert!(output.success(), "{}", output.stderr);
    let text = output.stdout;
    assert!(
        text.contains("28 interactions replayed, 28 identical"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.jsonl");
    let bytes = std::fs::read(&cassette).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
    let output = snakepen(&["replay", cut.to_str().unwrap()]);
    assert_eq!(output.code, Some(3), "{}", output.stderr);
    assert!(
        output.stderr.contains("line 29 is cut off"),
        "{}",
        output.stderr
    );
}

#[test]
fn call_with_a_cassette_alone_replays_it_and_a_miss_says_what_to_do() {
    let cassette = crate::support::committed_cassette("demo.jsonl");
    let cassette = cassette.to_str().unwrap();
    let args = ["call", "--cassette", cassette, "--record-mode", "none"];
    let payload = r#"{"text": "the cat and the hat", "top": 2}"#;
    let output = snakepen(&[&args[..], &["word_stats", payload]].concat());
    assert!(output.success(), "{}", output.stderr);
    assert!(output.stdout.contains(r#""words":5"#), "{}", output.stdout);

    let output = snakepen(
        &[
            &args[..],
            &["word_stats", r#"{"text": "the dog", "top": 2}"#],
        ]
        .concat(),
    );
    assert_eq!(output.code, Some(1));
    let err = output.stderr;
    assert!(
        err.contains("cassette-miss")
            && err.contains(r#"/text: "the cat and the hat" -> "the dog""#),
        "{err}"
    );
}

#[test]
fn inspect_reports_the_sandbox_limits() {
    let output = snakepen(&["inspect", "mock"]);
    assert!(output.success(), "{}", output.stderr);
    let text = output.stdout;
    for expected in [
        "memory        64 MiB per instance",
        "stack         512 KiB",
        "network       none",
        "files         none",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} is missing from:\n{text}"
        );
    }
    let output = snakepen(&["inspect", "mock", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(value["limits"]["max_memory_bytes"], 64 << 20);
}

#[test]
fn the_authoring_guide_gives_the_deadline_slack_inspect_reports() {
    let output = snakepen(&["inspect", "mock", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    let slack = value["limits"]["deadline_slack_ms"].as_u64().unwrap();
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/authoring-adapters.md"),
    )
    .unwrap();
    let said = format!("stopped at most {slack} ms after its call's");
    assert!(
        guide
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .contains(&said),
        "docs/authoring-adapters.md should say {said:?}"
    );
}

#[test]
fn a_pool_larger_than_the_ceiling_is_refused_before_any_worker_starts() {
    let output = snakepen(&[
        "call",
        "--module",
        "handlers.py",
        "--pool-size",
        "100000",
        "ping",
    ]);
    // Bad usage, as any flag's value the host refuses (README: exit status 2).
    assert_eq!(output.code, Some(2), "{}", output.stderr);
    assert!(
        output.stderr.contains("ceiling of 1024 workers"),
        "{}",
        output.stderr
    );
}

#[test]
fn a_pool_the_descriptor_limit_cannot_hold_is_refused_naming_the_limit() {
    use std::os::unix::process::CommandExt;
    let mut command = snakepen_command();
    command.args([
        "call",
        "--module",
        "handlers.py",
        "--pool-size",
        "100",
        "ping",
    ]);
    // SAFETY: setrlimit is async-signal-safe and touches nothing else.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = run(&mut command);
    assert_eq!(output.code, Some(2), "{}", output.stderr);
    let message = output.stderr;
    assert!(
        message.contains("over this process's limit of 256 (RLIMIT_NOFILE)")
            && message.contains("run at most 27 workers"),
        "{message}"
    );
}

#[test]
fn threads_are_a_global_flag_and_zero_is_refused() {
    let output = snakepen(&["--threads", "0", "call", "-a", "mock", "ping"]);
    assert_eq!(output.code, Some(2), "{}", output.stderr);
    assert!(output.stderr.contains("--threads"), "{}", output.stderr);
    let output = snakepen(&["call", "-a", "mock", "--threads", "1", "ping"]);
    assert!(
        !output.stderr.contains("--threads"),
        "one thread serves: {}",
        output.stderr
    );
}
