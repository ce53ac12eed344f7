//! Library errors keep their causes (`source()` is the I/O or wasmtime
//! error itself) and state facts; the command line adds the advice about
//! its own flags.

use crate::support::{plugin, plugins_dir, snakepen};
use snakepen::{Error, Host};
use std::error::Error as _;

fn io_source(err: &Error) -> &std::io::Error {
    err.source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .unwrap_or_else(|| panic!("{err:?} keeps no io::Error as its source"))
}

#[tokio::test]
async fn a_granted_directory_that_cannot_be_opened_keeps_the_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Host::builder()
        .adapter(plugin("mock"))
        .grant_dir(dir.path().join("absent"), "/data", true)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::GrantedDir { .. }), "{err:?}");
    assert_eq!(io_source(&err).kind(), std::io::ErrorKind::NotFound);
}

#[tokio::test]
async fn a_cassette_whose_folder_cannot_be_opened_keeps_the_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Host::replaying(dir.path().join("absent/calls.jsonl"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Cassette { .. }), "{err:?}");
    assert_eq!(io_source(&err).kind(), std::io::ErrorKind::NotFound);
}

#[tokio::test]
async fn a_component_that_does_not_compile_keeps_the_wasmtime_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbled.wasm");
    // A component's preamble, then nothing a component can be made of.
    std::fs::write(&path, b"\0asm\x0d\0\x01\0garbage").unwrap();
    let err = Host::builder().adapter(path).build().await.unwrap_err();
    assert!(matches!(err, Error::Compile { .. }), "{err:?}");
    let source = err.source().expect("the wasmtime error is kept");
    assert!(
        err.to_string().contains(&source.to_string()),
        "the message states the cause too: {err}"
    );
}

#[tokio::test]
async fn the_library_names_no_command_line_flag_and_the_cli_does() {
    let err = Host::builder()
        .adapter("no-such-adapter")
        .plugin_dir(plugins_dir())
        .build()
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        !message.contains("--") && !message.contains("just "),
        "{message}"
    );

    let output = snakepen(&["call", "--adapter", "no-such-adapter", "ping"]);
    let stderr = &output.stderr;
    assert_eq!(output.code, Some(3), "{stderr}");
    assert!(
        stderr.contains("no adapter named `no-such-adapter`"),
        "{stderr}"
    );
    assert!(stderr.contains("just plugins"), "{stderr}");
    assert!(stderr.contains("--adapter"), "{stderr}");
}

#[test]
fn a_file_that_is_not_wasm_is_pointed_at_the_adapter_flag_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "hello").unwrap();
    let output = snakepen(&["call", "--adapter", path.to_str().unwrap(), "ping"]);
    let stderr = &output.stderr;
    assert_eq!(output.code, Some(3), "{stderr}");
    assert!(stderr.contains("not a WebAssembly file"), "{stderr}");
    assert!(stderr.contains("Point --adapter at"), "{stderr}");
}
