//! One alert message (as gtfs-fetch sends it) → one row. Active periods
//! and informed entities are lists in GTFS-RT; the row flattens them so
//! plain SQL can filter on them (`active_start`/`active_end` span every
//! period; `informed_route_ids` etc. are comma-separated sorted ids) and
//! keeps the full lists as JSON text for anyone who needs every detail.

use std::collections::BTreeSet;

use gtfs_rt::date::{days, micros};
use gtfs_rt::message::envelope;
use serde::{Deserialize, Serialize};
use weir_guest::{Message as Kafka, Output};

#[derive(Debug, Deserialize)]
struct Message {
    entity_type: Option<String>,
    feed_timestamp: Option<u64>,
    id: Option<String>,
    alert: Option<Alert>,
}

#[derive(Debug, Deserialize)]
struct Alert {
    #[serde(default)]
    active_period: Vec<Period>,
    #[serde(default)]
    informed_entity: Vec<serde_json::Map<String, serde_json::Value>>,
    cause: Option<String>,
    effect: Option<String>,
    severity_level: Option<String>,
    header_text: Option<Translated>,
    description_text: Option<Translated>,
    url: Option<Translated>,
}

#[derive(Debug, Deserialize, Serialize)]
struct Period {
    start: Option<u64>,
    end: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Translated {
    #[serde(default)]
    translation: Vec<Translation>,
}

#[derive(Debug, Deserialize)]
struct Translation {
    text: String,
    language: Option<String>,
}

/// The table rows go to.
pub const TABLE: &str = "alerts";

/// Writes the row of one message to `out`, or says why it is rejected.
pub fn transform(kafka: &Kafka<'_>, out: &mut Output) -> Result<(), String> {
    let value = kafka.value.ok_or("no value (tombstone)")?;
    let message: Message =
        serde_json::from_slice(value).map_err(|e| format!("not an alert message: {e}"))?;
    let (entity_id, feed_seconds) = envelope(
        "alert",
        message.entity_type.as_deref(),
        message.id.as_deref(),
        message.feed_timestamp,
    )?;
    let alert = message.alert.as_ref().ok_or("missing `alert`")?;
    // The spec requires at least one informed entity: an alert about nothing.
    if alert.informed_entity.is_empty() {
        return Err("`alert.informed_entity` is empty".to_owned());
    }
    let (active_start, active_end) = span(&alert.active_period)?;
    let ids = |field: &str| {
        let set: BTreeSet<&str> = alert
            .informed_entity
            .iter()
            .filter_map(|e| match field {
                "trip_id" => e.get("trip")?.get("trip_id")?.as_str(),
                _ => e.get(field)?.as_str(),
            })
            .filter(|s| !s.is_empty())
            .collect();
        (!set.is_empty()).then(|| set.into_iter().collect::<Vec<_>>().join(","))
    };
    let feed_timestamp = micros(feed_seconds, "feed_timestamp")?;
    let active_periods = to_json(&alert.active_period)?;
    let informed_entities = to_json(&alert.informed_entity)?;
    out.row(TABLE)
        .str("entity_id", Some(entity_id))
        .str("cause", alert.cause.as_deref())
        .str("effect", alert.effect.as_deref())
        .str("severity_level", alert.severity_level.as_deref())
        .str("header_text", english(alert.header_text.as_ref()))
        .str("description_text", english(alert.description_text.as_ref()))
        .str("url", english(alert.url.as_ref()))
        .int("active_start", active_start)
        .int("active_end", active_end)
        .str("active_periods", Some(&active_periods))
        .str("informed_agency_ids", ids("agency_id").as_deref())
        .str("informed_route_ids", ids("route_id").as_deref())
        .str("informed_trip_ids", ids("trip_id").as_deref())
        .str("informed_stop_ids", ids("stop_id").as_deref())
        .str("informed_entities", Some(&informed_entities))
        .int("feed_timestamp", Some(feed_timestamp))
        // The feed's day (UTC), in days since the epoch.
        .int("date", Some(days(i64::try_from(feed_seconds).unwrap_or(0))))
        .int("kafka_partition", Some(kafka.partition))
        .int("kafka_offset", Some(kafka.offset));
    Ok(())
}

/// The earliest start and latest end over every period; an open end (or no
/// period at all: "active while in the feed") leaves that side null.
fn span(periods: &[Period]) -> Result<(Option<i64>, Option<i64>), String> {
    let mut start: Option<i64> = None;
    let mut end: Option<i64> = None;
    let mut open_start = periods.is_empty();
    let mut open_end = periods.is_empty();
    for (i, p) in periods.iter().enumerate() {
        if let (Some(s), Some(e)) = (p.start, p.end)
            && s > e
        {
            return Err(format!(
                "active_period[{i}] ends ({e}) before it starts ({s})"
            ));
        }
        match p.start {
            Some(s) => {
                let s = micros(s, &format!("active_period[{i}].start"))?;
                start = Some(start.map_or(s, |m| m.min(s)));
            }
            None => open_start = true,
        }
        match p.end {
            Some(e) => {
                let e = micros(e, &format!("active_period[{i}].end"))?;
                end = Some(end.map_or(e, |m| m.max(e)));
            }
            None => open_end = true,
        }
    }
    Ok((start.filter(|_| !open_start), end.filter(|_| !open_end)))
}

/// The English text if there is one, else the first translation.
fn english(text: Option<&Translated>) -> Option<&str> {
    let translations = &text?.translation;
    translations
        .iter()
        .find(|t| t.language.as_deref().is_some_and(|l| l.starts_with("en")))
        .or_else(|| translations.first())
        .map(|t| t.text.as_str())
}

fn to_json(value: &impl Serialize) -> Result<String, String> {
    serde_json::to_string(value).map_err(|e| format!("cannot encode: {e}"))
}

#[cfg(test)]
mod tests {
    use weir_guest::{Cell, Message, Output, Table};

