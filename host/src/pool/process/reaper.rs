//! The pool's reaper and how the pool starts processes through it.
//!
//! Every process a pool starts (its fork server, its started workers) is
//! a child of one small Python process of the pool's own, the reaper
//! (`host/python/snakepen_reaper.py`), and so is every process they start
//! whose parent dies (the reaper is a child subreaper). The reaper holds a
//! lifeline of its own that, unlike a worker's, does not kill it: when the
//! host's end closes (the host exits however it exits, or the pool is shut
//! down or dropped) the reaper kills every descendant, a handler's
//! double-forked daemon included, and exits last. The invariant: while a
//! [`Launcher`] is open its reaper runs or is started again on the next
//! spawn; once closed, nothing the pool started outlives the reaper.
//!
//! The reaper is started once per pool, by the first spawn (all slots start
//! at once, so the first ones wait for it together), with `-I -S` so that
//! it starts fast. It starts the interpreter the user named, as named: a
//! wrapper script's environment, limits and sandbox apply to every worker.

use super::control::{self, Control, HandshakeError, RequestError};
use super::lifeline::{LIFELINE_FD, Lifeline};
use super::output::{self, Tail};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::process::Command;
use tokio::task::JoinHandle;

/// The reaper program, embedded like the worker's.
const REAPER_SOURCE: &str = include_str!("../../../python/snakepen_reaper.py");
/// The descriptor the reaper finds its control socket on.
const CONTROL_FD: i32 = 3;

/// One process for the reaper to start.
pub(crate) struct Program {
    /// The program (looked up on the `PATH` of `env` when it is a bare name) and its arguments.
    pub argv: Vec<String>,
    /// Its whole environment.
    pub env: Vec<(String, String)>,
    /// Its working directory (the reaper's when `None`).
    pub cwd: Option<PathBuf>,
}

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LaunchError {
    /// The reaper itself could not be run.
    #[error("{0}")]
    Run(std::io::Error),
    /// The reaper ran but did not become ready.
    #[error("the pool's reaper did not start ({why}){}", tail_lines(.stderr_tail))]
    Reaper { why: String, stderr_tail: String },
    /// No handshake from the reaper within the start timeout.
    #[error("the pool's reaper did not start within {0:?}")]
    Timeout(Duration),
    /// The reaper could not start the process.
    #[error("{0}")]
    Request(#[from] RequestError),
    /// The pool is closed.
    #[error("the pool is shut down")]
    Closed,
}

fn tail_lines(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!(". Its last stderr lines:\n{tail}")
    }
}

impl LaunchError {
    /// The OS error number behind the failure, if it has one.
    pub(crate) fn os_error(&self) -> Option<i32> {
        match self {
            LaunchError::Run(e) => e.raw_os_error(),
            LaunchError::Request(e) => e.os_error(),
            _ => None,
        }
    }
}

/// How a pool starts its processes: the interpreter as named, under the
/// pool's reaper.
pub(crate) struct Launcher {
    python: PathBuf,
    reaper: Mutex<Reaper>,
    /// Held while a reaper starts, so that only one does.
    starting: tokio::sync::Mutex<()>,
}

enum Reaper {
    None,
    Running(Running),
    Closed,
}

struct Running {
    control: Arc<Control>,
    /// Dropping it tells the reaper to kill everything and exit.
    lifeline: Lifeline,
    /// Ends when the reaper has exited (and was reaped).
    exited: JoinHandle<()>,
}

impl Launcher {
    pub(crate) fn new(python: PathBuf) -> Launcher {
        Launcher {
            python,
            reaper: Mutex::new(Reaper::None),
            starting: tokio::sync::Mutex::new(()),
        }
    }

    /// The interpreter, as the user named it.
    pub(crate) fn python(&self) -> &Path {
        &self.python
    }

    /// Starts `program` on `fds` (each with the number it gets in the
    /// program: its protocol, stdout, stderr and lifeline) in a process group of its own: its
    /// pid, and the reaper that is its parent (which reports its exit and
    /// reaps it when told).
    pub(crate) async fn spawn(
        &self,
        program: &Program,
        fds: Vec<(OwnedFd, RawFd)>,
        start_timeout: Duration,
        max_frame_bytes: usize,
    ) -> Result<(u32, Arc<Control>), LaunchError> {
        let control = self.reaper(program, start_timeout, max_frame_bytes).await?;
        let request = serde_json::json!({
            "kind": "spawn",
            "argv": program.argv,
            "env": program.env.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect::<serde_json::Map<_, _>>(),
            "cwd": program.cwd.as_ref().map(|dir| dir.to_string_lossy()),
            "targets": fds.iter().map(|(_, target)| *target).collect::<Vec<_>>(),
        });
        let fds: Vec<OwnedFd> = fds.into_iter().map(|(fd, _)| fd).collect();
        let pid = control.start(request, &fds, start_timeout).await?;
        Ok((pid, control))
    }

    /// Closes the reaper's lifeline: it kills every process the pool started
    /// (and whatever they started) and exits. Returns at once.
    pub(crate) fn close(&self) -> Option<JoinHandle<()>> {
        let previous = std::mem::replace(&mut *self.lock(), Reaper::Closed);
        match previous {
            Reaper::Running(running) => {
                drop(running.lifeline);
                Some(running.exited)
            }
            _ => None,
        }
    }

