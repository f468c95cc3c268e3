"""Operator tools that talk to Kafka directly: publish the catalog, replay traffic, tail a topic."""

from __future__ import annotations

import asyncio
import base64
import sys
import time
from typing import Any, AsyncIterator, Iterable

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from tqdm import tqdm

from persona.catalog import Product
from persona.settings import Settings
from persona.tables.replica import Replica

__all__ = ["publish", "tail", "decode_record"]


async def _topics(s: Settings) -> set[str]:
    consumer = AIOKafkaConsumer(**s.client_options())
    await consumer.start()
    try:
        return await consumer.topics()
    finally:
        await consumer.stop()


async def publish(s: Settings, topic: str, records: Iterable[tuple[bytes, bytes]], total: int | None = None,
                  rate: float | None = None, label: str = "records") -> int:
    """Produce (key, value) pairs to ``topic``, at most ``rate`` per second, with a progress bar."""
    producer = AIOKafkaProducer(**s.client_options(), linger_ms=20, max_batch_size=256 * 1024,
                                acks="all", enable_idempotence=True)
    await producer.start()
    sent, started = 0, time.monotonic()
    try:
        with tqdm(total=total, unit=f" {label}", disable=None, file=sys.stderr) as bar:
            for key, value in records:
                await producer.send(topic, value=value, key=key)
                sent += 1
                bar.update()
                if rate and sent % max(1, int(rate // 20)) == 0:
                    ahead = sent / rate - (time.monotonic() - started)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
            await producer.flush()
    finally:
        await producer.stop()
    return sent


def catalog_records(products: list[Product]) -> Iterable[tuple[bytes, bytes]]:
    for p in products:
        yield p.item_id.encode(), p.model_dump_json().encode()


def _text(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode()}


def _json_or_text(raw: bytes) -> Any:
    """JSON, a list for one JSON document a line (the served lists), else text."""
    for decode in (orjson.loads, lambda v: [orjson.loads(line) for line in v.split(b"\n")]):
        try:
            return decode(raw)
        except orjson.JSONDecodeError:
            pass
    return _text(raw)


def decode_record(rec) -> dict[str, Any]:
    """A consumer record as one JSON-ready object (values that are JSON stay JSON).

    >>> rec = lambda value: type("Record", (), {"topic": "t", "partition": 0, "offset": 1, "timestamp": 0,
    ...                                         "key": b"k", "headers": (), "value": value})
    >>> decode_record(rec(b'{"user_id": "u1"}'))["value"], decode_record(rec(b'{"a": 1}\\n{"a": 2}'))["value"]
    ({'user_id': 'u1'}, [{'a': 1}, {'a': 2}])
    >>> decode_record(rec(b"plain"))["value"]
    'plain'
    """
    value = _json_or_text(rec.value) if rec.value is not None else None
    return {
        "topic": rec.topic,
        "partition": rec.partition,
        "offset": rec.offset,
        "timestamp": rec.timestamp,
        "key": _text(rec.key),
        "headers": {k: _text(v) for k, v in (rec.headers or ())},
        "value": value,
    }


def _for_user(record: dict[str, Any], user: str | None) -> dict[str, Any] | None:
    """The record if it concerns ``user`` (a batch: only that user's lines), else None."""
    value = record["value"]
    if user is None or record["key"] == user or (isinstance(value, dict) and value.get("user_id") == user):
        return record
    if isinstance(value, list):
        mine = [v for v in value if isinstance(v, dict) and v.get("user_id") == user]
        return {**record, "value": mine} if mine else None
    return None


async def tail(s: Settings, topic: str, from_beginning: bool, user: str | None, limit: int | None,
               idle_exit: float | None) -> AsyncIterator[dict[str, Any]]:
    """Records of ``topic`` (all partitions, no consumer group), optionally for one user.

    Stops after ``limit`` matching records, or after ``idle_exit`` seconds without a new record.
    """
    if topic not in await _topics(s):
        raise SystemExit(f"persona tail: no topic {topic!r} on {s.bootstrap}")
    consumer = AIOKafkaConsumer(topic, **s.client_options(), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest" if from_beginning else "latest")
    await consumer.start()
    try:
        await Replica.assigned(consumer)
        seen, last = 0, time.monotonic()
        while limit is None or seen < limit:
            batch = await consumer.getmany(timeout_ms=200)
            if not batch and idle_exit is not None and time.monotonic() - last > idle_exit:
                return
            for records in batch.values():
                last = time.monotonic()
                for rec in records:
                    out = _for_user(decode_record(rec), user)
                    if out is not None:
                        yield out
                        seen += 1
                        if limit is not None and seen >= limit:
                            return
    finally:
        await consumer.stop()
