"""A write-behind cache in front of a Faust table: each changed key reaches the table once per flush.

A Faust table write costs a RocksDB put and a changelog record through the producer; writing on
every event would cost more than all of persona's own work per event. Like Kafka Streams' record
cache, :class:`WriteBehind` keeps the latest value of each changed key in memory, where reads see it
at once, and writes every changed key once per flush, in the partition of the last event that
changed it. The events behind the changes are held unacknowledged until their flush is done, so
the consumer never commits past a change that is not yet in the table: after a crash they are
delivered again and re-applied (persona's state is idempotent, see :mod:`persona.profile`).

For a table on RocksDB, :class:`StoreWriter` writes a flush in bulk: a RocksDB write batch per
partition and the changelog records straight to the producer, with the bytes Faust would write.

Each cache is flushed every ``flush_every`` seconds (by a task, which also serves Faust's wait for
acks before a rebalance or a stop), or sooner from the agent when ``max_keys`` keys wait. A longer
interval writes a key changed by several events once, at the cost of its changelog trailing longer.

Flushed objects stay in memory too (the ``keep`` most recent), so a shopper's next event does not
read and decode the profile again; they are dropped when partitions are revoked (another worker
may change them while this one does not own them).

>>> cache = WriteBehind(table={"a": 1})
>>> cache.get("a"), cache.get("b")
(1, None)
>>> cache.put("b", 2, event=None); cache.get("b"), cache.dirty
(2, 1)
"""

from __future__ import annotations

import asyncio
import functools
import time
import weakref
from contextlib import contextmanager
from typing import Any, Awaitable, Callable, MutableMapping

import orjson
from faust.stores.rocksdb import Store as RocksDBStore
from faust.streams import _current_event
from faust.types import TP
from rocksdict import WriteBatch

__all__ = ["WriteBehind", "MappingWriter", "StoreWriter", "AckAfter", "as_event", "DELETED"]

DELETED = object()  # a pending deletion: a tombstone in the changelog at the next flush


@contextmanager
def as_event(event):
    """Table writes inside land in ``event``'s partition (RocksDB store and changelog), as if
    written while the stream iterates that event: Faust takes the partition from the current event."""
    token = _current_event.set(weakref.ref(event) if event is not None else None)
    try:
        yield
    finally:
        _current_event.reset(token)


class WriteBehind:
    """Cached writes to ``table``; ``encode``/``decode`` convert between live objects and stored values
    (``encode`` returns a copy a reader may keep), ``dump`` a live object to the JSON bytes the
    table stores (default: ``encode``, then orjson)."""

    def __init__(self, table: MutableMapping, encode: Callable[[Any], Any] = lambda v: v,
                 decode: Callable[[Any], Any] = lambda v: v, max_keys: int = 20_000, keep: int = 100_000,
                 flush_every: float = 0.5, dump: Callable[[Any], bytes] | None = None):
        self.table, self.encode, self.decode, self.max_keys, self.keep = table, encode, decode, max_keys, keep
        self.dump = dump or (lambda v: orjson.dumps(encode(v)))
        self.flush_every, self.flushed_at = flush_every, time.monotonic()
        self._pending: dict[Any, tuple[Any, Any]] = {}  # key -> (live object or DELETED, event)
        self._flushed: dict[Any, Any] = {}  # key -> live object as flushed, oldest first
        self._held: list[tuple[Any, Any]] = []  # (stream, event) to acknowledge after the flush
        self.before_ack: list[Callable[[], Awaitable[None]]] = []  # e.g. sending aggregated effects
        self.flushes = 0
        self.writer: MappingWriter | StoreWriter | None = None

    def __getattr__(self, name: str) -> Any:  # anything else (name, changelog_topic, ...) is the table's
        return getattr(self.table, name)

    @property
    def dirty(self) -> int:
        return len(self._pending)

    def load(self, key: Any) -> Any:
        """The live object for ``key`` (to change and :meth:`put` back), or None."""
        if key in self._pending:
            value = self._pending[key][0]
            return None if value is DELETED else value
        if key in self._flushed:
            return self._flushed.pop(key)  # back in _pending once put
        stored = self.table.get(key)
        return None if stored is None else self.decode(stored)

    def get(self, key: Any, default: Any = None) -> Any:
        """The value as the table would hold it after the next flush."""
        if key in self._pending:
            value = self._pending[key][0]
            return default if value is DELETED else self.encode(value)
        stored = self.table.get(key)
        return default if stored is None else stored

    def peek(self, key: Any) -> Any:
        """The live object for ``key`` to read, never to change (None if absent): no copy is made
        when it is in memory, so serving a shopper whose profile is cached costs no decoding.

        >>> cache = WriteBehind(table={"a": [1]}, encode=list, decode=list)
        >>> cache.put("b", [2], event=None)
        >>> cache.peek("a"), cache.peek("b"), cache.peek("b") is cache._pending["b"][0], cache.peek("c")
        ([1], [2], True, None)
        """
        if key in self._pending:
            value = self._pending[key][0]
            return None if value is DELETED else value
        if key in self._flushed:
            return self._flushed[key]
        stored = self.table.get(key)  # not kept: it may be a standby's copy, which changes underneath
        return None if stored is None else self.decode(stored)

    def put(self, key: Any, value: Any, event: Any) -> None:
        self._flushed.pop(key, None)
        self._pending[key] = (value, event)

    def delete(self, key: Any, event: Any) -> None:
        self._flushed.pop(key, None)
        self._pending[key] = (DELETED, event)

    def hold(self, stream: Any, event: Any) -> None:
        """Acknowledge ``event`` only once everything it changed is flushed."""
        self._held.append((stream, event))

    def drop_flushed(self) -> None:
        """Forget the flushed objects kept in memory (partitions were revoked)."""
        self._flushed.clear()

    @property
    def full(self) -> bool:
        return len(self._pending) >= self.max_keys

    def due(self, now: float) -> bool:
        """Time for the periodic flush (``now`` from ``time.monotonic()``)."""
        return now - self.flushed_at >= self.flush_every

    async def flush(self) -> None:
        self.flushed_at = time.monotonic()
        pending, held, self._pending, self._held = self._pending, self._held, {}, []
        changes = [(key, None if value is DELETED else value, event) for key, (value, event) in pending.items()]
        try:
            # The writer stores every change before its first await: a read never misses a key.
            await self._writer().write(changes)
        except Exception:  # e.g. changelog metadata not known yet: all of it again at the next flush
            self._pending, self._held = {**pending, **self._pending}, held + self._held
            raise
        flushed = self._flushed
        for key, (value, _) in pending.items():
            if value is not DELETED and key not in self._pending:
                flushed[key] = value
        if len(flushed) > self.keep:
            for key in list(flushed)[: len(flushed) - self.keep]:
                del flushed[key]
        for send in self.before_ack:
            await send()
        for stream, event in held:
            await stream.ack(event)
        self.flushes += bool(pending or held)

    def _writer(self) -> "MappingWriter | StoreWriter":
        if self.writer is None:  # chosen at the first flush: Faust opens a table's store lazily
            store = getattr(self.table, "data", None)
            self.writer = (StoreWriter(self.table, self.dump) if isinstance(store, RocksDBStore)
                           else MappingWriter(self.table, self.encode))
        return self.writer


