//! Feeds whose string fields are not UTF-8, built byte by byte here: Shift-JIS
//! vehicle labels and trip ids (as a Japanese operator's feed carries them),
//! a Latin-1 stop id, a Shift-JIS alert text nested three messages deep, and
//! a Shift-JIS and a UTF-8 character each cut in the middle. With the feed's encoding they
//! decode to the intended text; without it, to U+FFFD, counted. Every field
//! that was valid decodes exactly as before.

#![expect(
    clippy::unwrap_used,
    reason = "a fixture that cannot unwrap should fail the test loudly"
)]

use encoding_rs::{SHIFT_JIS, WINDOWS_1252};
use gtfs_rt::sample::{placeholder, with_raw_text};
use gtfs_rt::{Repairs, decode_with, pb};

fn sjis(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = SHIFT_JIS.encode(text);
    assert!(!unmappable);
    bytes.into_owned()
}

const LABEL: &str = "都営大江戸線 上野御徒町";
const TRIP: &str = "平日_大江戸線_0712";
const STOP: &str = "Plaça d'Espanya";
const ALERT: &str = "運転見合わせ";

/// The feed as the producer meant it, and its bytes as it sent them.
fn feed() -> (pb::FeedMessage, Vec<u8>, Vec<Vec<u8>>) {
    let raw = vec![
        sjis(LABEL),
        sjis(TRIP),
        WINDOWS_1252.encode(STOP).0.into_owned(),
        sjis(ALERT),
        // "駅" is 89 77 in Shift-JIS: the second byte is missing.
        vec![b'A', 0x89],
        // "駅" is E9 A7 85 in UTF-8: the last byte is missing.
        vec![b'B', 0xE9, 0xA7],
    ];
    let vehicle = |id: &str, label: String, trip: String, stop: String| pb::FeedEntity {
        id: id.to_owned(),
        vehicle: Some(pb::VehiclePosition {
            trip: Some(pb::TripDescriptor {
                trip_id: Some(trip),
                route_id: Some("E".to_owned()),
                ..Default::default()
            }),
            vehicle: Some(pb::VehicleDescriptor {
                id: Some(format!("{id}-car")),
                label: Some(label),
                license_plate: Some("品川 500 あ 12-34".to_owned()),
                ..Default::default()
            }),
            position: Some(pb::Position {
                latitude: 35.71,
                longitude: 139.77,
                ..Default::default()
            }),
            stop_id: Some(stop),
            timestamp: Some(1_764_000_000),
            ..Default::default()
        }),
        ..Default::default()
    };
    let written = |with: &dyn Fn(usize, &str) -> String| pb::FeedMessage {
        header: pb::FeedHeader {
            gtfs_realtime_version: "1.0".to_owned(),
            timestamp: Some(1_764_000_005),
            ..Default::default()
        },
        entity: vec![
            vehicle("V1", with(0, LABEL), with(1, TRIP), "valid-stop".to_owned()),
            vehicle(
                "V2",
                "plain label".to_owned(),
                "T2".to_owned(),
                with(2, STOP),
            ),
            pb::FeedEntity {
                id: "A1".to_owned(),
                alert: Some(pb::Alert {
                    header_text: Some(pb::TranslatedString {
                        translation: vec![
                            pb::translated_string::Translation {
                                text: with(3, ALERT),
                                language: Some("ja".to_owned()),
                            },
                            pb::translated_string::Translation {
                                text: "Service suspended".to_owned(),
                                language: Some("en".to_owned()),
                            },
                        ],
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            vehicle("V3", with(4, "A駅"), "T3".to_owned(), "S3".to_owned()),
            vehicle("V4", with(5, "B駅"), "T4".to_owned(), "S4".to_owned()),
        ],
    };
    let meant = written(&|_, text| text.to_owned());
    let lengths: Vec<usize> = raw.iter().map(Vec::len).collect();
    let placeholders = written(&|i, _| placeholder(i, lengths[i]));
    let bytes = with_raw_text(&placeholders, &raw);
    (meant, bytes, raw)
}

/// Clears the fields that carried raw bytes, to compare the rest.
fn without_raw_fields(f: &mut pb::FeedMessage) {
    let v1 = f.entity[0].vehicle.as_mut().unwrap();
    v1.vehicle.as_mut().unwrap().label = None;
    v1.trip.as_mut().unwrap().trip_id = None;
    f.entity[1].vehicle.as_mut().unwrap().stop_id = None;
    f.entity[2]
        .alert
        .as_mut()
        .unwrap()
        .header_text
        .as_mut()
        .unwrap()
        .translation[0]
        .text = String::new();
    for e in [3, 4] {
        f.entity[e]
            .vehicle
            .as_mut()
            .unwrap()
            .vehicle
            .as_mut()
            .unwrap()
            .label = None;
    }
}

fn label(feed: &pb::FeedMessage, entity: usize) -> &str {
    feed.entity[entity]
        .vehicle
        .as_ref()
        .unwrap()
        .vehicle
        .as_ref()
        .unwrap()
        .label
        .as_deref()
        .unwrap()
}

#[test]
fn the_bytes_are_not_utf8_and_prost_alone_refuses_them() {
    let (_, bytes, _) = feed();
    assert!(<pb::FeedMessage as prost::Message>::decode(bytes.as_slice()).is_err());
}

#[test]
fn with_the_declared_encoding_every_string_reads_as_meant() {
    let (meant, bytes, raw) = feed();
    let decoded = decode_with(&bytes, Some(SHIFT_JIS)).unwrap();
    let mut feed = decoded.feed;
    assert_eq!(label(&feed, 0), LABEL);
    let trip = feed.entity[0]
        .vehicle
        .as_ref()
        .unwrap()
        .trip
        .as_ref()
        .unwrap();
    assert_eq!(trip.trip_id.as_deref(), Some(TRIP));
    let alert = feed.entity[2].alert.as_ref().unwrap();
    assert_eq!(
        alert.header_text.as_ref().unwrap().translation[0].text,
        ALERT
    );
    // A Shift-JIS character cut in half: U+FFFD, counted as invalid.
    assert_eq!(label(&feed, 3), "A\u{FFFD}");
    // The Latin-1 and the cut UTF-8 bytes read as Shift-JIS: whatever
    // Shift-JIS makes of them (the declared encoding is the user's word).
    let stop = feed.entity[1]
        .vehicle
        .as_ref()
        .unwrap()
        .stop_id
        .clone()
        .unwrap();
    assert_eq!(stop, SHIFT_JIS.decode_without_bom_handling(&raw[2]).0);
    assert_eq!(
        label(&feed, 4),
        SHIFT_JIS.decode_without_bom_handling(&raw[5]).0
    );
    let malformed = raw
        .iter()
        .filter(|r| SHIFT_JIS.decode_without_bom_handling(r).1)
        .count() as u64;
    assert!(malformed >= 1);
    assert_eq!(
        decoded.repairs,
        Repairs {
            transcoded: 6 - malformed,
            invalid: malformed
        }
    );
    // Everything else is exactly the feed as meant.
    let mut meant = meant;
    without_raw_fields(&mut feed);
    without_raw_fields(&mut meant);
    assert_eq!(feed, meant);
}

#[test]
fn a_latin1_feed_reads_as_meant_with_its_encoding() {
    let (meant, bytes, _) = feed();
    let decoded = decode_with(&bytes, Some(WINDOWS_1252)).unwrap();
    let stop = decoded.feed.entity[1]
        .vehicle
        .as_ref()
        .unwrap()
        .stop_id
        .as_deref();
    assert_eq!(stop, Some(STOP));
    assert_eq!(
        stop,
        meant.entity[1].vehicle.as_ref().unwrap().stop_id.as_deref()
    );
    // windows-1252 gives every byte a character: all six transcode.
    assert_eq!(decoded.repairs.transcoded, 6);
}

#[test]
fn without_an_encoding_invalid_text_becomes_replacement_characters_counted() {
    let (meant, bytes, _) = feed();
    let decoded = decode_with(&bytes, None).unwrap();
    assert_eq!(
        decoded.repairs,
        Repairs {
            transcoded: 0,
            invalid: 6
        }
    );
    let mut feed = decoded.feed;
    let vehicle = |e: usize| feed.entity[e].vehicle.as_ref().unwrap();
    for text in [
        label(&feed, 0),
        vehicle(0)
            .trip
            .as_ref()
            .unwrap()
            .trip_id
            .as_deref()
            .unwrap(),
        &feed.entity[2]
            .alert
            .as_ref()
            .unwrap()
            .header_text
            .as_ref()
            .unwrap()
            .translation[0]
            .text,
    ] {
        assert!(text.contains('\u{FFFD}') && !text.contains('\0'), "{text}");
    }
    // Latin-1 `ç` alone is one invalid byte.
    assert_eq!(
        vehicle(1).stop_id.as_deref(),
        Some("Pla\u{FFFD}a d'Espanya")
    );
    // A character cut in half is one U+FFFD after the valid letter.
    assert_eq!(label(&feed, 3), "A\u{FFFD}");
    assert_eq!(label(&feed, 4), "B\u{FFFD}");
    // Every field that was valid is untouched.
    let mut meant = meant;
    without_raw_fields(&mut feed);
    without_raw_fields(&mut meant);
    assert_eq!(feed, meant);
    // `decode` is the same, lossy by default.
    assert_eq!(gtfs_rt::decode(&bytes).unwrap().entity.len(), 5);
}

#[test]
fn a_utf8_feed_is_not_repaired_and_broken_protobuf_still_fails() {
    let (meant, bytes, _) = feed();
    let clean = gtfs_rt::encode(&meant);
    let decoded = decode_with(&clean, Some(SHIFT_JIS)).unwrap();
    assert_eq!(decoded.repairs, Repairs::default());
    assert_eq!(decoded.feed, meant, "valid UTF-8 is never transcoded");
    for cut in [1, bytes.len() / 3, bytes.len() - 1] {
        assert!(decode_with(&bytes[..cut], None).is_err(), "cut at {cut}");
    }
    assert!(decode_with(&[0xff; 64], None).is_err());
}
