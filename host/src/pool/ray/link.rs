//! The straight path of a Ray worker's frames: the host listens on the
//! address Ray knows its machine by, each worker's actor connects there and
//! says which worker it is with the token the worker's `start` carried,
//! then hands the connection to the worker program. Frames then cross one
//! TCP hop each way, as a local worker's cross its pipes, instead of two
//! Ray calls and two relays.
//!
//! Anyone who can reach the port can connect: a connection that does not
//! name a worker the host is waiting for, with that worker's token, within
//! [`HELLO_WITHIN`], is closed, and costs the host one task meanwhile.

use super::super::transport::WorkerId;
use super::lock;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// How long a new connection has to say whose it is.
const HELLO_WITHIN: Duration = Duration::from_secs(10);
/// The most a connection's first frame may hold.
const HELLO_MAX_BYTES: usize = 512;

/// The host's listening end, while its driver lives.
pub(super) struct Listener {
    address: SocketAddr,
    waiting: Arc<Mutex<HashMap<WorkerId, Waiting>>>,
    /// Dropped with the listener: the accepting task ends.
    _stop: oneshot::Sender<()>,
}

/// A worker whose connection has not come yet.
struct Waiting {
    token: String,
    link: oneshot::Sender<TcpStream>,
}

/// The first frame of a connection.
#[derive(serde::Deserialize)]
struct Hello {
    w: WorkerId,
    token: String,
}

impl Listener {
    /// Listens on `ip` (a port the system picks).
    pub(super) async fn bind(ip: IpAddr) -> std::io::Result<Listener> {
        let listener = TcpListener::bind((ip, 0)).await?;
        let address = listener.local_addr()?;
        let waiting = Arc::default();
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(accept(listener, Arc::clone(&waiting), stopped));
        Ok(Listener {
            address,
            waiting,
            _stop: stop,
        })
    }

    pub(super) fn address(&self) -> SocketAddr {
        self.address
    }

    /// Waits for worker `id`'s connection: the token it must bring, and
    /// where its connection will be handed.
    pub(super) fn expect(
        &self,
        id: WorkerId,
    ) -> std::io::Result<(String, oneshot::Receiver<TcpStream>)> {
        let token = token()?;
        let (link, linked) = oneshot::channel();
        let waiting = Waiting {
            token: token.clone(),
            link,
        };
        lock(&self.waiting).insert(id, waiting);
        Ok((token, linked))
    }

    /// Stops waiting for worker `id`'s connection.
    pub(super) fn forget(&self, id: WorkerId) {
        lock(&self.waiting).remove(&id);
    }
}

async fn accept(
    listener: TcpListener,
    waiting: Arc<Mutex<HashMap<WorkerId, Waiting>>>,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stopped => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                tokio::spawn(admit(stream, peer, Arc::clone(&waiting)));
            }
            Err(e) => {
                // Out of descriptors, most likely: no event says when one
                // frees, so wait a little before the next try.
                tracing::warn!("the host cannot accept its Ray workers' connections: {e}");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = &mut stopped => return,
                }
            }
        }
    }
}

/// Reads a new connection's first frame, and hands the connection to the
/// worker it names when its token is that worker's.
async fn admit(
    mut stream: TcpStream,
    peer: SocketAddr,
    waiting: Arc<Mutex<HashMap<WorkerId, Waiting>>>,
) {
    let hello = match tokio::time::timeout(HELLO_WITHIN, read_hello(&mut stream)).await {
        Ok(Ok(hello)) => hello,
        Ok(Err(why)) => {
            tracing::debug!(%peer, "refused a connection to the Ray workers' port: {why}");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "refused a connection to the Ray workers' port: it said nothing within {HELLO_WITHIN:?}");
            return;
        }
    };
    let mut waiting = lock(&waiting);
    match waiting.get(&hello.w) {
        Some(w) if same(w.token.as_bytes(), hello.token.as_bytes()) => {
            let w = waiting.remove(&hello.w).expect("just found");
            drop(waiting);
            let _ = stream.set_nodelay(true);
            let _ = w.link.send(stream);
        }
        _ => tracing::debug!(
            %peer,
            worker = hello.w,
            "refused a connection to the Ray workers' port: not a worker the host waits for, or not its token"
        ),
    }
}

