"""Session co-visitation: decay, window and position weights, bounded memory, one mechanism."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persona.covisit import (
    MAX_EXPONENT, CoVisitation, apply_updates, decay_factor, pair_updates, position_weights, score_session,
    top_neighbours,
)

HOUR = 3600.0


def weights(cv: CoVisitation, item: str, now: float | None = None) -> dict[str, float]:
    return dict(cv.neighbours(item, k=1000, now=now))


def test_an_old_pair_weighs_less_than_a_fresh_one_with_the_same_count():
    cv = CoVisitation(half_life=HOUR)
    cv.learn(["a"], "old", ts=0.0)
    cv.learn(["a"], "fresh", ts=2 * HOUR)
    assert weights(cv, "a") == {"fresh": 1.0, "old": 0.25}
    assert cv.neighbours("a")[0][0] == "fresh"
    # the same, read later: both fade, the ratio stays
    assert weights(cv, "a", now=4 * HOUR) == {"fresh": 0.25, "old": 0.0625}


def test_repeated_old_pairs_can_still_win_but_fade():
    cv = CoVisitation(half_life=HOUR)
    for _ in range(8):
        cv.learn(["a"], "old", ts=0.0)
    cv.learn(["a"], "fresh", ts=2 * HOUR)
    assert weights(cv, "a") == {"old": 2.0, "fresh": 1.0}
    assert weights(cv, "a", now=3 * HOUR) == {"old": 1.0, "fresh": 0.5}


def test_window_and_position_weighting():
    updates = pair_updates(["a", "b", "c"], "d", ts=0.0, window=2)
    assert updates == [("c", "d", 1.0), ("d", "c", 1.0), ("b", "d", 0.5), ("d", "b", 0.5)]  # a is out
    cv = CoVisitation(window=3)
    cv.learn(["a", "b", "c"], "d", ts=0.0)
    assert weights(cv, "d") == pytest.approx({"c": 1.0, "b": 0.5, "a": 1 / 3})
    assert weights(cv, "a") == pytest.approx({"d": 1 / 3})


def test_the_closest_occurrence_counts_and_self_pairs_and_reloads_add_nothing():
    assert pair_updates(["a", "d", "a"], "d", ts=0.0) == [("a", "d", 1.0), ("d", "a", 1.0)]
    assert pair_updates(["a", "b"], "b", ts=0.0) == []  # a reload of the item just viewed
    assert pair_updates([], "a", ts=0.0) == []


def test_neighbours_are_bounded_and_the_strongest_survive():
    cv = CoVisitation(max_neighbours=3)
    for _ in range(5):
        cv.learn(["hub"], "strong", ts=0.0)
    for i in range(200):
        cv.learn(["hub"], f"x{i}", ts=float(i))
    stored = cv._neighbours["hub"]
    assert len(stored) <= 3 + 1  # at most max_neighbours + slack (max(3 // 2, 1))
    assert "strong" in stored
    assert len(cv.neighbours("hub", k=100)) <= 3
    assert cv.neighbours("hub", k=1)[0][0] == "strong"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 40)), min_size=1, max_size=300),
       st.integers(1, 10))
def test_memory_stays_bounded(clicks, max_neighbours):
    cv = CoVisitation(max_neighbours=max_neighbours)
    sessions: dict[int, list[str]] = {}
    for t, (session, item) in enumerate(clicks):
        earlier = sessions.setdefault(session, [])
        cv.learn(earlier, str(item), ts=float(t))
        earlier.append(str(item))
    slack = max(max_neighbours // 2, 1)
    assert all(len(d) <= max_neighbours + slack for d in cv._neighbours.values())


def random_clicks(n: int, seed: int, step: float = 60.0) -> list[tuple[str, str, float]]:
    rng = random.Random(seed)
    return [(f"s{rng.randrange(40)}", f"i{int(rng.paretovariate(1.2)) % 60}", 1_700_000_000.0 + i * step)
            for i in range(n)]


def replay_both(clicks, **params):
    """The same clicks through CoVisitation.learn and through a table of neighbour dicts, as a
    stream keyed by item would do it: each click's updates routed to their first item."""
    cv = CoVisitation(**params)
    table: dict[str, dict[str, float]] = {}
    origin = clicks[0][2]
    sessions: dict[str, list[str]] = {}
    for session, item, ts in clicks:
        earlier = sessions.setdefault(session, [])
        cv.learn(earlier, item, ts)
        routed: dict[str, list[tuple[str, float]]] = {}
        for a, b, w in pair_updates(earlier, item, ts, cv.window, cv.half_life, origin):
            routed.setdefault(a, []).append((b, w))
        for a, updates in routed.items():
            table[a] = apply_updates(table.get(a, {}), updates, cv.max_neighbours)
        earlier.append(item)
    return cv, table


