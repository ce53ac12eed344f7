//! One Python worker process: how it is started (socket on fd 3, its own
//! process group, a lifeline on fd 4), its handshake, one call at a time,
//! and how it is stopped. This is the pool's only transport: a worker on
//! another machine would be another implementation of this module's API.

use super::config::{PoolConfig, PoolSettings};
use super::forkserver::ForkServer;
use super::lifeline::{self, LIFELINE_FD, Lifeline};
use super::protocol::{self, ErrorBody, FrameError, Handshake, ReplyHeader};
use crate::{CallError, Response};
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// The worker program, embedded so that an installed `snakepen` needs no files beside it.
const WORKER_SOURCE: &str = include_str!("../../python/snakepen_worker.py");
/// The file descriptor the worker finds its protocol socket on.
const PROTOCOL_FD: i32 = 3;
/// Lines of a worker's stderr kept for crash reports.
const STDERR_TAIL_LINES: usize = 20;

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
    /// The process, when the pool started it (a forked worker is the fork server's child).
    child: Option<Child>,
    /// The fork server that forked this worker, and its exit status to come.
    forked: Option<(Arc<ForkServer>, Option<oneshot::Receiver<String>>)>,
    pid: u32,
    /// Readable once the process has ended, without reaping it: while it is
    /// a zombie its pid (and so its process group's id) cannot be reused, so
    /// the group can be killed safely after the leader's death.
    pidfd: Option<AsyncFd<OwnedFd>>,
    /// Whether the process was reaped (its group id may then belong to another).
    reaped: bool,
    reader: BufReader<OwnedReadHalf>,
    writer: Option<OwnedWriteHalf>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    stderr_task: tokio::task::JoinHandle<()>,
    next_request: u64,
    max_frame_bytes: usize,
    /// Declared last: dropped after everything else, it kills the process
    /// if it still runs.
    _lifeline: Lifeline,
}

impl Worker {
    /// Starts a worker (forked from `fork_server` when one is given and
    /// answers, else as a new process) and waits for its handshake.
    pub(crate) async fn start(
        config: &PoolConfig,
        python: &Path,
        settings: &PoolSettings,
        id: u64,
        fork_server: Option<Arc<ForkServer>>,
    ) -> Result<Worker, StartFailure> {
        let cannot = |message: String| StartFailure::Spawn {
            python: config.python.display().to_string(),
            message,
        };
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| cannot(format!("cannot create the protocol socket: {e}")))?;
        let (lifeline, line) =
            Lifeline::new().map_err(|e| cannot(format!("cannot create the lifeline pipe: {e}")))?;
        // The worker's ends go to exactly one place: the fork server or the child.
        let mut theirs = Some((OwnedFd::from(theirs), line));
        let take = |theirs: &mut Option<(OwnedFd, OwnedFd)>| {
            theirs.take().expect("the socket is handed over once")
        };
        let forked = match fork_server {
            Some(server) => match fork_from(&server, take(&mut theirs), settings).await {
                Ok((pid, stdout, stderr)) => Some((server, pid, stdout, stderr)),
                Err(e) => {
                    tracing::warn!(
                        worker = id,
                        "the fork server could not fork a worker ({e}); starting one the usual way"
                    );
                    return Box::pin(Worker::start(config, python, settings, id, None)).await;
                }
            },
            None => None,
        };
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let (child, forked, pid, stderr_task) = match forked {
            Some((server, pid, stdout, stderr)) => {
                let task = forward_output(stdout, stderr, id, pid, Some(Arc::clone(&stderr_tail)));
                let exit = server.exit_of(pid);
                (None, Some((server, Some(exit))), pid, task)
            }
            None => {
                let (socket, line) = take(&mut theirs);
                let mut child = spawn_process(config, python, socket, line, false)?;
                let pid = child.id().unwrap_or(0);
                let stdout = child.stdout.take().expect("stdout is piped");
                let stderr = child.stderr.take().expect("stderr is piped");
                let task = forward_output(stdout, stderr, id, pid, Some(Arc::clone(&stderr_tail)));
                (Some(child), None, pid, task)
            }
        };
        ours.set_nonblocking(true)
            .map_err(|e| cannot(e.to_string()))?;
        let stream = UnixStream::from_std(ours).map_err(|e| cannot(e.to_string()))?;
        let (read, write) = stream.into_split();
        let mut worker = Worker {
            id,
            started: Instant::now(),
            served: 0,
            functions: Vec::new(),
            child,
            forked,
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
        let (pidfd, child, reaped) = (&self.pidfd, &mut self.child, &mut self.reaped);
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
                () = leader_exit(pidfd, child, reaped) => Err(FrameError::Closed),
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
        leader_exit(&self.pidfd, &mut self.child, &mut self.reaped).await;
        self.kill_group(libc::SIGKILL);
        self.reap_now().await
    }

