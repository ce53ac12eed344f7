//! What an adapter may use: the limits of one host's adapter (memory,
//! tables, stack, time, answer size, instances), the range each can take,
//! and the directories granted to it (none by default).

use std::path::PathBuf;

/// Every limit one host's adapter runs under, as `Host::limits` reports them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Limits {
    /// The most linear memory one instance may have, in bytes.
    pub max_memory_bytes: usize,
    /// The most elements one table of an instance may have.
    pub max_table_elements: usize,
    /// The most WebAssembly stack one call may use, in bytes.
    pub max_stack_bytes: usize,
    /// The largest answer payload (or error text) an adapter may return, in bytes.
    pub max_response_bytes: usize,
    /// The deadline of a call whose request sets none, in milliseconds.
    pub call_timeout_ms: u64,
    /// How far past its deadline a running adapter is stopped, at most, in milliseconds.
    pub deadline_slack_ms: u64,
    /// How many adapter instances may be alive at once in the runtime.
    pub max_instances: u32,
    /// The directories granted to the adapter (none by default).
    pub granted_dirs: Vec<Grant>,
}

impl Limits {
    /// The limits and capabilities, a line each, for `snakepen inspect`.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![
            format!(
                "memory        {} per instance",
                bytes(self.max_memory_bytes)
            ),
            format!("tables        {} elements", self.max_table_elements),
            format!("stack         {}", bytes(self.max_stack_bytes)),
            format!("answer        {}", bytes(self.max_response_bytes)),
            format!(
                "deadline      {} ms when a request sets none; a running adapter is stopped within {} ms past it",
                self.call_timeout_ms, self.deadline_slack_ms
            ),
            format!(
                "instances     {} alive at once (more calls wait)",
                self.max_instances
            ),
            "network       none".into(),
            "environment   none (no variables, no arguments, clocks frozen at 0)".into(),
        ];
        if self.granted_dirs.is_empty() {
            lines.push("files         none (HostBuilder::grant_dir grants a directory)".into());
        }
        for grant in &self.granted_dirs {
            lines.push(format!(
                "files         {} as {} ({})",
                grant.host_path.display(),
                grant.guest_path,
                if grant.read_only {
                    "read-only"
                } else {
                    "read-write"
                }
            ));
        }
        lines
    }
}

/// One limit a host's adapter runs under, and the values the runtime can
/// honour. A value outside its range is refused (by `RuntimeBuilder::build`,
/// `HostBuilder::build` and `snakepen config check`), never clamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitRange {
    /// The limit's name, as in [`Limits`] and the `[limits]` section.
    pub key: &'static str,
    /// The least value that works.
    pub min: u64,
    /// The most the runtime can honour.
    pub max: u64,
    /// How its values read.
    pub unit: LimitUnit,
    /// Why the most is what it is.
    pub why: &'static str,
}

/// How a limit's values read in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitUnit {
    /// A byte count, shown as `64 MiB`.
    Bytes,
    /// Milliseconds.
    Millis,
    /// A plain count.
    Count,
}

impl LimitRange {
    /// The most linear memory one instance may have.
    pub const MEMORY: LimitRange = LimitRange {
        key: "max_memory_bytes",
        min: 64 << 10,
        max: 4 << 30,
        unit: LimitUnit::Bytes,
        why: "a 32-bit WebAssembly memory addresses 4 GiB at most, and one page is 64 KiB",
    };
    /// The most elements one table may have.
    pub const TABLE: LimitRange = LimitRange {
        key: "max_table_elements",
        min: 1,
        max: 1_000_000,
        unit: LimitUnit::Count,
        why: "every instance slot reserves its tables at their full size up front",
    };
    /// The most WebAssembly stack one call may use.
    pub const STACK: LimitRange = LimitRange {
        key: "max_stack_bytes",
        min: 64 << 10,
        max: 16 << 20,
        unit: LimitUnit::Bytes,
        why: "every instance slot reserves a call stack of this size (plus 1 MiB for the host) up front",
    };
    /// The largest answer an adapter may return.
    pub const RESPONSE: LimitRange = LimitRange {
        key: "max_response_bytes",
        min: 1,
        max: 4 << 30,
        unit: LimitUnit::Bytes,
        why: "an answer is read out of the adapter's memory, which holds 4 GiB at most",
    };
    /// The deadline of a call whose request sets none.
    pub const CALL_TIMEOUT: LimitRange = LimitRange {
        key: "call_timeout_ms",
        min: 1,
        max: 30 * 24 * 3_600_000,
        unit: LimitUnit::Millis,
        why: "deadlines are kept on timers that are not meant for more than 30 days",
    };
    /// How many instances may be alive at once in one runtime.
    pub const INSTANCES: LimitRange = LimitRange {
        key: "max_instances",
        min: 1,
        max: 4096,
        unit: LimitUnit::Count,
        why: "the runtime reserves address space for every instance slot up front",
    };
    /// Every limit, in the order `snakepen inspect` shows them.
    pub const ALL: [LimitRange; 6] = [
        LimitRange::MEMORY,
        LimitRange::TABLE,
        LimitRange::STACK,
        LimitRange::RESPONSE,
        LimitRange::CALL_TIMEOUT,
        LimitRange::INSTANCES,
    ];

    /// `value` if it lies in the range, else why not.
    pub fn check(self, value: u64) -> Result<u64, LimitError> {
        if (self.min..=self.max).contains(&value) {
            Ok(value)
        } else {
            Err(LimitError { range: self, value })
        }
    }

    pub(crate) fn show(&self, value: u64) -> String {
        match self.unit {
            LimitUnit::Bytes => format!("{value} ({})", bytes(value as usize)),
            LimitUnit::Millis => format!("{value} ms"),
            LimitUnit::Count => value.to_string(),
        }
    }
}

/// A limit set to a value the runtime cannot honour.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{}` {}", range.key, self.reason())]
pub struct LimitError {
    /// The limit and its range.
    pub range: LimitRange,
    /// The value given.
    pub value: u64,
}

impl LimitError {
    /// What is wrong with the value, without the key: `= 0 is under …`.
    pub fn reason(&self) -> String {
        let range = &self.range;
        if self.value < range.min {
            format!(
                "= {} is under the least that works, {}",
                range.show(self.value),
                range.show(range.min)
            )
        } else {
            format!(
                "= {} is over the most the runtime can honour, {}: {}",
                range.show(self.value),
                range.show(range.max),
                range.why
            )
        }
    }
}

/// A host directory an adapter may reach, at a path of its own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Grant {
    /// The directory on the host.
    pub host_path: PathBuf,
    /// Where the adapter sees it, such as `/data`.
    pub guest_path: String,
    /// Whether the adapter may only read.
    pub read_only: bool,
}

/// A byte count for people: `64 MiB`, `1.5 KiB`, `12 B`.
pub(crate) fn bytes(n: usize) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn byte_counts_read_as_people_write_them() {
        assert_eq!(super::bytes(16 << 20), "16 MiB");
        assert_eq!(super::bytes(1536), "1.5 KiB");
        assert_eq!(super::bytes(12), "12 B");
    }
}
