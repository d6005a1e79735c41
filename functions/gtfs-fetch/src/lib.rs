//! gtfs-fetch: on every cron tick, GET the GTFS-Realtime feed at variable
//! `feed_url` through the host's outbound HTTP, decode it, and send one JSON
//! message per entity to the Kafka topic in variable `topic`, keyed by
//! vehicle id (vehicles) or entity id. A feed whose header timestamp has not
//! advanced since the last published one sends nothing.
//!
//! Written with spin-sdk 7 (variables, outbound HTTP) like any Spin
//! component; the cron export and the `producer` / `feed` imports come from
//! weir's `fetcher` world.
#![expect(unsafe_code, reason = "the export glue wit-bindgen generates")]

spin_sdk::wit_bindgen::generate!({
    path: "../../wit",
    world: "weir:function/fetcher",
    runtime_path: "spin_sdk::wit_bindgen::rt",
});

use spin_sdk::http::body::IncomingBodyExt as _;
use weir::function::feed::{self, Freshness};
use weir::function::producer;

struct GtfsFetch;

impl Guest for GtfsFetch {
    async fn handle_cron_event(_metadata: Metadata) -> Result<(), Error> {
        fetch_and_send().await.map_err(Error::Other)
    }
}

export!(GtfsFetch);

async fn variable(name: &str) -> Result<String, String> {
    spin_sdk::variables::get(name)
        .await
        .map_err(|e| format!("variable `{name}`: {e:?}"))
}

async fn fetch_and_send() -> Result<(), String> {
    let url = variable("feed_url").await?;
    let topic = variable("topic").await?;
    let response = spin_sdk::http::get(&url)
        .await
        .map_err(|e| format!("GET {url} failed: {e:?}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("GET {url} returned HTTP {status}"));
    }
    let body = response
        .into_body()
        .bytes()
        .await
        .map_err(|e| format!("reading the body of {url} failed: {e:?}"))?;
    let feed = gtfs_rt::decode(&body).map_err(|e| match std::error::Error::source(&e) {
        Some(cause) => format!("{url}: {e}: {cause}"),
        None => format!("{url}: {e}"),
    })?;
    if let Some(timestamp) = feed.header.timestamp
        && feed::observe(timestamp, body.len() as u64) == Freshness::Unchanged
    {
        println!("{url}: header timestamp {timestamp} unchanged, nothing sent");
        return Ok(());
    }
    let batch: Vec<producer::Message> = gtfs_rt::messages(&feed)
        .map(|m| producer::Message {
            topic: topic.clone(),
            key: Some(m.key.into_bytes()),
            value: m.value,
        })
        .collect();
    let sent = batch.len();
    producer::send_batch(&batch)
        .map_err(|e| format!("sending {sent} entities to `{topic}` failed: {e:?}"))?;
    println!("{url}: {sent} entities sent to {topic}");
    Ok(())
}
