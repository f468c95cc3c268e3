"""From ``persona.events`` to state: validate, dead-letter, dedupe, fold into the profile, and
send on what follows (see :func:`persona.pipeline.process`) to the item-keyed agents here and to
the trainer.

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
from persona.agents.metrics import EVENT_LAG_SECONDS
from persona import feedback, trending
from persona.covisit import apply_updates
from persona.events import Event, InvalidEvent, parse_event
from persona.pipeline import Effects, aggregate_only, process
from persona.profile import Profile
from persona.tables.state import catalog, item_stats, neighbours, profiles, strategy_stats

__all__ = ["ingest", "count_item_signals", "count_covisits", "count_feedback", "counters", "owner_partition"]

logger = logging.getLogger(__name__)

counters: Counter[str] = Counter()  # this worker's own figures, for /health and logs
positions: dict[tuple[str, int], int] = {}  # last offset processed per partition, for the lag


def owner_partition(user_id: str, partitions: int = settings.partitions) -> int:
    """The partition Kafka's default partitioner gives a record keyed by ``user_id``.

    >>> owner_partition("u1", 8), owner_partition("u1", 8) == owner_partition("u1", 8)
    (0, True)
    """
    return (murmur2(user_id.encode()) & 0x7FFFFFFF) % partitions


async def dead_letter(key: bytes | None, value: bytes | None, reason: str, source: str) -> None:
    """Send the original bytes to the DLQ; why, when and where from travel in the headers."""
    counters["dead_lettered"] += 1
    logger.info("dead-lettered %s: %s", source, reason)
    await topics.dlq.send(key=key, value=value, headers=[
        ("persona.reason", reason.encode()),
        ("persona.received_at", str(int(time.time() * 1000)).encode()),
        ("persona.source", source.encode()),
    ])


@app.agent(topics.interactions)
async def ingest(stream):
    async for event in stream.events():
        message = event.message
        positions[(message.topic, message.partition)] = message.offset
        EVENT_LAG_SECONDS.observe(max(time.time() - message.timestamp, 0.0))
        if message.topic == settings.control_topic:
            await control(message.value)
            continue
        try:
            e = parse_event(message.value or b"")
        except InvalidEvent as err:
            await dead_letter(message.key, message.value, str(err),
                              f"{message.topic}/{message.partition}/{message.offset}")
            continue
        owner = owner_partition(e.user_id)
        if message.partition != owner:
            counters["repartitioned"] += 1
            await topics.events.send(key=e.user_id.encode(), value=message.value, partition=owner)
            continue
        await apply(e, served=message.topic == settings.impressions_topic)


async def apply(e: Event, served: bool) -> None:
    stored = profiles.get(e.user_id)
    if e.consent is False:  # nothing personal is kept: a stored profile goes too
        if stored:
            await forget(e.user_id, "consent withdrawn")
        counters["without_consent"] += 1
        await send_effects(aggregate_only(e))
        return
    profile = Profile.from_dict(stored) if stored else Profile(e.user_id)
    fx = process(profile, e, catalog.data, served=served)
    if not fx.applied:
        counters["duplicates"] += 1
        return
    if stored or not served:  # a list served to an unknown (or deleted) shopper creates no profile
        profiles[e.user_id] = profile.to_dict()
    counters[e.event_name] += 1
    counters["applied"] += 1
    await send_effects(fx)
    if e.event_name == "login" and e.previous_user_id != e.user_id:
        await send_control(e.previous_user_id, {"op": "export", "to": e.user_id})


async def send_control(user_id: str, message: dict) -> None:
    await topics.control.send(key=user_id.encode(), value=orjson.dumps({"user_id": user_id, **message}),
                              partition=owner_partition(user_id))


async def forget(user_id: str, why: str) -> None:
    """Delete a user's state: the profile (a tombstone in its changelog) and their model factors."""
    if profiles.get(user_id) is not None:
        del profiles[user_id]
    await topics.training.send(key=b"forget", value=orjson.dumps({"model": "forget", "user": user_id}))
    await topics.deletions.send(key=user_id.encode(), value=orjson.dumps(
        {"user_id": user_id, "why": why, "at": time.time()}))
    counters["deleted"] += 1


async def control(raw: bytes) -> None:
    """Deletions and profile merges, on the partition of the user they concern."""
    try:
        message = orjson.loads(raw)
        op, user_id = message["op"], message["user_id"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as err:
        logger.warning("ignoring malformed control message %r: %s", raw[:200], err)
        return
    if op == "delete":
        await forget(user_id, message.get("why", "deletion request"))
    elif op == "export":  # at login: hand the anonymous profile to the account, then drop it
        stored = profiles.get(user_id)
        if stored:
            await send_control(message["to"], {"op": "merge", "profile": stored})
            await forget(user_id, f"merged into {message['to']}")
    elif op == "merge":
        stored = profiles.get(user_id)
        profile = Profile.from_dict(stored) if stored else Profile(user_id)
        profile.merge(Profile.from_dict({**message["profile"], "user_id": user_id}))
        profiles[user_id] = profile.to_dict()
        counters["merged"] += 1


async def send_effects(fx: Effects) -> None:
    for item_id, name, n, ts in fx.item_signals:
        await topics.item_signals.send(key=item_id.encode(), value=orjson.dumps([name, n, ts]))
    for item_id, other, weight in fx.covisit:
        await topics.covisit.send(key=item_id.encode(), value=orjson.dumps([other, weight]))
    for source, slot, kind, amount, ts in fx.feedback:
        await topics.feedback.send(key=f"{source}|{slot}".encode(), value=orjson.dumps([kind, amount, ts]))
    for example in fx.examples:
        await topics.training.send(key=example["model"].encode(), value=orjson.dumps(example))


@app.agent(topics.item_signals)
async def count_item_signals(stream):
    """Per item: counts per event name (best-sellers) and event-time windows (trending)."""
    async for key, value in stream.items():
        try:
            item_id, (name, n, ts) = key.decode(), orjson.loads(value)
            n, ts = int(n), float(ts)
        except (AttributeError, ValueError, TypeError) as err:
            logger.warning("ignoring malformed item signal %r: %s", value, err)
            continue
        stats = item_stats.get(item_id) or {"counts": {}, "windows": {}}
        counts = dict(stats["counts"])
        counts[name] = counts.get(name, 0) + n
        windows = trending.add(stats["windows"], ts, trending.WEIGHTS.get(name, 0.0) * n)
        item_stats[item_id] = {"counts": counts, "windows": windows}


@app.agent(topics.feedback)
async def count_feedback(stream):
    """Per generator and slot: impressions and what followed them (CTR, conversion, revenue)."""
    async for key, value in stream.items():
        try:
            key, (kind, amount, ts) = key.decode(), orjson.loads(value)
            amount, ts = float(amount), float(ts)
        except (AttributeError, ValueError, TypeError) as err:
            logger.warning("ignoring malformed feedback %r: %s", value, err)
            continue
        strategy_stats[key] = feedback.add(strategy_stats.get(key) or {}, kind, amount, ts)


@app.agent(topics.covisit)
async def count_covisits(stream):
    """Per item: its co-visited items, repartitioned here by item from the per-user stream."""
    async for key, value in stream.items():
        try:
            item_id, (other, weight) = key.decode(), orjson.loads(value)
            weight = float(weight)
        except (AttributeError, ValueError, TypeError) as err:
            logger.warning("ignoring malformed co-visit %r: %s", value, err)
            continue
        neighbours[item_id] = apply_updates(neighbours.get(item_id) or {}, [(other, weight)])
