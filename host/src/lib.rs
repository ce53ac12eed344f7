//! snakepen: a pool of long-lived Python workers behind sandboxed
//! WebAssembly adapters.
//!
//! A [`Host`] runs one adapter component (mock, Python bridge, recorder,
//! replayer, or your own) loaded through the `snakepen:adapter` WIT contract
//! in `wit/`. Each host owns its adapter's configuration and state; there is
//! no global state, so a program or a test suite may run many hosts side by
//! side, each with a different adapter.
//!
//! (A runnable version is `examples/demo.rs`, `just demo`.)
//!
//! ```ignore
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use snakepen::{Host, Request};
//! let host = Host::builder()
//!     .adapter("mock")
//!     .config(serde_json::json!({ "responses": [{ "command": "ping", "response": "pong" }] }))
//!     .build()
//!     .await?;
//! let response = host.call(Request::new("ping", "{}")).await?;
//! assert_eq!(response.json()?, "pong");
//! # Ok(()) }
//! ```

pub mod adapter;
mod alarm;
mod bindings;
mod call;
pub mod cassette;
mod config;
mod defaults;
mod error;
mod host;
mod imports;
mod limits;
pub mod pool;
mod runtime;
mod sandbox;
pub mod serve;
mod slots;

pub use adapter::{Adapter, CONTRACT_VERSION, ComponentInfo};
pub use call::{Request, Response};
pub use cassette::{Cassette, RecordMode};
pub use config::AdapterConfig;
pub use error::{CallError, CassetteMiss, Error};
pub use host::{CallStream, DEFAULT_CALL_TIMEOUT, Host, HostBuilder};
pub use imports::Counters;
pub use limits::{Grant, LimitError, LimitRange, LimitUnit, Limits};
pub use pool::{
    Affinity, Handler, HandlerKind, Parameter, ParameterKind, Pool, PoolConfig, PoolSettings,
    PoolStatus, PoolStream, QueueWait, RayConfig, RayFrames, StreamItem,
};
pub use runtime::{Runtime, RuntimeBuilder};
