//! How answers become JSON: the same values and the same refusals whether
//! the worker's interpreter has orjson or not (`just json-venvs` makes an
//! interpreter of each kind).

use crate::support::{bridge, python_module, within};
use snakepen::{CallError, Host, Request};
use std::path::PathBuf;

/// The interpreter of `target/{venv}`, which has orjson or not, as `orjson` says.
fn interpreter(venv: &str, orjson: bool) -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target")
        .join(venv)
        .join("bin/python");
    let has_orjson = std::process::Command::new(&python)
        .args(["-c", "import orjson"])
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success());
    assert!(
        has_orjson.is_ok_and(|has| has == orjson),
        "{} is missing or not as `just json-venvs` makes it: run `just json-venvs` (or `just test`)",
        python.display()
    );
    python
}

async fn handlers_on(python: PathBuf) -> Host {
    let mut pool = snakepen::PoolConfig::new(python_module("handlers"));
    pool.size = 1;
    pool.python = python;
    let host = bridge(pool).await;
    within(60, host.ready()).await.expect("the worker starts");
    host
}

/// The answer's text, or its error.
async fn answer(host: &Host, command: &str) -> Result<String, CallError> {
    within(30, host.call(Request::new(command, Vec::new())))
        .await
        .map(|r| String::from_utf8(r.payload).expect("JSON is UTF-8"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_the_same_json_with_orjson_and_without() {
    let plain = handlers_on(interpreter("plain-venv", false)).await;
    let fast = handlers_on(interpreter("orjson-venv", true)).await;
    // Each alone, so that each reason orjson has to leave an answer to the
    // standard library (a null, an integer beyond 64 bits, keys that are
    // not strings, nesting deeper than orjson goes) is met by itself.
    let names = [
        "text", "big", "float", "keys", "enum", "uuid", "none", "deep",
    ];
    for name in names {
        let request = || Request::json("kind", &serde_json::json!({ "name": name }));
        let a = within(30, plain.call(request())).await.unwrap().payload;
        let b = within(30, fast.call(request())).await.unwrap().payload;
        if a != b {
            let value = |text: &[u8]| serde_json::from_slice::<serde_json::Value>(text).unwrap();
            assert_eq!(value(&a), value(&b), "{name}");
        }
    }
    let (a, b) = (
        answer(&plain, "kinds").await.unwrap(),
        answer(&fast, "kinds").await.unwrap(),
    );
    assert_eq!(
        a, b,
        "an answer with a null in it is the standard library's"
    );
    assert!(a.contains("12345678901234567890123"), "{a}");
    // orjson did write the answer it can write alike: its text differs.
    let text = answer(&fast, "kinds_without_null").await.unwrap();
    assert!(text.contains("caf\u{e9}"), "{text}");
    let text = answer(&plain, "kinds_without_null").await.unwrap();
    assert!(text.contains("caf\\u00e9"), "{text}");
    // A dataclass is its fields; an object with toDict() (a DSPy
    // Prediction) what that returns, dataclasses in it included.
    for host in [&plain, &fast] {
        let value = |text: String| serde_json::from_str::<serde_json::Value>(&text).unwrap();
        assert_eq!(
            value(answer(host, "a_dataclass").await.unwrap()),
            serde_json::json!({"x": 1, "y": 2})
        );
        assert_eq!(
            value(answer(host, "a_prediction").await.unwrap()),
            serde_json::json!({"answer": "42", "steps": [{"x": 1, "y": 2}]})
        );
    }
    for (command, says) in [
        ("a_nan", "Out of range float values"),
        ("an_infinity", "Out of range float values"),
        ("a_date", "Object of type date is not JSON serializable"),
    ] {
        for host in [&plain, &fast] {
            match answer(host, command).await {
                Err(CallError::PythonException { message, .. }) => {
                    assert!(
                        message.contains("returned a value JSON cannot encode"),
                        "{message}"
                    );
                    assert!(message.contains(says), "{command}: {message}");
                }
                other => panic!("{command} gave {other:?}"),
            }
        }
    }
}
