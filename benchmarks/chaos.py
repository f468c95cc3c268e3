"""Chaos: kill -9 a worker, restart the broker, or lose one node of three, mid-stream; then check
every shopper's counts.

    .venv/bin/python benchmarks/chaos.py --events 50000 --users 2000 --bootstrap 127.0.0.1:39092 \
        [--scenario kill|broker-restart|stall-kill] [--session-timeout 10]
    .venv/bin/python benchmarks/chaos.py --events 50000 --scenario cluster   # scripts/kafka-cluster.sh up

The guarantee under test: at-least-once processing with idempotent per-user state. Every event is
folded into its shopper's profile exactly once (the profile remembers the last DEDUP_WINDOW events
it applied, by event key), so after a crash nothing is lost and nothing is counted twice in ``counts``.

One run, on a deployment of its own (fresh app id and ``bench-chaos-<tag>.*`` topics, 8 partitions):

1. publish the catalog; produce N GA4 events keyed by user id (views, add_to_cart, purchases,
   searches; unique event ids), a few invalid ones (they must go to the DLQ and count nowhere), and
   re-send ~1 % of the valid ones a second time, later in the stream, as genuine duplicates (same
   event_id). The ground truth is the number of distinct event ids per user and event name.
2. start one worker and, while it ingests, disturb it:

   - ``kill``: ``kill -9`` the worker at 40 % of the input (its /health counters plus the group's
     committed offset when it started); start a new worker on the SAME data folder; ``kill -9``
     that one at 70 %; start a third on an EMPTY data folder (everything from the changelog) and
     let it finish.
   - ``broker-restart``: ``scripts/kafka.sh down`` then ``up`` (same PERSONA_KAFKA_PORT and
     PERSONA_KAFKA_DIR) at 40 % while the worker keeps running. Refused unless ``kafka.sh status``
     says that broker is the one this script would restart (never someone else's broker).
   - ``stall-kill``: the worst moment for the changelog. Pause the broker (SIGSTOP, same check)
     at 40 % while the worker goes on with the records it has fetched (its RocksDB writes land,
     its changelog records cannot be sent), ``kill -9`` the worker, resume the broker, and start a
     new worker on the SAME data folder. Step 4 then shows whether the changelog caught up.
   - ``cluster``: on the three-node cluster of ``scripts/kafka-cluster.sh`` (topics with 3
     replicas, min.insync.replicas 2), stop the node that leads the most events partitions at
     40 %; the worker keeps running on the two others until it has handled another 20 % of the
     input; start the node again. Refused unless ``kafka-cluster.sh status`` says all three nodes
     are that script's.

3. wait until the group's committed offsets reach the end of the topics the ingest agent reads
   (events, impressions, control) and the worker's counters stay unchanged for 3 s (the item
   agents' and trainer's topics lag far behind on a small machine; their lag is reported); GET /users/{id} for every shopper and compare
   ``counts`` with the truth: lost (truth minus observed, where positive) and double-counted
   (observed minus truth, where positive), per user and event name.
4. stop the worker (SIGTERM after the broker restart, ``kill -9`` otherwise) and
   start one more on an EMPTY data folder: it must serve exactly the same profiles, rebuilt from
   the changelog alone.

From the moment the first worker is ready, a background thread GETs /users/{random shopper}
(up to 50 a second) from the latest worker started and counts the answers that are not 200:
connection refused while it is dead or starting, 503 while it rebalances, 404 for a shopper not
ingested yet (or, worse, one that was served before), timeouts.

Exit status 1 if anything was lost or double-counted (or the empty-folder worker differs), 2 if the
run itself failed (timeout, worker crash). Details of every discrepancy go to
``.local/bench/chaos-<tag>/report.json``; with ``--keep`` the topics and folders stay for a post-mortem.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

import common
from persona.profile import event_key

DEFAULT_BOOTSTRAP = "127.0.0.1:39092"  # a broker of its own: PERSONA_KAFKA_PORT=39092 scripts/kafka.sh up
DEFAULT_KAFKA_DIR = common.REPO / ".local" / "kafka-chaos"
CLUSTER_BOOTSTRAP = "127.0.0.1:29092,127.0.0.1:29093,127.0.0.1:29094"  # scripts/kafka-cluster.sh's defaults
CLUSTER_KAFKA_DIR = common.REPO / ".local" / "kafka-cluster"
PROCESSED = ("applied", "duplicates", "dead_lettered", "repartitioned")  # /health counters of handled records


# --- input and ground truth ------------------------------------------------------------------

@dataclass
class Input:
    """What is produced, in order, and what the profiles must end up counting."""

    records: list[dict | bytes]  # bytes: an invalid record, sent as it is (keyed by its user)
    keys: list[bytes]
    truth: dict[str, Counter]  # user -> event name -> distinct event ids
    distinct: int
    duplicates: int
    invalid: int
    ids: dict[str, set[str]] = field(default_factory=dict)  # user -> the valid event ids


def make_input(n: int, users: int, items: list[str], *, dup_rate: float = 0.01, search_rate: float = 0.05,
               invalid_rate: float = 0.002, seed: int = 7, prefix: str = "c") -> Input:
    """``n`` distinct valid events of ``users`` shoppers, then duplicates and invalid records mixed in.

    A duplicate is a byte-identical copy of an earlier event (same event_id), inserted at a random
    later position; it lands on the same partition (same key), after the original.
    """
    rng = random.Random(seed)
    events = common.make_events(n, users, items, seed=seed, prefix=prefix)
    terms = ["oud", "vanilla", "rose", "citrus", "musk", "amber", "vetiver"]
    for e in events:  # some views become searches (no items, a search term); chosen by event id, so
        h = int(e["event_id"][:8], 16)  # the truth does not depend on the order of equal timestamps
        if e["event_name"] == "view_item" and h < search_rate * 2**32:
            e["event_name"] = "search"
            e["search_term"] = terms[h % len(terms)]
            del e["items"]
    truth: dict[str, Counter] = defaultdict(Counter)
    ids: dict[str, set[str]] = defaultdict(set)
    for e in events:
        truth[e["user_id"]][e["event_name"]] += 1
        ids[e["user_id"]].add(e["event_id"])
    seq: list[dict | bytes] = list(events)
    dups = rng.sample(range(len(events)), round(dup_rate * len(events)))
    inserts = [(rng.randint(i + 1, len(events)), events[i]) for i in dups]
    invalid = round(invalid_rate * len(events))
    for k in range(invalid):  # things a storefront gets wrong: no items, seconds instead of ms, no id
        e = dict(rng.choice(events), event_id=f"bad-{k}")
        kind = k % 3
        if kind == 0:
            e = {**e, "event_name": "purchase", "items": []}
        elif kind == 1:
            e = {**e, "timestamp": e["timestamp"] // 1000}
        else:
            e = {key: v for key, v in e.items() if key != "event_id"}
        inserts.append((rng.randint(0, len(events)), orjson.dumps(e)))
    for pos, rec in sorted(inserts, key=lambda x: -x[0]):  # from the back, so positions stay valid
        seq.insert(pos, rec)
    keys = [(r["user_id"] if isinstance(r, dict) else orjson.loads(r)["user_id"]).encode() for r in seq]
    return Input(seq, keys, dict(truth), len(events), len(dups), invalid, dict(ids))


async def produce(bootstrap: str, topic: str, inp: Input) -> list[tuple[int, int]]:
    """Produce every record keyed by user (Kafka's default partitioner, acks=all, idempotent).

    Returns (partition, offset) per record, for the post-mortem of a discrepancy.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    try:
        futures = []
        for key, rec in zip(inp.keys, inp.records):
            value = rec if isinstance(rec, bytes) else orjson.dumps(rec)
            futures.append(await producer.send(topic, value=value, key=key))
        await producer.flush()
        return [(m.partition, m.offset) for m in await asyncio.gather(*futures)]
    finally:
        await producer.stop()


DERIVED = ("intent", "stage")  # computed by GET /users at request time (models, clock), not stored


def stored(profile: dict | None) -> dict | None:
    """A profile as the table holds it, without what GET /users derives when asked."""
    return None if profile is None else {k: v for k, v in profile.items() if k not in DERIVED}


def compare(truth: dict[str, Counter], observed: dict[str, dict | None]) -> dict:
    """Lost and double-counted events, per user and event name (a missing profile lost them all)."""
    lost, double, processed = 0, 0, 0
    detail = []
    for user in sorted(set(truth) | set(observed)):
        want = truth.get(user, Counter())
        got = Counter((observed.get(user) or {}).get("counts") or {})
        processed += sum(got.values())
        for name in sorted(set(want) | set(got)):
            diff = got[name] - want[name]
            if diff:
                detail.append({"user": user, "event_name": name, "truth": want[name], "observed": got[name]})
            if diff < 0:
                lost -= diff
            else:
                double += diff
    missing = [u for u in truth if not observed.get(u)]
    return {"lost": lost, "double_counted": double, "processed": processed, "users": len(truth),
            "missing_profiles": len(missing), "detail": detail}


# --- HTTP ------------------------------------------------------------------------------------

def get(url: str, timeout: float = 5) -> tuple[int, dict | None]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, None


def profiles_of(base: str, users: list[str], threads: int = 8) -> dict[str, dict | None]:
    """GET /users/{id} for every user (None for a 404); retried briefly on anything but 200/404."""
    out: dict[str, dict | None] = {}

    def one(user: str) -> None:
        for attempt in range(20):
            try:
                status, body = get(f"{base}/users/{user}")
            except OSError:
                status, body = -1, None
            if status in (200, 404):
                out[user] = body
                return
            time.sleep(0.25)
        raise RuntimeError(f"GET /users/{user}: {status} after 20 attempts")

    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, users))
    return out


