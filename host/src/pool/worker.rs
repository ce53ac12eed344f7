//! One Python worker process: how it is started (by the pool's reaper or
//! forked by its fork server; socket on fd 3, its own process group, a
//! lifeline on fd 4), its handshake, one call at a time, and how it is
//! stopped. This is the pool's only transport: a worker on another machine
//! would be another implementation of this module's API.

use super::config::{DESCRIPTORS_PER_WORKER, PoolConfig, PoolSettings, descriptor_limit};
use super::control::Control;
use super::forkserver::ForkServer;
use super::lifeline::{self, Lifeline};
use super::output::{self, Tail};
use super::protocol::{self, ErrorBody, FrameError, Handshake, ReplyHeader};
use super::reaper::{LaunchError, Launcher, Program};
use crate::{CallError, Response};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;

/// The worker program, embedded so that an installed `snakepen` needs no files beside it.
const WORKER_SOURCE: &str = include_str!("../../python/snakepen_worker.py");

/// Why a worker did not become ready.
#[derive(Debug, Clone)]
pub(crate) enum StartFailure {
    /// The interpreter could not be run at all.
    Spawn { python: String, message: String },
    /// The user's module raised while being imported.
    Import(ErrorBody),
    /// The process ended before its handshake.
    Exited { status: String, stderr_tail: String },
    /// No handshake within the start timeout.
    Timeout { after: Duration },
    /// It wrote something that is not the protocol.
    Protocol(String),
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
        match self {
            StartFailure::Spawn { python, message } => format!(
                "cannot run the Python interpreter `{python}`: {message}. Install Python 3.9 or newer, or set the pool's `python` to its path"
            ),
            StartFailure::Import(e) => format!(
                "the module `{module}` could not be imported: {}: {}\n{}Fix the module (or the module path) and the pool restarts its workers by itself",
                e.type_name.as_deref().unwrap_or("Exception"),
                e.message,
                e.traceback.as_deref().unwrap_or("")
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

    /// The failure of an OS call that failed with `error` while `during`:
    /// out of descriptors when its errno says so (never judged by its
    /// text), else the interpreter `python` could not be run.
    pub(crate) fn os(
        python: &std::path::Path,
        during: &str,
        errno: Option<i32>,
        message: impl std::fmt::Display,
    ) -> StartFailure {
        match errno {
            Some(errno @ (libc::EMFILE | libc::ENFILE)) => StartFailure::OutOfDescriptors {
                during: during.to_string(),
                errno,
                limit: descriptor_limit(),
            },
            _ => StartFailure::Spawn {
                python: python.display().to_string(),
                message: format!("{during}: {message}"),
            },
        }
    }

    fn launch(python: &std::path::Path, during: &str, error: LaunchError) -> StartFailure {
        match error {
            LaunchError::Timeout(after) => StartFailure::Timeout { after },
            LaunchError::Reaper { why, stderr_tail } => StartFailure::Exited {
                status: format!("the pool's reaper: {why}"),
                stderr_tail,
            },
            other => StartFailure::os(python, during, other.os_error(), other),
        }
    }

    /// What a call gets when no worker could start: the import's own
    /// exception when there is one, so the caller sees the traceback.
    pub(crate) fn to_call_error(&self, module: &str) -> CallError {
        match self {
            StartFailure::Import(e) => CallError::PythonException {
                type_name: e.type_name.clone().unwrap_or_else(|| "ImportError".into()),
                message: format!("no worker could start: {}", e.message),
                traceback: e.traceback.clone().unwrap_or_default(),
            },
            other => {
                CallError::Unavailable(format!("no worker could start: {}", other.describe(module)))
            }
        }
    }
}

/// How one call on a worker ended, when it did not end with an answer.
#[derive(Debug)]
pub(crate) enum CallFailure {
    /// The worker died or broke the protocol; it must be replaced.
    Died(CallError),
    /// The deadline passed; the worker was killed.
    TimedOut(CallError),
}

/// A started, handshaken worker. Only a `Worker` that passed its handshake exists.
pub(crate) struct Worker {
    pub(crate) id: u64,
    pub(crate) started: Instant,
    pub(crate) served: u64,
    /// The commands it reported in its handshake.
    pub(crate) functions: Vec<String>,
    /// Its parent: the pool's reaper, or the fork server that forked it. It
    /// reports the exit and keeps the process a zombie until told to reap.
    parent: Arc<Control>,
    /// The exit status to come from `parent`, until it came.
    exit: Option<oneshot::Receiver<String>>,
    /// The exit status, once `parent` reported it.
    status: Option<String>,
    pid: u32,
    /// Readable once the process has ended, without reaping it: while it is
    /// a zombie its pid (and so its process group's id) cannot be reused, so
    /// the group can be killed safely after the leader's death.
    pidfd: Option<AsyncFd<OwnedFd>>,
    /// Whether its parent was told to reap it (its group id may then belong to another).
    reaped: bool,
    reader: BufReader<OwnedReadHalf>,
    writer: Option<OwnedWriteHalf>,
    stderr_tail: Arc<Mutex<Tail>>,
    stderr_task: tokio::task::JoinHandle<()>,
    next_request: u64,
    max_frame_bytes: usize,
    /// Declared last: dropped after everything else, it kills the process
    /// if it still runs.
    _lifeline: Lifeline,
}

/// How a worker came to be: its pid, its parent, and its output pipes.
type Started = (
    u32,
    Arc<Control>,
    tokio::net::unix::pipe::Receiver,
    tokio::net::unix::pipe::Receiver,
);

impl Worker {
    /// Starts a worker (forked from `fork_server` when one is given and
    /// answers, else as a new process through the pool's reaper) and waits
    /// for its handshake.
    pub(crate) async fn start(
        config: &PoolConfig,
        launcher: &Launcher,
        settings: &PoolSettings,
        id: u64,
        fork_server: Option<Arc<ForkServer>>,
    ) -> Result<Worker, StartFailure> {
        let python = launcher.python();
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(|e| {
            StartFailure::os(python, "creating the protocol socket", e.raw_os_error(), e)
        })?;
        let (lifeline, line) = Lifeline::new().map_err(|e| {
            StartFailure::os(python, "creating the lifeline pipe", e.raw_os_error(), e)
        })?;
        let (socket, line) = (OwnedFd::from(theirs), line);
        let (pid, parent, stdout, stderr): Started = match fork_server {
            Some(server) => {
                // The fork server may fail to fork; then the worker is
                // started the usual way, on descriptors of its own.
                match fork_from(&server, (socket, line), settings).await {
                    Ok((pid, stdout, stderr)) => (pid, server.control(), stdout, stderr),
                    Err(e) => {
                        tracing::warn!(
                            worker = id,
                            "the fork server could not fork a worker ({e}); starting one the usual way"
                        );
                        return Box::pin(Worker::start(config, launcher, settings, id, None)).await;
                    }
                }
            }
            None => spawn_process(config, launcher, settings, socket, line, false).await?,
        };
        let stderr_tail = Arc::new(Mutex::new(Tail::default()));
        let stderr_task = output::forward(stdout, stderr, id, pid, Some(Arc::clone(&stderr_tail)));
        let exit = Some(parent.exit_of(pid));
        let cannot = |e: std::io::Error| {
            kill_group(pid, libc::SIGKILL);
            StartFailure::os(
                python,
                "setting up the protocol socket",
                e.raw_os_error(),
                e,
            )
        };
        ours.set_nonblocking(true).map_err(cannot)?;
        let stream = UnixStream::from_std(ours).map_err(cannot)?;
        let (read, write) = stream.into_split();
        let mut worker = Worker {
            id,
            started: Instant::now(),
            served: 0,
            functions: Vec::new(),
            parent,
            exit,
            status: None,
            pid,
            pidfd: open_pidfd(pid),
            reaped: false,
            reader: BufReader::with_capacity(64 << 10, read),
            writer: Some(write),
            stderr_tail,
            stderr_task,
            next_request: 0,
            max_frame_bytes: settings.max_frame_bytes,
            _lifeline: lifeline,
        };
        let handshake = tokio::time::timeout(
            settings.start_timeout,
            protocol::read_frame(&mut worker.reader, worker.max_frame_bytes),
        )
        .await;
        let failure = match handshake {
            Err(_) => StartFailure::Timeout {
                after: settings.start_timeout,
            },
            Ok(Err(FrameError::Closed)) => {
                let status = worker.reap(settings.kill_grace).await;
                StartFailure::Exited {
                    status,
                    stderr_tail: worker.stderr_tail(settings.kill_grace).await,
                }
            }
            Ok(Err(FrameError::Invalid(message))) => StartFailure::Protocol(message),
            Ok(Ok((header, _))) => match serde_json::from_slice::<Handshake>(&header) {
                Ok(Handshake::Ready(hello)) => {
                    tracing::debug!(worker = id, pid, python = %hello.python, module = %hello.module, "worker ready");
                    if !hello.shadowed.is_empty() {
                        tracing::warn!(worker = id, functions = ?hello.shadowed, "the module defines functions named like snakepen's built-ins; requests reach the built-ins");
                    }
                    worker.started = Instant::now();
                    worker.functions = hello.functions;
                    return Ok(worker);
                }
                Ok(Handshake::Failed { error }) => StartFailure::Import(error),
                Err(e) => StartFailure::Protocol(format!("its handshake is not valid: {e}")),
            },
        };
        worker.stop(settings.kill_grace).await;
        Err(failure)
    }

    /// The worker's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Runs one request and waits for its reply until `deadline`. A worker
    /// that dies, breaks the protocol or outlives the deadline is killed.
    pub(crate) async fn call(
        &mut self,
        command: &str,
        payload: &[u8],
        deadline: Instant,
        kill_grace: Duration,
    ) -> Result<Result<Response, CallError>, CallFailure> {
        self.next_request += 1;
        let id = self.next_request;
        let frame = protocol::encode_request(id, command, payload);
        let started = Instant::now();
        let (writer, reader, max) = (&mut self.writer, &mut self.reader, self.max_frame_bytes);
        let (pidfd, exit, status) = (&self.pidfd, &mut self.exit, &mut self.status);
        let exchange = async {
            let writer = writer.as_mut().ok_or(FrameError::Closed)?;
            writer.write_all(&frame).await?;
            protocol::read_frame(reader, max).await
        };
        // A worker whose process ends fails the call at once, even if
        // something it forked still holds its socket open.
        let exchange = async {
            tokio::select! {
                biased;
                frame = exchange => frame,
                () = leader_exit(pidfd, exit, status) => Err(FrameError::Closed),
            }
        };
        let reply = tokio::time::timeout_at(deadline.into(), exchange).await;
        let (header, body) = match reply {
            Ok(Ok(frame)) => frame,
            Ok(Err(FrameError::Closed)) => {
                let status = self.reap(kill_grace).await;
                let stderr_tail = self.stderr_tail(kill_grace).await;
                return Err(CallFailure::Died(CallError::WorkerCrashed {
                    pid: self.pid,
                    exit_status: status,
                    stderr_tail,
                }));
            }
            Ok(Err(FrameError::Invalid(message))) => {
                return Err(CallFailure::Died(self.broken(message, kill_grace).await));
            }
            Err(_) => {
                self.kill_group(libc::SIGKILL);
                let _ = self.reap(kill_grace).await;
                return Err(CallFailure::TimedOut(CallError::Timeout(format!(
                    "{} ran past its deadline ({:?}) on worker {}; the worker was killed (the only way to stop Python code) and is being replaced",
                    crate::error::quoted(command),
                    started.elapsed(),
                    self.pid
                ))));
            }
        };
        let header: ReplyHeader = match serde_json::from_slice(&header) {
            Ok(header) => header,
            Err(e) => {
                let message = format!("its reply header is not valid: {e}");
                return Err(CallFailure::Died(self.broken(message, kill_grace).await));
            }
        };
        if header.id != id {
            let message = format!(
                "it answered request {} while request {id} was running",
                header.id
            );
            return Err(CallFailure::Died(self.broken(message, kill_grace).await));
        }
        Ok(match (header.ok, header.error) {
            (true, _) => Ok(Response {
                payload: body,
                worker_pid: Some(self.pid),
            }),
            (false, Some(error)) => Err(error.into_call_error()),
            (false, None) => Err(CallError::AdapterFault(format!(
                "worker {} reported a failure without saying what it was",
                self.pid
            ))),
        })
    }

    /// The worker's resident memory, from `/proc` (Linux), without asking it.
    pub(crate) fn rss_bytes(&self) -> Option<u64> {
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.pid)).ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Some(pages * u64::try_from(page).unwrap_or(4096))
    }

