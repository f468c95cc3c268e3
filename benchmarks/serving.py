"""Serving latency: GET /recommendations/{user}?n=10 on one persona worker vs a bare aiohttp handler.

    .venv/bin/python benchmarks/serving.py --bootstrap 127.0.0.1:19092 [--rates 200,500,1000 --duration 10]

Starts one persona worker (fresh app id, catalog published), feeds it ``--users`` shoppers with
``--events-per-user`` recent events each and waits until it has applied them and its item-keyed
agents have caught up. It then asks once for every fed user, one request at a time (the first
answer for each user; content neighbours are ranked for the whole catalog in a thread when the
catalog arrives), and once more for 200 of them (warm: within the same second that answer comes
from the worker's answer cache, later it is blended again). Then, at each fixed request rate, runs benchmarks/loadgen.py (its own
process, open loop, latency from when each request was due) for ``--duration`` seconds against
a bare aiohttp server returning a fixed JSON body of the size of a real persona answer, then
against persona. Users are drawn from the fed ones, so every answer is personalised. Every
persona answer is also logged as an impression, which the same worker then ingests: that is
part of what serving costs. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import common

HERE = Path(__file__).parent


def loadgen(url: str, users: Path, rate: float, duration: float, concurrency: int, timeline: float = 0) -> dict:
    out = subprocess.run([sys.executable, str(HERE / "loadgen.py"), url, "--users", str(users), "--rate", str(rate),
                          "--duration", str(duration), "--concurrency", str(concurrency), "--timeline", str(timeline)],
                         capture_output=True, text=True, timeout=duration + 60)
    if out.returncode:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout)


async def caught_up(dep: common.Deployment, worker: common.Worker, n: int, timeout: float) -> float:
    s, started = dep.settings, time.monotonic()
    async with common.OffsetWatcher(s.bootstrap, s.app_id, dep.group_topics()) as offsets:
        while time.monotonic() - started < timeout:
            try:
                applied = worker.counters()["applied"]
            except OSError:  # a worker busy catching up may not answer within the timeout: ask again
                applied = 0
            if applied >= n:
                lag = await offsets.lag()
                if all(c >= e for c, e in lag.values()):
                    return time.monotonic() - started
            await asyncio.sleep(0.5)
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", default=common.DEFAULT_BOOTSTRAP)
    ap.add_argument("--users", type=int, default=300)
    ap.add_argument("--events-per-user", type=int, default=6)
    ap.add_argument("--rates", default="200,500,1000")
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--concurrency", type=int, default=256, help="most requests in flight")
    ap.add_argument("--profile", type=float, default=0, metavar="SECONDS",
                    help="py-spy the persona worker during its first (lowest-rate) step")
    ap.add_argument("--timeline", type=float, default=0, metavar="SECONDS",
                    help="print persona's latency p50/p99/max per step of this many seconds (wall-clock times, "
                         "to line up with the worker's log)")
    ap.add_argument("--traced", action="store_true", help="run the worker under benchmarks/traced_worker.py "
                    "(its TRACE lines, e.g. with TRACE_SLOW_MS=5, go to the worker's log)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    common.check_broker(args.bootstrap)
    dep = common.Deployment(args.bootstrap)
    s = dep.settings
    print(f"machine: {common.machine()}; deployment {s.app_id}")
    worker = bare = None
    try:
        dep.persona("topics")
        dep.persona("load-catalog")
        n = args.users * args.events_per_user
        events = common.make_events(n, args.users, common.catalog_ids(), span=600)
        asyncio.run(common.produce(s.bootstrap, s.events_topic, common.records(events)))
        users = dep.dir / "users.txt"
        users.write_text("\n".join(sorted({e["user_id"] for e in events})))
        worker = common.Worker(dep, traced=args.traced).wait_ready()
        took = asyncio.run(caught_up(dep, worker, n, 150))
        print(f"worker {worker.url} (pid {worker.pid}) applied {n} events of {args.users} users; "
              f"item-keyed agents caught up after {took:.0f} s")

        # Cold start: every fed user once, one request at a time.
        cold, started = [], time.perf_counter()
        for user in users.read_text().split():
            t = time.perf_counter()
            raw = urllib_get(f"{worker.url}/recommendations/{user}?n=10", timeout=120)
            cold.append(time.perf_counter() - t)
        print(f"cold start: one request per user, sequentially: {len(cold)} requests in "
              f"{time.perf_counter() - started:.1f} s, latency p50 {1000 * common.percentile(cold, 50):.1f} ms, "
              f"p99 {1000 * common.percentile(cold, 99):.1f} ms, max {1000 * max(cold):.1f} ms")
        warm = []
        for user in users.read_text().split()[:200]:
            t = time.perf_counter()
            raw = urllib_get(f"{worker.url}/recommendations/{user}?n=10")
            warm.append(time.perf_counter() - t)
        print(f"warm: the first 200 users again, sequentially: latency p50 {1000 * common.percentile(warm, 50):.1f} ms, "
              f"p99 {1000 * common.percentile(warm, 99):.1f} ms, max {1000 * max(warm):.1f} ms")
        sample = json.loads(raw)
        body = dep.dir / "answer.json"
        body.write_bytes(raw)
        print(f"a persona answer: {len(body.read_bytes())} bytes, strategy {sample['strategy']}, "
              f"fallback {sample['fallback']}, {len(sample['items'])} items")
        port = common.free_port()
        bare = common.Proc([sys.executable, str(HERE / "bare_server.py"), "--port", str(port), "--body", str(body)],
                           dep.dir / "bare.log")
        time.sleep(1.5)

        targets = {"bare aiohttp": f"http://127.0.0.1:{port}/recommendations/{{user}}?n=10",
                   "persona": f"{worker.url}/recommendations/{{user}}?n=10"}
        pids = {"bare aiohttp": bare.pid, "persona": worker.pid}
        for url in targets.values():  # warm up connections and caches
            loadgen(url, users, 50, 1, args.concurrency)
        quiet(worker.pid)
        print(f"persona worker idle (no requests, no events): {100 * common.cores_used(worker.pid, 5):.0f} % of a core")
        rows, goal = [], None
        for rate in [float(r) for r in args.rates.split(",")]:
            for name, url in targets.items():
                cpu0, m, t0 = common.cpu_seconds(pids[name]), common.MachineLoad().start(), time.perf_counter()
                spy = None
                if name == "persona" and args.profile and not (dep.dir / "serving.collapsed").exists():
                    spy = common.profile(worker.pid, min(args.profile, args.duration), dep.dir / "serving.collapsed")
                began = time.time()
                r = loadgen(url, users, rate, args.duration, args.concurrency, args.timeline if name == "persona" else 0)
                for at, p50, p99, top in r.pop("timeline", []):
                    when = began + at
                    print(f"    {time.strftime('%H:%M:%S', time.localtime(when))}.{int(when % 1 * 1000):03d}"
                          f"  p50 {p50:7.1f}  p99 {p99:7.1f}  max {top:7.1f} ms")
                if spy:
                    spy.proc.wait(60)
                busy, cpu = m.stop(), common.cpu_seconds(pids[name]) - cpu0
                wall = time.perf_counter() - t0
                rows.append([name, f"{rate:.0f}", f"{r['throughput']:.0f}", r["p50_ms"], r["p90_ms"], r["p99_ms"],
                             r["settled_p99_ms"], r["max_ms"], r["dropped"],
                             sum(v for k, v in r["statuses"].items() if k != "200"),
                             f"{100 * cpu / wall:.0f} %",
                             f"{1000 * cpu / max(r['ok'], 1):.2f}",
                             f"{r['loadgen_cpu_s'] / wall * 100:.0f} %",
                             f"{100 * busy:.0f} %"])
                print(f"  {name:12s} {rate:6.0f}/s: {json.dumps(r)}", flush=True)
                if name == "persona":
                    if rate == 1000:
                        goal = r["p99_ms"], r["settled_p99_ms"]
                    quiet(worker.pid)  # let it finish queued requests and impressions before the next step
        print()
        print(common.table(rows, ["server", "offered req/s", "answered/s", "p50 ms", "p90 ms", "p99 ms",
                                  "p99 after 2 s", "max ms",
                                  "dropped", "errors", "server CPU", "server CPU ms per answer", "loadgen CPU",
                                  "machine CPU busy"]))
        print("(latency from when each request was due; 'p99 after 2 s' leaves out the requests due in the "
              "step's first 2 s, when the answers kept before the step have expired; CPU shares of one core over "
              "the step, the persona worker's includes ingesting the impressions its answers log; CPU ms per "
              "answer = the server's CPU time over the step / answers, the figure that depends least on how busy "
              "the machine is)")
        if args.profile:
            print(f"\npy-spy of the persona worker during its first step ({dep.dir / 'serving.collapsed'}):")
            print(common.hot_spots(dep.dir / "serving.collapsed", focus=(
                "RecommendationsView.get (web/views.py)", "blend (persona/blend.py)", "_generate (persona/blend.py)")))
        c = worker.counters()
        print(f"\npersona counters after the runs (impressions ingested as 'applied'): {dict(c)}")
        if goal is not None:
            print(f"goal: p99 <= 10 ms at 1000 req/s on one worker: {'met' if goal[0] <= 10 else 'NOT met'} "
                  f"(p99 {goal[0]} ms; after the first 2 s {goal[1]} ms)")
    finally:
        for p in (bare, worker):
            if p:
                p.stop()
        if not args.keep:
            dep.cleanup()


def quiet(pid: int, below: float = 0.15, longest: float = 30) -> None:
    """Wait until the process uses less than ``below`` of a CPU over a second (at most ``longest`` s)."""
    deadline = time.monotonic() + longest
    while time.monotonic() < deadline:
        c0 = common.cpu_seconds(pid)
        time.sleep(1)
        if common.cpu_seconds(pid) - c0 < below:
            return


def urllib_get(url: str, timeout: float = 10) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read()


if __name__ == "__main__":
    main()
