//! The hard limits of one invocation, as `[component.<id>.tool.weir]` sets
//! them: its deadline, its memory cap, its outbound HTTP bounds and how
//! much a transform may return for a batch.

use std::time::Duration;

use super::messages::BatchOutput;
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
    /// Most rows a transform may return per input message, over the batch
    /// and every table (`max_rows_per_message`, default 100).
    pub max_rows_per_message: u64,
    /// Most bytes of rows (text, values, offsets) a transform may return
    /// for one batch (`max_output_bytes`, default 64 MiB).
    pub max_output_bytes: u64,
    /// Most outbound HTTP requests one invocation may have in flight at
    /// once (`max_outbound_requests`, default 16); more are refused.
    pub max_outbound_requests: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            max_memory: DEFAULT_MAX_MEMORY,
            http_timeout: Duration::from_secs(10),
            max_response_bytes: 64 << 20,
            max_rows_per_message: 100,
            max_output_bytes: 64 << 20,
            max_outbound_requests: 16,
        }
    }
}

impl Limits {
    /// Refuses a batch's output past the caps: a guest that returns far
    /// more than it was given fails the batch (retried once, then its
    /// messages are dead letters) instead of filling the tables.
    pub fn check_output(&self, output: &BatchOutput, messages: usize) -> Result<(), String> {
        let rows = output.rows() as u64;
        let cap = self.max_rows_per_message.saturating_mul(messages as u64);
        if rows > cap {
            return Err(format!(
                "returned {rows} rows for {messages} messages, more than `max_rows_per_message` \
                 ({}) allows",
                self.max_rows_per_message
            ));
        }
        let bytes = output.bytes() as u64;
        if bytes > self.max_output_bytes {
            return Err(format!(
                "returned {bytes} bytes of rows, more than `max_output_bytes` ({}) allows",
                self.max_output_bytes
            ));
        }
        Ok(())
    }
}

impl From<&Limits> for HttpLimits {
    fn from(limits: &Limits) -> Self {
        Self {
            connect_timeout: limits.http_timeout.min(Duration::from_secs(5)),
            first_byte_timeout: limits.http_timeout,
            between_bytes_timeout: limits.http_timeout,
            max_response_bytes: limits.max_response_bytes,
            max_in_flight: limits.max_outbound_requests,
        }
    }
}
