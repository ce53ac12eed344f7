//! [`PoolStatus`]: a plain snapshot of the pool's counters.

/// How many workers are where, and what happened to them so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct PoolStatus {
    /// Workers the pool keeps running.
    pub size: usize,
    /// Ready workers holding no call.
    pub idle: usize,
    /// Workers holding at least one call (or a health ping).
    pub busy: usize,
    /// Calls the workers hold (leased to a caller or running): at most
    /// `size × max_concurrency`.
    pub in_flight: usize,
    /// Workers started but not yet past their readiness handshake.
    pub starting: usize,
    /// Workers whose last start failed, waiting out the restart backoff.
    pub dead: usize,
    /// Workers stopped for good (after shutdown).
    pub stopped: usize,
    /// Calls queued for a worker.
    pub waiting: usize,
    /// Workers replaced after a crash, a timeout or a failed health check.
    pub restarts: u64,
    /// Workers replaced on purpose (request count, age, memory).
    pub recycles: u64,
    /// Worker starts that failed (the module did not import, Python is
    /// missing, no handshake in time). Restarts after these back off.
    pub start_failures: u64,
    /// Sessions currently bound to a worker.
    pub sessions: usize,
}

impl PoolStatus {
    /// Every worker is ready (idle or busy).
    pub fn all_ready(&self) -> bool {
        self.idle + self.busy == self.size
    }

    /// Every worker is idle and no call waits: nothing in flight.
    pub fn all_idle(&self) -> bool {
        self.idle == self.size && self.waiting == 0
    }
}

impl std::fmt::Display for PoolStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} workers: {} idle, {} busy ({} calls in flight), {} starting, {} dead; {} waiting; {} restarts, {} recycles",
            self.size,
            self.idle,
            self.busy,
            self.in_flight,
            self.starting,
            self.dead,
            self.waiting,
            self.restarts,
            self.recycles
        )
    }
}
