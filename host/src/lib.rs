//! weir runs serverless-style event functions compiled to WebAssembly
//! components: a cron trigger for fetchers that publish to Kafka, a Kafka
//! trigger for transforms that write Delta Lake tables exactly once.
//!
//! Layout:
//! - [`manifest`]: parse and validate `spin.toml` (Spin v2 + weir's trigger tables).
//! - [`runtime`]: the wasmtime engine, component loading, hard per-invocation limits.
//! - `bindings`: the one `bindgen!` of `wit/` (private).
//! - [`imports`]: what guests may call: outbound HTTP, variables, the Kafka
//!   `producer` outbox, the `feed` ledger.
//! - [`trigger`]: `cron` and `kafka` triggers, their config and run loops;
//!   the Kafka → Delta exactly-once protocol is `trigger::kafka`'s `commit.rs`;
//!   which host of a fleet runs each cron trigger, and its feed ledger in
//!   Kafka, is `trigger::cron::fleet`.
//! - [`sink`]: where output goes (the Kafka producer, Delta tables on a path
//!   or S3 and their dead-letter table, and the compaction of their small
//!   files).
//! - [`metrics`]: every metric name and label, in one registry.
//! - [`broker`]: the embedded Kafka-protocol broker of local mode (tansu),
//!   restarted in place when its storage fails.
//! - [`disk`]: free space under the data dir and local tables; [`memory`]:
//!   the heap as jemalloc sees it.
//! - [`versions`]: the running version of every function; deploy, rollback, `--watch`.
//! - [`admin`]: the HTTP server (`/metrics`, `/healthz`, `/readyz`, the function API).
//! - [`failpoint`]: named crash points for the kill -9 tests.
//! - [`run`]: `weir up`'s run loop; [`status`]: its live status table;
//!   [`cli`]: the subcommands; [`telemetry`]: logging.
//!
//! Nothing here knows GTFS: the local feed server of `weir dev-feed` and
//! `weir up --dev-feed` is the crate `weir-devfeed` (`host/devfeed`), which
//! only [`cli`] uses.

pub mod admin;
mod bindings;
pub mod broker;
pub mod cli;
pub mod disk;
pub mod failpoint;
pub mod imports;
pub mod manifest;
pub mod memory;
pub mod metrics;
pub mod run;
pub mod runtime;
pub mod sink;
pub mod status;
pub mod telemetry;
pub mod trigger;
pub mod versions;

pub use manifest::{Manifest, ManifestError};
pub use metrics::Metrics;
pub use run::{Host, HostConfig, run};
pub use runtime::{
    InvokeError, LoadError, LoadedComponent, Runtime, RuntimeConfig, TrapKind, World,
};
