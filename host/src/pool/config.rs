//! What a pool runs (fixed when it starts) and how it behaves (settings read
//! at each use, so a running pool can be retuned and tests can use
//! millisecond TTLs).

use std::path::PathBuf;
use std::time::Duration;

/// The most workers one pool may have. Each is a Python process (tens of
/// megabytes) and holds [`DESCRIPTORS_PER_WORKER`] of the host's file
/// descriptors; a larger number is a typo far more often than a plan.
pub const MAX_POOL_SIZE: usize = 1024;

/// The most calls one worker may hold at once ([`PoolConfig::max_concurrency`]).
pub const MAX_CONCURRENCY: usize = 10_000;

/// File descriptors the host holds per worker: its ends of the request and
/// reply pipes, the lifeline's write end, its stdout and stderr pipes, its
/// pidfd, and one to spare for a restart in progress.
pub const DESCRIPTORS_PER_WORKER: u64 = 7;

/// Descriptors kept free for everything else (the listener, clients, logs).
const DESCRIPTORS_RESERVED: u64 = 64;

/// Whether `module` names a file (`handlers.py`, `dir/handlers`) rather
/// than a dotted module name (`app.handlers`), as [`PoolConfig::module`]
/// reads it.
pub fn is_module_file(module: &str) -> bool {
    module.ends_with(".py") || module.contains('/')
}

/// What the pool's workers run. Fixed for the life of the pool. Build one
/// with [`PoolConfig::new`], then set its public fields (there are no
/// setters: one way to say each thing).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PoolConfig {
    /// The user's handlers: a file (`handlers.py`, `path/to/handlers.py`) or
    /// a dotted module name (`myapp.handlers`) found on `python_path`.
    pub module: String,
    /// How many workers run at once (default 1).
    pub size: usize,
    /// The Python interpreter (default `python3`, looked up on `PATH`).
    pub python: PathBuf,
    /// Directories put first on the workers' `sys.path` (default: none).
    /// A module given as a file has its own folder put first, as Python does
    /// for a script; nothing else is added: not the host's working
    /// directory, where a stray `statistics.py` would shadow the standard
    /// library. A dotted module name is found on these paths, then on the
    /// interpreter's own.
    pub python_path: Vec<PathBuf>,
    /// Modules imported before the user's module (`numpy`, `torch`, …): with
    /// the fork server, once, and shared by every worker it forks; without
    /// it, by each worker. One that does not import fails the pool's start
    /// like the user's module would, with its traceback.
    pub preload: Vec<String>,
    /// Names the workers serve as commands besides the module's own
    /// functions. By default a command is a function defined in the module
    /// (its `__module__` is the module), or, when the module has
    /// `__all__`, a name listed there; a function it imported (`from os
    /// import system`) is never a command unless named here. A name the
    /// module does not have fails the start.
    pub expose: Vec<String>,
    /// Environment variables the workers get, besides `PATH` and `LANG`.
    /// Nothing else of the host's environment reaches them.
    pub env: Vec<(String, String)>,
    /// The workers' working directory (default: the host's).
    pub cwd: Option<PathBuf>,
    /// How many calls one worker holds at once (default 1: one at a time,
    /// on the worker's main thread). Above 1, a worker runs `async def`
    /// handlers as tasks of its event loop and plain functions on a pool of
    /// this many threads; checkout hands a worker to this many callers,
    /// the least loaded first; a call past its deadline is cancelled (an
    /// async one) or its worker is drained and replaced (a plain function,
    /// which no one can stop). At most [`MAX_CONCURRENCY`].
    pub max_concurrency: usize,
    /// Run the workers as actors of a Ray cluster instead of processes on
    /// this machine (`None`, the default: local processes). `python` must
    /// then have `ray` installed: it runs the pool's driver.
    pub ray: Option<RayConfig>,
    /// How the pool behaves; can be changed while it runs.
    pub settings: PoolSettings,
}

/// Where a pool's workers run when they are actors of a Ray cluster
/// ([`PoolConfig::ray`]).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RayConfig {
    /// The cluster's address, as `ray.init(address=…)` takes it: its GCS
    /// `host:port` (such as `127.0.0.1:6379`), or `auto`.
    pub address: String,
    /// The actor options, passed to Ray as they are: `num_cpus`,
    /// `num_gpus`, `memory`, `resources`, `scheduling_strategy` (`"SPREAD"`), …
    pub actor_options: serde_json::Map<String, serde_json::Value>,
    /// The job's runtime environment (`pip`, `env_vars`, `working_dir`, …).
    /// Without a `working_dir`, a module given as a file has its folder as
    /// the working directory, which Ray uploads to every node.
    pub runtime_env: serde_json::Map<String, serde_json::Value>,
    /// The path of the workers' frames (default: straight to the host).
    pub frames: RayFrames,
}

/// How a Ray worker's frames travel between it and the host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RayFrames {
    /// Over a TCP connection each worker's actor opens to the host (on the
    /// address Ray knows the host's machine by, checked with a token per
    /// worker): one hop each way. A worker whose actor cannot reach the
    /// host falls back to the driver, and the host logs why.
    #[default]
    Direct,
    /// Relayed by the host's Ray driver and the actor, as Ray calls: needs
    /// nothing from the network beyond what Ray needs, at about 1 ms more
    /// per call.
    Driver,
}

