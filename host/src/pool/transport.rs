//! The seam between the pool and its workers. A [`Transport`] starts
//! worker N and hands back a [`Connection`] once the worker passed its
//! readiness handshake; a connection serves calls, reports its own end as
//! a typed [`Exit`], stops, and reports its usage (calls, memory). Everything about
//! lending workers out (checkout, leases, affinity, backoff, recycling,
//! status) is written once, in front of this seam (`shared`, `checkout`,
//! `slot`), and knows nothing of processes; what a worker *is* lives
//! behind it: `process/` (started interpreters, the fork server, the
//! lifeline, the frame protocol) and, in the unit tests, `fake`.
//!
//! What comes next fits it this way:
//! - **Several calls in flight on one worker** (`max_concurrency`): a
//!   connection sends requests and yields the worker's messages, matched
//!   by request id; the slot table counts the calls each worker holds, and
//!   a [`Fatal`] fails every one of them.
//! - **Answers that stream**: `call` resolves with a [`Response`] once
//!   today; a streamed call resolves with its first frame and a receiver of
//!   the chunks that follow (a bounded channel, so a slow caller holds the
//!   worker back rather than the host's memory), its end carrying the
//!   outcome. Dropping the receiver tells the connection to cancel the
//!   stream on the worker.
//! - **Workers that are actors of a Ray cluster**: a worker is a
//!   [`WorkerId`] and only *maybe* a pid ([`WorkerInfo::pid`]); a Ray
//!   connection's end is an [`Exit::Lost`] saying what Ray reported (actor
//!   died, node died). Its transport's `start` asks the cluster driver for
//!   an actor, and `abort`/`close` end the driver, which owns the actors.

use super::config::PoolSettings;
use crate::{CallError, Response};
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// A worker's id in its pool: unique for the pool's life, never reused.
pub type WorkerId = u64;

/// Who a worker is: its id, its process id when it is a process on this
/// machine, and, for an actor of a Ray cluster, the actor's id and node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct WorkerInfo {
    /// Its id in the pool.
    pub id: WorkerId,
    /// Its process id, when it is a process on this machine.
    pub pid: Option<u32>,
    /// The Ray actor's id, for a worker on a Ray cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The Ray node's id the actor runs on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The process id of the actor's worker on its node (not this machine's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_pid: Option<u32>,
    /// How a Ray worker's frames travel: `direct` (its own connection to
    /// this host) or `driver` (relayed by the host's Ray driver).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames: Option<&'static str>,
}

impl WorkerInfo {
    pub(crate) fn new(id: WorkerId, pid: Option<u32>) -> WorkerInfo {
        WorkerInfo {
            id,
            pid,
            actor: None,
            node: None,
            remote_pid: None,
            frames: None,
        }
    }
}

/// How a worker ended, as its transport saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exit {
    /// The process exited with this status code.
    Code(i32),
    /// The process was ended by this signal.
    Signal(i32),
    /// It is gone and its transport cannot say how (the process's parent is
    /// gone; a cluster lost the actor): what it knows.
    Lost(String),
}

impl Exit {
    /// Killed with SIGKILL. The pool never sends it to a worker that still
    /// serves, so one that dies of it was killed from outside (the OOM
    /// killer, an operator, a chaos test) and did nothing wrong.
    pub(crate) fn is_sigkill(&self) -> bool {
        *self == Exit::Signal(libc::SIGKILL)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit status {code}"),
            Exit::Signal(number) => match signal_name(*number) {
                Some(name) => write!(f, "signal {number} ({name})"),
                None => write!(f, "signal {number}"),
            },
            Exit::Lost(why) => write!(f, "unknown ({why})"),
        }
    }
}

fn signal_name(number: i32) -> Option<&'static str> {
    Some(match number {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return None,
    })
}

/// The end of a worker seen through its connection: it must be replaced,
/// and every call it held gets the error inside.
#[derive(Debug)]
pub(crate) enum Fatal {
    /// The worker ended.
    Died { exit: Exit, error: CallError },
    /// The worker broke the protocol and was killed.
    Broke(CallError),
}

impl Fatal {
    /// What the callers are told.
    pub(crate) fn error(&self) -> &CallError {
        match self {
            Fatal::Died { error, .. } | Fatal::Broke(error) => error,
        }
    }
}

