//! The transport of workers that are actors of a Ray cluster.
//!
//! The pool starts one Python driver of its own (`python/snakepen_ray.py`,
//! run by the pool's interpreter, which must have `ray`) through its
//! reaper, as it starts a worker: the driver connects to the cluster with
//! `ray.init(address=…)` and owns one actor per worker, so Ray ends them
//! all when the driver ends, and the driver ends with the host (its
//! lifeline). Each actor runs snakepen's worker program as its child, so
//! a worker on a cluster serves its module exactly as a local one does.
//! Its frames go straight to the host over a connection the actor opens
//! ([`link`]), or, where the actor cannot reach the host (or the config
//! says `frames = "driver"`), through the actor and the driver as Ray calls.
//!
//! Host and driver speak the workers' frame format: the host sends
//! `start` (with the address and token of the straight path), `send`
//! (worker frames as the body, on the driver's path), `kill` and `stop`
//! for worker N; the driver answers `placed`, `data` (one worker frame),
//! `log` (a printed line) and `ended` (what Ray reported) for it. A driver
//! that dies ends every worker it held; the next start makes a new one.

mod link;

use super::config::{PoolConfig, PoolSettings, RayConfig, RayFrames, is_module_file};
use super::process::lifeline::Lifeline;
use super::process::output::{self, Tail};
use super::process::protocol::{self, FrameError, Frames, Handshake};
use super::process::reaper::{Launcher, Program};
use super::process::spawn;
use super::transport::{
    Connection, Exit, Fatal, Incoming, RequestId, StartFailure, Transport, WorkerId, WorkerInfo,
};
use crate::CallError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// The driver program, embedded like the worker's.
const DRIVER_SOURCE: &str = include_str!("../../../python/snakepen_ray.py");

/// Workers that are Ray actors, through a driver of the pool's own.
pub(crate) struct RayActors {
    inner: Arc<Inner>,
}

struct Inner {
    config: PoolConfig,
    ray: RayConfig,
    launcher: Launcher,
    /// The driver, once one started (a new one replaces a dead one).
    driver: tokio::sync::Mutex<Option<Arc<Driver>>>,
}

impl RayActors {
    pub(crate) fn new(config: &PoolConfig) -> RayActors {
        RayActors {
            inner: Arc::new(Inner {
                ray: config.ray.clone().unwrap_or_default(),
                config: config.clone(),
                launcher: Launcher::new(config.python.clone()),
                driver: tokio::sync::Mutex::new(None),
            }),
        }
    }
}

/// What the driver said of one worker.
#[derive(Debug)]
enum Event {
    /// Its actor was created and placed on a node.
    Placed(Place),
    /// One frame of the worker.
    Data(Vec<u8>),
    /// The actor is gone: how (`exited`, `actor-died`, `node-died`,
    /// `killed`, `stopped`, `unschedulable`, `start-failed`, `driver-died`)
    /// and what Ray said.
    Ended { kind: String, why: String },
}

/// Where a worker's actor runs.
#[derive(Debug, Clone, Default, serde::Deserialize)]
struct Place {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    node: String,
    #[serde(default)]
    ip: String,
    #[serde(default)]
    pid: Option<u32>,
    /// Whether its frames go straight to the host.
    #[serde(default)]
    direct: bool,
    /// Why they do not, when the host offered the straight path.
    #[serde(default)]
    why: Option<String>,
}

/// One driver process and the routes of its workers' events.
struct Driver {
    pid: u32,
    outbox: mpsc::UnboundedSender<Vec<u8>>,
    routes: Arc<Mutex<Routes>>,
    /// Where the workers' actors connect (none: every frame through the driver).
    listener: Option<link::Listener>,
    /// The largest frame a worker may send.
    max_frame_bytes: usize,
    _lifeline: Lifeline,
}

#[derive(Default)]
struct Routes {
    workers: HashMap<WorkerId, Route>,
    /// Set once the driver is gone: why.
    gone: Option<String>,
}

