//! trip-update-transform: turns the fetch function's JSON trip update messages
//! into rows of the `trip_updates` table, one per stop time update (schema
//! in `tables/trip_updates.json`), rejecting invalid ones with a reason.
//!
//! The transform itself ([`transform`]) is plain Rust, so the benchmarks
//! run the very same code natively; the `transformer` export is a thin
//! loop over it.

mod trip_update;

pub use trip_update::transform;

#[cfg(target_arch = "wasm32")]
mod component {
    #![expect(unsafe_code, reason = "the export glue wit-bindgen generates")]

    spin_sdk::wit_bindgen::generate!({
        path: "../../wit",
        world: "weir:function/transformer",
        runtime_path: "spin_sdk::wit_bindgen::rt",
    });

    use weir::function::batch_types::TableRows;

    struct TripUpdateTransform;

    impl Guest for TripUpdateTransform {
        fn handle_batch(messages: Vec<Message>) -> Result<Vec<Outcome>, Error> {
            Ok(messages
                .iter()
                .map(
                    |m| match super::transform(m.value.as_deref(), m.partition, m.offset) {
                        Ok(rows) => Outcome::Rows(vec![TableRows {
                            table: "trip_updates".to_owned(),
                            rows,
                        }]),
                        Err(reason) => Outcome::Reject(reason),
                    },
                )
                .collect())
        }
    }

    export!(TripUpdateTransform);
}