    /// Waits for the process to end, kills what is left of its process
    /// group (anything it forked), and reaps it: its exit status.
    pub(crate) async fn exited(&mut self) -> String {
        leader_exit(&self.pidfd, &mut self.exit, &mut self.status).await;
        self.kill_group(libc::SIGKILL);
        self.reap_now().await
    }

    /// Its exit status from its parent, and tells the parent to reap it.
    async fn reap_now(&mut self) -> String {
        let status = match (self.status.take(), self.exit.take()) {
            (Some(status), _) => status,
            // The parent reports at once; the bound only guards against a
            // parent that hangs.
            (None, Some(exit)) => match tokio::time::timeout(Duration::from_secs(5), exit).await {
                Ok(Ok(status)) => status,
                Ok(Err(_)) => "unknown (its parent process is gone)".into(),
                Err(_) => "unknown (its parent process did not say)".into(),
            },
            (None, None) => "unknown".into(),
        };
        if !self.reaped {
            self.reaped = true;
            self.parent.reap(self.pid).await;
        }
        status
    }

    /// Stops the worker: close its socket (it exits by itself when idle),
    /// then SIGTERM, then SIGKILL of its whole process group.
    pub(crate) async fn stop(&mut self, kill_grace: Duration) {
        self.writer = None;
        let (pidfd, exit, status) = (&self.pidfd, &mut self.exit, &mut self.status);
        if tokio::time::timeout(kill_grace / 2, leader_exit(pidfd, exit, status))
            .await
            .is_err()
        {
            self.kill_group(libc::SIGTERM);
            let (pidfd, exit, status) = (&self.pidfd, &mut self.exit, &mut self.status);
            if tokio::time::timeout(kill_grace, leader_exit(pidfd, exit, status))
                .await
                .is_err()
            {
                tracing::warn!(
                    worker = self.id,
                    pid = self.pid,
                    "worker ignored SIGTERM; killing it"
                );
            }
        }
        self.kill_group(libc::SIGKILL); // it, if it still runs, and anything it forked
        let _ = self.reap_now().await;
    }

