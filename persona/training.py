"""The trainer's learning, kept in a process of its own: every training example, in one order.

:class:`Trainer` holds the online models and learns each example; ``learn_record``, ``catch_up_with``
and ``due_snapshots`` are what the worker calls in its trainer process (one
``concurrent.futures.ProcessPoolExecutor`` worker, see :mod:`persona.agents.trainer`), so that
River's learning and the snapshots' serialisation never hold up the worker's event loop. They take
and return bytes and plain values only.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Mapping

import orjson

from persona.models import Collaborative, IntentModel, ReRanker, dumps, loads

__all__ = ["Trainer", "FRESH", "learn_record", "catch_up_with", "due_snapshots", "exit_with"]


FRESH = {"intent": IntentModel, "reranker": ReRanker, "cf": Collaborative}


class Trainer:
    def __init__(self) -> None:
        self.models: dict[str, Any] = {name: make() for name, make in FRESH.items()}
        self.published: dict[str, int] = {}

    def catch_up(self, snapshots: Mapping[str, Any]) -> None:
        """Continue from a newer snapshot (another worker trained while this one did not)."""
        for name, snapshot in snapshots.items():
            if name in self.models and snapshot.version > self.models[name].version:
                self.models[name] = loads(dumps(snapshot))  # a copy: serving keeps the published one
                self.published[name] = snapshot.version

    def learn(self, example: Mapping[str, Any]) -> None:
        name = example["model"]
        if name == "reset":
            self.reset(example["names"])
        elif name == "forget":
            self.models["cf"].forget(example["user"])
        elif name == "cf":
            self.models["cf"].learn(example["user"], example["item"], float(example["weight"]))
        else:
            self.models[name].learn(example["features"], bool(example["label"]))

    def reset(self, names: list[str]) -> None:
        """Start the named models afresh, versioned above everything published before.

        Snapshots are compared by version (a trainer catches up with a newer one), so a fresh
        model at version 0 would lose to the old snapshot; it is published at the next tick.

        >>> t = Trainer()
        >>> t.learn({"model": "cf", "user": "u1", "item": "i1", "weight": 1.0})
        >>> t.due().keys(), t.models["cf"].version
        (dict_keys(['cf']), 1)
        >>> t.reset(["cf"])
        >>> t.models["cf"].version, t.models["cf"].known_user("u1"), list(t.due())
        (2, False, ['cf'])
        """
        if not isinstance(names, list) or any(n not in FRESH for n in names):
            raise ValueError(f"cannot reset {names!r}: the models are {', '.join(FRESH)}")
        for name in names:
            fresh = FRESH[name]()
            fresh.version = max(self.models[name].version, self.published.get(name, 0)) + 1
            self.models[name] = fresh

    def due(self) -> dict[str, bytes]:
        """Snapshots of the models that learnt since they were last published."""
        out = {}
        for name, model in self.models.items():
            if model.version != self.published.get(name, 0):
                out[name] = dumps(model)
                self.published[name] = model.version
        return out


_trainer = Trainer()  # the trainer process's own (module state lives as long as the process)


def learn_record(raw: bytes) -> list[str]:
    """Learn the examples of one training record (a JSON list, as a flush sends them); what was ignored."""
    try:
        examples = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        return [f"ignored malformed training record {raw[:200]!r}: {err}"]
    ignored = []
    for example in examples if isinstance(examples, list) else [examples]:
        try:
            _trainer.learn(example)
        except (KeyError, TypeError, ValueError) as err:
            ignored.append(f"ignored {str(example.get('model') if isinstance(example, dict) else example)[:200]!r} "
                           f"example: {err!r}")
    return ignored


def catch_up_with(snapshots: Mapping[str, bytes]) -> None:
    """Continue from these published snapshots where they are newer than the trainer's models."""
    _trainer.catch_up({name: loads(raw) for name, raw in snapshots.items()})


def due_snapshots() -> dict[str, tuple[int, bytes]]:
    """(version, snapshot) of each model that learnt since it was last published."""
    return {name: (_trainer.published[name], raw) for name, raw in _trainer.due().items()}


def exit_with(parent_pid: int, every: float = 1.0) -> None:
    """Start the trainer process: it ends within ``every`` seconds of the worker that started it,
    however the worker ended (after a kill -9 the process pool's queue would keep it waiting)."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every)
        os._exit(0)
    threading.Thread(target=watch, name="exit-with-worker", daemon=True).start()
