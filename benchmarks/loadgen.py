"""Open-loop HTTP load at a fixed request rate, in its own process; prints one JSON object.

    python benchmarks/loadgen.py URL_TEMPLATE --users FILE --rate 500 --duration 10 [--concurrency 256]

Request i is due at start + i/rate whatever happened to the previous ones (no coordinated
omission): its latency is measured from when it was due to when its answer was read, so time
spent waiting for a free connection counts. At most ``--concurrency`` requests are in flight; a
request due while that many are outstanding is not sent and counts as dropped. ``{user}`` in the
URL template is replaced by a user id drawn at random from the file (one id a line).
``settled_*`` figures leave out the requests due in the first ``--settle`` seconds: a server
whose answer cache went cold while it was idle blends everything again at first.
"""

import argparse
import asyncio
import json
import random
import time

import aiohttp


def pct(values, q):
    if not values:
        return None
    s = sorted(values)
    return round(1000 * s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))], 3)


async def run(args) -> dict:
    users = open(args.users).read().split()
    rng = random.Random(args.seed)
    total = int(args.rate * args.duration)
    service, statuses, sizes, timeline = [], {}, set(), []  # timeline: (due after start, latency) of each 200
    dropped, in_flight = 0, 0
    connector = aiohttp.TCPConnector(limit=args.concurrency, limit_per_host=args.concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
        async def one(url: str, due: float) -> None:
            nonlocal in_flight
            sent = time.perf_counter()
            try:
                async with session.get(url) as resp:
                    body = await resp.read()
                    status = resp.status
                    sizes.add(len(body))
            except (aiohttp.ClientError, asyncio.TimeoutError) as err:
                status = type(err).__name__
            done = time.perf_counter()
            in_flight -= 1
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if status == 200:
                service.append(done - sent)
                timeline.append((due - start, done - due))

        tasks = []
        cpu, start = time.process_time(), time.perf_counter() + 0.05
        for i in range(total):
            due = start + i / args.rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if in_flight >= args.concurrency:
                dropped += 1
                continue
            in_flight += 1
            tasks.append(asyncio.create_task(one(args.url.replace("{user}", rng.choice(users)), due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    lat = [latency for _, latency in timeline]
    settled = [latency for due, latency in timeline if due >= args.settle]
    return {"rate": args.rate, "duration": args.duration, "sent": len(tasks), "dropped": dropped,
            "ok": len(lat), "statuses": statuses, "throughput": round(len(lat) / elapsed, 1),
            "p50_ms": pct(lat, 50), "p90_ms": pct(lat, 90), "p99_ms": pct(lat, 99), "max_ms": pct(lat, 100),
            "service_p50_ms": pct(service, 50), "service_p99_ms": pct(service, 99),
            "settled_p50_ms": pct(settled, 50), "settled_p99_ms": pct(settled, 99),
            "body_bytes": sorted(sizes)[:3], "loadgen_cpu_s": round(time.process_time() - cpu, 2),
            **({"timeline": per_step(timeline, args.timeline)} if args.timeline else {})}


def per_step(timeline, step):
    """p50 / p99 / max latency (ms) of the requests due in each ``step`` seconds of the run."""
    steps = {}
    for due, latency in timeline:
        steps.setdefault(int(due // step), []).append(latency)
    return [[round(k * step, 3), pct(v, 50), pct(v, 99), pct(v, 100)] for k, v in sorted(steps.items())]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--users", required=True)
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--settle", type=float, default=2.0, metavar="SECONDS")
    ap.add_argument("--timeline", type=float, default=0, metavar="SECONDS",
                    help="also report latency per step of this many seconds (when requests were due)")
    args = ap.parse_args()
    if not args.url.startswith(("http://127.0.0.1:", "http://localhost:")):
        raise SystemExit("loopback addresses only")
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
