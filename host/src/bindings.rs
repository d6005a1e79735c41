//! The one place WIT becomes Rust: host bindings for the `fetcher`,
//! `transformer` and `typed-transformer` worlds of `wit/`. Generated types stay behind this module's
//! users (`runtime`, `host`); sinks and triggers never see them.

/// Bindings of the `fetcher` world (cron-triggered functions).
pub(crate) mod fetcher {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "weir:function/fetcher",
        exports: { default: async },
    });
}

/// Bindings of the `transformer` world (Kafka-triggered functions).
pub(crate) mod transformer {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "weir:function/transformer",
        exports: { default: async },
        // Messages are lowered from borrowed data: no copy of a batch
        // before it is written into the guest's memory.
        ownership: Borrowing { duplicate_if_necessary: false },
    });
}

/// Bindings of the `typed-transformer` world (Kafka-triggered functions
/// that return typed columns); its types are the `transformer` world's.
pub(crate) mod typed_transformer {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "weir:function/typed-transformer",
        exports: { default: async },
        ownership: Borrowing { duplicate_if_necessary: false },
        with: {
            "weir:function/batch-types": super::transformer::weir::function::batch_types,
        },
    });
}

/// Bindings of the `spin-imports` world: Spin's variables interface.
pub(crate) mod spin {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "weir:function/spin-imports",
    });
}
