//! The deadlines and sizes a host uses when it is given none. (Part of the
//! sandbox's policy; they live in one place so the runtime and the host agree.)

use std::time::Duration;

/// How long a call may take when its request sets no deadline.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How far past its deadline an adapter that is running (not waiting on the
/// host) is stopped: the pool answers a worker's timeout at the deadline
/// itself, and this lets the adapter pass that answer on.
pub(crate) const GUEST_SLACK: Duration = Duration::from_millis(20);

/// How much longer than its deadline a call may take before the host gives
/// up on it whatever the adapter waits for (a backstop: a running adapter is
/// stopped at `GUEST_SLACK`, and every host import ends by the deadline).
pub(crate) const ADAPTER_SLACK: Duration = Duration::from_millis(250);

/// The largest answer an adapter may return by default.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 << 20;
