"""Commits wait for the changelog; a worker keeps its local tables only after a clean stop."""

from __future__ import annotations

import asyncio
import doctest

import pytest

from persona.agents import durability
from persona.agents.durability import (CLEAN_STOP_MARK, ChangelogNotDurable, CommitAfterChangelog, Unacknowledged,
                                       drop_tables_unless_stopped_cleanly)


def test_doctests():
    assert doctest.testmod(durability).failed == 0


class _App:
    def __init__(self):
        self.unacknowledged, self.producer = Unacknowledged(), _Producer()


class _Buffer:
    size = 0


class _Producer:
    buffer = _Buffer()


class _Consumer:
    def __init__(self, app):
        self.app, self.committed, self.log = app, [], None

    async def _commit(self, offsets):
        self.committed.append(dict(offsets))
        return True


class _DurableConsumer(CommitAfterChangelog, _Consumer):
    pass


def test_commit_waits_for_every_record_buffered_before_it():
    async def scenario():
        loop = asyncio.get_running_loop()
        consumer = _DurableConsumer(_App())
        record = loop.create_future()
        consumer.app.unacknowledged.track(record)
        commit = asyncio.create_task(consumer._commit({"tp": 10}))
        await asyncio.sleep(0.05)
        before_ack = list(consumer.committed)
        record.set_result("ack")
        assert await commit is True
        return before_ack, consumer.committed

    assert asyncio.run(scenario()) == ([], [{"tp": 10}])


def test_records_buffered_during_the_wait_do_not_hold_the_commit():
    async def scenario():
        loop = asyncio.get_running_loop()
        pending = Unacknowledged()
        first, later = loop.create_future(), loop.create_future()
        pending.track(first)
        settling = asyncio.create_task(pending.settle(timeout=5))
        await asyncio.sleep(0)
        pending.track(later)
        first.set_result("ack")
        await settling
        return len(pending)

    assert asyncio.run(scenario()) == 1


def test_a_failed_record_forbids_every_later_commit():
    async def scenario():
        loop = asyncio.get_running_loop()
        consumer = _DurableConsumer(_App())
        record = loop.create_future()
        consumer.app.unacknowledged.track(record)
        record.set_exception(OSError("broker gone"))
        await asyncio.sleep(0)
        for _ in range(2):
            with pytest.raises(ChangelogNotDurable):
                await consumer._commit({"tp": 1})
        return consumer.committed

    assert asyncio.run(scenario()) == []


def test_a_commit_gives_up_after_the_timeout_without_committing(monkeypatch):
    monkeypatch.setattr(durability, "SETTLE_TIMEOUT", 0.05)

    class _Log:
        def warning(self, *args):
            self.said = args[0] % args[1:]

    async def scenario():
        consumer = _DurableConsumer(_App())
        consumer.log = _Log()
        consumer.app.unacknowledged.track(asyncio.get_running_loop().create_future())  # never acknowledged
        return await consumer._commit({"tp": 1}), consumer.committed, consumer.log.said

    did, committed, said = asyncio.run(scenario())
    assert (did, committed) == (False, [])
    assert "1 records not acknowledged" in said


def test_tables_survive_a_clean_stop_only(tmp_path):
    (tmp_path / "profiles-0.db").mkdir()
    (tmp_path / "profiles-0.db" / "000008.sst").write_bytes(b"x")
    (tmp_path / CLEAN_STOP_MARK).write_text("1")
    assert drop_tables_unless_stopped_cleanly(tmp_path) == []
    assert (tmp_path / "profiles-0.db" / "000008.sst").exists()
    assert not (tmp_path / CLEAN_STOP_MARK).exists()  # a crash from now on must not look clean
    assert drop_tables_unless_stopped_cleanly(tmp_path) == ["profiles-0.db"]
    assert list(tmp_path.iterdir()) == []
    assert drop_tables_unless_stopped_cleanly(tmp_path / "missing") == []
