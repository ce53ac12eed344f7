//! The PAYLOAD argument of `snakepen call`: JSON, read as the host will
//! read it, or a usage error that says why not.

use crate::Failure;

/// The PAYLOAD argument as JSON bytes, or why it is not JSON (bad usage).
pub(crate) fn payload_of(text: &str) -> Result<Vec<u8>, Failure> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => Ok(serde_json::to_vec(&value).expect("a JSON value always serializes")),
        // serde_json refuses a 128th level of nesting as a syntax error like
        // any other; the text may be valid JSON still, so it is measured.
        Err(e) if nesting(text) >= MAX_PAYLOAD_NESTING => Err(Failure::Usage(format!(
            "PAYLOAD nests arrays or objects {} levels deep ({e}); snakepen reads at most {}: flatten it",
            nesting(text),
            MAX_PAYLOAD_NESTING - 1
        ))),
        Err(e) => Err(Failure::Usage(format!(
            "PAYLOAD {text:?} is not valid JSON ({e}); quote it for the shell, as in '{{\"x\": 1}}'"
        ))),
    }
}

/// The first level of nesting serde_json refuses.
const MAX_PAYLOAD_NESTING: usize = 128;

/// How deep arrays and objects nest in `text`, read as JSON would be
/// (brackets inside strings do not count).
fn nesting(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for c in text.chars() {
        match (in_string, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (true, false, '"') => in_string = false,
            (true, false, _) => {}
            (false, _, '"') => in_string = true,
            (false, _, '[' | '{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (false, _, ']' | '}') => depth = depth.saturating_sub(1),
            (false, _, _) => {}
        }
    }
    deepest
}
