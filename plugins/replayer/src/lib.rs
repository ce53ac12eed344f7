//! The replayer: answers every request from the host's cassette, with no
//! Python at all. A request the cassette lacks is a `cassette-miss` that
//! shows the closest recorded request and what to do.
//!
//! Identical requests replay in their recorded order, each once (unless
//! `allow_repeats`); the host keeps which were played, per request, so
//! concurrent calls each get their own recording. Configuration: see the
//! `cassette` crate (a host replaying with no options given uses the ones
//! the cassette was recorded with).

use snakepen_guest::{Adapter, CallError, ConfigError, Request, Response};

struct Replayer;

impl Adapter for Replayer {
    type Config = cassette::Options;

    fn check(options: &cassette::Options) -> Result<(), ConfigError> {
        options.check()
    }

    fn call(options: &cassette::Options, request: Request) -> Result<Response, CallError> {
        let info = cassette::info("replayer")?;
        cassette::replay(options, &info, &request)?
    }
}

snakepen_guest::adapter!(Replayer);
