"""The rule engine: parsing, every condition, every action, and the default rules' invariants."""

from __future__ import annotations

import copy
import json
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persona.catalog import Product
from persona.companions import KINDS
from persona.profile import Profile
from persona.rules import (
    DEFAULT_RULES_PATH, Candidate, Context, InvalidRules, Kind, apply_rules, load_default_rules, parse_rules,
)

NOW = 1_800_000_000.0
DAY = 86400.0

CATALOG = {p.item_id: p for p in [
    Product(item_id="edt", brand="DIOR", name="Sauvage", category="Eau de Toilette", family="fresh", gender="Men"),
    Product(item_id="edp", brand="DIOR", name="Sauvage", category="Eau de Parfum", family="fresh", gender="Men"),
    Product(item_id="par", brand="DIOR", name="Sauvage", category="Parfum", family="fresh", gender="Men"),
    Product(item_id="case", brand="DIOR", name="Travel Case", category="Accessory"),
    Product(item_id="blu", brand="Chanel", name="Bleu", category="Eau de Parfum", family="woody", gender="Men"),
    Product(item_id="no5", brand="Chanel", name="No 5", category="Parfum", family="floral", gender="Women"),
    Product(item_id="coco", brand="Chanel", name="Coco", category="Eau de Parfum", family="oriental", gender="Women"),
    Product(item_id="ysl", brand="YSL", name="Libre", category="Eau de Parfum", family="floral", gender="Women"),
    Product(item_id="tf", brand="Tom Ford", name="Oud Wood", category="Eau de Parfum", family="woody", gender="Unisex"),
]}
RELATED = {
    "edt": [("case", "accessory"), ("refill-x", "refill"), ("edp", "concentration"), ("par", "concentration"),
            ("tf", "layering")],
    "no5": [("coco", "layering"), ("ysl", "layering")],
    "blu": [("tf", "layering")],
}


def companions(item_id: str) -> list[tuple[str, str]]:
    return RELATED.get(item_id, [])


def ctx(profile: Profile | None = None, now: float = NOW, **kw) -> Context:
    return Context(profile, now=now, catalog=CATALOG, companions=companions, **kw)


def viewer(*views: tuple[str, float, str], **kw) -> Profile:
    """A profile with ``(item_id, seconds ago, event)`` entries, oldest first."""
    recent = sorted(([i, NOW - ago, e] for i, ago, e in views), key=lambda r: r[1])
    return Profile("u1", recent=recent, last_seen=NOW, **kw)


def cand(item_id: str, score: float = 1.0, source: str = "content", *reasons: str) -> Candidate:
    return Candidate(item_id, score, source, list(reasons) or [f"because {item_id}"])


def rules(*rules: dict) -> object:
    return parse_rules({"version": "t", "rules": list(rules)})


def ids(decision) -> list[str]:
    return [c.item_id for c in decision.candidates]


def default_raw() -> dict:
    return json.loads(DEFAULT_RULES_PATH.read_text())


# --- parsing -------------------------------------------------------------------------------------

def test_default_rules_parse():
    rs = load_default_rules()
    assert rs.version == "2026-11-29.1"
    assert [r.name for r in rs.rules] == ["recently-viewed-accessories", "no-repurchase", "in-catalog-only",
                                          "brand-diversity"]
    seed = rs.rules[0]
    assert seed.when.viewed_within.seconds == 300
    assert seed.then[0].boost_related.pin_first == 2
    assert parse_rules(DEFAULT_RULES_PATH.read_bytes()) == parse_rules(DEFAULT_RULES_PATH.read_text()) == rs


def test_kinds_match_companions_module():
    assert set(get_args(Kind)) == set(KINDS)


def _set(path: str, value):
    def edit(raw: dict) -> dict:
        *parents, last = path.split("/")
        node = raw
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        if value is _DELETE:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value
        return raw
    return edit


_DELETE = object()
EXTRA = "Extra inputs are not permitted"
NON_NEGATIVE = "Input should be greater than or equal to 0"