struct Route {
    events: mpsc::UnboundedSender<Event>,
    /// The last lines the worker wrote to stderr.
    tail: Arc<Mutex<Tail>>,
    pid: Option<u32>,
}

#[derive(serde::Deserialize)]
struct Message {
    op: String,
    #[serde(default)]
    w: Option<WorkerId>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    why: Option<String>,
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    ray: Option<String>,
    #[serde(default)]
    nodes: Option<u64>,
    #[serde(flatten)]
    place: serde_json::Value,
}

impl Driver {
    fn is_gone(&self) -> bool {
        lock(&self.routes).gone.is_some()
    }

    fn send(&self, header: serde_json::Value, body: &[u8]) -> bool {
        self.send_raw(
            &serde_json::to_vec(&header).expect("a header serializes"),
            body,
        )
    }

    /// Sends a frame of `header` (JSON text) and `body`; false once the driver is gone.
    fn send_raw(&self, header: &[u8], body: &[u8]) -> bool {
        self.outbox.send(protocol::frame(header, body)).is_ok()
    }

    /// Routes worker `id`'s events to a new receiver.
    fn route(&self, id: WorkerId) -> (mpsc::UnboundedReceiver<Event>, Arc<Mutex<Tail>>) {
        let (events, receiver) = mpsc::unbounded_channel();
        let tail = Arc::new(Mutex::new(Tail::default()));
        let mut routes = lock(&self.routes);
        if let Some(why) = &routes.gone {
            let _ = events.send(Event::Ended {
                kind: "driver-died".into(),
                why: why.clone(),
            });
        }
        routes.workers.insert(
            id,
            Route {
                events,
                tail: Arc::clone(&tail),
                pid: None,
            },
        );
        (receiver, tail)
    }

