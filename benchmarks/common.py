"""Shared helpers of the benchmarks: broker check, isolated deployments, events, workers, offsets.

Every benchmark run gets its own app id and topic names (``bench-<tag>.*``) on the broker given
with ``--bootstrap`` (default 127.0.0.1:19092, a broker started only for benchmarks), and its
own folder under ``.local/bench/<tag>`` for worker data and logs.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Iterator

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from persona.catalog import default_catalog_path, read_catalog
from persona.settings import TOPICS, Settings

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PERSONA = str(BIN / "persona")
DEFAULT_BOOTSTRAP = "127.0.0.1:19092"


def check_broker(bootstrap: str) -> None:
    host, port = bootstrap.split(",")[0].split(":")
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"benchmarks only run against a loopback broker, not {bootstrap}")
    with socket.socket() as s:
        s.settimeout(1)
        if s.connect_ex((host, int(port))) != 0:
            sys.exit(f"no Kafka broker on {bootstrap}: PERSONA_KAFKA_PORT={port} "
                     f"PERSONA_KAFKA_DIR=.local/kafka-bench scripts/kafka.sh up")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 "?")
    git = lambda *a: subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout.strip()  # noqa: E731
    dirty = " + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    return (f"{os.cpu_count()} cores ({model}), load average {os.getloadavg()[0]:.1f}, Python "
            f"{sys.version.split()[0]}, persona at {git('rev-parse', '--short', 'HEAD')}{dirty}")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a process and its children (the trainer's) have used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = [c for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]
    except FileNotFoundError:  # it has ended meanwhile
        return 0.0
    own = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # with children that ended
    return own + sum(cpu_seconds(int(child)) for child in children)


def cores_used(pid: int, seconds: float) -> float:
    """Cores a process (and its children) used over the next ``seconds``."""
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    time.sleep(seconds)
    return (cpu_seconds(pid) - cpu0) / (time.perf_counter() - t0)


class MachineLoad:
    """How busy all CPUs of the machine were between start() and stop() (other users' work included)."""

    @staticmethod
    def _sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    def start(self) -> "MachineLoad":
        self.t0 = self._sample()
        return self

    def stop(self) -> float:
        total, idle = self._sample()
        return 1.0 - (idle - self.t0[1]) / max(1, total - self.t0[0])


class Deployment(dict):
    """PERSONA_* variables of one isolated deployment: fresh app id and topic names."""

    def __init__(self, bootstrap: str, partitions: int = 8, tag: str | None = None):
        self.tag = tag or uuid.uuid4().hex[:8]
        topics = {f"PERSONA_{t.upper()}": f"bench-{self.tag}.{t.removesuffix('_topic')}" for t in TOPICS}
        super().__init__(PERSONA_BOOTSTRAP=bootstrap, PERSONA_APP_ID=f"bench-{self.tag}",
                         PERSONA_PARTITIONS=str(partitions), **topics)
        self.dir = REPO / ".local" / "bench" / self.tag
        self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self)

    def group_topics(self) -> list[str]:
        """The topics the workers consume in their consumer group (the others are read group-less)."""
        s, groupless = self.settings, ("catalog_topic", "dlq_topic", "models_topic", "rules_topic", "relations_topic")
        return [getattr(s, t) for t in TOPICS if t not in groupless]

    def persona(self, *args: str, timeout: float = 120) -> None:
        subprocess.run([PERSONA, *args], env={**os.environ, **self}, check=True, timeout=timeout,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def cleanup(self) -> None:
        """Delete this deployment's topics (Faust's changelogs, the no-op app's too) and worker data."""
        asyncio.run(delete_topics(self.settings.bootstrap, prefix=(f"bench-{self.tag}", f"bench-noop-{self.tag}")))
        shutil.rmtree(self.dir / "data", ignore_errors=True)


class Proc:
    """A child process we started; stopped by its own pid only."""

    def __init__(self, args: list[str], log: Path, env: dict | None = None, stdout=None):
        self.log = log
        self.proc = subprocess.Popen(args, env={**os.environ, **(env or {})},
                                     stdout=stdout or open(log, "ab"),
                                     stderr=open(log, "ab") if stdout else subprocess.STDOUT)
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:]) if self.log.exists() else ""