async fn read_hello(stream: &mut TcpStream) -> Result<Hello, String> {
    let mut lengths = [0u8; 8];
    stream
        .read_exact(&mut lengths)
        .await
        .map_err(|e| e.to_string())?;
    let header_len = u32::from_be_bytes(lengths[..4].try_into().expect("4 bytes")) as usize;
    let body_len = u32::from_be_bytes(lengths[4..].try_into().expect("4 bytes"));
    if header_len > HELLO_MAX_BYTES || body_len != 0 {
        return Err(format!(
            "its first frame ({header_len} + {body_len} bytes) is not a worker's hello"
        ));
    }
    let mut header = vec![0; header_len];
    stream
        .read_exact(&mut header)
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&header).map_err(|e| format!("its hello is not valid: {e}"))
}

/// 128 random bits, in hex.
fn token() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        // SAFETY: the pointer and length describe the unfilled part of `bytes`.
        let n = unsafe {
            libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0)
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        } else {
            filled += n as usize;
        }
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether `a` and `b` are equal, in a time that does not tell where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn hello(address: SocketAddr, header: &[u8]) -> TcpStream {
        let mut stream = TcpStream::connect(address).await.unwrap();
        let mut frame = Vec::new();
        frame.extend_from_slice(&(header.len() as u32).to_be_bytes());
        frame.extend_from_slice(&0u32.to_be_bytes());
        frame.extend_from_slice(header);
        stream.write_all(&frame).await.unwrap();
        stream
    }

    /// Reads until the host closes the connection: true when it did.
    async fn closed_by_host(stream: &mut TcpStream) -> bool {
        let mut buf = [0u8; 16];
        matches!(
            tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    #[tokio::test]
    async fn only_the_awaited_worker_with_its_token_is_handed_its_connection() {
        let listener = Listener::bind("127.0.0.1".parse().unwrap()).await.unwrap();
        let (token, linked) = listener.expect(7).unwrap();
        assert_eq!(token.len(), 32);
        let (other, _) = listener.expect(8).unwrap();
        assert_ne!(token, other, "each worker has its own token");

        // The right worker with a wrong token, a worker nobody waits for,
        // and something that is not a hello are all closed.
        let wrong = format!(r#"{{"w":7,"token":"{}"}}"#, "0".repeat(32));
        let mut refused = hello(listener.address(), wrong.as_bytes()).await;
        assert!(closed_by_host(&mut refused).await);
        let unknown = format!(r#"{{"w":9,"token":"{token}"}}"#);
        let mut refused = hello(listener.address(), unknown.as_bytes()).await;
        assert!(closed_by_host(&mut refused).await);
        let mut garbage = TcpStream::connect(listener.address()).await.unwrap();
        garbage.write_all(&[0xff; 64]).await.unwrap();
        assert!(closed_by_host(&mut garbage).await);

        // The worker's own token: its connection, with what it sent after
        // the hello still unread.
        let right = format!(r#"{{"w":7,"token":"{token}"}}"#);
        let mut worker = hello(listener.address(), right.as_bytes()).await;
        worker.write_all(b"handshake").await.unwrap();
        let mut host_end = linked.await.expect("handed over");
        let mut first = [0u8; 9];
        host_end.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"handshake");

        // A token is good once.
        let mut again = hello(listener.address(), right.as_bytes()).await;
        assert!(closed_by_host(&mut again).await);
    }

    #[tokio::test]
    async fn a_forgotten_worker_is_not_handed_a_connection() {
        let listener = Listener::bind("127.0.0.1".parse().unwrap()).await.unwrap();
        let (token, linked) = listener.expect(1).unwrap();
        listener.forget(1);
        assert!(
            linked.await.is_err(),
            "its receiver learns it will not come"
        );
        let hello_frame = format!(r#"{{"w":1,"token":"{token}"}}"#);
        let mut late = hello(listener.address(), hello_frame.as_bytes()).await;
        assert!(closed_by_host(&mut late).await);
    }
}
