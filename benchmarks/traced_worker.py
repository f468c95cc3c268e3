"""``persona worker`` with timing probes, to see where an event's time goes (no product code changed).

    PERSONA_...=... python benchmarks/traced_worker.py --web-port 6070 --datadir DIR [--every 5]

Same start-up as ``persona worker`` (topics, then the Faust worker), plus, logged every
``--every`` seconds as one ``TRACE {json}`` line:

- per agent stream: events, seconds spent waiting for the next event vs. in the agent's body;
- event-loop lag: how late a 5 ms sleep wakes up (p50/p99/max), i.e. how long callbacks block;
- the Faust consumer's fetches (``_wait_next_records``): calls, records, seconds;
- the collector's pauses per generation: count, seconds, longest, CPU seconds, objects collected;
- the worker's shared rankings (trending, best-sellers, sources per tick) built: count, seconds, longest;
- blended answers: count, p50 / p99 / max milliseconds.

With ``TRACE_SWITCH_INTERVAL=S`` the interpreter's GIL switch interval is set to S seconds (an
experiment: Faust's Kafka consumer runs in its own thread and needs the GIL to hand records over).
With ``TRACE_GC_THRESHOLD=a,b,c`` the collector's thresholds are set (an experiment); every line
also has the collector's figures: collections per generation and objects it tracks.
With ``TRACE_CPROFILE=FILE`` the whole run is also profiled with cProfile (main-thread CPU time,
call counts) and the stats written to FILE at exit. Used by benchmarks/ingest.py with ``--traced``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import sys
import time
from collections import defaultdict

from faust.streams import Stream
from faust.transport.consumer import Consumer

log = logging.getLogger("trace")
streams: dict[str, dict[str, float]] = defaultdict(lambda: {"events": 0, "wait_s": 0.0, "body_s": 0.0})
fetch = {"calls": 0, "records": 0, "seconds": 0.0}
lags: list[float] = []

_events = Stream.events
_wait_next_records = Consumer._wait_next_records


async def events(self):
    stats = streams[",".join(sorted(getattr(self.channel, "topics", ()) or [str(self.channel)]))]
    agen = _events(self).__aiter__()
    while True:
        t0 = time.perf_counter()
        try:
            ev = await agen.__anext__()
        except StopAsyncIteration:
            return
        t1 = time.perf_counter()
        stats["wait_s"] += t1 - t0
        stats["events"] += 1
        yield ev
        stats["body_s"] += time.perf_counter() - t1


async def wait_next_records(self, timeout):
    t0 = time.perf_counter()
    records, active = await _wait_next_records(self, timeout)
    fetch["calls"] += 1
    fetch["seconds"] += time.perf_counter() - t0
    fetch["records"] += sum(len(v) for v in (records or {}).values())
    return records, active


Stream.events = events
slow: dict[str, list] = defaultdict(lambda: [0, 0.0, 0.0])  # callback -> [count, seconds, longest]


def tally(entry: list, seconds: float) -> None:
    """Count one duration into ``[count, seconds, longest, ...]``."""
    entry[0] += 1
    entry[1] += seconds
    entry[2] = max(entry[2], seconds)


def _callback_name(handle) -> str:
    """A task's coroutine chain (outermost first, Faust's wrappers skipped), else the callback's name."""
    task = getattr(handle._callback, "__self__", None)
    if not isinstance(task, asyncio.Task):
        return getattr(handle._callback, "__qualname__", repr(handle._callback))[:80]
    chain, coro = [], task.get_coro()
    while coro is not None and len(chain) < 12:
        chain.append(getattr(coro, "__qualname__", type(coro).__name__))
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
    skip = ("Service.", "App._task", "_wrapped", "Agent._execute", "maybe_async", "wait_for", "sleep")
    return " > ".join(c for c in chain if not c.startswith(skip))[:120] or chain[0]


def trace_slow_callbacks(threshold: float) -> None:
    """Every event-loop callback of the main thread longer than ``threshold`` s: count, total, longest."""
    import threading
    main, run = threading.main_thread(), asyncio.events.Handle._run

    def timed(self):
        t0 = time.perf_counter()
        try:
            return run(self)
        finally:
            dt = time.perf_counter() - t0
            if dt > threshold and threading.current_thread() is main:
                tally(slow[_callback_name(self)], dt)
    asyncio.events.Handle._run = timed
Consumer._wait_next_records = wait_next_records
blends: list[float] = []
builds: dict[str, list] = defaultdict(lambda: [0, 0.0, 0.0])  # Shop ranking -> [count, seconds, longest]
# generation -> [count, seconds, longest, CPU seconds, objects collected]
pauses: dict[int, list] = defaultdict(lambda: [0, 0.0, 0.0, 0.0, 0])
_gc_started = [0.0, 0.0]


