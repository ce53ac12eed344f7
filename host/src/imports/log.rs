//! `snakepen:adapter/log`: adapter log lines go to `tracing`, tagged with the adapter.

use super::call_state::CallState;
use crate::bindings::snakepen::adapter::log::Host;
use crate::bindings::wit::Level;

impl Host for CallState {
    fn log(&mut self, level: Level, message: String) {
        let adapter = &*self.links.name;
        match level {
            Level::Trace => tracing::trace!(target: "snakepen::adapter", adapter, "{message}"),
            Level::Debug => tracing::debug!(target: "snakepen::adapter", adapter, "{message}"),
            Level::Info => tracing::info!(target: "snakepen::adapter", adapter, "{message}"),
            Level::Warn => tracing::warn!(target: "snakepen::adapter", adapter, "{message}"),
            Level::Error => tracing::error!(target: "snakepen::adapter", adapter, "{message}"),
        }
    }

    fn enabled(&mut self, level: Level) -> bool {
        match level {
            Level::Trace => tracing::enabled!(target: "snakepen::adapter", tracing::Level::TRACE),
            Level::Debug => tracing::enabled!(target: "snakepen::adapter", tracing::Level::DEBUG),
            Level::Info => tracing::enabled!(target: "snakepen::adapter", tracing::Level::INFO),
            Level::Warn => tracing::enabled!(target: "snakepen::adapter", tracing::Level::WARN),
            Level::Error => tracing::enabled!(target: "snakepen::adapter", tracing::Level::ERROR),
        }
    }
}
