"""Settings, read once from the environment (``PERSONA_*``), with defaults for a laptop.

>>> s = Settings.from_env({"PERSONA_PARTITIONS": "4", "PERSONA_WEB_PORT": "7000"})
>>> s.partitions, s.web_port, s.bootstrap
(4, 7000, '127.0.0.1:9092')
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Mapping

__all__ = ["Settings", "TOPICS"]


@dataclass(frozen=True)
class Settings:
    app_id: str = "persona"
    bootstrap: str = "127.0.0.1:9092"  # host:port[,host:port]
    partitions: int = 8  # of persona.events and everything keyed like it
    replication: int = 1
    standby_replicas: int = 1  # warm copies of each table partition on other workers: fail-over without a full replay
    # Replicas that must have a write before it is acknowledged (acks=all), per topic; 0: the
    # broker's min.insync.replicas. 2 with replication 3: one broker may be lost, no acked write.
    min_insync_replicas: int = 0
    # Static group membership (Kafka's group.instance.id), unique per worker and kept across its
    # restarts (e.g. the pod name of a StatefulSet): a worker restarted after a crash takes its
    # partitions back at once instead of waiting out the session timeout of its former self, if it
    # comes back at the same web address. A worker stopped for good keeps its partitions until that
    # timeout (static members do not leave the group). Empty: dynamic membership.
    instance_id: str = ""
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    datadir: str = ".local/worker"
    events_topic: str = "persona.events"
    catalog_topic: str = "persona.catalog"
    dlq_topic: str = "persona.events.dlq"
    aggregates_topic: str = "persona.aggregates"  # per-partition sums for the item and strategy tables
    impressions_topic: str = "persona.impressions"
    control_topic: str = "persona.control"  # deletions and profile merges, keyed by user like events
    deletions_topic: str = "persona.deletions"  # the record of every deletion
    training_topic: str = "persona.training"
    models_topic: str = "persona.models"
    rules_topic: str = "persona.rules"
    relations_topic: str = "persona.relations"
    allocation: str = "bandit"  # how sessions get a blend variant: bandit (Thompson sampling) or ab
    explore: float = 0.1  # share of sessions given a uniformly drawn variant under the bandit
    snapshot_every: float = 5.0  # seconds between model snapshots published by the trainer
    # State changes are cached and written to the tables (and their changelogs) once per key per
    # flush; the events behind them are acknowledged only after that (see persona.tables.cache).
    flush_every: float = 0.5  # seconds between flushes of the profiles
    # ... and of the item tables (statistics, neighbours, feedback): other shoppers' signals may
    # trail a little longer, and an item changed by many events in that time is written once.
    item_flush_every: float = 2.0
    # A blended answer is served again to the same question (same shopper, same profile version)
    # for this long: the shopper's own events change the answer at once; other shoppers' signals
    # (trending, best-sellers, co-visitation) already trail by up to item_flush_every.
    answer_ttl: float = 2.0
    # Served lists are logged to the impressions topic in batches, one record per partition, at
    # most this long after they were answered: every record a worker consumes has a fixed cost.
    impression_linger: float = 0.05
    flush_max_keys: int = 20_000  # ... or sooner, when this many keys wait
    # Bytes per partition fetch, and records per hand-over to the agents (0: no limit). Small, for
    # serving: with Faust's defaults (1 MiB, no limit) a worker applies 1.6 x the events per second
    # in a backlog, but works it off in longer stretches, and GET p99 at 500 req/s was 2-3 x worse
    # (BENCHMARKS.md, section 2). Both are safe after a kill -9 (persona.agents.rebalance, fault 4).
    fetch_bytes: int = 64 * 1024
    max_poll_records: int = 500
    # A newly assigned table partition this many changelog records behind is copied in bulk before
    # Faust's per-record recovery replays the rest (persona.agents.restore).
    bulk_restore_min_lag: int = 1_000
    log_level: str = "info"
    admin_token: str = ""  # required by admin endpoints (DELETE /users, PUT /rules); unset: they answer 403
    cors_origins: str = ""  # comma-separated storefront origins allowed to call the API from a browser
    # Broker security for production (the local demo uses PLAINTEXT on loopback).
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    sasl_mechanism: str = "PLAIN"  # PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_cafile: str = ""  # CA bundle to verify the brokers (default: the system's)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        values = {}
        for f in fields(cls):
            raw = env.get(f"PERSONA_{f.name.upper()}")
            if raw is not None:
                values[f.name] = {"int": int, "float": float}.get(f.type, str)(raw)
        return cls(**values)

    def client_options(self) -> dict:
        """Connection settings for aiokafka clients (producers, consumers, admin)."""
        options: dict = {"bootstrap_servers": self.bootstrap, "security_protocol": self.security_protocol}
        if "SSL" in self.security_protocol:
            import ssl

            options["ssl_context"] = ssl.create_default_context(cafile=self.ssl_cafile or None)
        if self.security_protocol.startswith("SASL"):
            options.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                           sasl_plain_password=self.sasl_password)
        return options

    @property
    def broker_url(self) -> str:
        """Faust's broker URL: ``kafka://host:port;host:port``."""
        return ";".join(f"kafka://{hp.strip()}" for hp in self.bootstrap.split(",") if hp.strip())


TOPICS = tuple(f.name for f in fields(Settings) if f.name.endswith("_topic"))
