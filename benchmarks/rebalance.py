"""GETs while partitions move, and fail-over time with and without standby replicas.

Rebalance: state for ``--users`` shoppers with a known truth (views and last viewed item per
user); then a load of GET /users and /recommendations for random users, spread over every live
worker, while a 2nd worker joins, a 3rd joins, one is killed with SIGKILL (3 -> 2) and one
stops with SIGTERM (2 -> 1). A rebalance window runs from the change until every live worker is
ready and all name the same live owner for every partition. For each window: GETs answered,
errors (non-2xx, timeouts, answers wrong for the user), error rate, latency inside the window
against outside all windows, and how many answers came from a standby copy.

Fail-over: two workers with the same state, ``PERSONA_STANDBY_REPLICAS`` 1 and then 0; the owner
of half the users is killed with SIGKILL; measured from the kill: the first moment every sampled
user of the dead worker is answered correctly by the survivor (from a standby copy or its own
table), and the moment the survivor answers them as owner (group eviction + recovery).

Workers run with a 10 s Kafka session timeout (``BROKER_SESSION_TIMEOUT``), so a killed member
is evicted after 10 s instead of Faust's default.

    PERSONA_KAFKA_PORT=19392 PERSONA_KAFKA_DIR=.local/kafka-rebalance scripts/kafka.sh up
    .venv/bin/python benchmarks/rebalance.py --bootstrap 127.0.0.1:19392
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the GET load of tests/integration

import common  # noqa: E402
from tests.integration.http_load import Load, get  # noqa: E402

from persona.agents.ingest import owner_partition  # noqa: E402

FAST_FAILOVER = {"BROKER_SESSION_TIMEOUT": "10", "BROKER_HEARTBEAT_INTERVAL": "1"}
SETTLE_WITHIN = 180.0
START_WITHIN = 300.0  # seconds for a worker to start (the machine is shared)


def user_events(users: list[str], items: list[str], seed: int) -> tuple[list[dict], dict[str, tuple[int, str]]]:
    """1 to 4 views per user on distinct items, and the truth: (views, last viewed item)."""
    rng = random.Random(seed)
    start = time.time() - 900
    events, truth = [], {}
    for n, user in enumerate(users):
        viewed = rng.sample(items, rng.randint(1, 4))
        for k, item in enumerate(viewed):
            events.append({"event_id": uuid.UUID(int=rng.getrandbits(128)).hex, "event_name": "view_item",
                           "user_id": user, "session_id": f"s-{user}", "timestamp": int((start + k) * 1000),
                           "items": [{"item_id": item}]})
        truth[user] = (len(viewed), viewed[-1])
    return events, truth


def wrong(path: str, user: str, status: int, body: dict, truth: dict) -> str | None:
    if status != 200:
        return f"status {status}"
    if body.get("user_id") != user:
        return "another user's answer"
    if path == "users":
        views, last = truth[user]
        got = body.get("counts", {}).get("view_item"), (body.get("recent") or [[None]])[-1][0]
        return None if got == (views, last) else "stale or empty profile"
    return "fallback list for a known shopper" if body.get("fallback") else None


def settled(workers: list, probes: list[str], partitions: int, timeout: float = SETTLE_WITHIN) -> float:
    """Seconds until every worker is ready and all name the same live owner for every partition."""
    started, live = time.monotonic(), {w.url for w in workers}
    while time.monotonic() - started < timeout:
        if all(get(f"{w.url}/health/ready", 5)[0] == 200 for w in workers):
            answers = [{(s, h.get("X-Persona-Served-By"), h.get("X-Persona-Read-From"))
                        for s, _, h in (get(f"{w.url}/users/{u}", 5) for w in workers)} for u in probes]
            if all(len(a) == 1 and (x := next(iter(a)))[0] == 200 and x[1] in live and x[2] == "owner"
                   for a in answers):
                return time.monotonic() - started
        time.sleep(0.25)
    raise TimeoutError(f"workers did not settle within {timeout} s")


def build_state(dep: common.Deployment, users: list[str], seed: int) -> dict:
    events, truth = user_events(users, common.catalog_ids()[:500], seed)
    asyncio.run(common.produce(dep.settings.bootstrap, dep.settings.events_topic, common.records(events)))
    return truth


def wait_state(w: common.Worker, truth: dict, partitions: int, timeout: float = 900) -> float:
    """Seconds until ``w`` has applied every event: the last user produced on each partition has
    the right profile (a partition is applied in order), and so has a random sample."""
    started, users = time.monotonic(), list(truth)
    last = {owner_partition(u, partitions): u for u in users}
    pending = sorted(set(last.values()) | set(random.Random(0).sample(users, min(300, len(users)))))
    while pending:
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{len(pending)} users not ingested in {timeout} s")
        pending = [u for u in pending if wrong("users", u, *get(f"{w.url}/users/{u}")[:2], truth)]
        if pending:
            time.sleep(1)
    return time.monotonic() - started


def rebalance_run(args) -> list[list]:
    dep = common.Deployment(args.bootstrap, partitions=args.partitions)
    dep.update(FAST_FAILOVER, PERSONA_STANDBY_REPLICAS="1")
    dep.persona("topics")
    dep.persona("load-catalog")
    users = [f"rb-{i}" for i in range(args.users)]
    probes = [next(u for u in users if owner_partition(u, args.partitions) == p) for p in range(args.partitions)]
    w1 = common.Worker(dep, "w1")
    workers, load, windows = [w1], None, []
    try:
        w1.wait_ready(START_WITHIN)
        truth = build_state(dep, users, seed=1)
        took = wait_state(w1, truth, args.partitions)
        print(f"state: {len(users)} users ingested by one worker in {took:.0f} s", file=sys.stderr)
        load = Load(list(truth), lambda path, user, status, body: wrong(path, user, status, body, truth),
                    threads=4).start()
        load.add(w1)
        time.sleep(args.quiet)

        def change(name: str, act) -> None:
            started = time.monotonic()
            act()
            settled(workers, probes, args.partitions)
            windows.append((name, started, time.monotonic()))
            print(f"{name}: settled after {time.monotonic() - started:.1f} s", file=sys.stderr)
            time.sleep(args.quiet)

        def join(name: str) -> None:
            w = common.Worker(dep, name)
            try:
                w.wait_ready(START_WITHIN)
            except Exception:
                w.stop()
                raise
            workers.append(w)
            load.add(w)

        def leave(w, sig) -> None:
            load.drain(w)
            workers.remove(w)
            if sig == signal.SIGKILL:
                w.proc.kill()
                w.proc.wait()
            else:
                w.stop(timeout=60)

        change("1 -> 2 workers (join)", lambda: join("w2"))
        change("2 -> 3 workers (join)", lambda: join("w3"))
        change("3 -> 2 workers (kill -9)", lambda: leave(w1, signal.SIGKILL))
        change("2 -> 1 worker (SIGTERM)", lambda: leave(workers[0], signal.SIGTERM))
    finally:
        if load:
            load.stop()
        for w in workers:
            w.stop()
        dep.cleanup()
    outside = [p for p in load.probes if not any(s <= p.at <= e for _, s, e in windows)]
    rows = []
    for name, s, e in windows:
        inside = [p for p in load.probes if s <= p.at <= e]
        errors = sum(bool(p.error) for p in inside)
        rows.append([name, f"{e - s:.1f}", len(inside), errors, f"{errors / max(1, len(inside)):.3%}",
                     sum(p.read_from == "replica" for p in inside),
                     f"{1000 * common.percentile([p.seconds for p in inside], 50):.0f}",
                     f"{1000 * common.percentile([p.seconds for p in inside], 99):.0f}"])
    errors = sum(bool(p.error) for p in outside)
    rows.append(["outside rebalances", "", len(outside), errors, f"{errors / max(1, len(outside)):.3%}",
                 sum(p.read_from == "replica" for p in outside),
                 f"{1000 * common.percentile([p.seconds for p in outside], 50):.0f}",
                 f"{1000 * common.percentile([p.seconds for p in outside], 99):.0f}"])
    kinds = Counter(p.error for p in load.probes if p.error)
    if kinds:
        print(f"errors by kind: {dict(kinds)}", file=sys.stderr)
    return rows


def failover_run(args, standbys: int) -> list:
    dep = common.Deployment(args.bootstrap, partitions=args.partitions)
    dep.update(FAST_FAILOVER, PERSONA_STANDBY_REPLICAS=str(standbys))
    dep.persona("topics")
    dep.persona("load-catalog")
    users = [f"fo-{i}" for i in range(args.users)]
    a, b = common.Worker(dep, "a"), None
    try:
        a.wait_ready(START_WITHIN)
        truth = build_state(dep, users, seed=2)
        wait_state(a, truth, args.partitions)
        b = common.Worker(dep, "b").wait_ready(START_WITHIN)
        probes = [next(u for u in users if owner_partition(u, args.partitions) == p) for p in range(args.partitions)]
        settled([a, b], probes, args.partitions)
        time.sleep(3)  # standbys catch up
        owned = {p for p, u in enumerate(probes) if get(f"{b.url}/users/{u}")[2].get("X-Persona-Served-By") == a.url}
        lost = [u for u in users if owner_partition(u, args.partitions) in owned][:args.sample]
        killed = time.monotonic()
        a.proc.kill()
        a.proc.wait()
        first_correct = as_owner = None
        replica_reads = 0
        while time.monotonic() - killed < SETTLE_WITHIN and as_owner is None:
            answers = [(u, *get(f"{b.url}/users/{u}")) for u in lost]
            ok = all(wrong("users", u, s, body, truth) is None for u, s, body, _ in answers)
            replica_reads += sum(h.get("X-Persona-Read-From") == "replica" for *_, h in answers)
            now = time.monotonic() - killed
            if ok and first_correct is None:
                first_correct = now
            if ok and all(h.get("X-Persona-Read-From") == "owner" for *_, h in answers):
                as_owner = now
            time.sleep(0.1)
        changelog = sum(asyncio.run(common.end_offsets(args.bootstrap, f"bench-{dep.tag}-profiles")).values())
    finally:
        for w in (a, b):
            if w:
                w.stop()
        dep.cleanup()
    fmt = lambda v: f"{v:.1f}" if v is not None else f"> {SETTLE_WITHIN:.0f}"  # noqa: E731
    return [standbys, len(users), changelog, len(lost), fmt(first_correct), fmt(as_owner), replica_reads]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", default=common.DEFAULT_BOOTSTRAP)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--quiet", type=float, default=10.0, help="seconds of steady load between changes")
    parser.add_argument("--sample", type=int, default=100, help="users of the killed worker probed in fail-over")
    parser.add_argument("--skip-rebalance", action="store_true")
    parser.add_argument("--skip-failover", action="store_true")
    args = parser.parse_args()
    common.check_broker(args.bootstrap)
    print(f"machine: {common.machine()}")
    print(f"{args.users} users, {args.partitions} partitions, 10 s session timeout\n")
    if not args.skip_rebalance:
        rows = rebalance_run(args)
        print("GETs during rebalances (standby replicas 1; p50/p99 in ms):\n")
        print(common.table(rows, ["change", "window s", "GETs", "errors", "error rate", "from standby",
                                  "p50", "p99"]))
        print()
    if not args.skip_failover:
        rows = [failover_run(args, 1), failover_run(args, 0)]
        print("Fail-over after kill -9 of the owner of half the users (2 workers; seconds from the kill):\n")
        print(common.table(rows, ["standby replicas", "users", "profiles changelog records", "users probed",
                                  "all answered right", "answered by the new owner", "answers from a standby"]))


if __name__ == "__main__":
    main()
