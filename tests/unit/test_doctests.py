"""Every module under persona/ passes its doctests (new modules are picked up automatically)."""

from __future__ import annotations

import contextlib
import doctest
import importlib
import io
import pkgutil

import pytest

import persona

MODULES = ["persona"] + sorted(m.name for m in pkgutil.walk_packages(persona.__path__, prefix="persona."))
MODULES += ["persona.tables.cache", "persona.agents.ingest", "persona.agents.tools", "persona.agents.rebalance", "persona.agents.topics",
            "persona.web.views"]  # shipped from tables/, agents/ and web/


def test_the_modules_are_discovered():
    assert {"persona.events", "persona.profile", "persona.recommend", "persona.catalog"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        result = doctest.testmod(module, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctests failed in {name}:\n{report.getvalue()}"
