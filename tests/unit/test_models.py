import math
import pickle
import random
import zlib
from types import SimpleNamespace

import pytest

from persona.catalog import Product
from persona.models import (
    Collaborative,
    IntentModel,
    ReRanker,
    dumps,
    journey_stage,
    loads,
    session_features,
)
from persona.profile import Profile

DAY = 86400.0
T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC

CATALOG = {
    p.item_id: p
    for p in [
        Product(item_id="w1", brand="A", name="W1", family="woody", price=256.0),
        Product(item_id="w2", brand="B", name="W2", family="woody", price=1024.0),
        Product(item_id="w3", brand="A", name="W3", family="woody", price=512.0),
        Product(item_id="f1", brand="C", name="F1", family="floral", price=512.0),
        Product(item_id="f2", brand="D", name="F2", family="floral", price=0.0),
    ]
}


def session_profile(entries, start, first_seen=None, events=None, **kw):
    """A profile whose current session started at ``start`` with the given item entries."""
    recent = [list(e) for e in entries]
    last = max([start] + [e[1] for e in recent])
    session = {"id": "s", "start": start, "last": last, "events": events or len(recent)}
    return Profile("u", recent=recent, session=session, first_seen=first_seen or start,
                   last_seen=last, **kw)


# session_features ---------------------------------------------------------------------------


def test_features_dwell_depth_and_counts():
    p = session_profile(
        [["w1", T0 - 3 * DAY, "view_item"],  # an older session: not counted
         ["w1", T0, "view_item"], ["w2", T0 + 60, "view_item"], ["w2", T0 + 90, "select_item"],
         ["f1", T0 + 120, "view_item"], ["w2", T0 + 200, "add_to_cart"]],
        start=T0, first_seen=T0 - 3 * DAY, events=7, cart=["w2"])
    x = session_features(p, now=T0 + 300, catalog=CATALOG)
    assert x["dwell"] == pytest.approx(math.log1p(300))
    assert x["depth"] == 7.0
    assert x["distinct_items"] == 3.0
    assert (x["views"], x["selects"], x["cart_adds"], x["cart_size"]) == (3.0, 1.0, 1.0, 1.0)
    assert x["returning"] == 1.0
    assert x["since_prev"] == pytest.approx(math.log1p(100))
    assert x["family"] == "woody"
    assert x["family_share"] == pytest.approx(2 / 3)
    assert x["price_band"] == pytest.approx((8 + 10 + 9) / 3)  # log2 of 256, 1024, 512
    assert x["hour_sin"] ** 2 + x["hour_cos"] ** 2 == pytest.approx(1.0)
    assert all(isinstance(v, float) for k, v in x.items() if k != "family")


def test_features_dwell_is_capped_and_new_user_is_not_returning():
    p = session_profile([["w1", T0, "view_item"]], start=T0, first_seen=T0 - 3600)
    x = session_features(p, now=T0 + 10 * 3600, catalog=CATALOG)
    assert x["dwell"] == pytest.approx(math.log1p(2 * 3600))
    assert x["returning"] == 0.0
    assert x["past_purchases"] == 0.0


def test_features_ignore_entries_after_now_and_empty_profile():
    p = session_profile([["w1", T0, "view_item"], ["w2", T0 + 100, "view_item"]], start=T0)
    assert session_features(p, now=T0 + 50, catalog=CATALOG)["views"] == 1.0
    x = session_features(Profile("new"), now=T0, catalog=CATALOG)
    assert x["dwell"] == 0.0 and x["views"] == 0.0 and x["family"] == "" and x["family_share"] == 0.0


def test_features_hour_of_day_is_utc():
    midnight = 19_675 * DAY  # a UTC midnight
    x = session_features(Profile("u"), now=midnight + 6 * 3600, catalog={})
    assert x["hour_sin"] == pytest.approx(1.0) and x["hour_cos"] == pytest.approx(0.0, abs=1e-9)


# IntentModel --------------------------------------------------------------------------------


def synthetic_session(rng):
    start = T0 + rng.randrange(0, 30) * DAY + rng.randrange(0, int(DAY))
    n_views = rng.randrange(0, 9)
    carted = rng.random() < 0.5
    entries = [[rng.choice(list(CATALOG)), start + 30 * i, "view_item"] for i in range(n_views)]
    if carted:
        entries.append(["w1", start + 30 * n_views + 10, "add_to_cart"])
    p = session_profile(entries, start=start, first_seen=start - rng.choice([0, 5 * DAY]),
                        cart=["w1"] if carted else [])
    converted = n_views >= 4 and carted
    return session_features(p, now=start + 30 * n_views + 20, catalog=CATALOG), converted


