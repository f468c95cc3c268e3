"""Crashes lose nothing and count nothing twice: at-least-once delivery, idempotent profiles.

A worker killed with SIGKILL mid-stream leaves events processed but not committed; its successor
processes them again, and the profile's remembered event ids (``Profile.applied``) keep each one
counted once. A worker on an EMPTY data folder rebuilds every profile from the changelog alone: the
commits wait for the changelog, and a worker restarted after a crash restores its tables from the
changelog instead of trusting its RocksDB folder (``persona.agents.durability``), with Faust's
per-record replay or, far behind, a bulk copy first (``persona.agents.restore``).

The workers get a 10 s Kafka session timeout (Faust reads ``BROKER_SESSION_TIMEOUT``) so that the
group evicts the killed member in 10 s rather than the default 60 s: the tests stay short; what
they check does not depend on it. The larger version is ``benchmarks/chaos.py``.
"""

from __future__ import annotations

import asyncio
import random
import re
import signal
import time
from collections import Counter, defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from persona.catalog import default_catalog_path, read_catalog

from .conftest import Env, Worker, event, produce_events, wait_for

pytestmark = pytest.mark.kafka

FAST_FAILOVER = {"BROKER_SESSION_TIMEOUT": "10", "BROKER_HEARTBEAT_INTERVAL": "1"}
DERIVED = ("intent", "stage")  # computed by GET /users when asked (models, clock), not stored
HANDLED = ("applied", "duplicates", "dead_lettered", "repartitioned")
START = 240  # s to start a worker, restoring its tables from the changelogs (on a loaded machine)
DRAIN = 180  # s to process and commit what was sent (on a loaded machine)


def workload(users: list[str], n: int, items: list[str], dup_rate: float, seed: int) -> tuple[list[dict], dict]:
    """``n`` distinct events (views, carts, purchases, searches) of ``users`` in event-time order,
    with ``dup_rate`` of them sent again later (same event_id); and the truth: distinct event ids
    per user and event name."""
    rng = random.Random(seed)
    start = time.time() - 3600
    events = []
    for k in range(n):
        user, r = rng.choice(users), rng.random()
        name = "view_item" if r < 0.78 else "add_to_cart" if r < 0.88 else "purchase" if r < 0.93 else "search"
        extra = {"search_term": rng.choice(["oud", "rose", "vanilla"])} if name == "search" else {}
        items_ = () if name == "search" else (rng.choice(items),)
        events.append(event(user, name, items=items_, ts=start + k * 0.5, **extra))
    truth: dict[str, Counter] = defaultdict(Counter)
    for e in events:
        truth[e["user_id"]][e["event_name"]] += 1
    stream = list(events)
    for i in rng.sample(range(n), round(dup_rate * n)):
        stream.insert(rng.randint(stream.index(events[i]) + 1, len(stream)), dict(events[i]))
    return stream, dict(truth)


def catalog_items(k: int = 300) -> list[str]:
    return [p.item_id for p in read_catalog(default_catalog_path())][:k]


def handled(w: Worker) -> int:
    try:
        status, body = w.get("/health")
    except (OSError, ValueError):
        return -1
    return sum(body.get("counters", {}).get(k, 0) for k in HANDLED) if status == 200 else -1


def profiles(w: Worker, users) -> dict[str, dict | None]:
    out = {}
    for u in users:
        status, body = w.get(f"/users/{u}")
        assert status in (200, 404), (u, status, body)
        out[u] = {k: v for k, v in body.items() if k not in DERIVED} if status == 200 else None
    return out


def discrepancies(truth: dict[str, Counter], observed: dict[str, dict | None]) -> tuple[int, int, list]:
    """(lost, double-counted, the (user, event name, truth, observed) that differ)."""
    lost = double = 0
    wrong = []
    for user, want in truth.items():
        got = Counter((observed.get(user) or {}).get("counts") or {})
        for name in set(want) | set(got):
            diff = got[name] - want[name]
            if diff:
                wrong.append((user, name, want[name], got[name]))
            lost += max(-diff, 0)
            double += max(diff, 0)
    return lost, double, wrong


async def _lag(env: Env) -> int:
    """Events not yet committed by the deployment's consumer group (all partitions)."""
    s = env.settings
    admin = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=s.bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        tps = [TopicPartition(s.events_topic, p["partition"])
               for d in await admin.describe_topics([s.events_topic]) for p in d["partitions"]]
        end = await consumer.end_offsets(tps)
        committed = await admin.list_consumer_group_offsets(s.app_id)
        return sum(end[tp] - max(committed[tp].offset if tp in committed else 0, 0) for tp in tps)
    finally:
        await consumer.stop()
        await admin.close()


def committed_to_end(env: Env) -> bool:
    return asyncio.run(_lag(env)) == 0


