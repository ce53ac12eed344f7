//! Writing a snakepen adapter in Rust.
//!
//! An adapter is a type that implements [`Adapter`]: its configuration
//! (any `serde` type; the host hands it over as JSON) and how it serves one
//! request. [`adapter!`] exports it as the `snakepen:adapter` component:
//!
//! ```ignore
//! use snakepen_guest::{Adapter, CallError, Request, Response};
//!
//! #[derive(Default, serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config { greeting: Option<String> }
//!
//! struct Hello;
//!
//! impl Adapter for Hello {
//!     type Config = Config;
//!     fn call(config: &Config, request: Request) -> Result<Response, CallError> {
//!         let name: String = request.json()?;
//!         let greeting = config.greeting.as_deref().unwrap_or("hello");
//!         Response::json(&format!("{greeting}, {name}"))
//!     }
//! }
//!
//! snakepen_guest::adapter!(Hello);
//! ```
//!
//! What the host lends an adapter is in [`host`]: the worker pool, the next
//! adapter of a chain, counters, sleeping, the log, and the cassette.
//! Instances are not reused between calls: state that must outlive a call
//! goes into [`host::count`] counters.

wit_bindgen::generate!({
    world: "plugin",
    path: "../../wit/adapter.wit",
    pub_export_macro: true,
    export_macro_name: "export_adapter",
    default_bindings_module: "snakepen_guest",
});

pub use exports::snakepen::adapter::adapter::Guest;
pub use snakepen::adapter::types::{
    CallError, CassetteMiss, ConfigError, Interaction, Level, PoolExhausted, PythonException,
    Request, Response, WorkerCrashed,
};
pub use snakepen::adapter::cassette::StreamedInteraction;
pub use snakepen::adapter::next::StreamedOutcome;
pub use snakepen::adapter::streams::{StreamItem, TimedChunk};
pub use snakepen::adapter::{cassette, counters, log, next, streams, timers, workers};

/// An adapter: its configuration and how it serves one request.
pub trait Adapter: 'static {
    /// The configuration, read from the JSON the host hands over (a TOML
    /// file is converted by the host). Give it `#[serde(deny_unknown_fields)]`
    /// so that a misspelt field is refused instead of ignored; its `Default`
    /// is what an instance has before `configure`.
    type Config: serde::de::DeserializeOwned + Default + 'static;

    /// Checks a configuration that parsed, beyond its shape (a value out of
    /// range, fields that contradict each other). Its error names the field.
    fn check(config: &Self::Config) -> Result<(), ConfigError> {
        let _ = config;
        Ok(())
    }

    /// Serves one request.
    fn call(config: &Self::Config, request: Request) -> Result<Response, CallError>;
}

/// Exports `$adapter` (a type implementing [`Adapter`]) as this component's
/// `adapter` interface: `configure` parses and checks its configuration,
/// `call` serves a request with it.
#[macro_export]
macro_rules! adapter {
    ($adapter:ty) => {
        const _: () = {
            ::std::thread_local! {
                static CONFIG: ::std::cell::RefCell<<$adapter as $crate::Adapter>::Config> =
                    ::std::cell::RefCell::new(::std::default::Default::default());
            }

            struct Export;

            impl $crate::Guest for Export {
                fn configure(config: ::std::string::String) -> ::std::result::Result<(), $crate::ConfigError> {
                    let parsed = $crate::parse_config::<<$adapter as $crate::Adapter>::Config>(&config)?;
                    <$adapter as $crate::Adapter>::check(&parsed)?;
                    CONFIG.with(|c| *c.borrow_mut() = parsed);
                    Ok(())
                }

                fn call(request: $crate::Request) -> ::std::result::Result<$crate::Response, $crate::CallError> {
                    CONFIG.with(|c| <$adapter as $crate::Adapter>::call(&c.borrow(), request))
                }
            }

            $crate::export_adapter!(Export with_types_in $crate);
        };
    };
}