@pytest.mark.parametrize("max_neighbours", [10_000, 8])  # without and with pruning
def test_pair_updates_and_apply_updates_equal_learn(max_neighbours):
    clicks = random_clicks(2000, seed=max_neighbours)
    cv, table = replay_both(clicks, max_neighbours=max_neighbours)
    assert table == cv._neighbours
    assert any(len(d) > 8 + 4 for d in table.values()) == (max_neighbours > 8)  # pruning happened


def test_apply_updates_is_pure():
    before = {"a": 1.0}
    after = apply_updates(before, [("a", 1.0), ("b", 1.0)])
    assert before == {"a": 1.0} and after == {"a": 2.0, "b": 1.0}


def test_renormalisation_keeps_reads_right_and_numbers_finite():
    # a 60 s half-life over 25 hours of clicks: 2 ** 1500 would overflow without renormalising
    half_life, clicks = 60.0, random_clicks(3000, seed=3, step=30.0)
    cv = CoVisitation(half_life=half_life, max_neighbours=10_000)
    actual: dict[str, dict[str, list[tuple[float, float]]]] = {}  # a -> b -> [(weight, ts)]
    sessions: dict[str, list[str]] = {}
    for session, item, ts in clicks:
        earlier = sessions.setdefault(session, [])
        cv.learn(earlier, item, ts)
        for a, b, w in pair_updates(earlier, item, ts, cv.window, half_life, origin=ts):
            actual.setdefault(a, {}).setdefault(b, []).append((w, ts))
        earlier.append(item)
    now = clicks[-1][2]
    assert cv.origin > clicks[0][2]  # the origin moved
    assert (now - cv.origin) / half_life <= MAX_EXPONENT
    assert all(math.isfinite(w) for d in cv._neighbours.values() for w in d.values())
    for item in {i for _, i, _ in clicks[-50:]}:
        expected = {b: sum(w * 2 ** (-(now - t) / half_life) for w, t in ws) for b, ws in actual[item].items()}
        got = dict(cv.neighbours(item, k=5, now=now))
        assert got == pytest.approx({b: expected[b] for b in got}, rel=1e-9)
        assert sorted(got.values(), reverse=True) == pytest.approx(sorted(expected.values(), reverse=True)[:len(got)])


def test_recommend_excludes_and_explains():
    cv = CoVisitation()
    for session in (["a", "b", "c"], ["a", "b", "d"], ["e", "d"]):
        for i, item in enumerate(session):
            cv.learn(session[:i], item, ts=0.0)
    recs = cv.recommend(["a", "b"], k=10, exclude={"a", "b"})
    items = [i for i, _, _ in recs]
    assert {"a", "b"}.isdisjoint(items)
    assert set(items) == {"c", "d"}  # e is only d's neighbour
    assert dict((i, why) for i, _, why in recs)["c"] == "b"  # b is the last item and c closer to it
    assert cv.recommend(["a", "b"], exclude=["c", "d", "a", "b"]) == []
    assert cv.recommend(["unknown"]) == []


def test_recommend_weighs_the_last_item_most():
    cv = CoVisitation()
    cv.learn(["x"], "after_x", ts=0.0)
    cv.learn(["y"], "after_y", ts=0.0)
    assert [i for i, _, _ in cv.recommend(["x", "y"], exclude={"x", "y"})] == ["after_y", "after_x"]
    assert [i for i, _, _ in cv.recommend(["y", "x"], exclude={"x", "y"})] == ["after_x", "after_y"]
    assert position_weights(["x", "y", "x"]) == {"y": 2 / 3, "x": 1.0}


def test_pure_readers():
    assert decay_factor(now=10.0, origin=10.0, half_life=5.0) == 1.0
    assert top_neighbours({}, k=3) == []
    table = {"a": {"b": 1.0}, "z": {"b": 0.0}}
    assert score_session(["a"], table.get, normalise=False, factor=0.5) == [("b", 0.5, "a")]
    assert score_session(["z"], table.get) == []  # weights that underflowed to 0 vote for nothing


def test_bad_parameters():
    with pytest.raises(ValueError):
        CoVisitation(half_life=0)
    with pytest.raises(ValueError):
        CoVisitation(window=0)
