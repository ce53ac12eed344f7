//! The contract's versions (docs/contract-versioning.md): every released
//! version is kept in `wit/since_v*/` and an adapter built against it runs on
//! this host; the guide covers every item of the current contract; and the
//! contract uses nothing that only some bindings generators can express.

use crate::support::{fixture, plugin};
use snakepen::{CONTRACT_VERSION, CallError, Host, Request};
use std::path::{Path, PathBuf};
use wit_parser::{FunctionKind, Resolve, TypeDefKind};

fn wit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit")
}

/// Every kept version: `wit/since_vX.Y.Z/adapter.wit`, with its version.
fn snapshots() -> Vec<(semver::Version, PathBuf)> {
    let mut found: Vec<_> = std::fs::read_dir(wit_dir())
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            let version = path.file_name()?.to_str()?.strip_prefix("since_v")?;
            Some((
                semver::Version::parse(version).unwrap(),
                path.join("adapter.wit"),
            ))
        })
        .collect();
    found.sort();
    found
}

fn parse(file: &Path) -> (Resolve, wit_parser::PackageId) {
    let mut resolve = Resolve::default();
    let package = resolve.push_file(file).unwrap();
    (resolve, package)
}

#[test]
fn every_kept_version_is_the_version_its_folder_names_and_older_than_the_current() {
    let kept = snapshots();
    assert!(!kept.is_empty(), "wit/since_v0.1.0 is kept");
    for (version, file) in kept {
        let (resolve, package) = parse(&file);
        let name = &resolve.packages[package].name;
        assert_eq!(
            name.to_string(),
            format!("snakepen:adapter@{version}"),
            "{}",
            file.display()
        );
        assert!(
            version < CONTRACT_VERSION,
            "{version} is older than the current contract"
        );
    }
    let (resolve, package) = parse(&wit_dir().join("adapter.wit"));
    assert_eq!(
        resolve.packages[package].name.version.as_ref(),
        Some(&CONTRACT_VERSION),
        "wit/adapter.wit and CONTRACT_VERSION agree"
    );
}

#[tokio::test]
async fn an_adapter_built_against_each_kept_version_runs_on_this_host() {
    for (version, _) in snapshots() {
        let name = format!(
            "contract-{}-{}-{}",
            version.major, version.minor, version.patch
        );
        let host = Host::builder()
            .adapter(fixture(&name))
            .build()
            .await
            .unwrap_or_else(|e| {
                panic!("the adapter built against {version} ({name}) must load: {e}")
            });
        assert_eq!(host.adapter_info().contract.as_ref(), Some(&version));
        let echo = host
            .call(Request::new("echo", b"{\"x\":1}".to_vec()))
            .await
            .unwrap();
        assert_eq!(echo.payload, b"{\"x\":1}");
        for command in ["count", "log", "sleep"] {
            host.call(Request::new(command, Vec::new()))
                .await
                .unwrap_or_else(|e| panic!("{name} `{command}`: {e}"));
        }
        assert_eq!(host.counter("count"), 1);
        // Its import of the pool is linked too: a host without one says so.
        let err = host
            .call(Request::new("pool", Vec::new()))
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::Unavailable(_)), "{err}");
        // An adapter that streams (0.1.3 on) still streams.
        if version >= semver::Version::new(0, 1, 3) {
            let mut stream = host.call_stream(Request::new("stream", b"ab".to_vec()));
            let mut items = Vec::new();
            while let Some(item) = stream.next().await {
                items.push(match item.unwrap() {
                    snakepen::StreamItem::Chunk(chunk) => chunk,
                    snakepen::StreamItem::End(end) => end.payload,
                });
            }
            assert_eq!(
                items,
                [b"a".to_vec(), b"b".to_vec(), b"\"done\"".to_vec()],
                "{name}"
            );
        }
    }
}

#[test]
fn the_shipped_adapters_are_built_against_the_current_contract_and_export_only_it() {
    let runtime = snakepen::Runtime::new().unwrap();
    for name in ["mock", "python-bridge", "recorder", "replayer"] {
        let inspection = snakepen::adapter::inspect(&runtime, &plugin(name)).unwrap();
        assert_eq!(
            inspection.info.contract.as_ref(),
            Some(&CONTRACT_VERSION),
            "{name}"
        );
        // The adapter interface and nothing else: `inspect` lists no stray export.
        assert_eq!(
            inspection.info.exports,
            [format!("snakepen:adapter/adapter@{CONTRACT_VERSION}")],
            "{name}"
        );
    }
}

/// Every interface, function, type, field and case of the current contract,
/// as the names the guide must mention.
fn contract_items() -> Vec<String> {
    let (resolve, package) = parse(&wit_dir().join("adapter.wit"));
    let mut items = Vec::new();
    for (_, world) in &resolve.worlds {
        items.push(world.name.clone());
    }
    for (&_, &id) in &resolve.packages[package].interfaces {
        let interface = &resolve.interfaces[id];
        items.push(interface.name.clone().unwrap());
        items.extend(interface.functions.keys().cloned());
        for (name, &ty) in &interface.types {
            items.push(name.clone());
            match &resolve.types[ty].kind {
                TypeDefKind::Record(r) => items.extend(r.fields.iter().map(|f| f.name.clone())),
                TypeDefKind::Variant(v) => items.extend(v.cases.iter().map(|c| c.name.clone())),
                TypeDefKind::Enum(e) => items.extend(e.cases.iter().map(|c| c.name.clone())),
                _ => {}
            }
        }
    }
    items
}

#[test]
fn the_guide_explains_every_item_of_the_contract() {
    let guide = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/authoring-adapters.md"),
    )
    .unwrap();
    let missing: Vec<String> = contract_items()
        .into_iter()
        .filter(|item| {
            !guide.contains(&format!("`{item}`")) && !guide.contains(&format!("`{item}("))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/authoring-adapters.md does not explain: {missing:?}"
    );
    assert!(guide.contains(&format!("snakepen:adapter@{CONTRACT_VERSION}")));
}

#[test]
fn the_contract_uses_only_what_every_bindings_generator_expresses() {
    let (resolve, _) = parse(&wit_dir().join("adapter.wit"));
    for (_, ty) in &resolve.types {
        let allowed = matches!(
            ty.kind,
            TypeDefKind::Record(_)
                | TypeDefKind::Variant(_)
                | TypeDefKind::Enum(_)
                | TypeDefKind::Option(_)
                | TypeDefKind::Result(_)
                | TypeDefKind::List(_)
                | TypeDefKind::Type(_)
        );
        assert!(
            allowed,
            "{:?} uses {:?}: not in the guide's list of WIT features",
            ty.name, ty.kind
        );
    }
    for (_, interface) in &resolve.interfaces {
        for function in interface.functions.values() {
            assert!(
                matches!(function.kind, FunctionKind::Freestanding),
                "{} is not a plain function",
                function.name
            );
        }
    }
}