    fn unroute(&self, id: WorkerId) {
        lock(&self.routes).workers.remove(&id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    /// The running driver, or a new one.
    async fn driver(&self, settings: &PoolSettings) -> Result<Arc<Driver>, StartFailure> {
        let mut slot = self.driver.lock().await;
        if let Some(driver) = slot.as_ref().filter(|d| !d.is_gone()) {
            return Ok(Arc::clone(driver));
        }
        if slot.is_some() {
            tracing::warn!("the Ray driver is gone; starting a new one");
        }
        let driver = Arc::new(self.start_driver(settings).await?);
        *slot = Some(Arc::clone(&driver));
        Ok(driver)
    }

    async fn start_driver(&self, settings: &PoolSettings) -> Result<Driver, StartFailure> {
        let python = self.launcher.python();
        let failed =
            |during: &str, e: std::io::Error| StartFailure::os(python, during, e.raw_os_error(), e);
        let (to_driver, from_driver, pipes) =
            spawn::protocol_pipes().map_err(|e| failed("creating the driver's pipes", e))?;
        let (lifeline, line) =
            Lifeline::new().map_err(|e| failed("creating the driver's lifeline", e))?;
        let (stdout_read, stdout_write) =
            spawn::pipe().map_err(|e| failed("creating a stdout pipe", e))?;
        let (stderr_read, stderr_write) =
            spawn::pipe().map_err(|e| failed("creating a stderr pipe", e))?;
        let mut env: Vec<(String, String)> = Vec::new();
        for (key, value) in std::env::vars() {
            // Ray's own settings (RAY_…) reach the driver, and PATH and HOME.
            if key.starts_with("RAY_") || key == "PATH" || key == "HOME" {
                env.push((key, value));
            }
        }
        env.push(("LANG".into(), "C.UTF-8".into()));
        env.push(("LC_ALL".into(), "C.UTF-8".into()));
        let program = Program {
            argv: vec![
                python.to_string_lossy().into_owned(),
                "-I".into(),
                "-u".into(),
                "-c".into(),
                DRIVER_SOURCE.into(),
            ],
            env,
            cwd: None,
        };
        let mut fds = pipes.into_fds();
        fds.extend([
            (stdout_write, 1),
            (stderr_write, 2),
            (line, super::process::lifeline::LIFELINE_FD),
        ]);
        let (pid, _reaper) = self
            .launcher
            .spawn(
                &program,
                fds,
                settings.start_timeout,
                settings.max_frame_bytes,
            )
            .await
            .map_err(|e| StartFailure::launch(python, "starting the Ray driver", e))?;
        let receiver = |fd| {
            pipe::Receiver::from_owned_fd(fd).map_err(|e| failed("reading the driver's output", e))
        };
        let tail = Arc::new(Mutex::new(Tail::default()));
        // The driver is worker 0 in the log.
        let output = output::forward(
            receiver(stdout_read)?,
            receiver(stderr_read)?,
            0,
            pid,
            Some(Arc::clone(&tail)),
        );
        let mut writer = pipe::Sender::from_owned_fd(to_driver)
            .map_err(|e| failed("writing to the driver", e))?;
        let mut reader = pipe::Receiver::from_owned_fd(from_driver)
            .map_err(|e| failed("reading from the driver", e))?;
        let config = self.driver_config();
        let first = protocol::frame(
            br#"{"op":"config"}"#,
            &serde_json::to_vec(&config).expect("JSON"),
        );
        writer
            .write_all(&first)
            .await
            .map_err(|e| failed("configuring the driver", e))?;
        let mut frames = Frames::new(settings.max_frame_bytes);
        let hello = tokio::time::timeout(settings.start_timeout, frames.next(&mut reader)).await;
        let refused = |why: String| StartFailure::Cluster(why);
        let hello: Message = match hello {
            Err(_) => {
                return Err(refused(format!(
                    "the Ray driver did not connect to the cluster at `{}` within {:?}: check that a cluster runs there (`ray status --address {}`), or raise start_timeout",
                    self.ray.address, settings.start_timeout, self.ray.address
                )));
            }
            Ok(Err(FrameError::Closed)) => {
                let _ = tokio::time::timeout(settings.kill_grace, output).await;
                let tail = lock(&tail).text();
                return Err(refused(format!(
                    "the Ray driver (`{}`) exited before it connected. Its last stderr lines:\n{tail}",
                    python.display()
                )));
            }
            Ok(Err(FrameError::Invalid(message))) => return Err(StartFailure::Protocol(message)),
            Ok(Ok((header, _))) => serde_json::from_slice(&header)
                .map_err(|e| StartFailure::Protocol(format!("the driver's first message: {e}")))?,
        };
        let ip = hello
            .place
            .get("ip")
            .and_then(|ip| ip.as_str())
            .map(str::to_owned);
        match hello.op.as_str() {
            "hello" => tracing::info!(
                address = %self.ray.address,
                ray = hello.ray.as_deref().unwrap_or("?"),
                nodes = hello.nodes.unwrap_or(0),
                "connected to the Ray cluster"
            ),
            _ => {
                let why = hello.why.unwrap_or_default();
                return Err(refused(match hello.kind.as_deref() {
                    Some("no-ray") => format!(
                        "the interpreter `{}` has no `ray` ({why}): install it there (`{} -m pip install ray`; Ray needs Python 3.10 or newer), or name one that has it with --python",
                        python.display(),
                        python.display()
                    ),
                    Some("version-mismatch") => format!(
                        "the driver's Ray or Python differs from the cluster's: run snakepen with an interpreter whose Ray and Python versions are the cluster's ({why})"
                    ),
                    _ => format!(
                        "cannot connect to a Ray cluster at `{}`: {why}. Start one (`ray start --head`) or fix the address (--ray, `[ray] address`)",
                        self.ray.address
                    ),
                }));
            }
        }
        let listener = match self.ray.frames {
            RayFrames::Driver => None,
            RayFrames::Direct => self.listen(ip.as_deref()).await,
        };
        let routes = Arc::new(Mutex::new(Routes::default()));
        let (outbox, mut outgoing) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(frame) = outgoing.recv().await {
                if writer.write_all(&frame).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(demux(reader, frames, Arc::clone(&routes), tail, pid));
        Ok(Driver {
            pid,
            outbox,
            routes,
            listener,
            max_frame_bytes: settings.max_frame_bytes,
            _lifeline: lifeline,
        })
    }

    /// Listens where the workers' actors can connect: on `ip`, the address
    /// Ray knows this machine by (what the driver's node reports).
    async fn listen(&self, ip: Option<&str>) -> Option<link::Listener> {
        let fallback = "the workers' frames go through the Ray driver (about 1 ms more per call)";
        let Some(ip) = ip.and_then(|ip| ip.parse().ok()) else {
            tracing::warn!(
                ?ip,
                "the Ray driver did not say this machine's address: {fallback}"
            );
            return None;
        };
        match link::Listener::bind(ip).await {
            Ok(listener) => {
                tracing::debug!(address = %listener.address(), "listening for the Ray workers' connections");
                Some(listener)
            }
            Err(e) => {
                tracing::warn!(%ip, "cannot listen for the Ray workers' connections on {ip}: {e}; {fallback}");
                None
            }
        }
    }

    /// What the driver is told: the cluster, the actors' options, and the
    /// worker program with its arguments as a worker on the cluster runs it.
    fn driver_config(&self) -> serde_json::Value {
        let mut config = self.config.clone();
        let mut runtime_env = self.ray.runtime_env.clone();
        if is_module_file(&config.module) && !runtime_env.contains_key("working_dir") {
            let path = std::path::Path::new(&config.module);
            let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
            // The module's folder is the actors' working directory, on every
            // node, where the worker finds the module by its file name.
            if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
                runtime_env.insert("working_dir".into(), dir.to_string_lossy().into());
                config.module = name.to_string_lossy().into_owned();
            }
        }
        let argv = spawn::worker_args(&config, false);
        serde_json::json!({
            "address": self.ray.address,
            "actor_options": self.ray.actor_options,
            "runtime_env": runtime_env,
            "worker_source": spawn::WORKER_SOURCE,
            "worker_argv": argv,
            "env": config.env.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str()))).collect::<serde_json::Map<String, serde_json::Value>>(),
        })
    }
}

