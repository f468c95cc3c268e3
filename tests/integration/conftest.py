"""Integration fixtures: the real local Kafka broker, persona workers as real processes.

Every test module gets its own app id and topics, so runs never see each other's data.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from persona.settings import TOPICS, Settings

BOOTSTRAP = os.environ.get("PERSONA_TEST_BOOTSTRAP", "127.0.0.1:9092")
PERSONA = str(Path(sys.executable).with_name("persona"))
ADMIN_TOKEN = "test-admin-" + uuid.uuid4().hex


def _broker_up() -> bool:
    host, port = BOOTSTRAP.split(",")[0].split(":")
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) == 0


@pytest.fixture(scope="session", autouse=True)
def broker() -> str:
    if not _broker_up():
        pytest.fail(f"no Kafka broker on {BOOTSTRAP}: start it with scripts/kafka.sh up (make test does)")
    return BOOTSTRAP


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Env(dict):
    """PERSONA_* variables of one isolated deployment (app id, topics) on the test broker."""

    @classmethod
    def fresh(cls, partitions: int = 4) -> "Env":
        tag = uuid.uuid4().hex[:8]
        topics = {f"PERSONA_{name.upper()}": f"test-{tag}.{name.removesuffix('_topic')}" for name in TOPICS}
        return cls(PERSONA_BOOTSTRAP=BOOTSTRAP, PERSONA_APP_ID=f"persona-test-{tag}",
                   PERSONA_PARTITIONS=str(partitions), PERSONA_SNAPSHOT_EVERY="1", PERSONA_ADMIN_TOKEN=ADMIN_TOKEN,
                   **topics)

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self)

    def run(self, *args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
        """Run the persona command with this deployment's settings."""
        return subprocess.run([PERSONA, *args], env={**os.environ, **self}, capture_output=True, text=True,
                              timeout=timeout, check=True, **kwargs)


class Worker:
    """One ``persona worker`` process."""

    def __init__(self, env: Env, datadir: Path, port: int | None = None):
        self.env, self.datadir, self.port = env, datadir, port or free_port()
        self.proc: subprocess.Popen | None = None
        self.log = datadir.with_suffix(".log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> "Worker":
        self.datadir.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [PERSONA, "worker", "--web-port", str(self.port), "--datadir", str(self.datadir), "-l", "info"],
            env={**os.environ, **self.env}, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.tail_log()}")
            try:
                if self.get("/health")[1].get("status") == "ok":
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready after {timeout} s:\n{self.tail_log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else 0

    def tail_log(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""

    def get(self, path: str) -> tuple[int, dict]:
        return self.fetch(path)[:2]

    def fetch(self, path: str) -> tuple[int, dict, dict]:
        """Status, JSON body and headers of a GET."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as resp:
                return resp.status, json.loads(resp.read()), dict(resp.headers)
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}"), dict(err.headers)


async def _produce(env: Env, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5)
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value=value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def produce_events(env: Env, events: list[dict | bytes]) -> None:
    """Produce events keyed by user id, as a storefront does (raw bytes are sent as they are, unkeyed)."""
    records = [(None, e) if isinstance(e, bytes) else (e["user_id"].encode(), orjson.dumps(e)) for e in events]
    asyncio.run(_produce(env, env.settings.events_topic, records))


def event(user: str, name: str = "view_item", items: tuple[str, ...] = (), ts: float | None = None,
          **extra) -> dict:
    return {
        "event_id": uuid.uuid4().hex, "event_name": name, "user_id": user, "session_id": f"s-{user}",
        "timestamp": int((ts or time.time()) * 1000), "items": [{"item_id": i} for i in items], **extra,
    }


def wait_for(check, timeout: float = 10, every: float = 0.02):
    """Poll ``check`` until it returns something truthy; return it, or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(every)


def models_settled(*workers: Worker, expect: tuple[str, ...] = (), quiet: float = 2.5, timeout: float = 60) -> dict:
    """Wait until every worker serves the same model versions, unchanged for ``quiet`` seconds, with
    the ``expect``-ed models among them (the trainer's process may take seconds to start and publish)."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        seen = [w.get("/models")[1] for w in workers]
        current = seen[0] if all(s == seen[0] for s in seen) else None
        if current is not None and not all(current.get(name, {}).get("version", 0) > 0 for name in expect):
            current = None
        if current is None or current != last:
            last, since = current, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return current
        time.sleep(0.25)
    pytest.fail("model versions did not settle")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Env:
    """A fresh app id and topics, with the shared perfume catalog published."""
    env = Env.fresh()
    env.run("topics")
    env.run("load-catalog")
    return env


@pytest.fixture(scope="module")
def worker(deployment, tmp_path_factory):
    w = Worker(deployment, tmp_path_factory.mktemp("worker") / "w1").start()
    yield w
    w.stop()
