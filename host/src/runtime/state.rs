//! What one invocation's store holds: WASI context, resource table, memory
//! limiter, the producer outbox and the guest's captured stdout/stderr.

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limiter::MemoryLimiter;
use super::output::CappedOutput;
use crate::host::producer::Outbox;

/// Bytes of stdout and of stderr kept per invocation; the rest is dropped.
const OUTPUT_CAPACITY: usize = 64 << 10;

/// Store data of one invocation.
pub(crate) struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) limiter: MemoryLimiter,
    pub(crate) outbox: Outbox,
    stdout: CappedOutput,
    stderr: CappedOutput,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

/// What a guest printed during one invocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestOutput {
    /// Captured stdout (at most 64 KiB).
    pub stdout: String,
    /// Captured stderr (at most 64 KiB).
    pub stderr: String,
}

impl State {
    pub(super) fn new(environment: &[(String, String)], max_memory: u64, outbox: Outbox) -> Self {
        let stdout = CappedOutput::new(OUTPUT_CAPACITY);
        let stderr = CappedOutput::new(OUTPUT_CAPACITY);
        let wasi = WasiCtx::builder()
            .envs(environment)
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(max_memory),
            outbox,
            stdout,
            stderr,
        }
    }

    pub(super) fn output(&self) -> GuestOutput {
        GuestOutput {
            stdout: self.stdout.text(),
            stderr: self.stderr.text(),
        }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