/// Declares the JSON Schema of this adapter's configuration, which
/// `snakepen inspect` shows (it is kept in the component's custom section
/// `snakepen:config-schema`, so any tool can read it without running the
/// adapter). Give it a string literal or a `const` `&str`:
///
/// ```ignore
/// snakepen_guest::config_schema!(r#"{"type": "object", "properties": {"limit": {"type": "integer"}}}"#);
/// ```
#[macro_export]
macro_rules! config_schema {
    ($schema:expr) => {
        const _: () = {
            const SCHEMA: &str = $schema;
            #[unsafe(link_section = "snakepen:config-schema")]
            #[used]
            static SECTION: [u8; SCHEMA.len()] = $crate::__section_bytes::<{ SCHEMA.len() }>(SCHEMA);
        };
    };
}

#[doc(hidden)]
pub const fn __section_bytes<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

impl Request {
    /// A request for `command` with `payload` serialized as JSON.
    pub fn new_json(command: &str, payload: &impl serde::Serialize) -> Request {
        Request {
            command: command.to_string(),
            session: None,
            deadline_ms: None,
            payload: serde_json::to_vec(payload).expect("a serde value serializes to JSON"),
        }
    }

    /// The payload parsed as JSON into `T`; a payload that does not fit is a
    /// `bad-request` that names the command and what was wrong.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, CallError> {
        serde_json::from_slice(&self.payload).map_err(|e| {
            CallError::BadRequest(format!(
                "the payload of `{}` does not fit: {e}",
                self.command
            ))
        })
    }
}

impl Response {
    /// An answer whose payload is `value` as JSON.
    pub fn json(value: &impl serde::Serialize) -> Result<Response, CallError> {
        serde_json::to_vec(value)
            .map(Response::bytes)
            .map_err(|e| CallError::AdapterFault(format!("the answer cannot be written as JSON: {e}")))
    }

    /// An answer whose payload is `payload`, as it is.
    pub fn bytes(payload: Vec<u8>) -> Response {
        Response {
            payload,
            worker_pid: None,
        }
    }

    /// The payload parsed as JSON into `T`.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, CallError> {
        serde_json::from_slice(&self.payload).map_err(|e| {
            CallError::AdapterFault(format!("the answer is not the JSON expected: {e}"))
        })
    }
}

impl CallError {
    /// The contract's name for this case, such as `pool-exhausted`.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Timeout(_) => "timeout",
            CallError::PoolExhausted(_) => "pool-exhausted",
            CallError::WorkerCrashed(_) => "worker-crashed",
            CallError::PythonException(_) => "python-exception",
            CallError::BadRequest(_) => "bad-request",
            CallError::NoSuchCommand(_) => "no-such-command",
            CallError::SessionWorkerGone(_) => "session-worker-gone",
            CallError::Unavailable(_) => "unavailable",
            CallError::AdapterFault(_) => "adapter-fault",
            CallError::CassetteMiss(_) => "cassette-miss",
        }
    }
}

impl ConfigError {
    /// A refusal of the field at `path` (such as `commands.predict.retries`).
    pub fn field(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            field: Some(path.into()),
            message: message.into(),
        }
    }
}

/// What the host lends an adapter, as plain functions.
pub mod host {
    use super::{CallError, Level, Request, Response};

    /// Runs `request` on the host's Python workers (`unavailable` when the
    /// host has no pool).
    pub fn workers(request: &Request) -> Result<Response, CallError> {
        super::workers::call(request)
    }

    /// Whether this call's caller reads a stream: then the adapter may pass
    /// chunks on with [`emit`] before it returns the outcome.
    pub fn stream_wanted() -> bool {
        super::streams::wanted()
    }

    /// Starts `request` on the host's Python workers as a streamed call:
    /// its items come from [`WorkerStream::next`].
    pub fn workers_stream(request: &Request) -> Result<WorkerStream, CallError> {
        super::streams::start(request).map(|handle| WorkerStream { handle, open: true })
    }

    /// Sends `chunk` to this call's caller (waiting while it has not taken
    /// the chunks before); `unavailable` once the caller went away.
    pub fn emit(chunk: &[u8]) -> Result<(), CallError> {
        super::streams::emit(chunk)
    }

    /// A streamed call on a worker; dropping it before its end stops it
    /// (the handler's generator is closed).
    pub struct WorkerStream {
        handle: u64,
        open: bool,
    }

    impl WorkerStream {
        /// The next chunk, or the end with the handler's return value.
        pub fn next(&mut self) -> Result<super::StreamItem, CallError> {
            let item = super::streams::next(self.handle);
            if !matches!(item, Ok(super::StreamItem::Chunk(_))) {
                self.open = false;
            }
            item
        }
    }

