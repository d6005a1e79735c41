"""A seed-style GTFS-Realtime producer, the baseline of `cargo bench --bench fetch`.

What the original pipeline's Python producer did, per poll: GET the feed with
requests, parse it with the official protobuf bindings, turn each entity into
JSON (proto field names) and produce it to Kafka with confluent-kafka
(librdkafka), then flush. Prints one line of JSON: the seconds each poll took.

usage: python_producer.py URL BROKERS TOPIC ITERATIONS
"""

import json
import sys
import time

import requests
from confluent_kafka import Producer
from google.protobuf.json_format import MessageToDict
from google.transit import gtfs_realtime_pb2

ENTITY_TYPES = ("vehicle", "trip_update", "alert")


def poll(url, producer, topic):
    body = requests.get(url, timeout=30).content
    feed = gtfs_realtime_pb2.FeedMessage()
    feed.ParseFromString(body)
    for entity in feed.entity:
        message = MessageToDict(entity, preserving_proto_field_name=True)
        message["entity_type"] = next((t for t in ENTITY_TYPES if entity.HasField(t)), "empty")
        message["feed_timestamp"] = feed.header.timestamp
        key = entity.vehicle.vehicle.id or entity.id
        while True:
            try:
                producer.produce(topic, key=key, value=json.dumps(message))
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)
    return len(feed.entity)


def main():
    url, brokers, topic, iterations = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    producer = Producer(
        {
            "bootstrap.servers": brokers,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
            "linger.ms": 5,
        }
    )
    seconds = []
    for _ in range(iterations):
        started = time.perf_counter()
        poll(url, producer, topic)
        seconds.append(time.perf_counter() - started)
    print(json.dumps(seconds))


if __name__ == "__main__":
    main()
