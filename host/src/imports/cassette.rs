//! `snakepen:adapter/cassette`: the host's one cassette file, if it has one.
//! The store speaks the host's types; this is where they become the contract's.

use super::call_state::CallState;
use crate::bindings::snakepen::adapter::cassette::{
    CassetteInfo, CassettePlan, Claimed, ClaimedStreamed, Host, StreamedInteraction,
};
use crate::bindings::snakepen::adapter::streams::TimedChunk;
use crate::bindings::wit;
use crate::cassette::{Claim, Plan, Recorded};
use crate::{CallError, Request, Response};
use std::time::Duration;

impl Host for CallState {
    fn info(&mut self) -> Option<CassetteInfo> {
        self.links.cassette.as_ref().map(|c| CassetteInfo {
            path: c.path().display().to_string(),
            mode: c.mode().as_str().to_string(),
            interactions: u32::try_from(c.interactions().len()).unwrap_or(u32::MAX),
        })
    }

    fn plan(&mut self) -> Option<CassettePlan> {
        self.links.cassette.as_ref().map(|c| match c.plan() {
            Plan::ReplayOnly => CassettePlan::ReplayOnly,
            Plan::RecordMissing => CassettePlan::RecordMissing,
            Plan::ReRecord => CassettePlan::ReRecord,
        })
    }

    fn interactions(&mut self) -> Vec<wit::Interaction> {
        self.links
            .cassette
            .as_ref()
            .map(|c| c.interactions().iter().map(interaction).collect())
            .unwrap_or_default()
    }

    fn indexed(&mut self) -> bool {
        self.links.cassette.as_ref().is_some_and(|c| c.indexed())
    }

    fn index(&mut self, keys: Vec<String>) {
        if let Some(cassette) = &self.links.cassette {
            cassette.set_index(keys);
        }
    }

    fn claim(&mut self, key: String, repeat: bool) -> Claimed {
        let Some(cassette) = &self.links.cassette else {
            return Claimed::Absent;
        };
        match cassette.claim(&key, repeat) {
            Claim::Found(recorded) => Claimed::Found(interaction(recorded)),
            Claim::UsedUp(times) => Claimed::UsedUp(times),
            Claim::Absent => Claimed::Absent,
        }
    }

    fn append(&mut self, interaction: wit::Interaction) -> Result<(), String> {
        self.append_streamed(StreamedInteraction {
            interaction,
            chunks: None,
        })
    }

    fn claim_streamed(&mut self, key: String, repeat: bool) -> ClaimedStreamed {
        let Some(cassette) = &self.links.cassette else {
            return ClaimedStreamed::Absent;
        };
        match cassette.claim(&key, repeat) {
            Claim::Found(recorded) => ClaimedStreamed::Found(StreamedInteraction {
                interaction: interaction(recorded),
                chunks: recorded.chunks.as_ref().map(|chunks| {
                    chunks
                        .iter()
                        .map(|timed| TimedChunk {
                            offset_us: u64::try_from(timed.offset.as_micros()).unwrap_or(u64::MAX),
                            chunk: timed.chunk.clone(),
                        })
                        .collect()
                }),
            }),
            Claim::UsedUp(times) => ClaimedStreamed::UsedUp(times),
            Claim::Absent => ClaimedStreamed::Absent,
        }
    }

    fn append_streamed(&mut self, streamed: StreamedInteraction) -> Result<(), String> {
        match &self.links.cassette {
            Some(cassette) => {
                let interaction = streamed.interaction;
                let request = Request::from(interaction.request);
                let outcome: Result<Response, CallError> =
                    interaction.outcome.map(Into::into).map_err(Into::into);
                let chunks: Option<Vec<crate::cassette::TimedChunk>> =
                    streamed.chunks.map(|chunks| {
                        chunks
                            .into_iter()
                            .map(|timed| crate::cassette::TimedChunk {
                                offset: Duration::from_micros(timed.offset_us),
                                chunk: timed.chunk,
                            })
                            .collect()
                    });
                // The time the next adapter took is the interaction's; the host measured it.
                cassette.append(
                    &request,
                    &outcome,
                    self.next_elapsed.take(),
                    chunks.as_deref(),
                )
            }
            None => Err(format!(
                "adapter `{}` asked to record, but this host has no cassette: build the host with one (HostBuilder::cassette)",
                self.links.name
            )),
        }
    }
}

/// A recorded interaction as the contract hands it to adapters.
fn interaction(recorded: &Recorded) -> wit::Interaction {
    wit::Interaction {
        request: wit::Request::from(&recorded.request),
        outcome: recorded.outcome.clone().map(Into::into).map_err(Into::into),
    }
}
