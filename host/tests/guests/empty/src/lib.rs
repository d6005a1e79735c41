//! Does nothing: the cost of an invocation is all host overhead.

wit_bindgen::generate!({ path: "../../../../wit", world: "weir:function/fetcher" });

struct Empty;

impl Guest for Empty {
    async fn handle_cron_event(_metadata: Metadata) -> Result<(), Error> {
        Ok(())
    }
}

export!(Empty);
