//! What one invocation's store holds: WASI and `wasi:http` contexts, the
//! resource table, the memory limiter, the invocation's capabilities
//! (variables, producer outbox, feed observation) and captured output.

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::limiter::MemoryLimiter;
use super::output::CappedOutput;
use crate::imports::feed::{FeedImport, FeedObservation};
use crate::imports::outbound_http::OutboundHttp;
use crate::imports::producer::Outbox;
use crate::imports::variables::Variables;

/// Bytes of stdout and of stderr kept per invocation; the rest is dropped.
const OUTPUT_CAPACITY: usize = 64 << 10;

/// Store data of one invocation.
pub(crate) struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundHttp,
    table: ResourceTable,
    pub(super) limiter: MemoryLimiter,
    pub(super) variables: Variables,
    pub(super) outbox: Outbox,
    pub(super) feed: FeedImport,
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

/// The capabilities of one invocation.
#[derive(Debug)]
pub(super) struct Capabilities {
    pub(super) variables: Variables,
    pub(super) outbox: Outbox,
    pub(super) feed: Option<FeedObservation>,
    pub(super) hooks: OutboundHttp,
}

impl State {
    pub(super) fn new(
        environment: &[(String, String)],
        max_memory: u64,
        caps: Capabilities,
    ) -> Self {
        let stdout = CappedOutput::new(OUTPUT_CAPACITY);
        let stderr = CappedOutput::new(OUTPUT_CAPACITY);
        let wasi = WasiCtx::builder()
            .envs(environment)
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build();
        Self {
            wasi,
            http: WasiHttpCtx::new(),
            hooks: caps.hooks,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(max_memory),
            variables: caps.variables,
            outbox: caps.outbox,
            feed: FeedImport(caps.feed),
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

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.hooks,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}