@pytest.mark.parametrize("edit, message", [
    (_set("rules/1/then/0/exclude", {"purchsed": True}),
     f"rules[1] (no-repurchase).then[0].exclude.purchsed: {EXTRA}"),
    (_set("rules/3/name", "no-repurchase"), "rules[3] (no-repurchase).name: duplicate rule name"),
    (_set("rules", []), "rules: List should have at least 1 item"),
    (_set("rules/0/then/0/boost_related/factor", -1), f"rules[0] (recently-viewed-accessories).then[0]"
                                                      f".boost_related.factor: {NON_NEGATIVE}"),
    (_set("rules/0/when/viewed_within/seconds", -5), f"rules[0] (recently-viewed-accessories).when"
                                                     f".viewed_within.seconds: {NON_NEGATIVE}"),
    (_set("rules/3/then/0/max_per/k", -2), f"rules[3] (brand-diversity).then[0].max_per.k: {NON_NEGATIVE}"),
    (_set("rules/0/then/0/boost_related/kinds/1", "sample"),
     "rules[0] (recently-viewed-accessories).then[0].boost_related.kinds[1]: Input should be 'accessory'"),
    (_set("rules/0/when", {"viewd_within": {"seconds": 3}}),
     f"rules[0] (recently-viewed-accessories).when.viewd_within: {EXTRA}"),
    (_set("rules/2/when", {"not": {"stage": ["cart"]}}), f"rules[2] (in-catalog-only).when.not.stage: {EXTRA}"),
    (_set("rules/1/then/0/max_per", {"field": "brand", "k": 1}),
     "rules[1] (no-repurchase).then[0]: an action needs exactly one of"),
    (_set("rules/1/then/0", {"shuffle": {}}), f"rules[1] (no-repurchase).then[0].shuffle: {EXTRA}"),
    (_set("rules/3/then/0/max_per/field", "colour"), "rules[3] (brand-diversity).then[0].max_per.field: Input"),
    (_set("rules/2/name", _DELETE), "rules[2].name: Field required"),
    (_set("rules/2/then", []), "rules[2] (in-catalog-only).then: List should have at least 1 item"),
    (_set("version", _DELETE), "version: Field required"),
])
def test_invalid_rules_name_rule_and_field(edit, message):
    with pytest.raises(InvalidRules) as err:
        parse_rules(edit(default_raw()))
    assert str(err.value).startswith(message), str(err.value)


def test_invalid_json_and_shape():
    with pytest.raises(InvalidRules, match="not valid JSON"):
        parse_rules(b"{rules: ")
    with pytest.raises(InvalidRules, match="valid dictionary"):
        parse_rules("[1, 2]")
    assert issubclass(InvalidRules, ValueError)


# --- conditions ----------------------------------------------------------------------------------

def fires(when: dict, context: Context) -> bool:
    rs = rules({"name": "r", "when": when, "then": [{"switch_strategy": {"to": "x"}}]})
    return apply_rules(rs, context, []).fired == ["r"]


@pytest.mark.parametrize("when, context, expected", [
    ({"viewed_within": {"seconds": 300}}, ctx(viewer(("edt", 120, "view_item"))), True),
    ({"viewed_within": {"seconds": 300}}, ctx(viewer(("edt", 301, "view_item"))), False),
    ({"viewed_within": {"seconds": 300}}, ctx(viewer(("edt", 300, "view_item"))), True),
    ({"viewed_within": {"seconds": 300}}, ctx(None), False),
    ({"viewed_within": {"seconds": 300, "events": ["view_item"]}}, ctx(viewer(("edt", 10, "add_to_cart"))), False),
    ({"viewed_within": {"seconds": 300, "events": ["add_to_cart"]}}, ctx(viewer(("edt", 10, "add_to_cart"))), True),
    ({"cart_not_empty": True}, ctx(viewer(cart=["blu"])), True),
    ({"cart_not_empty": True}, ctx(viewer()), False),
    ({"cart_not_empty": True}, ctx(None), False),
    ({"cart_not_empty": False}, ctx(viewer()), True),
    ({"stage_in": ["cart", "purchase"]}, ctx(stage="cart"), True),
    ({"stage_in": ["cart", "purchase"]}, ctx(stage="browse"), False),
    ({"stage_in": ["cart"]}, ctx(), False),
    ({"intent_above": 0.5}, ctx(intent=0.7), True),
    ({"intent_above": 0.5}, ctx(intent=0.5), False),
    ({"intent_above": 0.5}, ctx(), False),
    ({"intent_below": 0.2}, ctx(intent=0.1), True),
    ({"intent_below": 0.2}, ctx(intent=0.3), False),
    ({"intent_below": 0.2}, ctx(), False),
    ({"slot_in": ["product"]}, ctx(slot="product"), True),
    ({"slot_in": ["product"]}, ctx(slot="home"), False),
    ({"context_item": True}, ctx(item_id="edt"), True),
    ({"context_item": True}, ctx(), False),
    ({"context_item": False}, ctx(), True),
    ({"slot_in": ["cart"], "intent_above": 0.5}, ctx(slot="cart", intent=0.9), True),
    ({"slot_in": ["cart"], "intent_above": 0.5}, ctx(slot="cart", intent=0.1), False),
    ({"all": [{"slot_in": ["cart"]}, {"stage_in": ["cart"]}]}, ctx(slot="cart", stage="cart"), True),
    ({"all": [{"slot_in": ["cart"]}, {"stage_in": ["cart"]}]}, ctx(slot="cart", stage="browse"), False),
    ({"any": [{"slot_in": ["cart"]}, {"stage_in": ["cart"]}]}, ctx(slot="home", stage="cart"), True),
    ({"any": [{"slot_in": ["cart"]}, {"stage_in": ["cart"]}]}, ctx(slot="home", stage="browse"), False),
    ({"any": []}, ctx(), False),
    ({"not": {"slot_in": ["cart"]}}, ctx(slot="home"), True),
    ({"not": {"slot_in": ["cart"]}}, ctx(slot="cart"), False),
    ({}, ctx(), True),
])
def test_conditions(when, context, expected):
    assert fires(when, context) is expected


