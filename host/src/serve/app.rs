//! What every endpoint shares: the host, the settings, the metrics, and
//! the count of calls in flight that a drain waits on.

use super::api::ApiError;
use super::config::ServeSettings;
use super::metrics::Metrics;
use crate::Host;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::watch;

/// The state of one server.
pub(super) struct App {
    pub(super) host: Host,
    pub(super) settings: ServeSettings,
    pub(super) metrics: Metrics,
    pub(super) draining: AtomicBool,
    /// Calls (and batches) being served.
    pub(super) in_flight: watch::Sender<usize>,
    /// For request ids: this server's start, and a count.
    pub(super) started: u64,
    pub(super) requests: AtomicU64,
}

impl App {
    pub(super) fn new(host: Host, settings: ServeSettings) -> App {
        let metrics = Metrics::new(&host);
        App {
            host,
            settings,
            metrics,
            draining: AtomicBool::new(false),
            in_flight: watch::channel(0).0,
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            requests: AtomicU64::new(0),
        }
    }
}

/// Counts one call in flight for as long as it lives.
pub(super) struct InFlight(Arc<App>);

impl InFlight {
    pub(super) fn enter(app: &Arc<App>) -> Result<InFlight, ApiError> {
        if app.draining.load(Ordering::Acquire) {
            return Err(ApiError::draining());
        }
        app.in_flight.send_modify(|n| *n += 1);
        Ok(InFlight(Arc::clone(app)))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.send_modify(|n| *n -= 1);
    }
}
