//! The host: one adapter (or a chain of them, for a cassette) with its
//! configuration, counters, pool and cassette. Nothing in it is shared with
//! other hosts except, if asked, the [`crate::Runtime`].
//!
//! - `builder`: what a host is built from, and assembling its chain;
//! - `handle`: [`Host`], what callers hold and ask;
//! - `instance`: one adapter instance's life, from instantiation to the
//!   answer or the explained trap;
//!
//! (The deadlines and sizes used when none are given are `crate::defaults`.)

mod builder;

mod handle;
mod instance;

pub use crate::defaults::DEFAULT_CALL_TIMEOUT;
pub use builder::HostBuilder;
pub use handle::Host;
