//! Succeeds: prints a line and, if `TOPIC` is set in its environment, sends
//! one message there keyed by the tick's timestamp.

wit_bindgen::generate!({ path: "../../../../wit", world: "weir:function/fetcher" });

use weir::function::producer;

struct Hello;

impl Guest for Hello {
    async fn handle_cron_event(metadata: Metadata) -> Result<(), Error> {
        println!("tick {}", metadata.timestamp);
        let Ok(topic) = std::env::var("TOPIC") else {
            return Ok(());
        };
        producer::send(&topic, Some(&metadata.timestamp.to_string().into_bytes()), b"hello")
            .map_err(|e| Error::Other(format!("send failed: {e:?}")))
    }
}

export!(Hello);