class MappingWriter:
    """Writes changes one key at a time, as ``table[key] = encode(value)`` inside the key's event."""

    def __init__(self, table: MutableMapping, encode: Callable[[Any], Any]):
        self.table, self.encode = table, encode

    async def write(self, changes: list[tuple[Any, Any, Any]]) -> None:
        for key, value, event in changes:
            with as_event(event):
                if value is not None:
                    self.table[key] = self.encode(value)
                elif self.table.get(key) is not None:
                    del self.table[key]


class StoreWriter:
    """Writes a flush to a Faust table's RocksDB store and changelog in bulk, with the bytes and
    partitions Faust's own ``table[key] = value`` would use, but without its per-record machinery
    (a Faust event, a buffered send, callbacks and sensors, a RocksDB put of the persisted offset).

    Each partition's changes go to its RocksDB database in one write batch, then each changelog
    record straight to the producer. The app's commit waits for their acknowledgement
    (:mod:`persona.agents.durability`); the store's persisted offset is set once per partition, when
    the broker acknowledges the partition's last record of the flush.
    """

    def __init__(self, table: Any, dump: Callable[[Any], bytes]):
        self.table, self.store, self.app, self.dump = table, table.data, table.app, dump
        self.topic = table.changelog_topic.get_topic_name()

    def _store(self, changes: list[tuple[Any, Any, Any]]) -> list[tuple[bytes, bytes | None, int]]:
        store, batches, records = self.store, {}, []
        for key, value, event in changes:
            partition = event.message.partition
            key_bytes = store._encode_key(key)  # Faust's own key bytes: lookups must find them
            value_bytes = None if value is None else self.dump(value)
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = WriteBatch(raw_mode=True)
            if value_bytes is None:
                batch.delete(key_bytes)
                store._key_index.pop(key_bytes, None)
            else:
                batch.put(key_bytes, value_bytes)
                store._key_index[key_bytes] = partition
            records.append((key_bytes, value_bytes, partition))
        for partition, batch in batches.items():
            store._db_for_partition(partition).write(batch)
        return records

    async def write(self, changes: list[tuple[Any, Any, Any]]) -> None:
        records = self._store(changes)
        producer, tracked = self.app.producer, getattr(self.app, "unacknowledged", None)
        last: dict[int, asyncio.Future] = {}
        for key_bytes, value_bytes, partition in records:
            last[partition] = future = await producer.send(self.topic, key_bytes, value_bytes, partition, None, None)
            if tracked is not None:
                tracked.track(future)
        for partition, future in last.items():
            future.add_done_callback(functools.partial(self._persisted, partition))

    def _persisted(self, partition: int, future: asyncio.Future) -> None:
        if not future.cancelled() and future.exception() is None:
            self.store.set_persisted_offset(TP(self.topic, partition), future.result().offset)


class AckAfter:
    """Stands in for a stream when several caches hold one event: the event is acknowledged when
    the last of them has flushed (:meth:`WriteBehind.hold` takes it in place of the stream).

    >>> class Stream:
    ...     acked = []
    ...     async def ack(self, event):
    ...         self.acked.append(event)
    >>> stream = Stream()
    >>> shared = AckAfter(stream, holders=2)
    >>> asyncio.run(shared.ack("e1")); stream.acked
    []
    >>> asyncio.run(shared.ack("e1")); stream.acked
    ['e1']
    """

    def __init__(self, stream: Any, holders: int):
        self.stream, self.left = stream, holders

    async def ack(self, event: Any) -> None:
        self.left -= 1
        if self.left == 0:
            await self.stream.ack(event)