def test_intent_metrics_are_prequential():
    model = IntentModel()
    assert model.metrics() == {"examples": 0, "log_loss": None, "roc_auc": None, "positive_rate": None}
    x, _ = synthetic_session(random.Random(0))
    assert model.predict(x) == pytest.approx(0.5)
    model.learn(x, converted=True)
    m = model.metrics()
    # the first prediction (0.5) was scored before the model learnt from the example
    assert m["examples"] == 1 and m["log_loss"] == pytest.approx(math.log(2))
    assert m["positive_rate"] == 1.0 and m["roc_auc"] is None
    assert model.predict(x) > 0.5
    assert model.version == 1


def test_intent_learns_separable_rule():
    rng = random.Random(42)
    model = IntentModel()
    for _ in range(400):
        x, y = synthetic_session(rng)
        model.learn(x, y)
    m = model.metrics()
    assert m["examples"] == 400 and model.version == 400
    assert m["roc_auc"] > 0.8
    assert 0.1 < m["positive_rate"] < 0.5
    test = [synthetic_session(rng) for _ in range(200)]
    pos = [model.predict(x) for x, y in test if y]
    neg = [model.predict(x) for x, y in test if not y]
    assert sum(pos) / len(pos) > sum(neg) / len(neg) + 0.3
    assert all(0.0 <= p <= 1.0 for p in pos + neg)


# journey_stage ------------------------------------------------------------------------------


def views(*items, start=T0):
    return [[item, start + 10 * i, "view_item"] for i, item in enumerate(items)]


@pytest.mark.parametrize("entries, kw, intent, expected", [
    (views("w1"), {}, None, "browse"),
    (views("w1", "f1", "f2"), {}, 0.2, "browse"),  # 3 views, no repeat, families unknown
    (views("w1", "w2", "f1"), {"catalog": CATALOG}, None, "consider"),  # two woody items
    (views("w1", "f1", "w1"), {}, None, "consider"),  # re-viewed item
    (views("w1", "w1"), {}, None, "browse"),  # repeat but fewer than 3 views
    (views("w1"), {}, 0.5, "consider"),
    (views("w1"), {"cart": ["w1"]}, 0.9, "cart"),
    (views("w1") + [["w1", T0 + 20, "add_to_cart"]], {"purchased": ["w1"]}, None, "purchase"),
    (views("w1"), {"purchased": ["f1"]}, None, "returning"),
    (views("w1"), {"first_seen": T0 - 2 * DAY}, None, "returning"),
    (views("w1"), {"first_seen": T0 - 2 * DAY}, 0.9, "consider"),
])
def test_journey_stage(entries, kw, intent, expected):
    catalog = kw.pop("catalog", None)
    p = session_profile(entries, start=T0, **kw)
    assert journey_stage(p, intent, now=T0 + 100, catalog=catalog) == expected


def test_journey_stage_purchase_in_earlier_session_is_returning():
    old = [["w1", T0 - 3 * DAY, "add_to_cart"]]
    p = session_profile(old + views("f1"), start=T0, purchased=["w1"], first_seen=T0 - 3 * DAY)
    assert journey_stage(p, None, now=T0 + 100) == "returning"


# ReRanker -----------------------------------------------------------------------------------


def test_reranker_features():
    user = session_profile(views("w1", "w2", "f1"), start=T0)
    x = ReRanker.features(CATALOG["w3"], "cf", 0.5, 2, None, user, CATALOG, popularity=10.0)
    assert x["source"] == "cf" and x["slot"] == "none" and x["log_position"] == pytest.approx(math.log(3))
    assert x["family_match"] == 1.0 and x["brand_seen"] == 1.0
    assert x["price_ratio"] == pytest.approx(9 - (8 + 10 + 9) / 3)
    assert x["log_score"] == pytest.approx(math.log1p(0.5))
    assert x["popularity"] == pytest.approx(math.log1p(10.0))
    y = ReRanker.features(CATALOG["f2"], "trending", 0.5, 0, "home", None, CATALOG)
    assert (y["family_match"], y["brand_seen"], y["price_ratio"], y["popularity"]) == (0, 0, 0, 0)
    assert 0 < y["rating"] <= 1.1


def test_reranker_learns_position_bias():
    rng = random.Random(7)
    model = ReRanker()
    items = list(CATALOG.values())
    for _ in range(600):
        pos = rng.randrange(0, 10)
        x = ReRanker.features(rng.choice(items), rng.choice(["cf", "content"]), rng.random(), pos,
                              rng.choice(["home", None]), None, CATALOG)
        model.learn(x, rng.random() < 0.4 / (1 + pos))
    m = model.metrics()
    assert m["examples"] == 600 and m["roc_auc"] > 0.6 and isinstance(m["roc_auc"], float)
    first = ReRanker.features(items[0], "cf", 0.5, 0, "home", None, CATALOG)
    later = ReRanker.features(items[0], "cf", 0.5, 5, "home", None, CATALOG)
    assert model.predict(first) > model.predict(later)

    # the blender's scorer gives exactly the prediction from the shopper's whole profile
    user = session_profile(views("w1", "w2", "f1"), start=T0)
    score = model.scorer(CATALOG)(user, "home")
    for rank, item in enumerate(items):
        c = SimpleNamespace(item_id=item.item_id, source="cf", score=0.5)
        expected = model.predict(ReRanker.features(item, "cf", 0.5, rank, "home", user, CATALOG))
        assert score(c, rank) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("model_class", [ReRanker, IntentModel])