def drained(env: Env, w: Worker, timeout: float) -> None:
    """Until every event is committed and the worker's counters hold still for 2 s."""
    last, since = None, time.monotonic()

    def settled() -> bool:
        nonlocal last, since
        now = handled(w)
        if now != last or not committed_to_end(env):
            last, since = now, time.monotonic()
            return False
        return time.monotonic() - since >= 2

    wait_for(settled, timeout=timeout, every=0.5)


@pytest.fixture()
def crash_env(deployment) -> Env:
    return Env({**deployment, **FAST_FAILOVER})


def test_kill_mid_stream_loses_nothing_and_counts_nothing_twice(crash_env, tmp_path):
    users = [f"crash-{i}" for i in range(300)]
    stream, truth = workload(users, 5000, catalog_items(), dup_rate=0.02, seed=11)
    produce_events(crash_env, stream)

    first = Worker(crash_env, tmp_path / "w").start(timeout=START)
    try:
        wait_for(lambda: handled(first) >= 0.4 * len(stream), timeout=DRAIN, every=0.05)
    finally:
        first.stop(signal.SIGKILL)  # mid-stream: some events processed, not yet committed

    second = Worker(crash_env, tmp_path / "w").start(timeout=START)  # the same data folder, restarted
    try:
        drained(crash_env, second, timeout=DRAIN)
        observed = profiles(second, users)
    finally:
        second.stop()
    lost, double, wrong = discrepancies(truth, observed)
    assert (lost, double) == (0, 0), f"lost {lost}, double-counted {double}; first differences: {wrong[:10]}"
    assert sum(sum(c.values()) for c in truth.values()) == 5000


def test_empty_data_folder_recovers_served_profiles_after_sigterm_and_kill(crash_env, tmp_path):
    users = [f"recover-{i}" for i in range(150)]
    items = catalog_items()
    batch1, truth = workload(users, 1200, items, dup_rate=0.02, seed=21)

    # A clean stop: Faust flushes and commits; a worker on an empty folder serves the same profiles.
    a = Worker(crash_env, tmp_path / "a").start(timeout=START)
    try:
        produce_events(crash_env, batch1)
        drained(crash_env, a, timeout=DRAIN)
        served_by_a = profiles(a, users)
        assert discrepancies(truth, served_by_a)[:2] == (0, 0)
    finally:
        assert a.stop(signal.SIGTERM) == 0
    # b restores with Faust's own per-record replay, c (below) through the bulk copy (agents/restore.py)
    b = Worker(Env({**crash_env, "PERSONA_BULK_RESTORE_MIN_LAG": str(10**9)}), tmp_path / "b").start(timeout=START)
    try:
        wait_for(lambda: b.get("/health/ready")[0] == 200, timeout=30)
        assert "bulk restore:" not in b.log.read_text()
        assert profiles(b, users) == served_by_a

        # kill -9 mid-stream, while every event is its shopper's last one (two rounds, one event per
        # shopper each): the restarted worker on the same folder finds the events the killed one
        # applied in its RocksDB; the changelog must have them too, for a worker without that folder.
        rounds = [event(u, "view_item", items=(items[k],), ts=time.time() - 60 + k) for k in (0, 1) for u in users]
        for u in users:
            truth[u]["view_item"] += 2
        produce_events(crash_env, rounds)
        wait_for(lambda: handled(b) >= 1.5 * len(users), timeout=DRAIN, every=0.01)
    finally:
        b.stop(signal.SIGKILL)
    b2 = Worker(crash_env, tmp_path / "b").start(timeout=START)
    try:
        drained(crash_env, b2, timeout=DRAIN)
        served_by_b2 = profiles(b2, users)
    finally:
        b2.stop(signal.SIGKILL)  # everything is committed: nothing will be processed again
    lost, double, wrong = discrepancies(truth, served_by_b2)
    assert (lost, double) == (0, 0), f"restart on the same folder: lost {lost}, double {double}: {wrong[:10]}"

    c = Worker(Env({**crash_env, "PERSONA_BULK_RESTORE_MIN_LAG": "1"}), tmp_path / "c").start(timeout=START)
    try:
        wait_for(lambda: c.get("/health/ready")[0] == 200, timeout=30)
        recovered = profiles(c, users)
    finally:
        c.stop()
    copied = re.search(r"bulk restore: (\d+) changelog records", c.log.read_text())
    assert copied and int(copied[1]) >= len(users), "worker c did not restore its tables in bulk"
    differ = [u for u in users if recovered[u] != served_by_b2[u]]
    lost, double, wrong = discrepancies(truth, recovered)
    assert not differ, (f"{len(differ)} of {len(users)} profiles differ after recovery from the changelog alone "
                        f"(lost {lost}, double-counted {double}: {wrong[:10]}); e.g. {differ[0]}: served "
                        f"{served_by_b2[differ[0]]['counts']}, recovered {(recovered[differ[0]] or {}).get('counts')}")
