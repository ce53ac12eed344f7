//! `just new-adapter NAME`: the template becomes an adapter that passes its
//! own tests, builds, and answers through the host with no edit.

use crate::support::{Ran, run};
use snakepen::{CallError, Error, Host, Request};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// An adapter made in the real plugins workspace, taken out again (with the
/// workspace's manifest and lock file as they were) however the test ends.
struct Scaffolded {
    name: String,
    manifest: Vec<u8>,
    lock: Vec<u8>,
}

impl Scaffolded {
    fn new(name: &str) -> Scaffolded {
        let plugins = root().join("plugins");
        Scaffolded {
            name: name.to_string(),
            manifest: std::fs::read(plugins.join("Cargo.toml")).unwrap(),
            lock: std::fs::read(plugins.join("Cargo.lock")).unwrap(),
        }
    }

    fn component(&self) -> PathBuf {
        root().join(format!("target/plugins/{}.wasm", self.name))
    }
}

impl Drop for Scaffolded {
    fn drop(&mut self) {
        let plugins = root().join("plugins");
        let _ = std::fs::remove_dir_all(plugins.join(&self.name));
        let _ = std::fs::remove_file(self.component());
        let _ = std::fs::write(plugins.join("Cargo.toml"), &self.manifest);
        let _ = std::fs::write(plugins.join("Cargo.lock"), &self.lock);
    }
}

fn new_adapter(name: &str) -> Ran {
    // A build of the new adapter: bounded against a hang only.
    crate::support::run_within(
        Command::new("just")
            .current_dir(root())
            .args(["new-adapter", name])
            .env("SNAKEPEN_BIN", env!("CARGO_BIN_EXE_snakepen")),
        900,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_adapter_from_the_template_is_tested_built_and_called_through_the_host() {
    let name = format!("template-check-{}", std::process::id());
    let scaffolded = Scaffolded::new(&name);
    let out = new_adapter(&name);
    let (stdout, stderr) = (&out.stdout, &out.stderr);
    assert!(out.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("2 passed"), "its own tests ran: {stdout}");
    assert!(stdout.contains("\"hello, snakepen!\""), "{stdout}");

    // Through the library, with a configuration.
    let host = Host::builder()
        .adapter(scaffolded.component())
        .config(serde_json::json!({"greeting": "bonjour"}))
        .build()
        .await
        .unwrap();
    let answer = host
        .call(Request::json("hello", &serde_json::json!("Ada")))
        .await
        .unwrap();
    assert_eq!(answer.json().unwrap(), "bonjour, Ada!");
    assert_eq!(host.counter("hello"), 1);
    let err = host
        .call(Request::new("word_stats", Vec::new()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::Unavailable(_)),
        "no pool here: {err}"
    );
    let err = Host::builder()
        .adapter(scaffolded.component())
        .config(serde_json::json!({"greeting": ""}))
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::AdapterConfig { .. }) && err.to_string().contains("greeting"),
        "{err}"
    );

    // inspect shows its contract, sizes and the schema the template declares.
    let out = run(Command::new(env!("CARGO_BIN_EXE_snakepen"))
        .args(["inspect", "--json"])
        .arg(scaffolded.component()));
    let shown: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        shown["contract"],
        format!("snakepen:adapter@{}", snakepen::CONTRACT_VERSION)
    );
    assert_eq!(
        shown["config_schema"]["properties"]["greeting"]["type"],
        "string"
    );
    assert!(
        shown["size_bytes"].as_u64().unwrap() > 0 && shown["compiled_bytes"].as_u64().unwrap() > 0
    );

    // The same name again, and a name that is not one, are refused.
    let again = new_adapter(&name);
    assert_eq!(again.code, Some(2));
    assert!(again.stderr.contains("already exists"));
    let bad = new_adapter("Not_A_Name");
    assert_eq!(bad.code, Some(2));
    assert!(bad.stderr.contains("lowercase words joined by hyphens"));
}