/// Reads the driver's messages and hands each to its worker; when the
/// driver ends, every worker it held ends with it.
async fn demux(
    mut reader: pipe::Receiver,
    mut frames: Frames,
    routes: Arc<Mutex<Routes>>,
    tail: Arc<Mutex<Tail>>,
    pid: u32,
) {
    let why = loop {
        let (header, body) = match frames.next(&mut reader).await {
            Ok(frame) => frame,
            Err(FrameError::Closed) => break format!("the Ray driver (pid {pid}) exited"),
            Err(FrameError::Invalid(message)) => {
                break format!("the Ray driver broke the protocol: {message}");
            }
        };
        let Ok(message) = serde_json::from_slice::<Message>(&header) else {
            break "the Ray driver sent a message that is not JSON".to_string();
        };
        let Some(id) = message.w else { continue };
        let mut routes = lock(&routes);
        let Some(route) = routes.workers.get_mut(&id) else {
            continue;
        };
        let event = match message.op.as_str() {
            "placed" => {
                let place: Place = serde_json::from_value(message.place).unwrap_or_default();
                route.pid = place.pid;
                Event::Placed(place)
            }
            "data" => Event::Data(body),
            "log" => {
                let line = String::from_utf8_lossy(&body);
                let stream = message.stream.as_deref().unwrap_or("stdout");
                if stream == "stderr" {
                    lock(&route.tail).push(&line);
                }
                tracing::info!(worker = id, pid = route.pid, stream, "{line}");
                continue;
            }
            "ended" => Event::Ended {
                kind: message.kind.unwrap_or_default(),
                why: message.why.unwrap_or_default(),
            },
            _ => continue,
        };
        let _ = route.events.send(event);
    };
    let stderr = lock(&tail).text();
    let why = if stderr.is_empty() {
        why
    } else {
        format!("{why}; its last stderr lines:\n{stderr}")
    };
    let mut routes = lock(&routes);
    if routes.workers.is_empty() {
        // No worker left to serve: the pool closed it.
        tracing::debug!("{why}");
    } else {
        tracing::error!("{why}");
    }
    routes.gone = Some(why.clone());
    for route in routes.workers.values() {
        let _ = route.events.send(Event::Ended {
            kind: "driver-died".into(),
            why: why.clone(),
        });
    }
}

