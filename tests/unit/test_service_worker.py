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