    /// Sends `signal` to the worker's process group (it leads its own), unless
    /// the worker was reaped and its group id may be another's now.
    pub(crate) fn kill_group(&self, signal: i32) {
        if !self.reaped {
            kill_group(self.pid, signal);
        }
    }

    async fn broken(&mut self, message: String, kill_grace: Duration) -> CallError {
        self.kill_group(libc::SIGKILL);
        let status = self.reap(kill_grace).await;
        CallError::WorkerCrashed {
            pid: self.pid,
            exit_status: format!("killed for breaking the protocol ({message}); {status}"),
            stderr_tail: self.stderr_tail(kill_grace).await,
        }
    }

    /// Waits for the process to end, killing it if it does not end in
    /// `grace`, then kills its group and reaps it: its exit status.
    async fn reap(&mut self, grace: Duration) -> String {
        let (pidfd, exit, status) = (&self.pidfd, &mut self.exit, &mut self.status);
        match tokio::time::timeout(grace, leader_exit(pidfd, exit, status)).await {
            Ok(()) => self.exited().await,
            Err(_) => {
                self.kill_group(libc::SIGKILL);
                format!(
                    "{} (killed: it closed its socket but kept running)",
                    self.exited().await
                )
            }
        }
    }

    /// The last lines of stderr, once the stderr pipe is drained (bounded by `grace`).
    async fn stderr_tail(&mut self, grace: Duration) -> String {
        let _ = tokio::time::timeout(grace, &mut self.stderr_task).await;
        let tail = self.stderr_tail.lock().unwrap_or_else(|p| p.into_inner());
        tail.text()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // A worker dropped without `stop` (its pool was dropped), or whose
        // process ended: leave nothing running, not even what it forked.
        self.kill_group(libc::SIGKILL);
        if !self.reaped
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            // Its parent keeps it as a zombie until told; tell it.
            let (parent, pid) = (Arc::clone(&self.parent), self.pid);
            runtime.spawn(async move { parent.reap(pid).await });
        }
    }
}

