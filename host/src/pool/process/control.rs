//! The control channel to a helper process of the pool (its reaper, its
//! fork server): requests that carry descriptors (SCM_RIGHTS) and are
//! answered with the pid of the process the helper started, and the exits
//! of those processes. The helper keeps an ended process as a zombie (so
//! that its pid and process group cannot be reused) until the host has
//! killed its group and says `reap`; nothing else here ever reaps.

use super::protocol::{self, FrameError};
use crate::pool::transport::Exit;
use serde::Deserialize;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader, Interest};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;

/// Why a helper did not start a process.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    /// The request could not be sent.
    #[error("{0}")]
    Send(#[from] std::io::Error),
    /// The helper tried and failed: `errno` is the OS error it met.
    #[error("{message}")]
    Refused { errno: i32, message: String },
    /// The helper went away before it answered.
    #[error("it ended before it answered")]
    Gone,
    /// No answer within the start timeout.
    #[error("it did not answer within {0:?}")]
    Timeout(Duration),
}

impl RequestError {
    /// The OS error number behind the failure, if it has one.
    pub(crate) fn os_error(&self) -> Option<i32> {
        match self {
            RequestError::Send(e) => e.raw_os_error(),
            RequestError::Refused { errno, .. } => Some(*errno),
            RequestError::Gone | RequestError::Timeout(_) => None,
        }
    }
}

/// The host's end of one helper's control socket.
pub(crate) struct Control {
    pid: u32,
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<u32, RequestError>>>>,
    exits: Mutex<HashMap<u32, ExitNote>>,
    /// Set once the helper is gone: nothing more will be heard from it.
    gone: AtomicBool,
}

/// A process's exit: waited for, or reported before anyone asked.
enum ExitNote {
    Waiting(oneshot::Sender<Exit>),
    Reported(Exit),
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Message {
    /// The fork server says `forked`, the reaper `spawned`.
    #[serde(rename = "forked", alias = "spawned")]
    Started { id: u64, pid: u32 },
    Failed {
        id: u64,
        errno: i32,
        message: String,
    },
    /// `code` when it exited, `signal` when a signal ended it; neither
    /// when the helper could not tell.
    Exited {
        pid: u32,
        #[serde(default)]
        code: Option<i32>,
        #[serde(default)]
        signal: Option<i32>,
    },
}

impl Control {
    /// The channel to helper `pid`, whose handshake has been read.
    pub(crate) fn new(pid: u32, writer: OwnedWriteHalf) -> Control {
        Control {
            pid,
            writer: tokio::sync::Mutex::new(writer),
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            exits: Mutex::new(HashMap::new()),
            gone: AtomicBool::new(false),
        }
    }

    /// The helper's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the helper is gone.
    pub(crate) fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }

