//! The replayer: answers every request from the host's cassette, with no
//! Python at all. A request the cassette lacks is a `cassette-miss` that
//! shows the closest recorded request and what to do.
//!
//! Identical requests replay in their recorded order, each once (unless
//! `allow_repeats`); the host keeps which were played, per request, so
//! concurrent calls each get their own recording. Configuration: see the
//! `cassette` crate (a host replaying with no options given uses the ones
//! the cassette was recorded with).

use cassette::Options;
use snakepen_guest::{CallError, ConfigError, Guest, Request, Response};
use std::cell::RefCell;

thread_local! {
    static OPTIONS: RefCell<Options> = RefCell::new(Options::default());
}

struct Replayer;

impl Guest for Replayer {
    fn configure(config: String) -> Result<(), ConfigError> {
        let options = Options::parse(&config)?;
        OPTIONS.with(|o| *o.borrow_mut() = options);
        Ok(())
    }

    fn call(request: Request) -> Result<Response, CallError> {
        let info = cassette::info("replayer")?;
        OPTIONS.with(|o| cassette::replay(&o.borrow(), &info, &request))?
    }
}

snakepen_guest::export_adapter!(Replayer);
