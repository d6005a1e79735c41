//! Real agency feeds from `../shared/gtfs-rt/` (beside the checkout): entity
//! counts as listed in its README, a handful of field values, and the JSON
//! message of each entity.
#![expect(
    clippy::unwrap_used,
    reason = "a feed that does not decode should fail the test loudly"
)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

fn feed_bytes(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/gtfs-rt")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e} (shared/ must sit beside the checkout)",
            path.display()
        )
    })
}

/// Header timestamp, entity count by type, and (key, JSON value) by entity id.
type Decoded = (
    u64,
    BTreeMap<&'static str, usize>,
    BTreeMap<String, (String, Value)>,
);

fn decode(name: &str) -> Decoded {
    let feed = gtfs_rt::decode(&feed_bytes(name)).unwrap();
    let mut counts = BTreeMap::new();
    let mut by_id = BTreeMap::new();
    for m in gtfs_rt::messages(&feed) {
        *counts.entry(m.entity_type).or_default() += 1;
        let value: Value = serde_json::from_slice(&m.value).unwrap();
        by_id.insert(value["id"].as_str().unwrap().to_owned(), (m.key, value));
    }
    (feed.header.timestamp.unwrap(), counts, by_id)
}

#[test]
fn caltrain_vehicle_positions() {
    let (timestamp, counts, by_id) = decode("caltrain-2023-vehicle-positions.pb");
    assert_eq!(timestamp, 1_699_405_559);
    assert_eq!(counts, BTreeMap::from([("vehicle", 14)]));
    let (key, v) = &by_id["124"];
    assert_eq!(key, "124");
    assert_eq!(v["entity_type"], "vehicle");
    assert_eq!(v["feed_timestamp"], 1_699_405_559);
    assert_eq!(v["vehicle"]["trip"]["route_id"], "L1");
    assert_eq!(v["vehicle"]["trip"]["direction_id"], 1);
    assert_eq!(
        v["vehicle"]["position"]["latitude"].as_f64().unwrap(),
        37.37046
    );
    assert_eq!(
        v["vehicle"]["position"]["longitude"].as_f64().unwrap(),
        -121.99604
    );
    assert_eq!(v["vehicle"]["timestamp"], 1_699_405_549);
}

#[test]
fn ztm_poznan_vehicle_positions() {
    let (timestamp, counts, by_id) = decode("ztm-poznan-2026-vehicle_positions.pb");
    assert_eq!(timestamp, 1_769_612_639);
    assert_eq!(counts, BTreeMap::from([("vehicle", 544)]));
    let (_, v) = &by_id["7003"];
    assert_eq!(v["vehicle"]["trip"]["trip_id"], "1_2434^K");
    assert_eq!(v["vehicle"]["trip"]["schedule_relationship"], "SCHEDULED");
    assert_eq!(v["vehicle"]["vehicle"]["label"], "701/11");
    assert_eq!(v["vehicle"]["current_stop_sequence"], 14);
}

#[test]
fn bart_trip_updates() {
    let (timestamp, counts, by_id) = decode("bart-2019-trip-updates.pb");
    assert_eq!(timestamp, 1_565_199_921);
    assert_eq!(counts, BTreeMap::from([("trip_update", 91)]));
    let (key, v) = &by_id["1011112WKDY"];
    assert_eq!(key, "1011112WKDY");
    let updates = v["trip_update"]["stop_time_update"].as_array().unwrap();
    assert_eq!(updates.len(), 19);
    assert_eq!(updates[0]["stop_id"], "DALY");
    assert_eq!(updates[0]["arrival"]["delay"], 29);
    assert_eq!(updates[0]["arrival"]["time"], 1_565_201_526);
    assert_eq!(
        by_id["1051042WKDY"].1["trip_update"]["trip"]["schedule_relationship"],
        "ADDED"
    );
}

#[test]
fn bart_alerts() {
    let (timestamp, counts, by_id) = decode("bart-2019-alerts.pb");
    assert_eq!(timestamp, 1_565_199_942);
    assert_eq!(counts, BTreeMap::from([("alert", 1)]));
    let alert = &by_id["BSA_187874"].1["alert"];
    assert_eq!(alert["cause"], "MEDICAL_EMERGENCY");
    assert_eq!(alert["effect"], "SIGNIFICANT_DELAYS");
    assert_eq!(alert["informed_entity"][0]["agency_id"], "BART");
    assert_eq!(alert["header_text"]["translation"][0]["language"], "en-US");
    assert!(
        alert["header_text"]["translation"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("There is a major delay at Montgomery St.")
    );
}

#[test]
fn nyct_mixed_feed_with_extensions() {
    let (timestamp, counts, by_id) = decode("nyct-subway-2021-a_division.pb");
    assert_eq!(timestamp, 1_637_960_185);
    assert_eq!(
        counts,
        BTreeMap::from([("alert", 1), ("trip_update", 285), ("vehicle", 174)])
    );
    let (_, v) = &by_id["000002"];
    assert_eq!(v["vehicle"]["stop_id"], "107N");
    assert_eq!(v["vehicle"]["trip"]["start_date"], "20211126");
    assert_eq!(
        by_id["000460"].1["alert"]["header_text"]["translation"][0]["text"],
        "Train delayed"
    );
}

#[test]
fn empty_feed_yields_nothing() {
    let feed = gtfs_rt::decode(&feed_bytes("empty-alerts.pb")).unwrap();
    assert_eq!(feed.header.timestamp, Some(1_699_405_546));
    assert_eq!(gtfs_rt::messages(&feed).count(), 0);
}

#[test]
fn bad_bodies_fail_cleanly() {
    let err = gtfs_rt::decode(&feed_bytes("invalid-not-protobuf.pb")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("not a GTFS-Realtime FeedMessage"),
        "{err}"
    );
    assert!(matches!(
        gtfs_rt::decode(b""),
        Err(gtfs_rt::DecodeError::Empty)
    ));
    let whole = feed_bytes("bart-2019-trip-updates.pb");
    for cut in [1, whole.len() / 3, whole.len() - 1] {
        assert!(
            gtfs_rt::decode(&whole[..cut]).is_err(),
            "truncated at {cut} of {}",
            whole.len()
        );
    }
}
