//! Explaining a miss: the closest recorded request, how it differs, and what to do.

use crate::{Matchable, Payload};
use serde_json::Value;
use snakepen_guest::cassette::CassetteInfo;

/// The most differences a miss report lists.
const MAX_DIFFERENCES: usize = 12;

/// `text`, cut to about `max` characters.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}… ({} characters)", text.chars().count())
}

/// The recorded request of the same command that differs from `request`
/// in the fewest fields.
pub fn closest<'a>(request: &Matchable, recorded: &'a [Matchable]) -> Option<&'a Matchable> {
    recorded
        .iter()
        .filter(|r| r.command == request.command)
        .min_by_key(|r| {
            let mut lines = Vec::new();
            payload_diff(&r.payload, &request.payload, &mut lines);
            lines.len() + usize::from(r.session != request.session)
        })
}

/// Field by field, how `request` differs from the recorded `closest`.
pub fn differences(closest: &Matchable, request: &Matchable) -> Vec<String> {
    let mut lines = Vec::new();
    if closest.session != request.session {
        lines.push(format!(
            "session: {} -> {}",
            show_session(&closest.session),
            show_session(&request.session)
        ));
    }
    payload_diff(&closest.payload, &request.payload, &mut lines);
    if lines.len() > MAX_DIFFERENCES {
        let more = lines.len() - MAX_DIFFERENCES;
        lines.truncate(MAX_DIFFERENCES);
        lines.push(format!("… and {more} more"));
    }
    lines
}

fn show_session(session: &Option<String>) -> String {
    session
        .as_deref()
        .map_or("none".to_string(), |s| format!("{s:?}"))
}

fn payload_diff(recorded: &Payload, now: &Payload, lines: &mut Vec<String>) {
    match (recorded, now) {
        (Payload::Json(a), Payload::Json(b)) => value_diff("", a, b, lines),
        (a, b) if a.canonical() != b.canonical() => lines.push(format!(
            "payload: {} -> {}",
            shorten(&a.canonical(), 80),
            shorten(&b.canonical(), 80)
        )),
        _ => {}
    }
}

fn value_diff(path: &str, recorded: &Value, now: &Value, lines: &mut Vec<String>) {
    match (recorded, now) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let at = format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"));
                match b.get(key) {
                    Some(other) => value_diff(&at, value, other, lines),
                    None => lines.push(format!("{at}: only recorded ({})", show(value))),
                }
            }
            for (key, value) in b {
                if !a.contains_key(key) {
                    let at = format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"));
                    lines.push(format!("{at}: only now ({})", show(value)));
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                value_diff(&format!("{path}/{i}"), x, y, lines);
            }
        }
        (a, b) if a != b => {
            let at = if path.is_empty() { "payload" } else { path };
            lines.push(format!("{at}: {} -> {}", show(a), show(b)));
        }
        _ => {}
    }
}

fn show(value: &Value) -> String {
    shorten(&value.to_string(), 80)
}

/// What to do about a miss with nothing used up.
pub fn hint(
    request: &Matchable,
    closest: Option<&Matchable>,
    recorded: &[Matchable],
    info: &CassetteInfo,
) -> String {
    let record = if info.mode == "none" || info.mode == "once" {
        "record it: run with SNAKEPEN_RECORD_MODE=new_episodes to add it to the cassette (or all to record everything again)"
    } else {
        "record it: the mode records what is missing, so this should not happen; report it"
    };
    let Some(closest) = closest else {
        let mut commands: Vec<&str> = recorded.iter().map(|r| r.command.as_str()).collect();
        commands.sort_unstable();
        commands.dedup();
        let known = if commands.is_empty() {
            "the cassette is empty".to_string()
        } else {
            format!("it has {}", commands.join(", "))
        };
        return format!(
            "no call of `{}` was recorded ({known}); {record}",
            request.command
        );
    };
    let mut fields = Vec::new();
    if let (Payload::Json(a), Payload::Json(b)) = (&closest.payload, &request.payload) {
        changed_fields("", a, b, &mut fields);
    }
    let session = closest.session != request.session;
    match (fields.first(), session) {
        (Some(field), _) => format!(
            "if `{field}` changes from run to run (a timestamp, an id), leave it out of matching with ignore = [\"{field}\"] \
             (Cassette::ignore); if the request really is new, {record}"
        ),
        (None, true) => format!(
            "only the session differs: if session ids change from run to run, set match_session = false; otherwise {record}"
        ),
        (None, false) => record.to_string(),
    }
}

/// The names of the fields that differ (the last component of each path).
fn changed_fields(path: &str, recorded: &Value, now: &Value, found: &mut Vec<String>) {
    match (recorded, now) {
        (Value::Object(a), Value::Object(b)) => {
            for key in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => changed_fields(key, x, y, found),
                    _ => found.push(key.clone()),
                }
            }
        }
        (a, b) if a != b && !path.is_empty() => found.push(path.to_string()),
        _ => {}
    }
}
