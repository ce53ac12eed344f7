//! What a worker says about each of its handlers in its handshake: the
//! signature as written, the docstring, how it answers, and the JSON
//! Schema of the payloads it takes (derived by the worker from the
//! annotations, where they map to JSON Schema).

use serde::{Deserialize, Serialize};

/// One handler of the module, as its worker described it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Handler {
    /// The command that calls it.
    pub name: String,
    /// How it answers.
    pub kind: HandlerKind,
    /// Its docstring, without the indentation.
    #[serde(default)]
    pub doc: Option<String>,
    /// Its parameters in order (`self` left out).
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    /// It takes the payload's bytes as they came (one parameter annotated
    /// `bytes`), with no JSON in between.
    #[serde(default)]
    pub takes_bytes: bool,
    /// The return annotation, as written.
    #[serde(default)]
    pub returns: Option<String>,
    /// The JSON Schema of the payloads it accepts: an object of keyword
    /// arguments, an array of positional ones or, for a handler of one
    /// argument, that argument alone. `{}` (any JSON) where the
    /// annotations do not say.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub schema: serde_json::Value,
    /// Why the worker could not read the handler's signature, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// How a handler answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HandlerKind {
    /// A function: one answer.
    Plain,
    /// An `async def`: one answer, and many calls at once on a worker's
    /// event loop with `max_concurrency`.
    Async,
    /// A generator: it streams (`/v1/stream`); a plain call gets its chunks collected.
    Generator,
    /// An async generator: streams, on the event loop.
    AsyncGenerator,
}

/// One parameter of a handler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Parameter {
    pub name: String,
    pub kind: ParameterKind,
    /// Whether a call must give it (it has no default, and is not `*args` or `**kwargs`).
    pub required: bool,
    /// Its annotation as written, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation: Option<String>,
    /// Its default, when that is JSON (`null` for `None`).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Object)]
    pub default: Option<serde_json::Value>,
    /// Its default's `repr()`, when that is not JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_repr: Option<String>,
}

/// How an argument binds to a parameter (Python's `inspect.Parameter.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ParameterKind {
    PositionalOnly,
    PositionalOrKeyword,
    VarPositional,
    KeywordOnly,
    VarKeyword,
}

/// A field that is present is `Some`, even when it is `null`.
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(deserializer).map(Some)
}