def time_collections(phase: str, info: dict) -> None:
    if phase == "start":
        _gc_started[:] = time.perf_counter(), time.thread_time()
        return
    entry = pauses[info["generation"]]
    tally(entry, time.perf_counter() - _gc_started[0])
    entry[3] += time.thread_time() - _gc_started[1]
    entry[4] += info["collected"]


gc.callbacks.append(time_collections)


def milliseconds(seconds: list[float]) -> dict:
    """p50 / p99 / max of durations, in milliseconds, and how many."""
    s = sorted(seconds)
    pct = lambda q: round(1000 * s[min(len(s) - 1, int(q * len(s)))], 2) if s else None  # noqa: E731
    return {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0), "n": len(s)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--web-port", type=int, default=6066)
    ap.add_argument("--datadir", default=".local/worker")
    ap.add_argument("--every", type=float, default=5.0)
    args = ap.parse_args()
    if os.environ.get("TRACE_SWITCH_INTERVAL"):  # experiment: how often the GIL changes hands (default 5 ms)
        sys.setswitchinterval(float(os.environ["TRACE_SWITCH_INTERVAL"]))
    if os.environ.get("TRACE_FETCH"):  # experiment: "min_bytes,max_wait_ms" for the group consumer
        import aiokafka
        fmb, fmw = map(int, os.environ["TRACE_FETCH"].split(","))
        init = aiokafka.AIOKafkaConsumer.__init__

        def patched(self, *a, **kw):
            if kw.get("group_id"):
                kw.update(fetch_min_bytes=fmb, fetch_max_wait_ms=fmw)
            init(self, *a, **kw)
        aiokafka.AIOKafkaConsumer.__init__ = patched
    if os.environ.get("TRACE_SLOW_MS"):
        trace_slow_callbacks(float(os.environ["TRACE_SLOW_MS"]) / 1000)
    if os.environ.get("TRACE_GC_THRESHOLD"):
        gc.set_threshold(*map(int, os.environ["TRACE_GC_THRESHOLD"].split(",")))
    os.environ.update(PERSONA_WEB_PORT=str(args.web_port), PERSONA_WEB_HOST="127.0.0.1",
                      PERSONA_DATADIR=args.datadir)
    from persona.agents.topics import ensure_topics
    from persona.settings import Settings

    asyncio.run(ensure_topics(Settings.from_env()))
    from persona.agents.worker import app
    from persona.tables.state import Shop

    cached = Shop._cached

    def timed_build(self, name, key, build):  # how long the worker's per-tick rankings take to build
        def timed():
            t0 = time.perf_counter()
            try:
                return build()
            finally:
                tally(builds[str(name[0] if isinstance(name, tuple) else name)], time.perf_counter() - t0)
        return cached(self, name, key, timed)
    Shop._cached = timed_build
    from persona.web import views

    counted_blend = views.counted_blend

    def timed_blend(profile, req):  # how long each blended answer took
        t0 = time.perf_counter()
        try:
            return counted_blend(profile, req)
        finally:
            blends.append(time.perf_counter() - t0)
    views.counted_blend = timed_blend

    @app.task
    async def loop_lag() -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - t0 - 0.005)

    @app.timer(args.every)
    async def report() -> None:
        log.warning("TRACE %s", json.dumps({
            "t": time.time(), "streams": streams, "fetch": fetch,
            "loop_lag_ms": milliseconds(lags),
            "slow": {k: [v[0], round(v[1], 3), round(v[2], 3)] for k, v in sorted(slow.items(), key=lambda kv: -kv[1][1])[:8]},
            "blends_ms": milliseconds(blends),
            "builds": {k: [v[0], round(v[1], 3), round(v[2], 4)] for k, v in sorted(builds.items())},
            "gc": {"collections": [g["collections"] for g in gc.get_stats()], "tracked": len(gc.get_objects()),
                   "frozen": gc.get_freeze_count(),
                   "pauses": {g: [v[0], round(v[1], 3), round(v[2], 4), round(v[3], 3), v[4]]
                              for g, v in sorted(pauses.items())}}}))
        lags.clear()
        pauses.clear()
        builds.clear()
        blends.clear()

    sys.argv = ["persona-worker", "--datadir", args.datadir, "worker", "--loglevel", "info"]
    if os.environ.get("TRACE_CPROFILE"):  # deterministic profile of the whole run, written at exit
        import atexit
        import cProfile

        profiler = cProfile.Profile(time.thread_time)  # CPU time of the main thread, not wall-clock
        atexit.register(lambda: (profiler.disable(), profiler.dump_stats(os.environ["TRACE_CPROFILE"])))
        profiler.enable()
    app.main()


if __name__ == "__main__":
    main()
