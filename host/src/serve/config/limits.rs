//! `[limits]`: each value checked against its [`LimitRange`]; one the
//! runtime cannot honour is refused naming its key and the most it can,
//! never clamped.

use super::file::{ConfigError, ServiceConfig};
use crate::LimitRange;
use toml::Spanned;

impl ServiceConfig {
    /// `[limits]`, each checked against its range.
    pub(super) fn limits(&self) -> Result<Limits, ConfigError> {
        let section = &self.limits;
        let check = |range: LimitRange, value: &Option<Spanned<u64>>| match value {
            None => Ok(None),
            Some(v) => range
                .check(*v.get_ref())
                .map(Some)
                .map_err(|e| self.error_at(v, format!("`limits.{}` {}", range.key, e.reason()))),
        };
        Ok(Limits {
            call_timeout_ms: check(LimitRange::CALL_TIMEOUT, &section.call_timeout_ms)?,
            max_memory_bytes: check(LimitRange::MEMORY, &section.max_memory_bytes)?,
            max_table_elements: check(LimitRange::TABLE, &section.max_table_elements)?,
            max_stack_bytes: check(LimitRange::STACK, &section.max_stack_bytes)?,
            max_response_bytes: check(LimitRange::RESPONSE, &section.max_response_bytes)?,
            max_instances: check(LimitRange::INSTANCES, &section.max_instances)?,
        })
    }
}

/// `[limits]`'s values, checked.
pub(super) struct Limits {
    pub(super) call_timeout_ms: Option<u64>,
    pub(super) max_memory_bytes: Option<u64>,
    pub(super) max_table_elements: Option<u64>,
    pub(super) max_stack_bytes: Option<u64>,
    pub(super) max_response_bytes: Option<u64>,
    pub(super) max_instances: Option<u64>,
}