def test_the_compiled_predictor_equals_the_river_pipeline(model_class):
    rng = random.Random(11)
    model = model_class()
    for _ in range(400):
        x = {"source": rng.choice(["cf", "content", "trending"]), "slot": rng.choice(["home", "cart"]),
             "a": rng.gauss(3, 2), "b": rng.random(), "constant": 1.0}
        model._learn(x, rng.random() < x["b"])
    predict = model.compiled()
    probes = [{"source": "cf", "slot": "home", "a": 2.0, "b": 0.5, "constant": 1.0},
              {"source": "never seen", "slot": "home", "a": -40.0, "b": 9.0},  # unseen category, a missing key
              {"new number": 5.0, "new text": "x"},  # nothing the model knows
              {"a": 1e6, "b": 1e6}]  # saturates the sigmoid
    probes += [{"source": rng.choice(["cf", "content"]), "a": rng.gauss(3, 4), "b": rng.random()} for _ in range(50)]
    for x in probes:
        assert predict(x) == pytest.approx(model.predict(x), rel=1e-9, abs=1e-12), x


# Collaborative ------------------------------------------------------------------------------

BLOCKS = {"A": [f"a{i}" for i in range(8)], "B": [f"b{i}" for i in range(8)]}
NOISE = [f"n{i}" for i in range(16)]


def trained_cf(seed=3, **kw):
    rng = random.Random(seed)
    cf = Collaborative(seed=seed, **kw)
    users = [(f"{g}{u}", g) for g in BLOCKS for u in range(15)]
    for item in NOISE:  # items someone touched once, so they are known
        cf.learn("noise-user", item, 1.0)
    for _ in range(20):
        rng.shuffle(users)
        for user, g in users:
            cf.learn(user, rng.choice(BLOCKS[g]), rng.choice([1.0, 3.0, 5.0]))
    return cf


def test_collaborative_ranks_co_liked_items_above_others():
    cf = trained_cf()
    for user, group in [(f"{g}{u}", g) for g in BLOCKS for u in range(15)]:
        other = "B" if group == "A" else "A"
        scores = dict(zip(cf.items, cf.score(user, cf.items)))
        mean = lambda ids: sum(scores[i] for i in ids) / len(ids)  # noqa: E731
        assert mean(BLOCKS[group]) > mean(BLOCKS[other]) + 0.1
        assert mean(BLOCKS[group]) > mean(NOISE) + 0.2
        top = [i for i, _ in cf.top(user, k=5)]
        assert sum(i in BLOCKS[group] for i in top) >= 4


def test_collaborative_generalises_to_untouched_items():
    cf = Collaborative(seed=5)
    rng = random.Random(5)
    for _ in range(20):
        for u in range(15):
            cf.learn(f"A{u}", rng.choice(BLOCKS["A"]), 1.0)
            cf.learn(f"B{u}", rng.choice(BLOCKS["B"]), 1.0)
    for _ in range(5):  # a new user who touched only a0 and a1
        cf.learn("new", "a0", 1.0)
        cf.learn("new", "a1", 1.0)
    ranked = cf.top("new", k=14, exclude={"a0", "a1"})
    scores = dict(ranked)
    untouched_a = sum(scores[i] for i in BLOCKS["A"][2:]) / 6
    assert untouched_a > sum(scores[i] for i in BLOCKS["B"]) / 8 + 0.1
    assert sum(i in BLOCKS["A"] for i, _ in ranked[:6]) >= 4


def test_collaborative_weights():
    cf = trained_cf()
    before = cf.score("A0", ["a3"])[0]
    for _ in range(5):
        cf.learn("A0", "a3", 0.0)  # weight <= 0: the user does not want it
    assert cf.score("A0", ["a3"])[0] < before
    before = cf.score("A0", ["b3"])[0]
    cf.learn("A0", "b3", 0.4)  # a weak signal still counts as a positive
    assert cf.score("A0", ["b3"])[0] > before
    assert cf.score("A0", []) == []