def start_noop(dep: Deployment, topics: list[str], events: int = 10**12, offset_reset: str = "earliest",
               loglevel: str = "info") -> Proc:
    """The Faust no-op app (benchmarks/noop_app.py) of this deployment reading ``topics``; it writes
    ``dep.dir / "noop.json"`` once it has seen ``events`` events. ``info`` by default: at warn and
    above Faust lowers the root logger to DEBUG for its terminal spinner."""
    (dep.dir / "data").mkdir(exist_ok=True)
    env = {"NOOP_APP_ID": f"bench-noop-{dep.tag}", "NOOP_TOPIC": ",".join(topics), "NOOP_EVENTS": str(events),
           "NOOP_BOOTSTRAP": dep.settings.bootstrap, "NOOP_DATADIR": str(dep.dir / "data" / "noop"),
           "NOOP_RESULT": str(dep.dir / "noop.json"), "NOOP_OFFSET_RESET": offset_reset}
    return Proc([sys.executable, str(Path(__file__).with_name("noop_app.py")), "worker", "-l", loglevel],
                dep.dir / "noop.log", env=env)


def start_traffic(dep: Deployment, topic: str, rate: float, timeout: float = 60) -> Proc:
    """benchmarks/traffic.py producing to ``topic`` at ``rate`` events/s, returned once it sends
    (it builds its events first); its reports go to ``dep.dir / "traffic.out"``."""
    out = dep.dir / "traffic.out"
    proc = Proc([sys.executable, str(Path(__file__).with_name("traffic.py")), "--bootstrap", dep.settings.bootstrap,
                 "--topic", topic, "--rate", str(rate)], dep.dir / "traffic.log", stdout=open(out, "w"))
    deadline = time.monotonic() + timeout
    while "started" not in out.read_text() and time.monotonic() < deadline and proc.alive():
        time.sleep(0.2)
    return proc


class Worker(Proc):
    """One ``persona worker`` of a deployment, HTTP on a free loopback port."""

    def __init__(self, dep: Deployment, name: str = "w1", traced: bool = False, port: int | None = None):
        (dep.dir / "data").mkdir(exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, str(Path(__file__).with_name("traced_worker.py"))] if traced else [PERSONA, "worker"]
        super().__init__([*cmd, "--web-port", str(self.port), "--datadir", str(dep.dir / "data" / name)],
                         dep.dir / f"{name}.log", env=dep)

    def get(self, path: str, timeout: float = 5) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
            return json.loads(resp.read())

    def wait_ready(self, timeout: float = 90) -> "Worker":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"worker exited:\n{self.tail()}")
            try:
                if self.get("/health").get("status") == "ok":
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"worker not ready in {timeout} s:\n{self.tail()}")

    def counters(self) -> Counter:
        return Counter(self.get("/health")["counters"])


# --- events ----------------------------------------------------------------------------------

def catalog_ids() -> list[str]:
    """Item ids of the shared catalog, most reviewed first (popularity order for the skew)."""
    products = read_catalog(default_catalog_path())
    return [p.item_id for p in sorted(products, key=lambda p: (-p.reviews, p.item_id))]


def make_events(n: int, users: int, items: list[str], *, end: float | None = None, span: float = 3600.0,
                seed: int = 0, prefix: str = "u") -> list[dict]:
    """``n`` GA4 events of ``users`` shoppers, in event-time order, ending at ``end`` (default now).

    Each shopper has sessions of views with a few add_to_cart and purchases of viewed items,
    5 to 90 s apart; items are drawn with a popularity skew over the catalog.
    """
    rng = random.Random(seed)
    end = time.time() if end is None else end
    pick = popularity_skew(items)
    per_user = Counter(rng.randrange(users) for _ in range(n))
    out = [e for u, count in per_user.items() for e in shopper_events(rng, f"{prefix}-{u}", count, pick, end, span)]
    out.sort(key=lambda e: e["timestamp"])
    return out


def popularity_skew(items: list[str]):
    """A function drawing an item with ``rng``, the item of rank r weighing 1 / (r + 10)."""
    cum, total = [], 0.0
    for rank in range(len(items)):
        total += 1.0 / (rank + 10)
        cum.append(total)
    return lambda rng: items[min(bisect.bisect_left(cum, rng.random() * total), len(items) - 1)]


