"""Table changelogs as durable as the offsets that follow them, and local tables never ahead of them.

Faust writes a table change to RocksDB at once and hands its changelog record to the producer's
buffer (``Table.send_changelog`` -> ``Topic.send_soon``), which a background task drains. Two
gaps follow, both found with the changelog-only recovery test (``tests/integration/test_crash.py``):

1. Before committing source offsets Faust flushes the producer, but ``ProducerBuffer.flush``
   gives up as soon as 0.1 s pass without a record leaving the buffer (``flush_atmost``, its
   ``wait_for(..., timeout=0.1)``), and never counts the record its task is handing over. Under
   load the buffer holds hundreds of records, so a commit can cover events whose changelog records
   are still buffered; a crash then loses them from the changelog for good. Hence
   :class:`CommitAfterChangelog`: the commit first awaits the broker's acknowledgement of every
   record buffered so far.
2. After a crash (kill -9), RocksDB keeps the writes of events whose changelog records were still
   buffered. Their offsets were not committed, so the restarted worker receives those events again,
   finds them already applied (profiles remember the event ids they applied) and writes nothing:
   the changelog never gets them, and a worker on another machine recovers a profile without them.
   Hence the clean-stop mark: a worker that starts without it drops its local tables and restores
   them from the changelogs (as a worker on a new machine does), then reprocesses what was not
   committed.

:class:`DurableApp` puts both in place; nothing else changes for agents or tables.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
import types
from pathlib import Path
from typing import Any, Mapping

import faust

__all__ = ["DurableApp", "Unacknowledged", "ChangelogNotDurable", "CLEAN_STOP_MARK"]

logger = logging.getLogger(__name__)

CLEAN_STOP_MARK = "clean-stop"  # in the table folder: every local table write is in a changelog
SETTLE_TIMEOUT = 30.0  # seconds a commit waits for acknowledgements before it is skipped (retried later)


class ChangelogNotDurable(RuntimeError):
    """A record handed to the producer failed: committing past it would lose it."""


class Unacknowledged:
    """Records handed to the producer and not yet acknowledged by the broker.

    >>> async def demo():
    ...     pending, record = Unacknowledged(), asyncio.get_running_loop().create_future()
    ...     pending.track(record)
    ...     asyncio.get_running_loop().call_later(0.01, record.set_result, "ack")
    ...     return len(pending), await pending.settle(timeout=1) >= 0, len(pending)
    >>> asyncio.run(demo())
    (1, True, 0)
    """

    def __init__(self) -> None:
        self.futures: set[asyncio.Future] = set()
        self.failure: BaseException | None = None
        self.waits: list[float] = []  # seconds each non-trivial settle() waited
        self.buffered_at_commit: list[int] = []  # records still in Faust's buffer when a commit began

    def __len__(self) -> int:
        return len(self.futures)

    def track(self, future: asyncio.Future) -> None:
        if not future.done():
            self.futures.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: asyncio.Future) -> None:
        self.futures.discard(future)
        if self.failure is None:
            if future.cancelled():
                self.failure = asyncio.CancelledError("a record sent to Kafka was cancelled")
            elif future.exception() is not None:
                self.failure = future.exception()

    async def settle(self, timeout: float) -> float:
        """Wait until every record tracked so far is acknowledged; the seconds waited.

        Raises :class:`ChangelogNotDurable` if one failed, :class:`TimeoutError` after ``timeout``.
        Records tracked while waiting are not waited for: a busy stream cannot hold a commit back.
        """
        waiting, start = list(self.futures), time.monotonic()
        if waiting:
            _, late = await asyncio.wait(waiting, timeout=timeout)
            if late:
                raise TimeoutError(f"{len(late)} records not acknowledged after {timeout:.0f} s")
            self.waits.append(time.monotonic() - start)
        if self.failure is not None:
            raise ChangelogNotDurable(f"a record was not written: {self.failure!r}") from self.failure
        return time.monotonic() - start


class TrackingProducer:
    """Producer mixin: remember every record put in Faust's buffer (``send_soon``: changelog records of
    tables written through Faust's own API; :class:`persona.tables.cache.StoreWriter` tracks its own)."""

    app: Any

    def send_soon(self, fut) -> None:
        self.app.unacknowledged.track(fut)
        super().send_soon(fut)  # type: ignore[misc]


