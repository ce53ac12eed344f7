//! The Python client (clients/python) against the real server: its own
//! pytest suite (tests/python_client), run in target/client-venv (made by
//! `just client-venv`), which starts `snakepen serve` itself.

use crate::support::{plugins_dir, run_within};
use std::path::PathBuf;
use std::process::Command;

/// target/client-venv's interpreter, with the client and pytest installed.
pub fn client_python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join("target/client-venv/bin/python");
    let ready = Command::new(&python)
        .args([
            "-c",
            "import snakepen_client, pytest, openapi_spec_validator",
        ])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ready,
        "{} lacks the client or its test tools: run `just client-venv` (or `just test`)",
        python.display()
    );
    python
}

#[test]
fn the_python_client_passes_its_suite_against_the_real_server() {
    let python = client_python();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = run_within(
        Command::new(python)
            .current_dir(&root)
            .args([
                "-m",
                "pytest",
                "tests/python_client",
                "-q",
                "-p",
                "no:cacheprovider",
            ])
            .env("SNAKEPEN_BIN", env!("CARGO_BIN_EXE_snakepen"))
            .env("SNAKEPEN_PLUGINS", plugins_dir())
            .env("SNAKEPEN_PYTHON", "python3"),
        300,
    );
    assert!(
        out.success(),
        "the client's suite failed:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(out.stdout.contains(" passed"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("skipped"),
        "nothing may be skipped: {}",
        out.stdout
    );
}
