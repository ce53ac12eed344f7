//! The fork server: one Python process that imports the module once,
//! freezes its heap (`gc.freeze()`) and forks ready workers on request, so
//! that a new worker costs a fork instead of an interpreter start plus the
//! imports. On by default (`PoolSettings::fork_server`).
//!
//! The host passes each new worker's socket, stdout, stderr and lifeline
//! over the server's control socket (SCM_RIGHTS): the worker's life is tied
//! to the host's by its own lifeline, not to the server's. A forked worker leads its own
//! process group and is served exactly like a started one. The server
//! keeps an ended worker as a zombie (so its pid and group cannot be
//! reused) until the host has killed its group and says `reap`. When the
//! server dies, the pool keeps its live workers, starts new ones the usual
//! way meanwhile, and restarts the server.

use super::lifeline::Lifeline;
use super::protocol::{self, FrameError};
use super::state::{Core, ForkState};
use super::worker;
use serde::Deserialize;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader, Interest};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::oneshot;

/// A running fork server.
pub(crate) struct ForkServer {
    pid: u32,
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<u32>>>,
    exits: Mutex<HashMap<u32, Exit>>,
    /// Set once the server is gone: nothing more will be heard from it.
    gone: std::sync::atomic::AtomicBool,
}

enum Exit {
    Waiting(oneshot::Sender<String>),
    Reported(String),
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Message {
    Forked { id: u64, pid: u32 },
    Exited { pid: u32, status: String },
}

impl ForkServer {
    /// Asks for a worker on `fds` (its socket, stdout, stderr and the read
    /// end of its lifeline); its pid.
    pub(crate) async fn fork(&self, fds: [OwnedFd; 4], within: Duration) -> std::io::Result<u32> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        let frame = json_frame(&serde_json::json!({ "kind": "fork", "id": id }));
        {
            let mut writer = self.writer.lock().await;
            let raw = fds.each_ref().map(|fd| fd.as_raw_fd());
            send_with_fds(&mut writer, &frame, &raw).await?;
        }
        // The server has its copies now; ours close here.
        drop(fds);
        match tokio::time::timeout(within, rx).await {
            Ok(Ok(pid)) => Ok(pid),
            Ok(Err(_)) => Err(std::io::Error::other(
                "the fork server ended before it forked",
            )),
            Err(_) => {
                lock(&self.pending).remove(&id);
                Err(std::io::Error::other(
                    "the fork server did not fork in time",
                ))
            }
        }
    }

    /// Resolves with the exit status of worker `pid` once it ended, or
    /// fails if the server went away first.
    pub(crate) fn exit_of(&self, pid: u32) -> oneshot::Receiver<String> {
        let (tx, rx) = oneshot::channel();
        let mut exits = lock(&self.exits);
        if self.gone.load(Ordering::Acquire) {
            return rx; // its sender is dropped: the status is unknown
        }
        match exits.remove(&pid) {
            Some(Exit::Reported(status)) => {
                let _ = tx.send(status);
            }
            _ => {
                exits.insert(pid, Exit::Waiting(tx));
            }
        }
        rx
    }

    /// Lets the server reap worker `pid`, whose group the host has killed.
    pub(crate) async fn reap(&self, pid: u32) {
        let frame = json_frame(&serde_json::json!({ "kind": "reap", "pid": pid }));
        let mut writer = self.writer.lock().await;
        let _ = writer.write_all(&frame).await;
    }

    fn heard(&self, message: Message) {
        match message {
            Message::Forked { id, pid } => {
                if let Some(tx) = lock(&self.pending).remove(&id) {
                    let _ = tx.send(pid);
                }
            }
            Message::Exited { pid, status } => {
                let mut exits = lock(&self.exits);
                match exits.remove(&pid) {
                    Some(Exit::Waiting(tx)) => {
                        let _ = tx.send(status);
                    }
                    _ => {
                        exits.insert(pid, Exit::Reported(status));
                    }
                }
            }
        }
    }

    /// Whoever waits for a fork or an exit status hears that none will come.
    fn fail_waiters(&self) {
        let mut exits = lock(&self.exits);
        self.gone.store(true, Ordering::Release);
        exits.clear();
        lock(&self.pending).clear();
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn json_frame(header: &serde_json::Value) -> Vec<u8> {
    let header = serde_json::to_vec(header).expect("a JSON value serializes");
    let mut frame = Vec::with_capacity(8 + header.len());
    frame.extend_from_slice(&(header.len() as u32).to_be_bytes());
    frame.extend_from_slice(&0u32.to_be_bytes());
    frame.extend_from_slice(&header);
    frame
}

/// Writes `data` with `fds` attached to its first byte (SCM_RIGHTS).
async fn send_with_fds(
    writer: &mut OwnedWriteHalf,
    data: &[u8],
    fds: &[RawFd],
) -> std::io::Result<()> {
    let stream: &UnixStream = writer.as_ref();
    let sent = loop {
        stream.writable().await?;
        match stream.try_io(Interest::WRITABLE, || {
            sendmsg(stream.as_raw_fd(), data, fds)
        }) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    };
    writer.write_all(&data[sent..]).await
}

fn sendmsg(socket: RawFd, data: &[u8], fds: &[RawFd]) -> std::io::Result<usize> {
    let fd_bytes = std::mem::size_of_val(fds) as u32;
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes) } as usize;
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space as _;
    // SAFETY: the control buffer is CMSG_SPACE(fd_bytes) long, so the first
    // header and its data fit; the descriptors are copied into it.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&msg);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(fd_bytes) as _;
        std::ptr::copy_nonoverlapping(
            fds.as_ptr() as *const u8,
            libc::CMSG_DATA(header),
            fd_bytes as usize,
        );
    }
    // SAFETY: msg points at live buffers for the duration of the call.
    let sent = unsafe { libc::sendmsg(socket, &msg, libc::MSG_NOSIGNAL) };
    if sent < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
}

