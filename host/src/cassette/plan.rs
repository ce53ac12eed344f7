//! The cassette plan: what a host does with its cassette, decided once, at
//! build, from the record mode and what the file holds. The host builds its
//! chain from it (the replayer alone, or the recorder in front of the real
//! adapter), the store saves by it, and the recorder follows it through the
//! contract's `cassette.plan` instead of deciding again.
//!
//! | mode           | no file        | empty file¹    | header only²   | interactions   |
//! |----------------|----------------|----------------|----------------|----------------|
//! | `none`         | refused        | refused        | replay only    | replay only    |
//! | `once`         | record missing | record missing | record missing | replay only    |
//! | `new_episodes` | record missing | record missing | record missing | record missing |
//! | `all`          | re-record      | re-record      | re-record      | re-record      |
//!
//! ¹ nothing in it, not even a header. ² a header and no interaction.
//!
//! `once` asks "has this cassette been recorded?": a file with nothing
//! recorded in it has not, so `once` records it, as a missing one (an empty
//! cassette could only answer every call with a miss).

use super::mode::RecordMode;

/// What a host does with its cassette.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Plan {
    /// Replay only: a request the cassette lacks is a miss. No Python starts.
    ReplayOnly,
    /// Replay what the cassette holds; run and record what it lacks. The
    /// saved cassette keeps what it held, followed by the new recordings.
    RecordMissing,
    /// Run and record every call; the saved cassette replaces what it held.
    ReRecord,
}

/// What the cassette file held when the host started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Held {
    /// There is no file.
    Missing,
    /// The file has nothing in it, not even a header.
    Blank,
    /// A cassette with this many interactions (0: a header only).
    Interactions(usize),
}

impl Plan {
    /// The plan for `mode` and what the file holds; `None` when the mode
    /// only replays and there is nothing to replay (the host refuses to start).
    pub(crate) fn decide(mode: RecordMode, held: Held) -> Option<Plan> {
        let recorded = matches!(held, Held::Interactions(n) if n > 0);
        match mode {
            RecordMode::None => match held {
                Held::Missing | Held::Blank => None,
                Held::Interactions(_) => Some(Plan::ReplayOnly),
            },
            RecordMode::Once if recorded => Some(Plan::ReplayOnly),
            RecordMode::Once | RecordMode::NewEpisodes => Some(Plan::RecordMissing),
            RecordMode::All => Some(Plan::ReRecord),
        }
    }

    /// The plan's name: `replay-only`, `record-missing` or `re-record`.
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::ReplayOnly => "replay-only",
            Plan::RecordMissing => "record-missing",
            Plan::ReRecord => "re-record",
        }
    }

    /// Whether calls run through the real adapter (and Python starts).
    pub fn records(self) -> bool {
        self != Plan::ReplayOnly
    }
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_of_the_module_doc() {
        use Held::*;
        use Plan::*;
        let held = [Missing, Blank, Interactions(0), Interactions(3)];
        let table = [
            (
                RecordMode::None,
                [None, None, Some(ReplayOnly), Some(ReplayOnly)],
            ),
            (
                RecordMode::Once,
                [
                    Some(RecordMissing),
                    Some(RecordMissing),
                    Some(RecordMissing),
                    Some(ReplayOnly),
                ],
            ),
            (RecordMode::NewEpisodes, [Some(RecordMissing); 4]),
            (RecordMode::All, [Some(ReRecord); 4]),
        ];
        for (mode, plans) in table {
            for (held, plan) in held.iter().zip(plans) {
                assert_eq!(Plan::decide(mode, *held), plan, "{mode} with {held:?}");
            }
        }
    }
}