    /// [`Launcher::close`], then waits (up to `limit`) until the reaper is gone.
    pub(crate) async fn close_and_wait(&self, limit: Duration) {
        if let Some(exited) = self.close() {
            let _ = tokio::time::timeout(limit, exited).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Reaper> {
        self.reaper.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn running(&self) -> Result<Option<Arc<Control>>, LaunchError> {
        match &*self.lock() {
            Reaper::Running(running) if !running.control.is_gone() => {
                Ok(Some(Arc::clone(&running.control)))
            }
            Reaper::Closed => Err(LaunchError::Closed),
            _ => Ok(None),
        }
    }

    /// The running reaper, started first if there is none (or it died).
    async fn reaper(
        &self,
        program: &Program,
        start_timeout: Duration,
        max_frame_bytes: usize,
    ) -> Result<Arc<Control>, LaunchError> {
        if let Some(control) = self.running()? {
            return Ok(control);
        }
        let _starting = self.starting.lock().await;
        if let Some(control) = self.running()? {
            return Ok(control);
        }
        let running = start(&self.python, program, start_timeout, max_frame_bytes).await?;
        let control = Arc::clone(&running.control);
        let mut reaper = self.lock();
        if matches!(*reaper, Reaper::Closed) {
            return Err(LaunchError::Closed); // dropping `running` ends it
        }
        *reaper = Reaper::Running(running);
        Ok(control)
    }
}

/// Starts a reaper with `program`'s environment and working directory and
/// waits for its handshake.
async fn start(
    python: &Path,
    program: &Program,
    start_timeout: Duration,
    max_frame_bytes: usize,
) -> Result<Running, LaunchError> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(LaunchError::Run)?;
    let (lifeline, line) = Lifeline::new().map_err(LaunchError::Run)?;
    let mut cmd = Command::new(python);
    cmd.args(["-I", "-S", "-c", REAPER_SOURCE]);
    cmd.env_clear().envs(program.env.iter().cloned());
    if let Some(dir) = &program.cwd {
        cmd.current_dir(dir);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own group: a Ctrl-C meant for the host does not reach it, and
        // a wrapper that never starts Python can be killed with all it started.
        .process_group(0)
        // It must outlive whatever drops its handle, to clean up after it.
        .kill_on_drop(false);
    let (socket, line_fd) = (OwnedFd::from(theirs), line);
    let (fd, line_raw) = (socket.as_raw_fd(), line_fd.as_raw_fd());
    // SAFETY: between fork and exec the closure calls only async-signal-safe
    // functions (fcntl, dup2) and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            // Both first to high fds, so that neither dup2 overwrites the
            // other's source and none sees equal numbers (which would leave
            // close-on-exec set).
            let high_socket = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 64);
            let high_line = libc::fcntl(line_raw, libc::F_DUPFD_CLOEXEC, 64);
            if high_socket < 0
                || high_line < 0
                || libc::dup2(high_socket, CONTROL_FD) < 0
                || libc::dup2(high_line, LIFELINE_FD) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let spawned = cmd.spawn();
    // The child has its copies; EOF must come when the child ends.
    drop((socket, line_fd));
    let mut child = spawned.map_err(LaunchError::Run)?;
    let pid = child.id().unwrap_or(0);
    let tail = Arc::new(Mutex::new(Tail::default()));
    let stderr = child.stderr.take().expect("stderr is piped");
    let drained = output::forward(tokio::io::empty(), stderr, 0, pid, Some(Arc::clone(&tail)));
    let (mut reader, writer) = control::split(ours).map_err(LaunchError::Run)?;
    let hello = control::handshake(&mut reader, start_timeout, max_frame_bytes).await;
    let why = match hello {
        Ok(hello)
            if serde_json::from_slice::<serde_json::Value>(&hello)
                .is_ok_and(|hello| hello["kind"] == "ready") =>
        {
            None
        }
        Ok(hello) => Some(format!(
            "its handshake is not valid: {}",
            String::from_utf8_lossy(&hello)
        )),
        Err(HandshakeError::Timeout) => {
            super::group::kill_group(pid, libc::SIGKILL);
            tokio::spawn(async move { child.wait().await });
            return Err(LaunchError::Timeout(start_timeout));
        }
        Err(HandshakeError::Failed(why)) => Some(why),
    };
    if let Some(why) = why {
        super::group::kill_group(pid, libc::SIGKILL);
        let _ = child.wait().await;
        let _ = tokio::time::timeout(Duration::from_secs(1), drained).await;
        let stderr_tail = tail.lock().unwrap_or_else(|p| p.into_inner()).text();
        return Err(LaunchError::Reaper { why, stderr_tail });
    }
    tracing::debug!(pid, "pool reaper ready");
    let control = Arc::new(Control::new(pid, writer));
    let listening = Arc::clone(&control);
    let exited = tokio::spawn(async move {
        listening.listen(reader, max_frame_bytes).await;
        let status = child.wait().await;
        tracing::debug!(pid, ?status, "pool reaper exited");
    });
    Ok(Running {
        control,
        lifeline,
        exited,
    })
}
