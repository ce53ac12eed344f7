//! Loading refuses everything that is not an adapter of a supported
//! contract, with a sentence a person can act on; and compiles only once.

use crate::support::{fixture, plugin, plugins_dir};
use snakepen::{Adapter, CallError, Error, Host, Request, Runtime};

async fn load(adapter: impl Into<Adapter>) -> Result<Host, Error> {
    Host::builder().adapter(adapter).build().await
}

#[tokio::test]
async fn a_file_that_is_not_wasm_is_refused_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.wasm");
    std::fs::write(&path, "these are notes, not a component").unwrap();
    let err = load(path.as_path()).await.unwrap_err();
    assert!(matches!(err, Error::NotWasm { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("notes.wasm") && message.contains("not a WebAssembly file"),
        "{message}"
    );
}

#[tokio::test]
async fn a_core_module_is_refused_with_how_to_make_it_a_component() {
    let err = load(fixture("core-module")).await.unwrap_err();
    assert!(matches!(err, Error::CoreModule { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("core WebAssembly module, not a component"),
        "{message}"
    );
    assert!(message.contains("wasm32-wasip2"), "{message}");
}

#[tokio::test]
async fn a_component_of_another_world_is_refused_and_its_exports_are_named() {
    let err = load(fixture("other-world")).await.unwrap_err();
    let Error::WrongWorld { ref exports, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!(exports, &["example:greeter/greet@1.0.0".to_string()]);
    let message = err.to_string();
    assert!(
        message.contains("another world") && message.contains("snakepen:adapter/plugin@0.1.4"),
        "{message}"
    );
}

#[tokio::test]
async fn an_incompatible_contract_version_is_refused_naming_both_versions() {
    let err = load(fixture("contract-next")).await.unwrap_err();
    let Error::IncompatibleContract {
        ref found,
        ref supported,
        ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!(found.to_string(), "0.2.0");
    assert_eq!(supported, &snakepen::CONTRACT_VERSION);
    let message = err.to_string();
    assert!(
        message.contains("snakepen:adapter@0.2.0")
            && message.contains(&format!("snakepen:adapter@{}", snakepen::CONTRACT_VERSION))
            && message.contains("0.1.0 to 0.1.4"),
        "{message}"
    );
}

#[tokio::test]
async fn an_unknown_short_name_lists_where_it_looked_and_how_to_build_the_plugins() {
    let err = Host::builder()
        .adapter("no-such-adapter")
        .plugin_dir(plugins_dir())
        .build()
        .await
        .unwrap_err();
    let Error::AdapterNotFound { ref searched, .. } = err else {
        panic!("{err:?}")
    };
    assert!(searched.contains(&plugins_dir()));
    // How to build the plugins is the CLI's advice (fast/errors.rs).
}

#[tokio::test]
async fn a_missing_file_is_a_read_error_that_names_the_path() {
    let err = load(plugins_dir().join("nowhere.wasm")).await.unwrap_err();
    assert!(matches!(err, Error::AdapterRead { .. }), "{err:?}");
    assert!(err.to_string().contains("nowhere.wasm"), "{err}");
}

#[tokio::test]
async fn a_host_without_an_adapter_is_refused() {
    assert!(matches!(
        Host::builder().build().await,
        Err(Error::NoAdapter)
    ));
}

#[tokio::test]
async fn inspect_names_the_contract_version_world_and_imports() {
    let runtime = Runtime::new().unwrap();
    let inspection = snakepen::adapter::inspect(&runtime, &plugin("mock")).unwrap();
    assert!(inspection.refusal.is_none(), "{:?}", inspection.refusal);
    let info = inspection.info;
    assert_eq!(info.contract, Some(snakepen::CONTRACT_VERSION));
    assert_eq!(info.world.as_deref(), Some("snakepen:adapter/plugin@0.1.4"));
    assert!(
        info.imports
            .iter()
            .any(|i| i == "snakepen:adapter/counters@0.1.4"),
        "{:?}",
        info.imports
    );

    let other = snakepen::adapter::inspect(&runtime, &fixture("other-world")).unwrap();
    assert_eq!(other.info.contract, None);
    assert!(matches!(other.refusal, Some(Error::WrongWorld { .. })));
}

#[tokio::test]
async fn a_second_start_loads_the_compiled_adapter_from_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let artifacts = || -> Vec<(std::path::PathBuf, std::time::SystemTime)> {
        let mut found: Vec<_> = std::fs::read_dir(cache.path())
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .map(|e| (e.path(), e.metadata().unwrap().modified().unwrap()))
            .collect();
        found.sort();
        found
    };
    let start = || async {
        let runtime = Runtime::builder().cache_dir(cache.path()).build().unwrap();
        let host = Host::builder()
            .runtime(&runtime)
            .adapter(plugin("mock"))
            .build()
            .await
            .unwrap();
        host.call(Request::new("ping", "{}")).await.unwrap();
    };
    start().await;
    let first = artifacts();
    assert_eq!(
        first.len(),
        1,
        "one compiled artifact after the first start"
    );
    start().await;
    assert_eq!(
        artifacts(),
        first,
        "the second start neither recompiled nor rewrote the artifact"
    );
}

#[tokio::test]
async fn a_corrupt_cached_artifact_is_recompiled_not_trusted() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = Runtime::builder().cache_dir(cache.path()).build().unwrap();
    Host::builder()
        .runtime(&runtime)
        .adapter(plugin("mock"))
        .build()
        .await
        .unwrap();
    let artifact = std::fs::read_dir(cache.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&artifact, b"garbage where machine code was").unwrap();

    let runtime = Runtime::builder().cache_dir(cache.path()).build().unwrap();
    let host = Host::builder()
        .runtime(&runtime)
        .adapter(plugin("mock"))
        .build()
        .await
        .unwrap();
    assert!(host.call(Request::new("ping", "{}")).await.is_ok());
    assert_ne!(
        std::fs::read(&artifact).unwrap(),
        b"garbage where machine code was"
    );
}

#[tokio::test]
async fn a_host_without_a_worker_pool_answers_pool_calls_with_a_typed_error() {
    let host = load(plugin("python-bridge")).await.unwrap();
    let err = host.call(Request::new("predict", "{}")).await.unwrap_err();
    let CallError::Unavailable(ref message) = err else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("no worker pool") && message.contains("predict"),
        "{message}"
    );
}

#[tokio::test]
async fn inspect_gives_sizes_and_the_configuration_schema_an_adapter_declares() {
    let runtime = Runtime::new().unwrap();
    let bridge = snakepen::adapter::inspect(&runtime, &plugin("python-bridge")).unwrap();
    assert_eq!(
        bridge.size_bytes,
        std::fs::metadata(plugin("python-bridge")).unwrap().len()
    );
    assert!(bridge.compiled_bytes > 0);
    let schema: serde_json::Value = serde_json::from_str(
        bridge
            .config_schema
            .as_deref()
            .expect("python-bridge declares one"),
    )
    .unwrap();
    assert_eq!(schema["title"], "python-bridge");
    assert!(schema["properties"]["commands"].is_object());
    let mock = snakepen::adapter::inspect(&runtime, &plugin("mock")).unwrap();
    assert_eq!(mock.config_schema, None);
}
