"""Freshness: from producing a new shopper's view_item to the first answer that reflects it.

    .venv/bin/python benchmarks/freshness.py --bootstrap 127.0.0.1:19092 [--rate 300 --trials 200]

One persona worker (fresh app id, catalog published) and background traffic at ``--rate``
events/s from benchmarks/traffic.py in its own process. Each trial: a shopper never seen before
views one of the 30 most reviewed items; the clock starts before the produce call (acks=1, no
linger). Polling /recommendations itself would load the worker (each answer is logged as an
impression and ingested), so the trial polls the cheap GET /users/{user} (404 until the profile
exists) every ``--poll`` s (5 ms) and, once the profile is there, asks GET /recommendations/{user}?n=10 (again
until it reflects the view, or ``--trial-timeout`` s pass): the time is taken when that answer
arrives. An answer reflects the view when it has a journey stage (only shoppers with a profile
have one) or a reason about an item "you viewed". ``fallback`` alone is not a reliable test (an
unknown shopper can get a non-fallback answer from trending): one request before each view
counts how often it is already false.

The first ``--warmup`` trials fill the worker's content-neighbour cache for those items and are
not counted; warming up stops at the first of them without an answer in time (the worker is then
not keeping up, and no cache matters). Trials stop after ``--budget`` s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from pathlib import Path

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer

import common



def reflects(answer: dict) -> bool:
    return answer.get("stage") is not None or any(
        " you viewed" in r for item in answer.get("items", ()) for r in item.get("reasons", ()))


async def trials(dep: common.Deployment, worker: common.Worker, args) -> dict:
    s = dep.settings
    items = common.catalog_ids()[:30]
    rng = random.Random(0)
    out = {"reflect": [], "profile": [], "timeouts": 0, "polls": [], "done": 0, "before_fallback_false": 0, "before_reflects": 0,
           "after_fallback_false": 0}
    producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap, linger_ms=0, acks=1)
    await producer.start()
    deadline = time.monotonic() + args.budget
    try:
        async with aiohttp.ClientSession() as http:
            warmup = args.warmup
            for i in range(args.warmup + args.trials):
                if time.monotonic() > deadline or i - warmup >= args.trials:
                    break
                user = f"fresh-{dep.tag}-{i}"
                event = {"event_id": uuid.uuid4().hex, "event_name": "view_item", "user_id": user,
                         "session_id": f"s-{user}", "items": [{"item_id": rng.choice(items), "quantity": 1}]}
                url = f"{worker.url}/recommendations/{user}?n=10"
                async with http.get(url) as resp:  # before the view: what an unknown shopper gets
                    before = await resp.json()
                t0 = time.perf_counter()
                event["timestamp"] = int(time.time() * 1000)
                await producer.send_and_wait(s.events_topic, value=orjson.dumps(event), key=user.encode())
                reflected, polls, known_at = None, 0, None
                while time.perf_counter() - t0 < args.trial_timeout:
                    sent = time.perf_counter()
                    async with http.get(f"{worker.url}/users/{user}") as resp:
                        known = resp.status == 200
                        await resp.read()
                    polls += 1
                    if i >= warmup:
                        out["polls"].append(time.perf_counter() - sent)
                    if known:
                        known_at = known_at or time.perf_counter() - t0
                        async with http.get(url) as resp:
                            answer = await resp.json() if resp.status == 200 else {}
                        if reflects(answer):
                            reflected = time.perf_counter() - t0
                            break
                    await asyncio.sleep(args.poll)
                if i < warmup:
                    if reflected is None:  # the worker is not keeping up: warming up is pointless
                        warmup = i + 1
                    continue
                out["done"] += 1
                out["before_fallback_false"] += before.get("fallback") is False
                out["before_reflects"] += reflects(before)
                if reflected is None:
                    out["timeouts"] += 1
                else:
                    out["reflect"].append(reflected)
                    out["profile"].append(known_at)
                    out["after_fallback_false"] += answer.get("fallback") is False
                await asyncio.sleep(rng.uniform(0.02, 0.08))
    finally:
        await producer.stop()
    out["warmup"] = warmup
    return out


def noop_cpu(dep: common.Deployment, seconds: float = 15.0) -> float:
    """Cores used by the Faust no-op agent (benchmarks/noop_app.py) reading the events topic while
    the background traffic goes on: the framework's own cost at this rate, without persona."""
    proc = common.start_noop(dep, [dep.settings.events_topic], offset_reset="latest")
    try:
        time.sleep(10)  # started, joined its group, reading the new events
        return common.cores_used(proc.pid, seconds)
    finally:
        proc.stop()