/// Keeps a fork server running for the pool until it closes: starts it,
/// publishes it to the slots once it is ready, and starts it again (with
/// backoff) when it dies. Workers of a dead server go on serving.
pub(crate) async fn supervise(core: Arc<Core>) {
    let mut closed = core.closed_signal();
    let mut failures: u32 = 0;
    while !core.is_closed() {
        let settings = core.settings();
        let python = core.python().await.to_path_buf();
        let started = tokio::select! {
            started = start(&core, &python, &settings) => started,
            _ = closed.changed() => break,
        };
        match started {
            Ok((server, mut child, reader, lifeline)) => {
                failures = 0;
                tracing::debug!(pid = server.pid, "fork server ready");
                core.set_fork_server(ForkState::Ready(Arc::clone(&server)));
                let listen = listen(&server, reader, settings.max_frame_bytes);
                tokio::select! {
                    () = listen => {}
                    _ = closed.changed() => {}
                }
                core.set_fork_server(ForkState::Down);
                server.fail_waiters();
                drop(lifeline);
                worker::kill_group(server.pid, libc::SIGKILL);
                let status = child.wait().await.map(worker::describe_status);
                if !core.is_closed() {
                    tracing::warn!(pid = server.pid, status = ?status, "the fork server ended; restarting it (workers are started the usual way meanwhile)");
                }
            }
            Err(message) => {
                core.set_fork_server(ForkState::Down);
                failures += 1;
                tracing::warn!(failures, "the fork server could not start: {message}");
            }
        }
        if core.is_closed() {
            break;
        }
        let factor = 1u32 << failures.min(7);
        let delay = (settings.restart_backoff * factor).min(settings.restart_backoff_max);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = closed.changed() => break,
        }
    }
    core.set_fork_server(ForkState::Down);
}

async fn start(
    core: &Core,
    python: &std::path::Path,
    settings: &super::PoolSettings,
) -> Result<
    (
        Arc<ForkServer>,
        tokio::process::Child,
        BufReader<tokio::net::unix::OwnedReadHalf>,
        Lifeline,
    ),
    String,
> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(|e| e.to_string())?;
    let (lifeline, line) = Lifeline::new().map_err(|e| e.to_string())?;
    let mut child = worker::spawn_process(&core.config, python, OwnedFd::from(theirs), line, true)
        .map_err(|e| e.describe(&core.config.module))?;
    let pid = child.id().unwrap_or(0);
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    worker::forward_output(stdout, stderr, 0, pid, None);
    ours.set_nonblocking(true).map_err(|e| e.to_string())?;
    let (read, write) = UnixStream::from_std(ours)
        .map_err(|e| e.to_string())?
        .into_split();
    let mut reader = BufReader::new(read);
    let hello = tokio::time::timeout(
        settings.start_timeout,
        protocol::read_frame(&mut reader, settings.max_frame_bytes),
    )
    .await;
    let failed = |why: String| {
        worker::kill_group(pid, libc::SIGKILL);
        why
    };
    let (header, _) = match hello {
        Err(_) => return Err(failed("no handshake in time".into())),
        Ok(Err(FrameError::Closed)) => return Err(failed("it exited before its handshake".into())),
        Ok(Err(FrameError::Invalid(m))) => return Err(failed(m)),
        Ok(Ok(frame)) => frame,
    };
    match serde_json::from_slice::<protocol::Handshake>(&header) {
        Ok(protocol::Handshake::Ready(_)) => {}
        Ok(protocol::Handshake::Failed { .. }) => {
            return Err(failed(
                "the module does not import (the workers report why)".into(),
            ));
        }
        Err(e) => return Err(failed(format!("its handshake is not valid: {e}"))),
    }
    let server = Arc::new(ForkServer {
        pid,
        writer: tokio::sync::Mutex::new(write),
        next_id: AtomicU64::new(1),
        pending: Mutex::new(HashMap::new()),
        exits: Mutex::new(HashMap::new()),
        gone: std::sync::atomic::AtomicBool::new(false),
    });
    Ok((server, child, reader, lifeline))
}

/// Reads the server's messages until it goes away; then fails whoever waits.
async fn listen(
    server: &ForkServer,
    mut reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    max_frame_bytes: usize,
) {
    while let Ok((header, _)) = protocol::read_frame(&mut reader, max_frame_bytes).await {
        match serde_json::from_slice::<Message>(&header) {
            Ok(message) => server.heard(message),
            Err(e) => {
                tracing::warn!(
                    pid = server.pid,
                    "the fork server sent a message that is not valid: {e}"
                );
                break;
            }
        }
    }
    server.fail_waiters();
}
