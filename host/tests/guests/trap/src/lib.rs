//! Traps on every call (a Rust panic becomes `unreachable`).

wit_bindgen::generate!({ path: "../../../../wit", world: "weir:function/fetcher" });

struct Trap;

impl Guest for Trap {
    async fn handle_cron_event(metadata: Metadata) -> Result<(), Error> {
        if std::hint::black_box(metadata.timestamp) != u64::MAX {
            panic!("trap guest panics on purpose");
        }
        Ok(())
    }
}

export!(Trap);
