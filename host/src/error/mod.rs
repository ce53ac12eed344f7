//! Every way snakepen can fail, as types with data. Each message states
//! what is wrong and names the thing at fault; a variant that wraps an I/O
//! or wasmtime error keeps it as its [`std::error::Error::source`]. Advice
//! about the command line's flags is the command line's to give.
//!
//! This file holds [`Error`], why a host could not be built or an adapter
//! loaded; `call` holds [`CallError`], why one call failed.

mod call;

pub(crate) use call::quoted;
pub use call::{CallError, CassetteMiss};

use std::path::PathBuf;

/// Why a host could not be built, or an adapter not loaded or inspected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No adapter of that short name in any plugin directory.
    #[error(
        "no adapter named `{name}`: looked for {name}.wasm in {}. Give a plugin directory that has it, or a path to a .wasm file",
        display_dirs(searched)
    )]
    AdapterNotFound {
        name: String,
        searched: Vec<PathBuf>,
    },

    /// The adapter file could not be read.
    #[error("cannot read adapter {}: {source}. Check the path, or give a short name such as `mock`", path.display())]
    AdapterRead {
        path: PathBuf,
        source: std::io::Error,
    },

    /// The file does not start with the WebAssembly magic bytes.
    #[error(
        "{} is not a WebAssembly file (it does not start with \\0asm): an adapter is a .wasm component built for wasm32-wasip2",
        path.display()
    )]
    NotWasm { path: PathBuf },

    /// A core module, where a component is needed.
    #[error(
        "{} is a core WebAssembly module, not a component. Build it for the wasm32-wasip2 target (or wrap it with `wasm-tools component new`) so it exports snakepen:adapter/adapter@{supported}",
        path.display()
    )]
    CoreModule {
        path: PathBuf,
        supported: semver::Version,
    },

    /// A component that does not export the adapter interface at all.
    #[error(
        "{} is a component of another world: it does not export snakepen:adapter/adapter (it exports: {}). An adapter must implement the world snakepen:adapter/plugin@{supported} from wit/",
        path.display(),
        display_list(exports)
    )]
    WrongWorld {
        path: PathBuf,
        exports: Vec<String>,
        supported: semver::Version,
    },

    /// A component built against a contract version this host does not support.
    #[error(
        "{} implements snakepen:adapter@{found}, but this host supports snakepen:adapter@{supported} and the earlier versions compatible with it ({}). Rebuild the adapter against wit/ of this snakepen, or use a snakepen that supports {found}",
        path.display(),
        compatible_range(supported)
    )]
    IncompatibleContract {
        path: PathBuf,
        found: semver::Version,
        supported: semver::Version,
    },

    /// The component needs an import the host does not provide.
    #[error(
        "{} imports something this host does not provide: {message}. An adapter may import only the snakepen:adapter interfaces and WASI 0.2",
        path.display()
    )]
    UnsupportedImport {
        path: PathBuf,
        message: String,
        #[source]
        source: wasmtime::Error,
    },

    /// wasmtime could not compile the component.
    #[error("cannot compile {}: {message}", path.display())]
    Compile {
        path: PathBuf,
        message: String,
        #[source]
        source: wasmtime::Error,
    },

    /// The adapter configuration file could not be read or parsed.
    #[error("adapter configuration {}: {message}", path.display())]
    ConfigFile {
        path: PathBuf,
        message: String,
        /// The read error, when the file could not be read.
        #[source]
        source: Option<std::io::Error>,
    },

    /// The adapter refused its configuration.
    #[error("adapter `{adapter}` refused its configuration{}: {message}", field.as_ref().map(|f| format!(" at `{f}`")).unwrap_or_default())]
    AdapterConfig {
        adapter: String,
        field: Option<String>,
        message: String,
    },

    /// The adapter could not be started at all.
    #[error("adapter `{adapter}` could not be started: {message}")]
    Instantiate {
        adapter: String,
        message: String,
        #[source]
        source: wasmtime::Error,
    },

    /// The WebAssembly engine could not be created with this configuration.
    #[error("cannot create the WebAssembly engine: {message}")]
    Engine {
        message: String,
        #[source]
        source: wasmtime::Error,
    },

    /// A limit set to a value the runtime cannot honour.
    #[error(transparent)]
    Limit(#[from] crate::limits::LimitError),

    /// A host asks for more than the shared runtime it was given allows.
    #[error(
        "the host's `{key}` = {value} is over its runtime's {allowed}: build the runtime with RuntimeBuilder::{key} set at least as high, or give the host no runtime so that it makes one of its own"
    )]
    OverRuntime {
        key: &'static str,
        value: String,
        allowed: String,
    },

    /// The worker pool's configuration cannot work.
    #[error("pool configuration: `{field}` {message}")]
    PoolConfig { field: String, message: String },

    /// A Python worker could not start; the message says why (a traceback
    /// for a module that does not import).
    #[error("{message}")]
    WorkerStart { module: String, message: String },

    /// The pool was shut down while something waited for it.
    #[error("the worker pool was shut down; build a new host to run calls again")]
    PoolClosed,

    /// A cassette file that cannot be read or is not a valid cassette.
    #[error("cassette {}: {message}", path.display())]
    Cassette {
        path: PathBuf,
        /// The line at fault (1-based), when one is; the message names it too.
        line: Option<usize>,
        message: String,
        /// The I/O error, when the file or its directory could not be used.
        #[source]
        source: Option<std::io::Error>,
    },

    /// Replaying was asked for, but the cassette does not exist.
    #[error(
        "cassette {} does not exist, and record mode `{mode}` only replays{why}. Record it first: run once with SNAKEPEN_RECORD_MODE=once (and the real adapter), or check the path",
        path.display()
    )]
    CassetteNotFound {
        path: PathBuf,
        mode: String,
        /// Why the mode is what it is, such as " (CI is set and no mode was given)".
        why: String,
    },

    /// A record mode that does not exist.
    #[error("record mode `{value}` (from {origin}) is not one of once, new_episodes, none, all")]
    RecordMode { value: String, origin: String },

    /// Recording was asked for, but there is nothing real to record.
    #[error(
        "cassette {} is to be recorded (mode `{mode}`{why}), but this host has no Python module to record from: give it one (HostBuilder::pool), or replay only with mode `none`",
        path.display()
    )]
    NothingToRecord {
        path: PathBuf,
        mode: String,
        why: String,
    },

    /// A directory granted to an adapter cannot be opened.
    #[error(
        "the directory {} granted to the adapter as {guest_path} cannot be opened ({message}); create it or fix the path given to HostBuilder::grant_dir",
        path.display()
    )]
    GrantedDir {
        path: PathBuf,
        guest_path: String,
        message: String,
        #[source]
        source: std::io::Error,
    },

    /// The builder was not told which adapter to run.
    #[error(
        "no adapter given: call HostBuilder::adapter with a name (such as \"mock\") or a path to a .wasm component"
    )]
    NoAdapter,
}

/// The versions compatible with `version` up to it, as cargo means it:
/// `0.1.0 to 0.1.4` (for 0.x the same minor; from 1.0 the same major).
pub(crate) fn compatible_range(version: &semver::Version) -> String {
    let first = if version.major == 0 {
        semver::Version::new(0, version.minor, 0)
    } else {
        semver::Version::new(version.major, 0, 0)
    };
    if first == *version {
        format!("{version} only")
    } else {
        format!("{first} to {version}")
    }
}

fn display_dirs(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        return "no plugin directory (none was configured or found)".into();
    }
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn display_list(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".into()
    } else {
        items.join(", ")
    }
}
