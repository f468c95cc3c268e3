"""Scale of state: recovery time after kill -9, bytes per user, worker memory, for N synthetic users.

    .venv/bin/python benchmarks/state.py --users 100000 --bootstrap 127.0.0.1:19092 [--profile 60]
    .venv/bin/python benchmarks/state.py --users 1000000 --distinct 10000 --timeout 420 --profile 30

Goals: 1M users recovered in <= 30 s, <= 1 KiB per user.

1. Synthesises ``--users`` shoppers with 5 to 15 GA4 events each (sessions of views, some
   add_to_cart and purchases, catalog items with a popularity skew, uuid event ids), folds each
   user's events with persona's own core (``persona.pipeline.process`` on a ``Profile``; folding
   costs ~1 ms per user, so beyond ``--distinct`` users the profiles are copies of folded ones
   under their own user id, session id and event ids), and
   writes every profile as a worker's flush would into the ``profiles`` table's changelog
   (``<app id>-profiles-changelog``, compacted): key and value JSON as Faust's json codec writes
   them (orjson), in the partition of the user's events (murmur2 of the user id). The topics and
   the catalog are set up first with ``persona topics`` and ``persona load-catalog``.
2. Starts ``persona worker`` on an empty data folder (what a worker does after kill -9: without
   its clean-stop mark it drops its local tables and restores them from the changelogs) and
   measures the time from launch to ``/health/ready`` 200, the end of the bulk copy of the tables
   (``persona.agents.restore``'s log line) and Faust's own restore of what is left (from its log
   line "Restoring state from changelog topics" to "Done reading from changelog topics"), with
   the CPU seconds the worker used. Then: changelog bytes per user (payload, and the broker's log
   segments on disk when ``--kafka-logs`` is readable), RocksDB bytes per user on disk, the
   worker's resident memory (VmRSS, VmHWM peak) with the full catalog and every profile loaded,
   and a spot check that ``GET /users/{id}`` returns the synthesised profile for random users.
3. kill -9 of the recovered worker and a restart on the SAME folder: time to ready again (a full
   restore: the clean-stop mark is missing). Then a clean stop (SIGTERM) and restart on the same
   folder, which keeps its local tables, for comparison.

``--profile S`` attaches py-spy (100 Hz, threads holding the GIL) to the first recovering worker
for S seconds and prints where its main thread's time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import re
import shutil
import signal
import time
import urllib.error
import uuid
from datetime import datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

import common
from persona.agents.ingest import owner_partition
from persona.catalog import default_catalog_path, read_catalog
from persona.events import Event
from persona.pipeline import process
from persona.profile import Profile

SPOT_CHECKS = 25
RESTORE_FOCUS = ("Recovery._slurp_changelogs (faust/tables/recovery.py)", "Fetcher._fetcher (faust/transport/consumer.py)")
COMPARED = ("recent", "session", "counts", "cart", "purchased", "first_seen", "last_seen", "applied")


def synthetic_profiles(users: int, seed: int = 0, end: float | None = None, span: float = 7 * 86400.0):
    """(user id, profile dict, events) for ``users`` shoppers, folded with persona's pipeline."""
    rng = random.Random(seed)
    products = {p.item_id: p for p in read_catalog(default_catalog_path())}
    pick = common.popularity_skew(common.catalog_ids())
    end = time.time() if end is None else end
    for u in range(users):
        user, profile = f"u-{u}", Profile(f"u-{u}")
        for e in common.shopper_events(rng, user, rng.randint(5, 15), pick, end, span):
            process(profile, Event.model_validate(e), products)
        yield user, profile.to_dict()


def many_profiles(users: int, distinct: int, seed: int = 0):
    """``users`` profiles: ``distinct`` folded by :func:`synthetic_profiles`, the others copies of
    them under their own user id, session id and fresh event ids (folding costs ~1 ms per user).

    >>> [(u, p["session"]["id"], len(p["applied"])) for u, p in many_profiles(3, 2)][2][:2]
    ('u-2', 's-u-2-1')
    """
    rng, pool = random.Random(seed + 1), []
    for user, profile in synthetic_profiles(min(users, distinct), seed):
        pool.append(profile)
        yield user, profile
    for u in range(len(pool), users):
        base, user = pool[u % len(pool)], f"u-{u}"
        session = dict(base["session"], id=base["session"]["id"].replace(base["user_id"], user, 1))
        copy = Profile.from_dict({**base, "user_id": user, "session": session, "applied": []})
        for _ in base.get("applied", ()):
            copy.remember(uuid.UUID(int=rng.getrandbits(128)).hex)
        yield user, copy.to_dict()


