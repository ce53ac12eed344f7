//! What the command line adds to a library error: the flag (or task) that
//! fixes it. The library's messages state facts and name its own API; the
//! flags are defined here, in the CLI, so the advice about them is too.

use snakepen::Error;

/// The advice for `error`, by variant: a sentence to add to its message.
pub fn hint(error: &Error) -> Option<&'static str> {
    Some(match error {
        Error::AdapterNotFound { .. } => {
            "Run `just plugins` to build the bundled adapters, give --plugin-dir DIR, or pass --adapter a path to a .wasm file"
        }
        Error::NotWasm { .. } => "Point --adapter at a .wasm component built for wasm32-wasip2",
        Error::NothingToRecord { .. } => {
            "Give the workers a Python module with --module, or replay only with --record-mode none"
        }
        Error::CassetteNotFound { .. } => {
            "Check the --cassette path, or record it with --module and --record-mode once"
        }
        _ => return None,
    })
}

/// `error`'s message with the advice, if there is any, after it.
pub fn explained(error: &Error) -> String {
    match hint(error) {
        Some(hint) => format!("{error}. {hint}"),
        None => error.to_string(),
    }
}
