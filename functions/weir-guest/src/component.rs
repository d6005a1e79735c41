//! The component side: bindings of the `typed-transformer` world and what
//! [`export_transform!`](crate::export_transform) expands to.

use crate::{Message, Output, Values};

/// Bindings of the `typed-transformer` world.
pub mod bindings {
    spin_sdk::wit_bindgen::generate!({
        path: "../../wit",
        world: "weir:function/typed-transformer",
        runtime_path: "spin_sdk::wit_bindgen::rt",
        pub_export_macro: true,
        export_macro_name: "export_typed_transformer",
        default_bindings_module: "weir_guest::component::bindings",
    });
}

use bindings::weir::function::typed_batch_types as wit;

/// Runs `transform` over a batch and hands its rows over column by column.
pub fn handle(
    messages: &[bindings::Message],
    transform: fn(&Message<'_>, &mut Output) -> Result<(), String>,
) -> wit::TypedOutput {
    let mut out = Output::default();
    for m in messages {
        let message = Message {
            topic: &m.topic,
            partition: m.partition,
            offset: m.offset,
            timestamp_ms: m.timestamp_ms,
            key: m.key.as_deref(),
            value: m.value.as_deref(),
            headers: m
                .headers
                .iter()
                .map(|h| (h.key.as_str(), h.value.as_deref()))
                .collect(),
        };
        out.handle(&message, transform);
    }
    let (tables, rejects) = out.into_parts();
    wit::TypedOutput {
        tables: tables
            .into_iter()
            .map(|table| {
                let (table, sources, columns) = table.into_parts();
                let columns = columns
                    .into_iter()
                    .map(|column| {
                        let (name, values, valid) = column.into_parts();
                        let values = match values {
                            Values::Int64(v) => wit::Values::Int64(v),
                            Values::Float64(v) => wit::Values::Float64(v),
                            Values::Boolean(v) => wit::Values::Boolean(v),
                            Values::Utf8 { offsets, bytes } => {
                                wit::Values::Utf8(wit::ByteValues { offsets, bytes })
                            }
                            Values::Binary { offsets, bytes } => {
                                wit::Values::Binary(wit::ByteValues { offsets, bytes })
                            }
                        };
                        wit::Column {
                            name,
                            values,
                            valid,
                        }
                    })
                    .collect();
                wit::TableColumns {
                    table,
                    sources,
                    columns,
                }
            })
            .collect(),
        rejects: rejects
            .into_iter()
            .map(|(message, reason)| wit::Reject { message, reason })
            .collect(),
    }
}

/// Exports `transform` (a `fn(&Message, &mut Output) -> Result<(), String>`)
/// as the component's `handle-typed-batch`.
#[macro_export]
macro_rules! export_transform {
    ($transform:path) => {
        struct WeirTransform;

        impl $crate::component::bindings::Guest for WeirTransform {
            fn handle_typed_batch(
                messages: ::std::vec::Vec<$crate::component::bindings::Message>,
            ) -> ::core::result::Result<
                $crate::component::bindings::TypedOutput,
                $crate::component::bindings::Error,
            > {
                ::core::result::Result::Ok($crate::component::handle(&messages, $transform))
            }
        }

        $crate::component::bindings::export_typed_transformer!(
            WeirTransform with_types_in $crate::component::bindings
        );
    };
}
