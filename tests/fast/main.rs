//! The fast tier: the contract, the sandbox runtime and the mock adapter,
//! with no Python anywhere. Run it alone with `cargo test --test fast`.

#[path = "../support/mod.rs"]
mod support;

mod cassette_format;
mod cassette_plan;
mod cassette_streams;
mod cassettes;
mod cli;
mod errors;
mod instances;
mod isolation;
mod loading;
mod mock;
mod mock_config;
mod mock_streams;
mod module_tree;
mod sandbox;
mod serve;
mod versions;
