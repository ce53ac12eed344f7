//! The transport of Python worker processes on this machine.
//!
//! `reaper` starts every process and outlives none of them; `forkserver`
//! keeps one process that imported the module and forks ready workers;
//! `worker` is one process and the connection the pool serves calls on;
//! `spawn` starts a process with its descriptors; `group` signals a
//! worker's process group; `lifeline` kills a
//! process when the host's end closes; `control` is the channel to the
//! reaper and the fork server; `protocol` the frames on a worker's socket;
//! `output` drains stdout and stderr within bounds.

pub(super) mod control;
mod forkserver;
mod group;
pub(super) mod lifeline;
pub(super) mod output;
pub(super) mod protocol;
pub(super) mod reaper;
pub(super) mod spawn;
mod worker;

use super::config::{PoolConfig, PoolSettings};
use super::transport::{StartFailure, Transport, WorkerId, WorkerInfo};
use forkserver::{ForkServer, ForkState};
use reaper::Launcher;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use worker::Worker;

/// Workers that are Python processes: started by the pool's reaper, or
/// forked by its fork server when `PoolSettings::fork_server` is on.
pub(crate) struct Processes {
    inner: Arc<Inner>,
}

/// What the slots' starts and the fork server's supervisor share.
struct Inner {
    config: PoolConfig,
    /// Every process is started through it: the interpreter as named, under the pool's reaper.
    launcher: Launcher,
    /// The fork server new workers come from: starting, ready, or down.
    fork_server: watch::Sender<ForkState>,
    /// Told when the module changed: the fork server is replaced.
    renew: tokio::sync::Notify,
}

impl Processes {
    pub(crate) fn new(config: &PoolConfig) -> Processes {
        Processes {
            inner: Arc::new(Inner {
                launcher: Launcher::new(config.python.clone()),
                config: config.clone(),
                fork_server: watch::channel(ForkState::Starting).0,
                renew: tokio::sync::Notify::new(),
            }),
        }
    }
}

impl Inner {
    /// The fork server, when the pool uses one and it is ready.
    fn fork_server(&self) -> Option<Arc<ForkServer>> {
        match &*self.fork_server.borrow() {
            ForkState::Ready(server) => Some(Arc::clone(server)),
            _ => None,
        }
    }

    /// Waits (up to `limit`) while the pool's fork server is still
    /// starting, so that the first workers can be forked from it too.
    async fn fork_server_started(&self, limit: Duration) {
        let mut state = self.fork_server.subscribe();
        let _ = tokio::time::timeout(limit, state.wait_for(|s| !matches!(s, ForkState::Starting)))
            .await;
    }
}

impl Transport for Processes {
    type Connection = Worker;

    async fn start(&self, id: WorkerId, settings: &PoolSettings) -> Result<Worker, StartFailure> {
        let inner = &self.inner;
        if settings.fork_server {
            // One interpreter imports the module, the workers are forked from it.
            inner.fork_server_started(settings.start_timeout).await;
        }
        Worker::start(
            &inner.config,
            &inner.launcher,
            settings,
            id,
            inner.fork_server(),
        )
        .await
    }

    fn run(
        &self,
        closed: watch::Receiver<bool>,
        settings: watch::Receiver<PoolSettings>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let inner = Arc::clone(&self.inner);
        async move {
            if settings.borrow().fork_server {
                forkserver::supervise(
                    &inner.config,
                    &inner.launcher,
                    &inner.fork_server,
                    &inner.renew,
                    closed,
                    settings,
                )
                .await;
            }
            inner.fork_server.send_replace(ForkState::Down);
        }
    }

    fn abort(&self, workers: &[WorkerInfo]) {
        for pid in workers.iter().filter_map(|w| w.pid) {
            group::kill_group(pid, libc::SIGKILL);
        }
        // The reaper kills whatever they left, once its lifeline closes.
        drop(self.inner.launcher.close());
    }

    async fn close(&self, grace: Duration) {
        // What the workers left: the reaper kills it all, then exits.
        self.inner.launcher.close_and_wait(grace).await;
    }

    fn fork_server_pid(&self) -> Option<u32> {
        self.inner.fork_server().map(|s| s.pid())
    }

    fn renew(&self) {
        // Starts from now on wait for the new fork server, not the old one.
        // A server down (between restarts) imports the module anew when it
        // starts: nothing to replace then.
        let mut up = false;
        self.inner.fork_server.send_if_modified(|state| {
            up = !matches!(state, ForkState::Down);
            let ready = matches!(state, ForkState::Ready(_));
            if ready {
                *state = ForkState::Starting;
            }
            ready
        });
        if up {
            // One starting now may have imported the old code: it is
            // replaced as soon as it is ready.
            self.inner.renew.notify_one();
        }
    }
}
