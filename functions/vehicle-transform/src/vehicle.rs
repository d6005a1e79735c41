//! One vehicle message (as gtfs-fetch sends it: the `FeedEntity` in
//! proto field names plus `entity_type` and `feed_timestamp`) → one row.

use serde::Deserialize;

use gtfs_rt::date::{days, micros};
use gtfs_rt::message::{Text, Trip, Vehicle, envelope, non_empty, parse};
use weir_guest::{Message as Kafka, Output};

/// The parts of a vehicle message the table keeps, borrowing its strings.
/// Unknown fields (extensions, newer spec fields) are ignored.
#[derive(Debug, Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    entity_type: Option<Text<'a>>,
    feed_timestamp: Option<u64>,
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    vehicle: Option<VehiclePosition<'a>>,
}

#[derive(Debug, Deserialize)]
struct VehiclePosition<'a> {
    #[serde(borrow)]
    trip: Option<Trip<'a>>,
    #[serde(borrow)]
    vehicle: Option<Vehicle<'a>>,
    position: Option<Position>,
    current_stop_sequence: Option<u32>,
    #[serde(borrow)]
    stop_id: Option<Text<'a>>,
    #[serde(borrow)]
    current_status: Option<Text<'a>>,
    timestamp: Option<u64>,
    #[serde(borrow)]
    congestion_level: Option<Text<'a>>,
    #[serde(borrow)]
    occupancy_status: Option<Text<'a>>,
    occupancy_percentage: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct Position {
    latitude: f64,
    longitude: f64,
    bearing: Option<f64>,
    odometer: Option<f64>,
    speed: Option<f64>,
}

/// The table rows go to.
pub const TABLE: &str = "vehicle_positions";

/// Writes the row of one message to `out`, or says why it is rejected.
pub fn transform(kafka: &Kafka<'_>, out: &mut Output) -> Result<(), String> {
    let value = kafka.value.ok_or("no value (tombstone)")?;
    let message: Message = parse(value).map_err(|e| format!("not a vehicle message: {e}"))?;
    let (entity_id, feed_seconds) = envelope(
        "vehicle",
        message.entity_type.as_deref(),
        message.id.as_deref(),
        message.feed_timestamp,
    )?;
    let feed_timestamp = micros(feed_seconds, "feed_timestamp")?;
    let vehicle = message.vehicle.as_ref().ok_or("missing `vehicle`")?;
    let position = vehicle
        .position
        .as_ref()
        .ok_or("missing `vehicle.position`")?;
    check_position(position)?;
    let vehicle_timestamp = vehicle
        .timestamp
        .map(|t| micros(t, "vehicle.timestamp"))
        .transpose()?;
    let trip = vehicle.trip.as_ref();
    let descriptor = vehicle.vehicle.as_ref();
    // The columns of `vehicle_positions`; absent fields are null.
    let date_seconds = i64::try_from(vehicle.timestamp.unwrap_or(feed_seconds)).unwrap_or(0);
    out.row(TABLE)
        .str("entity_id", Some(entity_id))
        .str(
            "vehicle_id",
            descriptor.and_then(|d| non_empty(d.id.as_deref())),
        )
        .str(
            "label",
            descriptor.and_then(|d| non_empty(d.label.as_deref())),
        )
        .str(
            "license_plate",
            descriptor.and_then(|d| non_empty(d.license_plate.as_deref())),
        )
        .str(
            "trip_id",
            trip.and_then(|t| non_empty(t.trip_id.as_deref())),
        )
        .str(
            "route_id",
            trip.and_then(|t| non_empty(t.route_id.as_deref())),
        )
        .int("direction_id", trip.and_then(|t| t.direction_id))
        .str(
            "start_date",
            trip.and_then(|t| non_empty(t.start_date.as_deref())),
        )
        .str(
            "start_time",
            trip.and_then(|t| non_empty(t.start_time.as_deref())),
        )
        .str(
            "schedule_relationship",
            trip.and_then(|t| t.schedule_relationship.as_deref()),
        )
        .float("latitude", Some(position.latitude))
        .float("longitude", Some(position.longitude))
        .float("bearing", position.bearing)
        .float("odometer", position.odometer)
        .float("speed", position.speed)
        .int("current_stop_sequence", vehicle.current_stop_sequence)
        .str("stop_id", non_empty(vehicle.stop_id.as_deref()))
        .str("current_status", vehicle.current_status.as_deref())
        .str("congestion_level", vehicle.congestion_level.as_deref())
        .str("occupancy_status", vehicle.occupancy_status.as_deref())
        .int("occupancy_percentage", vehicle.occupancy_percentage)
        // Timestamps in microseconds since the epoch (the table's `timestamp` type).
        .int("vehicle_timestamp", vehicle_timestamp)
        .int("feed_timestamp", Some(feed_timestamp))
        // The day (UTC, days since the epoch) of the vehicle timestamp,
        // else of the feed's.
        .int("date", Some(days(date_seconds)))
        .int("kafka_partition", Some(kafka.partition))
        .int("kafka_offset", Some(kafka.offset));
    Ok(())
}

