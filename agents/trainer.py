"""The trainer: every training example in one order, on the one partition of ``persona.training``.

Labels resolve in the per-user stream (see :mod:`persona.pipeline`); the examples come here, the
worker that owns the training partition learns them and, every ``snapshot_every`` seconds,
publishes each changed model to the compacted ``persona.models`` topic. Every worker serves the
snapshots it reads from that topic, so all workers answer with the same model version, and a
trainer that takes over after a rebalance or a restart starts from the latest snapshot.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import orjson

from persona.agents import topics
from persona.agents.app import app, settings
from persona.models import Collaborative, IntentModel, ReRanker, dumps, loads
from persona.tables.state import models

__all__ = ["Trainer", "trainer", "train", "publish_models"]

logger = logging.getLogger(__name__)


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


trainer = Trainer()


@app.agent(topics.training)
async def train(stream):
    await models.ready.wait()
    async for value in stream:
        trainer.catch_up(models.data)
        try:
            examples = orjson.loads(value)
        except orjson.JSONDecodeError as err:
            logger.warning("ignoring malformed training record %r: %s", value[:200], err)
            continue
        for example in examples if isinstance(examples, list) else [examples]:  # a flush sends a list
            try:
                trainer.learn(example)
            except (KeyError, TypeError, ValueError) as err:
                logger.warning("ignoring malformed training example %r: %s", str(example)[:200], err)


@app.timer(settings.snapshot_every)
async def publish_models() -> None:
    for name, snapshot in trainer.due().items():
        await topics.models.send(key=name.encode(), value=snapshot)
        logger.info("published %s model v%s (%d bytes)", name, trainer.published[name], len(snapshot))
