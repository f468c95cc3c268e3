"""Ingest throughput: raw aiokafka consumer vs a Faust no-op agent vs a full persona worker.

    .venv/bin/python benchmarks/ingest.py --events 50000 --bootstrap 127.0.0.1:19092 [--profile 20] [--scale 2]

Produces N GA4 events (~200 bytes, ~N/20 shoppers, catalog items) once into a fresh 8-partition
topic, then consumes that same data three times, one after the other (never concurrently):

(a) raw: one aiokafka consumer (no group) in this process that only decodes values with orjson;
(b) no-op: a separate Faust app (benchmarks/noop_app.py, fresh app id) whose agent only iterates
    ``stream.events()``: first to last event, as the agent timestamps them;
(d) logic: persona's own per-event code (parse_event, profile round trip, process, JSON encoding of
    what it writes) in this process, without Kafka or Faust;
(c) persona: ``persona worker`` with a fresh app id whose PERSONA_EVENTS_TOPIC is that topic, the
    catalog published first. "applied" is first to last event applied (the worker's /health
    counters, polled at 10 Hz); "drained" is until the group's committed offsets reach the end of
    every topic it consumes in its group (events, and the item-keyed and training topics the
    ingest agent feeds), checked at 4 Hz; Faust commits every 2.8 s, so this is late by up to that.
    The worker gets at most ``--window`` seconds from its first applied event: its rate is then
    measured over the events applied in that window.

Besides wall-clock rates it reports the CPU seconds each consumer process used over its interval
(all threads) and events per CPU second: on a shared machine the wall-clock rates depend on what
else runs, the CPU cost per event much less. The machine's overall CPU use is printed per phase.

``--profile S`` attaches py-spy (non-blocking, 100 Hz) to the persona worker for S seconds once it
is ingesting and prints where the main thread's time goes; ``--traced`` runs the worker with
benchmarks/traced_worker.py (agent body vs. waiting, event-loop lag) instead of ``persona worker``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections import Counter
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

import common


async def raw_consume(bootstrap: str, topic: str, n: int) -> dict:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        while not consumer.assignment():
            await asyncio.sleep(0.01)
        seen, started, cpu = 0, time.perf_counter(), time.process_time()
        while seen < n:
            for recs in (await consumer.getmany(timeout_ms=1000)).values():
                for rec in recs:
                    orjson.loads(rec.value)
                seen += len(recs)
        return {"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu, "events": seen}
    finally:
        await consumer.stop()


def logic_only(values: list[bytes]) -> dict:
    """persona's own per-event work without Kafka or Faust: validate, fold into the profile (kept
    as a dict, as the table does), compute the effects, and JSON-encode everything the agent writes."""
    from persona.catalog import default_catalog_path, read_catalog
    from persona.events import parse_event
    from persona.pipeline import process
    from persona.profile import Profile

    catalog = {p.item_id: p for p in read_catalog(default_catalog_path())}
    store: dict[str, dict] = {}
    started, cpu, records = time.perf_counter(), time.process_time(), 0
    for raw in values:
        e = parse_event(raw)
        stored = store.get(e.user_id)
        profile = Profile.from_dict(stored) if stored else Profile(e.user_id)
        fx = process(profile, e, catalog)
        store[e.user_id] = d = profile.to_dict()
        orjson.dumps(d)
        for part in (fx.item_signals, fx.covisit, getattr(fx, "feedback", ()), fx.examples):
            for r in part:
                orjson.dumps(r)
                records += 1
    return {"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu, "events": len(values),
            "records": records}


def run_noop(dep: common.Deployment, topic: str, n: int, timeout: float) -> dict:
    result = dep.dir / "noop.json"
    launched = time.time()
    proc = common.start_noop(dep, [topic], events=n)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.alive():
            if result.exists() and result.stat().st_size:
                time.sleep(0.05)
                r = json.loads(result.read_text())
                return {**r, "seconds": r["last"] - r["first"], "launched": launched}
            time.sleep(0.05)
        raise TimeoutError(f"no-op app did not see {n} events in {timeout} s:\n{proc.tail()}")
    finally:
        proc.stop()


class Workers:
    """Several workers of one deployment seen as one: counters and CPU seconds summed."""

    def __init__(self, workers: list[common.Worker]):
        self.workers, self.pid = workers, workers[0].pid

    def alive(self) -> bool:
        return all(w.alive() for w in self.workers)

    def tail(self) -> str:
        return "\n".join(w.tail() for w in self.workers)

    def counters(self):
        return sum((w.counters() for w in self.workers), Counter())

    def all_applying(self) -> bool:
        """Every worker has applied events: the group has settled (a rate from then on is a steady one)."""
        return len(self.workers) == 1 or all(w.counters()["applied"] for w in self.workers)

    def cpu(self) -> float:
        return sum(common.cpu_seconds(w.pid) for w in self.workers)

    def stop(self) -> None:
        for w in self.workers:
            w.stop()


def run_persona(dep: common.Deployment, n: int, window: float, profile_seconds: float, traced: bool,
                workers: int = 1) -> dict:
    s = dep.settings
    launched = time.time()
    worker = Workers([common.Worker(dep, name=f"w{i + 1}", traced=traced) for i in range(workers)])
    out: dict = {"launched": launched, "pid": worker.pid}
    spy = None

    async def watch() -> None:
        nonlocal spy
        async with common.OffsetWatcher(s.bootstrap, s.app_id, dep.group_topics()) as offsets:
            deadline, next_offsets = time.monotonic() + window + 90, 0.0  # + start-up
            while time.monotonic() < deadline:
                if not worker.alive():
                    raise RuntimeError(f"worker exited:\n{worker.tail()}")
                now = time.time()
                try:
                    c = worker.counters()
                except (OSError, ValueError, KeyError):
                    c = None
                if c is not None:
                    done = c["applied"] + c["duplicates"] + c["dead_lettered"] + c["repartitioned"]
                    if done and "first" not in out and worker.all_applying():
                        out.update(first=now, first_count=done, first_cpu=worker.cpu())
                        if profile_seconds:
                            spy = common.profile(worker.pid, profile_seconds, dep.dir / "persona.collapsed")
                    if "first" in out and "ingested" not in out and (done >= n or now - out["first"] >= window):
                        out.update(ingested=now, ingested_cpu=worker.cpu(), counters=dict(c),
                                   ingested_count=done)
                        out["lag_at_ingested"] = await offsets.lag()
                        if done < n:  # window over: no drain measure
                            return
                if "ingested" in out and time.monotonic() >= next_offsets:
                    if time.time() - out["first"] > window + 30:
                        return
                    next_offsets = time.monotonic() + 0.25
                    lag = await offsets.lag()
                    if all(committed >= end for committed, end in lag.values()):
                        out.update(drained=time.time(), drained_cpu=worker.cpu(), lag=lag)
                        return
                await asyncio.sleep(0.1)
            out["timeout"] = True
            out["counters"] = dict(worker.counters())

    try:
        asyncio.run(watch())
        if spy:
            spy.proc.wait(profile_seconds + 30)
    finally:
        worker.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=50000)
    ap.add_argument("--users", type=int, default=None, help="shoppers (default: events / 20)")
    ap.add_argument("--bootstrap", default=common.DEFAULT_BOOTSTRAP)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=120, help="seconds allowed to the no-op consumer")
    ap.add_argument("--window", type=float, default=100,
                    help="at most this many seconds of persona ingesting, from its first applied event")
    ap.add_argument("--profile", type=float, default=0, metavar="SECONDS", help="py-spy the persona worker")
    ap.add_argument("--traced", action="store_true", help="run benchmarks/traced_worker.py as the persona worker")
    ap.add_argument("--skip-baselines", action="store_true", help="only the persona worker (for profiling)")
    ap.add_argument("--scale", type=int, nargs="*", default=[], metavar="WORKERS",
                    help="then run that many workers (each count a fresh app id on the same events) and "
                         "compare their rate with one worker's")
    ap.add_argument("--keep", action="store_true", help="keep the topics and worker data")
    ap.add_argument("--save-rate", metavar="FILE", help="write the worker's applied events/s there (JSON)")
    args = ap.parse_args()
    n = args.events
    common.check_broker(args.bootstrap)
    dep = common.Deployment(args.bootstrap, args.partitions)
    s = dep.settings
    print(f"machine: {common.machine()}; deployment {s.app_id}; folder {dep.dir}")
    try:
        dep.persona("topics")
        dep.persona("load-catalog")
        recs = common.records(common.make_events(n, args.users or max(1, n // 20), common.catalog_ids()))
        size = sum(len(v) for _, v in recs) / len(recs)
        started = time.perf_counter()
        asyncio.run(common.produce(s.bootstrap, s.events_topic, recs))
        took = time.perf_counter() - started
        print(f"produced {n} events ({size:.0f} bytes on average, {len({k for k, _ in recs})} users) to "
              f"{s.events_topic} ({args.partitions} partitions) in {took:.1f} s")

        rows, load = {}, {}
        if not args.skip_baselines:
            m = common.MachineLoad().start()
            rows["raw"] = asyncio.run(raw_consume(s.bootstrap, s.events_topic, n))
            load["raw"] = m.stop()
            print(f"(a) raw aiokafka + orjson: {n} events in {rows['raw']['seconds']:.2f} s")
            m = common.MachineLoad().start()
            noop = rows["noop"] = run_noop(dep, s.events_topic, n, args.timeout)
            load["noop"] = m.stop()
            print(f"(b) Faust no-op: {n} events in {noop['seconds']:.2f} s (first event "
                  f"{noop['first'] - noop['launched']:.1f} s after launch)")
            m = common.MachineLoad().start()
            rows["logic"] = logic_only([v for _, v in recs])
            load["logic"] = m.stop()
            print(f"(d) persona's logic alone: {n} events in {rows['logic']['seconds']:.2f} s "
                  f"({rows['logic']['records'] / n:.2f} records to send per event)")
        m = common.MachineLoad().start()
        p = run_persona(dep, n, args.window, args.profile, args.traced)
        load["applied"] = load["drained"] = m.stop()
        if "ingested" not in p:
            print(f"(c) persona: no events applied in time; counters {p.get('counters')}")
            return
        k = p["ingested_count"] - p["first_count"]  # events applied after the first observation
        rows["applied"] = {"seconds": p["ingested"] - p["first"], "cpu": p["ingested_cpu"] - p["first_cpu"], "events": k}
        if "drained" in p:
            rows["drained"] = {"seconds": p["drained"] - p["first"], "cpu": p["drained_cpu"] - p["first_cpu"],
                               "events": k}
        print(f"(c) persona: first event applied {p['first'] - p['launched']:.1f} s after launch; "
              f"{p['ingested_count']} of {n} applied {rows['applied']['seconds']:.2f} s later"
              + (f"; offsets committed at the end of every topic after {rows['drained']['seconds']:.2f} s"
                 if "drained" in rows else f" (window of {args.window:.0f} s over: not all applied, no drain figure)"))
        print(f"    consumer-group lag then (committed/end): {p['lag_at_ingested']}")
        print(f"    counters: {p['counters']}")

        names = {"raw": "(a) raw aiokafka consumer + orjson.loads", "noop": "(b) Faust no-op agent (stream.events())",
                 "logic": "(d) persona logic alone, no Kafka/Faust", "applied": "(c) persona worker: events applied",
                 "drained": "(c) persona worker: all topics committed"}
        table = []
        for key, r in rows.items():
            rate, per_cpu = r["events"] / r["seconds"], r["events"] / r["cpu"] if r["cpu"] else float("inf")
            r.update(rate=rate, per_cpu=per_cpu)
            table.append([names[key], f"{r['seconds']:.2f}", f"{rate:,.0f}", f"{r['cpu']:.2f}", f"{per_cpu:,.0f}",
                          f"{1000 * r['cpu'] / r['events']:.3f}", f"{100 * load[key]:.0f} %"])
        print()
        print(common.table(table, ["consumer", "wall s", "events/s", "CPU s", "events/CPU-s", "CPU ms/event",
                                   "machine CPU busy"]))
        if args.save_rate and "applied" in rows:  # freshness.py --half-of: traffic at half this rate
            Path(args.save_rate).parent.mkdir(parents=True, exist_ok=True)
            Path(args.save_rate).write_text(json.dumps({"events_per_s": rows["applied"]["rate"], "machine": common.machine()}))
        if "noop" in rows:
            print()
            for label, a, b in [("no-op / raw", "noop", "raw"), ("persona applied / no-op", "applied", "noop"),
                                ("persona drained / no-op", "drained", "noop")]:
                if a not in rows:
                    continue
                print(f"{label:26s} wall-clock {rows[a]['rate'] / rows[b]['rate']:.3f}   "
                      f"per CPU second {rows[a]['per_cpu'] / rows[b]['per_cpu']:.3f}")
            ratio = rows["applied"]["rate"] / rows["noop"]["rate"]
            print(f"goal: persona >= 0.80 x no-op: {'met' if ratio >= 0.8 else 'NOT met'} ({ratio:.3f})")
            logic, noop = rows["logic"]["cpu"] / n, rows["noop"]["cpu"] / n
            per_event = rows["applied"]["cpu"] / rows["applied"]["events"]
            print(f"persona CPU per event {1000 * per_event:.2f} ms = Faust no-op {1000 * noop:.2f} + persona logic "
                  f"{1000 * logic:.2f} + the rest (Kafka/Faust plumbing of the records it sends, tables, replicas, "
                  f"downstream agents, trainer) {1000 * (per_event - noop - logic):.2f}")

        down = asyncio.run(common.end_offsets(s.bootstrap, s.app_id))
        print("\nrecords in the deployment's topics after these events:")
        for topic, count in down.items():
            print(f"  {topic:45s} {count:8d}  ({count / n:.2f} per event)")
        if args.profile:
            print(f"\npy-spy, {args.profile:.0f} s of the persona worker while ingesting "
                  f"({dep.dir / 'persona.collapsed'}):")
            print(common.hot_spots(dep.dir / "persona.collapsed"))
        if args.scale:
            scale(dep, n, args, rows["applied"])
        if args.traced:
            print("\ntraced worker, last report:")
            print([line for line in worker_log(dep).splitlines() if "TRACE" in line][-1].split("TRACE ", 1)[1])
    finally:
        if not args.keep:
            dep.cleanup()


def scale(dep: common.Deployment, n: int, args, one: dict) -> None:
    """Several workers of a fresh app on the same events topic, against one worker's rate above."""
    print(f"\nscaling, {args.partitions} partitions (events applied, from the first to the window's end or the last;"
          f" CPU of the workers and their children; machine: {os.cpu_count()} cores shared with the broker):")
    print(f"  1 worker : {one['rate']:8,.0f} events/s, {1000 * one['cpu'] / one['events']:.2f} CPU ms/event")
    for count in args.scale:
        other = common.Deployment(dep.settings.bootstrap, args.partitions, tag=f"{dep.tag}x{count}")
        other["PERSONA_EVENTS_TOPIC"] = dep.settings.events_topic
        try:
            other.persona("topics")
            other.persona("load-catalog")
            load = common.MachineLoad().start()
            p = run_persona(other, n, args.window, 0, False, workers=count)
            busy = load.stop()
            if "ingested" not in p:
                print(f"  {count} workers: no events applied in time")
                continue
            events = p["ingested_count"] - p["first_count"]
            rate = events / (p["ingested"] - p["first"])
            print(f"  {count} workers: {rate:8,.0f} events/s = {rate / one['rate']:.2f} x one worker "
                  f"(goal >= {0.9 * count:.1f} x), {1000 * (p['ingested_cpu'] - p['first_cpu']) / events:.2f} CPU ms/event,"
                  f" machine CPU busy {100 * busy:.0f} % (start-up included)")
        finally:
            if not args.keep:
                other.cleanup()


def worker_log(dep: common.Deployment) -> str:
    return (dep.dir / "w1.log").read_text(errors="replace")


if __name__ == "__main__":
    main()
