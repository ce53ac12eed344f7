//! One Python worker process as the pool's connection: its handshake
//! (after `spawn` started it), its requests and replies on its pipes, how its
//! end is seen (its pidfd, or its parent's report) and how it is stopped.

use super::control::Control;
use super::forkserver::ForkServer;
use super::group::kill_group;
use super::lifeline::Lifeline;
use super::output::{self, Tail};
use super::protocol::{self, FrameError, Frames, Handshake};
use super::reaper::Launcher;
use super::spawn::{self, Started};
use crate::CallError;
use crate::pool::config::{PoolConfig, PoolSettings};
use crate::pool::transport::{
    Connection, Exit, Fatal, Incoming, RequestId, StartFailure, WorkerId, WorkerInfo,
};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// A started, handshaken worker. Only a `Worker` that passed its handshake exists.
pub(crate) struct Worker {
    id: WorkerId,
    /// The commands it reported in its handshake.
    handlers: Vec<crate::pool::Handler>,
    /// Its parent: the pool's reaper, or the fork server that forked it. It
    /// reports the exit and keeps the process a zombie until told to reap.
    parent: Arc<Control>,
    /// The exit status to come from `parent`, until it came.
    exit: Option<oneshot::Receiver<Exit>>,
    /// The exit status, once `parent` reported it.
    status: Option<Exit>,
    pid: u32,
    /// Readable once the process has ended, without reaping it: while it is
    /// a zombie its pid (and so its process group's id) cannot be reused, so
    /// the group can be killed safely after the leader's death.
    pidfd: Option<AsyncFd<OwnedFd>>,
    /// Whether its parent was told to reap it (its group id may then belong to another).
    reaped: bool,
    /// The reply pipe's read end, and what was read of it.
    reader: pipe::Receiver,
    frames: Frames,
    /// The request pipe's write end; closed to ask the worker to exit.
    writer: Option<pipe::Sender>,
    stderr_tail: Arc<Mutex<Tail>>,
    stderr_task: tokio::task::JoinHandle<()>,
    /// Declared last: dropped after everything else, it kills the process
    /// if it still runs.
    _lifeline: Lifeline,
}

