//! `snakepen:adapter/cassette`: the host's one cassette file, if it has one.
//! The store speaks the host's types; this is where they become the contract's.

use super::call_state::CallState;
use crate::bindings::snakepen::adapter::cassette::{CassetteInfo, CassettePlan, Claimed, Host};
use crate::bindings::wit;
use crate::cassette::{Claim, Plan, Recorded};
use crate::{CallError, Request, Response};

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
        match &self.links.cassette {
            Some(cassette) => {
                let request = Request::from(interaction.request);
                let outcome: Result<Response, CallError> =
                    interaction.outcome.map(Into::into).map_err(Into::into);
                // The time the next adapter took is the interaction's; the host measured it.
                cassette.append(&request, &outcome, self.next_elapsed.take())
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