impl Transport for RayActors {
    type Connection = RayWorker;

    async fn start(
        &self,
        id: WorkerId,
        settings: &PoolSettings,
    ) -> Result<RayWorker, StartFailure> {
        let driver = self.inner.driver(settings).await?;
        RayWorker::start(driver, id, settings).await
    }

    fn run(
        &self,
        _closed: watch::Receiver<bool>,
        _settings: watch::Receiver<PoolSettings>,
    ) -> impl Future<Output = ()> + Send + 'static {
        // Nothing of its own to run: the driver starts with the first worker.
        std::future::ready(())
    }

    fn abort(&self, _workers: &[WorkerInfo]) {
        // The reaper kills the driver; Ray ends the actors it owned.
        drop(self.inner.launcher.close());
    }

    async fn close(&self, grace: Duration) {
        self.inner.launcher.close_and_wait(grace).await;
    }

    fn ray_driver_pid(&self) -> Option<u32> {
        let driver = self.inner.driver.try_lock().ok()?;
        driver.as_ref().filter(|d| !d.is_gone()).map(|d| d.pid)
    }
}

/// One worker that is a Ray actor.
pub(crate) struct RayWorker {
    id: WorkerId,
    driver: Arc<Driver>,
    events: mpsc::UnboundedReceiver<Event>,
    tail: Arc<Mutex<Tail>>,
    place: Place,
    handlers: Vec<crate::pool::Handler>,
    /// Its straight connection, once its actor made it.
    link: Option<Link>,
    /// Where that connection will be handed, until it is.
    linking: Option<oneshot::Receiver<TcpStream>>,
    /// How it ended, once it did.
    ended: Option<(String, String)>,
}

/// A worker's straight connection to the host.
struct Link {
    reader: OwnedReadHalf,
    /// Dropped to tell the worker no more requests come (it then exits).
    writer: Option<OwnedWriteHalf>,
    frames: Frames,
}

/// What arrived for a worker.
enum Got {
    /// A frame on its straight connection, or its end.
    Frame(Result<protocol::Frame, FrameError>),
    /// Its straight connection (none: it will not come).
    Linked(Option<TcpStream>),
    /// A message from the driver (none: the driver is gone).
    Event(Option<Event>),
}

/// How long frames already sent on a straight connection are still read
/// once the driver said the worker ended (a lost node's connection may
/// never close by itself).
const LEFTOVERS_WITHIN: Duration = Duration::from_secs(2);

/// How long the host waits, once a worker's connection closed, for the
/// driver to say what Ray reported.
const REPORT_WITHIN: Duration = Duration::from_secs(5);

impl RayWorker {
    async fn start(
        driver: Arc<Driver>,
        id: WorkerId,
        settings: &PoolSettings,
    ) -> Result<RayWorker, StartFailure> {
        let (events, tail) = driver.route(id);
        let mut start = serde_json::json!({"op": "start", "w": id});
        let mut linking = None;
        if let Some(listener) = &driver.listener {
            match listener.expect(id) {
                Ok((token, linked)) => {
                    let address = listener.address();
                    start["connect"] = serde_json::json!({
                        "address": [address.ip().to_string(), address.port()],
                        "token": token,
                    });
                    linking = Some(linked);
                }
                Err(e) => tracing::warn!(
                    worker = id,
                    "no token for the worker's straight connection ({e}): its frames go through the Ray driver"
                ),
            }
        }
        let mut worker = RayWorker {
            id,
            driver,
            events,
            tail,
            place: Place::default(),
            handlers: Vec::new(),
            link: None,
            linking,
            ended: None,
        };
        worker.driver.send(start, b"");
        let started = tokio::time::timeout(settings.start_timeout, worker.handshake()).await;
        match started {
            Ok(Ok(())) => Ok(worker),
            Ok(Err(failure)) => Err(failure),
            Err(_) => {
                let placed = !worker.place.actor.is_empty();
                worker.kill_now();
                Err(if placed {
                    StartFailure::Timeout {
                        after: settings.start_timeout,
                    }
                } else {
                    StartFailure::Cluster(format!(
                        "Ray did not place the worker's actor within {:?}: the cluster has no room now for what its actor options ask, or is still starting. Free resources, lower the actor options, or raise start_timeout",
                        settings.start_timeout,
                    ))
                })
            }
        }
    }

