//! Reading back the messages gtfs-fetch sends (see [`crate::json`]): the
//! checks every transform makes on the envelope fields, in one place.

use std::borrow::Cow;
use std::ops::Deref;

use serde::Deserialize;
use serde::de::{Deserializer, Error, Visitor};

/// A string field of a message, borrowed from the message's bytes unless
/// it holds JSON escapes: most strings cost no allocation and no copy
/// (`Option<Cow<str>>` with `#[serde(borrow)]` would always copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;

        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }

            fn visit_str<E: Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }

        deserializer.deserialize_str(TextVisitor)
    }
}

/// A `TripDescriptor` as it appears in a message (the fields tables keep).
#[derive(Debug, Clone, Deserialize)]
pub struct Trip<'a> {
    /// `trip_id`.
    #[serde(borrow)]
    pub trip_id: Option<Text<'a>>,
    /// `route_id`.
    #[serde(borrow)]
    pub route_id: Option<Text<'a>>,
    /// `direction_id`.
    pub direction_id: Option<u32>,
    /// `start_time`, `HH:MM:SS`.
    #[serde(borrow)]
    pub start_time: Option<Text<'a>>,
    /// `start_date`, `YYYYMMDD`.
    #[serde(borrow)]
    pub start_date: Option<Text<'a>>,
    /// `schedule_relationship`, enum name.
    #[serde(borrow)]
    pub schedule_relationship: Option<Text<'a>>,
}

/// A `VehicleDescriptor` as it appears in a message.
#[derive(Debug, Clone, Deserialize)]
pub struct Vehicle<'a> {
    /// `id`.
    #[serde(borrow)]
    pub id: Option<Text<'a>>,
    /// `label`.
    #[serde(borrow)]
    pub label: Option<Text<'a>>,
    /// `license_plate`.
    #[serde(borrow)]
    pub license_plate: Option<Text<'a>>,
}

/// Parses a message value: validates UTF-8 once for the whole value, so
/// string fields are not validated again one by one.
pub fn parse<'a, T: Deserialize<'a>>(value: &'a [u8]) -> Result<T, String> {
    let text = std::str::from_utf8(value).map_err(|e| format!("not UTF-8: {e}"))?;
    serde_json::from_str(text).map_err(|e| e.to_string())
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
    use std::borrow::Cow;

    use super::{Vehicle, envelope, parse};

    #[test]
    fn strings_are_borrowed_unless_escaped() {
        let value = r#"{"id":"V1","label":"line \"7\" \u00e9","license_plate":"é"}"#.as_bytes();
        let vehicle: Vehicle = parse(value).unwrap();
        let id = vehicle.id.unwrap();
        assert!(matches!(id.0, Cow::Borrowed("V1")), "{id:?}");
        let label = vehicle.label.unwrap();
        assert!(matches!(label.0, Cow::Owned(_)), "{label:?}");
        assert_eq!(&*label, "line \"7\" \u{e9}");
        assert_eq!(vehicle.license_plate.as_deref(), Some("\u{e9}"));
        assert!(
            parse::<Vehicle>(b"{\"id\":\"\xff\"}")
                .unwrap_err()
                .contains("not UTF-8")
        );
        assert!(
            parse::<Vehicle>(br#"{"id":7}"#)
                .unwrap_err()
                .contains("expected a string")
        );
    }

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
