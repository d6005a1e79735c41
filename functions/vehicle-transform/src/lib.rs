//! vehicle-transform: turns the fetch function's JSON vehicle messages into
//! rows of the `vehicle_positions` table (schema in
//! `tables/vehicle_positions.json`), rejecting invalid ones with a reason.
//!
//! The transform itself ([`transform`]) is plain Rust writing typed rows
//! through `weir-guest`, so the benchmarks run the very same code natively.

mod vehicle;

pub use vehicle::{TABLE, transform};

#[cfg(target_arch = "wasm32")]
weir_guest::export_transform!(transform);