def shopper_events(rng: random.Random, user: str, count: int, pick, end: float, span: float) -> Iterator[dict]:
    """``count`` events of one shopper, starting within ``span`` s before ``end``: sessions of views
    (items drawn by ``pick``) with a few add_to_cart and purchases of viewed items, 5 to 90 s apart."""
    t, session, viewed, cart = end - span * rng.random(), 0, [], []
    for k in range(count):
        if k == 0 or rng.random() < 0.08:
            session, viewed, cart = session + 1, [], []
        r = rng.random()
        if cart and r < 0.03:
            name, item = "purchase", rng.choice(cart)
        elif viewed and r < 0.13:
            name, item = "add_to_cart", rng.choice(viewed)
            cart.append(item)
        else:
            name, item = "view_item", pick(rng)
            viewed.append(item)
        t += rng.uniform(5, 90)
        e = {"event_id": uuid.UUID(int=rng.getrandbits(128)).hex, "event_name": name, "user_id": user,
             "session_id": f"s-{user}-{session}", "timestamp": int(min(t, end) * 1000),
             "items": [{"item_id": item, "price": round(rng.uniform(20, 150), 2), "quantity": 1}]}
        if name == "purchase":
            e["transaction_id"] = f"T-{rng.getrandbits(32):08x}"
        yield e


def records(events: Iterable[dict]) -> list[tuple[bytes, bytes]]:
    return [(e["user_id"].encode(), orjson.dumps(e)) for e in events]


async def produce(bootstrap: str, topic: str, recs: Iterable[tuple[bytes, bytes]]) -> int:
    """Produce keyed records as fast as the broker takes them (Kafka's default partitioner)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024, acks=1)
    await producer.start()
    n = 0
    try:
        pending = []
        for key, value in recs:
            pending.append(await producer.send(topic, value=value, key=key))
            n += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await producer.flush()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return n


# --- offsets ---------------------------------------------------------------------------------

async def partitions(admin: AIOKafkaAdminClient, topics: list[str]) -> list[TopicPartition]:
    return [TopicPartition(d["topic"], p["partition"]) for d in await admin.describe_topics(topics)
            if not d["error_code"] for p in d["partitions"]]


async def end_offsets(bootstrap: str, prefix: str) -> dict[str, int]:
    """Records per topic whose name starts with ``prefix`` (end minus beginning offsets)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        tps = await partitions(admin, sorted(t for t in await admin.list_topics() if t.startswith(prefix)))
        end, begin = await consumer.end_offsets(tps), await consumer.beginning_offsets(tps)
        out: Counter = Counter()
        for tp in tps:
            out[tp.topic] += end[tp] - begin[tp]
        return dict(sorted(out.items()))
    finally:
        await consumer.stop()
        await admin.close()


class OffsetWatcher:
    """Committed offsets of a consumer group against the topics' end offsets (one admin client)."""

    def __init__(self, bootstrap: str, group: str, topics: list[str]):
        self.bootstrap, self.group, self.topics = bootstrap, group, topics
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)

    async def __aenter__(self) -> "OffsetWatcher":
        await self.admin.start()
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def lag(self) -> dict[str, tuple[int, int]]:
        """Per topic: (committed, end), summed over partitions."""
        tps = await partitions(self.admin, self.topics)
        end = await self.consumer.end_offsets(tps)
        committed = await self.admin.list_consumer_group_offsets(self.group)
        out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for tp in tps:
            meta = committed.get(tp)
            out[tp.topic][0] += meta.offset if meta and meta.offset >= 0 else 0
            out[tp.topic][1] += end[tp]
        return {t: (c, e) for t, (c, e) in out.items()}


async def delete_topics(bootstrap: str, prefix: str | tuple[str, ...]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


# --- figures ---------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


def table(rows: list[list], header: list[str]) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in cells[1:]])


def profile(pid: int, seconds: float, out: Path, rate: int = 100) -> Proc:
    """Start py-spy on ``pid``: collapsed stacks of the threads holding the GIL (so neither waiting
    in a system call nor for a CPU taken by other processes) in ``out``; see :func:`hot_spots`."""
    return Proc([str(BIN / "py-spy"), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate",
                 str(rate), "--gil", "--threads", "--nonblocking", "--format", "raw", "-o", str(out)], out.with_suffix(".log"))


AGENTS = {"fold_aggregates": "downstream agents and trainer", "train (": "downstream agents and trainer",
          "(tables/replica.py)": "replicas (group-less copies of compacted topics)",
          "(aiohttp/": "HTTP server and views", "(web/": "HTTP server and views"}
