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