class Prober(threading.Thread):
    """GETs /users/{random user} from the current worker, as a storefront would, and tallies answers."""

    def __init__(self, users: list[str], every: float = 0.02):
        super().__init__(daemon=True)
        self.users, self.every = users, every
        self.url: str | None = None  # the current worker; None while none runs
        self.tally: Counter = Counter()
        self.seen: dict[str, int] = {}  # user -> largest event count served so far
        self.stop_flag = threading.Event()

    def run(self) -> None:
        rng = random.Random(1)
        while not self.stop_flag.is_set():
            user, url = rng.choice(self.users), self.url
            if url is None:
                self.tally["no worker process"] += 1  # between a kill and the next start: milliseconds
            else:
                try:
                    status, body = get(f"{url}/users/{user}", timeout=2)
                except (OSError, ValueError) as err:
                    self.tally["timeout" if "timed out" in str(err) else "connection error"] += 1
                else:
                    if status == 200:
                        total = sum((body or {}).get("counts", {}).values())
                        self.tally["200"] += 1
                        if total < self.seen.get(user, 0):
                            self.tally["200 but fewer events than served before"] += 1
                        self.seen[user] = max(total, self.seen.get(user, 0))
                    elif status == 404:
                        self.tally["404 after a 200" if user in self.seen else "404 not ingested yet"] += 1
                    else:
                        self.tally[str(status)] += 1
            time.sleep(self.every)

    def summary(self) -> tuple[int, int, int]:
        """(total GETs, non-200, non-200 that are not 'this shopper has no events yet')."""
        total = sum(v for k, v in self.tally.items() if k != "200 but fewer events than served before")
        non200 = total - self.tally["200"]
        return total, non200, non200 - self.tally["404 not ingested yet"]


