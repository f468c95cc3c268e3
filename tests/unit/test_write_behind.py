"""The write-behind cache: reads see writes at once, the table gets each key once per flush, in the
partition of the event that last changed it, and events are acknowledged only after their flush."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import faust
import pytest
from faust.streams import current_event
from faust.types import TP

from persona.tables.cache import AckAfter, StoreWriter, WriteBehind, as_event


class RecordingTable(dict):
    """A table that notes every write with the partition Faust would give it (the current event's)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.writes: list[tuple[str, object, int]] = []

    def __setitem__(self, key, value):
        self.writes.append(("set", key, current_event().message.partition))
        super().__setitem__(key, value)

    def __delitem__(self, key):
        self.writes.append(("del", key, current_event().message.partition))
        super().__delitem__(key)


class RecordingStream:
    def __init__(self, log: list):
        self.log = log

    async def ack(self, event):
        self.log.append(("ack", event.message.offset))


class Event(SimpleNamespace):  # Faust keeps a weak reference to the current event
    pass


def event(offset: int, partition: int = 0):
    return Event(message=SimpleNamespace(partition=partition, offset=offset))


async def test_each_key_reaches_the_table_once_per_flush_with_its_last_value():
    table = RecordingTable({"kept": 1})
    cache, log = WriteBehind(table), []
    stream = RecordingStream(log)
    for n in range(5):
        cache.put("a", n, event(n, partition=3))
        cache.hold(stream, event(n))
    assert cache.get("a") == 4 and table.get("a") is None  # reads see the write before the table does
    await cache.flush()
    assert table.writes == [("set", "a", 3)] and table["a"] == 4
    assert log == [("ack", n) for n in range(5)]
    await cache.flush()  # nothing pending: nothing written
    assert len(table.writes) == 1


async def test_events_are_acknowledged_only_after_the_hooks_ran():
    cache, log = WriteBehind(RecordingTable()), []

    async def send_effects():
        log.append("effects sent")

    cache.before_ack.append(send_effects)
    cache.put("a", 1, event(0))
    cache.hold(RecordingStream(log), event(0))
    assert log == []
    await cache.flush()
    assert log == ["effects sent", ("ack", 0)]


async def test_a_deletion_is_a_tombstone_and_reads_see_it_at_once():
    table = RecordingTable({"gone": {"x": 1}})
    cache = WriteBehind(table)
    cache.delete("gone", event(0, partition=2))
    cache.delete("never-there", event(1))
    assert cache.get("gone") is None and cache.load("gone") is None
    await cache.flush()
    assert table.writes == [("del", "gone", 2)] and "gone" not in table


async def test_live_objects_are_encoded_on_read_and_on_flush():
    table = RecordingTable({"u": {"n": 1}})
    cache = WriteBehind(table, encode=lambda obj: {"n": obj[0]}, decode=lambda stored: [stored["n"]])
    live = cache.load("u")
    live[0] += 1
    cache.put("u", live, event(0))
    assert cache.get("u") == {"n": 2}
    assert cache.load("u") is live  # the same object until flushed
    await cache.flush()
    assert table["u"] == {"n": 2}


def test_full_when_enough_keys_wait():
    cache = WriteBehind({}, max_keys=2)
    cache.put("a", 1, None)
    assert not cache.full
    cache.put("b", 1, None)
    assert cache.full


def test_as_event_sets_and_restores_faust_current_event():
    e = event(7, partition=5)
    assert current_event() is None
    with as_event(e):
        assert current_event() is e
    assert current_event() is None


async def test_flushed_objects_are_reused_until_dropped_and_never_outlive_a_deletion():
    table = RecordingTable()
    cache = WriteBehind(table, encode=lambda obj: {"n": obj[0]}, decode=lambda stored: [stored["n"]], keep=2)
    live = [1]
    cache.put("u", live, event(0))
    await cache.flush()
    assert cache.load("u") is live  # no read and decode of the table
    cache.put("u", live, event(1))
    cache.delete("u", event(2))
    await cache.flush()
    assert cache.load("u") is None and "u" not in table
    cache.put("v", [5], event(3))
    await cache.flush()
    cache.drop_flushed()  # partitions revoked: the table is the truth again
    assert cache.load("v") == [5] and cache.load("v") is not None


async def test_at_most_keep_flushed_objects_stay_in_memory():
    cache = WriteBehind(RecordingTable(), keep=2)
    for n, key in enumerate("abc"):
        cache.put(key, [n], event(n))
    await cache.flush()
    assert list(cache._flushed) == ["b", "c"]


async def test_a_failed_flush_keeps_all_of_its_changes_for_the_next_and_acknowledges_nothing():
    class Flaky(RecordingTable):
        fail = True

        def __setitem__(self, key, value):
            if key == "b" and self.fail:
                raise RuntimeError("changelog metadata not known yet")
            super().__setitem__(key, value)

    table, log = Flaky(), []
    cache = WriteBehind(table)
    cache.put("a", 1, event(0))
    cache.put("b", 2, event(1))
    cache.hold(RecordingStream(log), event(1))
    with pytest.raises(RuntimeError):
        await cache.flush()
    assert log == [] and cache.dirty == 2  # "a" too: writing a key twice is harmless
    cache.put("c", 3, event(2))
    table.fail = False
    await cache.flush()
    assert table == {"a": 1, "b": 2, "c": 3} and log == [("ack", 1)]


class RecordingProducer:
    """Acknowledges each record at once with the next offset of its partition."""

    def __init__(self):
        self.sent: list[tuple[str, bytes, bytes | None, int]] = []
        self.offsets: dict[int, int] = {}

    async def send(self, topic, key, value, partition, timestamp, headers):
        self.sent.append((topic, key, value, partition))
        offset = self.offsets[partition] = self.offsets.get(partition, -1) + 1
        future = asyncio.get_running_loop().create_future()
        future.set_result(SimpleNamespace(offset=offset))
        return future


@pytest.fixture
def rocksdb_table(tmp_path):
    app = faust.App("write-behind-test", store="rocksdb://", datadir=str(tmp_path), autodiscover=False)
    table = app.Table("things", key_type=str, default=None, partitions=4)
    app.producer = RecordingProducer()
    yield table
    for db in table.data._dbs.values():
        db.close()


async def test_a_rocksdb_table_gets_the_bytes_and_partitions_faust_would_write(rocksdb_table):
    table, producer = rocksdb_table, rocksdb_table.app.producer
    cache = WriteBehind(table)
    cache.put("u1", {"views": 1}, event(10, partition=1))
    cache.put("u2", {"views": 2, "name": "Élise"}, event(11, partition=3))
    cache.put("u1", {"views": 3}, event(12, partition=1))
    await cache.flush()
    assert isinstance(cache.writer, StoreWriter)
    store = table.data
    # readable through Faust's own store, decoded by its own codec, in the event's partition
    assert store["u1"] == {"views": 3} and store["u2"] == {"views": 2, "name": "Élise"}
    assert store._db_for_partition(3)[store._encode_key("u2")] is not None
    assert store._db_for_partition(1).get(store._encode_key("u2")) is None
    topic = table.changelog_topic.get_topic_name()
    assert [(t, k, p) for t, k, _, p in producer.sent] == [(topic, store._encode_key("u1"), 1),
                                                            (topic, store._encode_key("u2"), 3)]
    await asyncio.sleep(0)  # acknowledgement callbacks
    assert store.persisted_offset(TP(topic, 1)) == 0 and store.persisted_offset(TP(topic, 3)) == 0
    cache.delete("u1", event(13, partition=1))
    await cache.flush()
    await asyncio.sleep(0)
    assert "u1" not in store and producer.sent[-1] == (topic, store._encode_key("u1"), None, 1)
    assert store.persisted_offset(TP(topic, 1)) == 1  # the partition's last acknowledged record


async def test_an_event_held_by_two_caches_is_acknowledged_after_both_flushed():
    log: list = []
    stream, first, second = RecordingStream(log), WriteBehind(RecordingTable()), WriteBehind(RecordingTable())
    shared = AckAfter(stream, holders=2)
    first.put("item", 1, event(7))
    second.put("source|slot", 2, event(7))
    first.hold(shared, event(7))
    second.hold(shared, event(7))
    await first.flush()
    assert log == []  # the second cache has not written its part yet
    await second.flush()
    assert log == [("ack", 7)]
