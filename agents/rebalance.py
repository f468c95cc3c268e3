"""Four faults of Faust 0.15.3 that rebalances with several workers run into, and their fixes.

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

4. Records fetched before the seek to committed offsets can be delivered after it, and then some
   are never processed. The recovery resumes the stream partitions, then seeks them. In between,
   the fetcher may already hand over a batch of them (the set of active partitions it filters
   with is the one ``resume_partitions`` just grew), and one of its records may be waiting for
   room in a full stream queue. The queues are cleared when the flow resumes; the record that
   waited is delivered after the seek and moves the read offset past the records the seek asked
   for again, so Faust drops those as already read. Nothing acknowledges the offsets that were
   cleared, and Faust commits a partition only up to the first offset not acknowledged: it never
   commits that partition again. The larger the fetches, the more likely. The fix: the stream
   partitions are paused (in the set the batch is filtered with, so it stops at once), the seek
   waits until the record being delivered, if it is theirs, is through, and fetching starts
   again at the committed offsets.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any, Collection, Mapping

import faust.stores.rocksdb
from faust.tables.recovery import RebalanceAgain, Recovery
from faust.transport.consumer import Consumer
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


_original_getmany = Consumer.getmany
_original_perform_seek = Consumer.perform_seek
DELIVERY_WAIT_SECONDS = 10.0


async def _getmany(self, timeout: float):
    # The fetcher asks for the next record only when it is through with the one before.
    try:
        async for tp, message in _original_getmany(self, timeout):
            self.persona_delivering = tp
            yield tp, message
            self.persona_delivering = None
    finally:
        self.persona_delivering = None


async def _perform_seek(self):
    delivered = self._get_active_partitions(), self._buffered_partitions
    paused = [{tp for tp in tps if not self._is_changelog_tp(tp)} for tps in delivered]
    for tps, stopped in zip(delivered, paused):
        tps.difference_update(stopped)
    seeking, deadline = paused[0] | paused[1], time.monotonic() + DELIVERY_WAIT_SECONDS
    try:
        while getattr(self, "persona_delivering", None) in seeking and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await _original_perform_seek(self)
    finally:
        for tps, resumed in zip(delivered, paused):
            tps.update(resumed)


class _YoungGenerationGC:
    @staticmethod
    def collect(generation: int = 0) -> int:
        return gc.collect(0)

    def __getattr__(self, name):
        return getattr(gc, name)


def install() -> None:
    Recovery._seek_offsets = _seek_offsets
    AIOKafkaConsumerThread.seek_to_committed = _seek_to_committed
    Consumer.getmany = _getmany
    Consumer.perform_seek = _perform_seek
    faust.stores.rocksdb.gc = _YoungGenerationGC()
