"""Three faults of Faust 0.15.3 that rebalances with several workers run into, and their fixes.

1. Recovery crashes when a rebalance arrives while it runs. ``Recovery.on_rebalance`` re-adds the
   standby changelog partitions with no offset (None) and signals a new recovery; if that happens
   while the previous recovery is still replaying actives, the previous one goes on to seek its
   standbys to None, aiokafka raises ``ValueError('Offset must be a positive integer')`` and the
   worker stops. The fix: a seek of a partition without an offset gives way to the new recovery
   (``RebalanceAgain``, which Faust handles) when one is signalled, and starts from the beginning
   of the changelog otherwise.

2. The RocksDB store runs a full ``gc.collect()`` for every table whose partitions are revoked,
   on the event loop: with a large heap (catalog index, models) each pass stalls the worker's
   HTTP answers for a second or more, several times per rebalance. The databases it wants closed
   are freed as soon as the store drops them (nothing else refers to them), so only the youngest
   generation is collected there.

3. A record of a newly assigned partition that has no committed offset can be lost. While the
   recovery reads changelogs, the fetcher also receives records of the stream partitions it keeps
   paused, and drops them: it relies on the seek to committed offsets that follows to read them
   again. But aiokafka's ``seek_to_committed`` leaves a partition without a committed offset (or
   with offset 0) where the fetcher got to, past the dropped records. Typically: a worker killed
   before it committed a partition's first records; the worker taking the partition over never
   processes them. The fix: after that seek, such stream partitions go back to their beginning
   (with ``consumer_auto_offset_reset="earliest"``, Faust's default, where they started anyway).
"""

from __future__ import annotations

import gc
from typing import Any, Collection, Mapping

import faust.stores.rocksdb
from faust.tables.recovery import RebalanceAgain, Recovery
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

__all__ = ["install"]

_original_seek_offsets = Recovery._seek_offsets


async def _seek_offsets(self, consumer, tps, offsets, title):
    unknown = [tp for tp in tps if offsets.get(tp) is None]
    if unknown:
        if self.signal_recovery_start.is_set():
            raise RebalanceAgain()
        for tp in unknown:
            offsets[tp] = -1  # from the beginning
    return await _original_seek_offsets(self, consumer, tps, offsets, title)


_original_seek_to_committed = AIOKafkaConsumerThread.seek_to_committed


def uncommitted_stream_partitions(committed: Mapping[Any, int | None], changelogs: Collection[str]) -> list:
    """The partitions a seek to committed offsets leaves where they are: no offset, or offset 0.
    Changelog partitions are not among them (the recovery positions those itself).

    >>> from aiokafka import TopicPartition as TP
    >>> uncommitted_stream_partitions({TP("events", 0): 5, TP("events", 1): None, TP("events", 2): 0,
    ...                                TP("app-profiles-changelog", 0): None}, {"app-profiles-changelog"})
    [TopicPartition(topic='events', partition=1), TopicPartition(topic='events', partition=2)]
    """
    return [tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs]


async def _seek_to_committed(self):
    committed = await _original_seek_to_committed(self)
    if self.app.conf.consumer_auto_offset_reset == "earliest":
        unread = uncommitted_stream_partitions(committed, self.app.tables.changelog_topics)
        if unread:
            await self.call_thread(self._ensure_consumer().seek_to_beginning, *unread)
    return committed


class _YoungGenerationGC:
    @staticmethod
    def collect(generation: int = 0) -> int:
        return gc.collect(0)

    def __getattr__(self, name):
        return getattr(gc, name)


def install() -> None:
    Recovery._seek_offsets = _seek_offsets
    AIOKafkaConsumerThread.seek_to_committed = _seek_to_committed
    faust.stores.rocksdb.gc = _YoungGenerationGC()
