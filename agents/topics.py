"""Kafka topics of persona, and creating them (idempotently) with the settings' partitions."""

from __future__ import annotations

import functools
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import murmur2

from persona.agents.app import app, settings
from persona.settings import Settings

__all__ = ["events", "impressions", "control", "deletions", "interactions", "catalog", "dlq", "aggregates", "training", "models", "rules", "relations",
           "ensure_topics", "owner_partition"]

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1 << 16)  # murmur2 is pure Python, and shoppers send many events
def owner_partition(key: str, partitions: int = settings.partitions) -> int:
    """The partition Kafka's default partitioner gives a record keyed by ``key``.

    >>> owner_partition("u1", 8), owner_partition("u1", 8) == owner_partition("u1", 8)
    (0, True)
    """
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


events = app.topic(settings.events_topic, key_type=bytes, value_type=bytes)
impressions = app.topic(settings.impressions_topic, key_type=bytes, value_type=bytes)
control = app.topic(settings.control_topic, key_type=bytes, value_type=bytes)
deletions = app.topic(settings.deletions_topic, key_type=bytes, value_type=bytes)
# What the ingest agent reads, all keyed by user: storefront events, the recommendations workers
# served, and control messages (deletions, profile merges at login).
interactions = app.topic(settings.events_topic, settings.impressions_topic, settings.control_topic,
                         key_type=bytes, value_type=bytes)
catalog = app.topic(settings.catalog_topic, key_type=bytes, value_type=bytes)
dlq = app.topic(settings.dlq_topic, key_type=bytes, value_type=bytes)
aggregates = app.topic(settings.aggregates_topic, key_type=bytes, value_type=bytes)
training = app.topic(settings.training_topic, key_type=bytes, value_type=bytes)
models = app.topic(settings.models_topic, key_type=bytes, value_type=bytes)
rules = app.topic(settings.rules_topic, key_type=bytes, value_type=bytes)
relations = app.topic(settings.relations_topic, key_type=bytes, value_type=bytes)

COMPACTED = {"cleanup.policy": "compact"}
# Faust creates the tables' changelog topics as it starts, but its consumer may subscribe before
# they exist and then never learn their partitions (a later table write fails the co-partitioning
# check): they are created up front with the rest.
TABLES = ("profiles", "item_stats", "strategy_stats", "neighbours")
MODEL_BYTES = 32 * 1024 * 1024  # a model snapshot is one record


def topic_specs(s: Settings) -> list[NewTopic]:
    """Every topic of persona, with the settings' partitions, replication and min in-sync replicas.

    >>> specs = topic_specs(Settings(replication=3, min_insync_replicas=2))
    >>> {(t.replication_factor, t.topic_configs.get("min.insync.replicas")) for t in specs}
    {(3, '2')}
    """
    p, r = s.partitions, s.replication
    isr = {"min.insync.replicas": str(s.min_insync_replicas)} if s.min_insync_replicas else {}
    return [
        NewTopic(s.events_topic, p, r, topic_configs=isr),
        NewTopic(s.impressions_topic, p, r, topic_configs=isr),  # co-partitioned with events: both update profiles
        NewTopic(s.control_topic, p, r, topic_configs=isr),  # likewise
        NewTopic(s.deletions_topic, 1, r, topic_configs=isr),
        NewTopic(s.dlq_topic, p, r, topic_configs=isr),
        # One topic for the three aggregate tables: every partition of a subscribed topic is in each
        # of the consumer's fetches, whose cost grows with their number (see BENCHMARKS.md).
        NewTopic(s.aggregates_topic, p, r, topic_configs=isr),
        NewTopic(s.training_topic, 1, r, topic_configs=isr),  # one trainer: every example in one order
        NewTopic(s.catalog_topic, 1, r, topic_configs={**COMPACTED, **isr}),
        NewTopic(s.rules_topic, 1, r, topic_configs={**COMPACTED, **isr}),
        NewTopic(s.relations_topic, 1, r, topic_configs={**COMPACTED, **isr}),
        NewTopic(s.models_topic, 1, r, topic_configs={**COMPACTED, **isr, "max.message.bytes": str(MODEL_BYTES)}),
    ] + [NewTopic(f"{s.app_id}-{table}-changelog", p, r, topic_configs={**COMPACTED, **isr}) for table in TABLES]


async def ensure_topics(s: Settings = settings) -> list[str]:
    """Create missing topics; return the names created. Existing topics are left as they are."""
    admin = AIOKafkaAdminClient(**s.client_options(), request_timeout_ms=10000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topic_specs(s) if t.name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:  # another worker was quicker
                pass
        return [t.name for t in missing]
    finally:
        await admin.close()
