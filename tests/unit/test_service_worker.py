"""The worker keeps the root logger at the level asked for (Faust lowers it to DEBUG for its spinner)."""

from __future__ import annotations

import logging
import sys

import faust
import pytest

from persona.agents.app import app


@pytest.fixture
def restored_logging():
    root, stdout, stderr = logging.getLogger(), sys.stdout, sys.stderr
    level, handlers = root.level, list(root.handlers)
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.stdout, sys.stderr = stdout, stderr


@pytest.mark.parametrize("worker_class, expected", [(None, logging.WARNING), (faust.Worker, logging.DEBUG)])
def test_a_quiet_worker_does_not_build_debug_records(restored_logging, worker_class, expected):
    worker = (worker_class or app.conf.Worker)(app, loglevel="warning", redirect_stdouts=False)
    worker._setup_logging()
    assert restored_logging.level == expected  # faust.Worker: the case the persona worker avoids


async def test_the_worker_collects_the_young_generation_less_often(monkeypatch):
    import gc

    async def faust_first_start(self):  # Faust's own: workdir, logging, signal handlers
        started.append(self)

    started, before = [], gc.get_threshold()
    monkeypatch.setattr(faust.Worker, "on_first_start", faust_first_start)
    worker = app.conf.Worker(app, loglevel="info", redirect_stdouts=False)
    try:
        await worker.on_first_start()
        assert gc.get_threshold() == (worker.YOUNG_GC_THRESHOLD, *before[1:]) and started == [worker]
    finally:
        gc.set_threshold(*before)