impl RayConfig {
    /// Workers on the cluster at `address`, with Ray's default actor options.
    pub fn new(address: impl Into<String>) -> RayConfig {
        RayConfig {
            address: address.into(),
            ..RayConfig::default()
        }
    }
}

impl PoolConfig {
    /// A pool of one worker serving the functions of `module`.
    pub fn new(module: impl Into<String>) -> PoolConfig {
        PoolConfig {
            module: module.into(),
            size: 1,
            python: PathBuf::from("python3"),
            python_path: Vec::new(),
            preload: Vec::new(),
            expose: Vec::new(),
            env: Vec::new(),
            cwd: None,
            max_concurrency: 1,
            ray: None,
            settings: PoolSettings::default(),
        }
    }

    /// Checks what a pool of this configuration would refuse to start
    /// with: no module, a size of 0, more than [`MAX_POOL_SIZE`] workers or
    /// more than this process's file descriptor limit holds, a zero start
    /// timeout. `(field, what is wrong and the fix)`.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.module.trim().is_empty() {
            return Err((
                "module",
                "name the Python module to serve, as a file (handlers.py) or a dotted name (app.handlers)".into(),
            ));
        }
        if self.size == 0 {
            return Err(("size", "must be at least 1".into()));
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.max_concurrency) {
            return Err((
                "max_concurrency",
                format!(
                    "is {}: a worker holds from 1 to {MAX_CONCURRENCY} calls at once",
                    self.max_concurrency
                ),
            ));
        }
        if self.size > MAX_POOL_SIZE {
            return Err((
                "size",
                format!(
                    "{} is over the ceiling of {MAX_POOL_SIZE} workers a pool may have; run fewer workers (several pools or hosts if you need more)",
                    self.size
                ),
            ));
        }
        let needed = self.size as u64 * DESCRIPTORS_PER_WORKER + DESCRIPTORS_RESERVED;
        if let Some(limit) = descriptor_limit()
            && needed > limit
        {
            return Err((
                "size",
                format!(
                    "{} workers need about {needed} file descriptors ({DESCRIPTORS_PER_WORKER} each, {DESCRIPTORS_RESERVED} spare), over this process's limit of {limit} (RLIMIT_NOFILE); raise it (`ulimit -n`) or run at most {} workers",
                    self.size,
                    limit.saturating_sub(DESCRIPTORS_RESERVED) / DESCRIPTORS_PER_WORKER
                ),
            ));
        }
        if self.settings.start_timeout.is_zero() {
            return Err((
                "start_timeout",
                "is 0: no worker could ever start; give it time to import the module (the default is 60 s)".into(),
            ));
        }
        if self.settings.max_sessions == 0 {
            return Err((
                "max_sessions",
                "is 0: no call could carry a session; set at least 1".into(),
            ));
        }
        Ok(())
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

impl Affinity {
    /// Every mode, by the name [`Affinity::from_str`](std::str::FromStr) reads.
    pub const ALL: [Affinity; 2] = [Affinity::Hint, Affinity::Strict];

    /// The mode's name: `hint` or `strict`.
    pub fn name(self) -> &'static str {
        match self {
            Affinity::Hint => "hint",
            Affinity::Strict => "strict",
        }
    }
}

impl std::fmt::Display for Affinity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not an affinity mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an affinity mode: use `hint` (prefer the session's worker) or `strict` (only the session's worker)"
)]
pub struct UnknownAffinity(pub String);

impl std::str::FromStr for Affinity {
    type Err = UnknownAffinity;

    fn from_str(name: &str) -> Result<Affinity, UnknownAffinity> {
        Affinity::ALL
            .into_iter()
            .find(|a| a.name() == name)
            .ok_or_else(|| UnknownAffinity(name.to_string()))
    }
}

/// This process's soft limit of open file descriptors, if it has one.
pub(crate) fn descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0
        || limit.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    Some(limit.rlim_cur)
}

/// The pool's timeouts and limits. Each is read when it is used, so
/// [`crate::Pool::update_settings`] takes effect at once. Build one with
/// `PoolSettings::default()`, then set its fields.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PoolSettings {
    /// How long a worker may take from spawn to its readiness handshake.
    pub start_timeout: Duration,
    /// How long a session stays bound to its worker after its last call.
    pub session_ttl: Duration,
    /// The most sessions bound at once. A call that would bind one more
    /// (once expired ones are forgotten) fails with `unavailable`, which
    /// names this limit; sessions already bound keep working. Chosen over
    /// evicting the least recently used session because an evicted session
    /// would silently lose its worker's state.
    pub max_sessions: usize,
    /// The longest session id a call may carry, in bytes; a longer one is
    /// a `bad-request`.
    pub max_session_id_bytes: usize,
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
            max_sessions: 100_000,
            max_session_id_bytes: 256,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_reads_back_what_it_prints() {
        for affinity in Affinity::ALL {
            assert_eq!(affinity.to_string().parse(), Ok(affinity));
        }
        let error = "sticky".parse::<Affinity>().unwrap_err();
        assert!(error.to_string().contains("`sticky`"), "{error}");
        assert!(error.to_string().contains("hint"), "{error}");
    }
}
