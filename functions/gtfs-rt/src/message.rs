//! Reading back the messages gtfs-fetch sends (see [`crate::json`]): the
//! checks every transform makes on the envelope fields, in one place.

use serde::Deserialize;

/// A `TripDescriptor` as it appears in a message (the fields tables keep).
#[derive(Debug, Clone, Deserialize)]
pub struct Trip {
    /// `trip_id`.
    pub trip_id: Option<String>,
    /// `route_id`.
    pub route_id: Option<String>,
    /// `direction_id`.
    pub direction_id: Option<u32>,
    /// `start_time`, `HH:MM:SS`.
    pub start_time: Option<String>,
    /// `start_date`, `YYYYMMDD`.
    pub start_date: Option<String>,
    /// `schedule_relationship`, enum name.
    pub schedule_relationship: Option<String>,
}

/// A `VehicleDescriptor` as it appears in a message.
#[derive(Debug, Clone, Deserialize)]
pub struct Vehicle {
    /// `id`.
    pub id: Option<String>,
    /// `label`.
    pub label: Option<String>,
    /// `license_plate`.
    pub license_plate: Option<String>,
}

/// Checks a message's envelope — `entity_type` is `expected`, `id` is
/// present and not empty, `feed_timestamp` is present — and returns the id
/// and the feed timestamp, or why the message is rejected.
pub fn envelope<'a>(
    expected: &str,
    entity_type: Option<&str>,
    id: Option<&'a str>,
    feed_timestamp: Option<u64>,
) -> Result<(&'a str, u64), String> {
    match entity_type {
        Some(t) if t == expected => {}
        Some(other) => return Err(format!("entity_type is `{other}`, expected `{expected}`")),
        None => return Err("missing `entity_type`".to_owned()),
    }
    let id = non_empty(id).ok_or("missing `id`")?;
    let feed_timestamp = feed_timestamp.ok_or("missing `feed_timestamp`")?;
    Ok((id, feed_timestamp))
}

/// `None` for an absent or empty string: proto3-style feeds send `""` for
/// "not set", and a table should hold null there.
pub fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::envelope;

    #[test]
    fn checks_type_id_and_timestamp() {
        assert_eq!(
            envelope("alert", Some("alert"), Some("a"), Some(5)),
            Ok(("a", 5))
        );
        for (args, reason) in [
            (
                (Some("vehicle"), Some("a"), Some(5)),
                "entity_type is `vehicle`, expected `alert`",
            ),
            ((None, Some("a"), Some(5)), "missing `entity_type`"),
            ((Some("alert"), Some(""), Some(5)), "missing `id`"),
            ((Some("alert"), Some("a"), None), "missing `feed_timestamp`"),
        ] {
            assert_eq!(
                envelope("alert", args.0, args.1, args.2),
                Err(reason.to_owned())
            );
        }
    }
}
