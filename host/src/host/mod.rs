//! The host: one adapter (or a chain of them, for a cassette) with its
//! configuration, counters, pool and cassette. Nothing in it is shared with
//! other hosts except, if asked, the [`crate::Runtime`].
//!
//! - `builder`: what a host is built from, and assembling its chain;
//! - `handle`: [`Host`], what callers hold and ask;
//! - `instance`: one adapter instance's life, from instantiation to the
//!   answer or the explained trap;
//! - `defaults`: the deadlines and sizes used when none are given.

mod builder;
mod defaults;
mod handle;
mod instance;

pub use builder::HostBuilder;
pub(crate) use defaults::GUEST_SLACK;
pub use defaults::{DEFAULT_CALL_TIMEOUT, DEFAULT_MAX_RESPONSE_BYTES};
pub use handle::Host;