    impl Drop for WorkerStream {
        fn drop(&mut self) {
            if self.open {
                super::streams::stop(self.handle);
            }
        }
    }

    /// Runs `request` through the next adapter of the chain (`unavailable`
    /// when there is none).
    pub fn next(request: &Request) -> Result<Response, CallError> {
        super::next::call(request)
    }

    /// [`next`] for a caller that reads a stream: the chunks the next
    /// adapter emits reach this call's caller as they come, and come back
    /// with their times beside the outcome. (No chunks when the caller
    /// reads no stream.)
    pub fn next_streamed(request: &Request) -> super::StreamedOutcome {
        super::next::call_streamed(request)
    }

    /// Adds `delta` to this host's counter `name`; its new value.
    pub fn count(name: &str, delta: u64) -> u64 {
        super::counters::add(name, delta)
    }

    /// This host's counter `name` (0 if never added to).
    pub fn counter(name: &str) -> u64 {
        super::counters::get(name)
    }

    /// Suspends this call for `ms` milliseconds without blocking the host.
    pub fn sleep_ms(ms: u64) {
        super::timers::sleep(ms)
    }

    /// Writes a line to the host's log, tagged with the adapter's name.
    pub fn log(level: Level, message: &str) {
        super::log::log(level, message)
    }

    /// [`log`] at `warn`.
    pub fn warn(message: &str) {
        log(Level::Warn, message)
    }

    /// [`log`] at `info`.
    pub fn info(message: &str) {
        log(Level::Info, message)
    }

    /// [`log`] at `debug`.
    pub fn debug(message: &str) {
        log(Level::Debug, message)
    }

    /// Whether a log line at `level` would be written (skip building one
    /// that nobody reads).
    pub fn log_enabled(level: Level) -> bool {
        super::log::enabled(level)
    }

    /// The host's cassette, when it has one: its path, record mode and
    /// how many interactions it held at start.
    pub fn cassette() -> Option<super::cassette::CassetteInfo> {
        super::cassette::info()
    }

    /// Adds `interaction` to the host's recording (written atomically when
    /// the host shuts down); an `adapter-fault` when the host cannot keep it.
    pub fn record(interaction: &super::Interaction) -> Result<(), CallError> {
        super::cassette::append(interaction).map_err(|e| not_recorded(&interaction.request, &e))
    }

    /// [`record`], with the chunks of a streamed call.
    pub fn record_streamed(streamed: &super::StreamedInteraction) -> Result<(), CallError> {
        super::cassette::append_streamed(streamed)
            .map_err(|e| not_recorded(&streamed.interaction.request, &e))
    }

    fn not_recorded(request: &Request, why: &str) -> CallError {
        CallError::AdapterFault(format!(
            "`{}` ran, but its interaction could not be recorded: {why}",
            request.command
        ))
    }
}

/// Parses an adapter's JSON configuration into `T`, reporting the path of the
/// offending field (such as `responses[1].command`) when it does not fit.
///
/// Give `T` `#[serde(deny_unknown_fields)]` so that a misspelt field is
/// refused instead of ignored. ([`adapter!`] calls it for you.)
pub fn parse_config<T: serde::de::DeserializeOwned>(config: &str) -> Result<T, ConfigError> {
    // serde would read an array into a struct field by field; a configuration
    // is a table of named fields, so refuse anything else as a whole.
    if !config.trim_start().starts_with('{') {
        return Err(ConfigError {
            field: None,
            message:
                "the configuration must be a table of fields (a TOML document or a JSON object)"
                    .into(),
        });
    }
    // Adapters parse their configuration on every fresh instance: take the
    // fast path, and track field paths only to explain a failure.
    if let Ok(parsed) = serde_json::from_str(config) {
        return Ok(parsed);
    }
    let mut de = serde_json::Deserializer::from_str(config);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != ".").then_some(path);
        // The host may have converted TOML to this JSON: a JSON line and
        // column would point the user at text they never wrote.
        let message = e.into_inner().to_string();
        let message = match message.rfind(" at line ") {
            Some(at) => message[..at].to_string(),
            None => message,
        };
        ConfigError { field, message }
    })
}
