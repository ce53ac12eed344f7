//! How an adapter instance is held to its limits and capabilities: the
//! resource guard, the WASI context with nothing in it but granted
//! directories, frozen clocks, and what a trap or a panic means. The
//! limits themselves are in `limits`.

use crate::limits::{Grant, bytes};
use std::time::Duration;
use wasmtime::{ResourceLimiter, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder};

/// Keeps an instance's memories and tables under its caps, and remembers a
/// refusal so that the trap that follows is explained.
pub(crate) struct Guard {
    max_memory_bytes: usize,
    max_table_elements: usize,
    /// The linear memory of all of the instance's memories so far.
    memory_bytes: usize,
    pub(crate) refused: Option<String>,
}

impl Guard {
    pub(crate) fn new(max_memory_bytes: usize, max_table_elements: usize) -> Guard {
        Guard {
            max_memory_bytes,
            max_table_elements,
            memory_bytes: 0,
            refused: None,
        }
    }

    /// The linear memory the instance holds, all its memories together.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.memory_bytes
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
        self.memory_bytes += desired.saturating_sub(current);
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
}
