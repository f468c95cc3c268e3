"""Tables restored in bulk when a worker gets partitions whose local copy is far behind.

Faust restores a table by replaying its changelog one record at a time: a Faust event per record,
a JSON decode of key and value that its RocksDB store then ignores (it keeps the raw bytes), and an
asyncio task per record, about 450 µs of CPU each, so a million profiles take 7-9 CPU minutes.
:class:`BulkRestoringTables` copies the same raw bytes first, with one plain consumer and RocksDB
write batches (~15 µs a record), for every newly assigned changelog partition that lags by at least
``PERSONA_BULK_RESTORE_MIN_LAG`` records (below that Faust's own replay costs less than starting a
consumer). Each batch also writes the last offset it holds as the store's persisted
offset, in the same atomic write, so Faust's recovery, which starts right after, seeks past it and
replays only what was written since. A partition that cannot be copied (its store is locked, the
broker stalls) is left to Faust's own recovery.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.stores.rocksdb import Store as RocksDBStore
from faust.tables import TableManager
from faust.types import TP
from rocksdict import WriteBatch

from persona.agents.app import settings

__all__ = ["BulkRestoringTables", "copy_changelog", "OFFSET_KEY"]

logger = logging.getLogger(__name__)

OFFSET_KEY = RocksDBStore.offset_key  # where Faust's store keeps the last changelog offset it holds
STALL_SECONDS = 30.0  # no record for this long: leave the rest to Faust's recovery


async def copy_changelog(consumer: AIOKafkaConsumer, targets: Mapping[TopicPartition, tuple[Any, int]],
                         end: Mapping[TopicPartition, int], offset_key: bytes = OFFSET_KEY) -> int:
    """Copy changelog records into RocksDB databases, raw, one write batch per fetched partition.

    ``targets`` maps each partition to ``(database, first offset)``; records up to ``end`` (the
    partition's end offset when the copy began) are copied. Each batch also stores the offset of its
    last record under ``offset_key``, as Faust's store does. Returns the records copied.
    """
    tps = [tp for tp, (_, first) in targets.items() if first < end[tp]]
    if not tps:
        return 0
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, targets[tp][1])
    copied, last_progress, remaining = 0, time.monotonic(), set(tps)
    while remaining:
        fetched = await consumer.getmany(*remaining, timeout_ms=1000, max_records=20_000)
        for tp, records in fetched.items():
            batch, last = WriteBatch(raw_mode=True), None
            for r in records:
                if r.offset >= end[tp]:
                    break
                batch.put(r.key, r.value) if r.value is not None else batch.delete(r.key)
                last = r.offset
                copied += 1
            if last is None:
                continue
            batch.put(offset_key, str(last).encode())
            targets[tp][0].write(batch)
            last_progress = time.monotonic()
        for tp in list(remaining):
            if await consumer.position(tp) >= end[tp]:
                remaining.discard(tp)
        if remaining and time.monotonic() - last_progress > STALL_SECONDS:
            raise TimeoutError(f"no changelog records for {STALL_SECONDS:.0f} s from {sorted(remaining)}")
    return copied


class BulkRestoringTables(TableManager):
    """Faust's table manager, copying far-behind changelog partitions in bulk before its recovery."""

    async def on_rebalance(self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP],
                           generation_id: int = 0) -> None:
        try:
            await self._restore_in_bulk(newly_assigned)
        except Exception as exc:  # Faust's recovery restores whatever is left
            logger.warning("bulk restore stopped, Faust's recovery continues it: %r", exc)
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    def _stores(self, tps: Iterable[TP]) -> dict[TopicPartition, RocksDBStore]:
        by_topic = {table.changelog_topic.get_topic_name(): table.data for table in self.values()
                    if isinstance(table.data, RocksDBStore) and table.data.use_rocksdict}
        return {TopicPartition(tp.topic, tp.partition): by_topic[tp.topic] for tp in tps if tp.topic in by_topic}

    async def _restore_in_bulk(self, newly_assigned: set[TP]) -> None:
        stores = self._stores(newly_assigned)
        if not stores:
            return
        consumer = AIOKafkaConsumer(**settings.client_options(), enable_auto_commit=False,
                                    max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
        await consumer.start()
        try:
            end = await consumer.end_offsets(list(stores))
            begin = await consumer.beginning_offsets(list(stores))
            targets = {}
            for tp, store in stores.items():
                persisted = store.persisted_offset(tp)
                first = max(begin[tp], -1 if persisted is None else persisted + 1)
                if end[tp] - first >= settings.bulk_restore_min_lag:
                    try:
                        targets[tp] = (store._db_for_partition(tp.partition), first)
                    except Exception as exc:  # e.g. locked by another worker's process: Faust's recovery retries
                        logger.info("no bulk restore of %s: %r", tp, exc)
            if not targets:
                return
            started, cpu = time.monotonic(), time.process_time()
            copied = await copy_changelog(consumer, targets, end)
            seconds = time.monotonic() - started
            logger.info("bulk restore: %d changelog records of %d partitions in %.1f s (%.1f CPU s, %.0f records/s)",
                        copied, len(targets), seconds, time.process_time() - cpu, copied / max(seconds, 1e-9))
        finally:
            await consumer.stop()