GC = "persona_gc_pause_seconds"


def histogram(worker: common.Worker, name: str) -> dict[str, float]:
    """Cumulative counts per bucket of one of the worker's histograms (all labels summed), and its "sum"."""
    import urllib.request

    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket"):
            le = line.split('le="')[1].split('"')[0]
            out[le] = out.get(le, 0.0) + float(line.rsplit(" ", 1)[1])
        elif line.startswith(f"{name}_sum"):
            out["sum"] = out.get("sum", 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def lag_buckets(worker: common.Worker) -> dict[str, float]:
    """Kafka timestamp to processing: the worker's persona_event_lag_seconds histogram."""
    return histogram(worker, "persona_event_lag_seconds")


async def lag(dep: common.Deployment) -> tuple[int, int]:
    s = dep.settings
    async with common.OffsetWatcher(s.bootstrap, s.app_id, [s.events_topic]) as w:
        return (await w.lag())[s.events_topic]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", default=common.DEFAULT_BOOTSTRAP)
    ap.add_argument("--rate", type=float, default=300, help="background events per second")
    ap.add_argument("--half-of", metavar="FILE", help="background at half the rate ingest.py --save-rate wrote there")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--trial-timeout", type=float, default=5.0)
    ap.add_argument("--poll", type=float, default=0.005, help="seconds between polls (the polls load the worker too)")
    ap.add_argument("--budget", type=float, default=120, help="seconds for all trials")
    ap.add_argument("--traced", action="store_true", help="run benchmarks/traced_worker.py as the worker")
    ap.add_argument("--profile", type=float, default=0, metavar="SECONDS",
                    help="py-spy the worker for this long from the start of the trials")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if args.half_of:
        measured = json.loads(Path(args.half_of).read_text())["events_per_s"]
        args.rate = round(measured / 2)
        print(f"background traffic: half of the measured ingest rate {measured:,.0f} events/s = {args.rate}/s")
    common.check_broker(args.bootstrap)
    dep = common.Deployment(args.bootstrap)
    s = dep.settings
    print(f"machine: {common.machine()}; deployment {s.app_id}")
    worker = traffic = None
    try:
        dep.persona("topics")
        dep.persona("load-catalog")
        worker = common.Worker(dep, traced=args.traced).wait_ready()
        traffic = common.start_traffic(dep, s.events_topic, args.rate)
        out = dep.dir / "traffic.out"
        time.sleep(5)  # the worker settles under the background traffic
        c0, cpu0, m = worker.counters()["applied"], common.cpu_seconds(worker.pid), common.MachineLoad().start()
        lag0, t0, b0, gc0 = asyncio.run(lag(dep)), time.perf_counter(), lag_buckets(worker), histogram(worker, GC)
        spy = common.profile(worker.pid, args.profile, dep.dir / "freshness.collapsed") if args.profile else None
        r = asyncio.run(trials(dep, worker, args))
        wall = time.perf_counter() - t0
        if spy:
            spy.proc.wait(60)
        c1, cpu1, busy, lag1 = worker.counters()["applied"], common.cpu_seconds(worker.pid), m.stop(), asyncio.run(lag(dep))
        b1, gc1 = lag_buckets(worker), histogram(worker, GC)
        worker.stop()
        noop = noop_cpu(dep)
        traffic.stop()
        sent = [json.loads(line) for line in out.read_text().splitlines() if line.strip().startswith('{"sent"')]
        print(f"background traffic: {sent[-1] if sent else '?'} (asked for {args.rate:.0f}/s)")
        print(f"worker during the trials: applied {(c1 - c0) / wall:.0f} events/s, CPU {100 * (cpu1 - cpu0) / wall:.0f} % "
              f"of a core; machine CPU busy {100 * busy:.0f} %; events topic lag (end - committed) "
              f"{lag0[1] - lag0[0]} at the start, {lag1[1] - lag1[0]} at the end")
        print(f"Faust no-op agent on the same traffic afterwards (the worker stopped): CPU {100 * noop:.0f} % of a core, "
              f"{1000 * noop / args.rate:.2f} ms per event; the worker used {(cpu1 - cpu0) / wall / noop:.1f} x as much")
        n_ev = b1["+Inf"] - b0["+Inf"]
        print("events (background, trials, impressions) from their Kafka timestamp to the start of their processing "
              "in the worker (its persona_event_lag_seconds histogram): "
              + ", ".join(f"<= {float(le) * 1000:g} ms {100 * (b1[le] - b0[le]) / n_ev:.0f} %"
                          for le in b1 if le not in ("+Inf", "sum")) + f" (of {n_ev:.0f})")
        if gc1:
            longest = next((le for le in reversed(list(gc1)) if le not in ("+Inf", "sum")
                            and gc1[le] - gc0.get(le, 0) < gc1["+Inf"] - gc0.get("+Inf", 0)), None)
            print(f"garbage collections in the worker during the trials: {gc1['+Inf'] - gc0.get('+Inf', 0):.0f}, "
                  f"{1000 * (gc1['sum'] - gc0.get('sum', 0)):.0f} ms in all"
                  + (f"; some over {float(longest) * 1000:g} ms" if longest else "")
                  + ", " + ", ".join(f"<= {float(le) * 1000:g} ms: {gc1[le] - gc0.get(le, 0):.0f}"
                                     for le in gc1 if le not in ("+Inf", "sum")))
        ms = lambda v: f"{1000 * v:.1f}"  # noqa: E731
        v = r["reflect"]
        print(f"\n{r['done']} trials after {r['warmup']} warm-up ones: {r['timeouts']} without a reflecting answer "
              f"within {args.trial_timeout:.0f} s; one /users poll took p50 {ms(common.percentile(r['polls'], 50))} ms, "
              f"p99 {ms(common.percentile(r['polls'], 99))} ms")
        print(f"fallback: false in {r['before_fallback_false']} of {r['done']} answers to the new shopper BEFORE the "
              f"view {r['after_fallback_false']} of {len(v)} reflecting answers; "
              f"{r['before_reflects']} answers before the view passed the reflect test (must be 0)\n")
        rows = [[label, len(x), *(ms(common.percentile(x, q)) if x else "-" for q in (50, 95, 99)),
                 ms(max(x)) if x else "-"] for label, x in (
            ("first /recommendations answer reflecting the view", v),
            ("(first /users answer showing the profile)", r["profile"]))]
        print(common.table(rows, ["from produce to", "trials", "p50 ms", "p95 ms", "p99 ms", "max ms"]))
        if spy:
            print(f"\npy-spy of the worker during the trials ({dep.dir / 'freshness.collapsed'}):")
            print(common.hot_spots(dep.dir / "freshness.collapsed"))
        if args.traced:
            trace = [line for line in worker.log.read_text().splitlines() if "TRACE" in line]
            print(f"traced worker, last report: {trace[-1].split('TRACE ', 1)[1] if trace else '-'}")
        if r["reflect"] and r["timeouts"] == 0:
            p50, p99 = common.percentile(r["reflect"], 50), common.percentile(r["reflect"], 99)
            ok = p50 <= 0.020 and p99 <= 0.100
            print(f"\ngoal: p50 <= 20 ms and p99 <= 100 ms: {'met' if ok else 'NOT met'} "
                  f"(p50 {ms(p50)} ms, p99 {ms(p99)} ms)")
        else:
            print(f"\ngoal: p50 <= 20 ms and p99 <= 100 ms: NOT met ({r['timeouts']} trials over "
                  f"{args.trial_timeout:.0f} s)")
    finally:
        for p in (traffic, worker):
            if p:
                p.stop()
        if not args.keep:
            dep.cleanup()


if __name__ == "__main__":
    main()