    /// Sends `request` (a JSON object; its `id` is added here) with `fds`
    /// and waits up to `within` for the pid of the process it started.
    pub(crate) async fn start(
        &self,
        mut request: serde_json::Value,
        fds: &[OwnedFd],
        within: Duration,
    ) -> Result<u32, RequestError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        request["id"] = id.into();
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        if self.is_gone() {
            lock(&self.pending).remove(&id);
            return Err(RequestError::Gone);
        }
        let frame = json_frame(&request);
        let sent = {
            let mut writer = self.writer.lock().await;
            let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
            send_with_fds(&mut writer, &frame, &raw).await
        };
        if let Err(e) = sent {
            lock(&self.pending).remove(&id);
            return Err(e.into());
        }
        match tokio::time::timeout(within, rx).await {
            Ok(Ok(started)) => started,
            Ok(Err(_)) => Err(RequestError::Gone),
            Err(_) => {
                lock(&self.pending).remove(&id);
                Err(RequestError::Timeout(within))
            }
        }
    }

    /// Resolves with the exit status of process `pid` once it ended, or
    /// fails if the helper went away first.
    pub(crate) fn exit_of(&self, pid: u32) -> oneshot::Receiver<Exit> {
        let (tx, rx) = oneshot::channel();
        let mut exits = lock(&self.exits);
        if self.is_gone() {
            return rx; // its sender is dropped: the status is unknown
        }
        match exits.remove(&pid) {
            Some(ExitNote::Reported(status)) => {
                let _ = tx.send(status);
            }
            _ => {
                exits.insert(pid, ExitNote::Waiting(tx));
            }
        }
        rx
    }

    /// Lets the helper reap process `pid`, whose group the host has killed.
    pub(crate) async fn reap(&self, pid: u32) {
        let frame = json_frame(&serde_json::json!({ "kind": "reap", "pid": pid }));
        let mut writer = self.writer.lock().await;
        let _ = writer.write_all(&frame).await;
    }

    /// Reads the helper's messages until it goes away; then fails whoever waits.
    pub(crate) async fn listen(
        &self,
        mut reader: BufReader<OwnedReadHalf>,
        max_frame_bytes: usize,
    ) {
        loop {
            let header = match protocol::read_frame(&mut reader, max_frame_bytes).await {
                Ok((header, _)) => header,
                Err(FrameError::Closed) => break,
                Err(FrameError::Invalid(message)) => {
                    tracing::warn!(
                        pid = self.pid,
                        "a pool helper broke its protocol: {message}"
                    );
                    break;
                }
            };
            match serde_json::from_slice::<Message>(&header) {
                Ok(message) => self.heard(message),
                Err(e) => {
                    tracing::warn!(
                        pid = self.pid,
                        "a pool helper sent a message that is not valid: {e}"
                    );
                    break;
                }
            }
        }
        self.fail_waiters();
    }

    fn heard(&self, message: Message) {
        let (id, started) = match message {
            Message::Started { id, pid } => (id, Ok(pid)),
            Message::Failed { id, errno, message } => {
                (id, Err(RequestError::Refused { errno, message }))
            }
            Message::Exited { pid, code, signal } => {
                let status = match (code, signal) {
                    (Some(code), _) => Exit::Code(code),
                    (None, Some(signal)) => Exit::Signal(signal),
                    (None, None) => Exit::Lost("its parent could not tell how it ended".into()),
                };
                let mut exits = lock(&self.exits);
                match exits.remove(&pid) {
                    Some(ExitNote::Waiting(tx)) => {
                        let _ = tx.send(status);
                    }
                    _ => {
                        exits.insert(pid, ExitNote::Reported(status));
                    }
                }
                return;
            }
        };
        if let Some(tx) = lock(&self.pending).remove(&id) {
            let _ = tx.send(started);
        }
    }

    /// Whoever waits for a start or an exit status hears that none will come.
    pub(crate) fn fail_waiters(&self) {
        let mut exits = lock(&self.exits);
        self.gone.store(true, Ordering::Release);
        exits.clear();
        lock(&self.pending).clear();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A frame with `header` and no body.
fn json_frame(header: &serde_json::Value) -> Vec<u8> {
    protocol::frame(
        &serde_json::to_vec(header).expect("a JSON value serializes"),
        &[],
    )
}

/// Why a helper's handshake did not come.
pub(crate) enum HandshakeError {
    Timeout,
    Failed(String),
}

/// Reads a helper's handshake within `within`: the header of its first frame.
pub(crate) async fn handshake(
    reader: &mut BufReader<OwnedReadHalf>,
    within: Duration,
    max_frame_bytes: usize,
) -> Result<Vec<u8>, HandshakeError> {
    match tokio::time::timeout(within, protocol::read_frame(reader, max_frame_bytes)).await {
        Err(_) => Err(HandshakeError::Timeout),
        Ok(Err(FrameError::Closed)) => Err(HandshakeError::Failed(
            "it exited before its handshake".into(),
        )),
        Ok(Err(FrameError::Invalid(m))) => Err(HandshakeError::Failed(m)),
        Ok(Ok((header, _))) => Ok(header),
    }
}

/// The two halves of a connected socket, from the host's end of a pair.
pub(crate) fn split(
    ours: std::os::unix::net::UnixStream,
) -> std::io::Result<(BufReader<OwnedReadHalf>, OwnedWriteHalf)> {
    ours.set_nonblocking(true)?;
    let (read, write) = UnixStream::from_std(ours)?.into_split();
    Ok((BufReader::new(read), write))
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
