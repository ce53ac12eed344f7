//! Checking that a file is an adapter of a contract version this host supports.

use crate::Error;
use std::path::Path;
use wasmtime::Engine;
use wasmtime::component::Component;

/// The contract version this host implements (`wit/adapter.wit`). Adapters
/// built against this version or an earlier compatible one (0.1.0 to 0.1.4)
/// are accepted; the earlier versions are kept in `wit/since_v*/`.
pub const CONTRACT_VERSION: semver::Version = semver::Version::new(0, 1, 4);

const ADAPTER_INTERFACE: &str = "snakepen:adapter/adapter";
const WASM_MAGIC: &[u8; 4] = b"\0asm";
/// A core module's version field; components use another layer/version.
const CORE_MODULE_VERSION: [u8; 4] = [1, 0, 0, 0];

/// What a component is, as far as snakepen is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ComponentInfo {
    /// The contract version of the `snakepen:adapter/adapter` export, if any.
    pub contract: Option<semver::Version>,
    /// The world it implements, when it is an adapter.
    pub world: Option<String>,
    /// Every export's name.
    pub exports: Vec<String>,
    /// Every import's name.
    pub imports: Vec<String>,
}

impl ComponentInfo {
    /// Exports that are not the contract's: a toolchain may add its own
    /// (componentize-py exports an `exports` instance). The host never
    /// calls them.
    pub fn ignored_exports(&self) -> Vec<&str> {
        self.exports
            .iter()
            .map(String::as_str)
            .filter(|name| !name.starts_with(ADAPTER_INTERFACE))
            .collect()
    }
}

/// Refuses files that are not wasm, or core modules, before compiling anything.
pub(crate) fn check_bytes(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    if bytes.len() < 8 || &bytes[..4] != WASM_MAGIC {
        return Err(Error::NotWasm {
            path: path.to_path_buf(),
        });
    }
    if bytes[4..8] == CORE_MODULE_VERSION {
        return Err(Error::CoreModule {
            path: path.to_path_buf(),
            supported: CONTRACT_VERSION,
        });
    }
    Ok(())
}

/// Describes a compiled component and refuses one that is not an adapter of
/// a compatible contract version.
pub(crate) fn check_component(
    path: &Path,
    engine: &Engine,
    component: &Component,
) -> Result<ComponentInfo, Error> {
    let info = describe(engine, component);
    match &info.contract {
        None => Err(Error::WrongWorld {
            path: path.to_path_buf(),
            exports: info.exports.clone(),
            supported: CONTRACT_VERSION,
        }),
        Some(found) if !compatible(found) => Err(Error::IncompatibleContract {
            path: path.to_path_buf(),
            found: found.clone(),
            supported: CONTRACT_VERSION,
        }),
        Some(_) => Ok(info),
    }
}

pub(crate) fn describe(engine: &Engine, component: &Component) -> ComponentInfo {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let imports: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let contract = exports.iter().find_map(|name| {
        let version = name.strip_prefix(ADAPTER_INTERFACE)?;
        // An unversioned export counts as 0.0.0: incompatible, and said so.
        match version.strip_prefix('@') {
            Some(v) => semver::Version::parse(v).ok(),
            None if version.is_empty() => Some(semver::Version::new(0, 0, 0)),
            None => None,
        }
    });
    let world = contract
        .as_ref()
        .map(|v| format!("snakepen:adapter/plugin@{v}"));
    ComponentInfo {
        contract,
        world,
        exports,
        imports,
    }
}

/// The contract versions this host runs, such as `0.1.0 to 0.1.4`.
pub fn supported_range() -> String {
    crate::error::compatible_range(&CONTRACT_VERSION)
}

/// Compatible as cargo means it (same major, and for 0.x the same minor),
/// and not newer than this host: an adapter of a later compatible version
/// may import what this host does not have yet.
fn compatible(found: &semver::Version) -> bool {
    let wanted = &CONTRACT_VERSION;
    let same_line = if wanted.major == 0 {
        found.major == 0 && found.minor == wanted.minor
    } else {
        found.major == wanted.major
    };
    same_line && found <= wanted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earlier_patch_releases_are_compatible_and_later_or_minor_ones_are_not() {
        assert!(compatible(&semver::Version::new(0, 1, 0)));
        assert!(compatible(&CONTRACT_VERSION));
        assert!(
            !compatible(&semver::Version::new(0, 1, 99)),
            "newer than this host"
        );
        assert!(!compatible(&semver::Version::new(0, 2, 0)));
        assert!(!compatible(&semver::Version::new(1, 1, 0)));
    }

    #[test]
    fn text_and_core_modules_are_refused_before_compiling() {
        let path = Path::new("x.wasm");
        assert!(matches!(
            check_bytes(path, b"hello world"),
            Err(Error::NotWasm { .. })
        ));
        assert!(matches!(
            check_bytes(path, b"\0asm\x01\0\0\0"),
            Err(Error::CoreModule { .. })
        ));
        assert!(check_bytes(path, b"\0asm\x0d\0\x01\0").is_ok());
    }
}