    /// The next thing that arrives: a frame on its connection first.
    async fn receive(&mut self) -> Got {
        let (link, linking, events) = (&mut self.link, &mut self.linking, &mut self.events);
        let frame = async {
            match link {
                Some(link) => link.frames.next(&mut link.reader).await,
                None => std::future::pending().await,
            }
        };
        let linked = async {
            match linking {
                Some(linked) => linked.await.ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            frame = frame => Got::Frame(frame),
            stream = linked => Got::Linked(stream),
            event = events.recv() => Got::Event(event),
        }
    }

    /// Keeps the straight connection that came.
    fn linked(&mut self, stream: Option<TcpStream>) {
        self.linking = None;
        if let Some(stream) = stream {
            let (reader, writer) = stream.into_split();
            self.link = Some(Link {
                reader,
                writer: Some(writer),
                frames: Frames::new(self.driver.max_frame_bytes),
            });
        }
    }

    /// Waits for the actor's place, then the worker's handshake (on its
    /// straight connection, or from the driver).
    async fn handshake(&mut self) -> Result<(), StartFailure> {
        loop {
            let (header, _) = match self.receive().await {
                Got::Linked(stream) => {
                    self.linked(stream);
                    continue;
                }
                Got::Frame(Ok(frame)) => frame,
                Got::Frame(Err(FrameError::Invalid(message))) => {
                    self.kill_now();
                    return Err(StartFailure::Protocol(message));
                }
                Got::Frame(Err(FrameError::Closed)) => {
                    // The worker ended before its handshake: what the driver says of it.
                    self.link = None;
                    self.until_ended(REPORT_WITHIN).await;
                    let (kind, why) = self.ended.clone().unwrap_or_default();
                    return Err(StartFailure::Exited {
                        status: format!("{kind}: {why}"),
                        stderr_tail: lock(&self.tail).text(),
                    });
                }
                Got::Event(Some(Event::Placed(place))) => {
                    tracing::debug!(worker = self.id, actor = %place.actor, node = %place.node, ip = %place.ip, pid = ?place.pid, direct = place.direct, "actor placed");
                    if !place.direct && self.linking.take().is_some() {
                        if let Some(listener) = &self.driver.listener {
                            listener.forget(self.id);
                        }
                        tracing::warn!(
                            worker = self.id,
                            node = %place.node,
                            ip = %place.ip,
                            "the worker's actor cannot connect to this host ({}): its frames go through the Ray driver, about 1 ms more per call. Let the cluster's nodes reach this host, or set `[ray] frames = \"driver\"` to say so",
                            place.why.as_deref().unwrap_or("it did not say why")
                        );
                    }
                    self.place = place;
                    continue;
                }
                Got::Event(Some(Event::Data(frame))) => match protocol::split(&frame) {
                    Some((header, body)) => (header.to_vec(), body.to_vec()),
                    None => return Err(StartFailure::Protocol("a frame cut short".into())),
                },
                Got::Event(Some(Event::Ended { kind, why })) => {
                    return Err(match kind.as_str() {
                        "unschedulable" | "start-failed" | "driver-died" => {
                            StartFailure::Cluster(why)
                        }
                        _ => StartFailure::Exited {
                            status: format!("{kind}: {why}"),
                            stderr_tail: lock(&self.tail).text(),
                        },
                    });
                }
                Got::Event(None) => {
                    return Err(StartFailure::Cluster("the Ray driver is gone".into()));
                }
            };
            return match serde_json::from_slice::<Handshake>(&header) {
                Ok(Handshake::Ready(hello)) => {
                    self.handlers = hello.handlers;
                    tracing::debug!(worker = self.id, python = %hello.python, direct = self.link.is_some(), "worker on Ray ready");
                    Ok(())
                }
                Ok(Handshake::Failed { error }) => {
                    self.kill_now();
                    Err(StartFailure::Import {
                        type_name: error.type_name,
                        message: error.message,
                        traceback: error.traceback,
                    })
                }
                Err(e) => Err(StartFailure::Protocol(format!(
                    "its handshake is not valid: {e}"
                ))),
            };
        }
    }

    fn kill_now(&mut self) {
        if self.ended.is_none() {
            self.driver
                .send(serde_json::json!({"op": "kill", "w": self.id}), b"");
        }
    }

    /// What the calls it held are told, once it ended.
    fn fatal(&self, kind: &str, why: &str) -> Fatal {
        let exit = Exit::Lost(format!("{kind}: {why}"));
        let error = CallError::WorkerCrashed {
            pid: self.place.pid.unwrap_or(0),
            exit_status: format!(
                "the Ray actor {} on node {} ({}) is gone: {kind}: {why}",
                self.place.actor, self.place.node, self.place.ip
            ),
            stderr_tail: lock(&self.tail).text(),
        };
        Fatal::Died { exit, error }
    }

    /// The fatal end it came to.
    fn fatal_ended(&self) -> Fatal {
        match &self.ended {
            Some((kind, why)) => self.fatal(kind, why),
            None => self.fatal("lost", "its connection closed"),
        }
    }

    /// Writes `frame` to the worker (`request`: one that a reply ends),
    /// unless it ends first or has not read it by `deadline`.
    async fn write(&mut self, request: bool, frame: &[u8], deadline: Instant) -> Result<(), Fatal> {
        if self.ended.is_some() {
            return Err(self.fatal_ended());
        }
        if let Some(link) = &mut self.link {
            let Some(writer) = link.writer.as_mut() else {
                return Err(self.fatal("stopping", "the pool is stopping it"));
            };
            return match tokio::time::timeout_at(deadline, writer.write_all(frame)).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => {
                    self.link = None;
                    self.until_ended(REPORT_WITHIN).await;
                    Err(self.fatal_ended())
                }
                Err(_) => {
                    self.kill_now();
                    self.until_ended(REPORT_WITHIN).await;
                    Err(self.fatal(
                        "killed",
                        "it stopped reading its requests, and a call's deadline passed",
                    ))
                }
            };
        }
        // Every request passes here: its header is written, not built as a JSON value.
        let header = format!(r#"{{"op":"send","w":{},"req":{request}}}"#, self.id);
        if self.driver.send_raw(header.as_bytes(), frame) {
            Ok(())
        } else {
            Err(self.fatal("driver-died", "the Ray driver is gone"))
        }
    }

    /// Waits for the driver's `ended` (dropping what comes before it), up to `limit`.
    async fn until_ended(&mut self, limit: Duration) -> Exit {
        if let Some((kind, why)) = &self.ended {
            return Exit::Lost(format!("{kind}: {why}"));
        }
        let ended = tokio::time::timeout(limit, async {
            loop {
                match self.events.recv().await {
                    Some(Event::Ended { kind, why }) => return (kind, why),
                    Some(_) => continue,
                    None => return ("driver-died".into(), "the Ray driver is gone".into()),
                }
            }
        })
        .await
        .unwrap_or_else(|_| ("lost".into(), "the driver did not confirm its end".into()));
        let exit = Exit::Lost(format!("{}: {}", ended.0, ended.1));
        self.ended = Some(ended);
        exit
    }

    /// A frame it sent, as the pool reads it; a frame that is not the
    /// protocol kills it.
    fn incoming(&mut self, header: &[u8], body: Vec<u8>) -> Result<Incoming, Fatal> {
        match protocol::incoming(header, body, self.place.pid) {
            Ok(incoming) => Ok(incoming),
            Err(message) => Err(self.broke(message)),
        }
    }

    fn broke(&mut self, message: String) -> Fatal {
        self.kill_now();
        Fatal::Broke(CallError::WorkerCrashed {
            pid: self.place.pid.unwrap_or(0),
            exit_status: format!("killed for breaking the protocol ({message})"),
            stderr_tail: lock(&self.tail).text(),
        })
    }
}

impl Connection for RayWorker {
    fn info(&self) -> WorkerInfo {
        let mut info = WorkerInfo::new(self.id, None);
        info.actor = Some(self.place.actor.clone());
        info.node = Some(self.place.node.clone());
        info.remote_pid = self.place.pid;
        info.frames = Some(if self.link.is_some() {
            "direct"
        } else {
            "driver"
        });
        info
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
        _grace: Duration,
    ) -> Result<(), Fatal> {
        let frame = protocol::encode_request(id, command, payload, credit);
        self.write(true, &frame, deadline).await
    }

