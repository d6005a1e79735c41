//! alert-transform: turns the fetch function's JSON alert messages into
//! rows of the `alerts` table, one per alert (schema in
//! `tables/alerts.json`), rejecting invalid ones with a reason.
//!
//! The transform itself ([`transform`]) is plain Rust, so the benchmarks
//! run the very same code natively; the `transformer` export is a thin
//! loop over it.

mod alert;

pub use alert::transform;

#[cfg(target_arch = "wasm32")]
mod component {
    #![expect(unsafe_code, reason = "the export glue wit-bindgen generates")]

    spin_sdk::wit_bindgen::generate!({
        path: "../../wit",
        world: "weir:function/transformer",
        runtime_path: "spin_sdk::wit_bindgen::rt",
    });

    use weir::function::batch_types::TableRows;

    struct AlertTransform;

    impl Guest for AlertTransform {
        fn handle_batch(messages: Vec<Message>) -> Result<Vec<Outcome>, Error> {
            Ok(messages
                .iter()
                .map(
                    |m| match super::transform(m.value.as_deref(), m.partition, m.offset) {
                        Ok(row) => Outcome::Rows(vec![TableRows {
                            table: "alerts".to_owned(),
                            rows: vec![row],
                        }]),
                        Err(reason) => Outcome::Reject(reason),
                    },
                )
                .collect())
        }
    }

    export!(AlertTransform);
}
