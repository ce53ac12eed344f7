//! The record modes (Ruby VCR's), by name, and the variable that overrides them.

/// The environment variable that overrides a host's record mode.
pub const MODE_VARIABLE: &str = "SNAKEPEN_RECORD_MODE";

/// When a cassette records and when it replays (the modes of Ruby's VCR).
/// What each mode does with what the file holds is the [`super::Plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordMode {
    /// Record when the cassette holds nothing recorded yet (no file, an
    /// empty file, or a header only); otherwise replay only.
    Once,
    /// Replay what the cassette has; record what it has not.
    NewEpisodes,
    /// Replay only: a request the cassette lacks is a miss. Python never starts.
    None,
    /// Record every call again; the cassette is replaced when the host shuts down.
    All,
}

impl RecordMode {
    /// The mode's name: `once`, `new_episodes`, `none` or `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordMode::Once => "once",
            RecordMode::NewEpisodes => "new_episodes",
            RecordMode::None => "none",
            RecordMode::All => "all",
        }
    }

    /// Every mode, in the order messages list them.
    pub const ALL: [RecordMode; 4] = [
        RecordMode::Once,
        RecordMode::NewEpisodes,
        RecordMode::None,
        RecordMode::All,
    ];
}

impl std::fmt::Display for RecordMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not a record mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record mode `{value}` is not one of once, new_episodes, none, all")]
pub struct UnknownRecordMode {
    /// The word given.
    pub value: String,
}

impl std::str::FromStr for RecordMode {
    type Err = UnknownRecordMode;

    /// A mode's name, in any case, with `new-episodes` for `new_episodes`.
    fn from_str(text: &str) -> Result<RecordMode, UnknownRecordMode> {
        match text.trim().to_ascii_lowercase().as_str() {
            "once" => Ok(RecordMode::Once),
            "new_episodes" | "new-episodes" => Ok(RecordMode::NewEpisodes),
            "none" => Ok(RecordMode::None),
            "all" => Ok(RecordMode::All),
            _ => Err(UnknownRecordMode { value: text.into() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mode_reads_back_from_its_name() {
        for mode in RecordMode::ALL {
            assert_eq!(mode.to_string().parse(), Ok(mode));
            assert_eq!(mode.to_string().to_uppercase().parse(), Ok(mode));
        }
        assert_eq!("new-episodes".parse(), Ok(RecordMode::NewEpisodes));
        let err = "sometimes".parse::<RecordMode>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "record mode `sometimes` is not one of once, new_episodes, none, all"
        );
    }
}
