"""The framework's own cost at steady rates: CPU of the Faust no-op agent under live traffic.

    .venv/bin/python benchmarks/noop_rate.py --bootstrap 127.0.0.1:19092 [--rates 20,250,650] \
        [--topics 1,8] [--loglevels info,warn]

For each combination: fresh 8-partition topics (traffic goes to the first; the others stand for the
other topics a worker subscribes to), benchmarks/noop_app.py reading all of them from the latest
offsets, and benchmarks/traffic.py producing at the rate in its own process. After 10 s, the
no-op's CPU over ``--seconds``. In bulk (benchmarks/ingest.py) the same agent costs ~0.22 ms per
event; at a steady rate each fetch brings few records and costs about the same whatever it brings.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

import common


async def create_topics(bootstrap: str, names: list[str], partitions: int = 8) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    finally:
        await admin.close()


def noop_cores(bootstrap: str, rate: float, topics: int, loglevel: str, seconds: float) -> float:
    dep = common.Deployment(bootstrap)
    names = [f"bench-{dep.tag}.t{i}" for i in range(topics)]
    asyncio.run(create_topics(bootstrap, names))
    noop = common.start_noop(dep, names, offset_reset="latest", loglevel=loglevel)
    traffic = common.start_traffic(dep, names[0], rate) if rate else None
    try:
        time.sleep(10)  # the no-op has joined its group and reads the traffic
        return common.cores_used(noop.pid, seconds)
    finally:
        for proc in (traffic, noop):
            if proc:
                proc.stop()
        dep.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default=common.DEFAULT_BOOTSTRAP)
    ap.add_argument("--rates", default="20,250,650", help="events per second, comma-separated")
    ap.add_argument("--topics", default="1", help="8-partition topics the agent reads, comma-separated counts")
    ap.add_argument("--loglevels", default="info", help="the no-op worker's -l, comma-separated")
    ap.add_argument("--seconds", type=float, default=20)
    args = ap.parse_args()
    common.check_broker(args.bootstrap)
    print(f"machine: {common.machine()}")
    rows = []
    for rate, topics, level in itertools.product([float(r) for r in args.rates.split(",")],
                                                 [int(t) for t in args.topics.split(",")], args.loglevels.split(",")):
        cores = noop_cores(args.bootstrap, rate, topics, level, args.seconds)
        rows.append([f"{rate:g}", f"{topics} ({8 * topics})", level, f"{100 * cores:.1f}",
                     f"{1000 * cores / rate:.2f}" if rate else "-"])
        print(rows[-1], flush=True)
    print(common.table(rows, ["events/s", "topics (partitions)", "log level", "CPU % of a core", "CPU ms per event"]))


if __name__ == "__main__":
    main()
