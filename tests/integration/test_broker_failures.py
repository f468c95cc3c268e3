"""Broker failures lose nothing and count nothing twice: the worker rides them out on its own.

Each test runs on brokers of its own (never the shared test broker), started by the project's
scripts on ports of their own and stopped at the end of the module, whatever happens:

- a single broker (``scripts/kafka.sh``) stopped and started again while the worker ingests;
- a three-node cluster (``scripts/kafka-cluster.sh``: RF 3, min.insync.replicas 2) that loses the
  node leading most of the events partitions while the worker ingests, and gets it back at the end.

The ground truth comes from the input (distinct event ids per shopper and event name, 5 % of the
events sent twice) and is compared with every shopper's counts read back from the worker, with
the helpers of ``test_crash.py``. The larger version is ``benchmarks/chaos.py``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from .conftest import Env, Worker, wait_for
from .test_crash import FAST_FAILOVER, catalog_items, discrepancies, drained, handled, profiles, workload

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
KAFKA_DIR = Path(os.environ.get("PERSONA_TEST_FAILURES_KAFKA_DIR", REPO / ".local" / "kafka-failures"))
# Fixed ports below Linux's ephemeral range (32768+), from which the workers' free ports come.
SINGLE_PORT = int(os.environ.get("PERSONA_TEST_SINGLE_PORT", "29300"))  # +1: its controller
CLUSTER_PORT = int(os.environ.get("PERSONA_TEST_CLUSTER_PORT", "29400"))  # 3 nodes; controllers +100
EVENTS, USERS, DUPLICATES = 3000, 300, 0.05
HEAD = 0.4  # share of the stream produced before the failure; the rest after it (or during it)
SLOW = 300  # seconds: generous, the machine is shared; what is checked does not depend on speed


def script(name: str, *args: str, **env: str) -> None:
    """Run scripts/<name> with PERSONA_KAFKA_DIR and ``env``; fail with its output if it fails."""
    done = subprocess.run([str(REPO / "scripts" / name), *args], capture_output=True, text=True, timeout=240,
                          env={**os.environ, "PERSONA_KAFKA_DIR": str(KAFKA_DIR), **env})
    assert done.returncode == 0, f"{name} {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


class SingleBroker:
    env = {"PERSONA_KAFKA_PORT": str(SINGLE_PORT)}
    bootstrap = f"127.0.0.1:{SINGLE_PORT}"

    def up(self) -> None:
        script("kafka.sh", "up", **self.env)

    def down(self) -> None:
        script("kafka.sh", "down", **self.env)


class Cluster:
    env = {"PERSONA_KAFKA_CLUSTER_PORT": str(CLUSTER_PORT)}
    bootstrap = ",".join(f"127.0.0.1:{CLUSTER_PORT + k}" for k in range(3))

    def up(self) -> None:
        script("kafka-cluster.sh", "up", **self.env)

    def stop(self, node: int) -> None:
        script("kafka-cluster.sh", "stop", str(node), **self.env)

    def start(self, node: int) -> None:
        script("kafka-cluster.sh", "start", str(node), **self.env)


@pytest.fixture(scope="module")
def single_broker():
    broker = SingleBroker()
    try:
        broker.up()
        yield broker
    finally:
        script("kafka.sh", "reset", **broker.env)  # stops it, then removes its data


@pytest.fixture(scope="module")
def cluster():
    nodes = Cluster()
    try:
        nodes.up()
        yield nodes
    finally:
        script("kafka-cluster.sh", "reset", **nodes.env)


def deployment(bootstrap: str, **settings: str) -> Env:
    """A fresh app id and topics on ``bootstrap``, with the catalog published."""
    env = Env({**Env.fresh(), "PERSONA_BOOTSTRAP": bootstrap, **FAST_FAILOVER, **settings})
    env.run("topics")
    env.run("load-catalog")
    return env


async def _produce(bootstrap: str, topic: str, events: list[dict]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        for e in events:
            await producer.send(topic, value=orjson.dumps(e), key=e["user_id"].encode())
        await producer.flush()
    finally:
        await producer.stop()


def produce(env: Env, events: list[dict]) -> None:
    asyncio.run(_produce(env.settings.bootstrap, env.settings.events_topic, events))


async def _topic_layout(bootstrap: str, topic: str) -> tuple[dict[int, list[int]], str]:
    """(partition -> replicas with the leader first, the topic's min.insync.replicas)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        replicas = {p["partition"]: [p["leader"]] + [r for r in p["replicas"] if r != p["leader"]]
                    for p in described["partitions"]}
        [config] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        entries = {name: value for name, value, *_ in config.resources[0][4]}
        return replicas, entries["min.insync.replicas"]
    finally:
        await admin.close()


def check_counts(env: Env, w: Worker, users: list[str], truth: dict) -> None:
    drained(env, w, timeout=SLOW)
    lost, double, wrong = discrepancies(truth, profiles(w, users))
    assert (lost, double) == (0, 0), f"lost {lost}, double-counted {double}; first differences: {wrong[:10]}"


def test_single_broker_restarted_mid_stream(single_broker, tmp_path):
    env = deployment(single_broker.bootstrap)
    users = [f"restart-{i}" for i in range(USERS)]
    stream, truth = workload(users, EVENTS, catalog_items(), dup_rate=DUPLICATES, seed=31)
    head = int(HEAD * len(stream))  # the rest is produced once the broker is back: the stream goes on
    produce(env, stream[:head])

    w = Worker(env, tmp_path / "w").start()
    try:
        wait_for(lambda: handled(w) >= 0.3 * len(stream), timeout=SLOW, every=0.05)
        single_broker.down()  # clean stop: the worker is left with what it has fetched
        single_broker.up()
        produce(env, stream[head:])
        check_counts(env, w, users, truth)
        assert w.proc.poll() is None, "the worker exited instead of reconnecting"
    finally:
        w.stop()
    assert sum(sum(c.values()) for c in truth.values()) == EVENTS


def test_cluster_loses_a_node_mid_stream(cluster, tmp_path):
    env = deployment(cluster.bootstrap, PERSONA_REPLICATION="3", PERSONA_MIN_INSYNC_REPLICAS="2")
    replicas, min_isr = asyncio.run(_topic_layout(cluster.bootstrap, env.settings.events_topic))
    assert {len(r) for r in replicas.values()} == {3} and min_isr == "2", (replicas, min_isr)
    leaders = [r[0] for r in replicas.values()]
    victim = max(set(leaders), key=leaders.count)  # the node leading the most events partitions

    users = [f"cluster-{i}" for i in range(USERS)]
    stream, truth = workload(users, EVENTS, catalog_items(), dup_rate=DUPLICATES, seed=41)
    head = int(HEAD * len(stream))  # the rest is produced while the node is down
    produce(env, stream[:head])

    w = Worker(env, tmp_path / "w").start()
    try:
        wait_for(lambda: handled(w) >= 0.3 * len(stream), timeout=SLOW, every=0.05)
        cluster.stop(victim)
        # Two nodes of three still take acks=all writes (events, changelogs, offsets): the worker goes on.
        produce(env, stream[head:])
        wait_for(lambda: handled(w) >= head + 0.2 * len(stream), timeout=SLOW, every=0.1)
        cluster.start(victim)
        check_counts(env, w, users, truth)
        assert w.proc.poll() is None
    finally:
        w.stop()
