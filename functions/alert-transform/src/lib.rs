//! alert-transform: turns the fetch function's JSON alert messages into
//! rows of the `alerts` table, one per alert (schema in
//! `tables/alerts.json`), rejecting invalid ones with a reason.
//!
//! The transform itself ([`transform`]) is plain Rust writing typed rows
//! through `weir-guest`, so it runs natively in tests and benchmarks too.

mod alert;

pub use alert::{TABLE, transform};

#[cfg(target_arch = "wasm32")]
weir_guest::export_transform!(transform);