    async fn reap_now(&mut self) -> String {
        self.reaped = true;
        if let Some(child) = &mut self.child {
            return match child.wait().await {
                Ok(status) => describe_status(status),
                Err(e) => format!("unknown ({e})"),
            };
        }
        let Some((server, exit)) = &mut self.forked else {
            return "unknown".into();
        };
        // The server reports at once; the bound only guards against a server
        // that hangs.
        let status = match exit.take() {
            Some(exit) => match tokio::time::timeout(Duration::from_secs(5), exit).await {
                Ok(Ok(status)) => status,
                Ok(Err(_)) => "unknown (its fork server is gone)".into(),
                Err(_) => "unknown (its fork server did not say)".into(),
            },
            None => "unknown".into(),
        };
        server.reap(self.pid).await;
        status
    }

    /// Stops the worker: close its socket (it exits by itself when idle),
    /// then SIGTERM, then SIGKILL of its whole process group.
    pub(crate) async fn stop(&mut self, kill_grace: Duration) {
        self.writer = None;
        let (pidfd, child, reaped) = (&self.pidfd, &mut self.child, &mut self.reaped);
        if tokio::time::timeout(kill_grace / 2, leader_exit(pidfd, child, reaped))
            .await
            .is_err()
        {
            self.kill_group(libc::SIGTERM);
            let (pidfd, child, reaped) = (&self.pidfd, &mut self.child, &mut self.reaped);
            if tokio::time::timeout(kill_grace, leader_exit(pidfd, child, reaped))
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
        let (pidfd, child, reaped) = (&self.pidfd, &mut self.child, &mut self.reaped);
        match tokio::time::timeout(grace, leader_exit(pidfd, child, reaped)).await {
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
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // A worker dropped without `stop` (its pool was dropped), or whose
        // process ended: leave nothing running, not even what it forked.
        self.kill_group(libc::SIGKILL);
        if let (false, Some((server, _))) = (self.reaped, &self.forked)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            // Its fork server keeps it as a zombie until told; tell it.
            let (server, pid) = (Arc::clone(server), self.pid);
            runtime.spawn(async move { server.reap(pid).await });
        }
    }
}

/// Resolves when the worker's process has ended: through its pidfd, which
/// leaves it unreaped, or (on a kernel without pidfds) by reaping it.
async fn leader_exit(
    pidfd: &Option<AsyncFd<OwnedFd>>,
    child: &mut Option<Child>,
    reaped: &mut bool,
) {
    match (pidfd, child) {
        (Some(fd), _) => {
            let _ = fd.readable().await;
        }
        (None, Some(child)) => {
            let _ = child.wait().await;
            *reaped = true;
        }
        (None, None) => std::future::pending().await,
    }
}

/// Asks `server` for a worker on `socket` and `lifeline` (the read end), with
/// pipes for its output.
async fn fork_from(
    server: &ForkServer,
    (socket, lifeline): (OwnedFd, OwnedFd),
    settings: &PoolSettings,
) -> std::io::Result<(
    u32,
    tokio::net::unix::pipe::Receiver,
    tokio::net::unix::pipe::Receiver,
)> {
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
    // pid of a child we spawned as a group leader and have not reaped, or
    // whose group may still hold its children.
    unsafe {
        libc::killpg(pid as libc::pid_t, signal);
    }
}

/// The interpreter to run. A `python3` that is a script (a pyenv or asdf
/// shim) costs ~100 ms on every start; it is asked once for the real
/// executable instead. A binary is used as it is.
pub(crate) async fn resolve_python(python: &Path) -> PathBuf {
    let found = if python.components().count() > 1 {
        Some(python.to_path_buf())
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(python))
                .find(|candidate| candidate.is_file())
        })
    };
    let Some(found) = found else {
        return python.to_path_buf(); // spawning it reports the error
    };
    let mut head = [0u8; 2];
    let is_script = std::fs::File::open(&found)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok_and(|()| &head == b"#!");
    if !is_script {
        return found;
    }
    let asked = Command::new(&found)
        .args(["-I", "-c", "import sys; print(sys.executable)"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    match asked {
        Ok(out) if out.status.success() => {
            let real = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if real.is_file() { real } else { found }
        }
        _ => found,
    }
}

/// Starts the interpreter with `socket` on fd 3 and the read end of its
/// `lifeline` on fd 4.
pub(crate) fn spawn_process(
    config: &PoolConfig,
    python: &Path,
    socket: OwnedFd,
    lifeline: OwnedFd,
    fork_server: bool,
) -> Result<Child, StartFailure> {
    let mut cmd = Command::new(python);
    cmd.arg("-I").arg("-u").arg("-c").arg(WORKER_SOURCE);
    cmd.args(config.worker_args(fork_server));
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("LANG", "C.UTF-8").env("LC_ALL", "C.UTF-8");
    for (key, value) in &config.env {
        cmd.env(key, value);
    }
    if let Some(dir) = &config.cwd {
        cmd.current_dir(dir);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let (fd, line) = (socket.as_raw_fd(), lifeline.as_raw_fd());
    // SAFETY: between fork and exec the closure calls only async-signal-safe
    // functions (fcntl, dup2) and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            // Move the socket to fd 3 and the lifeline to fd 4, both first to
            // high fds, so that neither dup2 overwrites the other's source
            // and none sees equal numbers (which would leave close-on-exec set).
            let high_socket = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 64);
            let high_line = libc::fcntl(line, libc::F_DUPFD_CLOEXEC, 64);
            if high_socket < 0
                || high_line < 0
                || libc::dup2(high_socket, PROTOCOL_FD) < 0
                || libc::dup2(high_line, LIFELINE_FD) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| StartFailure::Spawn {
        python: config.python.display().to_string(),
        message: e.to_string(),
    });
    // The child has its copies; EOF must come when the child ends.
    drop((socket, lifeline));
    child
}

