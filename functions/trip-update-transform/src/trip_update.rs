//! One trip update message (as gtfs-fetch sends it) → one row per stop
//! time update, or a single row with empty stop columns for a trip update
//! that has none (a cancelled trip, say).

use gtfs_rt::date::{days, micros, micros_signed};
use gtfs_rt::message::{Text, Trip, Vehicle, envelope, non_empty, parse};
use serde::Deserialize;
use weir_guest::{Message as Kafka, Output, Row};

/// The parts of a trip update message the table keeps, borrowing its strings.
#[derive(Debug, Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    entity_type: Option<Text<'a>>,
    feed_timestamp: Option<u64>,
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    trip_update: Option<TripUpdate<'a>>,
}

#[derive(Debug, Deserialize)]
struct TripUpdate<'a> {
    #[serde(borrow)]
    trip: Option<Trip<'a>>,
    #[serde(borrow)]
    vehicle: Option<Vehicle<'a>>,
    #[serde(default, borrow)]
    stop_time_update: Vec<StopTimeUpdate<'a>>,
    timestamp: Option<u64>,
    delay: Option<i32>,
}

#[derive(Debug, Deserialize)]
struct StopTimeUpdate<'a> {
    stop_sequence: Option<u32>,
    #[serde(borrow)]
    stop_id: Option<Text<'a>>,
    arrival: Option<Event>,
    departure: Option<Event>,
    #[serde(borrow)]
    schedule_relationship: Option<Text<'a>>,
}

#[derive(Debug, Deserialize)]
struct Event {
    delay: Option<i32>,
    time: Option<i64>,
    uncertainty: Option<i32>,
}

/// The table rows go to.
pub const TABLE: &str = "trip_updates";

