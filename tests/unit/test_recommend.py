"""Content similarity, best-sellers and the "content" generator, on a hand-made and on the real catalog.

Service-level behaviour (fallback, fill-up, rules, intent) is tested on :func:`persona.blend.blend`
in ``test_blend.py``.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persona.catalog import Product, default_catalog_path, read_catalog
from persona.events import parse_event
from persona.popularity import BestSellers, best_sellers, prior
from persona.profile import Profile
from persona.recommend import HALF_LIFE, RECENT_WINDOW, SIGNAL, recently_viewed
from persona.rules import Candidate
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


def ids(candidates: list[Candidate]) -> list[str]:
    return [c.item_id for c in candidates]


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


# --- the "content" generator: recently_viewed ---------------------------------------------------


def rv(profile: Profile, index: ContentIndex, exclude=(), now: float = NOW) -> list[Candidate]:
    return recently_viewed(profile, index, now, set(exclude))


def decay(age: float) -> float:
    return 0.5 ** (age / HALF_LIFE)


def test_neighbours_of_what_was_just_viewed_are_content_candidates_with_the_reason(small):
    got = rv(user(("view_item", "m1", NOW - 2 * MINUTE)), small)
    assert all(isinstance(c, Candidate) for c in got)
    assert ids(got) == [n.item_id for n in small.neighbours("m1")]  # every neighbour, best first
    assert set(ids(got)) == {"m2", "u2", "w2", "w3"} and ids(got)[:2] == ["m2", "u2"]  # equal score: by id
    for c in got:
        assert (c.source, c.pinned) == ("content", None)
        assert len(c.reasons) == 1
        assert c.reasons[0].startswith(f"similar to {BY_ID['m1'].title} you viewed 2 min ago (")
    assert got[0].reasons == ["similar to Atelier Cedar Man Eau de Parfum you viewed 2 min ago (cedar, vetiver, oud)"]
    assert [c.reasons[0] for c in got if c.item_id == "w3"] == [
        "similar to Atelier Cedar Man Eau de Parfum you viewed 2 min ago (woody family)"]


def test_the_score_is_similarity_times_recency_times_signal_summed_over_touched_items(small):
    sim = {n.item_id: n.score for n in small.neighbours("m1")}
    half = {c.item_id: c.score for c in rv(user(("view_item", "m1", NOW - HALF_LIFE)), small)}
    assert half == {i: pytest.approx(0.5 * s, abs=1e-6) for i, s in sim.items()}
    cart = {c.item_id: c.score for c in rv(user(("add_to_cart", "m1", NOW)), small)}
    assert cart == {i: pytest.approx(2.0 * s, abs=1e-6) for i, s in sim.items()}  # SIGNAL["add_to_cart"]
    assert SIGNAL["add_to_cart"] == 2.0 and SIGNAL["view_item"] == SIGNAL["select_item"] == 1.0

    both = user(("view_item", "m1", NOW - 3 * MINUTE), ("view_item", "m2", NOW - MINUTE))
    sim2 = {n.item_id: n.score for n in small.neighbours("m2")}
    got = {c.item_id: c.score for c in rv(both, small)}
    expected = {i: sim.get(i, 0.0) * decay(3 * MINUTE) + sim2.get(i, 0.0) * decay(MINUTE)
                for i in set(sim) | set(sim2)}
    assert got == {i: pytest.approx(s, abs=1e-6) for i, s in expected.items()}
    assert {"m1", "m2"} <= set(got)  # the generator leaves exclusion to its caller


def test_excluded_items_are_left_out_and_the_rest_is_unchanged(small):
    p = user(("view_item", "m1", NOW - MINUTE), ("view_item", "f1", NOW - 4 * MINUTE))
    full = rv(p, small)
    assert set(ids(full)) == {"m2", "u2", "w2", "w3", "f2"}
    got = rv(p, small, exclude={"m2", "f2", "not-even-in-the-catalog"})
    assert ids(got) == [i for i in ids(full) if i not in {"m2", "f2"}]
    assert [c.score for c in got] == [c.score for c in full if c.item_id not in {"m2", "f2"}]
    assert rv(p, small, exclude=set(ids(full))) == []


def test_views_older_than_the_window_count_for_nothing(small):
    assert rv(user(("view_item", "m1", NOW - RECENT_WINDOW - 1)), small) == []
    assert ids(rv(user(("view_item", "m1", NOW - RECENT_WINDOW + 1)), small))  # just inside
    mixed = user(("view_item", "m1", NOW - RECENT_WINDOW - 1), ("view_item", "f1", NOW - MINUTE))
    assert ids(rv(mixed, small)) == ["f2"]


def test_nothing_to_react_to_gives_no_candidates(small):
    assert rv(user(), small) == []
    assert rv(user(("view_item", "x", NOW - MINUTE)), small) == []  # x shares nothing with anyone
    assert rv(user(("view_item", "not-in-catalog", NOW - MINUTE)), small) == []
    assert rv(user(("purchase", "m1", NOW - MINUTE), ("remove_from_cart", "f1", NOW)), small) == []


def test_the_reason_names_the_strongest_contribution(small):
    # m2 is close to m1 (three shared notes) and to w3 (family only); the old m1 view has faded
    p = user(("view_item", "m1", NOW - 25 * MINUTE), ("view_item", "w3", NOW))
    m2 = next(c for c in rv(p, small) if c.item_id == "m2")
    assert m2.reasons == ["similar to Atelier Leather Man Eau de Parfum you viewed just now (woody family)"]
    recent_only = next(c for c in rv(user(("view_item", "w3", NOW)), small) if c.item_id == "m2")
    assert m2.score > recent_only.score  # the faded view still adds to the score
    # the newest view comes first, but three shared notes three minutes ago beat a family just now
    p = user(("view_item", "m1", NOW - 3 * MINUTE), ("view_item", "w3", NOW))
    m2 = next(c for c in rv(p, small) if c.item_id == "m2")
    assert m2.reasons == ["similar to Atelier Cedar Man Eau de Parfum you viewed 3 min ago (cedar, vetiver, oud)"]


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
    got = rv(p, PAIRS, exclude={"a1", "b1"})
    assert ids(got)[0] == first and len(got) == 2
    assert got[0].score / got[1].score == pytest.approx(decay(min(a_age, b_age) * MINUTE)
                                                        / decay(max(a_age, b_age) * MINUTE), rel=1e-4)


@pytest.mark.parametrize("cart, viewed, first", [("a1", "b1", "a2"), ("b1", "a1", "b2")])
def test_an_add_to_cart_counts_more_than_a_view_of_the_same_age(cart, viewed, first):
    p = user(("add_to_cart", cart, NOW - MINUTE), ("view_item", viewed, NOW - MINUTE))
    got = rv(p, PAIRS, exclude={"a1", "b1"})
    assert ids(got)[0] == first
    assert "added to your cart 1 min ago" in got[0].reasons[0]
    assert "you viewed 1 min ago" in got[1].reasons[0]


@st.composite
def shoppers(draw):
    catalog = [p.item_id for p in SMALL] + ["unknown-item"]
    events = []
    for _ in range(draw(st.integers(0, 8))):
        name = draw(st.sampled_from(["view_item", "select_item", "add_to_cart", "remove_from_cart", "purchase"]))
        age = draw(st.floats(0, 2 * RECENT_WINDOW))
        events.append((name, draw(st.sampled_from(catalog)), NOW - age))
    return user(*events), set(draw(st.lists(st.sampled_from(catalog))))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shoppers())
def test_candidates_are_unique_known_sorted_and_never_excluded(case):
    profile, exclude = case
    index = ContentIndex(SMALL)
    got = rv(profile, index, exclude)
    touched = [i for i, _, _ in profile.recent_items(NOW, RECENT_WINDOW) if i in index.products]
    reachable = {n.item_id for i in touched for n in index.neighbours(i, len(index.products))} - exclude
    assert len(ids(got)) == len(set(ids(got)))
    assert set(ids(got)) == reachable  # a small catalog: every neighbour of a touched item, nothing else
    assert all(c.source == "content" and c.score > 0 and len(c.reasons) == 1 for c in got)
    assert [c.score for c in got] == sorted((c.score for c in got), reverse=True)
    titles = {index.products[i].title for i in touched}
    assert all(any(c.reasons[0].startswith(f"similar to {t} you ") for t in titles) for c in got)


def test_real_catalog_candidates_after_a_view(real):
    products, index, _ = real
    viewed = index.products["12855"]
    assert viewed.title == "Hugo Boss BOSS Bottled Eau de Toilette"  # first row of the CSV
    got = rv(user(("view_item", "12855", NOW - 3 * MINUTE)), index, exclude={"12855"})
    assert len(got) >= 10 and len(ids(got)) == len(set(ids(got))) and "12855" not in ids(got)
    assert set(ids(got)) <= set(index.products)
    assert [c.score for c in got] == sorted((c.score for c in got), reverse=True)
    for c in got[:10]:
        other = index.products[c.item_id]
        assert c.source == "content"
        assert c.reasons[0].startswith(f"similar to {viewed.title} you viewed 3 min ago (")
        assert set(other.notes) & set(viewed.notes) or other.family == viewed.family
        assert other.gender != "Women"  # a men's perfume was viewed


def test_a_reason_never_names_an_empty_family():
    index = ContentIndex([Product(item_id="a", brand="X", name="A", notes="cedar"),
                          Product(item_id="b", brand="Y", name="B", notes="rose")])
    got = rv(user(("view_item", "a", NOW - MINUTE)), index)
    assert all("( family)" not in reason for c in got for reason in c.reasons)
    assert not any(n.same_family for n in index.neighbours("a"))


def test_items_sharing_neither_notes_nor_a_known_family_are_not_neighbours():
    index = ContentIndex([Product(item_id="a", brand="X", name="A", notes="cedar"),
                          Product(item_id="b", brand="Y", name="B", notes="rose"),
                          Product(item_id="c", brand="Z", name="C", family="woody", notes="cedar")])
    check_neighbours(index, "a", k=50)
    assert [n.item_id for n in index.neighbours("a")] == ["c"]


# --- precomputed neighbours ---------------------------------------------------------------------


def reference(index: ContentIndex, item_id: str, k: int) -> list:
    """The on-demand scoring, on an index that has precomputed nothing."""
    return ContentIndex(index.products.values())._neighbours(item_id, k)


def precomputed(products, k: int) -> ContentIndex:
    index = ContentIndex(products)
    index.precompute(k)
    assert index.precomputed
    return index


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 8])
def test_precomputed_neighbours_equal_the_reference_on_the_small_catalog(k):
    index = precomputed(SMALL, k)
    for p in SMALL:
        for asked in range(1, k + 1):
            assert index.neighbours(p.item_id, asked) == reference(index, p.item_id, asked), (p.item_id, asked)
    assert index.neighbours("not-in-catalog", k) == []


@st.composite
def catalogs(draw):
    notes = [f"note{i}" for i in range(draw(st.integers(1, 12)))]
    n = draw(st.integers(1, 30))
    return [Product(item_id=f"i{i:02d}", brand=draw(st.sampled_from(["A", "B", "C", ""])), name=f"N{i}",
                    family=draw(st.sampled_from(["woody", "floral", ""])),
                    gender=draw(st.sampled_from(["Men", "Women", "Unisex", ""])),
                    price=draw(st.sampled_from([0.0, 40.0, 90.0, 100.0, 700.0])),
                    notes=", ".join(draw(st.lists(st.sampled_from(notes), max_size=5))))
            for i in range(n)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(catalogs(), st.integers(1, 12), st.integers(1, 40))
def test_precomputed_neighbours_equal_the_reference_on_any_catalog(products, k, block):
    index = ContentIndex(products)
    index.precompute(k, block=block)
    plain = ContentIndex(products)
    for p in products:
        for asked in {1, k // 2 or 1, k}:
            assert index.neighbours(p.item_id, asked) == plain._neighbours(p.item_id, asked), (p.item_id, asked)
        assert index.neighbours(p.item_id, k + 1) == plain._neighbours(p.item_id, k + 1)  # longer: on demand


def test_real_catalog_precomputed_neighbours_equal_the_reference(real):
    products, _, _ = real
    index, plain = precomputed(products, 50), ContentIndex(products)
    for p in products[::40]:
        for k in (50, 10):
            assert index.neighbours(p.item_id, k) == plain._neighbours(p.item_id, k), (p.item_id, k)


def test_recently_viewed_with_a_limit_is_the_head_of_the_full_list(real):
    products, index, _ = real
    user = Profile("u", recent=[[p.item_id, NOW - 60 * i, "view_item"] for i, p in enumerate(products[:400:50])])
    full = recently_viewed(user, index, NOW, exclude=set())
    assert len(full) > 30
    assert recently_viewed(user, index, NOW, exclude=set(), limit=30) == full[:30]


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from([f"p{i}" for i in range(12)] + ["unknown"]),
                       st.dictionaries(st.sampled_from(["purchase", "add_to_cart", "view_item", "search"]),
                                       st.integers(0, 5)), max_size=8),
       st.integers(1, 15))
def test_best_sellers_ranker_equals_best_sellers(counts, n):
    products = [product(f"p{i}", "B", f"N{i}", "woody", "Men", "cedar", rating=(i % 5) + 0.5, reviews=i * 7 % 11)
                for i in range(12)]
    assert BestSellers(products).top(counts, counts.get, n) == best_sellers(products, counts.get, n)


def reference_recently_viewed(profile: Profile, index: ContentIndex, now: float, exclude: set[str],
                              limit: int | None = None) -> list[Candidate]:
    """The content generator written item by item: what the vector version must return, exactly."""
    from collections import defaultdict
    from persona.recommend import HALF_LIFE, NEIGHBOURS_PER_ITEM, _reason

    scores: dict[str, float] = defaultdict(float)
    best: dict = {}
    for item_id, age, name in profile.recent_items(now, RECENT_WINDOW):
        source = index.products.get(item_id)
        if source is None:
            continue
        weight = SIGNAL.get(name, 1.0) * math.exp(-math.log(2) * age / HALF_LIFE)
        for nb in index.neighbours(item_id, NEIGHBOURS_PER_ITEM):
            if nb.item_id in exclude:
                continue
            scores[nb.item_id] += weight * nb.score
            if weight * nb.score > best.get(nb.item_id, (0.0,))[0]:
                best[nb.item_id] = (weight * nb.score, (source, age, name), nb)
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [Candidate(i, round(s, 6), "content", [_reason(*best[i][1:])]) for i, s in ranked]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_real_catalog_vector_sums_equal_the_item_by_item_reference(real, data):
    products, index, _ = real
    picked = data.draw(st.lists(st.sampled_from(products), min_size=1, max_size=8))
    names = data.draw(st.lists(st.sampled_from(sorted(SIGNAL)), min_size=len(picked), max_size=len(picked)))
    ages = data.draw(st.lists(st.floats(0, RECENT_WINDOW + 60), min_size=len(picked), max_size=len(picked)))
    user = Profile("u", recent=sorted(([p.item_id, NOW - a, n] for p, n, a in zip(picked, names, ages)),
                                      key=lambda r: r[1]))
    exclude = {p.item_id for p in data.draw(st.lists(st.sampled_from(products), max_size=5))} | {"not-an-item"}
    limit = data.draw(st.sampled_from([None, 1, 10, 30]))
    assert recently_viewed(user, index, NOW, exclude, limit) == reference_recently_viewed(user, index, NOW, exclude, limit)
