"""The trainer: every training example in one order, on the one partition of ``persona.training``.

Labels resolve in the per-user stream (see :mod:`persona.pipeline`); the examples come here, the
worker that owns the training partition learns them and, every ``snapshot_every`` seconds,
publishes each changed model to the compacted ``persona.models`` topic. Every worker serves the
snapshots it reads from that topic, so all workers answer with the same model version, and a
trainer that takes over after a rebalance or a restart starts from the latest snapshot.

The learning and the snapshots' serialisation run in a process of their own
(:mod:`persona.training`), started at the first training record: River learns one example at a time
in Python, and on the worker's event loop it delayed the events and requests queued behind it. The
agent hands each record over and waits for it to be learnt, so records are learnt in order and
acknowledged only once learnt.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

from persona import training
from persona.agents import topics
from persona.agents.app import app, settings
from persona.models import dumps
from persona.tables.state import models

__all__ = ["TrainerProcess", "trainer", "train", "publish_models"]

logger = logging.getLogger(__name__)


class TrainerProcess:
    """The process that learns, and which published snapshots it has already been given or made."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self.offered: dict[str, int] = {}  # model -> newest snapshot version the process has seen

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._pool is None:  # spawn, not fork: the worker has threads (Kafka consumer, RocksDB)
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=training.exit_with, initargs=(os.getpid(),))
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except BrokenProcessPool:  # it died (killed, out of memory): the next call starts another
            logger.error("the trainer process died; starting another from the latest snapshots")
            self.stop()
            raise

    async def learn(self, record: bytes) -> None:
        newer = {name: snapshot for name, snapshot in models.data.items()
                 if snapshot.version > self.offered.get(name, -1)}
        if newer:  # another worker trained (a rebalance, a restart): continue from its snapshots
            await self.call(training.catch_up_with, {name: dumps(snapshot) for name, snapshot in newer.items()})
            # the versions handed over, not what the copy holds by now (it may have changed meanwhile)
            self.offered.update({name: snapshot.version for name, snapshot in newer.items()})
        for message in await self.call(training.learn_record, record):
            logger.warning(message)

    async def due(self) -> dict[str, tuple[int, bytes]]:
        if self._pool is None:  # this worker has not trained
            return {}
        snapshots = await self.call(training.due_snapshots)
        for name, (version, _) in snapshots.items():
            self.offered[name] = max(version, self.offered.get(name, -1))
        return snapshots

    def stop(self) -> None:
        pool, self._pool, self.offered = self._pool, None, {}
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


trainer = TrainerProcess()


@app.agent(topics.training)
async def train(stream):
    await models.ready.wait()
    async for record in stream:
        try:
            await trainer.learn(record)
        except BrokenProcessPool:
            await trainer.learn(record)  # once more, in a new process; a second death crashes the agent


@app.timer(settings.snapshot_every)
async def publish_models() -> None:
    try:
        due = await trainer.due()
    except BrokenProcessPool:  # what it learnt since its last snapshot is learnt again from then on
        return
    for name, (version, snapshot) in due.items():
        await topics.models.send(key=name.encode(), value=snapshot)
        logger.info("published %s model v%s (%d bytes)", name, version, len(snapshot))


@app.on_before_shutdown.connect
async def stop_trainer(app, **kwargs) -> None:  # after the streams stopped
    trainer.stop()