def changelog_record(user: str, profile: dict, partitions: int) -> tuple[bytes, bytes, int]:
    """Key, value and partition of a profile as a worker writes it to the table's changelog.

    >>> changelog_record("u-1", {"user_id": "u-1"}, 8)
    (b'"u-1"', b'{"user_id":"u-1"}', 7)
    """
    return (orjson.dumps(user), orjson.dumps(profile, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z),
            owner_partition(user, partitions))


async def write_profiles(bootstrap: str, topic: str, users: int, distinct: int, partitions: int,
                         sample: set[str]) -> dict:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, max_batch_size=1024 * 1024, acks=1,
                                max_request_size=8 * 1024 * 1024, request_timeout_ms=300_000)  # a busy broker
    await producer.start()
    out = {"payload": 0, "key": 0, "expected": {}, "fields": {}}
    started, last = time.perf_counter(), time.perf_counter()
    try:
        pending = []
        for n, (user, profile) in enumerate(many_profiles(users, distinct), 1):
            key, value, partition = changelog_record(user, profile, partitions)
            out["payload"] += len(key) + len(value)
            out["key"] += len(key)
            if n <= 2000:  # what each field costs, from the first profiles
                for name, v in profile.items():
                    out["fields"][name] = out["fields"].get(name, 0) + len(orjson.dumps(v)) + len(name) + 4
            if user in sample:
                out["expected"][user] = profile
            pending.append(await producer.send(topic, value=value, key=key, partition=partition))
            if len(pending) >= 20000:
                await asyncio.gather(*pending)
                pending.clear()
            if time.perf_counter() - last > 30:
                last = time.perf_counter()
                print(f"  ... {n} profiles written in {last - started:.0f} s", flush=True)
        await producer.flush()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    out["fields"] = {k: v / min(users, 2000) for k, v in sorted(out["fields"].items(), key=lambda kv: -kv[1])}
    return out


