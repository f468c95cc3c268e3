"""The fixes of :mod:`persona.agents.rebalance`, on the consumer thread's own methods."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aiokafka import TopicPartition

from persona.agents import rebalance

EVENTS = [TopicPartition("events", p) for p in range(3)]
CHANGELOG = TopicPartition("app-profiles-changelog", 0)


class AIOKafkaConsumer:
    """Records the seeks the consumer thread asks of aiokafka."""

    def __init__(self, committed: dict):
        self.committed, self.to_beginning = committed, []

    async def seek_to_committed(self):
        return self.committed

    async def seek_to_beginning(self, *partitions):
        self.to_beginning += partitions


def consumer_thread(committed: dict, reset: str = "earliest") -> SimpleNamespace:
    consumer = AIOKafkaConsumer(committed)
    async def call_thread(method, *args):
        return await method(*args)
    app = SimpleNamespace(conf=SimpleNamespace(consumer_auto_offset_reset=reset),
                          tables=SimpleNamespace(changelog_topics={CHANGELOG.topic}))
    return SimpleNamespace(app=app, consumer=consumer, call_thread=call_thread, _ensure_consumer=lambda: consumer)


def seek(thread: SimpleNamespace, monkeypatch) -> dict:
    """The patched seek, over the fake consumer's own ``seek_to_committed``."""
    monkeypatch.setattr(rebalance, "_original_seek_to_committed",
                        lambda self: self.call_thread(self._ensure_consumer().seek_to_committed))
    return asyncio.run(rebalance._seek_to_committed(thread))


def test_stream_partitions_without_a_committed_offset_are_read_from_their_beginning(monkeypatch):
    committed = {EVENTS[0]: 7, EVENTS[1]: None, EVENTS[2]: 0, CHANGELOG: None}
    thread = consumer_thread(committed)
    assert seek(thread, monkeypatch) == committed, "Faust still gets the committed offsets"
    assert thread.consumer.to_beginning == [EVENTS[1], EVENTS[2]]


def test_nothing_moves_when_every_partition_is_committed_or_the_reset_is_latest(monkeypatch):
    for thread in consumer_thread({tp: 3 for tp in EVENTS}), consumer_thread({EVENTS[0]: None}, reset="latest"):
        seek(thread, monkeypatch)
        assert thread.consumer.to_beginning == []


def test_install_replaces_the_consumer_threads_seek():
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    import persona.agents.app  # noqa: F401  (installs the fixes)
    assert AIOKafkaConsumerThread.seek_to_committed is rebalance._seek_to_committed


def fetching_consumer(active: set, delivering=None) -> SimpleNamespace:
    """The state of Faust's consumer that the seek to committed offsets looks at."""
    return SimpleNamespace(_get_active_partitions=lambda: active, _buffered_partitions=set(),
                           _is_changelog_tp=lambda tp: tp.topic == CHANGELOG.topic,
                           persona_delivering=delivering)


def test_the_seek_runs_with_the_stream_partitions_paused_and_after_their_delivery(monkeypatch):
    active = {*EVENTS, CHANGELOG}
    consumer = fetching_consumer(active, delivering=EVENTS[1])
    seen = {}

    async def seek(self):
        seen.update(active=set(active), delivering=self.persona_delivering)

    async def run():
        async def deliver():  # the record waiting for room in its stream's queue gets through
            await asyncio.sleep(0.05)
            consumer.persona_delivering = None
        delivered = asyncio.create_task(deliver())
        await rebalance._perform_seek(consumer)
        await delivered

    monkeypatch.setattr(rebalance, "_original_perform_seek", seek)
    asyncio.run(run())
    assert seen == {"active": {CHANGELOG}, "delivering": None}, "standbys keep flowing; streams wait"
    assert active == {*EVENTS, CHANGELOG}, "every partition fetched again after the seek"


def test_the_seek_does_not_wait_for_a_changelog_record(monkeypatch):
    active = {*EVENTS, CHANGELOG}
    consumer = fetching_consumer(active, delivering=CHANGELOG)
    seeks = []

    async def seek(self):
        seeks.append(self.persona_delivering)

    monkeypatch.setattr(rebalance, "_original_perform_seek", seek)
    monkeypatch.setattr(rebalance, "DELIVERY_WAIT_SECONDS", 30.0)
    asyncio.run(asyncio.wait_for(rebalance._perform_seek(consumer), timeout=1))
    assert seeks == [CHANGELOG]


def test_getmany_says_which_partition_is_being_delivered(monkeypatch):
    async def batch(self, timeout):
        for tp in EVENTS[:2]:
            yield tp, f"record of {tp.partition}"

    monkeypatch.setattr(rebalance, "_original_getmany", batch)
    consumer = SimpleNamespace()

    async def drain():
        seen = []
        async for tp, message in rebalance._getmany(consumer, 1.0):
            seen.append((message, consumer.persona_delivering))
        return seen, consumer.persona_delivering

    assert asyncio.run(drain()) == ([("record of 0", EVENTS[0]), ("record of 1", EVENTS[1])], None)


def test_install_replaces_the_consumers_seek_and_getmany():
    from faust.transport.consumer import Consumer

    import persona.agents.app  # noqa: F401
    assert Consumer.perform_seek is rebalance._perform_seek and Consumer.getmany is rebalance._getmany
