//! `snakepen:adapter/cassette`: the host's one cassette file, if it has one.

use super::CallState;
use crate::bindings::snakepen::adapter::cassette::{CassetteInfo, Claimed, Host};
use crate::bindings::wit;

impl Host for CallState {
    fn info(&mut self) -> Option<CassetteInfo> {
        self.links.cassette.as_ref().map(|c| c.info())
    }

    fn interactions(&mut self) -> Vec<wit::Interaction> {
        self.links
            .cassette
            .as_ref()
            .map(|c| c.interactions().to_vec())
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
        match &self.links.cassette {
            Some(cassette) => cassette.claim(&key, repeat),
            None => Claimed::Absent,
        }
    }

    fn append(&mut self, interaction: wit::Interaction) -> Result<(), String> {
        match &self.links.cassette {
            // The time the next adapter took is the interaction's; the host measured it.
            Some(cassette) => cassette.append(interaction, self.next_elapsed.take()),
            None => Err(format!(
                "adapter `{}` asked to record, but this host has no cassette: give it one (HostBuilder::cassette, or --cassette)",
                self.links.name
            )),
        }
    }
}
