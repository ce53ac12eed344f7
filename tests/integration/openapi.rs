//! `GET /openapi.json`: a valid OpenAPI 3.1 document (checked with
//! openapi-spec-validator), in which each handler's request schema takes
//! the payloads its signature takes and refuses the others (checked with
//! jsonschema).

use crate::python_client::client_python;
use crate::support::python_module;
use crate::support::run;
use crate::support::served::Served;
use std::process::Command;

#[tokio::test]
async fn the_document_is_valid_openapi_with_a_schema_per_handler() {
    let python = client_python();
    let module = python_module("described");
    let server = Served::start(&["--module", &module, "--pool-size", "1"]).await;
    let (status, text) = server.get("/openapi.json").await;
    assert_eq!(status, 200, "{text}");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &text).unwrap();
    let check = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/python_client/check_openapi.py");
    let out = run(Command::new(python).arg(check).arg(&file));
    assert!(out.success(), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.starts_with("ok 3.1.0"), "{}", out.stdout);
}
