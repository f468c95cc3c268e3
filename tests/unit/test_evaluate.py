"""The prequential harness and the baselines, on data where the answer is known, and on real data."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persona.catalog import data_dir
from persona.datasets import Click, read_sessions
from persona.evaluate import (
    POP, SKNN, SPOP, VSKNN, Blend, CoVisit, ItemKNN, SessionRecency, default_methods, evaluate, format_table,
    main, plot,
)

DATA = data_dir() / "sessions"  # $PERSONA_DATA, else ../shared/data beside the repository
YOOCHOOSE_TEST = DATA / "yoochoose-clicks-100k_test.txt"


def sessions(*sequences: str, start: int = 0) -> list[Click]:
    """One session per string, one click per character, sessions one after the other."""
    return [Click(f"s{start + n}", None, item, ts=1000.0 * (start + n) + i)
            for n, seq in enumerate(sequences) for i, item in enumerate(seq)]


ABC = sessions(*["abc"] * 10)


def test_sequential_patterns_are_learned_by_item_knn_and_covisitation():
    covisit = CoVisit()
    results = evaluate(ABC, {"item-kNN": ItemKNN(), "CoVisitation": covisit}, progress=False, warmup=3)
    assert results["item-kNN"]["predictions"] == 18  # b after a, c after a b: 2 per session, 9 sessions
    assert results["item-kNN"]["HR@20"] == 1.0
    assert results["CoVisitation"]["HR@20"] == 1.0
    # item-kNN ranks b's neighbours a and c equally (a first by id): c comes second
    assert results["item-kNN"]["MRR@20"] == pytest.approx((1 + 1 / 2) / 2)
    # co-visitation also counts a's neighbours, so c beats a after a b once c has been seen
    # often enough (a, a session item, is b's neighbour too and is not excluded)
    assert results["item-kNN"]["MRR@20"] < results["CoVisitation"]["MRR@20"] < 1.0
    assert covisit.recommend(("a", "b"), None, 20, 0.0, ("a", "b")) == ["c"]
    assert covisit.recommend(("a",), None, 1, 0.0, ()) == ["b"]


def test_pop_by_hand():
    # before each scored prediction a was counted once more than b and c (ties keep first-seen order):
    # b after a is 2nd (a, b, c); c after a b is 3rd (a, b, c). With k=2 only b is a hit.
    for method in (POP(), SPOP()):
        r = evaluate(ABC, {"m": method}, k=2, progress=False, warmup=3)["m"]
        assert r["HR@2"] == 0.5
        assert r["MRR@2"] == pytest.approx(0.5 / 2)
        r = evaluate(ABC, {"m": type(method)()}, k=20, progress=False, warmup=3)["m"]
        assert r["HR@20"] == 1.0 and r["MRR@20"] == pytest.approx((1 / 2 + 1 / 3) / 2)


def test_report_from_ts_is_the_same_as_warmup():
    a = evaluate(ABC, {"m": CoVisit()}, progress=False, warmup=6)["m"]
    b = evaluate(ABC, {"m": CoVisit()}, progress=False, report_from_ts=2000.0)["m"]
    assert a["predictions"] == b["predictions"] == 16
    for metric in ("HR@20", "MRR@20", "coverage", "popularity"):
        assert a[metric] == b[metric]


def test_the_first_occurrence_of_an_item_is_a_miss_for_every_method():
    clicks = sessions("ab", "ac", "ad")  # b, c and d are each new when predicted
    results = evaluate(clicks, default_methods(), progress=False)
    for name, r in results.items():
        assert r["predictions"] == 3
        assert r["HR@20"] == 0.0, name


class Spy:
    """Records what it had learned each time it was asked."""

    def __init__(self):
        self.learned: list[Click] = []
        self.asked: list[tuple[tuple[str, ...], int, float]] = []

    def learn(self, click):
        self.learned.append(click)

    def recommend(self, session_items, user_id, k, now, exclude):
        self.asked.append((tuple(session_items), len(self.learned), now))
        return [c.item_id for c in self.learned]  # everything it knows


def test_prediction_happens_before_learning():
    clicks = sessions("abc", "de", "f")
    spy = Spy()
    results = evaluate(clicks, {"spy": spy}, progress=False)
    # asked before b (knowing a), before c (knowing a b), before e (knowing a b c d)
    assert spy.asked == [(("a",), 1, 0.0), (("a", "b"), 2, 1.0), (("d",), 4, 1000.0)]
    assert spy.learned == clicks
    assert results["spy"]["HR@20"] == 0.0  # it can only ever recommend what it has seen


def test_sknn_does_not_find_the_current_session_among_its_neighbours():
    clicks = sessions("aa")  # the only session holding a is the current one
    results = evaluate(clicks, {"SKNN": SKNN(), "V-SKNN": VSKNN(), "S-POP": SPOP()}, progress=False)
    assert results["SKNN"]["HR@20"] == results["V-SKNN"]["HR@20"] == 0.0
    assert results["S-POP"]["HR@20"] == 1.0
    sknn = SKNN()
    for c in sessions("ab", "ac"):
        sknn.learn(c)
    assert sknn.recommend(("a",), None, 20, 0.0, (), session_id="s9") == ["a", "b", "c"]
    assert sknn.recommend(("a",), None, 20, 0.0, ("a",), session_id="s1") == ["b"]


def test_v_sknn_prefers_neighbours_of_the_last_item():
    m = VSKNN()
    for c in sessions("xp", "yq"):
        m.learn(c)
    assert m.recommend(("x", "y"), None, 2, 0.0, ("x", "y")) == ["q", "p"]
    assert m.recommend(("y", "x"), None, 2, 0.0, ("x", "y")) == ["p", "q"]


def random_clicks(n: int, seed: int, users: bool = False) -> list[Click]:
    rng = random.Random(seed)
    return [Click(f"s{i // 4 + rng.randrange(3)}", f"u{rng.randrange(5)}" if users else None,
                  f"i{int(rng.paretovariate(1.0)) % 50}", float(i)) for i in range(n)]


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 20), st.booleans())
def test_metrics_are_within_bounds(seed, k, users):
    results = evaluate(random_clicks(300, seed, users), default_methods(), k=k, progress=False)
    for name, r in results.items():
        assert 0.0 <= r[f"MRR@{k}"] <= r[f"HR@{k}"] <= 1.0, name
        assert 0.0 <= r["coverage"] <= 1.0 and 0.0 <= r["popularity"] <= 1.0, name
        assert r["ms/prediction"] >= 0.0 and r["ms/click"] >= 0.0


def test_pop_keeps_its_top_list_right():
    rng = random.Random(5)
    pop = POP(size=10)
    for i in range(3000):
        pop.learn(Click("s", None, f"i{int(rng.paretovariate(0.8)) % 40}", float(i)))
        if i % 97 == 0:
            expected = sorted(pop.counts.values(), reverse=True)[:10]
            assert [pop.counts[item] for item in pop.ranking(10)] == expected


def test_session_recency_and_blend():
    assert SessionRecency().recommend(("a", "b", "a", "c"), None, 2, 0.0, ("c",)) == ["a", "b"]
    blend = Blend()
    assert set(blend.methods) == {"covisit", "session", "pop"}
    for c in ABC[:6]:
        blend.learn(c)
    # the session's items first (the last one first), then what co-visitation predicts after them
    assert blend.recommend(("a", "b"), None, 3, 0.0, ()) == ["b", "a", "c"]
    only_pop = Blend(weights={"covisit": 0.0, "session": 0.0})
    for c in ABC[:6]:
        only_pop.learn(c)
    assert only_pop.recommend(("a",), None, 3, 0.0, ()) == ["a", "b", "c"]  # all counted twice: first seen first


def test_format_table():
    results = evaluate(ABC, {"POP": POP(), "CoVisitation": CoVisit()}, progress=False)
    table = format_table(results)
    lines = table.splitlines()
    assert lines[0].split() == ["method", "HR@20", "MRR@20", "coverage", "popularity", "ms/prediction",
                                "ms/click", "predictions"]
    assert lines[2].startswith("POP ") and lines[3].startswith("CoVisitation ")
    assert lines[2].split()[-1] == "20"
    assert format_table({}) == "(no results)"


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    results = evaluate(ABC, {"POP": POP(), "item-kNN": ItemKNN()}, progress=False)
    path = tmp_path / "chart.png"
    plot(results, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_main_runs_on_a_file(tmp_path, capsys):
    def write(name, clicks):
        rows = [f"{c.session_id[1:]}\t{c.item_id}\t{c.ts}" for c in clicks]
        (tmp_path / name).write_text("SessionId\tItemId\tTime\n" + "\n".join(rows) + "\n")
        return str(tmp_path / name)

    train, test = write("train.txt", ABC), write("test.txt", sessions(*["abc"] * 5, start=10))
    assert main([train, test, "--methods", "POP,CoVisitation", "--no-progress", "--limit", "9"]) == 0
    out = capsys.readouterr().out
    assert "CoVisitation" in out and "S-POP" not in out
    assert "30 clicks learned first, 9 replayed, 6 predictions scored" in out
    with pytest.raises(SystemExit):
        main([test, "--methods", "nope"])


@pytest.mark.skipif(not YOOCHOOSE_TEST.exists(), reason="shared session data not available")
def test_every_method_scores_on_real_data():
    clicks = read_sessions(YOOCHOOSE_TEST)[:3000]
    results = evaluate(clicks, default_methods(), progress=False)
    for name, r in results.items():
        for metric in ("HR@20", "MRR@20", "coverage", "popularity"):
            assert 0.0 < r[metric] <= 1.0, (name, metric, r[metric])
    assert results["Blend"]["HR@20"] > results["POP"]["HR@20"]