/// Resolves when the worker's process has ended: through its pidfd, which
/// leaves it unreaped, or (on a kernel without pidfds) when its parent
/// reports the exit (keeping the status in `status`).
async fn leader_exit(
    pidfd: &Option<AsyncFd<OwnedFd>>,
    exit: &mut Option<oneshot::Receiver<String>>,
    status: &mut Option<String>,
) {
    if let Some(fd) = pidfd {
        let _ = fd.readable().await;
        return;
    }
    if status.is_some() {
        return;
    }
    match exit {
        Some(rx) => {
            let reported = rx.await;
            *exit = None;
            *status =
                Some(reported.unwrap_or_else(|_| "unknown (its parent process is gone)".into()));
        }
        None => std::future::pending().await,
    }
}

/// Asks `server` for a worker on `socket` and `lifeline` (the read end), with
/// pipes for its output.
async fn fork_from(
    server: &ForkServer,
    (socket, lifeline): (OwnedFd, OwnedFd),
    settings: &PoolSettings,
) -> Result<
    (
        u32,
        tokio::net::unix::pipe::Receiver,
        tokio::net::unix::pipe::Receiver,
    ),
    super::control::RequestError,
> {
    let (stdout_read, stdout_write) = pipe()?;
    let (stderr_read, stderr_write) = pipe()?;
    let pid = server
        .fork(
            [socket, stdout_write, stderr_write, lifeline],
            settings.start_timeout,
        )
        .await?;
    let stdout = tokio::net::unix::pipe::Receiver::from_owned_fd(stdout_read)?;
    let stderr = tokio::net::unix::pipe::Receiver::from_owned_fd(stderr_read)?;
    Ok((pid, stdout, stderr))
}

