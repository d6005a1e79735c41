//! One alert message (as gtfs-fetch sends it) → one row. Active periods
//! and informed entities are lists in GTFS-RT; the row flattens them so
//! plain SQL can filter on them (`active_start`/`active_end` span every
//! period; `informed_route_ids` etc. are comma-separated sorted ids) and
//! keeps the full lists as JSON text for anyone who needs every detail.

use std::collections::BTreeSet;

use gtfs_rt::date::{iso_date, micros};
use gtfs_rt::message::envelope;
use serde::{Deserialize, Serialize};

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

/// A row of `alerts`; absent fields are null.
#[derive(Debug, Serialize)]
struct Row<'a> {
    entity_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    effect: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    severity_level: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    header_text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description_text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    active_start: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    active_end: Option<i64>,
    active_periods: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    informed_agency_ids: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    informed_route_ids: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    informed_trip_ids: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    informed_stop_ids: Option<String>,
    informed_entities: String,
    feed_timestamp: i64,
    date: String,
    kafka_partition: i32,
    kafka_offset: i64,
}

/// The row (JSON text) for one message value, or why it is rejected.
pub fn transform(value: Option<&[u8]>, partition: i32, offset: i64) -> Result<String, String> {
    let value = value.ok_or("no value (tombstone)")?;
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
    let row = Row {
        entity_id,
        cause: alert.cause.as_deref(),
        effect: alert.effect.as_deref(),
        severity_level: alert.severity_level.as_deref(),
        header_text: english(alert.header_text.as_ref()),
        description_text: english(alert.description_text.as_ref()),
        url: english(alert.url.as_ref()),
        active_start,
        active_end,
        active_periods: to_json(&alert.active_period)?,
        informed_agency_ids: ids("agency_id"),
        informed_route_ids: ids("route_id"),
        informed_trip_ids: ids("trip_id"),
        informed_stop_ids: ids("stop_id"),
        informed_entities: to_json(&alert.informed_entity)?,
        feed_timestamp: micros(feed_seconds, "feed_timestamp")?,
        date: iso_date(i64::try_from(feed_seconds).unwrap_or(0)),
        kafka_partition: partition,
        kafka_offset: offset,
    };
    to_json(&row)
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
    use super::transform;

    const ALERT: &str = r#"{"entity_type":"alert","feed_timestamp":1764000000,"gtfs_realtime_version":"2.0","id":"a1","alert":{"active_period":[{"start":1763996400,"end":1764000000},{"start":1764003600,"end":1764007200}],"informed_entity":[{"route_id":"R2"},{"stop_id":"R2-S5"},{"route_id":"R1"},{"trip":{"trip_id":"T9"}}],"cause":"MAINTENANCE","effect":"SIGNIFICANT_DELAYS","header_text":{"translation":[{"text":"R2線 遅延","language":"ja"},{"text":"Delays on R2","language":"en"}]},"severity_level":"WARNING"}}"#;

    fn row(value: &str) -> serde_json::Value {
        serde_json::from_str(&transform(Some(value.as_bytes()), 0, 5).unwrap()).unwrap()
    }

    #[test]
    fn an_alert_becomes_one_flat_row() {
        let row = row(ALERT);
        assert_eq!(row["entity_id"], "a1");
        assert_eq!(row["cause"], "MAINTENANCE");
        assert_eq!(row["header_text"], "Delays on R2");
        assert_eq!(row["active_start"], 1_763_996_400_000_000_i64);
        assert_eq!(row["active_end"], 1_764_007_200_000_000_i64);
        assert_eq!(row["informed_route_ids"], "R1,R2");
        assert_eq!(row["informed_stop_ids"], "R2-S5");
        assert_eq!(row["informed_trip_ids"], "T9");
        assert!(row.get("informed_agency_ids").is_none());
        let entities: serde_json::Value =
            serde_json::from_str(row["informed_entities"].as_str().unwrap()).unwrap();
        assert_eq!(entities.as_array().unwrap().len(), 4);
        assert_eq!(row["date"], "2025-11-24");
    }

    #[test]
    fn an_open_period_leaves_its_side_null() {
        let row = row(&ALERT.replace(r#","end":1764007200"#, ""));
        assert_eq!(row["active_start"], 1_763_996_400_000_000_i64);
        assert!(row.get("active_end").is_none());
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
            let err = transform(Some(value.as_bytes()), 0, 0).unwrap_err();
            assert!(err.contains(reason), "{err}");
        }
    }
}
