//! What every test tier needs: where the plugins are, and a host in one line.
#![allow(dead_code)]

use snakepen::{Host, Runtime};
use std::path::PathBuf;

/// `target/plugins`, where `just plugins` puts every component.
pub fn plugins_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugins")
}

/// A bundled adapter's component file, such as `mock`.
pub fn plugin(name: &str) -> PathBuf {
    let path = plugins_dir().join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `just plugins` (or `just test`)",
        path.display()
    );
    path
}

/// A test fixture component from plugins/fixtures.
pub fn fixture(name: &str) -> PathBuf {
    plugin(&format!("fixtures/{name}"))
}

/// A host running the mock adapter with `config`.
pub async fn mock(config: serde_json::Value) -> Host {
    Host::builder()
        .adapter(plugin("mock"))
        .config(config)
        .build()
        .await
        .expect("the mock accepts this configuration")
}

/// A host running the mock with `config` on a shared runtime.
pub async fn mock_on(runtime: &Runtime, config: serde_json::Value) -> Host {
    Host::builder()
        .runtime(runtime)
        .adapter(plugin("mock"))
        .config(config)
        .build()
        .await
        .expect("the mock accepts this configuration")
}
