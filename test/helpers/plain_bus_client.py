"""A service on the same Kafka that knows kafka-llm only from its published contract.

It reads nothing of the project's code: only the JSON Schemas under contracts/schema/
and what docs/asyncapi.yaml says (topic names, key = "<tenant>/<conversation id>", murmur2
partitioning, the events that answer a request). It builds a turn request, checks it
against chat-request.schema.json, produces it with kafka-python, follows chat.events
for that request id, checks every event against chat-event.schema.json, and prints
one JSON line describing what it saw. Exit code 0 only when a final event arrived.

    python plain_bus_client.py --brokers HOST:PORT --prefix PREFIX --schemas DIR --content TEXT
        [--sasl-username U]   (password from KAFKA_SASL_PASSWORD; SCRAM-SHA-512)
"""

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

import jsonschema
from kafka import KafkaConsumer, KafkaProducer, TopicPartition


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--prefix", default="")
    parser.add_argument("--schemas", required=True, help="the contracts/schema directory")
    parser.add_argument("--content", required=True)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--sasl-username", default=None, help="log in with SASL/SCRAM-SHA-512 (password: KAFKA_SASL_PASSWORD)")
    args = parser.parse_args()
    login = {}
    if args.sasl_username:
        login = {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": args.sasl_username,
            "sasl_plain_password": os.environ["KAFKA_SASL_PASSWORD"],
        }

    schemas = Path(args.schemas)
    request_schema = json.loads((schemas / "chat-request.schema.json").read_text())
    event_schema = json.loads((schemas / "chat-event.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(request_schema)
    jsonschema.Draft7Validator.check_schema(event_schema)

    conversation_id = f"plain-{uuid.uuid4()}"
    tenant = "plain-client"
    # The conversation key: a conversation is named by its tenant and its id together.
    key = f"{tenant}/{conversation_id}"
    request = {
        "v": 1,
        "type": "turn",
        "request_id": str(uuid.uuid4()),
        "conversation_id": conversation_id,
        "tenant": tenant,
        "content": args.content,
        "params": {"max_tokens": args.max_tokens},
        "created_at": int(time.time() * 1000),
    }
    jsonschema.validate(request, request_schema, cls=jsonschema.Draft7Validator)

    events_topic = f"{args.prefix}chat.events"
    consumer = KafkaConsumer(bootstrap_servers=args.brokers, enable_auto_commit=False, consumer_timeout_ms=500, **login)
    partitions = [TopicPartition(events_topic, p) for p in sorted(consumer.partitions_for_topic(events_topic) or [])]
    if not partitions:
        print(json.dumps({"error": f"topic {events_topic} not found"}))
        return 2
    consumer.assign(partitions)
    # Only what comes after the request: the end offsets now, before it is sent.
    consumer.seek_to_end()
    for tp in partitions:
        consumer.position(tp)

    # kafka-python's default partitioner is the Java client's murmur2, as the contract asks.
    producer = KafkaProducer(bootstrap_servers=args.brokers, acks="all", **login)
    sent = producer.send(
        f"{args.prefix}chat.requests",
        key=key.encode("utf-8"),
        value=json.dumps(request).encode("utf-8"),
    ).get(timeout=30)
    producer.flush()

    seen = []
    final = None
    deadline = time.monotonic() + args.timeout
    while final is None and time.monotonic() < deadline:
        for record in consumer:
            event = json.loads(record.value.decode("utf-8"))
            if event.get("request_id") != request["request_id"]:
                continue
            jsonschema.validate(event, event_schema, cls=jsonschema.Draft7Validator)
            if record.key.decode("utf-8") != key:
                print(json.dumps({"error": f"event keyed {record.key!r}, not by the conversation key"}))
                return 3
            seen.append(event)
            if event["type"] in ("final", "error"):
                final = event
                break
    producer.close()
    consumer.close()
    print(
        json.dumps(
            {
                "request_id": request["request_id"],
                "conversation_id": conversation_id,
                "key": key,
                "request_partition": sent.partition,
                "events": [{"type": e["type"], "seq": e["seq"], "attempt": e["attempt"]} for e in seen],
                "final": final,
            }
        )
    )
    return 0 if final is not None and final["type"] == "final" else 1


if __name__ == "__main__":
    sys.exit(main())