# --- Kafka: offsets, the DLQ, the broker -----------------------------------------------------

async def events_committed(bootstrap: str, group: str, topic: str) -> int:
    async with common.OffsetWatcher(bootstrap, group, [topic]) as w:
        return (await w.lag()).get(topic, (0, 0))[0]


async def committed_per_partition(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset of every partition of ``topic`` (0 where none)."""
    async with common.OffsetWatcher(bootstrap, group, [topic]) as w:
        tps = await common.partitions(w.admin, [topic])
        committed = await w.admin.list_consumer_group_offsets(group)
    return {tp.partition: max(committed[tp].offset, 0) if tp in committed else 0 for tp in tps}


async def drained(bootstrap: str, group: str, topics: list[str]) -> tuple[bool, dict]:
    async with common.OffsetWatcher(bootstrap, group, topics) as w:
        lag = await w.lag()
    return bool(lag) and all(c >= e for c, e in lag.values()), lag


async def read_all(bootstrap: str, topic: str) -> list:
    """Every record of a topic, from the beginning to its current end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or
                                                  await _partitions(consumer, topic))]
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        out = []
        while True:
            behind = [tp for tp in tps if await consumer.position(tp) < end[tp]]
            if not behind:
                return out
            for recs in (await consumer.getmany(*behind, timeout_ms=1000)).values():
                out += recs
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()


class Broker:
    """The broker of scripts/kafka.sh on this port and folder: restarted only if that script runs it."""

    def __init__(self, bootstrap: str, kafka_dir: Path):
        self.env = {**os.environ, "PERSONA_KAFKA_PORT": bootstrap.split(":")[-1], "PERSONA_KAFKA_DIR": str(kafka_dir)}

    def _sh(self, cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(common.REPO / "scripts" / "kafka.sh"), cmd], env=self.env, capture_output=True,
                              text=True, timeout=180)

    def ours(self) -> bool:
        return self._sh("status").returncode == 0

    def down(self) -> None:
        r = self._sh("down")
        if r.returncode:
            raise RuntimeError(f"kafka.sh down failed: {r.stderr}")

    def up(self) -> None:
        r = self._sh("up")
        if r.returncode:
            raise RuntimeError(f"kafka.sh up failed: {r.stderr}")

    def pid(self) -> int:
        """The broker's pid, as ``kafka.sh status`` reports it (it checks the process is its own)."""
        r = self._sh("status")
        if r.returncode:
            raise RuntimeError("kafka.sh status: not running")
        return int(r.stdout.split("pid ", 1)[1].split(")", 1)[0])

    def pause(self) -> None:
        os.kill(self.pid(), signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid(), signal.SIGCONT)


