"""State survives a worker restart: recovered from the changelog into a fresh RocksDB folder."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from .conftest import Env, Worker, event, models_settled, produce_events, wait_for


def test_profile_survives_restart(deployment, tmp_path):
    first = Worker(deployment, tmp_path / "a").start()
    users = [f"restart-{i}" for i in range(20)]
    produce_events(deployment, [event(u, items=("12855",)) for u in users])
    produce_events(deployment, [event(u, "add_to_cart", items=("79931",)) for u in users[:5]])
    wait_for(lambda: all(first.get(f"/users/{u}")[0] == 200 for u in users), timeout=20)
    wait_for(lambda: all(first.get(f"/users/{u}")[1]["cart"] == ["79931"] for u in users[:5]), timeout=20)
    recs_before = first.get(f"/recommendations/{users[0]}")[1]
    # the served list is logged as an impression and remembered in the profile
    wait_for(lambda: recs_before["rec_id"] in first.get(f"/users/{users[0]}")[1]["impressions"])
    models_settled(first, expect=("cf", "intent"))  # the answers include the intent model's estimate: same model on both sides
    before = {u: first.get(f"/users/{u}")[1] for u in users}
    assert before[users[0]]["counts"] == {"view_item": 1, "add_to_cart": 1}, "an impression is no activity"
    assert first.stop(signal.SIGTERM) == 0

    # A new data folder: everything must come back from Kafka, not from the old RocksDB files.
    second = Worker(deployment, tmp_path / "b").start()
    try:
        after = {u: second.get(f"/users/{u}")[1] for u in users}
        assert after == before
        recs_after = second.get(f"/recommendations/{users[0]}")[1]
        assert [i["item_id"] for i in recs_after["items"]] == [i["item_id"] for i in recs_before["items"]]
    finally:
        second.stop()


def test_static_member_killed_and_restarted_takes_its_partitions_back_at_once(deployment, tmp_path):
    """With ``PERSONA_INSTANCE_ID`` a worker killed with -9 and restarted at the same address rejoins
    its group as the same member: it consumes again long before the group would have dropped its
    former self (the 60 s session timeout; a dynamic member waits for it)."""
    env = Env({**deployment, "PERSONA_INSTANCE_ID": "shop-1", "BROKER_SESSION_TIMEOUT": "60"})
    users = [f"static-{i}" for i in range(20)]
    first = Worker(env, tmp_path / "w").start()
    produce_events(env, [event(u, items=("12855",)) for u in users])
    wait_for(lambda: all(first.get(f"/users/{u}")[0] == 200 for u in users), timeout=30)
    first.stop(signal.SIGKILL)

    restarted = time.monotonic()
    again = Worker(env, tmp_path / "w", port=first.port).start()
    try:
        produce_events(env, [event(u, "add_to_cart", items=("79931",)) for u in users])
        wait_for(lambda: all(again.get(f"/users/{u}")[1].get("cart") == ["79931"] for u in users), timeout=40)
        assert time.monotonic() - restarted < 45, "the restarted member waited for the session timeout"
        assert "Joined group" in again.log.read_text()
    finally:
        again.stop()


def _children(pid: int) -> set[int]:
    tasks = Path(f"/proc/{pid}/task")
    return {int(c) for task in tasks.iterdir() for c in (task / "children").read_text().split()}


def _alive(pid: int) -> bool:
    try:
        return "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()
    except FileNotFoundError:
        return False


def test_the_trainer_process_ends_with_its_worker_even_after_kill_9(deployment, tmp_path):
    worker = Worker(deployment, tmp_path / "w").start()
    produce_events(deployment, [event(f"trainer-{i}", items=("12855",)) for i in range(10)])
    wait_for(lambda: {p for p in _children(worker.proc.pid) if _alive(p)}, timeout=30)  # started by the examples
    trainers = {p for p in _children(worker.proc.pid) if _alive(p)}
    worker.stop(signal.SIGKILL)
    wait_for(lambda: not any(_alive(p) for p in trainers), timeout=10)