async def bulk_restore(bootstrap: str, topic: str, partitions: int, folder: Path) -> dict:
    """The worker's bulk copy (:func:`persona.agents.restore.copy_changelog`) outside any worker: one
    aiokafka consumer reads the changelog into one RocksDB per partition, a write batch per fetch."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from rocksdict import Options, Rdict

    from persona.agents.restore import OFFSET_KEY, copy_changelog

    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
    await consumer.start()
    dbs = {tp: Rdict(str(folder / f"profiles-{tp.partition}.db"), options=Options(raw_mode=True)) for tp in tps}
    try:
        begin, end = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
        started, cpu = time.perf_counter(), time.process_time()
        n = await copy_changelog(consumer, {tp: (dbs[tp], begin[tp]) for tp in tps}, end, OFFSET_KEY)
        return {"records": n, "seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu}
    finally:
        await consumer.stop()
        for db in dbs.values():
            db.close()


def dir_bytes(paths) -> int:
    return sum(f.stat().st_size for p in paths for f in Path(p).rglob("*") if f.is_file())


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    return {k: int(re.search(rf"^{k}:\s+(\d+) kB", status, re.M).group(1)) * 1024 for k in ("VmRSS", "VmHWM")}


def ready(worker: common.Worker) -> bool:
    try:
        with urllib.request.urlopen(worker.url + "/health/ready", timeout=5) as resp:
            return resp.status == 200
    except (OSError, urllib.error.HTTPError):
        return False


MARKS = {"start": r"\[\^Worker\]: Starting", "joined": r"Joined group", "bulk copied": r"bulk restore: \d+ changelog",
         "restore": r"Restoring state from changelog topics",
         "restored": r"Done reading from changelog topics", "faust ready": r"\[\^---Recovery\]: Worker ready"}


def start_until_ready(dep: common.Deployment, timeout: float, profile_seconds: float = 0,
                      port: int | None = None) -> tuple[common.Worker, dict]:
    """A worker on ``dep``'s folder ``w1``: seconds from launch to ready (absent if not ready within
    ``timeout``), CPU used, when (seconds after launch) its log shows the start of Faust, the group
    join, the restore and its end, the worker's CPU seconds during the restore and the machine's load.
    ``profile_seconds``: py-spy the worker for that long from the start of the restore."""
    log = dep.dir / "w1.log"
    offset = log.stat().st_size if log.exists() else 0
    launched, launched_wall = time.perf_counter(), time.time()
    worker = common.Worker(dep, port=port)  # a restart comes back at the same address
    load = common.MachineLoad().start()
    out: dict = {"spy": None}

    def seen(pattern: str) -> float | None:
        m = re.search(r"^\[([\d\- :,]+)\] \[\d+\] \[\w+\] .*" + pattern, text, re.M)
        return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() - launched_wall if m else None

    while time.perf_counter() < launched + timeout:
        if not worker.alive():
            raise RuntimeError(f"worker exited:\n{worker.tail()}")
        text = log.read_bytes()[offset:].decode(errors="replace")
        if "restore_cpu" not in out and seen(MARKS["restore"]) is not None:
            out["restore_cpu"] = common.cpu_seconds(worker.pid)
            if profile_seconds:
                out["spy"] = common.profile(worker.pid, profile_seconds, dep.dir / "recovery.collapsed")
        if "restored_cpu" not in out and seen(MARKS["restored"]) is not None:
            out["restored_cpu"] = common.cpu_seconds(worker.pid)
        if ready(worker):
            out["ready"] = time.perf_counter() - launched
            break
        time.sleep(0.1)
    out.update(cpu=common.cpu_seconds(worker.pid), machine_busy=load.stop())
    text = log.read_bytes()[offset:].decode(errors="replace")
    for name, pattern in MARKS.items():
        if (t := seen(pattern)) is not None:
            out[name] = t
    if "restore" in out and "restored" in out:
        out["restore_seconds"] = out["restored"] - out["restore"]
    if "ready" not in out:  # how far the restore got, from Faust's progress lines
        left = re.findall(r"^\[([\d\- :,]+)\] .*total remaining=(\d+)", text, re.M)
        if left:
            out["remaining"] = int(left[-1][1])
            out["remaining_at"] = datetime.strptime(left[-1][0], "%Y-%m-%d %H:%M:%S,%f").timestamp() - launched_wall
    return worker, out


def describe(r: dict, records: int) -> str:
    """One worker start in words: ready or not, Faust's restore, CPU, machine load, timeline."""
    if "ready" in r:
        head = f"ready {r['ready']:.1f} s after launch"
    else:
        head = "NOT ready in time"
        if "remaining" in r and "restore" in r:
            done, took = records - r["remaining"], r["remaining_at"] - r["restore"]
            head += (f"; {done} of {records} records restored {took:.0f} s into the restore "
                     f"({done / max(took, 1e-9):.0f} records/s)")
    if "restore_seconds" in r:
        head += f"; Faust restore {r['restore_seconds']:.1f} s ({records / max(r['restore_seconds'], 1e-9):.0f} records/s"
        if "restored_cpu" in r:
            cpu = r["restored_cpu"] - r["restore_cpu"]
            head += f", {cpu:.1f} worker CPU s, {1e6 * cpu / records:.0f} CPU us per record"
        head += ")"
    return (f"{head}; worker CPU {r['cpu']:.1f} s since launch; machine CPU busy {100 * r['machine_busy']:.0f} %\n"
            f"    timeline, s after launch: {timeline(r)}")


def timeline(r: dict) -> str:
    return ", ".join(f"{k} {r[k]:.1f}" for k in (*MARKS, "ready") if k in r)


