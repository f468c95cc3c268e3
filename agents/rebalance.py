"""Two faults of Faust 0.15.3 that rebalances with several workers run into, and their fixes.

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
"""

from __future__ import annotations

import gc

import faust.stores.rocksdb
from faust.tables.recovery import RebalanceAgain, Recovery

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


class _YoungGenerationGC:
    @staticmethod
    def collect(generation: int = 0) -> int:
        return gc.collect(0)

    def __getattr__(self, name):
        return getattr(gc, name)


def install() -> None:
    Recovery._seek_offsets = _seek_offsets
    faust.stores.rocksdb.gc = _YoungGenerationGC()
