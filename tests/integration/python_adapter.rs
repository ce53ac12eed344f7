//! An adapter written in Python and built with componentize-py
//! (plugins/python-adapter/app.py): the contract works from another
//! language's bindings generator. It loads, takes its configuration, keeps
//! it across the calls its instance serves, passes bytes through untouched,
//! and a configuration it refuses stops the start, naming the field.

use crate::support::{fixture, snakepen, within};
use serde_json::json;
use snakepen::{Error, Host, Request};

/// Loading compiles an 18 MB component the first time (then it is cached).
async fn python_adapter(config: serde_json::Value) -> Result<Host, Error> {
    within(
        300,
        Host::builder()
            .adapter(fixture("python-adapter"))
            .config(config)
            .build(),
    )
    .await
}

#[tokio::test]
async fn a_python_adapter_takes_its_configuration_and_answers() {
    let host = python_adapter(json!({ "greeting": "hi" }))
        .await
        .expect("the Python adapter loads");
    for _ in 0..3 {
        let greeted = within(30, host.call(Request::new("greet", r#""bob""#)))
            .await
            .expect("answered");
        assert_eq!(greeted.payload, br#""hi, bob""#);
    }
    let bytes = vec![0, 159, 146, 150, 255];
    let echoed = within(30, host.call(Request::new("echo", bytes.clone())))
        .await
        .expect("answered");
    assert_eq!(echoed.payload, bytes, "bytes cross untouched");
    let error = within(30, host.call(Request::new("nope", "{}")))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "no-such-command", "{error}");
}

#[tokio::test]
async fn a_configuration_the_python_adapter_refuses_stops_the_start_naming_the_field() {
    match python_adapter(json!({ "greting": "hi" })).await {
        Err(Error::AdapterConfig { field, message, .. }) => {
            assert_eq!(field.as_deref(), Some("greting"), "{message}");
            assert!(message.contains("unknown field"), "{message}");
        }
        Err(other) => panic!("expected a refused configuration, got {other}"),
        Ok(_) => panic!("a misspelt field must stop the start"),
    }
}

#[test]
fn inspect_marks_the_export_componentize_py_adds_as_ignored() {
    let path = fixture("python-adapter");
    let path = path.to_str().unwrap();
    let output = snakepen(&["inspect", path]);
    assert!(output.success(), "{}", output.stderr);
    assert!(
        output
            .stdout
            .contains("exports   (not part of the contract: the host ignores it)"),
        "{}",
        output.stdout
    );
    let output = snakepen(&["inspect", "--json", path]);
    let shown: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(shown["ignored_exports"], json!(["exports"]));
    assert_eq!(shown["refused"], serde_json::Value::Null);
}
