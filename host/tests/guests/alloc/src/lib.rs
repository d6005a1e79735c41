//! Allocates 1 MiB at a time and keeps it, until allocation fails.

wit_bindgen::generate!({ path: "../../../../wit", world: "weir:function/fetcher" });

struct Alloc;

impl Guest for Alloc {
    async fn handle_cron_event(_metadata: Metadata) -> Result<(), Error> {
        let mut kept: Vec<Vec<u8>> = Vec::new();
        loop {
            kept.push(std::hint::black_box(vec![1u8; 1 << 20]));
        }
    }
}

export!(Alloc);
