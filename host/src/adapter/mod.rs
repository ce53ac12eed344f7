//! Adapters: where their components come from, how they are checked, and
//! how they are compiled once and cached.

mod cache;
mod contract;
mod source;

pub use contract::{CONTRACT_VERSION, ComponentInfo};
pub use source::{Adapter, default_plugin_dirs};

pub(crate) use cache::compile;
pub(crate) use contract::check_component;

use crate::{Error, Runtime};
use std::path::Path;

/// Describes the component at `path` (contract version, world, exports,
/// imports) without requiring it to be an adapter; still refuses files that
/// are not components.
pub fn inspect(runtime: &Runtime, path: &Path) -> Result<ComponentInfo, Error> {
    let component = compile(runtime, path)?;
    Ok(contract::describe(&runtime.inner().engine, &component))
}