    async fn credit(
        &mut self,
        id: RequestId,
        n: u32,
        deadline: Instant,
        _grace: Duration,
    ) -> Result<(), Fatal> {
        self.write(false, &protocol::encode_credit(id, n), deadline)
            .await
    }

    async fn cancel(
        &mut self,
        id: RequestId,
        deadline: Instant,
        _grace: Duration,
    ) -> Result<(), Fatal> {
        self.write(false, &protocol::encode_cancel(id), deadline)
            .await
    }

    async fn next(&mut self, _grace: Duration) -> Result<Incoming, Fatal> {
        loop {
            if self.ended.is_some() {
                // What the connection still holds comes before the end.
                let Some(link) = &mut self.link else {
                    return Err(self.fatal_ended());
                };
                match tokio::time::timeout(LEFTOVERS_WITHIN, link.frames.next(&mut link.reader))
                    .await
                {
                    Ok(Ok((header, body))) => return self.incoming(&header, body),
                    _ => {
                        self.link = None;
                        continue;
                    }
                }
            }
            match self.receive().await {
                Got::Frame(Ok((header, body))) => return self.incoming(&header, body),
                Got::Frame(Err(FrameError::Closed)) => {
                    self.link = None;
                    self.until_ended(REPORT_WITHIN).await;
                }
                Got::Frame(Err(FrameError::Invalid(message))) => return Err(self.broke(message)),
                Got::Linked(stream) => self.linked(stream),
                Got::Event(Some(Event::Data(frame))) => {
                    let Some((header, body)) = protocol::split(&frame) else {
                        return Err(self.broke("the Ray driver relayed a frame cut short".into()));
                    };
                    let body = body.to_vec();
                    return self.incoming(header, body);
                }
                Got::Event(Some(Event::Placed(_))) => {}
                Got::Event(Some(Event::Ended { kind, why })) => self.ended = Some((kind, why)),
                Got::Event(None) => {
                    self.ended = Some(("driver-died".into(), "the Ray driver is gone".into()));
                }
            }
        }
    }

    async fn kill(&mut self, grace: Duration) -> Exit {
        self.kill_now();
        self.until_ended(grace.max(Duration::from_secs(5))).await
    }

    async fn stop(&mut self, grace: Duration) {
        if let Some(link) = &mut self.link {
            // No more requests: the worker finishes and exits by itself.
            link.writer = None;
        }
        if self.ended.is_none() {
            let grace_s = grace.as_secs_f64();
            self.driver.send(
                serde_json::json!({"op": "stop", "w": self.id, "grace": grace_s}),
                b"",
            );
        }
        self.until_ended(grace * 3 + Duration::from_secs(5)).await;
    }

    fn memory_bytes(&self) -> Option<u64> {
        None
    }
}

impl Drop for RayWorker {
    fn drop(&mut self) {
        self.kill_now();
        self.driver.unroute(self.id);
        if self.linking.is_some()
            && let Some(listener) = &self.driver.listener
        {
            listener.forget(self.id);
        }
    }
}
