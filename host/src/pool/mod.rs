//! The pool of long-lived Python workers behind a host's `workers` import.
//!
//! `config` says what runs. `transport` is the seam between the pool and
//! its workers: `process/` is the transport of Python processes on this
//! machine (started through the pool's reaper or forked by its fork
//! server). In front of the seam, written once: `state` is the slot table,
//! `shared` what slot tasks, leases and this handle share (`Core`), `checkout` how
//! callers get a worker, `slot` keeps one worker alive, and `status` and
//! `waits` report. Dropping the last handle of a pool kills its workers
//! (and whatever they started); [`Pool::close`] drains them first.

mod checkout;
mod config;
mod describe;
#[cfg(test)]
mod fake;
mod handlers;
mod process;
mod ray;
mod shared;
mod slot;
mod state;
mod status;
#[cfg(test)]
mod tests;
mod transport;
mod waits;

pub use config::{
    Affinity, DESCRIPTORS_PER_WORKER, MAX_CONCURRENCY, MAX_POOL_SIZE, PoolConfig, PoolSettings,
    RayConfig, RayFrames, UnknownAffinity, is_module_file,
};
pub use describe::{ModuleDescription, describe_module};
pub use handlers::{Handler, HandlerKind, Parameter, ParameterKind};
pub use slot::STREAM_WINDOW;
pub use status::PoolStatus;
pub use transport::{WorkerId, WorkerInfo};
pub use waits::QueueWait;

use crate::{CallError, Error, Response};
use shared::Core;
use state::Job;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use transport::Transport;

/// A running pool of Python workers. Clones share the pool; when the last
/// clone is dropped, every worker is killed.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Owner>,
}

/// Owns the pool's tasks and its transport; its drop is the pool's end.
struct Owner {
    core: Arc<Core>,
    transport: Arc<dyn Ends>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// What the pool's handle needs of its transport, whatever its type.
trait Ends: Send + Sync {
    fn abort(&self, workers: &[WorkerInfo]);
    fn close(&self, grace: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
    fn fork_server_pid(&self) -> Option<u32>;
    fn ray_driver_pid(&self) -> Option<u32>;
    fn renew(&self);
}

impl<T: Transport> Ends for T {
    fn abort(&self, workers: &[WorkerInfo]) {
        Transport::abort(self, workers)
    }
    fn close(&self, grace: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(Transport::close(self, grace))
    }
    fn fork_server_pid(&self) -> Option<u32> {
        Transport::fork_server_pid(self)
    }
    fn ray_driver_pid(&self) -> Option<u32> {
        Transport::ray_driver_pid(self)
    }
    fn renew(&self) {
        Transport::renew(self)
    }
}

impl Pool {
    /// Starts every worker at once (they become ready in the background;
    /// [`Pool::ready`] waits for them). Must be called inside a tokio runtime.
    pub fn start(config: PoolConfig) -> Result<Pool, Error> {
        check(&config)?;
        if config.ray.is_some() {
            let transport = ray::RayActors::new(&config);
            return Pool::with_transport(config, transport);
        }
        let transport = process::Processes::new(&config);
        Pool::with_transport(config, transport)
    }

    /// Starts a pool whose workers come from `transport`.
    fn with_transport<T: Transport>(config: PoolConfig, transport: T) -> Result<Pool, Error> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| Error::PoolConfig {
            field: "runtime".into(),
            message: "a pool must be started inside a tokio runtime".into(),
        })?;
        let transport = Arc::new(transport);
        let (core, receivers) = Core::new(config);
        let mut tasks: Vec<JoinHandle<()>> = receivers
            .into_iter()
            .enumerate()
            .map(|(index, jobs)| {
                let run = slot::run(Arc::clone(&core), Arc::clone(&transport), index, jobs);
                handle.spawn(run)
            })
            .collect();
        tasks.push(handle.spawn(sweep_sessions(Arc::clone(&core))));
        tasks.push(handle.spawn(transport.run(core.closed_signal(), core.watch_settings())));
        Ok(Pool {
            inner: Arc::new(Owner {
                core,
                transport,
                tasks: Mutex::new(tasks),
            }),
        })
    }

    /// Serves the module as it is now on disk: imports it once in a fresh
    /// interpreter to check it, then replaces every worker, each once the
    /// calls it holds have ended (a fork server is replaced first), so no
    /// call fails for it. A module that does not import fails with its
    /// traceback and changes nothing: the workers running go on serving.
    /// Workers on a Ray cluster cannot be reloaded.
    pub async fn reload(&self) -> Result<(), Error> {
        let config = &self.inner.core.config;
        if config.ray.is_some() {
            return Err(Error::PoolConfig {
                field: "transport".into(),
                message: "is ray: a reload replaces local workers only; restart the server to serve new code on the cluster".into(),
            });
        }
        describe_module(config).await?;
        self.inner.transport.renew();
        self.inner.core.next_generation();
        Ok(())
    }

