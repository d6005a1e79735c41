//! gtfs-fetch: on every cron tick, GET the GTFS-Realtime feed at variable
//! `feed_url` through the host's outbound HTTP, decode it, and send one JSON
//! message per entity to the Kafka topic in variable `topic`, keyed by
//! vehicle id (vehicles) or entity id. A feed whose header timestamp has not
//! advanced since the last published one sends nothing. String fields that
//! are not UTF-8 are transcoded from variable `feed_encoding` (a WHATWG
//! label such as `shift_jis`) when it is set, else decoded with U+FFFD;
//! either way the feed is published and the invalid ones are counted.
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

/// A variable that may be left undefined.
async fn optional_variable(name: &str) -> Result<Option<String>, String> {
    match spin_sdk::variables::get(name).await {
        Ok(value) if value.trim().is_empty() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(spin_sdk::variables::Error::Undefined(_)) => Ok(None),
        Err(e) => Err(format!("variable `{name}`: {e:?}")),
    }
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
    let legacy = match optional_variable("feed_encoding").await? {
        Some(label) => Some(gtfs_rt::encoding(&label).map_err(|e| format!("feed_encoding: {e}"))?),
        None => None,
    };
    let decoded =
        gtfs_rt::decode_with(&body, legacy).map_err(|e| match std::error::Error::source(&e) {
            Some(cause) => format!("{url}: {e}: {cause}"),
            None => format!("{url}: {e}"),
        })?;
    let repairs = decoded.repairs;
    if repairs.invalid > 0 {
        feed::invalid_strings(repairs.invalid);
        eprintln!(
            "{url}: {} string field(s) were not valid text and hold U+FFFD instead{}",
            repairs.invalid,
            if legacy.is_none() {
                " (set the trigger variable feed_encoding if the feed uses a legacy encoding)"
            } else {
                ""
            }
        );
    }
    if repairs.transcoded > 0 {
        eprintln!(
            "{url}: {} string field(s) transcoded to UTF-8",
            repairs.transcoded
        );
    }
    let feed = decoded.feed;
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
