//! Naming an adapter: a short name found in the plugin directories, or a path.

use crate::Error;
use std::path::{Path, PathBuf};

/// Which adapter component a host runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adapter {
    /// A short name such as `mock`, found as `<dir>/mock.wasm` in the plugin directories.
    Named(String),
    /// A `.wasm` component at this path.
    Path(PathBuf),
}

impl Adapter {
    /// Reads `text` as a user would write it: a path when it contains a path
    /// separator or ends in `.wasm`, else a short name.
    pub fn parse(text: &str) -> Adapter {
        if text.contains(std::path::MAIN_SEPARATOR) || text.contains('/') || text.ends_with(".wasm")
        {
            Adapter::Path(PathBuf::from(text))
        } else {
            Adapter::Named(text.to_string())
        }
    }

    /// The name used in logs and errors: the short name, or the file stem.
    pub fn display_name(&self) -> String {
        match self {
            Adapter::Named(name) => name.clone(),
            Adapter::Path(path) => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string()),
        }
    }

    /// The file this adapter is read from, searching `dirs` for a short name.
    pub fn resolve(&self, dirs: &[PathBuf]) -> Result<PathBuf, Error> {
        match self {
            Adapter::Path(path) => Ok(path.clone()),
            Adapter::Named(name) => dirs
                .iter()
                .map(|dir| dir.join(format!("{name}.wasm")))
                .find(|candidate| candidate.is_file())
                .ok_or_else(|| Error::AdapterNotFound {
                    name: name.clone(),
                    searched: dirs.to_vec(),
                }),
        }
    }
}

impl From<&str> for Adapter {
    fn from(text: &str) -> Adapter {
        Adapter::parse(text)
    }
}

impl From<PathBuf> for Adapter {
    fn from(path: PathBuf) -> Adapter {
        Adapter::Path(path)
    }
}

impl From<&Path> for Adapter {
    fn from(path: &Path) -> Adapter {
        Adapter::Path(path.to_path_buf())
    }
}

/// Where short adapter names are looked up, in order:
/// `$SNAKEPEN_PLUGIN_DIR`, then `target/plugins` of the nearest enclosing
/// cargo target directory of the running executable, then `target/plugins`
/// under the current directory or any of its parents.
pub fn default_plugin_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("SNAKEPEN_PLUGIN_DIR") {
        dirs.push(PathBuf::from(dir));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(target) = exe
            .ancestors()
            .find(|a| a.file_name().is_some_and(|n| n == "target"))
    {
        dirs.push(target.join("plugins"));
    }
    if let Ok(cwd) = std::env::current_dir()
        && let Some(found) = cwd
            .ancestors()
            .map(|a| a.join("target").join("plugins"))
            .find(|p| p.is_dir())
    {
        dirs.push(found);
    }
    dirs.dedup();
    dirs
}
