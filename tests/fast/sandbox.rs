//! The sandbox holds against a hostile adapter (plugins/fixtures/hostile):
//! each misbehaviour ends in a typed error for its own call, and the same
//! runtime serves a normal call from another adapter right after.

use crate::support::{fixture, mock_on, within};
use futures_util::future::join_all;
use snakepen::{CallError, Host, Request, Runtime};
use std::time::{Duration, Instant};

async fn hostile_on(
    runtime: &Runtime,
    tune: impl FnOnce(snakepen::HostBuilder) -> snakepen::HostBuilder,
) -> Host {
    tune(Host::builder().runtime(runtime).adapter(fixture("hostile")))
        .build()
        .await
        .expect("the hostile adapter loads")
}

/// Runs `command` on a hostile host, then a normal call on a mock host of
/// the same runtime, and returns the hostile call's error.
async fn misbehave(
    command: &str,
    arg: &str,
    tune: impl FnOnce(snakepen::HostBuilder) -> snakepen::HostBuilder,
) -> CallError {
    let runtime = Runtime::new().unwrap();
    let hostile = hostile_on(&runtime, tune).await;
    let mock = mock_on(&runtime, serde_json::json!({})).await;
    let request = Request::new(command, arg.as_bytes().to_vec()).deadline(Duration::from_secs(10));
    let error = within(30, hostile.call(request))
        .await
        .expect_err("the hostile call fails");
    let started = Instant::now();
    within(5, mock.call(Request::new("ping", "{}")))
        .await
        .expect("the runtime still serves");
    eprintln!(
        "`{command}`: {error}\nthen a mock call in {:?}",
        started.elapsed()
    );
    // And the hostile adapter itself, in a fresh instance, is fine again.
    let fine = within(5, hostile.call(Request::new("ok", Vec::new()))).await;
    assert_eq!(fine.expect("a fresh instance serves").payload, b"\"fine\"");
    error
}

