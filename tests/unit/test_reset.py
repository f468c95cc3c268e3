"""Resetting models and engagement figures (``POST /admin/reset``), without Kafka."""

from __future__ import annotations

import doctest

import pytest

from persona import feedback
from persona import training as trainer_module
from persona.training import Trainer
from persona.models import dumps, loads
from persona.web.admin import InvalidReset, parse_reset

FEATURES = {"position": 1, "source": "content"}


def trained() -> Trainer:
    t = Trainer()
    for n in range(5):
        t.learn({"model": "cf", "user": f"u{n}", "item": "i1", "weight": 1.0})
        t.learn({"model": "reranker", "features": FEATURES, "label": n % 2 == 0})
        t.learn({"model": "intent", "features": FEATURES, "label": n == 0})
    return t


def published(t: Trainer) -> dict:
    """What serving reads after the trainer's next tick: the latest snapshot of each model."""
    return {name: loads(snapshot) for name, snapshot in t.due().items()}


def test_the_trainer_doctests_pass():
    assert doctest.testmod(trainer_module).failed == 0


def test_a_reset_model_is_fresh_and_versioned_above_the_published_one():
    t = trained()
    old = published(t)
    t.learn({"model": "reset", "names": ["reranker", "cf"]})
    for name in ("reranker", "cf"):
        assert t.models[name].version == old[name].version + 1
    assert t.models["reranker"].metrics()["examples"] == 0
    assert not t.models["cf"].known_user("u1")
    assert t.models["intent"] is not old["intent"] and t.models["intent"].metrics()["examples"] == 5  # untouched
    new = published(t)
    assert set(new) == {"reranker", "cf"} and new["reranker"].metrics()["examples"] == 0


def test_catching_up_with_the_old_snapshot_does_not_bring_the_old_model_back():
    t = trained()
    old = published(t)
    t.reset(["intent", "reranker", "cf"])
    t.catch_up(old)  # what every worker still serves until the next tick
    assert all(t.models[name].metrics()["examples"] == 0 for name in ("intent", "reranker"))
    assert not t.models["cf"].known_user("u1")
    t.learn({"model": "reranker", "features": FEATURES, "label": True})
    t.catch_up(old)
    assert t.models["reranker"].metrics()["examples"] == 1


def test_a_trainer_that_takes_over_after_a_reset_continues_from_the_fresh_snapshot():
    first = trained()
    first.due()
    first.reset(["cf"])
    fresh = published(first)["cf"]
    second = Trainer()
    second.catch_up({"cf": loads(dumps(fresh))})
    assert second.models["cf"].version == fresh.version and not second.models["cf"].known_user("u1")


def test_a_reset_before_anything_was_published_still_moves_the_version_up():
    t = Trainer()
    t.reset(["intent"])
    assert t.models["intent"].version == 1 and list(t.due()) == ["intent"]


@pytest.mark.parametrize("names", [["knn"], ["cf", "knn"], "cf", None, [["cf"]]])
def test_an_invalid_reset_changes_nothing(names):
    t = trained()
    before = dict(t.models)
    with pytest.raises((ValueError, TypeError)):
        t.learn({"model": "reset", "names": names})
    assert t.models == before


def test_an_engagement_reset_zeroes_the_counts_and_counting_starts_again():
    stats = feedback.add(feedback.add({}, "impressions", 10, ts=60.0), "clicks", 3, ts=61.0)
    assert feedback.summary("cf|home", stats)["clicks"] == 3
    stats = feedback.add(stats, feedback.RESET, 0, ts=62.0)
    row = feedback.summary("cf|home", stats)
    assert all(row[kind] == 0 for kind in feedback.KINDS) and row["ctr"] is None
    assert feedback.series([("cf|home", stats)]) == []
    stats = feedback.add(stats, "impressions", 2, ts=63.0)
    assert feedback.summary("cf|home", stats)["impressions"] == 2


@pytest.mark.parametrize("body, models, engagement", [
    (b'{"models": ["intent", "reranker", "cf"], "engagement": true}', ["intent", "reranker", "cf"], True),
    (b'{"models": ["cf", "cf"]}', ["cf"], False),
    (b'{"engagement": true}', [], True),
])
def test_valid_reset_requests(body, models, engagement):
    req = parse_reset(body)
    assert (req.models, req.engagement) == (models, engagement)


@pytest.mark.parametrize("body, reason", [
    (b"", "body: a JSON object is required"),
    (b"not json", "body: Invalid JSON"),
    (b"[]", "body: Input should be an object"),
    (b"{}", "body: nothing to reset"),
    (b'{"models": [], "engagement": false}', "body: nothing to reset"),
    (b'{"models": ["cf", "knn"]}', "models.1: Input should be 'intent', 'reranker' or 'cf'"),
    (b'{"models": "cf"}', "models: Input should be a valid array"),
    (b'{"engagement": "yes"}', "engagement: Input should be a valid boolean"),
    (b'{"engagement": true, "everything": true}', "everything: Extra inputs are not permitted"),
])
def test_invalid_reset_requests_say_what_is_wrong(body, reason):
    with pytest.raises(InvalidReset) as err:
        parse_reset(body)
    assert str(err.value).startswith(reason), str(err.value)
