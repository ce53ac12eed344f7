//! The integration tier: real Python workers behind the python-bridge
//! adapter. Run it alone with `cargo test --test integration`.

#[path = "../support/mod.rs"]
mod support;

mod affinity;
mod answers;
mod authoring;
mod bridge;
mod calls;
mod cassettes;
mod cli;
mod concurrency;
mod doctor;
mod dspy;
mod exports;
mod failures;
mod forkserver;
mod functions;
mod hostile;
mod inputs;
mod interpreter;
mod lifecycle;
mod many_calls;
mod memory;
mod openapi;
mod output;
mod pools;
mod python_adapter;
mod python_client;
mod reload;
mod serve;
mod streams;
