//! `snakepen serve --reload` (development): each pool's module folder is
//! watched (notify), and when a `.py` file in it changes, the pool serves
//! the module anew ([`crate::Pool::reload`]): new workers on the new code,
//! the old ones retired once their calls end (all at once: calls that come
//! meanwhile wait for the new workers, within their deadline). A
//! module that no longer imports leaves the old workers serving; its
//! traceback is logged and shown in `/v1/status` until a good save.

use super::app::{App, Failed};
use notify::Watcher;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Saves closer together than this are one change (editors write a file
/// in several steps: a temporary file, a rename, a touch).
const SETTLE: Duration = Duration::from_millis(150);

/// Watches every local pool's module folder until the server stops
/// (the task is aborted then). Fails when nothing can be watched.
pub(crate) async fn watch(app: Arc<App>) -> Result<(), String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reads (our own import of the module among them) change nothing.
        if let Ok(event) = event
            && !event.kind.is_access()
        {
            for path in event.paths {
                let _ = tx.send(path);
            }
        }
    })
    .map_err(|e| format!("cannot watch files: {e}"))?;
    let mut folders: Vec<Option<PathBuf>> = Vec::new();
    for (at, served) in app.pools.iter().enumerate() {
        let folder = match served.host.pool() {
            Some(pool) if pool.config().ray.is_none() => module_folder(pool.config()).await,
            _ => None,
        };
        if let Some(folder) = &folder {
            watcher
                .watch(folder, notify::RecursiveMode::NonRecursive)
                .map_err(|e| format!("cannot watch {}: {e}", folder.display()))?;
            tracing::info!(pool = %served.name, folder = %folder.display(), "reload: watching");
        }
        app.reloads.update(at, |s| s.watching = folder.clone());
        folders.push(folder);
    }
    while let Some(first) = rx.recv().await {
        let mut changed: HashSet<PathBuf> = HashSet::from([first]);
        // Wait for the save to settle, taking what else changed meanwhile.
        while let Ok(Some(path)) = tokio::time::timeout(SETTLE, rx.recv()).await {
            changed.insert(path);
        }
        let sources: Vec<&PathBuf> = changed.iter().filter(|p| is_source(p)).collect();
        for source in &sources {
            forget_bytecode(source);
        }
        for (at, folder) in folders.iter().enumerate() {
            let Some(folder) = folder else { continue };
            if sources.iter().any(|p| p.parent() == Some(folder.as_path())) {
                reload(&app, at).await;
            }
        }
    }
    drop(watcher);
    Ok(())
}

/// Reloads pool `at`, and records how it went.
async fn reload(app: &App, at: usize) {
    let served = &app.pools[at];
    let Some(pool) = served.host.pool() else {
        return;
    };
    match pool.reload().await {
        Ok(()) => {
            tracing::info!(pool = %served.name, "reload: the module changed; new workers start on it, the old ones finish their calls");
            app.reloads.update(at, |s| {
                s.reloads += 1;
                s.failed = None;
            });
        }
        Err(e) => {
            tracing::error!(pool = %served.name, "reload failed; the workers running go on serving the code they have:\n{e}");
            let at_unix_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            app.reloads.update(at, |s| {
                s.failed = Some(Failed {
                    at_unix_ms,
                    error: e.to_string(),
                })
            });
        }
    }
}

/// The folder of the module's file: the file given, or where a dotted
/// name was found (the module imported once to learn it).
async fn module_folder(config: &crate::PoolConfig) -> Option<PathBuf> {
    let file = if crate::pool::is_module_file(&config.module) {
        Some(PathBuf::from(&config.module))
    } else {
        match crate::pool::describe_module(config).await {
            Ok(description) => description.file.map(PathBuf::from),
            Err(e) => {
                tracing::warn!("reload: cannot find the module's file to watch: {e}");
                None
            }
        }
    };
    let file = std::fs::canonicalize(file?).ok()?;
    file.parent().map(Path::to_path_buf)
}

/// Removes the bytecode Python cached for `source`
/// (`__pycache__/NAME.*.pyc`). Python trusts a cached file whose source
/// has the same size and modification second, so an edit within the
/// second of the last import, of the same length, would otherwise import
/// the old code.
fn forget_bytecode(source: &Path) {
    let (Some(folder), Some(stem)) = (source.parent(), source.file_stem()) else {
        return;
    };
    let prefix = format!("{}.", stem.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(folder.join("__pycache__")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(".pyc") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A Python source file (not bytecode, not an editor's swap file).
fn is_source(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "py")
}