class CommitAfterChangelog:
    """Consumer mixin: commit source offsets only once the records buffered before are acknowledged.

    This is the commit itself, whatever called it (the commit timer, a rebalance, the stop), and
    whatever wrote the tables (one event at a time or ``take_events`` batches).
    """

    app: Any
    log: Any

    async def _commit(self, offsets: Mapping[Any, int]) -> bool:
        # Faust flushed the producer just before: what its buffer still holds shows gap 1 at work.
        self.app.unacknowledged.buffered_at_commit.append(self.app.producer.buffer.size)
        try:
            await self.app.unacknowledged.settle(SETTLE_TIMEOUT)
        except TimeoutError as err:  # the broker is slow or away: skipping keeps the events uncommitted
            self.log.warning("not committing offsets yet: %s", err)
            return False
        return await super()._commit(offsets)  # type: ignore[misc]


class DurableApp(faust.App):
    """A Faust app whose commits follow its changelogs, and whose local tables survive only a clean stop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unacknowledged = Unacknowledged()

    def _new_transport(self):
        transport = super()._new_transport()
        transport.Producer = types.new_class("Producer", (TrackingProducer, transport.Producer))
        transport.Consumer = types.new_class("Consumer", (CommitAfterChangelog, transport.Consumer))
        return transport

    @property
    def keeps_tables(self) -> bool:
        return not (self.producer_only or self.client_only)

    async def on_first_start(self) -> None:
        await super().on_first_start()
        if self.keeps_tables:
            drop_tables_unless_stopped_cleanly(Path(self.conf.tabledir))

    async def on_stop(self) -> None:
        await super().on_stop()  # stops the streams, commits, flushes the producer
        tabledir, waits = Path(self.conf.tabledir), self.unacknowledged.waits
        buffered = [n for n in self.unacknowledged.buffered_at_commit if n]
        if waits:
            logger.info("commits waited for the changelog %d times: mean %.1f ms, max %.1f ms; %d of %d commits "
                        "found records still in the producer buffer after Faust's flush (up to %d)",
                        len(waits), 1000 * sum(waits) / len(waits), 1000 * max(waits), len(buffered),
                        len(self.unacknowledged.buffered_at_commit), max(buffered, default=0))
        try:
            await self.unacknowledged.settle(SETTLE_TIMEOUT)
        except (TimeoutError, ChangelogNotDurable) as err:
            logger.warning("local tables will be restored from the changelogs at the next start: %s", err)
            return
        if self.keeps_tables and tabledir.is_dir():
            (tabledir / CLEAN_STOP_MARK).write_text(f"{time.time()}\n")


def drop_tables_unless_stopped_cleanly(tabledir: Path) -> list[str]:
    """Remove the local tables unless the last stop was clean; consume the mark. What was removed.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> (d / "profiles-0.db").mkdir(); (d / CLEAN_STOP_MARK).write_text("1")
    1
    >>> drop_tables_unless_stopped_cleanly(d), drop_tables_unless_stopped_cleanly(d)
    ([], ['profiles-0.db'])
    >>> list(d.iterdir())
    []
    """
    mark = tabledir / CLEAN_STOP_MARK
    if mark.exists():
        mark.unlink()  # a crash from now on leaves no mark
        return []
    stale = sorted(tabledir.iterdir()) if tabledir.is_dir() else []
    for path in stale:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    if stale:
        logger.warning("the last stop of this worker was not clean: restoring its tables from the changelogs "
                       "(removed %d local stores in %s)", len(stale), tabledir)
    return [p.name for p in stale]
