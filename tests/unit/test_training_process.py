"""The trainer's learning in a process of its own: records in, snapshots out, across a real process boundary."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import orjson
import pytest

from persona import training
from persona.models import dumps, loads
from persona.training import Trainer


@pytest.fixture
def process():
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def record(*examples) -> bytes:
    return orjson.dumps(list(examples))


def test_a_record_is_learnt_in_the_process_and_published_once(process):
    ignored = process.submit(training.learn_record, record(
        {"model": "cf", "user": "u1", "item": "i1", "weight": 1.0},
        {"model": "knn"},
        {"model": "intent", "features": {"views": 3}, "label": True})).result()
    assert ignored == ["ignored 'knn' example: KeyError('knn')"]
    due = process.submit(training.due_snapshots).result()
    assert {name: version for name, (version, _) in due.items()} == {"cf": 1, "intent": 1}
    assert loads(due["cf"][1]).known_user("u1")
    assert process.submit(training.due_snapshots).result() == {}  # nothing learnt since


def test_a_malformed_record_is_reported_not_raised(process):
    assert process.submit(training.learn_record, b"{not json").result()[0].startswith("ignored malformed")


def test_the_process_continues_from_a_newer_snapshot(process):
    elsewhere = Trainer()
    for n in range(3):
        elsewhere.learn({"model": "cf", "user": f"u{n}", "item": "i1", "weight": 1.0})
    snapshot = elsewhere.due()["cf"]
    process.submit(training.catch_up_with, {"cf": snapshot}).result()
    process.submit(training.learn_record, record({"model": "cf", "user": "u9", "item": "i2", "weight": 1.0})).result()
    cf = loads(process.submit(training.due_snapshots).result()["cf"][1])
    assert cf.version == 4 and all(cf.known_user(u) for u in ("u0", "u1", "u2", "u9"))
    process.submit(training.catch_up_with, {"cf": dumps(elsewhere.models["cf"])}).result()  # older: ignored
    assert process.submit(training.due_snapshots).result() == {}
