"""Background storefront traffic: GA4 events at a steady rate, timestamped now, until stopped.

    python benchmarks/traffic.py --bootstrap 127.0.0.1:19092 --topic T --rate 300 [--users 2000]

Events come from benchmarks.common.make_events (views mostly, some carts and purchases, catalog
items with a popularity skew) and are keyed by user id. Every 10 s, and at exit (SIGTERM), one
line on stdout: {"sent": n, "seconds": s, "rate": r} (a first line {"started": t} says when
sending begins). The events (at most two minutes' worth) are sent again in a loop, with new ids. Used by benchmarks/freshness.py.
"""

import argparse
import asyncio
import json
import signal
import time

import orjson
from aiokafka import AIOKafkaProducer

import common


async def run(args) -> None:
    events = common.make_events(min(int(args.rate * 120), 50000), args.users, common.catalog_ids(), seed=1, prefix="bg")
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=5, acks=1)
    await producer.start()
    print(json.dumps({"started": time.time()}), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    sent, started, last_report = 0, time.perf_counter(), time.perf_counter()
    try:
        while not stop.is_set():
            due = int((time.perf_counter() - started) * args.rate) - sent
            for _ in range(due):
                e = dict(events[sent % len(events)], timestamp=int(time.time() * 1000))
                e["event_id"] = f"{e['event_id'][:24]}{sent:08x}"
                await producer.send(args.topic, value=orjson.dumps(e), key=e["user_id"].encode())
                sent += 1
            if time.perf_counter() - last_report > 10:
                last_report = time.perf_counter()
                report(sent, started)
            try:
                await asyncio.wait_for(stop.wait(), 0.01)
            except asyncio.TimeoutError:
                pass
        await producer.flush()
    finally:
        await producer.stop()
        report(sent, started)


def report(sent: int, started: float) -> None:
    s = time.perf_counter() - started
    print(json.dumps({"sent": sent, "seconds": round(s, 1), "rate": round(sent / s, 1)}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default=common.DEFAULT_BOOTSTRAP)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--rate", type=float, default=300)
    ap.add_argument("--users", type=int, default=2000)
    args = ap.parse_args()
    common.check_broker(args.bootstrap)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