/// Forwards a process's stdout and stderr to the log (keeping stderr's last
/// lines in `tail`); the handle ends when stderr is drained.
pub(crate) fn forward_output(
    stdout: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    stderr: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    worker: u64,
    pid: u32,
    tail: Option<Arc<Mutex<VecDeque<String>>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(forward_lines(stdout, worker, pid, "stdout", None));
    tokio::spawn(forward_lines(stderr, worker, pid, "stderr", tail))
}

/// Sends each line of a worker's stdout or stderr to the log, keeping the
/// last lines of stderr for crash reports.
async fn forward_lines(
    stream: impl tokio::io::AsyncRead + Unpin,
    worker: u64,
    pid: u32,
    name: &'static str,
    tail: Option<Arc<Mutex<VecDeque<String>>>>,
) {
    // Bytes, decoded lossily: output that is not UTF-8 must still be drained,
    // or the worker would block on a full pipe.
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']);
                tracing::info!(target: "snakepen::worker", worker, pid, stream = name, "{line}");
                if let Some(tail) = &tail {
                    let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
                    if tail.len() == STDERR_TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line.to_string());
                }
            }
            Err(e) => {
                tracing::warn!(target: "snakepen::worker", worker, pid, stream = name, error = %e, "cannot read the worker's output");
                break;
            }
        }
    }
}

/// `exit status 1`, `signal 9 (SIGKILL)`.
pub(crate) fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(signal) => format!("signal {signal} ({})", signal_name(signal)),
        None => "unknown".into(),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGINT => "SIGINT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGPIPE => "SIGPIPE",
        _ => "signal",
    }
}