/// A pipe for a worker's output: (read end, non-blocking; write end).
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = lifeline::pipe()?;
    lifeline::set_nonblocking(&read)?;
    Ok((read, write))
}

/// A pidfd for `pid` (Linux 5.3 and later), registered with the runtime.
fn open_pidfd(pid: u32) -> Option<AsyncFd<OwnedFd>> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the descriptor was just created and is owned by nobody else;
    // the AsyncFd owns it from here and nothing replaces or closes it.
    unsafe { AsyncFd::register(OwnedFd::from_raw_fd(fd as i32)).ok() }
}

pub(crate) fn kill_group(pid: u32, signal: i32) {
    if pid == 0 {
        return;
    }
    // SAFETY: killpg has no memory-safety preconditions. The group id is the
    // pid of a process started as a group leader that has not been reaped,
    // or whose group may still hold its children.
    unsafe {
        libc::killpg(pid as libc::pid_t, signal);
    }
}

/// Starts the worker program (the fork server when `fork_server`) through
/// the pool's reaper, with `socket` on fd 3, the read end of its `lifeline`
/// on fd 4, and pipes for its output: its pid, its parent (the reaper) and
/// the read ends of its stdout and stderr. The interpreter runs as the user
/// named it (a wrapper script runs too, and applies).
pub(crate) async fn spawn_process(
    config: &PoolConfig,
    launcher: &Launcher,
    settings: &PoolSettings,
    socket: OwnedFd,
    lifeline: OwnedFd,
    fork_server: bool,
) -> Result<Started, StartFailure> {
    let python = launcher.python();
    let mut argv = vec![
        python.to_string_lossy().into_owned(),
        "-I".into(),
        "-u".into(),
        "-c".into(),
        WORKER_SOURCE.into(),
    ];
    argv.extend(config.worker_args(fork_server));
    let mut env: Vec<(String, String)> = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        env.push(("PATH".into(), path.to_string_lossy().into_owned()));
    }
    env.push(("LANG".into(), "C.UTF-8".into()));
    env.push(("LC_ALL".into(), "C.UTF-8".into()));
    for (key, value) in &config.env {
        env.retain(|(k, _)| k != key);
        env.push((key.clone(), value.clone()));
    }
    let program = Program {
        argv,
        env,
        cwd: config.cwd.clone(),
    };
    let failed =
        |during: &str, e: std::io::Error| StartFailure::os(python, during, e.raw_os_error(), e);
    let (stdout_read, stdout_write) = pipe().map_err(|e| failed("creating a stdout pipe", e))?;
    let (stderr_read, stderr_write) = pipe().map_err(|e| failed("creating a stderr pipe", e))?;
    let (pid, reaper) = launcher
        .spawn(
            &program,
            [socket, stdout_write, stderr_write, lifeline],
            settings.start_timeout,
            settings.max_frame_bytes,
        )
        .await
        .map_err(|e| StartFailure::launch(python, "starting it", e))?;
    let receiver = |fd| {
        tokio::net::unix::pipe::Receiver::from_owned_fd(fd).map_err(|e| {
            kill_group(pid, libc::SIGKILL);
            failed("reading its output", e)
        })
    };
    Ok((pid, reaper, receiver(stdout_read)?, receiver(stderr_read)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn running_out_of_descriptors_names_the_limit_and_the_fix() {
        let error = std::io::Error::from_raw_os_error(libc::EMFILE);
        let failure = StartFailure::os(
            Path::new("python3"),
            "creating the protocol socket",
            error.raw_os_error(),
            error,
        );
        let limit = descriptor_limit().expect("this process has a descriptor limit");
        let message = failure.describe("handlers.py");
        assert!(
            message.contains("out of file descriptors")
                && message.contains("creating the protocol socket")
                && message.contains(&format!("RLIMIT_NOFILE, is {limit}"))
                && message.contains("ulimit -n")
                && message.contains("lower the pool size"),
            "{message}"
        );
        assert!(!message.contains("Install Python"), "{message}");
    }

    #[test]
    fn the_system_running_out_of_descriptors_is_told_apart() {
        let failure = StartFailure::os(Path::new("python3"), "fork", Some(libc::ENFILE), "");
        let message = failure.describe("handlers.py");
        assert!(
            message.contains("the system is out of file descriptors"),
            "{message}"
        );
    }

    #[test]
    fn other_os_errors_still_point_at_the_interpreter() {
        let error = std::io::Error::from_raw_os_error(libc::ENOENT);
        let failure = StartFailure::os(
            Path::new("python9"),
            "starting it",
            error.raw_os_error(),
            error,
        );
        assert!(failure.describe("m").contains("Install Python"));
    }
}
