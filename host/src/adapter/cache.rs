//! Compiling a component once: the compiled artifact is kept on disk, keyed
//! by the component's SHA-256 and the engine's compatibility hash, so a
//! second start loads it in well under a millisecond instead of recompiling.

use super::contract::check_bytes;
use crate::Error;
use crate::runtime::Runtime;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;

/// Reads, checks and compiles the component at `path`, through the cache.
pub(crate) fn compile(runtime: &Runtime, path: &Path) -> Result<Component, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::AdapterRead {
        path: path.to_path_buf(),
        source,
    })?;
    check_bytes(path, &bytes)?;
    let inner = runtime.inner();
    let engine = &inner.engine;
    let Some(cached) = inner
        .cache_dir
        .as_deref()
        .map(|dir| artifact_path(dir, engine, &bytes))
    else {
        return compile_fresh(engine, path, &bytes);
    };
    if cached.is_file() {
        // SAFETY: the file was written by `store` below from wasmtime's own
        // serialization, under a name that includes this engine's
        // compatibility hash; wasmtime still checks its header on load.
        match unsafe { Component::deserialize_file(engine, &cached) } {
            Ok(component) => return Ok(component),
            Err(e) => {
                tracing::warn!(artifact = %cached.display(), error = %e, "cached adapter unusable; recompiling")
            }
        }
    }
    let component = compile_fresh(engine, path, &bytes)?;
    if let Err(e) = store(&component, &cached) {
        tracing::warn!(artifact = %cached.display(), error = %e, "could not cache the compiled adapter; it will be compiled again next start");
    }
    Ok(component)
}

fn compile_fresh(engine: &wasmtime::Engine, path: &Path, bytes: &[u8]) -> Result<Component, Error> {
    let started = std::time::Instant::now();
    let component = Component::new(engine, bytes).map_err(|source| Error::Compile {
        path: path.to_path_buf(),
        message: format!("{source:#}"),
        source,
    })?;
    tracing::debug!(adapter = %path.display(), elapsed = ?started.elapsed(), "compiled adapter");
    Ok(component)
}

fn artifact_path(dir: &Path, engine: &wasmtime::Engine, bytes: &[u8]) -> PathBuf {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{hex}-{:016x}.cwasm", engine_hash.finish()))
}

/// Writes to a temporary file and renames it, so a reader never sees half an artifact.
fn store(component: &Component, target: &Path) -> std::io::Result<()> {
    let bytes = component.serialize().map_err(std::io::Error::other)?;
    let dir = target
        .parent()
        .expect("artifact paths are inside the cache directory");
    std::fs::create_dir_all(dir)?;
    // Unique per process and thread: two hosts may compile the same adapter at once.
    let tmp = dir.join(format!(
        ".{}.{}.{:?}.tmp",
        target.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, target)
}
