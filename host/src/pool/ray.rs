//! The transport of workers that are actors of a Ray cluster.
//!
//! The pool starts one Python driver of its own (`python/snakepen_ray.py`,
//! run by the pool's interpreter, which must have `ray`) through its
//! reaper, as it starts a worker: the driver connects to the cluster with
//! `ray.init(address=…)` and owns one actor per worker, so Ray ends them
//! all when the driver ends, and the driver ends with the host (its
//! lifeline). Each actor runs snakepen's worker program as its child and
//! relays its frames, so a worker on a cluster serves its module exactly
//! as a local one does.
//!
//! Host and driver speak the workers' frame format: the host sends
//! `start`, `send` (worker frames as the body), `kill` and `stop` for
//! worker N; the driver answers `placed`, `data` (one worker frame),
//! `log` (a printed line) and `ended` (what Ray reported) for it. A driver
//! that dies ends every worker it held; the next start makes a new one.

use super::config::{PoolConfig, PoolSettings, RayConfig, is_module_file};
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
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// The driver program, embedded like the worker's.
const DRIVER_SOURCE: &str = include_str!("../../python/snakepen_ray.py");

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
}

/// One driver process and the routes of its workers' events.
struct Driver {
    pid: u32,
    outbox: mpsc::UnboundedSender<Vec<u8>>,
    routes: Arc<Mutex<Routes>>,
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
            _lifeline: lifeline,
        })
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
    functions: Vec<String>,
    /// How it ended, once it did.
    ended: Option<(String, String)>,
}

impl RayWorker {
    async fn start(
        driver: Arc<Driver>,
        id: WorkerId,
        settings: &PoolSettings,
    ) -> Result<RayWorker, StartFailure> {
        let (events, tail) = driver.route(id);
        let mut worker = RayWorker {
            id,
            driver,
            events,
            tail,
            place: Place::default(),
            functions: Vec::new(),
            ended: None,
        };
        worker
            .driver
            .send(serde_json::json!({"op": "start", "w": id}), b"");
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

    /// Waits for the actor's place, then the worker's handshake.
    async fn handshake(&mut self) -> Result<(), StartFailure> {
        loop {
            match self.events.recv().await {
                Some(Event::Placed(place)) => {
                    tracing::debug!(worker = self.id, actor = %place.actor, node = %place.node, ip = %place.ip, pid = ?place.pid, "actor placed");
                    self.place = place;
                }
                Some(Event::Data(frame)) => {
                    let Some((header, _)) = protocol::split(&frame) else {
                        return Err(StartFailure::Protocol("a frame cut short".into()));
                    };
                    return match serde_json::from_slice::<Handshake>(header) {
                        Ok(Handshake::Ready(hello)) => {
                            self.functions = hello.functions;
                            tracing::debug!(worker = self.id, python = %hello.python, "worker on Ray ready");
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
                Some(Event::Ended { kind, why }) => {
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
                None => return Err(StartFailure::Cluster("the Ray driver is gone".into())),
            }
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

    fn write(&mut self, request: bool, frame: &[u8]) -> Result<(), Fatal> {
        if let Some((kind, why)) = &self.ended {
            return Err(self.fatal(kind, why));
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
}

impl Connection for RayWorker {
    fn info(&self) -> WorkerInfo {
        let mut info = WorkerInfo::new(self.id, None);
        info.actor = Some(self.place.actor.clone());
        info.node = Some(self.place.node.clone());
        info.remote_pid = self.place.pid;
        info
    }

    fn functions(&self) -> &[String] {
        &self.functions
    }

    async fn send(
        &mut self,
        id: RequestId,
        command: &str,
        payload: &[u8],
        credit: Option<u32>,
        _deadline: Instant,
        _grace: Duration,
    ) -> Result<(), Fatal> {
        self.write(
            true,
            &protocol::encode_request(id, command, payload, credit),
        )
    }

    async fn credit(
        &mut self,
        id: RequestId,
        n: u32,
        _deadline: Instant,
        _grace: Duration,
    ) -> Result<(), Fatal> {
        self.write(false, &protocol::encode_credit(id, n))
    }

    async fn cancel(
        &mut self,
        id: RequestId,
        _deadline: Instant,
        _grace: Duration,
    ) -> Result<(), Fatal> {
        self.write(false, &protocol::encode_cancel(id))
    }

    async fn next(&mut self, _grace: Duration) -> Result<Incoming, Fatal> {
        if let Some((kind, why)) = &self.ended {
            return Err(self.fatal(kind, why));
        }
        loop {
            match self.events.recv().await {
                Some(Event::Data(frame)) => {
                    let Some((header, body)) = protocol::split(&frame) else {
                        self.kill_now();
                        return Err(Fatal::Broke(CallError::AdapterFault(
                            "the Ray driver relayed a frame cut short".into(),
                        )));
                    };
                    return match protocol::incoming(header, body.to_vec(), self.place.pid) {
                        Ok(incoming) => Ok(incoming),
                        Err(message) => {
                            self.kill_now();
                            Err(Fatal::Broke(CallError::WorkerCrashed {
                                pid: self.place.pid.unwrap_or(0),
                                exit_status: format!(
                                    "killed for breaking the protocol ({message})"
                                ),
                                stderr_tail: lock(&self.tail).text(),
                            }))
                        }
                    };
                }
                Some(Event::Placed(_)) => continue,
                Some(Event::Ended { kind, why }) => {
                    let fatal = self.fatal(&kind, &why);
                    self.ended = Some((kind, why));
                    return Err(fatal);
                }
                None => {
                    let fatal = self.fatal("driver-died", "the Ray driver is gone");
                    self.ended = Some(("driver-died".into(), "the Ray driver is gone".into()));
                    return Err(fatal);
                }
            }
        }
    }

    async fn kill(&mut self, grace: Duration) -> Exit {
        self.kill_now();
        self.until_ended(grace.max(Duration::from_secs(5))).await
    }

    async fn stop(&mut self, grace: Duration) {
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
    }
}
