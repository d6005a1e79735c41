//! The per-instance memory cap: growth past `max_memory` is refused (the
//! guest sees `memory.grow` fail) and remembered, so a trap that follows is
//! reported as a memory failure rather than a generic trap.

use wasmtime::ResourceLimiter;

/// Table elements an instance may grow to; generous, but bounded.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// Enforces `max_memory` for one store.
#[derive(Debug)]
pub(super) struct MemoryLimiter {
    max_memory: usize,
    /// Set once a growth request was refused.
    pub(super) refused: bool,
    /// The largest linear memory granted, in bytes (creation counts as growth).
    pub(super) peak: usize,
}

impl MemoryLimiter {
    pub(super) fn new(max_memory: u64) -> Self {
        Self {
            max_memory: usize::try_from(max_memory).unwrap_or(usize::MAX),
            refused: false,
            peak: 0,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.max_memory;
        self.refused |= !allowed;
        if allowed {
            self.peak = self.peak.max(desired);
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
