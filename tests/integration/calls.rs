//! What one call does: payload conventions, built-ins, and every error a
//! handler or a payload can cause.

use crate::support::log::Log;
use crate::support::{handlers, within};
use serde_json::json;
use snakepen::{CallError, Request};

async fn call(
    host: &snakepen::Host,
    command: &str,
    payload: &str,
) -> Result<serde_json::Value, CallError> {
    within(30, host.call(Request::new(command, payload)))
        .await
        .map(|r| r.json().expect("replies are JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_is_keyword_arguments_an_array_positional_and_no_payload_none() {
    let host = handlers(1).await;
    assert_eq!(
        call(&host, "add", r#"{"a": 2, "b": 3}"#).await.unwrap(),
        json!(5)
    );
    assert_eq!(call(&host, "add", "[40, 2]").await.unwrap(), json!(42));
    assert_eq!(call(&host, "nothing", "").await.unwrap(), json!(null));
    assert_eq!(
        call(&host, "echo", r#""one""#).await.unwrap(),
        json!({"args": ["one"], "kwargs": {}})
    );
}

/// The worker decodes compact UTF-8 JSON by a quicker path than
/// `json.loads`; every payload `json.loads` takes still means what it says
/// to `json.loads`, and what it refuses is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_mean_what_json_loads_makes_of_them() {
    let host = handlers(1).await;
    let echoed = |payload: Vec<u8>| {
        let host = &host;
        async move {
            within(30, host.call(Request::new("echo", payload)))
                .await
                .map(|r| String::from_utf8(r.payload).unwrap())
        }
    };
    let utf16: Vec<u8> = "\u{feff}\"z\""
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    for (payload, meant) in [
        (
            b"\"compact\"".to_vec(),
            r#"{"args":["compact"],"kwargs":{}}"#,
        ),
        (
            b" \t\"spaced\" \n".to_vec(),
            r#"{"args":["spaced"],"kwargs":{}}"#,
        ),
        (
            b"\xef\xbb\xbf\"bom\"".to_vec(),
            r#"{"args":["bom"],"kwargs":{}}"#,
        ),
        (utf16, r#"{"args":["z"],"kwargs":{}}"#),
        (
            "\"caf\u{e9}\"".as_bytes().to_vec(),
            r#"{"args":["caf\u00e9"],"kwargs":{}}"#,
        ),
        (
            b"[12345678901234567890123]".to_vec(),
            r#"{"args":[12345678901234567890123],"kwargs":{}}"#,
        ),
    ] {
        let text = String::from_utf8_lossy(&payload).into_owned();
        // Compared as JSON values: with orjson the answer's text differs.
        let got = echoed(payload).await.unwrap();
        let value = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
        assert_eq!(value(&got), value(meant), "{text}: {got}");
        if text.contains("1234567890") {
            assert!(got.contains("12345678901234567890123"), "{got}");
        }
    }
    for bad in [
        &b"\"a\" x"[..],
        b"\"unterminated",
        b"\xff\xfe\xfd",
        b"{\"a\":}",
    ] {
        match echoed(bad.to_vec()).await {
            Err(CallError::BadRequest(message)) => {
                assert!(message.contains("not valid JSON"), "{message}")
            }
            other => panic!("{:?} gave {other:?}", String::from_utf8_lossy(bad)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_handler_runs_on_the_worker_s_own_event_loop() {
    let host = handlers(1).await;
    assert_eq!(
        call(&host, "later", r#"{"ms": 5, "value": [1, "two"]}"#)
            .await
            .unwrap(),
        json!([1, "two"])
    );
    // One loop for the worker's life, not one per call.
    let first = call(&host, "loop_id", "").await.unwrap();
    assert_eq!(call(&host, "loop_id", "").await.unwrap(), first);
    match call(&host, "async_boom", r#"["from a coroutine"]"#).await {
        Err(CallError::PythonException {
            type_name,
            message,
            traceback,
        }) => {
            assert_eq!(type_name, "ValueError");
            assert_eq!(message, "from a coroutine");
            assert!(traceback.contains("async_boom"), "{traceback}");
        }
        other => panic!("expected the coroutine's exception, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_response_names_the_worker_that_served_it() {
    let host = handlers(1).await;
    let response = within(30, host.call(Request::new("pid", "")))
        .await
        .unwrap();
    assert_eq!(
        response.json().unwrap(),
        json!(response.worker_pid.unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_info_are_built_in() {
    let host = handlers(1).await;
    let ping = call(&host, "ping", "").await.unwrap();
    assert!(ping["pid"].as_u64().unwrap() > 0);
    let info = call(&host, "info", "").await.unwrap();
    assert_eq!(info["module"], "handlers");
    assert!(info["rss_bytes"].as_u64().unwrap() > 1 << 20, "{info}");
    assert!(info["requests"].as_u64().unwrap() >= 2, "{info}");
    assert!(
        info["functions"]
            .as_array()
            .unwrap()
            .contains(&json!("echo"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exception_comes_back_with_type_message_and_traceback() {
    let host = handlers(1).await;
    match call(&host, "boom", r#"{"message": "no luck"}"#).await {
        Err(CallError::PythonException {
            type_name,
            message,
            traceback,
        }) => {
            assert_eq!(type_name, "ValueError");
            assert_eq!(message, "no luck");
            assert!(traceback.contains("in boom"), "{traceback}");
            assert!(
                traceback.contains("raise ValueError(message)"),
                "{traceback}"
            );
        }
        other => panic!("expected a python exception, got {other:?}"),
    }
    // The worker goes on serving.
    assert_eq!(call(&host, "add", "[1, 1]").await.unwrap(), json!(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_json_cannot_encode_is_an_error_that_names_its_type() {
    let host = handlers(1).await;
    match call(&host, "not_json", "").await {
        Err(CallError::PythonException { message, .. }) => {
            assert!(
                message.contains("'not_json' returned a value JSON cannot encode (a set)"),
                "{message}"
            );
        }
        other => panic!("expected a python exception, got {other:?}"),
    }
}

#[test]
fn print_goes_to_the_log_and_never_into_the_protocol() {
    let log = Log::default();
    log.run(2, async {
        let host = handlers(1).await;
        let pid = host.pool().unwrap().worker_pids()[0];
        for _ in 0..20 {
            assert_eq!(
                call(&host, "talk", r#"{"text": "hello"}"#).await.unwrap(),
                json!("said")
            );
        }
        assert_eq!(host.status().unwrap().restarts, 0);
        // Each printed line, on either stream, is a line of the host's log
        // that names the worker that printed it.
        for stream in ["stdout", "stderr"] {
            let printed = |line: &&str| {
                line.contains(&format!("{stream} says hello"))
                    && line.contains("snakepen::worker")
                    && line.contains(&format!("pid={pid}"))
                    && line.contains(&format!("stream=\"{stream}\""))
            };
            log.until(|text| text.lines().filter(printed).count() >= 20)
                .await;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_command_lists_the_functions_there_are() {
    let host = handlers(1).await;
    match call(&host, "nope", "").await {
        Err(CallError::NoSuchCommand(message)) => {
            assert!(
                message.contains("'nope'") && message.contains("echo"),
                "{message}"
            );
        }
        other => panic!("expected no-such-command, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_that_does_not_fit_is_a_bad_request_naming_the_signature() {
    let host = handlers(1).await;
    match call(&host, "add", r#"{"a": 1}"#).await {
        Err(CallError::BadRequest(message)) => {
            assert!(
                message.contains("add(a, b)") && message.contains("'b'"),
                "{message}"
            );
        }
        other => panic!("expected bad-request, got {other:?}"),
    }
    match call(&host, "add", "{not json").await {
        Err(CallError::BadRequest(message)) => {
            assert!(message.contains("not valid JSON"), "{message}")
        }
        other => panic!("expected bad-request, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_megabyte_travels_both_ways() {
    let host = handlers(1).await;
    let big = "y".repeat(1 << 20);
    let echoed = call(&host, "echo", &json!([big]).to_string())
        .await
        .unwrap();
    assert_eq!(echoed["args"][0].as_str().unwrap().len(), 1 << 20);
    let blob = call(&host, "blob", "[2000000]").await.unwrap();
    assert_eq!(blob.as_str().unwrap().len(), 2_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bytes_handler_gets_and_gives_the_payload_untouched() {
    let host = handlers(1).await;
    let bytes: Vec<u8> = (0..=255).cycle().take(1 << 20).collect();
    let echoed = within(30, host.call(Request::new("echo_bytes", bytes.clone())))
        .await
        .expect("answered");
    assert!(echoed.payload == bytes, "the megabyte came back as it went");
    // `data: "bytes"` (a string annotation, as under `from __future__
    // import annotations`) counts too, and the answer of a plain value is JSON.
    let length = call(&host, "length", "not json at all").await.unwrap();
    assert_eq!(length, json!(15));
    // A handler that returns bytes answers with them, whatever it takes.
    let raw = within(30, host.call(Request::new("as_bytes", r#"["caf\u00e9"]"#)))
        .await
        .expect("answered");
    assert_eq!(raw.payload, "café".as_bytes());
}