fn fault(error: CallError) -> String {
    match error {
        CallError::AdapterFault(message) => message,
        other => panic!("expected an adapter fault, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_is_stopped_at_its_deadline_while_other_calls_go_on() {
    let runtime = Runtime::new().unwrap();
    let hostile = hostile_on(&runtime, |b| b).await;
    let mock = mock_on(&runtime, serde_json::json!({})).await;
    let started = Instant::now();
    let spin = tokio::spawn({
        let hostile = hostile.clone();
        async move {
            let result = hostile
                .call(Request::new("spin", Vec::new()).deadline(Duration::from_millis(400)))
                .await;
            (result, started.elapsed())
        }
    });
    // Meanwhile, on the same executor, other calls are answered.
    for _ in 0..50 {
        within(5, mock.call(Request::new("ping", "{}")))
            .await
            .unwrap();
    }
    assert!(
        !spin.is_finished(),
        "fifty calls were served while the loop spun"
    );
    let (result, took) = within(30, spin).await.unwrap();
    match result {
        Err(CallError::Timeout(message)) => {
            assert!(
                message.contains("still running") && message.contains("hostile"),
                "{message}"
            )
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        took >= Duration::from_millis(400),
        "stopped early: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "stopped late: {took:?}");
}

#[tokio::test]
async fn a_memory_bomb_hits_its_cap_and_is_told_so() {
    let message = fault(misbehave("grow", "", |b| b.max_memory_bytes(16 << 20)).await);
    assert!(
        message.contains("ran out of memory") && message.contains("16 MiB"),
        "{message}"
    );
}

#[tokio::test]
async fn endless_recursion_is_a_stack_overflow() {
    let message = fault(misbehave("recurse", "", |b| b).await);
    assert!(message.contains("stack"), "{message}");
}

#[tokio::test]
async fn a_panic_carries_its_message_and_the_next_call_gets_a_fresh_instance() {
    let message = fault(misbehave("panic", "", |b| b).await);
    assert!(message.contains("panics on purpose"), "{message}");
}

#[tokio::test]
async fn a_trap_is_a_fault() {
    let message = fault(misbehave("trap", "", |b| b).await);
    assert!(message.contains("unreachable"), "{message}");
}

#[tokio::test]
async fn no_file_system_by_default() {
    let message = fault(misbehave("read", "/etc/passwd", |b| b).await);
    assert!(message.starts_with("read /etc/passwd:"), "{message}");
    let message = fault(misbehave("list", "/", |b| b).await);
    assert!(message.starts_with("list /:"), "{message}");
}

#[tokio::test]
async fn no_network_even_to_a_listening_port() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let message = fault(misbehave("connect", &port, |b| b).await);
    assert!(message.contains("connect to 127.0.0.1"), "{message}");
    assert!(listener.accept().is_err(), "nothing connected");
}

#[tokio::test]
async fn no_environment_arguments_or_clock() {
    let message = fault(misbehave("env", "HOME", |b| b).await);
    assert!(message.contains("0 variables visible"), "{message}");
    let runtime = Runtime::new().unwrap();
    let hostile = hostile_on(&runtime, |b| b).await;
    for (command, answer) in [("args", "0"), ("clock", "0")] {
        let response = hostile
            .call(Request::new(command, Vec::new()))
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&response.payload),
            answer,
            "{command}"
        );
    }
}

#[tokio::test]
async fn an_answer_over_the_size_limit_is_refused() {
    let message = fault(misbehave("huge", "2000000", |b| b.max_response_bytes(1 << 20)).await);
    assert!(message.contains("over its limit of 1 MiB"), "{message}");
}

#[tokio::test]
async fn text_that_is_not_utf8_is_refused() {
    let message = fault(misbehave("bad-utf8", "", |b| b).await);
    assert!(
        message.contains("returned text that is not valid UTF-8")
            && message.contains("a bug in the adapter"),
        "{message}"
    );
}

#[tokio::test]
async fn a_granted_directory_is_all_that_is_reachable_and_read_only_holds() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("note.txt"), "hello").unwrap();
    let runtime = Runtime::new().unwrap();
    let reader = hostile_on(&runtime, |b| b.grant_dir(dir.path(), "/data", true)).await;
    async fn call(host: &Host, command: &str, arg: &str) -> Result<snakepen::Response, CallError> {
        host.call(Request::new(command, arg.as_bytes().to_vec()))
            .await
    }
    let text = call(&reader, "read", "/data/note.txt").await.unwrap();
    assert_eq!(text.payload, b"hello");
    let message = fault(call(&reader, "write", "/data/new.txt").await.unwrap_err());
    assert!(message.starts_with("write /data/new.txt:"), "{message}");
    assert!(!dir.path().join("new.txt").exists());
    fault(call(&reader, "read", "/etc/passwd").await.unwrap_err());
    fault(
        call(&reader, "read", "/data/../../etc/passwd")
            .await
            .unwrap_err(),
    );
    assert_eq!(reader.limits().granted_dirs.len(), 1);

    let writer = hostile_on(&runtime, |b| b.grant_dir(dir.path(), "/data", false)).await;
    call(&writer, "write", "/data/new.txt").await.unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("new.txt")).unwrap(),
        b"written by an adapter"
    );

    let missing = Host::builder()
        .runtime(&runtime)
        .adapter(fixture("hostile"))
        .grant_dir(dir.path().join("absent"), "/data", true)
        .build()
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("absent"), "{missing}");
}

#[tokio::test]
async fn the_cassettes_folder_is_out_of_reach_of_the_adapter_it_records() {
    let dir = tempfile::tempdir().unwrap();
    let cassette = dir.path().join("calls.jsonl");
    std::fs::write(
        &cassette,
        "{\"format\":\"snakepen-cassette\",\"version\":1}\n",
    )
    .unwrap();
    let host = Host::builder()
        .adapter(fixture("hostile"))
        .cassette(crate::support::cassette(
            &cassette,
            snakepen::RecordMode::All,
        ))
        .build()
        .await
        .unwrap();
    let message = fault(
        host.call(Request::new(
            "read",
            cassette.display().to_string().into_bytes(),
        ))
        .await
        .unwrap_err(),
    );
    assert!(message.starts_with("read "), "{message}");
}