@pytest.mark.parametrize("stage, intent, expected", [
    ("cart", 0.1, True),     # first branch
    ("browse", 0.9, True),   # second branch: not(intent below 0.5)
    ("browse", 0.1, False),
    ("browse", None, True),  # unknown intent is not "below"
])
def test_any_not_combination(stage, intent, expected):
    when = {"any": [{"stage_in": ["cart"]}, {"not": {"intent_below": 0.5}}]}
    assert fires(when, ctx(stage=stage, intent=intent)) is expected


# --- the seed rule: what goes with what was just viewed -------------------------------------------

def test_recently_viewed_companions_pinned_first():
    user = viewer(("blu", 1000, "view_item"), ("edt", 120, "view_item"))
    d = apply_rules(load_default_rules(), ctx(user), [cand("no5", 0.9), cand("ysl", 0.5), cand("coco", 0.4)])
    assert ids(d)[:2] == ["case", "edp"]
    assert [c.pinned for c in d.candidates[:2]] == [0, 1]
    assert d.candidates[0].source == "companions"
    assert d.candidates[0].reasons == ["goes with DIOR Sauvage Eau de Toilette you viewed 2 min ago (accessory)"]
    assert d.candidates[1].reasons == ["goes with DIOR Sauvage Eau de Toilette you viewed 2 min ago (concentration)"]
    # "par" is a third DIOR item (brand diversity), "refill-x" is not in the catalog, "tf" layers
    assert "par" not in ids(d) and "refill-x" not in ids(d) and "tf" in ids(d)
    assert d.candidates[0].score > d.candidates[1].score > 0.9  # factor 3 x top score, mild decay
    assert d.fired[0] == "recently-viewed-accessories"


def test_recently_viewed_rule_expires_after_300_seconds_of_event_time():
    user = viewer(("edt", 301, "view_item"))
    d = apply_rules(load_default_rules(), ctx(user), [cand("no5", 0.9)])
    assert ids(d) == ["no5"]
    assert "recently-viewed-accessories" not in d.fired


def test_boost_related_newest_item_first_and_no_duplicates():
    user = viewer(("no5", 200, "view_item"), ("edt", 30, "select_item"), ("blu", 10, "add_to_cart"))
    rs = rules({"name": "r", "when": {"viewed_within": {"seconds": 300, "events": ["view_item", "select_item"]}},
                "then": [{"boost_related": {"kinds": ["layering"], "factor": 2.0, "pin_first": 3}}]})
    d = apply_rules(rs, ctx(user), [])
    # edt (newest of the views) first; blu was only added to the cart, so it binds nothing
    assert ids(d) == ["tf", "coco", "ysl"]
    assert d.candidates[0].reasons == ["goes with DIOR Sauvage Eau de Toilette you viewed just now (layering)"]
    assert d.candidates[1].reasons == ["goes with Chanel No 5 Parfum you viewed 3 min ago (layering)"]
    assert d.candidates[0].score == pytest.approx(2.0)  # no candidates: base 1.0


def test_boost_related_proposes_a_shared_companion_once_for_the_newest_item():
    user = viewer(("edt", 100, "view_item"), ("blu", 30, "view_item"))
    rs = rules({"name": "r", "when": {"viewed_within": {"seconds": 300}},
                "then": [{"boost_related": {"kinds": ["layering"], "factor": 1.0, "pin_first": 2}}]})
    [tf] = apply_rules(rs, ctx(user), []).candidates
    assert (tf.item_id, tf.pinned) == ("tf", 0)
    assert tf.reasons == ["goes with Chanel Bleu Eau de Parfum you viewed just now (layering)"]


