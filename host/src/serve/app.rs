//! What every endpoint shares: the pools (each a host of its own), the
//! settings, the metrics, and the count of calls in flight that a drain
//! waits on.

use super::api::ApiError;
use super::config::ServeSettings;
use super::metrics::Metrics;
use crate::Host;
use axum::http::StatusCode;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// One pool the server serves: its name and its host.
pub(super) struct Served {
    pub(super) name: String,
    pub(super) host: Host,
}

/// The state of one server.
pub(super) struct App {
    /// The pools, the default first.
    pub(super) pools: Vec<Served>,
    pub(super) settings: ServeSettings,
    pub(super) metrics: Metrics,
    pub(super) draining: AtomicBool,
    /// Calls (and batches) being served. A plain count, not a watch: it
    /// changes twice per call and is waited on only by a drain, which
    /// [`App::drained`] wakes.
    in_flight: AtomicUsize,
    /// Notified when the last call in flight ends while draining.
    drained: Notify,
    /// For request ids: this server's start, and a count.
    pub(super) started: u64,
    pub(super) requests: AtomicU64,
    /// With `reload`: each pool's reloads.
    pub(super) reloads: Reloads,
}

impl App {
    pub(super) fn new(pools: Vec<Served>, settings: ServeSettings) -> App {
        let metrics = Metrics::new(
            pools
                .iter()
                .map(|p| (p.name.clone(), p.host.clone()))
                .collect(),
        );
        App {
            pools,
            settings,
            metrics,
            draining: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            drained: Notify::new(),
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            requests: AtomicU64::new(0),
            reloads: Default::default(),
        }
    }
}

impl App {
    /// Calls being served now.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Stops taking calls (new ones get 503) and waits up to `grace` for
    /// those in flight to end; whether they all did.
    pub(super) async fn drain(&self, grace: Duration) -> bool {
        self.draining.store(true, Ordering::SeqCst);
        tokio::time::timeout(grace, async {
            loop {
                let drained = self.drained.notified();
                let mut drained = std::pin::pin!(drained);
                // Listening before looking: an end between the two is not missed.
                drained.as_mut().enable();
                if self.in_flight() == 0 {
                    return;
                }
                drained.await;
            }
        })
        .await
        .is_ok()
    }

    /// The pool named `name`, or the default one; a name the server does
    /// not have is a 404 that lists the names it has.
    pub(super) fn pool(&self, name: Option<&str>) -> Result<&Served, ApiError> {
        self.pool_index(name).map(|at| &self.pools[at])
    }

    /// [`App::pool`]'s place in `pools`.
    pub(super) fn pool_index(&self, name: Option<&str>) -> Result<usize, ApiError> {
        let Some(name) = name else {
            return Ok(0);
        };
        self.pools
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.pools.iter().map(|p| p.name.as_str()).collect();
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "no-such-pool",
                    format!(
                        "no pool {}; this server has: {}",
                        crate::error::quoted(name),
                        names.join(", ")
                    ),
                )
            })
    }
}

/// Counts one call in flight for as long as it lives.
pub(super) struct InFlight(Arc<App>);

impl InFlight {
    pub(super) fn enter(app: &Arc<App>) -> Result<InFlight, ApiError> {
        if app.draining.load(Ordering::Acquire) {
            return Err(ApiError::draining());
        }
        app.in_flight.fetch_add(1, Ordering::SeqCst);
        Ok(InFlight(Arc::clone(app)))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let app = &self.0;
        if app.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 && app.draining.load(Ordering::SeqCst)
        {
            app.drained.notify_waiters();
        }
    }
}

/// What `/v1/status` says of a pool's reloads.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct ReloadState {
    /// The folder watched.
    pub watching: Option<PathBuf>,
    /// Reloads that took.
    pub reloads: u64,
    /// The last reload that failed, until one succeeds: when, and why (the traceback).
    pub failed: Option<Failed>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Failed {
    pub at_unix_ms: u64,
    pub error: String,
}

/// Every pool's reload state, by the pool's place in the server.
#[derive(Default)]
pub(crate) struct Reloads(Mutex<Vec<ReloadState>>);

impl Reloads {
    pub(crate) fn of(&self, pool: usize) -> Option<ReloadState> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(pool)
            .cloned()
    }

    pub(crate) fn update(&self, pool: usize, change: impl FnOnce(&mut ReloadState)) {
        let mut states = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if states.len() <= pool {
            states.resize_with(pool + 1, ReloadState::default);
        }
        change(&mut states[pool]);
    }
}
