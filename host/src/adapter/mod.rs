//! Adapters: where their components come from, how they are checked, and
//! how they are compiled once and cached.

mod cache;
mod contract;
mod source;

pub use contract::{CONTRACT_VERSION, ComponentInfo, supported_range};
pub use source::{Adapter, default_plugin_dirs};

pub(crate) use cache::compile;
pub(crate) use contract::check_component;

use crate::{Error, Runtime};
use std::path::Path;

/// The custom section an adapter keeps its configuration's JSON Schema in
/// (`snakepen_guest::config_schema!`).
pub const CONFIG_SCHEMA_SECTION: &str = "snakepen:config-schema";

/// What `snakepen inspect` shows: a component's description, its sizes, its
/// configuration schema, and why this host would refuse it as an adapter, if
/// it would.
#[derive(Debug)]
#[non_exhaustive]
pub struct Inspection {
    /// What the component is.
    pub info: ComponentInfo,
    /// Why a host would refuse it as an adapter, if it would.
    pub refusal: Option<Error>,
    /// The component file's size.
    pub size_bytes: u64,
    /// The size of its code compiled for this machine (what the cache holds).
    pub compiled_bytes: u64,
    /// The JSON Schema of its configuration, when it declares one.
    pub config_schema: Option<String>,
}

/// Describes the component at `path` (contract version, world, exports,
/// imports, sizes, configuration schema) and checks it with the same
/// refusals as building a host, without instantiating it. Fails only for
/// files that are not components.
pub fn inspect(runtime: &Runtime, path: &Path) -> Result<Inspection, Error> {
    let component = compile(runtime, path)?;
    let engine = &runtime.inner().engine;
    let info = contract::describe(engine, &component);
    let refusal = check_component(path, engine, &component)
        .and_then(|_| {
            runtime
                .inner()
                .linker
                .instantiate_pre(&component)
                .map_err(|source| Error::UnsupportedImport {
                    path: path.to_path_buf(),
                    message: format!("{source:#}"),
                    source,
                })
        })
        .err();
    let bytes = std::fs::read(path).map_err(|source| Error::AdapterRead {
        path: path.to_path_buf(),
        source,
    })?;
    let compiled_bytes = component.serialize().map_or(0, |c| c.len() as u64);
    Ok(Inspection {
        info,
        refusal,
        size_bytes: bytes.len() as u64,
        compiled_bytes,
        config_schema: custom_section(&bytes, CONFIG_SCHEMA_SECTION)
            .map(|data| String::from_utf8_lossy(&data).into_owned()),
    })
}

impl Inspection {
    /// `130.3 KiB (449.6 KiB compiled for this machine)`.
    pub fn sizes(&self) -> String {
        let bytes = |n: u64| crate::limits::bytes(usize::try_from(n).unwrap_or(usize::MAX));
        format!(
            "{} ({} compiled for this machine)",
            bytes(self.size_bytes),
            bytes(self.compiled_bytes)
        )
    }
}

/// The contents of the first custom section called `name`, in the
/// component or any module nested in it.
fn custom_section(bytes: &[u8], name: &str) -> Option<Vec<u8>> {
    wasmparser::Parser::new(0)
        .parse_all(bytes)
        .map_while(Result::ok)
        .find_map(|payload| match payload {
            wasmparser::Payload::CustomSection(section) if section.name() == name => {
                Some(section.data().to_vec())
            }
            _ => None,
        })
}
