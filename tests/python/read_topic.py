"""Reads a whole Weir topic with Confluent's Python client, decoding each
record through the gateway's Schema Registry API; prints one JSON line per
record: partition, offset, key, the subject's latest version and the value.

    read_topic.py <bootstrap> <registry URL> <basic auth user:password> <topic>
"""

import json
import sys

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

bootstrap, registry_url, auth, topic = sys.argv[1:5]
registry = SchemaRegistryClient({"url": registry_url, "basic.auth.user.info": auth})
latest = registry.get_latest_version(f"{topic}-value")
deserialize = AvroDeserializer(registry)

consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": "weir-python-reader",
    "enable.auto.commit": False,
    "enable.partition.eof": True,
})
partitions = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
# From the first offset of every partition, to each partition's end.
consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
waiting = set(partitions)
while waiting:
    message = consumer.poll(10)
    if message is None:
        sys.exit(f"no record nor partition end within 10 s; waiting for {sorted(waiting)}")
    if message.error():
        if message.error().code() == KafkaError._PARTITION_EOF:
            waiting.discard(message.partition())
            continue
        sys.exit(str(message.error()))
    value = deserialize(message.value(), SerializationContext(topic, MessageField.VALUE))
    print(json.dumps({
        "partition": message.partition(),
        "offset": message.offset(),
        "key": message.key().decode() if message.key() is not None else None,
        "latest_version": latest.version,
        "value": value,
    }, default=str))
consumer.close()
