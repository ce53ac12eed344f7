//! The chaos tier: real `kill -9`, of workers under load and of the host
//! process itself, and hostile HTTP clients. Run it alone with
//! `cargo test --test chaos`.

#[path = "../support/mod.rs"]
mod support;

mod host_death;
mod hostile_clients;
mod orphans;
mod storms;
