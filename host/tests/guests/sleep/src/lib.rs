//! Sleeps `SLEEP_MS` (environment) and reports when it started and ended,
//! in milliseconds of wall-clock time, as `start,end` in one message.

wit_bindgen::generate!({ path: "../../../../wit", world: "weir:function/fetcher" });

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use weir::function::producer;

struct Sleep;

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

impl Guest for Sleep {
    async fn handle_cron_event(_metadata: Metadata) -> Result<(), Error> {
        let ms = std::env::var("SLEEP_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(1500);
        let start = now_ms();
        std::thread::sleep(Duration::from_millis(ms));
        let end = now_ms();
        producer::send("sleeps", None, format!("{start},{end}").as_bytes())
            .map_err(|e| Error::Other(format!("send failed: {e:?}")))
    }
}

export!(Sleep);