impl Worker {
    /// Starts a worker (forked from `fork_server` when one is given and
    /// answers, else as a new process through the pool's reaper) and waits
    /// for its handshake.
    pub(crate) async fn start(
        config: &PoolConfig,
        launcher: &Launcher,
        settings: &PoolSettings,
        id: WorkerId,
        fork_server: Option<Arc<ForkServer>>,
    ) -> Result<Worker, StartFailure> {
        let python = launcher.python();
        let (to_worker, from_worker, protocol) = spawn::protocol_pipes().map_err(|e| {
            StartFailure::os(python, "creating the protocol pipes", e.raw_os_error(), e)
        })?;
        let (lifeline, line) = Lifeline::new().map_err(|e| {
            StartFailure::os(python, "creating the lifeline pipe", e.raw_os_error(), e)
        })?;
        let (pid, parent, stdout, stderr): Started = match (fork_server, protocol) {
            (Some(server), spawn::Protocol::Pipes { requests, replies }) => {
                // The fork server may fail to fork; then the worker is
                // started the usual way, on descriptors of its own.
                match super::forkserver::fork_from(&server, (requests, replies, line), settings)
                    .await
                {
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
            (_, protocol) => {
                spawn::spawn_process(config, launcher, settings, protocol, line, false).await?
            }
        };
        let stderr_tail = Arc::new(Mutex::new(Tail::default()));
        let stderr_task = output::forward(stdout, stderr, id, pid, Some(Arc::clone(&stderr_tail)));
        let exit = Some(parent.exit_of(pid));
        let cannot = |e: std::io::Error| {
            kill_group(pid, libc::SIGKILL);
            StartFailure::os(python, "setting up the protocol pipes", e.raw_os_error(), e)
        };
        let write = pipe::Sender::from_owned_fd(to_worker).map_err(cannot)?;
        let read = pipe::Receiver::from_owned_fd(from_worker).map_err(cannot)?;
        let mut worker = Worker {
            id,
            handlers: Vec::new(),
            parent,
            exit,
            status: None,
            pid,
            pidfd: spawn::open_pidfd(pid),
            reaped: false,
            reader: read,
            frames: Frames::new(settings.max_frame_bytes),
            writer: Some(write),
            stderr_tail,
            stderr_task,
            _lifeline: lifeline,
        };
        let handshake = tokio::time::timeout(
            settings.start_timeout,
            worker.frames.next(&mut worker.reader),
        )
        .await;
        let failure = match handshake {
            Err(_) => StartFailure::Timeout {
                after: settings.start_timeout,
            },
            Ok(Err(FrameError::Closed)) => {
                let (_, status) = worker.reap(settings.kill_grace).await;
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
                    worker.handlers = hello.handlers;
                    return Ok(worker);
                }
                Ok(Handshake::Failed { error }) => StartFailure::Import {
                    type_name: error.type_name,
                    message: error.message,
                    traceback: error.traceback,
                },
                Err(e) => StartFailure::Protocol(format!("its handshake is not valid: {e}")),
            },
        };
        worker.shut(settings.kill_grace).await;
        Err(failure)
    }

    /// Writes `frame` to the worker, unless it ends first or has not read
    /// it by `deadline` (it stopped reading its requests: it is killed).
    async fn write(
        &mut self,
        frame: &[u8],
        deadline: Instant,
        grace: Duration,
    ) -> Result<(), Fatal> {
        let (writer, pidfd, exit, status) = (
            &mut self.writer,
            &self.pidfd,
            &mut self.exit,
            &mut self.status,
        );
        let write = async {
            let writer = writer.as_mut().ok_or(FrameError::Closed)?;
            writer.write_all(frame).await.map_err(FrameError::from)
        };
        let written = tokio::time::timeout_at(deadline, async {
            tokio::select! {
                biased;
                written = write => written,
                () = leader_exit(pidfd, exit, status) => Err(FrameError::Closed),
            }
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(FrameError::Closed)) => Err(self.died(grace).await),
            Ok(Err(FrameError::Invalid(message))) => {
                Err(Fatal::Broke(self.broken(message, grace).await))
            }
            Err(_) => {
                self.kill_group(libc::SIGKILL);
                let (exit, status) = self.reap(grace).await;
                let error = CallError::WorkerCrashed {
                    pid: self.pid,
                    exit_status: format!(
                        "killed: it stopped reading its requests, and a call's deadline passed; {status}"
                    ),
                    stderr_tail: self.stderr_tail(grace).await,
                };
                Err(Fatal::Died { exit, error })
            }
        }
    }

    /// The worker ended (its pipe closed or its process exited): how, as
    /// the calls it held are told.
    async fn died(&mut self, grace: Duration) -> Fatal {
        let (exit, status) = self.reap(grace).await;
        let stderr_tail = self.stderr_tail(grace).await;
        let error = CallError::WorkerCrashed {
            pid: self.pid,
            exit_status: status,
            stderr_tail,
        };
        Fatal::Died { exit, error }
    }

    /// The worker's next message; see [`Connection::next`].
    async fn receive(&mut self, grace: Duration) -> Result<Incoming, Fatal> {
        let (frames, reader) = (&mut self.frames, &mut self.reader);
        let (pidfd, exit, status) = (&self.pidfd, &mut self.exit, &mut self.status);
        // A worker whose process ends is seen at once, even if something it
        // forked still holds its reply pipe open.
        let frame = tokio::select! {
            biased;
            frame = frames.next(reader) => frame,
            () = leader_exit(pidfd, exit, status) => Err(FrameError::Closed),
        };
        let (header, body) = match frame {
            Ok(frame) => frame,
            Err(FrameError::Closed) => return Err(self.died(grace).await),
            Err(FrameError::Invalid(message)) => {
                return Err(Fatal::Broke(self.broken(message, grace).await));
            }
        };
        match protocol::incoming(&header, body, Some(self.pid)) {
            Ok(incoming) => Ok(incoming),
            Err(message) => Err(Fatal::Broke(self.broken(message, grace).await)),
        }
    }

    /// The worker's resident memory, from `/proc` (Linux), without asking it.
    fn rss_bytes(&self) -> Option<u64> {
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.pid)).ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Some(pages * u64::try_from(page).unwrap_or(4096))
    }

    /// Waits for the process to end, kills what is left of its process
    /// group (anything it forked), and reaps it: its exit status.
    async fn exited(&mut self) -> Exit {
        leader_exit(&self.pidfd, &mut self.exit, &mut self.status).await;
        self.kill_group(libc::SIGKILL);
        self.reap_now().await
    }

    /// Its exit status from its parent, and tells the parent to reap it.
    async fn reap_now(&mut self) -> Exit {
        let status = match (self.status.take(), self.exit.take()) {
            (Some(status), _) => status,
            // The parent reports at once; the bound only guards against a
            // parent that hangs.
            (None, Some(exit)) => match tokio::time::timeout(Duration::from_secs(5), exit).await {
                Ok(Ok(status)) => status,
                Ok(Err(_)) => Exit::Lost("its parent process is gone".into()),
                Err(_) => Exit::Lost("its parent process did not say".into()),
            },
            (None, None) => Exit::Lost("no one reported it".into()),
        };
        if !self.reaped {
            self.reaped = true;
            self.parent.reap(self.pid).await;
        }
        status
    }

    /// Stops the worker: close its request pipe (it exits by itself when idle),
    /// then SIGTERM, then SIGKILL of its whole process group.
    async fn shut(&mut self, kill_grace: Duration) {
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
    fn kill_group(&self, signal: i32) {
        if !self.reaped {
            kill_group(self.pid, signal);
        }
    }

    async fn broken(&mut self, message: String, kill_grace: Duration) -> CallError {
        self.kill_group(libc::SIGKILL);
        let (_, status) = self.reap(kill_grace).await;
        CallError::WorkerCrashed {
            pid: self.pid,
            exit_status: format!("killed for breaking the protocol ({message}); {status}"),
            stderr_tail: self.stderr_tail(kill_grace).await,
        }
    }

    /// Waits for the process to end, killing it if it does not end in
    /// `grace`, then kills its group and reaps it: its exit status.
    /// Its exit, and the exit as the caller is told it.
    async fn reap(&mut self, grace: Duration) -> (Exit, String) {
        let (pidfd, exit, status) = (&self.pidfd, &mut self.exit, &mut self.status);
        match tokio::time::timeout(grace, leader_exit(pidfd, exit, status)).await {
            Ok(()) => {
                let exit = self.exited().await;
                let told = exit.to_string();
                (exit, told)
            }
            Err(_) => {
                self.kill_group(libc::SIGKILL);
                let exit = self.exited().await;
                let told = format!("{exit} (killed: it closed its reply pipe but kept running)");
                (exit, told)
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

impl Connection for Worker {
    fn info(&self) -> WorkerInfo {
        WorkerInfo::new(self.id, Some(self.pid))
    }

    fn handlers(&self) -> &[crate::pool::Handler] {
        &self.handlers
    }

    async fn send(
        &mut self,
        id: RequestId,
        command: &str,
        payload: &[u8],
        credit: Option<u32>,
        deadline: Instant,
        grace: Duration,
    ) -> Result<(), Fatal> {
        let frame = protocol::encode_request(id, command, payload, credit);
        self.write(&frame, deadline, grace).await
    }

    async fn credit(
        &mut self,
        id: RequestId,
        n: u32,
        deadline: Instant,
        grace: Duration,
    ) -> Result<(), Fatal> {
        self.write(&protocol::encode_credit(id, n), deadline, grace)
            .await
    }

    async fn cancel(
        &mut self,
        id: RequestId,
        deadline: Instant,
        grace: Duration,
    ) -> Result<(), Fatal> {
        self.write(&protocol::encode_cancel(id), deadline, grace)
            .await
    }

    async fn next(&mut self, grace: Duration) -> Result<Incoming, Fatal> {
        self.receive(grace).await
    }

    async fn kill(&mut self, grace: Duration) -> Exit {
        self.kill_group(libc::SIGKILL);
        self.reap(grace).await.0
    }

    async fn stop(&mut self, grace: Duration) {
        self.shut(grace).await
    }

    fn memory_bytes(&self) -> Option<u64> {
        self.rss_bytes()
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
    exit: &mut Option<oneshot::Receiver<Exit>>,
    status: &mut Option<Exit>,
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
                Some(reported.unwrap_or_else(|_| Exit::Lost("its parent process is gone".into())));
        }
        None => std::future::pending().await,
    }
}