/// Why a worker did not become ready.
#[derive(Debug, Clone)]
pub(crate) enum StartFailure {
    /// The interpreter could not be run at all.
    Spawn { python: String, message: String },
    /// The user's module raised while being imported.
    Import {
        type_name: Option<String>,
        message: String,
        traceback: Option<String>,
    },
    /// The worker ended before its handshake.
    Exited { status: String, stderr_tail: String },
    /// No handshake within the start timeout.
    Timeout { after: Duration },
    /// It sent something that is not the protocol.
    Protocol(String),
    /// The Ray cluster could not take the worker (no `ray`, no cluster,
    /// no room for the actor): what to do about it.
    Cluster(String),
    /// The host (EMFILE) or the system (ENFILE) ran out of file descriptors.
    OutOfDescriptors {
        /// What the host was doing.
        during: String,
        errno: i32,
        /// The host's RLIMIT_NOFILE (soft), when it could be read.
        limit: Option<u64>,
    },
}

impl StartFailure {
    /// A sentence a person can act on.
    pub(crate) fn describe(&self, module: &str) -> String {
        use super::config::DESCRIPTORS_PER_WORKER;
        match self {
            StartFailure::Spawn { python, message } => format!(
                "cannot run the Python interpreter `{python}`: {message}. Install Python 3.9 or newer, or set the pool's `python` to its path"
            ),
            StartFailure::Import {
                type_name,
                message,
                traceback,
            } => format!(
                "the module `{module}` could not be imported: {}: {message}\n{}Fix the module (or the module path) and the pool restarts its workers by itself",
                type_name.as_deref().unwrap_or("Exception"),
                traceback.as_deref().unwrap_or("")
            ),
            StartFailure::Exited {
                status,
                stderr_tail,
            } => format!(
                "a worker for `{module}` exited ({status}) before it was ready. Its last stderr lines:\n{stderr_tail}"
            ),
            StartFailure::Timeout { after } => format!(
                "a worker for `{module}` did not finish starting within {after:?}; raise start_timeout if importing it is that slow"
            ),
            StartFailure::Protocol(message) => {
                format!("a worker for `{module}` broke the protocol while starting: {message}")
            }
            StartFailure::Cluster(why) => {
                format!("a worker for `{module}` cannot start on the Ray cluster: {why}")
            }
            StartFailure::OutOfDescriptors {
                during,
                errno: libc::ENFILE,
                ..
            } => format!(
                "cannot start a worker for `{module}`: the system is out of file descriptors (ENFILE while {during}). Raise the system's limit (fs.file-max) or lower the pool size"
            ),
            StartFailure::OutOfDescriptors { during, limit, .. } => {
                let limit = limit.map_or("unknown".to_string(), |l| l.to_string());
                format!(
                    "cannot start a worker for `{module}`: the host process is out of file descriptors (EMFILE while {during}; its limit, RLIMIT_NOFILE, is {limit}, and each worker holds about {DESCRIPTORS_PER_WORKER}). Raise the limit (`ulimit -n`) or lower the pool size"
                )
            }
        }
    }

    /// What a call gets when no worker could start: the import's own
    /// exception when there is one, so the caller sees the traceback.
    pub(crate) fn to_call_error(&self, module: &str) -> CallError {
        match self {
            StartFailure::Import {
                type_name,
                message,
                traceback,
            } => CallError::PythonException {
                type_name: type_name.clone().unwrap_or_else(|| "ImportError".into()),
                message: format!("no worker could start: {message}"),
                traceback: traceback.clone().unwrap_or_default(),
            },
            other => {
                CallError::Unavailable(format!("no worker could start: {}", other.describe(module)))
            }
        }
    }
}

/// How a pool's workers come to be. One transport serves one pool; the
/// pool calls `start` from every slot at once.
pub(crate) trait Transport: Send + Sync + 'static {
    /// A worker that passed its handshake.
    type Connection: Connection;

    /// Starts worker `id` and waits (up to `settings.start_timeout`) for it
    /// to be ready. Cancelling the future leaves nothing running.
    fn start(
        &self,
        id: WorkerId,
        settings: &PoolSettings,
    ) -> impl Future<Output = Result<Self::Connection, StartFailure>> + Send;

    /// Work of the transport's own that runs for the pool's life (the
    /// process transport keeps its fork server here), reading the pool's
    /// `settings` as they change; it must return soon after `closed` turns
    /// true.
    fn run(
        &self,
        closed: watch::Receiver<bool>,
        settings: watch::Receiver<PoolSettings>,
    ) -> impl Future<Output = ()> + Send + 'static;

    /// Kills every worker now, without waiting: the pool was dropped.
    /// `workers` are those its slots hold.
    fn abort(&self, workers: &[WorkerInfo]);

    /// After every connection stopped: ends whatever else the transport
    /// runs, waiting up to `grace` for it to go.
    fn close(&self, grace: Duration) -> impl Future<Output = ()> + Send;

    /// The module changed: workers started from now on must import it
    /// again (a fork server that imported it is replaced). A transport
    /// whose every start imports the module has nothing to do.
    fn renew(&self) {}

    /// The fork server's process id, for a transport that has one ready.
    fn fork_server_pid(&self) -> Option<u32> {
        None
    }

    /// The Ray driver's process id, for a transport that has one running.
    fn ray_driver_pid(&self) -> Option<u32> {
        None
    }
}

