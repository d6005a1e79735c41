//! Never returns: spins until the host's deadline stops it.

wit_bindgen::generate!({ path: "../../../../wit", world: "weir:function/fetcher" });

struct Loop;

impl Guest for Loop {
    async fn handle_cron_event(metadata: Metadata) -> Result<(), Error> {
        let mut n = metadata.timestamp;
        loop {
            n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

export!(Loop);