def spot_check(worker: common.Worker, expected: dict[str, dict]) -> tuple[int, list[str]]:
    """Users whose GET /users/{id} matches the synthesised profile; the first mismatches."""
    good, bad = 0, []
    for user, profile in expected.items():
        try:
            got = worker.get(f"/users/{user}", timeout=10)
        except OSError as err:
            bad.append(f"{user}: {err}")
            continue
        want = dataclasses.asdict(Profile.from_dict(profile))  # the dict form leaves empty fields out
        diff = [k for k in COMPARED if orjson.loads(orjson.dumps(got.get(k))) != orjson.loads(orjson.dumps(want[k]))]
        if diff:
            bad.append(f"{user}: {', '.join(diff)} differ")
        else:
            good += 1
    return good, bad[:5]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--bootstrap", default=common.DEFAULT_BOOTSTRAP)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--distinct", type=int, default=20_000,
                    help="profiles folded from events; the other users are copies under their own ids")
    ap.add_argument("--kafka-logs", default=None,
                    help="the broker's log.dirs, for bytes on disk (default .local/kafka-*/data-<port>)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds allowed to each recovery")
    ap.add_argument("--profile", type=float, default=0, metavar="SECONDS", help="py-spy the first recovery")
    ap.add_argument("--keep", action="store_true", help="keep the topics and worker data")
    ap.add_argument("--instance-id", default="", help="PERSONA_INSTANCE_ID of the worker (static group membership)")
    args = ap.parse_args()
    n = args.users
    common.check_broker(args.bootstrap)
    dep = common.Deployment(args.bootstrap, args.partitions, tag=f"state-{uuid.uuid4().hex[:8]}")
    if args.instance_id:
        dep["PERSONA_INSTANCE_ID"] = args.instance_id
    s = dep.settings
    changelog = f"{s.app_id}-profiles-changelog"
    print(f"machine: {common.machine()}; deployment {s.app_id}; folder {dep.dir}")
    workers: list[common.Worker] = []
    try:
        dep.persona("topics")
        dep.persona("load-catalog")
        sample = set(random.Random(1).sample([f"u-{u}" for u in range(n)], min(SPOT_CHECKS, n)))
        started, cpu = time.perf_counter(), time.process_time()
        written = asyncio.run(write_profiles(s.bootstrap, changelog, n, args.distinct, args.partitions, sample))
        print(f"synthesised and wrote {n} profiles ({min(n, args.distinct)} folded from 5-15 events each with "
              f"persona.pipeline.process, the others copies under their own ids) to "
              f"{changelog} in {time.perf_counter() - started:.0f} s ({time.process_time() - cpu:.0f} CPU s here)")
        per_user = written["payload"] / n
        print(f"changelog payload: {per_user:.0f} bytes per user (key {written['key'] / n:.0f} + JSON value); "
              f"by field (first profiles): " + ", ".join(f"{k} {v:.0f}" for k, v in written["fields"].items()))
        port = args.bootstrap.split(",")[0].rsplit(":", 1)[1]
        logs = Path(args.kafka_logs) if args.kafka_logs else next(
            iter(sorted(common.REPO.glob(f".local/kafka*/data-{port}"))), None)
        on_broker = None
        if logs and logs.is_dir():
            on_broker = sum(f.stat().st_size for f in logs.glob(f"{changelog}-*/*.log"))
            print(f"changelog on the broker's disk ({logs}): {on_broker / n:.0f} bytes per user "
                  f"({on_broker / 2**20:.0f} MiB of log segments, uncompressed, before any compaction)")

        print(f"\n(0) the bulk copy outside a worker: the changelog read with one aiokafka consumer into RocksDB batches")
        bulk_dir = dep.dir / "bulk"
        bulk_dir.mkdir(exist_ok=True)
        bulk = asyncio.run(bulk_restore(s.bootstrap, changelog, args.partitions, bulk_dir))
        bulk_rocks = dir_bytes([bulk_dir])
        shutil.rmtree(bulk_dir, ignore_errors=True)
        print(f"    {bulk['records']} records in {bulk['seconds']:.1f} s ({bulk['records'] / bulk['seconds']:.0f}/s), "
              f"{bulk['cpu']:.1f} CPU s ({1e6 * bulk['cpu'] / bulk['records']:.0f} CPU us per record); "
              f"RocksDB {bulk_rocks / n:.0f} bytes per user")

        print(f"\n(1) worker on an empty folder (as after kill -9: local tables dropped), {n} profiles to restore")
        worker, first = start_until_ready(dep, args.timeout, args.profile)
        workers.append(worker)
        tables = dep.dir / "data" / "w1" / "v1" / "tables"
        mem = memory(worker.pid)
        rocks = dir_bytes(p for p in tables.glob("profiles-*.db"))
        print(f"    {describe(first, n)}")
        print(f"    RocksDB profiles: {rocks / n:.0f} bytes per user on disk ({rocks / 2**20:.0f} MiB)")
        print(f"    worker memory: RSS {mem['VmRSS'] / 2**20:.0f} MiB, peak {mem['VmHWM'] / 2**20:.0f} MiB "
              f"(full catalog, {n} profiles{'' if 'ready' in first else ' (restore unfinished)'})")
        if first["spy"]:
            first["spy"].proc.wait(args.profile + 60)
        again = clean = None
        if "ready" in first:
            good, bad = spot_check(worker, written["expected"])
            print(f"    GET /users/{{id}}: {good} of {len(written['expected'])} random users return their synthesised "
                  f"profile" + (f"; {bad}" if bad else ""))
            worker.proc.send_signal(signal.SIGKILL)
            worker.proc.wait()
            print("\n(2) kill -9, restart on the same folder (no clean-stop mark: full restore)")
            worker, again = start_until_ready(dep, args.timeout, port=worker.port)
            workers.append(worker)
            print(f"    {describe(again, n)}")
            if "ready" in again:
                good2, _ = spot_check(worker, written["expected"])
                print(f"    {good2} of {len(written['expected'])} spot checks pass")
                worker.stop(timeout=120)
                print("\n(3) clean stop (SIGTERM), restart on the same folder (local tables kept)")
                worker, clean = start_until_ready(dep, args.timeout, port=worker.port)
                workers.append(worker)
                print(f"    {describe(clean, n)}; RSS {memory(worker.pid)['VmRSS'] / 2**20:.0f} MiB")
        worker.stop(timeout=120)

        print()
        rows = [["changelog payload per user", f"{per_user:.0f} B", "<= 1024 B", "met" if per_user <= 1024 else "NOT met"]]
        if on_broker is not None:
            rows.append(["changelog log segments on the broker per user", f"{on_broker / n:.0f} B", "", ""])
        rows.append(["RocksDB per user after the restore", f"{rocks / n:.0f} B", "<= 1024 B",
                     "met" if rocks / n <= 1024 else "NOT met"])
        for label, r in (("empty folder", first), ("kill -9", again), ("clean stop", clean)):
            if r is not None:
                rows.append([f"{label}: launch to /health/ready, {n} users",
                             f"{r['ready']:.1f} s" if "ready" in r else "not ready", "<= 30 s for 1M" if label != "clean stop" else "",
                             f"restore {r['restore_seconds']:.1f} s" if "restore_seconds" in r else ""])
        rows += [["bulk copy outside a worker (aiokafka + RocksDB batches)", f"{bulk['seconds']:.1f} s", "",
                  f"{1e6 * bulk['cpu'] / n:.0f} CPU us per record"],
                 ["worker RSS after the restore", f"{mem['VmRSS'] / 2**20:.0f} MiB", "", ""]]
        print(common.table(rows, ["figure", "value", "goal", "note"]))
        if args.profile and (dep.dir / "recovery.collapsed").exists():
            print(f"\npy-spy, {args.profile:.0f} s of the first restore ({dep.dir / 'recovery.collapsed'}):")
            print(common.hot_spots(dep.dir / "recovery.collapsed", focus=RESTORE_FOCUS))
        strip = lambda r: r and {k: v for k, v in r.items() if k != "spy"}  # noqa: E731
        print(json.dumps({"users": n, "payload_per_user": per_user, "broker_per_user": on_broker and on_broker / n,
                          "rocksdb_per_user": rocks / n, "bulk": bulk, "first": strip(first), "after_kill": strip(again),
                          "after_clean_stop": strip(clean), "memory": mem}))
    finally:
        for w in workers:
            w.stop()
        if not args.keep:
            dep.cleanup()


if __name__ == "__main__":
    main()
