"""From ``persona.events`` to state: validate, dead-letter, dedupe, fold into the profile, and
send on what follows (see :func:`persona.pipeline.process`) to the aggregates agent here and to
the trainer.

Events must be keyed by user id with Kafka's default (murmur2) partitioner, so that a user's
events, profile and HTTP route all agree on one partition. An event found on another partition
(a producer with another partitioner, or no key) is moved to the right one, not dropped.

Every event is applied to the shopper's profile at once (reads see it through the write-behind
cache, :mod:`persona.tables.cache`). What it sends on is summed in an :class:`Outbox` until the
next flush: one record per partition of the aggregates topic, not one per item and event. The
events are acknowledged after the flush, so a crash replays them rather than losing their effects.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from typing import Any, Callable

import orjson

from persona import feedback, trending
from persona.agents import topics
from persona.agents.topics import owner_partition
from persona.agents.app import app, settings
from persona.agents.metrics import EVENT_LAG_SECONDS
from persona.covisit import apply_updates
from persona.events import Event, InvalidEvent, parse_event
from persona.pipeline import Effects, aggregate_only, process
from persona.profile import Profile
from persona.tables.cache import AckAfter, WriteBehind
from persona.tables.state import CACHED_TABLES, catalog, item_stats, neighbours, profiles, strategy_stats

__all__ = ["ingest", "fold_aggregates", "counters", "owner_partition", "Outbox", "flush_tables"]

logger = logging.getLogger(__name__)

counters: Counter[str] = Counter()  # this worker's own figures, for /health and logs
positions: dict[tuple[str, int], int] = {}  # last offset processed per partition, for the lag


AGGREGATES = ("item_signals", "covisit", "feedback")  # what the aggregates topic carries, per key


class Outbox:
    """What the events since the last flush send on, summed per key and grouped per partition:
    one record per partition of the aggregates topic, ``{kind: {key: entries}}``, and the training
    examples in event order.

    >>> box = Outbox(partitions=2)
    >>> box.add(Effects(True, item_signals=[("a", "view_item", 1, 10.0), ("a", "purchase", 1, 11.0)],
    ...                 covisit=[("a", "b", 0.5), ("a", "b", 0.25)]))
    >>> box.records(aggregates="A", training="T")
    [('A', 0, {'item_signals': {'a': [['view_item', 1, 10.0], ['purchase', 1, 11.0]]}, 'covisit': {'a': {'b': 0.75}}})]
    """

    def __init__(self, partitions: int = settings.partitions):
        self.partitions = partitions
        self.item_signals: dict[str, list] = {}
        self.covisit: dict[str, dict[str, float]] = {}
        self.feedback: dict[str, list] = {}
        self.examples: list[dict[str, Any]] = []  # in event order: a "forget" must follow the user's examples
        self.later: list[tuple[Any, bytes, bytes, int | None]] = []  # (topic, key, value, partition)

    def add(self, fx: Effects) -> None:
        for item_id, name, n, ts in fx.item_signals:
            self.item_signals.setdefault(item_id, []).append([name, n, ts])
        for item_id, other, weight in fx.covisit:
            weights = self.covisit.setdefault(item_id, {})
            weights[other] = weights.get(other, 0.0) + weight
        for source, slot, kind, amount, ts in fx.feedback:
            self.feedback.setdefault(f"{source}|{slot}", []).append([kind, amount, ts])
        self.examples += fx.examples

    def records(self, aggregates: Any, training: Any) -> list[tuple[Any, int | None, Any]]:
        by_partition: dict[int, dict[str, dict]] = defaultdict(dict)
        for kind in AGGREGATES:
            for key, value in getattr(self, kind).items():
                by_partition[owner_partition(key, self.partitions)].setdefault(kind, {})[key] = value
        out: list[tuple[Any, int | None, Any]] = [(aggregates, p, by_partition[p]) for p in sorted(by_partition)]
        if self.examples:
            out.append((training, None, self.examples))
        return out

    async def send(self) -> None:
        for topic, partition, value in self.records(topics.aggregates, topics.training):
            await topic.send(key=b"batch", value=orjson.dumps(value), partition=partition)
        for topic, key, value, partition in self.later:
            await topic.send(key=key, value=value, partition=partition)


outbox = Outbox()


async def send_outbox() -> None:
    """Send what the events of this flush produced (called by the profiles cache before acking them)."""
    global outbox
    box, outbox = outbox, Outbox()
    await box.send()


profiles.before_ack.append(send_outbox)


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
    stream = stream.noack()  # acknowledged by the profiles cache once flushed
    async for event in stream.events():
        await handle(event)
        profiles.hold(stream, event)
        if profiles.full:
            await profiles.flush()


async def handle(event) -> None:
    message = event.message
    positions[(message.topic, message.partition)] = message.offset
    EVENT_LAG_SECONDS.observe(max(time.time() - message.timestamp, 0.0))
    if message.topic == settings.control_topic:
        return control(message.value, event)
    if message.topic != settings.impressions_topic:
        return await handle_one(message.value or b"", event, served=False)
    lines = (message.value or b"").split(b"\n")  # the views batch the lists they serve, one a line
    for n, raw in enumerate(lines):
        await handle_one(raw, event, served=True, line=n + 1 if len(lines) > 1 else None)


async def handle_one(raw: bytes, event, served: bool, line: int | None = None) -> None:
    message = event.message
    try:
        e = parse_event(raw)
    except InvalidEvent as err:
        where = f"{message.topic}/{message.partition}/{message.offset}" + (f" line {line}" if line else "")
        return await dead_letter(message.key, raw, str(err), where)
    owner = owner_partition(e.user_id)
    if message.partition != owner:
        counters["repartitioned"] += 1
        topic = topics.impressions if served else topics.events
        return await topic.send(key=e.user_id.encode(), value=raw, partition=owner)
    apply(e, event, served=served)


def apply(e: Event, event, served: bool) -> None:
    profile = profiles.load(e.user_id)
    if e.consent is False:  # nothing personal is kept: a stored profile goes too
        if profile is not None:
            forget(e.user_id, "consent withdrawn", event)
        counters["without_consent"] += 1
        outbox.add(aggregate_only(e))
        return
    if profile is None:
        if served:  # a list served to an unknown (or deleted) shopper creates no profile
            counters["served_to_unknown"] += 1
            outbox.add(process(Profile(e.user_id), e, catalog.data, served=True))
            return
        profile = Profile(e.user_id)
    fx = process(profile, e, catalog.data, served=served)
    if not fx.applied:
        counters["duplicates"] += 1
        return
    profiles.put(e.user_id, profile, event)
    counters[e.event_name] += 1
    counters["applied"] += 1
    outbox.add(fx)
    if e.event_name == "login" and e.previous_user_id != e.user_id:
        queue_control(e.previous_user_id, {"op": "export", "to": e.user_id})


def _control_record(user_id: str, message: dict) -> tuple[Any, bytes, bytes, int]:
    return topics.control, user_id.encode(), orjson.dumps({"user_id": user_id, **message}), owner_partition(user_id)


def queue_control(user_id: str, message: dict) -> None:
    """Send a control message at the next flush (from the agent: after this event's changes)."""
    outbox.later.append(_control_record(user_id, message))


async def send_control(user_id: str, message: dict) -> None:
    """Send a control message now (from outside the stream, e.g. an admin request)."""
    topic, key, value, partition = _control_record(user_id, message)
    await topic.send(key=key, value=value, partition=partition)


def forget(user_id: str, why: str, event) -> None:
    """Delete a user's state: the profile (a tombstone in its changelog) and their model factors."""
    profiles.delete(user_id, event)
    outbox.examples.append({"model": "forget", "user": user_id})
    outbox.later.append((topics.deletions, user_id.encode(),
                         orjson.dumps({"user_id": user_id, "why": why, "at": time.time()}), None))
    counters["deleted"] += 1


def control(raw: bytes, event) -> None:
    """Deletions and profile merges, on the partition of the user they concern."""
    try:
        message = orjson.loads(raw)
        op, user_id = message["op"], message["user_id"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as err:
        logger.warning("ignoring malformed control message %r: %s", raw[:200], err)
        return
    if op == "delete":
        forget(user_id, message.get("why", "deletion request"), event)
    elif op == "export":  # at login: hand the anonymous profile to the account, then drop it
        profile = profiles.load(user_id)
        if profile is not None:
            queue_control(message["to"], {"op": "merge", "profile": profile.to_dict()})
            forget(user_id, f"merged into {message['to']}", event)
    elif op == "merge":
        profile = profiles.load(user_id) or Profile(user_id)
        profile.merge(Profile.from_dict({**message["profile"], "user_id": user_id}))
        profiles.put(user_id, profile, event)
        counters["merged"] += 1


# The aggregate tables: each record is {kind: {key: entries}} for the keys of its partition (see Outbox).

def add_item_signals(stats: dict | None, entries: list) -> dict:
    """Per item: counts per event name (best-sellers) and event-time windows (trending).

    >>> add_item_signals(None, [["view_item", 2, 600.0]])["counts"]
    {'view_item': 2}
    """
    stats = stats or {"counts": {}, "windows": {}}
    counts, windows = dict(stats["counts"]), stats["windows"]
    for name, n, ts in entries:
        counts[name] = counts.get(name, 0) + int(n)
        windows = trending.add(windows, float(ts), trending.WEIGHTS.get(name, 0.0) * int(n))
    return {"counts": counts, "windows": windows}


def add_feedback(stats: dict | None, entries: list) -> dict:
    """Per generator and slot: impressions and what followed them (CTR, conversion, revenue)."""
    stats = stats or {}
    for kind, amount, ts in entries:
        stats = feedback.add(stats, str(kind), float(amount), float(ts))
    return stats


def add_covisits(stats: dict | None, entries: dict) -> dict:
    """Per item: its co-visited items, repartitioned here by item from the per-user stream."""
    return apply_updates(stats or {}, [(other, float(w)) for other, w in entries.items()])


def fold(batch: Any, event: Any) -> list[WriteBehind]:
    """Fold one aggregates record into the caches; return those it changed. Bad parts are logged and skipped."""
    if not isinstance(batch, dict):
        raise TypeError(f"expected an object of kinds, got {type(batch).__name__}")
    touched = []
    for kind, per_key in batch.items():
        cache, update = FOLDS.get(kind, (None, None))
        if cache is None or not isinstance(per_key, dict):
            logger.warning("ignoring %r entries on %s: unknown kind or not an object of keys", kind,
                           event.message.topic)
            continue
        for key, entries in per_key.items():
            try:
                cache.put(key, update(cache.load(key), entries), event)
            except (AttributeError, ValueError, TypeError) as err:
                logger.warning("ignoring malformed %s entries for %r: %s", kind, key, err)
        touched.append(cache)
    return touched


@app.agent(topics.aggregates)
async def fold_aggregates(stream):
    """The item-keyed (and source|slot-keyed) tables, from the sums the ingest agent sends per flush.

    A record is acknowledged once every cache it changed has flushed it.
    """
    stream = stream.noack()
    async for event in stream.events():
        try:
            touched = fold(orjson.loads(event.value), event)
        except (orjson.JSONDecodeError, TypeError) as err:
            logger.warning("ignoring malformed record %r on %s: %s", (event.value or b"")[:200],
                           event.message.topic, err)
            touched = []
        if not touched:
            await stream.ack(event)
            continue
        acker = AckAfter(stream, len(touched))
        for cache in touched:
            cache.hold(acker, event)
        for cache in touched:
            if cache.full:
                await cache.flush()


FOLDS: dict[str, tuple[WriteBehind, Callable[[Any, Any], Any]]] = {
    "item_signals": (item_stats, add_item_signals), "covisit": (neighbours, add_covisits),
    "feedback": (strategy_stats, add_feedback)}


@app.on_partitions_revoked.connect
async def drop_flushed_objects(sender, revoked, **kwargs) -> None:
    """After a rebalance the tables are the truth: their keys may move to, and change on, other workers."""
    for cache in CACHED_TABLES:
        cache.drop_flushed()


@app.task
async def flush_tables() -> None:
    """Flush each cache every its own ``flush_every`` seconds, until the process ends.

    Not an ``app.timer``: timers end as soon as the worker starts stopping, while Faust's stop
    still waits for the held events to be acknowledged (``stream_wait_empty``); tasks run until then.
    """
    failures, tick = 0, min(cache.flush_every for cache in CACHED_TABLES)
    while True:
        await asyncio.sleep(tick)
        try:
            now = time.monotonic()
            for cache in CACHED_TABLES:
                if cache.due(now):
                    await cache.flush()
            failures = 0
        except Exception as exc:  # what was not written stays pending: try again, for a while
            failures += 1
            logger.warning("flushing the tables failed (%d in a row): %r", failures, exc)
            if failures * tick >= 30:  # not transient: restart and replay
                await app.crash(exc)
                return
