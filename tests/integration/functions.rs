//! Handlers describe themselves: the worker's handshake carries each
//! handler's parameters, docstring, kind and payload schema;
//! `snakepen inspect --module` prints them without serving, and
//! `GET /v1/functions` serves them.

use crate::support::served::Served;
use crate::support::{python_module, snakepen};
use serde_json::{Value, json};

fn described() -> Value {
    let out = snakepen(&["inspect", "--module", &python_module("described"), "--json"]);
    assert!(out.success(), "{}", out.stderr);
    serde_json::from_str(&out.stdout).expect("JSON on stdout")
}

fn handler<'a>(handlers: &'a Value, name: &str) -> &'a Value {
    handlers
        .as_array()
        .expect("a list of handlers")
        .iter()
        .find(|h| h["name"] == name)
        .unwrap_or_else(|| panic!("no handler {name} in {handlers}"))
}

#[test]
fn inspect_module_describes_signatures_docstrings_and_kinds() {
    let description = described();
    assert_eq!(description["module"], "described");
    let handlers = &description["handlers"];
    let names: Vec<&str> = handlers
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    // Classes and imported names are not handlers.
    assert_eq!(names, ["add", "count", "fetch", "raw", "shapes", "untyped"]);
    let add = handler(handlers, "add");
    assert_eq!(add["kind"], "plain");
    assert_eq!(
        add["doc"],
        "Adds two numbers.\n\nThe second is 2 unless given."
    );
    assert_eq!(add["returns"], "int");
    assert_eq!(
        add["parameters"],
        json!([
            {"name": "a", "kind": "positional-or-keyword", "required": true, "annotation": "int"},
            {"name": "b", "kind": "positional-or-keyword", "required": false, "annotation": "int", "default": 2},
        ])
    );
    let fetch = handler(handlers, "fetch");
    assert_eq!(fetch["kind"], "async");
    assert_eq!(fetch["parameters"][1]["kind"], "keyword-only");
    assert_eq!(fetch["parameters"][1]["default"], Value::Null);
    assert!(
        fetch["parameters"][1]
            .as_object()
            .unwrap()
            .contains_key("default"),
        "a default of None is shown: {fetch}"
    );
    let count = handler(handlers, "count");
    assert_eq!(count["kind"], "generator");
    let kinds: Vec<&str> = count["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["positional-only", "var-positional", "var-keyword"]);
    let untyped = handler(handlers, "untyped");
    assert_eq!(untyped["parameters"][1]["default_repr"], "<object object>");
    assert_eq!(handler(handlers, "raw")["takes_bytes"], true);
}

#[test]
fn payload_schemas_follow_the_annotations() {
    let handlers = described()["handlers"].clone();
    let add = &handler(&handlers, "add")["schema"]["anyOf"];
    assert_eq!(
        add[0],
        json!({"type": "object",
               "properties": {"a": {"type": "integer"}, "b": {"type": "integer", "default": 2}},
               "required": ["a"], "additionalProperties": false})
    );
    assert_eq!(add[1]["type"], "array");
    assert_eq!(
        (add[1]["minItems"].as_u64(), add[1]["maxItems"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(add[2], json!({"type": "integer"}), "one argument alone");

    let fetch = &handler(&handlers, "fetch")["schema"]["anyOf"][0]["properties"];
    assert_eq!(
        fetch["retries"],
        json!({"anyOf": [{"type": "integer"}, {"type": "null"}], "default": null})
    );
    assert_eq!(
        fetch["mode"],
        json!({"enum": ["fast", "slow"], "default": "fast"})
    );

    let shapes = &handler(&handlers, "shapes")["schema"]["anyOf"][0]["properties"];
    assert_eq!(
        shapes["point"],
        json!({"type": "object", "title": "Point",
               "properties": {"x": {"type": "integer"}, "y": {"type": "number"}},
               "additionalProperties": false, "required": ["x", "y"]})
    );
    assert_eq!(
        shapes["options"],
        json!({"type": "object", "title": "Options",
               "properties": {"depth": {"type": "integer"}, "label": {"type": "string"}},
               "required": ["depth"]})
    );
    assert_eq!(
        shapes["colour"],
        json!({"enum": ["red", "blue"], "title": "Colour"})
    );
    assert_eq!(
        shapes["rows"],
        json!({"type": "array", "items": {"type": "object", "additionalProperties": {"type": "integer"}}})
    );
    assert_eq!(
        shapes["pair"],
        json!({"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}],
               "minItems": 2, "maxItems": 2})
    );
    assert_eq!(
        shapes["maybe"],
        json!({"anyOf": [{"type": "integer"}, {"type": "null"}], "default": null}),
        "a string annotation is read as Python would"
    );

    // No annotation: any JSON; `**extra` takes any other key; a
    // positional-only parameter cannot be given by keyword.
    let untyped = &handler(&handlers, "untyped")["schema"]["anyOf"][0]["properties"];
    assert_eq!(untyped["thing"], json!({}));
    let count = &handler(&handlers, "count")["schema"]["anyOf"];
    assert_eq!(count[0]["type"], "array", "no keyword form: {count}");
    assert!(count[0].get("maxItems").is_none(), "*rest takes more");
    assert_eq!(handler(&handlers, "raw")["schema"], json!({}));
}

#[test]
fn inspect_module_of_a_module_that_does_not_import_shows_its_traceback() {
    let out = snakepen(&["inspect", "--module", &python_module("broken_syntax")]);
    assert!(!out.success());
    assert!(out.stderr.contains("SyntaxError"), "{}", out.stderr);
    assert!(
        out.stderr.contains("broken_syntax.py\", line 1"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn the_server_lists_its_handlers_as_inspect_does() {
    let module = python_module("described");
    let server = Served::start(&["--module", &module, "--pool-size", "1"]).await;
    let (status, text) = server.get("/v1/functions").await;
    assert_eq!(status, 200, "{text}");
    let served: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(served["functions"], described()["handlers"]);
}

#[tokio::test]
async fn handlers_hard_to_describe_never_fail_a_start() {
    let started = std::time::Instant::now();
    let out = snakepen(&[
        "inspect",
        "--module",
        &python_module("described_odd"),
        "--json",
    ]);
    assert!(out.success(), "{}", out.stderr);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "the module's thread held the answer back"
    );
    let description: Value = serde_json::from_str(&out.stdout).unwrap();
    let handlers = &description["handlers"];
    assert_eq!(
        handler(handlers, "choose")["schema"]["anyOf"][0]["properties"]["speed"],
        json!({})
    );
    let bounded = &handler(handlers, "bounded")["parameters"];
    assert_eq!(bounded[0]["default_repr"], "inf");
    assert_eq!(bounded[1]["default_repr"], "nan");
    assert_eq!(
        handler(handlers, "split")["schema"],
        json!(false),
        "no payload binds"
    );
    let spread = &handler(handlers, "spread")["schema"]["anyOf"];
    assert_eq!(
        spread[2],
        json!({"type": "integer"}),
        "one value alone: {spread}"
    );
    assert_eq!(handler(handlers, "proxied")["parameters"][0]["name"], "x");

    let server = Served::start(&[
        "--module",
        &python_module("described_odd"),
        "--pool-size",
        "1",
    ])
    .await;
    let (status, body) = server
        .call(json!({"command": "spread", "payload": [1, 2]}))
        .await;
    assert_eq!((status, &body["payload"]), (200, &json!(3)), "{body}");
    let (status, text) = server.get("/openapi.json").await;
    assert_eq!(status, 200, "{text}");
}
