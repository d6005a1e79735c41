//! trip-update-transform: turns the fetch function's JSON trip update
//! messages into rows of the `trip_updates` table, one per stop time update
//! (schema in `tables/trip_updates.json`), rejecting invalid ones with a
//! reason.
//!
//! The transform itself ([`transform`]) is plain Rust writing typed rows
//! through `weir-guest`, so it runs natively in tests and benchmarks too.

mod trip_update;

pub use trip_update::{TABLE, transform};

#[cfg(target_arch = "wasm32")]
weir_guest::export_transform!(transform);
