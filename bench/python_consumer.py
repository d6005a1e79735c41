"""The Python baseline of the transform benchmark (host/benches/transform.rs):
what a data engineer would write instead of weir — a confluent-kafka consumer
that parses each vehicle message with `json`, validates and reshapes it like
vehicle-transform, and appends each batch to a Delta table with the
`deltalake` package (pyarrow for the Arrow batch).

usage: python_consumer.py BROKERS TOPIC TOTAL TABLE_URI
prints {"records_per_second": ...}, measured from the first write to the
last (group join and the first batch excluded, as for weir).
needs: pip install confluent-kafka deltalake pyarrow
"""

import datetime
import json
import sys
import time
import uuid

import pyarrow as pa
from confluent_kafka import Consumer
from deltalake import write_deltalake

SCHEMA = pa.schema(
    [
        pa.field("entity_id", pa.string(), nullable=False),
        pa.field("vehicle_id", pa.string()),
        pa.field("label", pa.string()),
        pa.field("license_plate", pa.string()),
        pa.field("trip_id", pa.string()),
        pa.field("route_id", pa.string()),
        pa.field("direction_id", pa.int32()),
        pa.field("start_date", pa.string()),
        pa.field("start_time", pa.string()),
        pa.field("schedule_relationship", pa.string()),
        pa.field("latitude", pa.float64(), nullable=False),
        pa.field("longitude", pa.float64(), nullable=False),
        pa.field("bearing", pa.float64()),
        pa.field("odometer", pa.float64()),
        pa.field("speed", pa.float64()),
        pa.field("current_stop_sequence", pa.int64()),
        pa.field("stop_id", pa.string()),
        pa.field("current_status", pa.string()),
        pa.field("congestion_level", pa.string()),
        pa.field("occupancy_status", pa.string()),
        pa.field("occupancy_percentage", pa.int32()),
        pa.field("vehicle_timestamp", pa.timestamp("us", tz="UTC")),
        pa.field("feed_timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("date", pa.date32(), nullable=False),
        pa.field("kafka_partition", pa.int32(), nullable=False),
        pa.field("kafka_offset", pa.int64(), nullable=False),
    ]
)


def text(value):
    return value or None


def row(message):
    """The vehicle_positions row of one message, or None if it is invalid."""
    try:
        m = json.loads(message.value())
    except (TypeError, ValueError):
        return None
    vehicle = m.get("vehicle") or {}
    position = vehicle.get("position")
    if m.get("entity_type") != "vehicle" or not m.get("id") or position is None:
        return None
    if "feed_timestamp" not in m:
        return None
    lat, lon = position.get("latitude"), position.get("longitude")
    if not (isinstance(lat, (int, float)) and -90 <= lat <= 90):
        return None
    if not (isinstance(lon, (int, float)) and -180 <= lon <= 180):
        return None
    trip = vehicle.get("trip") or {}
    descriptor = vehicle.get("vehicle") or {}
    seconds = vehicle.get("timestamp") or m["feed_timestamp"]
    return {
        "entity_id": m["id"],
        "vehicle_id": text(descriptor.get("id")),
        "label": text(descriptor.get("label")),
        "license_plate": text(descriptor.get("license_plate")),
        "trip_id": text(trip.get("trip_id")),
        "route_id": text(trip.get("route_id")),
        "direction_id": trip.get("direction_id"),
        "start_date": text(trip.get("start_date")),
        "start_time": text(trip.get("start_time")),
        "schedule_relationship": trip.get("schedule_relationship"),
        "latitude": lat,
        "longitude": lon,
        "bearing": position.get("bearing"),
        "odometer": position.get("odometer"),
        "speed": position.get("speed"),
        "current_stop_sequence": vehicle.get("current_stop_sequence"),
        "stop_id": text(vehicle.get("stop_id")),
        "current_status": vehicle.get("current_status"),
        "congestion_level": vehicle.get("congestion_level"),
        "occupancy_status": vehicle.get("occupancy_status"),
        "occupancy_percentage": vehicle.get("occupancy_percentage"),
        "vehicle_timestamp": vehicle["timestamp"] * 1_000_000 if "timestamp" in vehicle else None,
        "feed_timestamp": m["feed_timestamp"] * 1_000_000,
        "date": datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).date(),
        "kafka_partition": message.partition(),
        "kafka_offset": message.offset(),
    }


def main(brokers, topic, total, uri):
    total = int(total)
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": f"python-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.subscribe([topic])
    done = 0
    first = None
    while done < total:
        messages = [m for m in consumer.consume(num_messages=10_000, timeout=1.0) if m.error() is None]
        if not messages:
            continue
        rows = [r for r in map(row, messages) if r is not None]
        if rows:
            write_deltalake(uri, pa.Table.from_pylist(rows, schema=SCHEMA), mode="append", partition_by=["date"])
        consumer.commit(asynchronous=True)
        done += len(messages)
        if first is None:
            first = (time.monotonic(), done)
    end = time.monotonic()
    consumer.close()
    # Everything in the first batch: no rate to measure (tiny test runs).
    rate = (total - first[1]) / (end - first[0]) if done > first[1] else None
    print(json.dumps({"records_per_second": rate}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