/// Writes the rows of one message to `out`, or says why it is rejected.
pub fn transform(kafka: &Kafka<'_>, out: &mut Output) -> Result<(), String> {
    let value = kafka.value.ok_or("no value (tombstone)")?;
    let message: Message = parse(value).map_err(|e| format!("not a trip update message: {e}"))?;
    let (entity_id, feed_seconds) = envelope(
        "trip_update",
        message.entity_type.as_deref(),
        message.id.as_deref(),
        message.feed_timestamp,
    )?;
    let feed_timestamp = micros(feed_seconds, "feed_timestamp")?;
    let update = message
        .trip_update
        .as_ref()
        .ok_or("missing `trip_update`")?;
    // The spec makes `trip` required: without it the update says nothing.
    let trip = update.trip.as_ref().ok_or("missing `trip_update.trip`")?;
    let trip_timestamp = update
        .timestamp
        .map(|t| micros(t, "trip_update.timestamp"))
        .transpose()?;
    // The day (UTC, days since the epoch) of the update, else of the feed.
    let day = days(i64::try_from(update.timestamp.unwrap_or(feed_seconds)).unwrap_or(0));
    let descriptor = update.vehicle.as_ref();
    // The columns of `trip_updates` every row of this update shares;
    // absent fields are null.
    let base = |row: &mut Row<'_>| {
        row.str("entity_id", Some(entity_id))
            .str("trip_id", non_empty(trip.trip_id.as_deref()))
            .str("route_id", non_empty(trip.route_id.as_deref()))
            .int("direction_id", trip.direction_id)
            .str("start_date", non_empty(trip.start_date.as_deref()))
            .str("start_time", non_empty(trip.start_time.as_deref()))
            .str(
                "trip_schedule_relationship",
                trip.schedule_relationship.as_deref(),
            )
            .str(
                "vehicle_id",
                descriptor.and_then(|d| non_empty(d.id.as_deref())),
            )
            .str(
                "vehicle_label",
                descriptor.and_then(|d| non_empty(d.label.as_deref())),
            )
            .int("trip_delay", update.delay)
            .int("trip_timestamp", trip_timestamp)
            .int("feed_timestamp", Some(feed_timestamp))
            .int("date", Some(day))
            .int("kafka_partition", Some(kafka.partition))
            .int("kafka_offset", Some(kafka.offset));
    };
    if update.stop_time_update.is_empty() {
        base(&mut out.row(TABLE));
        return Ok(());
    }
    for (i, stop) in update.stop_time_update.iter().enumerate() {
        if stop.stop_sequence.is_none() && non_empty(stop.stop_id.as_deref()).is_none() {
            return Err(format!(
                "stop_time_update[{i}] has neither `stop_sequence` nor `stop_id`"
            ));
        }
        let time = |event: Option<&Event>, field: &str| {
            event
                .and_then(|e| e.time)
                .map(|t| micros_signed(t, &format!("stop_time_update[{i}].{field}.time")))
                .transpose()
        };
        let (arrival, departure) = (stop.arrival.as_ref(), stop.departure.as_ref());
        let (arrival_time, departure_time) =
            (time(arrival, "arrival")?, time(departure, "departure")?);
        let mut row = out.row(TABLE);
        base(&mut row);
        row.int("stop_sequence", stop.stop_sequence)
            .str("stop_id", non_empty(stop.stop_id.as_deref()))
            .str(
                "stop_schedule_relationship",
                stop.schedule_relationship.as_deref(),
            )
            .int("arrival_delay", arrival.and_then(|e| e.delay))
            .int("arrival_time", arrival_time)
            .int("arrival_uncertainty", arrival.and_then(|e| e.uncertainty))
            .int("departure_delay", departure.and_then(|e| e.delay))
            .int("departure_time", departure_time)
            .int(
                "departure_uncertainty",
                departure.and_then(|e| e.uncertainty),
            );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use weir_guest::{Cell, Message, Output, Table};

    use super::transform;

    const UPDATE: &str = r#"{"entity_type":"trip_update","feed_timestamp":1764000000,"gtfs_realtime_version":"2.0","id":"tu-1","trip_update":{"trip":{"trip_id":"T1","route_id":"R1","direction_id":0,"start_date":"20251124","schedule_relationship":"SCHEDULED"},"vehicle":{"id":"V1"},"stop_time_update":[{"stop_sequence":3,"stop_id":"S3","arrival":{"delay":60,"time":1764000100,"uncertainty":30},"departure":{"delay":60,"time":1764000120},"schedule_relationship":"SCHEDULED"},{"stop_sequence":4,"stop_id":"S4","arrival":{"delay":-10,"time":1764000200}}],"timestamp":1764000000,"delay":60}}"#;

    fn run(value: &str, offset: i64) -> Result<Table, String> {
        let message = Message::new("trip_updates", 1, offset, Some(value.as_bytes()));
        let mut out = Output::default();
        transform(&message, &mut out)?;
        let (mut tables, _) = out.into_parts();
        Ok(tables.remove(0))
    }

    #[test]
    fn one_row_per_stop_time_update() {
        let rows = run(UPDATE, 7).unwrap();
        assert_eq!(rows.rows(), 2);
        assert_eq!(rows.get(0, "trip_id"), Cell::Text("T1"));
        assert_eq!(rows.get(0, "stop_sequence"), Cell::Int(3));
        assert_eq!(rows.get(0, "arrival_delay"), Cell::Int(60));
        assert_eq!(
            rows.get(0, "arrival_time"),
            Cell::Int(1_764_000_100_000_000)
        );
        assert_eq!(
            rows.get(0, "departure_time"),
            Cell::Int(1_764_000_120_000_000)
        );
        assert_eq!(rows.get(1, "stop_id"), Cell::Text("S4"));
        assert_eq!(rows.get(1, "arrival_delay"), Cell::Int(-10));
        assert_eq!(rows.get(1, "departure_time"), Cell::Null);
        assert_eq!(rows.get(1, "vehicle_id"), Cell::Text("V1"));
        // 2025-11-24, in days since 1970-01-01.
        assert_eq!(rows.get(1, "date"), Cell::Int(20_416));
        assert_eq!(rows.get(1, "kafka_offset"), Cell::Int(7));
    }

    #[test]
    fn a_trip_update_without_stops_is_one_row() {
        let cancelled = UPDATE
            .split(r#""stop_time_update""#)
            .next()
            .unwrap()
            .to_owned()
            + r#""timestamp":1764000000}}"#;
        let rows = run(&cancelled, 0).unwrap();
        assert_eq!(rows.rows(), 1);
        assert_eq!(rows.get(0, "stop_sequence"), Cell::Null);
        assert_eq!(rows.get(0, "trip_id"), Cell::Text("T1"));
    }

    #[test]
    fn invalid_messages_are_rejected_with_a_reason() {
        for (value, reason) in [
            (
                UPDATE.replace(
                    r#""entity_type":"trip_update""#,
                    r#""entity_type":"vehicle""#,
                ),
                "expected `trip_update`",
            ),
            (
                UPDATE.replace(r#""trip":{"#, r#""trap":{"#),
                "missing `trip_update.trip`",
            ),
            (
                UPDATE.replace(r#""stop_sequence":4,"stop_id":"S4","#, ""),
                "stop_time_update[1] has neither",
            ),
            (UPDATE.replace("1764000200", "-5"), "before 1970"),
            (
                UPDATE.replace(r#""delay":60,"time""#, r#""delay":"late","time""#),
                "invalid type",
            ),
        ] {
            let err = run(&value, 0).unwrap_err();
            assert!(err.contains(reason), "{err}");
        }
    }
}
