//! The hard limits of one invocation, as `[component.<id>.tool.weir]` sets
//! them: its deadline, its memory cap and its outbound HTTP bounds.

use std::time::Duration;

use crate::imports::outbound_http::HttpLimits;

/// Default per-invocation deadline of a component.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on a component instance's linear memory.
pub const DEFAULT_MAX_MEMORY: u64 = 64 << 20;

/// Hard per-invocation limits, from `[component.<id>.tool.weir]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock deadline of one invocation (`timeout_ms`).
    pub timeout: Duration,
    /// Largest linear memory an instance may grow to, in bytes (`max_memory`).
    pub max_memory: u64,
    /// Longest wait of an outbound HTTP request for its response head and
    /// between body chunks (`http_timeout_ms`, default 10 s).
    pub http_timeout: Duration,
    /// Largest outbound HTTP response body accepted (`max_response_bytes`, default 64 MiB).
    pub max_response_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            max_memory: DEFAULT_MAX_MEMORY,
            http_timeout: Duration::from_secs(10),
            max_response_bytes: 64 << 20,
        }
    }
}

impl From<&Limits> for HttpLimits {
    fn from(limits: &Limits) -> Self {
        Self {
            connect_timeout: limits.http_timeout.min(Duration::from_secs(5)),
            first_byte_timeout: limits.http_timeout,
            between_bytes_timeout: limits.http_timeout,
            max_response_bytes: limits.max_response_bytes,
        }
    }
}