/// A request's number on its connection (the frame protocol's `id`).
pub(crate) type RequestId = u64;

/// What a worker sends once it is ready.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// The answer to request `id` (a handler's exception included).
    Reply {
        id: RequestId,
        outcome: Result<Response, CallError>,
    },
    /// Request `id`, asked to stop, cannot be (a plain function running on
    /// a thread); it still answers when it ends.
    Uncancellable { id: RequestId },
    /// A chunk of streamed request `id`'s answer; its end is a `Reply`.
    Chunk { id: RequestId, chunk: Vec<u8> },
}

/// One ready worker, served by one slot of the pool. The slot writes
/// requests as they come (as many at once as the pool's
/// `max_concurrency`) and reads the worker's messages; a request and its
/// answer are matched by their id.
pub(crate) trait Connection: Send + 'static {
    /// Who it is.
    fn info(&self) -> WorkerInfo;

    /// Its handlers (its commands, without the built-ins), as it
    /// described them in its handshake.
    fn handlers(&self) -> &[super::Handler];

    /// Sends request `id`: `command` with `payload` (the built-in `ping`
    /// too). Its answer comes from [`Connection::next`]; with `credit`, a
    /// streamed request, first in chunks, at most that many until
    /// [`Connection::credit`] gives more. `Err`: the worker is gone, broke
    /// the protocol, or did not take the request by `deadline` (it stopped
    /// reading, and was killed; `grace` bounds the clean-up), and every
    /// call it holds fails.
    fn send(
        &mut self,
        id: RequestId,
        command: &str,
        payload: &[u8],
        credit: Option<u32>,
        deadline: Instant,
        grace: Duration,
    ) -> impl Future<Output = Result<(), Fatal>> + Send;

    /// Lets streamed request `id` send `n` chunks more. `Err` as for `send`.
    fn credit(
        &mut self,
        id: RequestId,
        n: u32,
        deadline: Instant,
        grace: Duration,
    ) -> impl Future<Output = Result<(), Fatal>> + Send;

    /// Asks the worker to stop request `id`, which still gets an answer
    /// (or an [`Incoming::Uncancellable`] first). `Err` as for `send`.
    fn cancel(
        &mut self,
        id: RequestId,
        deadline: Instant,
        grace: Duration,
    ) -> impl Future<Output = Result<(), Fatal>> + Send;

    /// The worker's next message. `Err`: the worker ended (whether or not
    /// it held calls) or broke the protocol and was killed. Cancel-safe:
    /// it may be dropped and awaited again without losing a message.
    fn next(&mut self, grace: Duration) -> impl Future<Output = Result<Incoming, Fatal>> + Send;

    /// Kills the worker now (a call ran past its deadline and only its end
    /// stops it) and waits until it is gone: how it ended.
    fn kill(&mut self, grace: Duration) -> impl Future<Output = Exit> + Send;

    /// Stops the worker (politely, then by force after `grace`) and waits
    /// until it is gone.
    fn stop(&mut self, grace: Duration) -> impl Future<Output = ()> + Send;

    /// Its resident memory in bytes, when the transport can tell. It may
    /// ask the system (a read of `/proc`): the pool asks only when a
    /// memory limit is set.
    fn memory_bytes(&self) -> Option<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_read_as_the_status_a_shell_prints() {
        assert_eq!(Exit::Code(3).to_string(), "exit status 3");
        assert_eq!(Exit::Signal(9).to_string(), "signal 9 (SIGKILL)");
        assert_eq!(Exit::Signal(64).to_string(), "signal 64");
        assert_eq!(
            Exit::Lost("its parent process is gone".into()).to_string(),
            "unknown (its parent process is gone)"
        );
        assert!(Exit::Signal(libc::SIGKILL).is_sigkill());
        assert!(!Exit::Signal(libc::SIGTERM).is_sigkill());
    }
}
