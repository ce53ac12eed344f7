//! The mock refuses a configuration that does not fit, naming the field;
//! configuration files are TOML or JSON.

use crate::support::plugin;
use serde_json::json;
use snakepen::{AdapterConfig, Error, Host, Request};

async fn refusal(config: impl Into<AdapterConfig>) -> Error {
    Host::builder()
        .adapter(plugin("mock"))
        .config(config)
        .build()
        .await
        .unwrap_err()
}

fn field_of(err: &Error) -> Option<String> {
    match err {
        Error::AdapterConfig { field, .. } => field.clone(),
        other => panic!("expected a configuration refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_misspelt_field_is_refused_by_its_path() {
    let err = refusal(json!({ "responses": [{ "comand": "ping", "response": 1 }] })).await;
    assert_eq!(field_of(&err).as_deref(), Some("responses[0].comand"));
    let message = err.to_string();
    assert!(
        message.contains("unknown field `comand`") && message.contains("`command`"),
        "{message}"
    );
    assert!(
        !message.contains("line 1"),
        "no JSON position the user never wrote: {message}"
    );
}

#[tokio::test]
async fn a_field_of_the_wrong_type_is_refused_by_its_name() {
    let err = refusal(json!({ "latency_ms": "fast" })).await;
    assert_eq!(field_of(&err).as_deref(), Some("latency_ms"));
    assert!(err.to_string().contains("invalid type"), "{err}");
}

#[tokio::test]
async fn an_unknown_error_kind_is_refused() {
    let err =
        refusal(json!({ "failures": [{ "every": 2, "error": { "kind": "explosion" } }] })).await;
    assert_eq!(field_of(&err).as_deref(), Some("failures[0].error.kind"));
    assert!(err.to_string().contains("explosion"), "{err}");
}

#[tokio::test]
async fn impossible_failure_rules_are_refused() {
    let zero =
        refusal(json!({ "failures": [{ "every": 0, "error": { "kind": "timeout" } }] })).await;
    assert_eq!(field_of(&zero).as_deref(), Some("failures[0].every"));
    let rate =
        refusal(json!({ "failures": [{ "rate": 1.5, "error": { "kind": "timeout" } }] })).await;
    assert_eq!(field_of(&rate).as_deref(), Some("failures[0].rate"));
    let unconditional = refusal(json!({ "failures": [{ "error": { "kind": "timeout" } }] })).await;
    assert_eq!(field_of(&unconditional).as_deref(), Some("failures[0]"));
}

#[tokio::test]
async fn a_canned_entry_needs_exactly_one_of_response_and_error() {
    let both = refusal(
        json!({ "responses": [{ "command": "x", "response": 1, "error": { "kind": "timeout" } }] }),
    )
    .await;
    assert_eq!(field_of(&both).as_deref(), Some("responses[0]"));
    let neither = refusal(json!({ "responses": [{ "command": "x" }] })).await;
    assert_eq!(field_of(&neither).as_deref(), Some("responses[0]"));
}

#[tokio::test]
async fn a_document_that_is_not_an_object_is_refused_as_a_whole() {
    let err = refusal(json!([1, 2, 3])).await;
    assert_eq!(field_of(&err), None);
    assert!(err.to_string().contains("table of fields"), "{err}");
}

#[tokio::test]
async fn a_toml_file_configures_the_mock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mock.toml");
    std::fs::write(
        &path,
        r#"
        [[responses]]
        command = "greet"
        payload = { name = "ada" }
        response = { greeting = "hello, ada" }
        "#,
    )
    .unwrap();
    let host = Host::builder()
        .adapter(plugin("mock"))
        .config(AdapterConfig::file(&path))
        .build()
        .await
        .unwrap();
    let response = host
        .call(Request::json("greet", &json!({ "name": "ada" })))
        .await
        .unwrap();
    assert_eq!(
        response.json().unwrap(),
        json!({ "greeting": "hello, ada" })
    );
}

#[tokio::test]
async fn a_wrong_field_in_a_toml_file_is_refused_by_name() {
    let err = refusal(AdapterConfig::Toml("latency_ms = 5\nlatncy = 3\n".into())).await;
    assert_eq!(field_of(&err).as_deref(), Some("latncy"));
}

#[tokio::test]
async fn a_file_that_does_not_parse_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("broken.toml");
    std::fs::write(&toml, "responses = [").unwrap();
    let err = refusal(AdapterConfig::file(&toml)).await;
    assert!(matches!(err, Error::ConfigFile { .. }), "{err:?}");
    assert!(
        err.to_string().contains("broken.toml") && err.to_string().contains("TOML"),
        "{err}"
    );

    let json = dir.path().join("broken.json");
    std::fs::write(&json, "{ nope").unwrap();
    let err = refusal(AdapterConfig::file(&json)).await;
    assert!(
        err.to_string().contains("broken.json") && err.to_string().contains("JSON"),
        "{err}"
    );

    let err = refusal(AdapterConfig::file(dir.path().join("absent.toml"))).await;
    assert!(err.to_string().contains("absent.toml"), "{err}");
}
