//! How long calls waited for a worker (checkout), as a histogram the pool
//! keeps for whoever reports it (`snakepen serve`'s `/metrics`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds; a last bucket holds the rest.
const BOUNDS: [f64; 12] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

/// Checkout waits so far: a count per bucket, their sum and their number.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct QueueWait {
    /// Each bucket's upper bound in seconds and how many waits fell in it
    /// (not cumulative); the last bound is `f64::INFINITY`.
    pub buckets: Vec<(f64, u64)>,
    /// The sum of every wait.
    pub sum: Duration,
    /// How many checkouts there were, successful or not.
    pub count: u64,
}

/// The pool's running histogram, updated without a lock.
pub(crate) struct WaitHistogram {
    counts: [AtomicU64; BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

impl WaitHistogram {
    pub(crate) fn new() -> WaitHistogram {
        WaitHistogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub(crate) fn observe(&self, waited: Duration) {
        let seconds = waited.as_secs_f64();
        let bucket = BOUNDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(BOUNDS.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> QueueWait {
        let buckets: Vec<(f64, u64)> = BOUNDS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.counts.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect();
        QueueWait {
            count: buckets.iter().map(|(_, n)| n).sum(),
            buckets,
            sum: Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_land_in_the_first_bucket_that_holds_them() {
        let waits = WaitHistogram::new();
        waits.observe(Duration::from_micros(50));
        waits.observe(Duration::from_millis(1));
        waits.observe(Duration::from_secs(3));
        let snapshot = waits.snapshot();
        assert_eq!(snapshot.count, 3);
        assert_eq!(snapshot.buckets[0], (0.000_1, 1));
        assert_eq!(snapshot.buckets[3], (0.001, 1));
        assert_eq!(snapshot.buckets.last(), Some(&(f64::INFINITY, 1)));
        assert_eq!(
            snapshot.sum,
            Duration::from_micros(50) + Duration::from_millis(1) + Duration::from_secs(3)
        );
    }
}
