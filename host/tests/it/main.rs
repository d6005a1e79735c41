//! Integration tests of the weir host, in one binary (one link step).
#![expect(
    clippy::unwrap_used,
    reason = "a fixture that cannot unwrap should fail the test loudly"
)]

mod admin_props;
mod broker;
mod cli;
mod compose;
mod compose_live;
mod crash;
mod cron;
mod delta;
mod deploy;
mod disk_full;
mod docs;
mod fetch;
mod fetch_bad_input;
mod fleet;
mod hostile;
mod hostile_guests;
mod layers;
mod local_restart;
mod manifest;
mod metrics;
mod observability;

mod props;
mod runtime;
mod s3;
mod support;
