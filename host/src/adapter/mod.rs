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

/// What `snakepen inspect` shows: a component's description, and why this
/// host would refuse it as an adapter, if it would.
#[derive(Debug)]
pub struct Inspection {
    pub info: ComponentInfo,
    pub refusal: Option<Error>,
}

/// Describes the component at `path` (contract version, world, exports,
/// imports) and checks it with the same refusals as building a host,
/// without instantiating it. Fails only for files that are not components.
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
                .map_err(|e| Error::UnsupportedImport {
                    path: path.to_path_buf(),
                    message: format!("{e:#}"),
                })
        })
        .err();
    Ok(Inspection { info, refusal })
}
