//! The replayer: answers every request from the host's cassette, with no
//! Python at all. A request the cassette lacks is a `cassette-miss` that
//! shows the closest recorded request and what to do.
//!
//! Identical requests replay in their recorded order, each once (unless
//! `allow_repeats`); the host keeps which were played, per request, so
//! concurrent calls each get their own recording. Configuration: see the
//! `cassette` crate (a host replaying with no options given uses the ones
//! the cassette was recorded with).

use snakepen_guest::{CallError, ConfigError, Guest, Request, Response};
struct Replayer;

impl Guest for Replayer {
    fn configure(config: String) -> Result<(), ConfigError> {
        cassette::configure(&config)
    }

    fn call(request: Request) -> Result<Response, CallError> {
        let info = cassette::info("replayer")?;
        cassette::with_options(|o| cassette::replay(o, &info, &request))?
    }
}

snakepen_guest::export_adapter!(Replayer);