fn check_position(p: &Position) -> Result<(), String> {
    if !(-90.0..=90.0).contains(&p.latitude) {
        return Err(format!("latitude {} is outside [-90, 90]", p.latitude));
    }
    if !(-180.0..=180.0).contains(&p.longitude) {
        return Err(format!("longitude {} is outside [-180, 180]", p.longitude));
    }
    if let Some(bearing) = p.bearing
        && !(0.0..=360.0).contains(&bearing)
    {
        return Err(format!("bearing {bearing} is outside [0, 360]"));
    }
    if let Some(speed) = p.speed
        && !(speed.is_finite() && speed >= 0.0)
    {
        return Err(format!("speed {speed} is negative"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use weir_guest::{Cell, Message, Output};

    use super::transform;

    const CALTRAIN: &str = r#"{"entity_type":"vehicle","feed_timestamp":1699405559,"gtfs_realtime_version":"1.0","id":"124","vehicle":{"trip":{"trip_id":"124","route_id":"L1","direction_id":1},"vehicle":{"id":"124","label":"","license_plate":""},"position":{"latitude":37.37046,"longitude":-121.99604},"timestamp":1699405549,"current_status":"IN_TRANSIT_TO"}}"#;

    fn run(value: Option<&str>, partition: i32, offset: i64) -> Result<Output, String> {
        let message = Message::new("vehicles", partition, offset, value.map(str::as_bytes));
        let mut out = Output::default();
        transform(&message, &mut out).map(|()| out)
    }

    #[test]
    fn a_real_message_becomes_a_row() {
        let mut out = run(Some(CALTRAIN), 3, 42).unwrap();
        let table = &out.tables()[0];
        assert_eq!(table.name(), "vehicle_positions");
        assert_eq!(table.rows(), 1);
        let get = |column| table.get(0, column);
        assert_eq!(get("entity_id"), Cell::Text("124"));
        assert_eq!(get("vehicle_id"), Cell::Text("124"));
        assert_eq!(get("route_id"), Cell::Text("L1"));
        assert_eq!(get("direction_id"), Cell::Int(1));
        assert_eq!(get("latitude"), Cell::Float(37.37046));
        assert_eq!(get("current_status"), Cell::Text("IN_TRANSIT_TO"));
        assert_eq!(get("vehicle_timestamp"), Cell::Int(1_699_405_549_000_000));
        assert_eq!(get("feed_timestamp"), Cell::Int(1_699_405_559_000_000));
        // 2023-11-08, in days since 1970-01-01.
        assert_eq!(get("date"), Cell::Int(19_669));
        assert_eq!(get("kafka_partition"), Cell::Int(3));
        assert_eq!(get("kafka_offset"), Cell::Int(42));
        assert_eq!(get("label"), Cell::Null, "empty strings are null");
    }

    #[test]
    fn invalid_messages_are_rejected_with_a_reason() {
        let with = |from: &str, to: &str| CALTRAIN.replace(from, to);
        for (value, reason) in [
            (None, "tombstone".to_owned()),
            (
                Some("{not json".to_owned()),
                "not a vehicle message".to_owned(),
            ),
            (
                Some(with(
                    r#""entity_type":"vehicle""#,
                    r#""entity_type":"alert""#,
                )),
                "expected `vehicle`".to_owned(),
            ),
            (
                Some(with(r#""id":"124","vehicle""#, r#""vehicle""#)),
                "missing `id`".to_owned(),
            ),
            (
                Some(with(r#""feed_timestamp":1699405559,"#, "")),
                "missing `feed_timestamp`".to_owned(),
            ),
            (
                Some(with("37.37046", "97.5")),
                "latitude 97.5 is outside".to_owned(),
            ),
            (
                Some(with("-121.99604", "-181")),
                "longitude -181 is outside".to_owned(),
            ),
            (
                Some(with("37.37046", r#""north""#)),
                "invalid type".to_owned(),
            ),
            (
                Some(with(
                    r#""position":{"latitude":37.37046,"longitude":-121.99604},"#,
                    "",
                )),
                "missing `vehicle.position`".to_owned(),
            ),
            (
                Some(with("1699405549", "99999999999")),
                "after the year 2100".to_owned(),
            ),
        ] {
            let err = run(value.as_deref(), 0, 0).unwrap_err();
            assert!(err.contains(&reason), "{value:?}: {err}");
        }
    }
}
