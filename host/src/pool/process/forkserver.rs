//! The fork server: one Python process that imports the module once,
//! freezes its heap (`gc.freeze()`) and forks ready workers on request, so
//! that a new worker costs a fork instead of an interpreter start plus the
//! imports. On by default (`PoolSettings::fork_server`).
//!
//! The host passes each new worker's protocol pipes, stdout, stderr and lifeline
//! over the server's control socket (SCM_RIGHTS, see `control`): the
//! worker's life is tied to the host's by its own lifeline, not to the
//! server's. A forked worker leads its own process group and is served
//! exactly like a started one. The server keeps an ended worker as a zombie
//! (so its pid and group cannot be reused) until the host has killed its
//! group and says `reap`. The server itself is started by the pool's reaper,
//! so a worker whose server died becomes the reaper's child. When the server
//! dies, the pool keeps its live workers, starts new ones the usual way
//! meanwhile, and restarts the server.

use super::control::{self, Control};
use super::group::kill_group;
use super::lifeline::Lifeline;
use super::reaper::Launcher;
use super::spawn;
use crate::pool::config::{PoolConfig, PoolSettings};
use crate::pool::transport::Exit;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::BufReader;
use tokio::net::unix::OwnedReadHalf;
use tokio::sync::{oneshot, watch};

/// Where a pool's fork server is.
pub(super) enum ForkState {
    Starting,
    Ready(Arc<ForkServer>),
    Down,
}

/// A running fork server.
pub(crate) struct ForkServer {
    control: Arc<Control>,
}

impl ForkServer {
    /// Asks for a worker on `fds` (the read end of its request pipe, the
    /// write end of its reply pipe, its stdout, its stderr and the read end
    /// of its lifeline); its pid.
    pub(crate) async fn fork(
        &self,
        fds: [OwnedFd; 5],
        within: Duration,
    ) -> Result<u32, control::RequestError> {
        let request = serde_json::json!({ "kind": "fork" });
        // The server has its copies once sent; ours close on return.
        self.control.start(request, &fds, within).await
    }

    /// The server's control channel: it reports its workers' exits and
    /// reaps them when told.
    pub(crate) fn control(&self) -> Arc<Control> {
        Arc::clone(&self.control)
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.control.pid()
    }
}

/// Keeps a fork server running for the pool until it closes: starts it,
/// publishes it to the slots once it is ready, and starts it again (with
/// backoff) when it dies. Workers of a dead server go on serving.
pub(super) async fn supervise(
    config: &PoolConfig,
    launcher: &Launcher,
    state: &watch::Sender<ForkState>,
    renew: &tokio::sync::Notify,
    mut closed: watch::Receiver<bool>,
    settings: watch::Receiver<PoolSettings>,
) {
    let is_closed = |closed: &watch::Receiver<bool>| *closed.borrow();
    let mut failures: u32 = 0;
    while !is_closed(&closed) {
        let settings = settings.borrow().clone();
        let started = tokio::select! {
            started = start(config, launcher, &settings) => started,
            _ = closed.changed() => break,
        };
        match started {
            Ok((server, exit, reader, lifeline, reaper)) => {
                failures = 0;
                let pid = server.pid();
                tracing::debug!(pid, "fork server ready");
                state.send_replace(ForkState::Ready(Arc::clone(&server)));
                let listen = server.control.listen(reader, settings.max_frame_bytes);
                let renewing = tokio::select! {
                    () = listen => false,
                    _ = closed.changed() => false,
                    () = renew.notified() => true,
                };
                state.send_replace(if renewing {
                    ForkState::Starting
                } else {
                    ForkState::Down
                });
                server.control.fail_waiters();
                drop(lifeline);
                kill_group(pid, libc::SIGKILL);
                let status = tokio::time::timeout(Duration::from_secs(5), exit).await;
                reaper.reap(pid).await;
                if renewing {
                    tracing::info!(pid, "the module was reloaded: replacing the fork server");
                    continue;
                }
                if !is_closed(&closed) {
                    tracing::warn!(pid, status = ?status, "the fork server ended; restarting it (workers are started the usual way meanwhile)");
                }
            }
            Err(message) => {
                state.send_replace(ForkState::Down);
                failures += 1;
                tracing::warn!(failures, "the fork server could not start: {message}");
            }
        }
        if is_closed(&closed) {
            break;
        }
        let factor = 1u32 << failures.min(7);
        let delay = (settings.restart_backoff * factor).min(settings.restart_backoff_max);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = closed.changed() => break,
        }
    }
    state.send_replace(ForkState::Down);
}

/// A started fork server: the server, its exit status to come, its control
/// socket's read half, its lifeline, and the reaper that is its parent.
type Started = (
    Arc<ForkServer>,
    oneshot::Receiver<Exit>,
    BufReader<OwnedReadHalf>,
    Lifeline,
    Arc<Control>,
);

async fn start(
    config: &PoolConfig,
    launcher: &Launcher,
    settings: &PoolSettings,
) -> Result<Started, String> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(|e| e.to_string())?;
    let (lifeline, line) = Lifeline::new().map_err(|e| e.to_string())?;
    let (pid, reaper, stdout, stderr) = spawn::spawn_process(
        config,
        launcher,
        settings,
        spawn::Protocol::Socket(OwnedFd::from(theirs)),
        line,
        true,
    )
    .await
    .map_err(|e| e.describe(&config.module))?;
    let exit = reaper.exit_of(pid);
    super::output::forward(stdout, stderr, 0, pid, None);
    let failed = |why: String| {
        kill_group(pid, libc::SIGKILL);
        let reaper = Arc::clone(&reaper);
        tokio::spawn(async move { reaper.reap(pid).await });
        why
    };
    let (mut reader, writer) = control::split(ours).map_err(|e| failed(e.to_string()))?;
    let hello = control::handshake(
        &mut reader,
        settings.start_timeout,
        settings.max_frame_bytes,
    )
    .await
    .map_err(|e| {
        failed(match e {
            control::HandshakeError::Timeout => "no handshake in time".into(),
            control::HandshakeError::Failed(why) => why,
        })
    })?;
    match serde_json::from_slice::<super::protocol::Handshake>(&hello) {
        Ok(super::protocol::Handshake::Ready(_)) => {}
        Ok(super::protocol::Handshake::Failed { .. }) => {
            return Err(failed(
                "the module does not import (the workers report why)".into(),
            ));
        }
        Err(e) => return Err(failed(format!("its handshake is not valid: {e}"))),
    }
    let server = Arc::new(ForkServer {
        control: Arc::new(Control::new(pid, writer)),
    });
    Ok((server, exit, reader, lifeline, reaper))
}

/// Asks `server` for a worker on its protocol pipes and `lifeline` (the
/// read end), with pipes for its output.
pub(super) async fn fork_from(
    server: &ForkServer,
    (requests, replies, lifeline): (OwnedFd, OwnedFd, OwnedFd),
    settings: &PoolSettings,
) -> Result<
    (
        u32,
        tokio::net::unix::pipe::Receiver,
        tokio::net::unix::pipe::Receiver,
    ),
    super::control::RequestError,
> {
    let (stdout_read, stdout_write) = spawn::pipe()?;
    let (stderr_read, stderr_write) = spawn::pipe()?;
    let pid = server
        .fork(
            [requests, replies, stdout_write, stderr_write, lifeline],
            settings.start_timeout,
        )
        .await?;
    let stdout = tokio::net::unix::pipe::Receiver::from_owned_fd(stdout_read)?;
    let stderr = tokio::net::unix::pipe::Receiver::from_owned_fd(stderr_read)?;
    Ok((pid, stdout, stderr))
}
