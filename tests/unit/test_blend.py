"""The decision engine as the service uses it: blend() and related(), on a hand-made and on the real catalog.

The "content" generator itself (scores, recency, reasons) is tested in ``test_recommend.py``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persona.blend import FILL_FACTOR, NOT_PERSONAL, RERANK_DEPTH, Blended, Request, Sources, blend, related
from persona.catalog import Product, default_catalog_path, read_catalog
from persona.companions import Companions
from persona.popularity import best_sellers
from persona.profile import Profile
from persona.recommend import RECENT_WINDOW
from persona.rules import load_default_rules, parse_rules
from persona.trending import in_category

NOW = 1_800_000_000.0
MINUTE = 60.0


def product(item_id: str, brand: str, name: str, family: str, gender: str, notes: str,
            category: str = "Eau de Parfum") -> Product:
    return Product(item_id=item_id, brand=brand, name=name, category=category, family=family, gender=gender,
                   notes=notes, rating=4.0, reviews=10)


# One brand per item except Atelier, whose two items are one scent line in two concentrations (so
# m1p is m1's "concentration" companion and the reverse). m2, u2 and w3 are m1's content neighbours,
# f2 is f1's only one; x and the citrus items c1..c3 are nobody's neighbours.
CATALOG = [
    product("m1", "Atelier", "Cedar Man", "woody", "Men", "cedar, vetiver, oud, bergamot"),
    product("m1p", "Atelier", "Cedar Man", "woody", "Men", "cedar, vetiver, oud, bergamot", category="Parfum"),
    product("m2", "Bosco", "Forest", "woody", "Men", "cedar, vetiver, oud"),
    product("u2", "Cerro", "Grove", "woody", "Unisex", "cedar, vetiver"),
    product("w3", "Dune", "Leather", "woody", "Men", "leather"),
    product("f1", "Casa", "Rose", "floral", "Women", "rose, jasmine"),
    product("f2", "Fiore", "Rose Musk", "floral", "Women", "rose, jasmine, musk"),
    product("x", "Delta", "Sea", "aquatic", "Unisex", "sea salt"),
    product("c1", "Eon", "Lemon", "citrusy", "Unisex", "lemon"),
    product("c2", "Flux", "Lime", "citrusy", "Unisex", "lime"),
    product("c3", "Gale", "Yuzu", "citrusy", "Unisex", "yuzu"),
]
BY_ID = {p.item_id: p for p in CATALOG}
ALL = set(BY_ID)
BEST_IDS = ["x", "c1", "f1", "c2", "m2", "f2", "c3", "u2", "w3", "m1", "m1p"]
BEST = [(i, 1.0 - k / 100) for k, i in enumerate(BEST_IDS)]
TRENDING = [("c1", 10.0), ("c2", 9.0), ("c3", 8.0)]


def trending(category: str | None, n: int) -> list[tuple[str, float]]:
    return [(i, s) for i, s in TRENDING if category is None or in_category(BY_ID[i], category)][:n]


@pytest.fixture(scope="module")
def src() -> Sources:
    return Sources.of(CATALOG, best=BEST)


def viewer(*touched: tuple[str, float] | tuple[str, float, str], **kw) -> Profile:
    """A profile with ``(item_id, seconds ago[, event])`` entries (default event: a view)."""
    recent = sorted(([t[0], NOW - t[1], t[2] if len(t) > 2 else "view_item"] for t in touched), key=lambda r: r[1])
    return Profile("u1", recent=recent, last_seen=max((r[1] for r in recent), default=NOW), **kw)


def ids(out: Blended | list) -> list[str]:
    return [c.item_id for c in (out.items if isinstance(out, Blended) else out)]


def sources(out: Blended) -> list[str]:
    return [c.source for c in out.items]


# --- fallback and fill-up --------------------------------------------------------------------------

def test_an_unknown_shopper_gets_the_best_sellers(src):
    out = blend(None, Request(n=3, now=NOW), src)
    assert (out.strategy, out.fallback) == ("best_sellers", True)
    assert ids(out) == BEST_IDS[:3]
    assert all(c.source == "best_sellers" and c.reasons == ["best-seller"] for c in out.items)
    assert (out.intent, out.stage) == (None, None)


def test_a_view_older_than_the_window_falls_back_to_the_best_sellers(src):
    stale = viewer(("m1", RECENT_WINDOW + 1))
    out = blend(stale, Request(n=3, now=NOW), src)
    assert (out.strategy, out.fallback) == ("best_sellers", True)
    assert ids(out) == BEST_IDS[:3]

    fresh = blend(viewer(("m1", RECENT_WINDOW - 1)), Request(n=3, now=NOW), src)  # just inside
    assert (fresh.strategy, fresh.fallback) == ("personalized", False)
    assert fresh.items[0].source == "content" and "m1" not in ids(fresh)


def test_a_known_shopper_is_no_fallback_when_a_variant_ranks_popular_items_first():
    shopper = viewer(("m1", 600))  # ten minutes ago: no companion pinned by the default rules
    popular = blend(shopper, Request(n=1, now=NOW, variant="popular"), Sources.of(CATALOG, best=BEST, trending=trending))
    assert all(c.source in NOT_PERSONAL for c in popular.items), "the popular variant shows a trending item first"
    assert (popular.strategy, popular.fallback) == ("best_sellers", False)


def test_event_time_is_the_later_of_the_request_and_the_last_event(src):
    # m1 is stale at the shopper's last event (f1, now), though not at the earlier request time
    p = viewer(("m1", RECENT_WINDOW + MINUTE), ("f1", 0))
    out = blend(p, Request(n=5, now=NOW - 10 * MINUTE), src)
    assert [c.item_id for c in out.items if c.source != "best_sellers"] == ["f2"]
    assert out.items[0].reasons[0] == "similar to Casa Rose Eau de Parfum you viewed just now (rose, jasmine)"


def test_a_short_personal_list_is_filled_up_from_the_best_sellers(src):
    out = blend(viewer(("f1", MINUTE)), Request(n=5, now=NOW), src)  # f1's only neighbour is f2
    assert (out.strategy, out.fallback) == ("personalized", False)
    assert ids(out)[0] == "f2" and out.items[0].source == "content"
    assert sources(out)[1:] == ["best_sellers"] * 4
    assert ids(out)[1:] == [i for i in BEST_IDS if i not in {"f1", "f2"}][:4]


def test_best_seller_ids_missing_from_the_catalog_are_skipped(src):
    best = [("ghost", 9.0), ("m2", 8.0), ("gone", 7.0), ("f1", 6.0)]
    assert ids(blend(None, Request(n=5, now=NOW), replace(src, best=best))) == ["m2", "f1"]


def test_the_fill_up_does_not_run_dry_when_the_top_best_sellers_are_excluded(src):
    n = 2
    p = Profile("u1", cart=BEST_IDS[:FILL_FACTOR * n], last_seen=NOW)
    out = blend(p, Request(n=n, now=NOW), src)
    assert ids(out) == BEST_IDS[FILL_FACTOR * n:][:n]


# --- what is left out ------------------------------------------------------------------------------

def test_purchased_cart_and_just_viewed_items_are_left_out(src):
    # m2 (purchased), u2 (viewed) and w3 (in the cart) are all close to m1 (viewed); f1 was viewed too
    p = viewer(("m1", MINUTE), ("u2", 2 * MINUTE), ("f1", 3 * MINUTE), cart=["w3"], purchased=["m2"])
    out = blend(p, Request(n=len(CATALOG), now=NOW), src)
    assert set(ids(out)) == ALL - {"m1", "u2", "f1", "w3", "m2"}  # everything else fills in
    assert ids(out)[:2] == ["m1p", "f2"]
    assert out.items[-1].source == "best_sellers"


def test_the_product_page_item_itself_is_left_out(src):
    for profile in (None, viewer(("m2", 10 * MINUTE))):
        out = blend(profile, Request(n=len(CATALOG), now=NOW, item_id="m1"), src)
        assert "m1" not in ids(out) and len(out.items) == len(CATALOG) - 1 - (profile is not None)


@st.composite
def shoppers(draw):
    known = sorted(ALL)
    pick = st.sampled_from(known + ["ghost"])
    touched = [(draw(pick), draw(st.floats(0, 2 * RECENT_WINDOW)),
                draw(st.sampled_from(["view_item", "select_item", "add_to_cart"])))
               for _ in range(draw(st.integers(0, 6)))]
    profile = draw(st.none() | st.just(viewer(*touched, cart=draw(st.lists(pick, max_size=3)),
                                               purchased=draw(st.lists(pick, max_size=3)))))
    best = [(i, 1.0) for i in draw(st.permutations(known + ["ghost", "gone"]))]
    covisited = draw(st.lists(st.tuples(pick, st.floats(0.01, 5), pick), max_size=6))
    liked = draw(st.lists(st.tuples(pick, st.floats(0.01, 5)), max_size=6))
    req = Request(n=draw(st.integers(1, 12)), now=NOW, item_id=draw(st.none() | pick),
                  slot=draw(st.sampled_from([None, "home", "product"])))
    gen = {}
    if draw(st.booleans()):
        gen["covisit"] = lambda session, n: covisited[:n]
    if draw(st.booleans()):
        gen["collaborative"] = lambda user_id, n: liked[:n]
    if draw(st.booleans()):
        gen["trending"] = trending
    if draw(st.booleans()):
        gen["intent"] = lambda p, now, v=draw(st.floats(0, 1)): v
    return profile, req, best, gen


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shoppers())
def test_items_are_unique_known_never_excluded_and_filled_up(case):
    profile, req, best, gen = case
    src = Sources.of(CATALOG, best=best, **gen)
    before = profile.to_json() if profile else None
    out = blend(profile, req, src)
    assert (profile.to_json() if profile else None) == before  # serving blends the live profile: read only
    assert blend(profile, req, src) == out  # the candidates an answer changes in place are its own
    got = ids(out)
    excluded = {req.item_id} if req.item_id else set()
    if profile:
        excluded |= set(profile.cart) | set(profile.purchased)
        excluded |= {i for i, _, _ in profile.recent_items(NOW, RECENT_WINDOW)}
    assert len(got) == len(set(got)) <= req.n
    assert set(got) <= ALL and not set(got) & excluded
    assert max(Counter(BY_ID[i].brand for i in got).values(), default=0) <= 2
    offered = [i for i, _ in best[:FILL_FACTOR * req.n] if i in ALL and i not in excluded]
    assert len(got) >= min(req.n, len(offered))  # every brand has at most two items: nothing else drops them
    if out.fallback:  # knowing too little: nothing personal to show
        assert out.strategy == "best_sellers" and all(c.source in NOT_PERSONAL for c in out.items)
    if any(c.source in {"content", "covisit", "cf", "companions"} for c in out.items):
        assert not out.fallback and out.strategy == "personalized"
    if profile is None and not req.item_id:
        assert out.fallback


# --- the default rules -----------------------------------------------------------------------------

def test_companions_of_an_item_viewed_minutes_ago_are_pinned_first(src):
    accessories = Companions(CATALOG, relations={"m1": [("x", "accessory"), ("not-in-catalog", "accessory")]})
    out = blend(viewer(("m1", 2 * MINUTE)), Request(n=5, now=NOW), replace(src, companions=accessories))
    assert ids(out)[:2] == ["x", "m1p"]  # x is no neighbour of m1 and a weak best-seller: only the rule puts it first
    assert [c.pinned for c in out.items[:2]] == [0, 1]
    assert sources(out)[:2] == ["companions", "companions"]
    assert out.items[0].reasons[0] == "goes with Atelier Cedar Man Eau de Parfum you viewed 2 min ago (accessory)"
    assert out.items[1].reasons[0] == "goes with Atelier Cedar Man Eau de Parfum you viewed 2 min ago (concentration)"
    assert "not-in-catalog" not in ids(out)
    assert out.fired[0] == "recently-viewed-accessories"


def test_companions_are_not_pinned_once_the_view_is_older_than_five_minutes(src):
    accessories = Companions(CATALOG, relations={"m1": [("x", "accessory")]})
    out = blend(viewer(("m1", 5 * MINUTE + 1)), Request(n=5, now=NOW), replace(src, companions=accessories))
    assert "recently-viewed-accessories" not in out.fired
    assert all(c.pinned is None and c.source != "companions" for c in out.items)
    assert ids(out)[:4] == ["m1p", "m2", "u2", "w3"]  # the content neighbours, by similarity
    assert ids(out)[4] == "x" and out.items[4].source == "best_sellers"


BRANDS = [
    product("v", "Viewed", "Cedar", "woody", "Men", "cedar, vetiver, oud"),
    product("s1", "Same", "One", "woody", "Men", "cedar, vetiver, oud"),
    product("s2", "Same", "Two", "woody", "Men", "cedar, vetiver"),
    product("s3", "Same", "Three", "woody", "Men", "cedar"),
    product("o1", "Other", "One", "woody", "Men", "vetiver"),
]


def test_at_most_two_items_per_brand():
    p = viewer(("v", 10 * MINUTE))
    out = blend(p, Request(n=5, now=NOW), Sources.of(BRANDS, best=[]))
    assert ids(out) == ["s1", "s2", "o1"]  # s3, the weakest of the three Same items, goes
    assert "brand-diversity" in out.fired
    kept = [r.model_dump(by_alias=True, exclude_none=True) for r in load_default_rules().rules
            if r.name != "brand-diversity"]
    no_cap = parse_rules({"version": "t", "rules": kept})
    uncapped = blend(p, Request(n=5, now=NOW), replace(Sources.of(BRANDS, best=[]), rules=no_cap))
    assert set(ids(uncapped)) == {"s1", "s2", "s3", "o1"}  # so it is the rule that drops s3


def test_a_category_keeps_only_items_of_that_family_concentration_or_gender(src):
    p = viewer(("m1", 10 * MINUTE))
    woody = blend(p, Request(n=10, now=NOW, category="woody"), src)
    assert set(ids(woody)) == {"m1p", "m2", "u2", "w3"} and not woody.fallback
    floral = blend(p, Request(n=10, now=NOW, category="Floral"), src)  # m1's neighbours are all woody
    assert ids(floral) == ["f1", "f2"] and (floral.strategy, floral.fallback) == ("best_sellers", True)
    unisex = blend(None, Request(n=10, now=NOW, category="unisex"), replace(src, trending=trending))
    assert set(ids(unisex)) == {"u2", "x", "c1", "c2", "c3"}
    assert all(in_category(BY_ID[i], "unisex") for i in ids(unisex))


def test_a_category_also_applies_to_the_companions_a_rule_adds(src):
    out = blend(viewer(("m1", 2 * MINUTE)), Request(n=10, now=NOW, category="floral"), src)
    assert ids(out) == ["f1", "f2"]


# --- context and intent ----------------------------------------------------------------------------

def test_a_product_page_gives_items_related_to_that_item(src):
    out = blend(None, Request(n=3, now=NOW, item_id="f1"), src)
    assert (out.strategy, out.fallback) == ("personalized", False)
    assert ids(out)[0] == "f2" and out.items[0].source == "content"
    assert out.items[0].reasons[0] == "similar to Casa Rose Eau de Parfum you viewed just now (rose, jasmine)"
    assert "f1" not in ids(out)
    assert sources(out)[1:] == ["best_sellers", "best_sellers"]  # f1 has no other neighbour

    shopper = blend(viewer(("m1", 10 * MINUTE)), Request(n=5, now=NOW, item_id="f1"), src)
    assert ids(shopper)[0] == "f2"  # the page item, just now, outweighs a view ten minutes ago
    assert set(ids(shopper)) == {"f2", "m1p", "m2", "u2", "w3"}


def test_an_item_close_to_both_the_page_and_the_history_ranks_above_one_close_to_the_history_only():
    catalog = [
        product("v", "V", "V", "woody", "Unisex", "cedar, vetiver, oud"),  # viewed a minute ago
        product("pg", "G", "G", "floral", "Unisex", "rose, jasmine, iris, bergamot"),  # the product page
        product("a", "A", "A", "woody", "Unisex", "cedar, vetiver, oud, bergamot"),  # like v and a bit like pg
        product("c", "C", "C", "woody", "Unisex", "cedar, vetiver, oud, amber"),  # like v, nothing like pg
        product("r", "R", "R", "floral", "Unisex", "rose, jasmine, iris"),  # like pg only
    ]
    src = Sources.of(catalog, best=[])
    p = viewer(("v", MINUTE))
    assert ids(blend(p, Request(n=5, now=NOW), src)) == ["a", "c"]  # the history alone: a first
    assert ids(blend(None, Request(n=5, now=NOW, item_id="pg"), src)) == ["r", "a"]  # the page alone: c is not there
    both = blend(p, Request(n=5, now=NOW, item_id="pg"), src)
    assert ids(both) == ["a", "r", "c"]
    assert all(c.source == "content" and len(c.reasons) == 1 for c in both.items)


def intent_src(level: float, calls: list | None = None) -> Sources:
    def intent(profile, now):
        if calls is not None:
            calls.append((profile.user_id, now))
        return level

    return Sources.of(CATALOG, best=BEST, trending=trending, intent=intent,
                      covisit=lambda session, n: [("x", 1.0, session[0])],
                      collaborative=lambda user_id, n: [("f2", 1.0)])


def test_a_focused_shopper_gets_more_of_what_is_like_the_viewed_item():
    p = viewer(("m1", 10 * MINUTE))
    calls: list = []
    high = blend(p, Request(n=10, now=NOW), intent_src(0.9, calls))
    low = blend(p, Request(n=10, now=NOW), intent_src(0.1))
    assert calls == [("u1", NOW)] and (high.intent, low.intent) == (0.9, 0.1)
    content = {"m1p", "m2", "u2", "w3"}
    assert {c.item_id for c in high.items if c.source == "content"} == content
    assert {c.item_id for c in low.items if c.source == "content"} == content

    def rank(out: Blended, source: str) -> float:
        got = [k for k, c in enumerate(out.items) if c.source == source]
        return sum(got) / len(got)

    assert rank(high, "content") < rank(low, "content")
    assert rank(high, "trending") > rank(low, "trending")
    def last(out: Blended, source: str) -> int:
        return max(k for k, c in enumerate(out.items) if c.source == source)

    def first(out: Blended, source: str) -> int:
        return min(k for k, c in enumerate(out.items) if c.source == source)

    assert last(high, "content") < first(high, "trending")  # at 0.9 every content item beats every trending one
    assert ids(low).index("c1") < ids(low).index("w3")  # at 0.1 the top trending item beats the weakest
    assert last(high, "content") < last(high, "cf") and last(low, "content") > last(low, "cf")


def test_the_click_probability_reorders_the_candidates(src):
    p = viewer(("m1", 10 * MINUTE))
    plain = blend(p, Request(n=5, now=NOW, slot="home"), src)
    assert ids(plain)[:4] == ["m1p", "m2", "u2", "w3"]
    calls: list = []

    def clicks(profile, slot):
        def p(c, rank):
            calls.append((c.item_id, rank, profile.user_id, slot))
            return 1.0 if c.item_id == "w3" else 0.0
        return p

    out = blend(p, Request(n=5, now=NOW, slot="home"), replace(src, click_probability=clicks))
    assert ids(out)[:4] == ["w3", "m1p", "m2", "u2"]
    assert calls[:4] == [(i, k, "u1", "home") for k, i in enumerate(["m1p", "m2", "u2", "w3"])]


def test_only_the_head_is_re_ranked_and_the_tail_stays_below_it(src):
    p = viewer(("m1", 10 * MINUTE))
    scored: list = []

    def clicks(profile, slot):
        return lambda c, rank: scored.append(c.item_id) or 0.0  # the lowest probability: every item at its lowest

    out = blend(p, Request(n=2, now=NOW, slot="home"), replace(src, click_probability=clicks))
    plain = blend(p, Request(n=2, now=NOW, slot="home"), src)
    assert len(scored) == RERANK_DEPTH * 2  # not every candidate
    assert ids(out) == ids(plain)  # a uniform factor keeps the order


# --- related ---------------------------------------------------------------------------------------

def test_related_gives_companions_first_and_never_the_item_itself(src):
    s = replace(src, companions=Companions(CATALOG, relations={"m1": [("x", "accessory"), ("ghost", "refill")]}),
                covisit=lambda items, n: [("m1", 5.0, "m1"), ("c2", 2.0, "m1"), ("m2", 1.0, "m1")])
    got = related("m1", s)
    assert ids(got)[:2] == ["x", "m1p"] and [c.source for c in got[:2]] == ["companions", "companions"]
    assert got[0].reasons == ["accessory for Atelier Cedar Man Eau de Parfum"]
    assert ids(got)[2:4] == ["c2", "m2"] and got[2].source == "covisit"  # then co-visited, before similar
    assert got[-1].source == "content"
    assert "m1" not in ids(got) and "ghost" not in ids(got)
    assert len(ids(got)) == len(set(ids(got)))
    assert ids(related("m1", s, n=3)) == ids(got)[:3]
    assert related("not-in-catalog", s) == []


# --- the real catalog ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real() -> Sources:
    path = default_catalog_path()
    if not path.is_file():
        pytest.skip(f"shared catalog not found at {path}")
    products = read_catalog(path)
    return Sources.of(products, best=best_sellers(products, {}.get, n=len(products)))


def test_real_catalog_smoke(real):
    viewed = real.catalog["12855"]  # Hugo Boss BOSS Bottled Eau de Toilette, a men's perfume
    out = blend(viewer(("12855", 3 * MINUTE)), Request(n=10, now=NOW), real)
    assert (out.strategy, out.fallback) == ("personalized", False)
    got = ids(out)
    assert len(got) == 10 == len(set(got)) and "12855" not in got and set(got) <= set(real.catalog)
    assert max(Counter(real.catalog[i].brand for i in got).values()) <= 2
    assert all(viewed.title in c.reasons[0] for c in out.items if c.source in ("content", "companions"))
    assert sum(c.source == "content" for c in out.items) >= 5
    pinned = [c for c in out.items if c.pinned is not None]
    assert [c.pinned for c in pinned] == list(range(len(pinned))) and out.items[:len(pinned)] == pinned

    page = blend(None, Request(n=10, now=NOW, item_id="12855"), real)
    assert len(ids(page)) == 10 and "12855" not in ids(page) and not page.fallback

    for p in (None, viewer(("12855", RECENT_WINDOW + MINUTE))):
        cold = blend(p, Request(n=10, now=NOW), real)
        assert (cold.strategy, cold.fallback) == ("best_sellers", True)
        assert len(ids(cold)) == 10 and set(ids(cold)) <= {i for i, _ in real.best[:FILL_FACTOR * 10]}
