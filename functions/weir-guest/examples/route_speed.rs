//! route-speed: one row per vehicle message with its route and speed;
//! messages without a speed are rejected (they go to the dead-letter table).

use weir_guest::{Message, Output};

/// One message in; its rows, or the reason to reject it, out.
pub fn transform(message: &Message<'_>, out: &mut Output) -> Result<(), String> {
    let value = message.value.ok_or("no value")?;
    let msg: serde_json::Value =
        serde_json::from_slice(value).map_err(|e| format!("not JSON: {e}"))?;
    let vehicle = &msg["vehicle"];
    let speed = vehicle["position"]["speed"]
        .as_f64()
        .ok_or("no position.speed")?;
    out.row("route_speeds")
        .str("route_id", vehicle["trip"]["route_id"].as_str())
        .float("speed", Some(speed))
        .int("kafka_partition", Some(message.partition))
        .int("kafka_offset", Some(message.offset));
    Ok(())
}

#[cfg(target_arch = "wasm32")]
weir_guest::export_transform!(transform);

#[cfg(test)]
mod tests {
    use weir_guest::{Cell, Message, Output};

    #[test]
    fn a_vehicle_with_a_speed_is_a_row_and_one_without_is_rejected() {
        let mut out = Output::default();
        for value in [
            r#"{"vehicle":{"trip":{"route_id":"R1"},"position":{"speed":12.5}}}"#,
            r#"{"vehicle":{"trip":{"route_id":"R1"},"position":{}}}"#,
        ] {
            let message = Message::new("vehicle_topic", 0, 7, Some(value.as_bytes()));
            out.handle(&message, super::transform);
        }
        let table = &out.tables()[0];
        assert_eq!(table.get(0, "speed"), Cell::Float(12.5));
        assert_eq!(table.get(0, "route_id"), Cell::Text("R1"));
        assert_eq!(out.rejects(), [(1, "no position.speed".to_owned())]);
    }
}
