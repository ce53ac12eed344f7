//! The host: one adapter (or a chain of them, for a cassette) with its
//! configuration, counters, pool and cassette. Nothing in it is shared with
//! other hosts except, if asked, the [`crate::Runtime`].
//!
//! - `builder`: what a host is built from, and assembling its chain;
//! - `handle`: [`Host`], what callers hold and ask;
//! - `prepared`: one adapter ready to serve, which takes an instance for
//!   each call (`warm`: the instances a host keeps between its calls;
//!   `instance`: one instance's life, from instantiation to the answer or
//!   the explained trap);
//!
//! (The deadlines and sizes used when none are given are `crate::defaults`.)

mod builder;

mod handle;
mod instance;
mod prepared;
mod warm;

pub use crate::defaults::DEFAULT_CALL_TIMEOUT;
pub use builder::HostBuilder;
pub use handle::{CallStream, Host};