def test_boost_related_on_product_page():
    rs = rules({"name": "pdp", "when": {"context_item": True},
                "then": [{"boost_related": {"kinds": ["accessory"], "factor": 1.0, "pin_first": 1}}]})
    d = apply_rules(rs, ctx(item_id="edt"), [cand("blu", 0.5)])
    assert ids(d) == ["case", "blu"]
    assert d.candidates[0].reasons == ["goes with DIOR Sauvage Eau de Toilette (accessory)"]


def test_boost_related_merges_into_existing_candidate():
    user = viewer(("edt", 60, "view_item"))
    given = [cand("tf", 0.2, "trending", "trending now"), cand("edp", 5.0, "content", "similar")]
    rs = rules({"name": "r", "when": {"viewed_within": {"seconds": 300}},
                "then": [{"boost_related": {"kinds": ["layering", "concentration"], "factor": 1.0}}]})
    d = apply_rules(rs, ctx(user), given)
    by_id = {c.item_id: c for c in d.candidates}
    # edp already scored higher than the rule offers: it keeps its source, gains the reason
    assert (by_id["edp"].score, by_id["edp"].source) == (5.0, "content")
    assert by_id["edp"].reasons == ["similar", "goes with DIOR Sauvage Eau de Toilette you viewed 1 min ago "
                                               "(concentration)"]
    # tf is lifted by the rule: the rule made it, so the source and the first reason are the rule's
    assert by_id["tf"].source == "companions" and by_id["tf"].score > 0.2
    assert by_id["tf"].reasons[1:] == ["trending now"]
    assert given[0].score == 0.2 and given[0].source == "trending" and given[0].reasons == ["trending now"]


# --- actions ------------------------------------------------------------------------------------

def test_purchased_excluded_unless_bought_long_ago():
    user = viewer(("blu", 90 * DAY, "add_to_cart"), ("no5", 10 * DAY, "add_to_cart"),
                  ("tf", 90 * DAY, "view_item"), ("tf", 1 * DAY, "add_to_cart"),
                  purchased=["blu", "no5", "ysl", "tf"])
    given = [cand(i) for i in ["blu", "no5", "ysl", "tf", "coco"]]
    d = apply_rules(load_default_rules(), ctx(user), given)
    # blu was bought 90 days ago; no5 and tf recently; ysl at an unknown time counts as recent
    assert sorted(ids(d)) == ["blu", "coco"]
    strict = rules({"name": "never", "then": [{"exclude": {"purchased": True}}]})
    assert ids(apply_rules(strict, ctx(user), given)) == ["coco"]


def test_exclude_cart_ids_and_not_in_catalog():
    user = viewer(cart=["blu"])
    rs = rules({"name": "x", "then": [{"exclude": {"cart": True, "item_ids": ["no5"], "not_in_catalog": True}}]})
    d = apply_rules(rs, ctx(user), [cand(i) for i in ["blu", "no5", "ysl", "gone"]])
    assert ids(d) == ["ysl"]


def test_max_per_brand():
    given = [cand("edt", 0.9), cand("edp", 0.8), cand("par", 0.7), cand("blu", 0.6), cand("no5", 0.5),
             cand("coco", 0.4), cand("ysl", 0.3)]
    rs = rules({"name": "div", "then": [{"max_per": {"field": "brand", "k": 2}}]})
    assert ids(apply_rules(rs, ctx(), given)) == ["edt", "edp", "blu", "no5", "ysl"]
    per_family = rules({"name": "f", "then": [{"max_per": {"field": "family", "k": 1}}]})
    assert ids(apply_rules(per_family, ctx(), given)) == ["edt", "blu", "no5", "coco"]


def test_max_per_counts_pinned_items_first():
    given = [cand("edt", 0.9), cand("edp", 0.8), cand("par", 0.1), cand("blu", 0.5)]
    rs = rules({"name": "p", "then": [{"pin": {"item_id": "par", "slot": 1}},
                                      {"max_per": {"field": "brand", "k": 2}}]})
    assert ids(apply_rules(rs, ctx(), given)) == ["edt", "par", "blu"]


def test_pin():
    given = [cand("a", 0.9), cand("b", 0.8), cand("c", 0.7), cand("d", 0.6)]
    rs = rules({"name": "p", "then": [{"pin": {"item_id": "d", "slot": 1}}, {"pin": {"item_id": "c", "slot": 9}}]})
    d = apply_rules(rs, ctx(), given)
    assert ids(d) == ["a", "d", "b", "c"]
    assert [c.pinned for c in d.candidates] == [None, 1, None, 9]