    use super::transform;

    const ALERT: &str = r#"{"entity_type":"alert","feed_timestamp":1764000000,"gtfs_realtime_version":"2.0","id":"a1","alert":{"active_period":[{"start":1763996400,"end":1764000000},{"start":1764003600,"end":1764007200}],"informed_entity":[{"route_id":"R2"},{"stop_id":"R2-S5"},{"route_id":"R1"},{"trip":{"trip_id":"T9"}}],"cause":"MAINTENANCE","effect":"SIGNIFICANT_DELAYS","header_text":{"translation":[{"text":"R2線 遅延","language":"ja"},{"text":"Delays on R2","language":"en"}]},"severity_level":"WARNING"}}"#;

    fn run(value: &str) -> Result<Table, String> {
        let message = Message::new("alerts", 0, 5, Some(value.as_bytes()));
        let mut out = Output::default();
        transform(&message, &mut out)?;
        let (mut tables, _) = out.into_parts();
        Ok(tables.remove(0))
    }

    #[test]
    fn an_alert_becomes_one_flat_row() {
        let row = run(ALERT).unwrap();
        let get = |column| row.get(0, column);
        assert_eq!(get("entity_id"), Cell::Text("a1"));
        assert_eq!(get("cause"), Cell::Text("MAINTENANCE"));
        assert_eq!(get("header_text"), Cell::Text("Delays on R2"));
        assert_eq!(get("active_start"), Cell::Int(1_763_996_400_000_000));
        assert_eq!(get("active_end"), Cell::Int(1_764_007_200_000_000));
        assert_eq!(get("informed_route_ids"), Cell::Text("R1,R2"));
        assert_eq!(get("informed_stop_ids"), Cell::Text("R2-S5"));
        assert_eq!(get("informed_trip_ids"), Cell::Text("T9"));
        assert_eq!(get("informed_agency_ids"), Cell::Null);
        let Cell::Text(entities) = get("informed_entities") else {
            panic!("{:?}", get("informed_entities"))
        };
        let entities: serde_json::Value = serde_json::from_str(entities).unwrap();
        assert_eq!(entities.as_array().unwrap().len(), 4);
        // 2025-11-24, in days since 1970-01-01.
        assert_eq!(get("date"), Cell::Int(20_416));
        assert_eq!(get("kafka_offset"), Cell::Int(5));
    }

    #[test]
    fn an_open_period_leaves_its_side_null() {
        let row = run(&ALERT.replace(r#","end":1764007200"#, "")).unwrap();
        assert_eq!(row.get(0, "active_start"), Cell::Int(1_763_996_400_000_000));
        assert_eq!(row.get(0, "active_end"), Cell::Null);
    }

    #[test]
    fn invalid_alerts_are_rejected_with_a_reason() {
        for (value, reason) in [
            (ALERT.replace(r#""entity_type":"alert""#, r#""entity_type":"vehicle""#), "expected `alert`"),
            (ALERT.replace(r#""start":1764003600"#, r#""start":1764009999"#), "ends (1764007200) before it starts"),
            (
                ALERT.replace(r#"[{"route_id":"R2"},{"stop_id":"R2-S5"},{"route_id":"R1"},{"trip":{"trip_id":"T9"}}]"#, "[]"),
                "informed_entity` is empty",
            ),
            (ALERT.replace(r#""feed_timestamp":1764000000,"#, ""), "missing `feed_timestamp`"),
        ] {
            let err = run(&value).unwrap_err();
            assert!(err.contains(reason), "{err}");
        }
    }
}
