//! What a pool runs (fixed when it starts) and how it behaves (settings read
//! at each use, so a running pool can be retuned and tests can use
//! millisecond TTLs).

use std::path::PathBuf;
use std::time::Duration;

/// What the pool's workers run. Fixed for the life of the pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The user's handlers: a file (`handlers.py`, `path/to/handlers.py`) or
    /// a dotted module name (`myapp.handlers`) found on `python_path`.
    pub module: String,
    /// How many workers run at once (default 1).
    pub size: usize,
    /// The Python interpreter (default `python3`, looked up on `PATH`).
    pub python: PathBuf,
    /// Directories put first on the workers' `sys.path` (default: the
    /// current directory, which `python -I` would otherwise leave out).
    pub python_path: Vec<PathBuf>,
    /// Modules imported before the user's module (`numpy`, `torch`, …): with
    /// the fork server, once, and shared by every worker it forks; without
    /// it, by each worker. One that does not import fails the pool's start
    /// like the user's module would, with its traceback.
    pub preload: Vec<String>,
    /// Environment variables the workers get, besides `PATH` and `LANG`.
    /// Nothing else of the host's environment reaches them.
    pub env: Vec<(String, String)>,
    /// The workers' working directory (default: the host's).
    pub cwd: Option<PathBuf>,
    /// How the pool behaves; can be changed while it runs.
    pub settings: PoolSettings,
}

impl PoolConfig {
    /// A pool of one worker serving the functions of `module`.
    pub fn new(module: impl Into<String>) -> PoolConfig {
        PoolConfig {
            module: module.into(),
            size: 1,
            python: PathBuf::from("python3"),
            python_path: std::env::current_dir().into_iter().collect(),
            preload: Vec::new(),
            env: Vec::new(),
            cwd: None,
            settings: PoolSettings::default(),
        }
    }

    /// Sets how many workers run at once.
    pub fn size(mut self, size: usize) -> PoolConfig {
        self.size = size;
        self
    }

    /// Sets the Python interpreter.
    pub fn python(mut self, python: impl Into<PathBuf>) -> PoolConfig {
        self.python = python.into();
        self
    }

    /// Adds a module to import before the user's module.
    pub fn preload(mut self, module: impl Into<String>) -> PoolConfig {
        self.preload.push(module.into());
        self
    }

    /// Adds an environment variable for the workers.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> PoolConfig {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Replaces the pool's settings.
    pub fn settings(mut self, settings: PoolSettings) -> PoolConfig {
        self.settings = settings;
        self
    }
}

/// How calls with a session id find their worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Affinity {
    /// Prefer the session's worker; when it is busy or gone, take any
    /// worker and bind the session to it.
    #[default]
    Hint,
    /// Wait for the session's worker; when it is gone, fail with
    /// `session-worker-gone` so the caller can rebuild the session's state.
    Strict,
}

/// The pool's timeouts and limits. Each is read when it is used, so
/// [`crate::Pool::update_settings`] takes effect at once.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSettings {
    /// How long a worker may take from spawn to its readiness handshake.
    pub start_timeout: Duration,
    /// How long a session stays bound to its worker after its last call.
    pub session_ttl: Duration,
    /// Hint or strict session affinity.
    pub affinity: Affinity,
    /// An idle worker is pinged this often; `None` turns health checks off.
    pub health_interval: Option<Duration>,
    /// A ping not answered within this is a dead worker.
    pub health_timeout: Duration,
    /// Recycle a worker after it served this many requests.
    pub max_requests: Option<u64>,
    /// Recycle a worker once it is this old (checked between calls).
    pub max_age: Option<Duration>,
    /// Recycle a worker whose resident memory grew past this (checked between calls).
    pub max_rss_bytes: Option<u64>,
    /// The first wait before restarting a worker that failed to start or
    /// died young; it doubles on each failure in a row up to `restart_backoff_max`.
    pub restart_backoff: Duration,
    /// The longest wait between restarts.
    pub restart_backoff_max: Duration,
    /// On shutdown, how long calls in flight may take to finish.
    pub shutdown_grace: Duration,
    /// How long a worker has to exit after SIGTERM before it gets SIGKILL.
    pub kill_grace: Duration,
    /// The largest frame a worker may send (its reply payload plus a header).
    pub max_frame_bytes: usize,
    /// Fork new workers from a fork server (one process that imported the
    /// module once) instead of starting an interpreter for each; on by
    /// default. Read when the pool starts. The first workers wait for the
    /// server's import (up to `start_timeout`) and are forked too; whenever
    /// the server is down (it could not import, or it died and is being
    /// restarted), new workers start the usual way. Turn it off for a
    /// module that cannot survive `fork()` (one that starts threads or opens
    /// connections at import).
    pub fork_server: bool,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            start_timeout: Duration::from_secs(60),
            session_ttl: Duration::from_secs(300),
            affinity: Affinity::Hint,
            health_interval: Some(Duration::from_secs(10)),
            health_timeout: Duration::from_secs(5),
            max_requests: None,
            max_age: None,
            max_rss_bytes: None,
            restart_backoff: Duration::from_millis(100),
            restart_backoff_max: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            kill_grace: Duration::from_secs(2),
            max_frame_bytes: 64 << 20,
            fork_server: true,
        }
    }
}
