//! The host side of each interface the contract imports into an adapter,
//! one module per interface (`cassette`, `counters`, `log`, `next`,
//! `streams`, `timers`, `workers`), each implemented on the per-call state
//! (`call_state`) over what the host grants (`links`).

mod call_state;
mod cassette;
mod counters;
mod links;
mod log;
mod next;
mod streams;
mod timers;
mod workers;

pub(crate) use call_state::CallState;
pub use links::Counters;
pub(crate) use links::{Links, Next, NextCall};
