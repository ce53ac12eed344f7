//! `GET /metrics`: Prometheus (OpenMetrics) text, with `prometheus-client`.
//! Calls by command and outcome, call latency, adapter faults; and, read
//! from the pool at each scrape, workers by state, queued calls, restarts,
//! recycles and how long calls waited for a worker.

use crate::{CallError, Host};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// The command label of a call whose command does not exist: user input
/// must not mint a new time series per misspelling.
const UNKNOWN_COMMAND: &str = "(unknown)";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    command: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    command: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

type HistogramFamily = Family<CommandLabels, Histogram, fn() -> Histogram>;

/// The server's metrics, registered once per server (no global registry).
pub(crate) struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    latency: HistogramFamily,
    adapter_faults: Counter,
}

impl Metrics {
    pub(crate) fn new(host: &Host) -> Metrics {
        let mut registry = Registry::with_prefix("snakepen");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "calls",
            "Calls answered, by command and outcome (ok or the contract's error kind)",
            calls.clone(),
        );
        let latency: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_25, 2.0, 16)));
        registry.register(
            "call_duration_seconds",
            "Time from a call's arrival to its answer, by command",
            latency.clone(),
        );
        let adapter_faults = Counter::default();
        registry.register(
            "adapter_faults",
            "Calls that failed inside the adapter (a trap, a panic, a broken invariant)",
            adapter_faults.clone(),
        );
        registry.register_collector(Box::new(PoolCollector { host: host.clone() }));
        Metrics {
            registry,
            calls,
            latency,
            adapter_faults,
        }
    }

    /// Counts one call of `command` that took `elapsed`.
    pub(crate) fn observe(
        &self,
        command: &str,
        outcome: Result<(), &CallError>,
        elapsed: Duration,
    ) {
        let command = match outcome {
            Err(CallError::NoSuchCommand(_)) => UNKNOWN_COMMAND,
            _ => command,
        };
        let outcome_name = match outcome {
            Ok(()) => "ok",
            Err(e) => e.kind(),
        };
        self.calls
            .get_or_create(&CallLabels {
                command: command.to_string(),
                outcome: outcome_name.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&CommandLabels {
                command: command.to_string(),
            })
            .observe(elapsed.as_secs_f64());
        if let Err(CallError::AdapterFault(_)) = outcome {
            self.adapter_faults.inc();
        }
    }

    /// The text a scrape gets.
    pub(crate) fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// Reads the pool's status at each scrape.
struct PoolCollector {
    host: Host,
}

impl std::fmt::Debug for PoolCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolCollector").finish_non_exhaustive()
    }
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(pool) = self.host.pool() else {
            return Ok(());
        };
        let status = pool.status();
        let mut workers = encoder.encode_descriptor(
            "workers",
            "Python workers by state",
            None,
            MetricType::Gauge,
        )?;
        for (state, count) in [
            ("idle", status.idle),
            ("busy", status.busy),
            ("starting", status.starting),
            ("dead", status.dead),
        ] {
            let labels = StateLabels { state };
            let family = workers.encode_family(&labels)?;
            ConstGauge::new(count as i64).encode(family)?;
        }
        let waiting = encoder.encode_descriptor(
            "calls_waiting",
            "Calls queued for a free worker",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(status.waiting as i64).encode(waiting)?;
        for (name, help, value) in [
            (
                "worker_restarts",
                "Workers replaced after a crash, a timeout or a failed health check",
                status.restarts,
            ),
            (
                "worker_recycles",
                "Workers replaced on purpose (request count, age, memory)",
                status.recycles,
            ),
            (
                "worker_start_failures",
                "Worker starts that failed",
                status.start_failures,
            ),
        ] {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        let waits = pool.queue_wait();
        // prometheus-client writes its last bucket as `+Inf` when its bound is f64::MAX.
        let buckets: Vec<(f64, u64)> = waits
            .buckets
            .iter()
            .map(|&(bound, n)| (if bound.is_finite() { bound } else { f64::MAX }, n))
            .collect();
        let mut metric = encoder.encode_descriptor(
            "queue_wait_seconds",
            "How long calls waited for a worker",
            None,
            MetricType::Histogram,
        )?;
        metric.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            waits.sum.as_secs_f64(),
            waits.count,
            &buckets,
            None,
        )?;
        Ok(())
    }
}
