//! The recorder: wraps the next adapter of the chain (python-bridge, as the
//! host builds it) and records what it answers into the host's cassette,
//! under the plan the host decided from the record mode and the file
//! (`cassette.plan`; the recorder never decides it again):
//!
//! - `re-record`: every call runs and is recorded;
//! - `record-missing`: a call the cassette has is replayed, any other runs
//!   and is recorded;
//! - `replay-only`: replay only (the host normally runs the replayer for
//!   it, and starts no Python).
//!
//! Secrets (`filter`) are replaced by placeholders before anything reaches
//! the host, and their values are removed wherever else they appear in the
//! interaction. Only answers and the errors of the Python code are
//! recorded; timeouts, crashes and a busy pool say nothing about the code
//! and are passed on without being recorded.
//!
//! For a caller that reads a stream, the call goes on as a stream
//! (`next.call-streamed`): each chunk reaches the caller as it comes, and
//! the recording keeps every chunk with its time.

use cassette::Options;
use snakepen_guest::cassette::CassettePlan;
use snakepen_guest::{Adapter, CallError, ConfigError, Request, Response, host};

struct Recorder;

impl Adapter for Recorder {
    type Config = Options;

    fn check(options: &Options) -> Result<(), ConfigError> {
        options.check()
    }

    fn call(options: &Options, request: Request) -> Result<Response, CallError> {
        record(options, request)
    }
}

snakepen_guest::adapter!(Recorder);

fn record(options: &Options, request: Request) -> Result<Response, CallError> {
    let (info, plan) = cassette::info_and_plan("recorder")?;
    if plan != CassettePlan::ReRecord {
        match cassette::replay(options, &info, &request) {
            Ok(outcome) => return outcome,
            // What the cassette lacks is run and recorded.
            Err(CallError::CassetteMiss(_)) if plan == CassettePlan::RecordMissing => {}
            Err(miss) => return Err(miss),
        }
    }
    let (outcome, chunks) = if host::stream_wanted() {
        let streamed = host::next_streamed(&request);
        (streamed.outcome, Some(streamed.chunks))
    } else {
        (host::next(&request), None)
    };
    if !cassette::worth_recording(&outcome) {
        if let Err(e) = &outcome {
            host::warn(&format!(
                "`{}` not recorded: a {} says nothing about the Python code",
                request.command,
                e.kind()
            ));
        }
        return outcome;
    }
    match chunks {
        Some(chunks) => host::record_streamed(&cassette::to_record_streamed(
            options, &request, &outcome, &chunks,
        ))?,
        None => host::record(&cassette::to_record(options, &request, &outcome))?,
    }
    host::count("recorded", 1);
    outcome
}
