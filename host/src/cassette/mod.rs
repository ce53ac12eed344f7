//! Cassettes: calls recorded once against real Python and replayed later
//! with no Python at all, in the manner of Ruby's VCR.
//!
//! The host owns the file (its format, reading it, replacing it atomically)
//! and the plan (whether to replay, record or re-record, from the mode and
//! the file); the recorder and replayer adapters own the rest of the policy
//! (matching, secrets). A host is given one cassette and can write no other
//! file.

mod file;
mod mode;
mod plan;
mod recorded_error;
mod setup;
mod store;

pub use file::{CassetteFile, FORMAT, Recorded, TimedChunk, VERSION};
pub use mode::{MODE_VARIABLE, RecordMode, UnknownRecordMode};
pub use plan::Plan;
pub use setup::{Cassette, Pace};
pub(crate) use store::{CassetteStore, Claim};