LAYERS = [  # the first frame from the root that matches decides
    (("(persona/", "(dataclasses.py)", "(pydantic/"), "persona code (validation, profile, pipeline, blend)"),
    (("(faust/stores/", "(faust/tables/", "(mode/utils/collections.py)", "Mapping.get (<frozen"),
     "Faust table get/set (RocksDB, changelog buffer)"),
    (("(faust/topics.py)", "(faust/channels.py)", "(aiokafka/producer/", "(faust/transport/producer.py)",
      "(faust/transport/drivers/aiokafka.py)"), "produce path (Faust Topic.send, aiokafka accumulator and sender)"),
    (("(aiokafka/consumer/", "(faust/transport/consumer.py)", "(faust/transport/conductor.py)", "(faust/streams.py)",
      "(faust/serializers/", "(faust/events.py)"), "consume path (fetch, Faust dispatch to agent streams)"),
    (("(aiokafka/conn.py)", "(aiokafka/client.py)", "(aiokafka/protocol/"), "Kafka protocol I/O (requests, responses)"),
]


def layer(frames: list[str]) -> str:
    for f in frames:
        for marker, name in AGENTS.items():
            if marker in f:
                return name
    for f in frames:
        for markers, name in LAYERS:
            if any(m in f for m in markers):
                return name
    return "asyncio event loop and the rest"


FOCUS = ("ingest (agents/ingest.py)", "apply (agents/ingest.py)", "send_effects (agents/ingest.py)")


def hot_spots(collapsed: Path, top: int = 12, focus: tuple[str, ...] = FOCUS) -> str:
    """Where a py-spy profile (collapsed stacks, ``--gil --threads``) spends the main thread's time.

    Shares of the samples in which the main thread held the GIL (running Python, not waiting in a
    system call or for the CPU): by asyncio task or callback (the frames under ``Handle._run``; a
    truncated stack counts under its first frames), by callee of each ``focus`` function
    (inclusive), and by function at the top of the stack (self time).
    """
    total = 0
    tasks, own, layers = Counter(), Counter(), Counter()
    inner: dict[str, Counter] = {f: Counter() for f in focus}
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        if "MainThread" not in frames[0]:
            continue
        n, frames = int(n), [_short(f) for f in frames[1:]]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        layers[layer(frames)] += n
        runs = [i for i, f in enumerate(frames) if f.startswith("Handle._run ")]
        if runs:
            task = [f for f in frames[runs[0] + 1:runs[0] + 3]
                    if not f.startswith(("Agent._execute_actor", "Service._execute_task"))] or frames[runs[0] + 1:]
            task = task or ["Handle._run itself (callback dispatch)"]
        elif frames[0].startswith("<module>"):
            task = ["event loop itself (_run_once, select, timers)"]
        else:  # py-spy sampled a partial stack: it starts inside the task
            task = frames[:2]
        tasks[" > ".join(task[:2])] += n
        for f, callees in inner.items():
            if f in frames:
                i = frames.index(f)
                callees[frames[i + 1] if i + 1 < len(frames) else "(itself)"] += n
    if not total:
        return "no samples of the main thread"
    pct = lambda c: f"{100 * c / total:5.1f} %"  # noqa: E731
    lines = [f"main thread: {total} samples holding the GIL", "", "by layer (the first matching frame from the root):"]
    lines += [f"  {pct(c)}  {f}" for f, c in layers.most_common()]
    lines += ["", "by asyncio task / callback:"]
    lines += [f"  {pct(c)}  {f}" for f, c in tasks.most_common(top)]
    for f, callees in inner.items():
        if callees:
            lines += ["", f"inside {f} ({pct(sum(callees.values())).strip()}), by callee (inclusive):"]
            lines += [f"  {pct(c)}  {g}" for g, c in callees.most_common(top)]
    lines += ["", "self time, top functions:"]
    lines += [f"  {pct(c)}  {f}" for f, c in own.most_common(top)]
    return "\n".join(lines)


def _short(frame: str) -> str:
    """``fn (path/to/site-packages/pkg/mod.py:12)`` -> ``fn (pkg/mod.py)``: one entry per function."""
    name, _, where = frame.partition(" (")
    path = where[:-1].rsplit(":", 1)[0] if where.endswith(")") else where
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"