class Cluster:
    """The nodes of scripts/kafka-cluster.sh on these ports and folder: stopped only if that script runs them."""

    def __init__(self, bootstrap: str, kafka_dir: Path):
        self.bootstrap = bootstrap
        self.env = {**os.environ, "PERSONA_KAFKA_CLUSTER_PORT": bootstrap.split(",")[0].split(":")[-1],
                    "PERSONA_KAFKA_DIR": str(kafka_dir)}

    def _sh(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(common.REPO / "scripts" / "kafka-cluster.sh"), *args], env=self.env,
                              capture_output=True, text=True, timeout=240)

    def ours(self) -> bool:
        return self._sh("status").returncode == 0

    def stop(self, node: int) -> None:
        r = self._sh("stop", str(node))
        if r.returncode:
            raise RuntimeError(f"kafka-cluster.sh stop {node} failed: {r.stderr}")

    def start(self, node: int) -> None:
        r = self._sh("start", str(node))
        if r.returncode:
            raise RuntimeError(f"kafka-cluster.sh start {node} failed: {r.stderr}")

    async def leaders(self, topic: str) -> dict[int, int]:
        """partition -> the node leading it."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            [described] = await admin.describe_topics([topic])
            return {p["partition"]: p["leader"] for p in described["partitions"]}
        finally:
            await admin.close()


# --- the run ---------------------------------------------------------------------------------

class Run:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.dep = common.Deployment(args.bootstrap, args.partitions, tag=f"chaos-{uuid.uuid4().hex[:8]}")
        self.s = self.dep.settings
        self.group_topics = self.dep.group_topics()
        # What the ingest agent (the one that writes profiles) consumes: drained means these are committed.
        self.ingest_topics = [t for t in (self.s.events_topic, self.s.impressions_topic,
                                          getattr(self.s, "control_topic", None)) if t]
        (self.dep.dir / "data").mkdir(parents=True, exist_ok=True)
        if args.scenario == "cluster":  # every topic, Faust's changelogs too, on all three nodes
            self.dep.update(PERSONA_REPLICATION="3", PERSONA_MIN_INSYNC_REPLICAS="2")
        if args.session_timeout:  # Faust reads these from the environment; default 60 s and 3 s
            self.dep["BROKER_SESSION_TIMEOUT"] = str(args.session_timeout)
            self.dep["BROKER_HEARTBEAT_INTERVAL"] = str(min(3.0, args.session_timeout / 3))
        self.log: list[str] = []
        self.workers: list[common.Worker] = []
        self.recoveries: list[dict] = []
        self.report: dict = {"scenario": args.scenario, "app_id": self.s.app_id, "folder": str(self.dep.dir)}

    def say(self, msg: str) -> None:
        line = f"[{time.monotonic() - self.t0:7.1f} s] {msg}"
        self.log.append(line)
        print(line, flush=True)

    def committed(self) -> int:
        return asyncio.run(events_committed(self.s.bootstrap, self.s.app_id, self.s.events_topic))

    def start_worker(self, name: str) -> common.Worker:
        w = common.Worker(self.dep, name)
        self.workers.append(w)
        w.wait_ready(timeout=self.args.timeout)
        return w

    @staticmethod
    def handled(w: common.Worker) -> int:
        try:
            c = w.counters()
        except (OSError, ValueError, KeyError):
            return -1
        return sum(c[k] for k in PROCESSED)

    def run_until(self, w: common.Worker, target: int, base: int, timeout: float) -> int:
        """Poll the worker until ``base`` + records it handled reaches ``target``; the handled count."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not w.alive():
                raise RuntimeError(f"worker {w.pid} exited:\n{w.tail()}")
            h = self.handled(w)
            if h >= 0 and base + h >= target:
                return h
            time.sleep(0.05)
        raise TimeoutError(f"worker did not reach {target} records in {timeout} s")

    def wait_drained(self, w: common.Worker, timeout: float) -> dict:
        """Until the ingest agent's topics are committed to their end and the counters hold still for 3 s.

        The item-keyed topics (item signals, co-visitation, training) lag far behind on a small
        machine and change no profile: their lag is reported, not waited for.
        """
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            if not w.alive():
                raise RuntimeError(f"worker {w.pid} exited:\n{w.tail()}")
            try:
                done, lag = asyncio.run(drained(self.s.bootstrap, self.s.app_id, self.ingest_topics))
                c = dict(w.counters())
            except Exception as err:  # broker just restarted, worker busy: ask again
                done, lag, c = False, {"error": str(err)}, None
            if not done or c != last:
                last, since = c, time.monotonic()
            elif time.monotonic() - since >= 3:
                return lag
            time.sleep(0.5)
        raise TimeoutError(f"not drained in {timeout} s: lag {lag}")

    def kill(self, w: common.Worker, committed: bool = True) -> tuple[float, int, int]:
        """kill -9; (when, records it had handled, committed events offset right after)."""
        handled = self.handled(w)
        w.proc.kill()  # SIGKILL to this pid only
        t = time.monotonic()
        w.proc.wait()
        self.prober.url = None
        if not committed:  # the broker is paused: ask later
            return t, handled, -1
        per_partition = asyncio.run(committed_per_partition(self.s.bootstrap, self.s.app_id, self.s.events_topic))
        self.report.setdefault("committed_after_kills", []).append(per_partition)
        return t, handled, sum(per_partition.values())

    def restart_after_kill(self, killed_at: float, name: str, label: str) -> tuple[common.Worker, int]:
        base = self.committed()
        w = common.Worker(self.dep, name)
        self.workers.append(w)
        self.prober.url = w.url  # what a client sees while it starts: refused, then 503/404 until ready
        w.wait_ready(timeout=self.args.timeout)
        ready = time.monotonic()
        while self.handled(w) <= 0:
            if not w.alive():
                raise RuntimeError(f"worker exited:\n{w.tail()}")
            time.sleep(0.02)
        resumed = time.monotonic()
        self.recoveries.append({"restart": label, "kill_to_ready_s": round(ready - killed_at, 2),
                                "kill_to_first_event_s": round(resumed - killed_at, 2)})
        self.say(f"{label}: /health ok {ready - killed_at:.1f} s after the kill, first event applied "
                 f"{resumed - killed_at:.1f} s after it (resumed from committed offset {base})")
        return w, base

    def verify(self, w: common.Worker, label: str) -> dict:
        users = sorted(self.inp.truth)
        observed = profiles_of(w.url, users)
        result = compare(self.inp.truth, observed)
        for u, p in observed.items():  # the applied event keys must be of this user's own events, once each
            if p and (len(set(p["applied"])) != len(p["applied"])
                      or not set(p["applied"]) <= {event_key(i) for i in self.inp.ids[u]}):
                result.setdefault("bad_applied_ids", []).append(u)
        self.say(f"{label}: {result['users']} users, processed {result['processed']}, lost {result['lost']}, "
                 f"double-counted {result['double_counted']}, missing profiles {result['missing_profiles']}")
        result["profiles"] = observed
        self.report.setdefault("checks", {})[label] = {k: v for k, v in result.items() if k != "profiles"}
        self.save()
        return result

    def postmortem(self, observed: dict[str, dict | None], label: str,
                   earlier: dict[str, dict | None] | None = None) -> None:
        """Which events are missing, where they were in the input, and whether the changelog has them."""
        inp, s = self.inp, self.s
        where = {}  # event id -> (partition, offset) of its first copy
        for rec, pos in zip(inp.records, self.report["positions"]):
            if isinstance(rec, dict):
                where.setdefault(rec["event_id"], pos)
        missing = {}
        for u in inp.truth:
            applied = set((observed.get(u) or {}).get("applied") or [])
            if ids := sorted(i for i in inp.ids[u] if event_key(i) not in applied):
                missing[u] = ids
        changelog = asyncio.run(read_all(s.bootstrap, f"{s.app_id}-profiles-changelog"))
        history: dict[str, list] = defaultdict(list)
        for r in changelog:
            user = r.key.decode().strip('"') if r.key else None
            if user in missing:
                value = orjson.loads(r.value) if r.value else None
                history[user].append((r.partition, r.offset, set((value or {}).get("applied") or [])))
        kills = self.report.get("committed_after_kills", [])
        out = []
        for u, ids in missing.items():
            for eid in ids:
                part, off = where[eid]
                in_changelog = [o for _, o, applied in history[u] if event_key(eid) in applied]
                served = None if earlier is None else event_key(eid) in ((earlier.get(u) or {}).get("applied") or [])
                out.append({"user": u, "event_id": eid, "partition": part, "offset": off,
                            "committed_after_each_kill": [k.get(part, k.get(str(part))) for k in kills],
                            "changelog_records_of_user": len(history[u]),
                            "changelog_records_with_event": in_changelog, "served_by_final_worker": served})
        self.report.setdefault("postmortem", {})[label] = out
        self.say(f"{label}: {len(out)} events missing; in the changelog: "
                 f"{sum(1 for m in out if m['changelog_records_with_event'])}"
                 + ("" if earlier is None else f"; counted by the final worker: "
                    f"{sum(1 for m in out if m['served_by_final_worker'])}"))
        for m in out[:10]:
            self.say(f"  missing {m['user']} {m['event_id'][:8]} at events {m['partition']}/{m['offset']}; committed "
                     f"offsets of that partition after the kills {m['committed_after_each_kill']}; changelog: "
                     f"{m['changelog_records_of_user']} records of the user, with this event at "
                     f"{m['changelog_records_with_event'] or 'none'}")
        self.save()

    def save(self) -> None:
        (self.dep.dir / "report.json").write_text(json.dumps(self.report, indent=1, default=str))

    def main(self) -> int:
        a, s, dep = self.args, self.s, self.dep
        self.t0 = time.monotonic()
        broker = Broker(a.bootstrap, Path(a.kafka_dir))
        if a.scenario in ("broker-restart", "stall-kill") and not broker.ours():
            sys.exit(f"no broker of scripts/kafka.sh with PERSONA_KAFKA_DIR={a.kafka_dir} on {a.bootstrap}: "
                     f"this script restarts only that one")
        cluster = Cluster(a.bootstrap, Path(a.kafka_dir))
        if a.scenario == "cluster" and not cluster.ours():
            sys.exit(f"no three nodes of scripts/kafka-cluster.sh with PERSONA_KAFKA_DIR={a.kafka_dir} on "
                     f"{a.bootstrap}: this script stops only those")
        self.say(f"machine: {common.machine()}; deployment {s.app_id}; folder {dep.dir}; session timeout "
                 f"{a.session_timeout or 'Faust default (60)'} s")
        dep.persona("topics")
        dep.persona("load-catalog")
        self.inp = inp = make_input(a.events, a.users, common.catalog_ids(), dup_rate=a.duplicates, seed=a.seed)
        total = len(inp.records)
        started = time.perf_counter()
        positions = asyncio.run(produce(s.bootstrap, s.events_topic, inp))
        self.say(f"produced {total} records to {s.events_topic} in {time.perf_counter() - started:.1f} s: "
                 f"{inp.distinct} distinct events, {inp.duplicates} sent twice, {inp.invalid} invalid")
        self.report["positions"] = positions
        self.prober = Prober(sorted(inp.truth))
        t_run = time.monotonic()
        w = self.start_worker("w1")
        self.prober.url = w.url
        self.prober.start()  # from the moment the first worker is ready
        self.say(f"worker 1 (pid {w.pid}) ready")
        timeout = a.timeout
        if a.scenario == "kill":
            base, name = 0, "w1"
            for n, (at, folder) in enumerate(((0.4, "same"), (0.7, "empty")), start=1):
                self.run_until(w, int(at * total), base, timeout)
                t_kill, handled, committed = self.kill(w)
                self.say(f"kill -9 worker {n} (pid {w.pid}) after it handled {handled} records "
                         f"(~{100 * (base + handled) / total:.0f} % of the input); committed events offset "
                         f"{committed}/{total}")
                self.report.setdefault("kills", []).append({"worker": n, "handled": handled, "committed": committed})
                if folder == "empty":
                    name = f"w{n + 1}"
                w, base = self.restart_after_kill(t_kill, name, f"worker {n + 1} on the {folder} data folder ({name})")
        elif a.scenario == "cluster":
            self.run_until(w, int(0.4 * total), 0, timeout)
            leaders = asyncio.run(cluster.leaders(s.events_topic))
            victim = max(set(leaders.values()), key=list(leaders.values()).count)
            committed_down, handled_down = self.committed(), self.handled(w)
            t_down = time.monotonic()
            cluster.stop(victim)
            t_stopped = time.monotonic()
            self.say(f"node {victim} (leader of {list(leaders.values()).count(victim)} of {len(leaders)} events "
                     f"partitions) stopped in {t_stopped - t_down:.1f} s; worker 1 had handled {handled_down} "
                     f"records, committed events offset {committed_down}/{total}")
            self.run_until(w, min(handled_down + int(0.2 * total), total), 0, timeout)
            t_on = time.monotonic()
            handled_while_down, committed_while_down = self.handled(w) - handled_down, self.committed() - committed_down
            new_leaders = asyncio.run(cluster.leaders(s.events_topic))
            self.say(f"with node {victim} down the worker handled {handled_while_down} records and committed "
                     f"{committed_while_down} more events in {t_on - t_stopped:.1f} s; events partition leaders "
                     f"now {sorted(set(new_leaders.values()))}")
            cluster.start(victim)
            t_up = time.monotonic()
            self.say(f"node {victim} up again in {t_up - t_on:.1f} s")
            self.recoveries.append({"restart": f"node {victim} of 3", "stop_s": round(t_stopped - t_down, 2),
                                    "down_s": round(t_up - t_stopped, 2), "handled_while_down": handled_while_down,
                                    "committed_while_down": committed_while_down,
                                    "handled_per_s_while_down": round(handled_while_down / max(t_on - t_stopped, 1e-3), 1)})
        elif a.scenario == "stall-kill":
            self.run_until(w, int(0.4 * total), 0, timeout)
            before = self.handled(w)
            broker.pause()
            try:
                t_pause = time.monotonic()
                while time.monotonic() - t_pause < a.down_seconds:  # it goes on with what it had fetched
                    time.sleep(0.5)
                h = self.handled(w)
                t_kill, handled, _ = self.kill(w, committed=False)
            finally:
                broker.resume()
            per_partition = asyncio.run(committed_per_partition(s.bootstrap, s.app_id, s.events_topic))
            self.report.setdefault("committed_after_kills", []).append(per_partition)
            committed = sum(per_partition.values())
            self.say(f"broker paused (SIGSTOP) after worker 1 handled {before} records; it handled {h - before} more "
                     f"in {a.down_seconds:.0f} s without reaching the broker; kill -9; broker resumed; committed events "
                     f"offset {committed}/{total}")
            self.report.setdefault("kills", []).append({"worker": 1, "handled": handled, "committed": committed,
                                                        "handled_while_broker_paused": h - before})
            w, _ = self.restart_after_kill(t_kill, "w1", "worker 2 on the same data folder (w1)")
        else:
            self.run_until(w, int(0.4 * total), 0, timeout)
            committed_down, handled_down = self.committed(), self.handled(w)
            self.say(f"broker down (worker {w.pid} keeps running); it had handled {handled_down} records, "
                     f"committed events offset {committed_down}/{total}")
            t_down = time.monotonic()
            broker.down()
            t_stopped = time.monotonic()
            time.sleep(a.down_seconds)
            handled_while_down = self.handled(w) - handled_down
            broker.up()
            t_up = time.monotonic()
            self.say(f"broker stopped in {t_stopped - t_down:.1f} s, up again {t_up - t_down:.1f} s after 'down'; "
                     f"meanwhile the worker handled {handled_while_down} records it had already fetched")
            while True:  # the worker must resume on its own: its first offset commit after the restart
                if not w.alive():
                    self.say(f"worker exited after the broker restart:\n{w.tail()}")
                    self.report["worker_died"] = True
                    w, _ = self.restart_after_kill(t_up, "w1", "worker 2 on the same data folder after it died")
                    break
                try:
                    if self.committed() > committed_down:
                        break
                except Exception:  # the broker is still loading its state
                    pass
                if time.monotonic() - t_up > timeout:
                    raise TimeoutError("worker did not commit after the broker restart")
                time.sleep(0.2)
            resumed = time.monotonic()
            self.recoveries.append({"restart": "broker", "down_to_up_s": round(t_up - t_down, 2),
                                    "up_to_first_commit_s": round(resumed - t_up, 2),
                                    "down_to_first_commit_s": round(resumed - t_down, 2),
                                    "handled_while_down": handled_while_down})
            self.say(f"the worker committed again {resumed - t_up:.1f} s after the broker was up "
                     f"({resumed - t_down:.1f} s after 'down')")
        lag = self.wait_drained(w, timeout)
        t_done = time.monotonic()
        behind = {t: e - c for t, (c, e) in asyncio.run(drained(s.bootstrap, s.app_id, self.group_topics))[1].items()
                  if e > c}
        self.report["downstream_lag_when_drained"] = behind
        self.say(f"drained: the ingest agent's topics committed to their end, counters stable "
                 f"({t_done - t_run:.1f} s after worker 1 started); records the item agents and the trainer "
                 f"still had to read then: {behind or 'none'}")
        final = self.verify(w, "final worker")
        if final["lost"] or final["double_counted"]:
            self.postmortem(final["profiles"], "final worker")
        counters = dict(w.counters())
        self.prober.stop_flag.set()
        self.prober.join()

        # The changelog alone: a worker on an empty folder must serve the same profiles.
        how = "SIGTERM" if a.scenario in ("broker-restart", "cluster") else "kill -9"
        if how == "kill -9":
            w.proc.kill()
            w.proc.wait()
        else:
            w.stop()
        t_stop = time.monotonic()
        w2 = self.start_worker(f"fresh-after-{'kill' if how == 'kill -9' else 'term'}")
        self.say(f"after {how} of the final worker, a worker on an empty folder ready in {time.monotonic() - t_stop:.1f} s")
        again = self.verify(w2, "empty-folder worker")
        if again["lost"] or again["double_counted"]:
            self.postmortem(again["profiles"], "empty-folder worker", final["profiles"])
        differ = [u for u in inp.truth if stored(again["profiles"].get(u)) != stored(final["profiles"].get(u))]
        self.report["differences"] = {u: {k: [(final["profiles"].get(u) or {}).get(k), (again["profiles"].get(u) or {}).get(k)]
                                          for k in set(final["profiles"].get(u) or {}) | set(again["profiles"].get(u) or {})
                                          if (final["profiles"].get(u) or {}).get(k) != (again["profiles"].get(u) or {}).get(k)}
                                      for u in differ[:20]}
        self.save()
        self.say(f"empty-folder worker: {len(inp.truth) - len(differ)}/{len(inp.truth)} profiles identical "
                 f"to the final worker's")
        w2.stop()

        dlq = asyncio.run(read_all(s.bootstrap, s.dlq_topic))
        dlq_distinct = len({r.value for r in dlq})
        total_get, non200, errors = self.prober.summary()
        figures = {
            "scenario": a.scenario, "produced": total, "distinct": inp.distinct, "duplicates_sent": inp.duplicates,
            "invalid_sent": inp.invalid, "processed": final["processed"], "lost": final["lost"],
            "double_counted": final["double_counted"], "missing_profiles": final["missing_profiles"],
            "dead_lettered": len(dlq), "dead_lettered_distinct": dlq_distinct, "users_checked": final["users"],
            "recoveries": self.recoveries, "drain_s": round(t_done - t_run, 1),
            "fresh_folder_lost": again["lost"], "fresh_folder_double_counted": again["double_counted"],
            "fresh_folder_profiles_differing": len(differ),
            "gets": total_get, "gets_non200": non200, "gets_non200_excluding_not_yet_ingested": errors,
            "get_tally": dict(self.prober.tally), "final_worker_counters": counters,
        }
        self.report.update(figures=figures, log=self.log, detail=final["detail"][:2000],
                           fresh_detail=again["detail"][:2000], differing_users=differ[:200],
                           bad_applied_ids=final.get("bad_applied_ids", []))
        self.save()
        self.print_figures(figures)
        failed = final["lost"] or final["double_counted"] or again["lost"] or again["double_counted"] or differ
        return 1 if failed else 0

    def print_figures(self, f: dict) -> None:
        rec = "; ".join(", ".join(f"{k} {v}" for k, v in r.items()) for r in f["recoveries"])
        print()
        print(common.table([
            ["scenario", f["scenario"]],
            ["produced (records)", f"{f['produced']}"],
            ["distinct valid events", f"{f['distinct']}"],
            ["duplicates sent (same event_id again)", f"{f['duplicates_sent']}"],
            ["invalid records sent", f"{f['invalid_sent']}"],
            ["processed (sum of profile counts)", f"{f['processed']}"],
            ["lost", f"{f['lost']}"],
            ["double-counted", f"{f['double_counted']}"],
            ["dead-lettered (DLQ records / distinct)", f"{f['dead_lettered']} / {f['dead_lettered_distinct']}"],
            ["users checked", f"{f['users_checked']} ({f['missing_profiles']} without a profile)"],
            ["time to recover", rec],
            ["first worker start to drained", f"{f['drain_s']} s"],
            ["empty-folder worker: lost / double / profiles differing",
             f"{f['fresh_folder_lost']} / {f['fresh_folder_double_counted']} / {f['fresh_folder_profiles_differing']}"],
            ["GET /users error rate (non-200 / total)",
             f"{f['gets_non200']} / {f['gets']} = {100 * f['gets_non200'] / max(f['gets'], 1):.2f} %"],
            ["  excluding 404 of shoppers not ingested yet",
             f"{f['gets_non200_excluding_not_yet_ingested']} / {f['gets']} = "
             f"{100 * f['gets_non200_excluding_not_yet_ingested'] / max(f['gets'], 1):.2f} %"],
        ], ["figure", "value"]))
        print(f"\nGET answers: {f['get_tally']}")
        print(f"details: {self.dep.dir / 'report.json'}")

    def cleanup(self) -> None:
        for w in self.workers:
            if w.alive():
                w.proc.kill()
                w.proc.wait()
        if hasattr(self, "prober"):
            self.prober.stop_flag.set()
        if not self.args.keep:
            try:
                self.dep.cleanup()
            except Exception as err:  # the broker may be gone: say so, do not hide the result
                print(f"cleanup failed: {err}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=50000, help="distinct valid events")
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--bootstrap", default=None,
                    help=f"default {DEFAULT_BOOTSTRAP}; for --scenario cluster, {CLUSTER_BOOTSTRAP}")
    ap.add_argument("--scenario", choices=("kill", "broker-restart", "stall-kill", "cluster"), default="kill")
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--duplicates", type=float, default=0.01, help="share of events sent a second time")
    ap.add_argument("--down-seconds", type=float, default=5.0,
                    help="broker-restart: how long the broker stays down; stall-kill: how long it is paused")
    ap.add_argument("--session-timeout", type=float, default=None, metavar="SECONDS",
                    help="the workers' Kafka session timeout (BROKER_SESSION_TIMEOUT; Faust's default is 60 s): "
                         "how long the group waits before it gives a killed worker's partitions away")
    ap.add_argument("--kafka-dir", default=os.environ.get("PERSONA_KAFKA_DIR"),
                    help=f"default {DEFAULT_KAFKA_DIR}; for --scenario cluster, {CLUSTER_KAFKA_DIR}")
    ap.add_argument("--timeout", type=float, default=300, help="seconds allowed to each phase")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the topics and worker folders")
    args = ap.parse_args()
    cluster = args.scenario == "cluster"
    args.bootstrap = args.bootstrap or (CLUSTER_BOOTSTRAP if cluster else DEFAULT_BOOTSTRAP)
    args.kafka_dir = args.kafka_dir or str(CLUSTER_KAFKA_DIR if cluster else DEFAULT_KAFKA_DIR)
    common.check_broker(args.bootstrap)
    run = Run(args)
    try:
        code = run.main()
    except (RuntimeError, TimeoutError) as err:
        print(f"run failed: {err}", file=sys.stderr)
        code = 2
    finally:
        run.cleanup()
    sys.exit(code)


if __name__ == "__main__":
    main()
