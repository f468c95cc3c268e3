"""A full copy of a compacted topic on every worker, kept current by a plain consumer.

This is what Faust's GlobalTable promises; GlobalTable loses records when several workers run
(faust-streaming #283), so every worker reads all partitions itself, without a consumer group,
from the beginning. ``ready`` is set once the copy has caught up with the end offsets seen at
start; a record with a null value (tombstone) deletes its key. A record whose value does not decode
is rejected: the key keeps its previous value and ``rejected[key]`` says why (this is how an
invalid rule set leaves the previous one active).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

__all__ = ["Replica"]

logger = logging.getLogger(__name__)

Decoder = Callable[[bytes], Any]


class Replica:
    def __init__(self, topic: str, decode_key: Decoder, decode_value: Decoder,
                 on_change: Callable[[], None] | None = None):
        self.topic = topic
        self.decode_key = decode_key
        self.decode_value = decode_value
        self.on_change = on_change
        self.data: dict[Any, Any] = {}
        self.rejected: dict[Any, str] = {}
        self.ready = asyncio.Event()
        self.version = 0  # bumped on every applied batch: a cheap "has it changed" for caches

    def __len__(self) -> int:
        return len(self.data)

    def get(self, key: Any, default: Any = None) -> Any:
        return self.data.get(key, default)

    @staticmethod
    async def assigned(consumer: AIOKafkaConsumer) -> set[TopicPartition]:
        """Wait for the partitions of a group-less subscription (the topic may not exist yet)."""
        while not consumer.assignment():
            await asyncio.sleep(0.05)
        return consumer.assignment()

    def _apply(self, records) -> None:
        for rec in records:
            try:
                key = self.decode_key(rec.key)
            except Exception as err:  # a bad record must not stop the copy
                logger.warning("%s: skipping record with bad key at offset %s: %s", self.topic, rec.offset, err)
                continue
            if rec.value is None:
                self.data.pop(key, None)
                continue
            try:
                self.data[key] = self.decode_value(rec.value)
                self.rejected.pop(key, None)
            except Exception as err:
                self.rejected[key] = f"offset {rec.offset}: {err}"
                logger.warning("%s: rejected %r at offset %s: %s", self.topic, key, rec.offset, err)
        self.version += 1
        if self.on_change:
            self.on_change()

    async def run(self, client_options: dict) -> None:
        # Without a group, aiokafka assigns every partition of the subscribed topic to us.
        consumer = AIOKafkaConsumer(self.topic, **client_options, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            tps = await self.assigned(consumer)
            end = await consumer.end_offsets(list(tps))
            while True:
                batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                for records in batch.values():
                    self._apply(records)
                if not self.ready.is_set() and all([await consumer.position(tp) >= end[tp] for tp in tps]):
                    logger.info("%s: caught up with %d keys", self.topic, len(self.data))
                    self.ready.set()
        finally:
            await consumer.stop()
