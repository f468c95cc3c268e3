"""GET load on a changing set of workers, judged answer by answer: the rebalance test and
``benchmarks/rebalance.py`` both drive it."""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

REQUEST_TIMEOUT = 15.0  # > the routing's own wait for a current copy (persona.web.routing.ROUTE_WAIT)


def get(url: str, timeout: float = REQUEST_TIMEOUT) -> tuple[int, dict, Any]:
    """Status, JSON body and headers of a GET; status 0 when no answer came."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read()), resp.headers
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}"), err.headers
    except (OSError, ValueError) as err:
        return 0, {"error": repr(err)}, {}


@dataclass
class Probe:
    at: float
    worker: str
    path: str
    error: str | None
    seconds: float
    served_by: str | None
    read_from: str | None


@dataclass
class Load:
    """Threads sending GET /users (80 %) and /recommendations for random users to random live workers.

    ``judge(path, user, status, body)`` says why an answer is wrong, or None when it is right.
    """

    users: list[str]
    judge: Callable[[str, str, int, dict], str | None]
    threads: int = 3
    live: list = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)

    def __post_init__(self):
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._inflight: Counter[str] = Counter()
        self._workers = [threading.Thread(target=self._run, args=(seed,), daemon=True) for seed in range(self.threads)]

    def _run(self, seed: int) -> None:
        rng, users = random.Random(seed), sorted(self.users)
        while not self._stop.is_set():
            with self._lock:
                w = rng.choice(self.live) if self.live else None
                if w is not None:
                    self._inflight[w.url] += 1
            if w is None:
                time.sleep(0.05)
                continue
            user = rng.choice(users)
            path = "users" if rng.random() < 0.8 else "recommendations"
            started = time.monotonic()
            try:
                status, body, headers = get(f"{w.url}/{path}/{user}")
            finally:
                with self._lock:
                    self._inflight[w.url] -= 1
            self.probes.append(Probe(started, w.url, path, self.judge(path, user, status, body),
                                     time.monotonic() - started, headers.get("X-Persona-Served-By"),
                                     headers.get("X-Persona-Read-From")))

    def start(self) -> "Load":
        for t in self._workers:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(REQUEST_TIMEOUT + 5)

    def add(self, w) -> None:
        with self._lock:
            self.live.append(w)

    def drain(self, w) -> None:
        """Send nothing more to ``w`` and wait for what it is answering."""
        with self._lock:
            self.live.remove(w)
        deadline = time.monotonic() + REQUEST_TIMEOUT + 5
        while self._inflight[w.url] and time.monotonic() < deadline:
            time.sleep(0.02)
        if self._inflight[w.url]:
            raise TimeoutError(f"{w.url} still answering {self._inflight[w.url]} requests")
