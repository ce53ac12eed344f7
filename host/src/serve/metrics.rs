//! `GET /metrics`: Prometheus (OpenMetrics) text, with `prometheus-client`.
//! Calls by command and outcome, call latency, adapter faults; and, read
//! from the pool at each scrape, workers by state, queued calls, restarts,
//! recycles and how long calls waited for a worker.
//!
//! A command label is never just what a caller sent, which would let any
//! caller mint time series without end or forge lines: with a pool, only
//! the commands its workers reported in their handshake (and the built-ins
//! `ping` and `info`) are labels, every other name is `(unknown)`. A host
//! without a pool (the mock, a replayer) has no handshake: there the first
//! [`FIRST_SEEN`] distinct names of at most [`MAX_SEEN_LEN`] bytes that did
//! not fail as `no-such-command` are labels, every later one `(other)`.
//! prometheus-client 0.24 writes label values as given, so [`Label`]
//! escapes them by the exposition rules. Every series has a `pool` label:
//! the name of the pool (`default` for `[pool]`).

use crate::{CallError, Host};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

/// The command label of a call whose command the workers do not have.
const UNKNOWN_COMMAND: &str = "(unknown)";

/// The command label, without a pool, of a name past the first [`FIRST_SEEN`].
const OTHER_COMMAND: &str = "(other)";

/// Without a pool: how many distinct command names become labels.
pub(crate) const FIRST_SEEN: usize = 16;

/// Without a pool: the longest name that becomes a label, in bytes.
pub(crate) const MAX_SEEN_LEN: usize = 64;

/// The commands every worker has besides its module's.
const BUILT_INS: [&str; 2] = ["ping", "info"];

/// A label value, written escaped: `\` as `\\`, `"` as `\"`, a newline as `\n`.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct Label(String);

impl prometheus_client::encoding::EncodeLabelValue for Label {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    pool: Label,
    command: Label,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    pool: Label,
    command: Label,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    pool: Label,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: Label,
}

/// Who a ready worker is: its pid on this machine, or its Ray actor, node
/// and pid on that node (empty where it has none).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    pool: Label,
    worker: String,
    pid: String,
    actor: String,
    node: String,
    remote_pid: String,
}

type HistogramFamily = Family<CommandLabels, Histogram, fn() -> Histogram>;

/// The server's metrics, registered once per server (no global registry).
pub(crate) struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    latency: HistogramFamily,
    adapter_faults: Counter,
    /// Streams (`POST /v1/stream`): time to their first chunk, chunks each
    /// sent, and how many are open.
    first_chunk: HistogramFamily,
    chunks: HistogramFamily,
    streams: Gauge,
    /// The pools by name, for the commands their workers have.
    hosts: Vec<(String, Host)>,
    /// Without a pool: the names that became labels, by pool.
    seen: Mutex<HashMap<String, HashSet<String>>>,
}