#[tokio::test]
async fn the_limits_are_reported() {
    let runtime = Runtime::builder()
        .max_memory_bytes(32 << 20)
        .build()
        .unwrap();
    let host = hostile_on(&runtime, |b| {
        b.max_memory_bytes(8 << 20).max_response_bytes(1000)
    })
    .await;
    let limits = host.limits();
    assert_eq!(limits.max_memory_bytes, 8 << 20);
    assert_eq!(limits.max_response_bytes, 1000);
    assert_eq!(limits.max_stack_bytes, 512 << 10);
    assert!(limits.granted_dirs.is_empty());
    let refused = Host::builder()
        .runtime(&runtime)
        .adapter(fixture("hostile"))
        .max_memory_bytes(1 << 30)
        .build()
        .await
        .expect_err("never above the runtime's, and never quietly lowered to it");
    assert!(
        matches!(
            refused,
            snakepen::Error::OverRuntime {
                key: "max_memory_bytes",
                ..
            }
        ),
        "{refused:?}"
    );
    assert!(
        refused
            .to_string()
            .contains("over its runtime's 33554432 (32 MiB)"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_host_without_a_runtime_makes_one_that_honours_its_memory_limit() {
    let host = Host::builder()
        .adapter(fixture("hostile"))
        .max_memory_bytes(256 << 20)
        .build()
        .await
        .unwrap();
    assert_eq!(host.limits().max_memory_bytes, 256 << 20);
    let grown = within(60, host.call(Request::new("grow", "200"))).await;
    assert_eq!(grown.expect("200 MiB fit under 256 MiB").payload, b"200");
}

#[test]
fn a_runtime_refuses_limits_it_cannot_honour_instead_of_clamping_them() {
    use snakepen::{Error, LimitRange};
    let refused = |builder: snakepen::RuntimeBuilder| match builder.no_cache().build() {
        Err(Error::Limit(e)) => e,
        Err(other) => panic!("expected a limit error, got {other:?}"),
        Ok(_) => panic!("expected a limit error, got a runtime"),
    };
    let e = refused(Runtime::builder().max_memory_bytes(8 << 30));
    assert_eq!((e.range, e.value), (LimitRange::MEMORY, 8 << 30));
    assert_eq!(
        refused(Runtime::builder().max_stack_bytes(1024)).range,
        LimitRange::STACK
    );
    assert_eq!(
        refused(Runtime::builder().max_instances(0)).range,
        LimitRange::INSTANCES
    );
    assert_eq!(
        refused(Runtime::builder().max_table_elements(0)).range,
        LimitRange::TABLE
    );
    assert!(
        e.to_string().starts_with("`max_memory_bytes` = 8589934592 (8 GiB) is over the most the runtime can honour, 4294967296 (4 GiB)"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_of_a_few_milliseconds_ends_in_timeout_never_an_adapter_fault() {
    // Many calls at once on 2 threads: an epoch interrupt can land while an
    // instance is still being made or configured; it is the deadline's.
    let host = crate::support::mock(serde_json::json!({ "latency_ms": 3 })).await;
    let calls: Vec<_> = (0..1_000u64)
        .map(|i| {
            let host = host.clone();
            tokio::spawn(async move {
                let deadline = Duration::from_millis(1 + i % 8);
                host.call(Request::new("echo", b"{}".to_vec()).deadline(deadline))
                    .await
            })
        })
        .collect();
    let mut faults = Vec::new();
    for call in within(60, join_all(calls)).await {
        match call.unwrap() {
            Ok(_) | Err(CallError::Timeout(_)) => {}
            Err(other) => faults.push(other),
        }
    }
    assert!(
        faults.is_empty(),
        "{} calls failed otherwise: {:?}",
        faults.len(),
        faults.first()
    );
}
