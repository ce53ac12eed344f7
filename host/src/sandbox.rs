//! What an adapter instance may do and use: its limits (memory, tables,
//! stack, time, answer size), and its capabilities (none, unless the host
//! grants a directory). The mechanisms are wasmtime's; this is the policy.

use std::path::PathBuf;
use std::time::Duration;
use wasmtime::{ResourceLimiter, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder};

/// Every limit one host's adapter runs under, as `Host::limits` reports them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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

/// A host directory an adapter may reach, at a path of its own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Grant {
    /// The directory on the host.
    pub host_path: PathBuf,
    /// Where the adapter sees it, such as `/data`.
    pub guest_path: String,
    /// Whether the adapter may only read.
    pub read_only: bool,
}

/// Keeps an instance's memories and tables under its caps, and remembers a
/// refusal so that the trap that follows is explained.
pub(crate) struct Guard {
    max_memory_bytes: usize,
    max_table_elements: usize,
    pub(crate) refused: Option<String>,
}

impl Guard {
    pub(crate) fn new(max_memory_bytes: usize, max_table_elements: usize) -> Guard {
        Guard {
            max_memory_bytes,
            max_table_elements,
            refused: None,
        }
    }
}

impl ResourceLimiter for Guard {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            self.refused = Some(format!(
                "ran out of memory: it asked to grow its linear memory from {} to {}, over its limit of {} \
                 (HostBuilder::max_memory_bytes / RuntimeBuilder::max_memory_bytes)",
                bytes(current),
                bytes(desired),
                bytes(self.max_memory_bytes)
            ));
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_table_elements {
            self.refused = Some(format!(
                "asked to grow a table from {current} to {desired} elements, over its limit of {} (RuntimeBuilder::max_table_elements)",
                self.max_table_elements
            ));
            return Ok(false);
        }
        Ok(true)
    }
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

/// A clock that stays at zero: adapters see no time but what the contract imports.
struct Frozen;

impl HostWallClock for Frozen {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for Frozen {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// The WASI context of one instance: stderr captured, frozen clocks, no
/// network, no environment, no arguments, no stdin, and no file system but
/// the directories granted.
pub(crate) fn wasi(stderr: MemoryOutputPipe, grants: &[Grant]) -> wasmtime::Result<WasiCtx> {
    let mut builder = WasiCtxBuilder::new();
    builder
        .stderr(stderr)
        .wall_clock(Frozen)
        .monotonic_clock(Frozen)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
    for grant in grants {
        let perms = if grant.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        builder.preopened_dir(&grant.host_path, &grant.guest_path, perms)?;
    }
    Ok(builder.build())
}

/// What a trap means, for a person.
pub(crate) fn explain_trap(error: &wasmtime::Error) -> Option<&'static str> {
    let trap = error.downcast_ref::<Trap>()?;
    Some(match trap {
        Trap::StackOverflow => {
            "overflowed its stack (endless recursion?); raise RuntimeBuilder::max_stack_bytes if the recursion is meant"
        }
        Trap::MemoryOutOfBounds => "accessed memory out of bounds (a bug in the adapter)",
        Trap::UnreachableCodeReached => {
            "trapped: it reached `unreachable` (a Rust adapter does on panic or abort)"
        }
        Trap::IntegerDivisionByZero => "divided an integer by zero",
        Trap::IntegerOverflow => "overflowed an integer conversion",
        Trap::IndirectCallToNull | Trap::BadSignature => {
            "made a bad indirect call (a bug in the adapter)"
        }
        _ => return None,
    })
}

/// The message and place of a Rust panic, from what the adapter wrote to
/// stderr (`thread '…' panicked at src/lib.rs:5:9:` then the message).
pub(crate) fn panic_message(stderr: &str) -> Option<String> {
    let at = stderr.find("panicked at ")?;
    let rest = &stderr[at + "panicked at ".len()..];
    let (place, message) = rest.split_once(":\n")?;
    let message = message
        .lines()
        .take_while(|l| !l.starts_with("note: run with `RUST_BACKTRACE"))
        .collect::<Vec<_>>()
        .join("\n");
    Some(format!("{} (at {place})", message.trim()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_panic_message_is_found_in_stderr() {
        let stderr = "thread '<unnamed>' (1) panicked at src/lib.rs:54:24:\nno way\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace";
        assert_eq!(
            super::panic_message(stderr).as_deref(),
            Some("no way (at src/lib.rs:54:24)")
        );
        assert_eq!(super::panic_message("something else"), None);
    }

    #[test]
    fn byte_counts_read_as_people_write_them() {
        assert_eq!(super::bytes(16 << 20), "16 MiB");
        assert_eq!(super::bytes(1536), "1.5 KiB");
        assert_eq!(super::bytes(12), "12 B");
    }
}