    /// The fork server's process id, while the pool has one ready.
    pub fn fork_server_pid(&self) -> Option<u32> {
        self.inner.transport.fork_server_pid()
    }

    /// The process id of the pool's Ray driver, while a pool whose workers
    /// are Ray actors ([`PoolConfig::ray`]) has one running.
    pub fn ray_driver_pid(&self) -> Option<u32> {
        self.inner.transport.ray_driver_pid()
    }

    /// Runs `command` with `payload` on a worker (the session's first, by
    /// the affinity mode) and waits for its reply until `deadline`.
    ///
    /// Dropping the returned future at any point loses no worker: a request
    /// not yet sent gives its worker back, one already sent is drained.
    pub async fn call(
        &self,
        command: &str,
        session: Option<&str>,
        payload: Vec<u8>,
        deadline: Instant,
    ) -> Result<Response, CallError> {
        let deadline = tokio::time::Instant::from_std(deadline);
        let core = &self.inner.core;
        let mut job_payload = payload;
        loop {
            let asked = Instant::now();
            let lease = core.checkout(session, deadline).await;
            core.waits.observe(asked.elapsed());
            let lease = lease?;
            let (reply, answer) = oneshot::channel();
            let job = Job {
                command: command.to_string(),
                payload: job_payload,
                deadline,
                reply,
                stream: None,
            };
            match core.dispatch(lease, job) {
                Ok(()) => {
                    return answer.await.unwrap_or_else(|_| {
                        Err(CallError::Unavailable(
                            "the worker's task ended without answering: the host is shutting down"
                                .into(),
                        ))
                    });
                }
                // Its worker died between checkout and dispatch: check out another.
                Err(job) => job_payload = job.payload,
            }
        }
    }

    /// Runs `command` as a streamed call: its handler's chunks (each value
    /// a generator yields) as they come, then its outcome. The chunks wait
    /// in a buffer of [`STREAM_WINDOW`] at most: a caller that reads slowly
    /// slows the handler down, not the host's memory. Dropping the stream
    /// closes the handler's generator on the worker (its `finally` runs);
    /// the worker lives on. The stream ends with `timeout` at `deadline`, or
    /// when no chunk came for `idle`. A handler that does not stream gives
    /// its answer as the outcome, with no chunk before it.
    pub async fn call_stream(
        &self,
        command: &str,
        session: Option<&str>,
        payload: Vec<u8>,
        deadline: Instant,
        idle: Option<Duration>,
    ) -> Result<PoolStream, CallError> {
        let deadline = tokio::time::Instant::from_std(deadline);
        let core = &self.inner.core;
        let mut job_payload = payload;
        loop {
            let asked = Instant::now();
            let lease = core.checkout(session, deadline).await;
            core.waits.observe(asked.elapsed());
            let lease = lease?;
            let slot = lease.slot();
            let (reply, answer) = oneshot::channel();
            let (chunks_tx, chunks) = tokio::sync::mpsc::channel(STREAM_WINDOW as usize);
            let key = core.next_stream_key();
            let job = Job {
                command: command.to_string(),
                payload: job_payload,
                deadline,
                reply,
                stream: Some(state::StreamTo {
                    key,
                    chunks: chunks_tx,
                    idle,
                }),
            };
            match core.dispatch(lease, job) {
                Ok(()) => {
                    return Ok(PoolStream {
                        chunks,
                        answer: Some(answer),
                        controls: core.controls(slot),
                        key,
                        taken: 0,
                        ended: false,
                    });
                }
                Err(job) => job_payload = job.payload,
            }
        }
    }

    /// How long calls have waited for a worker so far (every checkout,
    /// including those that ran out of time).
    pub fn queue_wait(&self) -> QueueWait {
        self.inner.core.waits.snapshot()
    }

    /// Waits until every worker has passed its handshake. Fails as soon as
    /// a worker cannot start (the module does not import, Python is
    /// missing), with the reason and the traceback.
    pub async fn ready(&self) -> Result<(), Error> {
        self.wait_ready(|_| {}).await
    }

    /// [`Pool::ready`], calling `progress` with the status at every change.
    pub async fn wait_ready(&self, mut progress: impl FnMut(&PoolStatus)) -> Result<(), Error> {
        let core = &self.inner.core;
        let mut changes = core.subscribe();
        loop {
            changes.borrow_and_update();
            let status = core.status();
            progress(&status);
            if let Some(failure) = core.start_failure() {
                return Err(Error::WorkerStart {
                    module: core.config.module.clone(),
                    message: failure.describe(&core.config.module),
                });
            }
            if status.all_ready() {
                return Ok(());
            }
            if status.stopped > 0 {
                return Err(Error::PoolClosed);
            }
            if changes.changed().await.is_err() {
                return Err(Error::PoolClosed);
            }
        }
    }

