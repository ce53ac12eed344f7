//! How a process of the pool is started: the worker program run by the
//! interpreter through the pool's reaper (as a worker or as the fork
//! server), with its protocol on fd 3 (and 5), its lifeline's read end on
//! fd 4 and pipes for its output.

use super::group::kill_group;
use super::lifeline;
use super::reaper::{LaunchError, Launcher, Program};
use crate::pool::config::{PoolConfig, PoolSettings, descriptor_limit};
use crate::pool::transport::StartFailure;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use tokio::io::unix::AsyncFd;

/// The worker program, embedded so that an installed `snakepen` needs no files beside it.
pub(crate) const WORKER_SOURCE: &str = include_str!("../../../python/snakepen_worker.py");

/// A started process: its pid, its parent (which reports its exit), and
/// its output pipes.
pub(super) type Started = (
    u32,
    Arc<super::control::Control>,
    tokio::net::unix::pipe::Receiver,
    tokio::net::unix::pipe::Receiver,
);

/// How the failures of starting a process become a [`StartFailure`].
impl StartFailure {
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

    pub(crate) fn launch(
        python: &std::path::Path,
        during: &str,
        error: LaunchError,
    ) -> StartFailure {
        match error {
            LaunchError::Timeout(after) => StartFailure::Timeout { after },
            LaunchError::Reaper { why, stderr_tail } => StartFailure::Exited {
                status: format!("the pool's reaper: {why}"),
                stderr_tail,
            },
            other => StartFailure::os(python, during, other.os_error(), other),
        }
    }
}

/// What a started program finds on its descriptors besides its output
/// and its lifeline.
pub(crate) enum Protocol {
    /// The fork server's control socket on fd 3 (descriptors come over it).
    Socket(OwnedFd),
    /// A worker's two pipes: it reads requests from fd 3 and writes
    /// replies to fd 5. Pipes rather than a socket pair: reading from a
    /// socket pair wakes whatever waits on the writer's socket (a worker
    /// blocked reading its next request, the host's poller), a wake-up
    /// for nothing on every call; a pipe wakes its writer only when it
    /// was full.
    Pipes { requests: OwnedFd, replies: OwnedFd },
}

/// Where a worker reads requests.
pub(crate) const REQUESTS_FD: RawFd = 3;
/// Where a worker writes replies.
pub(crate) const REPLIES_FD: RawFd = 5;

impl Protocol {
    /// The descriptors with the numbers they get in the program.
    pub(crate) fn into_fds(self) -> Vec<(OwnedFd, RawFd)> {
        match self {
            Protocol::Socket(socket) => vec![(socket, REQUESTS_FD)],
            Protocol::Pipes { requests, replies } => {
                vec![(requests, REQUESTS_FD), (replies, REPLIES_FD)]
            }
        }
    }
}

/// A worker's protocol pipes: the host's ends (the request pipe's write
/// end, the reply pipe's read end, both non-blocking) and the worker's.
pub(crate) fn protocol_pipes() -> std::io::Result<(OwnedFd, OwnedFd, Protocol)> {
    let (requests, to_worker) = lifeline::pipe()?;
    let (from_worker, replies) = lifeline::pipe()?;
    for fd in [&to_worker, &from_worker] {
        lifeline::set_nonblocking(fd)?;
        // A large payload crosses in fewer wake-ups with more room than a
        // pipe's default 64 KiB; refused (a user past their pipe quota),
        // the default still works.
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES) };
    }
    Ok((
        to_worker,
        from_worker,
        Protocol::Pipes { requests, replies },
    ))
}

/// The room asked for in each protocol pipe.
const PIPE_BYTES: libc::c_int = 256 << 10;

/// A pipe for a worker's output: (read end, non-blocking; write end).
pub(crate) fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = lifeline::pipe()?;
    lifeline::set_nonblocking(&read)?;
    Ok((read, write))
}

/// A pidfd for `pid` (Linux 5.3 and later), registered with the runtime.
pub(super) fn open_pidfd(pid: u32) -> Option<AsyncFd<OwnedFd>> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the descriptor was just created and is owned by nobody else;
    // the AsyncFd owns it from here and nothing replaces or closes it.
    unsafe { AsyncFd::register(OwnedFd::from_raw_fd(fd as i32)).ok() }
}

/// Starts the worker program (the fork server when `fork_server`) through
/// the pool's reaper, with its `protocol` on fd 3 (and 5), the read end of
/// its `lifeline` on fd 4, and pipes for its output: its pid, its parent (the reaper) and
/// the read ends of its stdout and stderr. The interpreter runs as the user
/// named it (a wrapper script runs too, and applies).
pub(crate) async fn spawn_process(
    config: &PoolConfig,
    launcher: &Launcher,
    settings: &PoolSettings,
    protocol: Protocol,
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
    argv.extend(worker_args(config, fork_server));
    let program = Program {
        argv,
        env: worker_env(config),
        cwd: config.cwd.clone(),
    };
    let failed =
        |during: &str, e: std::io::Error| StartFailure::os(python, during, e.raw_os_error(), e);
    let (stdout_read, stdout_write) = pipe().map_err(|e| failed("creating a stdout pipe", e))?;
    let (stderr_read, stderr_write) = pipe().map_err(|e| failed("creating a stderr pipe", e))?;
    let mut fds = protocol.into_fds();
    fds.extend([
        (stdout_write, 1),
        (stderr_write, 2),
        (lifeline, lifeline::LIFELINE_FD),
    ]);
    let (pid, reaper) = launcher
        .spawn(
            &program,
            fds,
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

/// The worker program's whole environment for a pool of `config`: the
/// host's PATH, a UTF-8 locale, and the pool's own variables over them.
pub(crate) fn worker_env(config: &PoolConfig) -> Vec<(String, String)> {
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
    env
}

/// The worker program's arguments for a pool of `config` (the fork
/// server's with `fork_server`).
pub(crate) fn worker_args(config: &PoolConfig, fork_server: bool) -> Vec<String> {
    let mut args = vec!["--module".to_string(), config.module.clone()];
    if fork_server {
        args.push("--fork-server".into());
    }
    for module in &config.preload {
        args.extend(["--preload".into(), module.clone()]);
    }
    for dir in &config.python_path {
        args.extend(["--path".into(), dir.to_string_lossy().into_owned()]);
    }
    for name in &config.expose {
        args.extend(["--expose".into(), name.clone()]);
    }
    args.extend([
        "--max-reply-bytes".into(),
        config.settings.max_frame_bytes.to_string(),
    ]);
    if config.max_concurrency > 1 {
        args.extend([
            "--max-concurrency".into(),
            config.max_concurrency.to_string(),
        ]);
    }
    args
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
            "creating the protocol pipes",
            error.raw_os_error(),
            error,
        );
        let limit = descriptor_limit().expect("this process has a descriptor limit");
        let message = failure.describe("handlers.py");
        assert!(
            message.contains("out of file descriptors")
                && message.contains("creating the protocol pipes")
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