def test_collaborative_top_excludes_and_known_user():
    cf = trained_cf()
    exclude = set(BLOCKS["A"][:4])
    top = cf.top("A1", k=10, exclude=exclude)
    assert len(top) == 10 and not exclude & {i for i, _ in top}
    assert [s for _, s in top] == sorted((s for _, s in top), reverse=True)
    assert cf.known_user("A1") and not cf.known_user("Z9")
    n_users = len(cf.mf.u_latents)
    assert len(cf.top("Z9", k=3)) == 3  # unknown user: item biases only, nothing stored
    assert cf.score("Z9", ["unknown-item"]) == [pytest.approx(cf.mf.global_mean.get())]
    assert len(cf.mf.u_latents) == n_users and "unknown-item" not in cf.mf.i_latents


def test_collaborative_bounded_users():
    cf = Collaborative(max_users=5, seed=1)
    for u in range(12):
        cf.learn(f"u{u}", f"i{u % 4}", 1.0)
    cf.learn("u7", "i0", 1.0)  # touched again: survives the next evictions
    for u in range(12, 16):
        cf.learn(f"u{u}", "i1", 1.0)
    assert [u for u in map(str, (f"u{i}" for i in range(16))) if cf.known_user(u)] == [
        "u7", "u12", "u13", "u14", "u15"]
    assert len(cf.mf.u_latents) == 5 and len(cf.mf.u_biases) == 5
    assert cf.version == 17


# Snapshots ----------------------------------------------------------------------------------


def test_round_trip_gives_identical_predictions():
    rng = random.Random(1)
    intent = IntentModel()
    for _ in range(50):
        intent.learn(*synthetic_session(rng))
    reranker = ReRanker()
    feats = [ReRanker.features(CATALOG["w1"], "cf", 0.3, p, "home", None, CATALOG) for p in range(5)]
    for i, x in enumerate(feats * 4):
        reranker.learn(x, i % 5 == 0)
    cf = trained_cf()

    probe = [synthetic_session(rng)[0] for _ in range(10)]
    intent2 = loads(dumps(intent))
    assert [intent2.predict(x) for x in probe] == [intent.predict(x) for x in probe]
    assert intent2.metrics() == intent.metrics() and intent2.version == intent.version
    reranker2 = loads(dumps(reranker), expected=ReRanker)
    assert [reranker2.predict(x) for x in feats] == [reranker.predict(x) for x in feats]
    cf2 = loads(dumps(cf))
    assert cf2.top("A0", k=10) == cf.top("A0", k=10) and cf2.version == cf.version
    # the restored model keeps learning exactly like the original (same RNG state)
    for m in (cf, cf2):
        m.learn("A0", "b1", 5.0)
    assert cf2.score("A0", cf.items) == cf.score("A0", cf.items)


def test_snapshot_errors():
    data = dumps(IntentModel())
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    for bad in [b"", b"garbage", bytes(flipped), data[:-5], b"XXXX" + data[4:],
                data[:4] + bytes([99]) + data[5:]]:
        with pytest.raises(ValueError):
            loads(bad)
    with pytest.raises(ValueError, match="expected ReRanker"):
        loads(data, expected=ReRanker)
    with pytest.raises(TypeError):
        dumps(object())


def test_snapshot_refuses_foreign_payload():
    data = dumps(IntentModel())
    size = data[5]
    header = data[:6 + size]
    evil = header + zlib.compress(b"cos\nsystem\n(S'true'\ntR.")
    with pytest.raises(ValueError, match="not allowed"):
        loads(evil)
    wrong = header + zlib.compress(pickle.dumps(ReRanker()))
    with pytest.raises(ValueError, match="payload is ReRanker"):
        loads(wrong)


def test_collaborative_top_is_the_best_k_of_all_scores_ties_by_id():
    cf = trained_cf()
    for user, k, exclude in [("A1", 5, set()), ("B3", 12, set(BLOCKS["B"][:3])), ("Z9", 40, {"n1"}), ("A2", 1, set())]:
        everything = [i for i in cf.items if i not in exclude]
        expected = sorted(zip(everything, cf.score(user, everything)), key=lambda t: (-t[1], t[0]))[:k]
        got = cf.top(user, k, exclude)
        assert [i for i, _ in got] == [i for i, _ in expected]
        assert [s for _, s in got] == pytest.approx([s for _, s in expected])
    assert cf.top("A1", 0) == [] and Collaborative().top("A1", 3) == []


def test_collaborative_top_follows_learning_and_snapshots_do_not_carry_the_item_matrix():
    cf = trained_cf()
    before = cf.top("A1", 3)
    for _ in range(30):
        cf.learn("A1", "n5", 5.0)
    assert ("n5" in [i for i, _ in cf.top("A1", 3)]) and cf.top("A1", 3) != before
    assert "_matrix" in cf.__dict__ and "_matrix" not in loads(dumps(cf)).__dict__
    restored = loads(dumps(cf)).top("A1", 3)
    assert [i for i, _ in restored] == [i for i, _ in cf.top("A1", 3)]
    assert [s for _, s in restored] == pytest.approx([s for _, s in cf.top("A1", 3)])