impl Metrics {
    /// Metrics of the pools `hosts`, by name.
    pub(crate) fn new(hosts: Vec<(String, Host)>) -> Metrics {
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
        let first_chunk: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_25, 2.0, 16)));
        registry.register(
            "stream_first_chunk_seconds",
            "Time from a stream's arrival to its first chunk, by command",
            first_chunk.clone(),
        );
        let chunks: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(1.0, 4.0, 10)));
        registry.register(
            "stream_chunks",
            "Chunks each stream sent before its end, by command",
            chunks.clone(),
        );
        let streams = Gauge::default();
        registry.register("streams_open", "Streams being answered", streams.clone());
        registry.register_collector(Box::new(PoolCollector {
            hosts: hosts.clone(),
        }));
        Metrics {
            registry,
            calls,
            latency,
            adapter_faults,
            first_chunk,
            chunks,
            streams,
            hosts,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The label `command` is counted under (see the module's doc).
    fn label(&self, pool: &str, command: &str, outcome: Result<(), &CallError>) -> Label {
        if let Err(CallError::NoSuchCommand(_)) = outcome {
            return Label(UNKNOWN_COMMAND.into());
        }
        let host = self.hosts.iter().find(|(name, _)| name == pool);
        if let Some(pool) = host.and_then(|(_, host)| host.pool()) {
            let known =
                BUILT_INS.contains(&command) || pool.functions().iter().any(|f| f == command);
            return Label(if known { command } else { UNKNOWN_COMMAND }.into());
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let seen = seen.entry(pool.to_string()).or_default();
        if seen.contains(command) {
            return Label(command.into());
        }
        if seen.len() < FIRST_SEEN && command.len() <= MAX_SEEN_LEN {
            seen.insert(command.to_string());
            return Label(command.into());
        }
        Label(OTHER_COMMAND.into())
    }

    /// Counts one call of `command` that took `elapsed`.
    pub(crate) fn observe(
        &self,
        pool: &str,
        command: &str,
        outcome: Result<(), &CallError>,
        elapsed: Duration,
    ) {
        let command = self.label(pool, command, outcome);
        let pool = Label(pool.into());
        let outcome_name = match outcome {
            Ok(()) => "ok",
            Err(e) => e.kind(),
        };
        self.calls
            .get_or_create(&CallLabels {
                pool: pool.clone(),
                command: command.clone(),
                outcome: outcome_name.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&CommandLabels { pool, command })
            .observe(elapsed.as_secs_f64());
        if let Err(CallError::AdapterFault(_)) = outcome {
            self.adapter_faults.inc();
        }
    }

    /// One stream more is open.
    pub(crate) fn stream_opened(&self) {
        self.streams.inc();
    }

    /// A stream of `command` sent its first chunk `after` its arrival.
    pub(crate) fn first_chunk(&self, pool: &str, command: &str, after: Duration) {
        let command = self.label(pool, command, Ok(()));
        let pool = Label(pool.into());
        self.first_chunk
            .get_or_create(&CommandLabels { pool, command })
            .observe(after.as_secs_f64());
    }

    /// A stream of `command` ended (or its client left) after `sent` chunks.
    pub(crate) fn stream_closed(&self, pool: &str, command: &str, sent: u64) {
        self.streams.dec();
        let command = self.label(pool, command, Ok(()));
        let pool = Label(pool.into());
        self.chunks
            .get_or_create(&CommandLabels { pool, command })
            .observe(sent as f64);
    }

    /// The text a scrape gets.
    pub(crate) fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// One count of a pool's status.
type StatusCount = fn(&crate::PoolStatus) -> u64;

/// Reads the pools' status at each scrape.
struct PoolCollector {
    hosts: Vec<(String, Host)>,
}

impl std::fmt::Debug for PoolCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolCollector").finish_non_exhaustive()
    }
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let pools: Vec<(Label, crate::Pool)> = self
            .hosts
            .iter()
            .filter_map(|(name, host)| Some((Label(name.clone()), host.pool()?.clone())))
            .collect();
        if pools.is_empty() {
            return Ok(());
        }
        let statuses: Vec<_> = pools.iter().map(|(_, pool)| pool.status()).collect();
        let mut workers = encoder.encode_descriptor(
            "workers",
            "Python workers by state",
            None,
            MetricType::Gauge,
        )?;
        for ((pool, _), status) in pools.iter().zip(&statuses) {
            for (state, count) in [
                ("idle", status.idle),
                ("busy", status.busy),
                ("starting", status.starting),
                ("dead", status.dead),
            ] {
                let labels = StateLabels {
                    pool: pool.clone(),
                    state,
                };
                ConstGauge::new(count as i64).encode(workers.encode_family(&labels)?)?;
            }
        }
        let mut info = encoder.encode_descriptor(
            "worker_info",
            "Each ready worker (1): its pid, or its Ray actor, node and pid there",
            None,
            MetricType::Gauge,
        )?;
        let text = |value: Option<u32>| value.map(|v| v.to_string()).unwrap_or_default();
        for (pool, handle) in &pools {
            for worker in handle.workers() {
                let labels = WorkerLabels {
                    pool: pool.clone(),
                    worker: worker.id.to_string(),
                    pid: text(worker.pid),
                    actor: worker.actor.clone().unwrap_or_default(),
                    node: worker.node.clone().unwrap_or_default(),
                    remote_pid: text(worker.remote_pid),
                };
                ConstGauge::new(1).encode(info.encode_family(&labels)?)?;
            }
        }
        let mut waiting = encoder.encode_descriptor(
            "calls_waiting",
            "Calls queued for a free worker",
            None,
            MetricType::Gauge,
        )?;
        for ((pool, _), status) in pools.iter().zip(&statuses) {
            let labels = PoolLabels { pool: pool.clone() };
            ConstGauge::new(status.waiting as i64).encode(waiting.encode_family(&labels)?)?;
        }
        let counters: [(&str, &str, StatusCount); 3] = [
            (
                "worker_restarts",
                "Workers replaced after a crash, a timeout or a failed health check",
                |s| s.restarts,
            ),
            (
                "worker_recycles",
                "Workers replaced on purpose (request count, age, memory)",
                |s| s.recycles,
            ),
            ("worker_start_failures", "Worker starts that failed", |s| {
                s.start_failures
            }),
        ];
        for (name, help, value) in counters {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for ((pool, _), status) in pools.iter().zip(&statuses) {
                let labels = PoolLabels { pool: pool.clone() };
                ConstCounter::new(value(status)).encode(metric.encode_family(&labels)?)?;
            }
        }
        let mut metric = encoder.encode_descriptor(
            "queue_wait_seconds",
            "How long calls waited for a worker",
            None,
            MetricType::Histogram,
        )?;
        for (pool, handle) in &pools {
            let waits = handle.queue_wait();
            // prometheus-client writes its last bucket as `+Inf` when its bound is f64::MAX.
            let buckets: Vec<(f64, u64)> = waits
                .buckets
                .iter()
                .map(|&(bound, n)| (if bound.is_finite() { bound } else { f64::MAX }, n))
                .collect();
            let labels = PoolLabels { pool: pool.clone() };
            metric
                .encode_family(&labels)?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    waits.sum.as_secs_f64(),
                    waits.count,
                    &buckets,
                    None,
                )?;
        }
        Ok(())
    }
}
