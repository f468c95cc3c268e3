"""Content similarity, best-sellers and the real-time recommender, on a hand-made and on the real catalog."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persona.catalog import Product, default_catalog_path, read_catalog
from persona.events import parse_event
from persona.popularity import best_sellers, prior
from persona.profile import Profile
from persona.recommend import HALF_LIFE, RECENT_WINDOW, recommend
from persona.similarity import GENDER_MISMATCH, ContentIndex

NOW = 1_800_000_000.0
MINUTE = 60.0


def product(item_id: str, brand: str, name: str, family: str, gender: str, notes: str, price: float = 100.0,
            rating: float = 4.0, reviews: int = 10) -> Product:
    return Product(item_id=item_id, brand=brand, name=name, category="Eau de Parfum", family=family,
                   gender=gender, notes=notes, price=price, rating=rating, reviews=reviews)


# m2, w2 and u2 differ only in gender; w3 shares only family and brand with m1; x shares nothing with anyone.
SMALL = [
    product("m1", "Atelier", "Cedar Man", "woody", "Men", "cedar, vetiver, oud, bergamot"),
    product("m2", "Bosco", "Forest", "woody", "Men", "cedar, vetiver, oud"),
    product("w2", "Bosco", "Forest", "woody", "Women", "cedar, vetiver, oud"),
    product("u2", "Bosco", "Forest", "woody", "Unisex", "cedar, vetiver, oud"),
    product("w3", "Atelier", "Leather Man", "woody", "Men", "leather"),
    product("f1", "Casa", "Rose", "floral", "Women", "rose, jasmine", price=300),
    product("f2", "Casa", "Rose Musk", "floral", "Women", "rose, jasmine, musk", price=300),
    product("x", "Delta", "Sea", "aquatic", "Unisex", "sea salt, seaweed", price=40),
]
BY_ID = {p.item_id: p for p in SMALL}


@pytest.fixture(scope="module")
def small() -> ContentIndex:
    return ContentIndex(SMALL)


@pytest.fixture(scope="module")
def real():
    path = default_catalog_path()
    if not path.is_file():
        pytest.skip(f"shared catalog not found at {path}")
    products = read_catalog(path)
    return products, ContentIndex(products), best_sellers(products, {}.get, n=len(products))


def ev(event_id: str, name: str, item: str, at: float, user: str = "u1"):
    data = {"event_id": event_id, "event_name": name, "user_id": user, "session_id": "s1",
            "timestamp": int(at * 1000), "items": [{"item_id": item}]}
    return parse_event(json.dumps(data).encode(), now=at)


def user(*events, user_id: str = "u1") -> Profile:
    p = Profile(user_id)
    for i, (name, item, at) in enumerate(events):
        p.apply(ev(f"e{i}", name, item, at, user_id))
    return p


def ids(recs) -> list[str]:
    return [r.item_id for r in recs.items]


def check_neighbours(index: ContentIndex, item_id: str, k: int) -> None:
    me = index.products[item_id]
    nbs = index.neighbours(item_id, k)
    assert len(nbs) <= k
    assert item_id not in [n.item_id for n in nbs]
    assert len({n.item_id for n in nbs}) == len(nbs)
    scores = [n.score for n in nbs]
    assert scores == sorted(scores, reverse=True)
    for n in nbs:
        other = index.products[n.item_id]
        assert set(n.shared_notes) == set(me.notes) & set(other.notes)
        assert n.shared_notes or n.same_family
        assert n.same_family == (me.family == other.family != "")  # an unknown family is no common family
        assert n.same_brand == (me.brand == other.brand)


# --- similarity -------------------------------------------------------------------------------


@pytest.mark.parametrize("item_id", [p.item_id for p in SMALL])
def test_neighbours_exclude_the_item_are_sorted_and_share_notes_or_family(small, item_id):
    check_neighbours(small, item_id, k=50)


def test_neighbours_are_the_items_sharing_notes_or_family(small):
    assert {n.item_id for n in small.neighbours("m1")} == {"m2", "w2", "u2", "w3"}
    assert [n.item_id for n in small.neighbours("f1")] == ["f2"]
    assert small.neighbours("x") == []
    assert small.neighbours("not-in-catalog") == []


def test_shared_notes_rank_above_family_alone(small):
    order = [n.item_id for n in small.neighbours("m1")]
    assert order.index("m2") < order.index("w3")
    assert small.neighbours("m1")[0].shared_notes and set(small.neighbours("m1")[0].shared_notes) == {
        "cedar", "vetiver", "oud"}


def test_a_men_perfume_ranks_same_gender_above_an_otherwise_identical_women_one(small):
    scores = {n.item_id: n.score for n in small.neighbours("m1")}
    assert scores["m2"] > scores["w2"]
    assert scores["w2"] == pytest.approx(scores["m2"] * GENDER_MISMATCH, abs=1e-5)
    assert scores["u2"] == scores["m2"]  # unisex goes with both


def test_k_limits_the_number_of_neighbours(small):
    assert len(small.neighbours("m1", k=2)) == 2
    assert [n.item_id for n in small.neighbours("m1", k=2)] == [n.item_id for n in small.neighbours("m1")[:2]]


def test_a_rare_shared_note_says_more_than_a_common_one():
    index = ContentIndex([
        product("a", "A", "A", "woody", "Unisex", "oud, bergamot", price=100),
        product("rare", "B", "B", "spicy", "Unisex", "oud", price=1000),
        *[product(f"common{i}", f"C{i}", "C", "citrusy", "Unisex", "bergamot", price=1000) for i in range(3)],
    ])
    nbs = index.neighbours("a")
    assert nbs[0].item_id == "rare" and nbs[0].shared_notes == ("oud",)
    assert all(n.score < nbs[0].score for n in nbs[1:])


def test_real_catalog_neighbours_exclude_the_item_are_sorted_and_share_notes_or_family(real):
    products, index, _ = real
    for p in products[::25]:
        check_neighbours(index, p.item_id, k=20)
        assert len(index.neighbours(p.item_id, 20)) == 20  # a catalog this size always has 20


def test_real_catalog_men_perfumes_have_hardly_any_women_neighbours(real):
    products, index, _ = real
    genders = [index.products[n.item_id].gender
               for p in [p for p in products if p.gender == "Men"][::4] for n in index.neighbours(p.item_id, 10)]
    assert genders.count("Women") / len(genders) < 0.02
    women_share = sum(p.gender == "Women" for p in products) / len(products)
    assert women_share > 0.3  # so it is not the catalog that has few Women perfumes


def test_real_catalog_an_otherwise_identical_women_copy_ranks_below_the_men_original(real):
    products, _, _ = real
    men = [p for p in products if p.gender == "Men"]
    me = men[0]
    base = ContentIndex(products)
    twin = next(base.products[n.item_id] for n in base.neighbours(me.item_id, 50)
                if base.products[n.item_id].gender == "Men")
    index = ContentIndex([*products, twin.model_copy(update={"item_id": "women-twin", "gender": "Women"})])
    scores = {n.item_id: n.score for n in index.neighbours(me.item_id, len(index))}
    assert scores[twin.item_id] > scores["women-twin"]
    assert scores["women-twin"] == pytest.approx(scores[twin.item_id] * GENDER_MISMATCH, abs=1e-5)


# --- best-sellers -----------------------------------------------------------------------------


TWINS = [product(f"p{i}", "Same", "Same", "woody", "Men", "cedar", rating=4.0, reviews=20) for i in range(4)]


def ranking(counts: dict) -> list[str]:
    return [i for i, _ in best_sellers(TWINS, counts.get, n=len(TWINS))]


def test_with_equal_ratings_the_live_signal_decides():
    assert ranking({"p3": {"view_item": 1}}) == ["p3", "p0", "p1", "p2"]


def test_a_purchase_counts_more_than_many_views():
    assert ranking({"p1": {"view_item": 20}, "p2": {"purchase": 1}}) == ["p2", "p1", "p0", "p3"]


def test_an_add_to_cart_counts_more_than_a_view():
    assert ranking({"p1": {"view_item": 10}, "p2": {"add_to_cart": 1}})[:2] == ["p2", "p1"]


def test_event_names_without_a_weight_do_not_move_an_item():
    assert ranking({"p3": {"search": 100, "remove_from_cart": 5}}) == ranking({})


def test_rating_prior_orders_a_cold_shop():
    products = [product("few", "A", "A", "woody", "Men", "x", rating=5.0, reviews=1),
                product("many", "B", "B", "woody", "Men", "x", rating=4.7, reviews=500),
                product("poor", "C", "C", "woody", "Men", "x", rating=2.0, reviews=300),
                product("none", "D", "D", "woody", "Men", "x", rating=0.0, reviews=0)]
    assert [i for i, _ in best_sellers(products, {}.get, n=4)] == ["many", "few", "none", "poor"]
    unrated = product("none5", "D", "D", "woody", "Men", "x", rating=5.0, reviews=0)
    assert prior(unrated) == prior(products[3])  # a rating without reviews is no evidence


def test_best_sellers_are_unique_sorted_and_at_most_n(real):
    products, _, cold = real
    top = best_sellers(products, {}.get, n=10)
    assert top == cold[:10]
    assert len({i for i, _ in cold}) == len(products)
    scores = [s for _, s in cold]
    assert scores == sorted(scores, reverse=True)
    median_rating = sorted(p.rating for p in products)[len(products) // 2]
    by_id = {p.item_id: p for p in products}
    assert all(by_id[i].rating >= median_rating for i, _ in top)


def test_real_catalog_purchases_lift_an_item_more_than_views(real):
    products, _, cold = real
    last = cold[-1][0]

    def rank(counts):
        return [i for i, _ in best_sellers(products, {last: counts}.get, n=len(products))].index(last)

    assert rank({}) == len(products) - 1
    assert rank({"purchase": 1}) == 0  # log1p(5) is more than any difference in the rating prior
    assert rank({"purchase": 1}) < rank({"view_item": 1}) < rank({})
    assert rank({"view_item": 1}) > len(products) // 2  # one view barely moves it


# --- recommend --------------------------------------------------------------------------------


BEST = [(p.item_id, 1.0 - i / 100) for i, p in enumerate(sorted(SMALL, key=lambda p: p.item_id))]


def test_recommends_neighbours_of_what_was_just_viewed_with_the_reason(small):
    p = user(("view_item", "m1", NOW - 2 * MINUTE))
    recs = recommend(p, small, BEST, now=NOW, n=3)
    assert (recs.strategy, recs.fallback) == ("recently_viewed", False)
    assert ids(recs)[0] in {"m2", "u2"} and set(ids(recs)) == {"m2", "u2", "w3"}
    for r in recs.items:
        assert r.source == "recently_viewed"
        assert len(r.reasons) == 1
        assert BY_ID["m1"].title in r.reasons[0]  # "Atelier Cedar Man Eau de Parfum"
        assert "viewed" in r.reasons[0] and "2 min ago" in r.reasons[0]
    assert "cedar" in recs.items[0].reasons[0]


def test_excludes_purchased_cart_and_just_viewed_items(small):
    p = user(("purchase", "m2", NOW - 20 * MINUTE), ("add_to_cart", "u2", NOW - 10 * MINUTE),
             ("view_item", "m1", NOW - MINUTE), ("view_item", "f1", NOW - MINUTE))
    recs = recommend(p, small, BEST, now=NOW, n=len(SMALL))
    got = ids(recs)
    assert not {"m1", "m2", "u2", "f1"} & set(got)
    assert set(got) == {p.item_id for p in SMALL} - {"m1", "m2", "u2", "f1"}  # every other item fills in
    assert {r.item_id for r in recs.items if r.source == "recently_viewed"} == {"w2", "w3", "f2"}
    assert recs.items[-1].item_id == "x" and recs.items[-1].source == "best_sellers"


def test_unknown_user_gets_the_best_sellers(small):
    recs = recommend(None, small, BEST, now=NOW, n=3)
    assert (recs.strategy, recs.fallback) == ("best_sellers", True)
    assert ids(recs) == [i for i, _ in BEST[:3]]
    assert all(r.reasons == ["best-seller"] and r.source == "best_sellers" for r in recs.items)


def test_a_user_whose_last_view_is_older_than_the_window_gets_the_best_sellers(small):
    p = user(("view_item", "m1", NOW - RECENT_WINDOW - 1), ("purchase", "f1", NOW - RECENT_WINDOW - 1))
    recs = recommend(p, small, BEST, now=NOW, n=3)
    assert (recs.strategy, recs.fallback) == ("best_sellers", True)
    assert "f1" not in ids(recs)  # what they bought stays out
    assert ids(recs) == [i for i, _ in BEST if i != "f1"][:3]

    fresh = recommend(p, small, BEST, now=NOW - 2, n=3)  # one second inside the window
    assert (fresh.strategy, fresh.fallback) == ("recently_viewed", False)


def test_a_short_personal_list_is_filled_up_from_the_best_sellers(small):
    p = user(("view_item", "f1", NOW - MINUTE))  # f1's only neighbour is f2
    recs = recommend(p, small, BEST, now=NOW, n=4)
    assert (recs.strategy, recs.fallback) == ("recently_viewed", False)
    assert ids(recs)[0] == "f2" and recs.items[0].source == "recently_viewed"
    assert [r.source for r in recs.items[1:]] == ["best_sellers"] * 3
    assert ids(recs)[1:] == [i for i, _ in BEST if i not in {"f1", "f2"}][:3]


def test_an_item_without_neighbours_falls_back_to_the_best_sellers(small):
    recs = recommend(user(("view_item", "x", NOW - MINUTE)), small, BEST, now=NOW, n=3)
    assert recs.fallback and "x" not in ids(recs) and len(recs.items) == 3


def test_best_seller_ids_missing_from_the_catalog_are_skipped(small):
    best = [("ghost", 9.0), ("m1", 8.0), ("gone", 7.0), ("f1", 6.0)]
    assert ids(recommend(None, small, best, now=NOW, n=5)) == ["m1", "f1"]


# two symmetric pairs: a1~a2 and b1~b2 are equally similar, so only recency and signal strength decide
PAIRS = ContentIndex([
    product("a1", "A", "One", "woody", "Unisex", "cedar, vetiver"),
    product("a2", "A", "Two", "woody", "Unisex", "cedar, vetiver"),
    product("b1", "B", "One", "floral", "Unisex", "rose, jasmine"),
    product("b2", "B", "Two", "floral", "Unisex", "rose, jasmine"),
])


@pytest.mark.parametrize("a_age, b_age, first", [(1, 25, "a2"), (25, 1, "b2"), (3, 6, "a2"), (6, 3, "b2")])
def test_the_more_recent_view_counts_more(a_age, b_age, first):
    assert HALF_LIFE < 25 * MINUTE < RECENT_WINDOW
    p = user(("view_item", "a1", NOW - a_age * MINUTE), ("view_item", "b1", NOW - b_age * MINUTE))
    assert ids(recommend(p, PAIRS, [], now=NOW, n=2))[0] == first


@pytest.mark.parametrize("cart, viewed, first", [("a1", "b1", "a2"), ("b1", "a1", "b2")])
def test_an_add_to_cart_counts_more_than_a_view_of_the_same_age(cart, viewed, first):
    p = user(("add_to_cart", cart, NOW - MINUTE), ("view_item", viewed, NOW - MINUTE))
    recs = recommend(p, PAIRS, [], now=NOW, n=2)
    assert ids(recs)[0] == first
    assert "added to your cart" in recs.items[0].reasons[0]


@st.composite
def shoppers(draw):
    catalog = [p.item_id for p in SMALL] + ["unknown-item"]
    events = []
    for _ in range(draw(st.integers(0, 8))):
        name = draw(st.sampled_from(["view_item", "select_item", "add_to_cart", "remove_from_cart", "purchase"]))
        age = draw(st.floats(0, 2 * RECENT_WINDOW))
        events.append((name, draw(st.sampled_from(catalog)), NOW - age))
    best = draw(st.permutations(catalog + ["ghost"]))
    return user(*events), [(i, 1.0) for i in best], draw(st.integers(1, 12))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shoppers())
def test_recommendations_are_unique_known_and_never_excluded(case):
    profile, best, n = case
    index = ContentIndex(SMALL)
    recs = recommend(profile, index, best, now=NOW, n=n)
    got = ids(recs)
    excluded = set(profile.cart) | set(profile.purchased) | {i for i, _, _ in profile.recent_items(NOW, RECENT_WINDOW)}
    assert len(got) == len(set(got))
    assert set(got) <= set(index.products)
    assert not set(got) & excluded
    assert len(got) == min(n, len(set(index.products) - excluded))  # filled up to n when it can be
    assert recs.fallback == (recs.strategy == "best_sellers") == all(r.source == "best_sellers" for r in recs.items)
    personal = [r.score for r in recs.items if r.source == "recently_viewed"]
    assert personal == sorted(personal, reverse=True)


def test_real_catalog_recommendations_after_a_view(real):
    products, index, best = real
    viewed = index.products["12855"]
    assert viewed.title == "Hugo Boss BOSS Bottled Eau de Toilette"  # first row of the CSV
    p = user(("view_item", "12855", NOW - 3 * MINUTE))
    recs = recommend(p, index, best, now=NOW, n=10)
    assert (recs.strategy, recs.fallback) == ("recently_viewed", False)
    got = ids(recs)
    assert len(got) == 10 == len(set(got)) and "12855" not in got
    assert set(got) <= set(index.products)
    for r in recs.items:
        other = index.products[r.item_id]
        assert viewed.title in r.reasons[0]
        assert set(other.notes) & set(viewed.notes) or other.family == viewed.family
        assert other.gender != "Women"  # a men's perfume was viewed


def test_real_catalog_random_shoppers_get_valid_recommendations(real):
    products, index, best = real
    rng = random.Random(42)
    all_ids = [p.item_id for p in products]
    for u in range(40):
        events = [(rng.choice(["view_item", "add_to_cart", "purchase", "select_item"]), rng.choice(all_ids),
                   NOW - rng.uniform(0, 2 * RECENT_WINDOW)) for _ in range(rng.randint(0, 6))]
        profile = user(*events, user_id=f"u{u}")
        recs = recommend(profile, index, best, now=NOW, n=10)
        got = ids(recs)
        excluded = set(profile.cart) | set(profile.purchased) | {i for i, _, _ in profile.recent_items(NOW, RECENT_WINDOW)}
        assert len(got) == 10 == len(set(got))
        assert set(got) <= set(index.products) and not set(got) & excluded
        if not profile.recent_items(NOW, RECENT_WINDOW):
            assert (recs.strategy, recs.fallback) == ("best_sellers", True)


def test_real_catalog_a_stale_user_gets_the_best_sellers(real):
    _, index, best = real
    p = user(("view_item", "12855", NOW - RECENT_WINDOW - 60))
    recs = recommend(p, index, best, now=NOW, n=10)
    assert (recs.strategy, recs.fallback) == ("best_sellers", True)
    assert ids(recs) == [i for i, _ in best[:10]]


def test_a_reason_never_names_an_empty_family():
    index = ContentIndex([Product(item_id="a", brand="X", name="A", notes="cedar"),
                          Product(item_id="b", brand="Y", name="B", notes="rose")])
    recs = recommend(user(("view_item", "a", NOW - MINUTE)), index, [], now=NOW, n=1)
    assert all("( family)" not in reason for r in recs.items for reason in r.reasons)
    assert not any(n.same_family for n in index.neighbours("a"))


def test_items_sharing_neither_notes_nor_a_known_family_are_not_neighbours():
    index = ContentIndex([Product(item_id="a", brand="X", name="A", notes="cedar"),
                          Product(item_id="b", brand="Y", name="B", notes="rose"),
                          Product(item_id="c", brand="Z", name="C", family="woody", notes="cedar")])
    check_neighbours(index, "a", k=50)
    assert [n.item_id for n in index.neighbours("a")] == ["c"]