def test_pin_adds_catalog_item_and_later_pin_takes_the_slot():
    rs = rules({"name": "p1", "then": [{"pin": {"item_id": "ysl", "slot": 0}}, {"pin": {"item_id": "nope", "slot": 0}}]},
               {"name": "p2", "then": [{"pin": {"item_id": "tf", "slot": 0}}]})
    d = apply_rules(rs, ctx(), [cand("blu", 0.9), cand("no5", 0.1)])
    assert ids(d) == ["tf", "blu", "ysl", "no5"]
    assert d.candidates[0].source == "rule" and d.candidates[0].score == 0.9
    assert d.candidates[2].pinned is None


def test_filter():
    given = [cand(i) for i in ["edt", "blu", "no5", "tf", "unknown"]]
    woody = rules({"name": "w", "then": [{"filter": {"family": "WOODY"}}]})
    assert ids(apply_rules(woody, ctx(), given)) == ["blu", "tf"]
    both = rules({"name": "m", "then": [{"filter": {"gender": "men", "brand": "chanel"}}]})
    assert ids(apply_rules(both, ctx(), given)) == ["blu"]


def test_boost():
    given = [cand("edt", 0.9, "content"), cand("blu", 0.5, "trending"), cand("no5", 0.4, "trending")]
    rs = rules({"name": "b", "then": [{"boost": {"factor": 2.0, "source": "trending", "brand": "Chanel"}}]})
    d = apply_rules(rs, ctx(), given)
    assert [(c.item_id, c.score) for c in d.candidates] == [("blu", 1.0), ("edt", 0.9), ("no5", 0.8)]
    assert given[1].score == 0.5  # the caller's objects are not changed


def test_switch_strategy_only_when_fired():
    rs = rules({"name": "s", "when": {"stage_in": ["cart"]}, "then": [{"switch_strategy": {"to": "cart_completion"}}]},
               {"name": "t", "then": [{"boost": {"factor": 1.0}}]})
    assert apply_rules(rs, ctx(stage="cart"), []).strategy == "cart_completion"
    d = apply_rules(rs, ctx(stage="browse"), [])
    assert (d.strategy, d.fired) == (None, ["t"])


def test_duplicates_are_merged():
    given = [cand("blu", 0.3, "trending", "trending now"), cand("no5", 0.5, "cf", "x"),
             cand("blu", 0.8, "content", "similar", "trending now"), cand("blu", 0.1, "cf", "liked")]
    before = copy.deepcopy(given)
    d = apply_rules(rules({"name": "n", "then": [{"boost": {"factor": 1.0}}]}), ctx(), given)
    assert [(c.item_id, c.score, c.source, c.reasons) for c in d.candidates] == [
        ("blu", 0.8, "trending", ["trending now", "similar", "liked"]), ("no5", 0.5, "cf", ["x"])]
    assert given == before


def test_ties_are_ordered_by_item_id():
    d = apply_rules(rules({"name": "n", "then": [{"boost": {"factor": 1.0}}]}), ctx(),
                    [cand("tf", 0.5), cand("blu", 0.5), cand("no5", 0.5)])
    assert ids(d) == ["blu", "no5", "tf"]


# --- invariants of the default rules ------------------------------------------------------------

ITEMS = sorted(CATALOG) + ["refill-x", "gone"]
SOURCES = ["content", "covisit", "trending", "cf", "best_sellers"]
EVENTS = ["view_item", "select_item", "add_to_cart"]

candidates_st = st.lists(st.builds(
    Candidate, st.sampled_from(ITEMS), st.floats(0, 10), st.sampled_from(SOURCES),
    st.lists(st.sampled_from(["r1", "r2", "r3"]), max_size=2)), max_size=15)
recent_st = st.lists(st.tuples(st.sampled_from(ITEMS), st.floats(0, 600), st.sampled_from(EVENTS)), max_size=8)


@settings(max_examples=300, deadline=None)
@given(candidates_st, recent_st, st.lists(st.sampled_from(ITEMS), max_size=4))
def test_default_rules_invariants(candidates, views, purchased):
    user = viewer(*views, purchased=purchased)
    before = copy.deepcopy(candidates)
    d = apply_rules(load_default_rules(), ctx(user), candidates)
    out = ids(d)
    assert len(out) == len(set(out))
    assert all(i in CATALOG for i in out)
    brands = [CATALOG[i].brand.casefold() for i in out]
    assert all(brands.count(b) <= 2 for b in brands)
    bound = {i for i, age, e in views if age <= 300 and e in ("view_item", "select_item")}
    allowed = {c.item_id for c in candidates} | {r for b in bound for r, _ in companions(b)}
    assert set(out) <= allowed
    assert candidates == before
    scores = [c.score for c in d.candidates if c.pinned is None]
    assert scores == sorted(scores, reverse=True)
