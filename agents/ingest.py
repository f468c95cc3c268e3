"""From ``persona.events`` to per-user state: validate, dead-letter, dedupe, fold into the profile.

Events must be keyed by user id with Kafka's default (murmur2) partitioner, so that a user's
events, profile and HTTP route all agree on one partition. An event found on another partition
(a producer with another partitioner, or no key) is moved to the right one, not dropped.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

import orjson
from aiokafka.partitioner import murmur2

from persona.agents import topics
from persona.agents.app import app, settings
from persona.events import InvalidEvent, parse_event
from persona.profile import Profile
from persona.tables.state import item_stats, profiles

__all__ = ["ingest", "count_item_signals", "counters", "owner_partition"]

logger = logging.getLogger(__name__)

counters: Counter[str] = Counter()  # this worker's own figures, for /health and logs
ITEM_SIGNALS = {"view_item", "select_item", "add_to_cart", "purchase"}


def owner_partition(user_id: str, partitions: int = settings.partitions) -> int:
    """The partition Kafka's default partitioner gives a record keyed by ``user_id``.

    >>> owner_partition("u1", 8), owner_partition("u1", 8) == owner_partition("u1", 8)
    (0, True)
    """
    return (murmur2(user_id.encode()) & 0x7FFFFFFF) % partitions


async def dead_letter(message, reason: str) -> None:
    """Send the original bytes to the DLQ; why and where from travel in the headers."""
    counters["dead_lettered"] += 1
    logger.info("dead-lettered %s[%s]@%s: %s", message.topic, message.partition, message.offset, reason)
    await topics.dlq.send(
        key=message.key,
        value=message.value,
        headers=[
            ("persona.reason", reason.encode()),
            ("persona.received_at", str(int(time.time() * 1000)).encode()),
            ("persona.source", f"{message.topic}/{message.partition}/{message.offset}".encode()),
        ],
    )


@app.agent(topics.events)
async def ingest(stream):
    async for event in stream.events():
        message = event.message
        try:
            e = parse_event(message.value or b"")
        except InvalidEvent as err:
            await dead_letter(message, str(err))
            continue
        owner = owner_partition(e.user_id)
        if message.partition != owner:
            counters["repartitioned"] += 1
            await topics.events.send(key=e.user_id.encode(), value=message.value, partition=owner)
            continue
        stored = profiles.get(e.user_id)
        profile = Profile.from_dict(stored) if stored else Profile(e.user_id)
        if not profile.apply(e):
            counters["duplicates"] += 1
            continue
        profiles[e.user_id] = profile.to_dict()
        counters[e.event_name] += 1
        counters["applied"] += 1
        if e.event_name in ITEM_SIGNALS:
            for item in e.items:
                signal = {"event": e.event_name, "n": item.quantity or 1}
                await topics.item_signals.send(key=item.item_id.encode(), value=orjson.dumps(signal))


@app.agent(topics.item_signals)
async def count_item_signals(stream):
    async for key, value in stream.items():
        try:
            item_id, signal = key.decode(), orjson.loads(value)
            name, n = signal["event"], int(signal["n"])
        except (AttributeError, ValueError, KeyError, TypeError) as err:
            logger.warning("ignoring malformed item signal %r: %s", value, err)
            continue
        stats = dict(item_stats.get(item_id) or {})
        stats[name] = stats.get(name, 0) + n
        item_stats[item_id] = stats