    /// A receiver that sees every change of the pool's state (a worker
    /// started, checked out, returned or ended; a call queued). Subscribe,
    /// then read [`Pool::status`], then await `changed()`: no change is missed.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.core.subscribe()
    }

    /// The pool's counters now.
    pub fn status(&self) -> PoolStatus {
        self.inner.core.status()
    }

    /// The settings in force.
    pub fn settings(&self) -> PoolSettings {
        self.inner.core.settings()
    }

    /// Changes settings while the pool runs; each takes effect at its next use.
    pub fn update_settings(&self, f: impl FnOnce(&mut PoolSettings)) {
        self.inner.core.update_settings(f);
    }

    /// The configuration the pool was started with.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.core.config
    }

    /// The module the workers serve, as the configuration names it.
    pub fn module(&self) -> &str {
        &self.inner.core.config.module
    }

    /// The commands the workers serve, as the latest worker to become
    /// ready reported them in its handshake (without the built-ins `ping`
    /// and `info`); empty until a worker is ready.
    pub fn functions(&self) -> Arc<[String]> {
        self.inner.core.functions()
    }

    /// The handlers the workers serve, each with its parameters, docstring
    /// and payload schema, as the latest worker to become ready described
    /// them; empty until a worker is ready.
    pub fn handlers(&self) -> Arc<[Handler]> {
        self.inner.core.handlers()
    }

    /// The workers running now (ready, or serving a call), by id and,
    /// for a process on this machine, pid.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.inner.core.workers()
    }

    /// The process ids of the workers running now.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.workers().iter().filter_map(|w| w.pid).collect()
    }

    /// Stops taking calls, lets calls in flight finish within the
    /// `shutdown_grace` setting, then stops every worker (its transport's
    /// `stop`: for a process, its socket closed, then SIGTERM, then SIGKILL
    /// of its process group after `kill_grace`) and waits until they are
    /// gone. The same operation as [`crate::Host::close`], for a pool alone.
    pub async fn close(&self) {
        let core = &self.inner.core;
        core.begin_closing();
        let grace = core.settings().shutdown_grace;
        let mut changes = core.subscribe();
        let drained = async {
            loop {
                changes.borrow_and_update();
                if core.status().busy == 0 || changes.changed().await.is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(grace, drained).await;
        core.close();
        let tasks: Vec<_> =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
        // Last, whatever else the transport runs (for processes: the reaper
        // kills what the workers left, then exits).
        self.inner.transport.close(core.settings().kill_grace).await;
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // No await here: kill what runs now, and let the tasks end their own way.
        self.core.close();
        self.transport.abort(&self.core.workers());
        for task in self
            .tasks
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("module", &self.module())
            .field("status", &self.status())
            .finish()
    }
}

/// Forgets expired sessions, at half the TTL (read at each round).
async fn sweep_sessions(core: Arc<Core>) {
    let mut closed = core.closed_signal();
    loop {
        let every = (core.settings().session_ttl / 2)
            .clamp(Duration::from_millis(10), Duration::from_secs(30));
        tokio::select! {
            _ = tokio::time::sleep(every) => { core.sweep_sessions(); }
            _ = closed.wait_for(|c| *c) => return,
        }
    }
}

/// Refuses a configuration the pool cannot run, naming the field.
fn check(config: &PoolConfig) -> Result<(), Error> {
    config
        .check()
        .map_err(|(field, message)| Error::PoolConfig {
            field: field.into(),
            message,
        })
}

/// One item of a streamed call: a chunk, or the end.
#[derive(Debug)]
pub enum StreamItem {
    /// A value the handler yielded, as bytes (JSON unless it yielded bytes).
    Chunk(Vec<u8>),
    /// The stream ended: the handler's return value (JSON, `null` for none).
    End(Response),
}

/// A streamed call's chunks and outcome ([`Pool::call_stream`]). Dropping
/// it before its end stops the stream on the worker.
pub struct PoolStream {
    chunks: tokio::sync::mpsc::Receiver<Vec<u8>>,
    answer: Option<oneshot::Receiver<Result<Response, CallError>>>,
    controls: tokio::sync::mpsc::UnboundedSender<state::Control>,
    key: u64,
    taken: u32,
    ended: bool,
}

impl PoolStream {
    /// The next chunk, then the end (or the error that ended the stream),
    /// then `None`.
    pub async fn next(&mut self) -> Option<Result<StreamItem, CallError>> {
        if let Some(chunk) = self.chunks.recv().await {
            self.taken += 1;
            if self.taken == STREAM_WINDOW / 2 {
                self.taken = 0;
                let credit = state::Control::Credit {
                    key: self.key,
                    n: STREAM_WINDOW / 2,
                };
                let _ = self.controls.send(credit);
            }
            return Some(Ok(StreamItem::Chunk(chunk)));
        }
        let answer = self.answer.take()?;
        self.ended = true;
        Some(match answer.await {
            Ok(Ok(response)) => Ok(StreamItem::End(response)),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(CallError::Unavailable(
                "the worker's task ended without answering: the host is shutting down".into(),
            )),
        })
    }
}

impl Drop for PoolStream {
    fn drop(&mut self) {
        if !self.ended {
            let _ = self.controls.send(state::Control::Cancel { key: self.key });
        }
    }
}
