"""``persona worker`` with timing probes, to see where an event's time goes (no product code changed).

    PERSONA_...=... python benchmarks/traced_worker.py --web-port 6070 --datadir DIR [--every 5]

Same start-up as ``persona worker`` (topics, then the Faust worker), plus, logged every
``--every`` seconds as one ``TRACE {json}`` line:

- per agent stream: events, seconds spent waiting for the next event vs. in the agent's body;
- event-loop lag: how late a 5 ms sleep wakes up (p50/p99/max), i.e. how long callbacks block;
- the Faust consumer's fetches (``_wait_next_records``): calls, records, seconds.

With ``TRACE_SWITCH_INTERVAL=S`` the interpreter's GIL switch interval is set to S seconds (an
experiment: Faust's Kafka consumer runs in its own thread and needs the GIL to hand records over).
With ``TRACE_CPROFILE=FILE`` the whole run is also profiled with cProfile (main-thread CPU time,
call counts) and the stats written to FILE at exit. Used by benchmarks/ingest.py with ``--traced``.
"""

from __future__ import annotations

import argparse
import asyncio
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
Consumer._wait_next_records = wait_next_records


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--web-port", type=int, default=6066)
    ap.add_argument("--datadir", default=".local/worker")
    ap.add_argument("--every", type=float, default=5.0)
    args = ap.parse_args()
    if os.environ.get("TRACE_SWITCH_INTERVAL"):  # experiment: how often the GIL changes hands (default 5 ms)
        sys.setswitchinterval(float(os.environ["TRACE_SWITCH_INTERVAL"]))
    os.environ.update(PERSONA_WEB_PORT=str(args.web_port), PERSONA_WEB_HOST="127.0.0.1",
                      PERSONA_DATADIR=args.datadir)
    from persona.agents.topics import ensure_topics
    from persona.settings import Settings

    asyncio.run(ensure_topics(Settings.from_env()))
    from persona.agents.worker import app

    @app.task
    async def loop_lag() -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - t0 - 0.005)

    @app.timer(args.every)
    async def report() -> None:
        s = sorted(lags)
        pct = lambda q: round(1000 * s[min(len(s) - 1, int(q * len(s)))], 2) if s else None  # noqa: E731
        log.warning("TRACE %s", json.dumps({
            "t": time.time(), "streams": streams, "fetch": fetch,
            "loop_lag_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0), "n": len(s)}}))
        lags.clear()

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
