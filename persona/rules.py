"""Declarative rules for the blender: when a condition holds, boost, pin, filter or exclude.

A rule set is JSON, validated strictly, so a misspelt key is an error rather than a rule that
silently does nothing::

    {"version": "...", "rules": [{"name": "...", "when": {...}, "then": [{"<action>": {...}}]}]}

Rules run in order. A rule whose ``when`` holds (no ``when``: always) *fires* and applies its
actions in order. Conditions read the shopper's profile in event time (``ctx.now``);
``viewed_within`` and ``context_item`` also *bind* items, which ``boost_related`` uses to
propose what goes with them.

>>> from persona.catalog import Product
>>> from persona.profile import Profile
>>> catalog = {p.item_id: p for p in [
...     Product(item_id="edt", brand="DIOR", name="Sauvage", category="Eau de Toilette"),
...     Product(item_id="edp", brand="DIOR", name="Sauvage", category="Eau de Parfum"),
...     Product(item_id="blu", brand="Chanel", name="Bleu")]}
>>> related = {"edt": [("edp", "concentration")]}
>>> user = Profile("u1", recent=[["edt", 1000.0, "view_item"]])
>>> ctx = Context(user, now=1130.0, catalog=catalog, companions=lambda i: related.get(i, []))
>>> d = apply_rules(load_default_rules(), ctx, [Candidate("blu", 0.8, "content", ["similar"])])
>>> [(c.item_id, c.source, c.pinned) for c in d.candidates]
[('edp', 'companions', 0), ('blu', 'content', None)]
>>> d.candidates[0].reasons
['goes with DIOR Sauvage Eau de Toilette you viewed 2 min ago (concentration)']
>>> d.fired
['recently-viewed-accessories', 'no-repurchase', 'in-catalog-only', 'brand-diversity']
"""

from __future__ import annotations

from importlib import resources

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from persona.catalog import Product
from persona.profile import Profile
from persona.recommend import VERBS, ago

__all__ = [
    "Candidate", "Context", "Decision", "RuleSet", "Rule", "Condition", "Action", "Kind", "InvalidRules",
    "parse_rules", "load_default_rules", "apply_rules", "DEFAULT_RULES_PATH",
]

DEFAULT_RULES_PATH = resources.files("persona") / "default_rules.json"  # also inside a zipped install
DECAY = 0.9  # score ratio between consecutive companions proposed by boost_related
DAY = 24 * 3600
BUY_EVENTS = {"add_to_cart", "purchase"}

Kind = Literal["accessory", "refill", "layering", "concentration"]
Bound = tuple[str, float | None, str | None]  # item id, age in seconds, event (None: page item)


@dataclass
class Candidate:
    item_id: str
    score: float
    source: str  # content, covisit, trending, cf, companions, best_sellers, rule
    reasons: list[str]
    pinned: int | None = None  # slot index (0-based) when a rule pins it


@dataclass
class Context:
    profile: Profile | None
    now: float  # epoch seconds, event time
    catalog: Mapping[str, Product]
    companions: Callable[[str], list[tuple[str, str]]]  # item_id -> [(related_item_id, kind)]
    intent: float | None = None  # P(session converts)
    stage: str | None = None  # browse / consider / cart / purchase / returning
    slot: str | None = None  # home / product / cart ...
    item_id: str | None = None  # product page context


@dataclass
class Decision:
    candidates: list[Candidate]
    fired: list[str] = field(default_factory=list)
    strategy: str | None = None


class InvalidRules(ValueError):
    """A rule set that does not validate; the message names the rule and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ViewedWithin(_Strict):
    seconds: float = Field(ge=0)
    events: list[str] | None = None  # None: any event in the profile's recent list


class Condition(_Strict):
    """Every key given must hold; ``any``, ``all`` and ``not`` nest conditions."""

    viewed_within: ViewedWithin | None = None
    cart_not_empty: bool | None = None
    stage_in: list[str] | None = None
    intent_above: float | None = None
    intent_below: float | None = None
    slot_in: list[str] | None = None
    context_item: bool | None = None
    any_: list[Condition] | None = Field(None, alias="any")
    all_: list[Condition] | None = Field(None, alias="all")
    not_: Condition | None = Field(None, alias="not")


class Match(_Strict):
    """Product attributes to match, case-insensitively; none given matches everything."""

    family: str | None = None
    gender: str | None = None
    category: str | None = None
    brand: str | None = None

    def matches(self, product: Product | None) -> bool:
        wanted = {k: v for k, v in self if k in Match.model_fields and v is not None}
        if not wanted:
            return True
        return product is not None and all(getattr(product, k).casefold() == v.casefold()
                                           for k, v in wanted.items())


class Boost(Match):
    factor: float = Field(ge=0)
    source: str | None = None


class BoostRelated(_Strict):
    kinds: list[Kind] = Field(min_length=1)
    factor: float = Field(ge=0)
    pin_first: int = Field(0, ge=0)


class Pin(_Strict):
    item_id: str = Field(min_length=1)
    slot: int = Field(ge=0)


class Exclude(_Strict):
    item_ids: list[str] = []
    purchased: bool = False
    unless_replenishable_after_days: int | None = Field(None, ge=0)
    cart: bool = False
    not_in_catalog: bool = False


class MaxPer(_Strict):
    field: Literal["brand", "family", "gender", "category", "source"]
    k: int = Field(ge=0)


class SwitchStrategy(_Strict):
    to: str = Field(min_length=1)


class Action(_Strict):
    """Exactly one of the keys."""

    boost: Boost | None = None
    boost_related: BoostRelated | None = None
    pin: Pin | None = None
    filter: Match | None = None
    exclude: Exclude | None = None
    max_per: MaxPer | None = None
    switch_strategy: SwitchStrategy | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Action:
        given = [k for k, v in self if v is not None]
        if len(given) != 1:
            raise ValueError(f"an action needs exactly one of {', '.join(Action.model_fields)}; got {given}")
        return self


class Rule(_Strict):
    name: str = Field(min_length=1)
    when: Condition | None = None  # None: always
    then: list[Action] = Field(min_length=1)


class RuleSet(_Strict):
    version: str
    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> RuleSet:
        seen: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.name in seen:
                raise ValueError(f"rules[{i}] ({rule.name}).name: duplicate rule name")
            seen.add(rule.name)
        return self


def _where(loc: tuple[Any, ...], data: Any) -> str:
    """``('rules', 1, 'then', 0, 'x')`` -> ``rules[1] (its name).then[0].x``."""
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
            if loc[:i] == ("rules",):
                try:
                    out += f" ({data['rules'][part]['name']})"
                except (KeyError, IndexError, TypeError):
                    pass
        else:
            out += f".{part}" if out else str(part)
    return out


def parse_rules(raw: bytes | str | dict) -> RuleSet:
    """Validate a rule set given as JSON text or already decoded.

    >>> try:
    ...     parse_rules({"version": "1", "rules": [{"name": "r", "then": [{"boost": {"factr": 2}}]}]})
    ... except InvalidRules as err:
    ...     print(err)
    rules[0] (r).then[0].boost.factor: Field required; rules[0] (r).then[0].boost.factr: Extra inputs are not permitted
    """
    data = raw
    if isinstance(raw, (bytes, str)):
        try:
            data = json.loads(raw)
        except ValueError as err:
            raise InvalidRules(f"rules are not valid JSON: {err}") from None
    try:
        return RuleSet.model_validate(data)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            msg = e["msg"].removeprefix("Value error, ")
            problems.append(f"{_where(e['loc'], data)}: {msg}" if e["loc"] else msg)
        raise InvalidRules("; ".join(problems)) from None


def load_default_rules() -> RuleSet:
    """The rule set shipped next to this module (``default_rules.json``)."""
    return parse_rules(DEFAULT_RULES_PATH.read_bytes())


def _viewed(profile: Profile | None, now: float, cond: ViewedWithin) -> list[Bound]:
    out: dict[str, Bound] = {}
    for item_id, ts, name in reversed(profile.recent if profile else []):
        age = now - ts
        if age > cond.seconds:
            break
        if (cond.events is None or name in cond.events) and item_id not in out:
            out[item_id] = (item_id, max(age, 0.0), name)
    return list(out.values())


def _holds(cond: Condition, ctx: Context) -> list[Bound] | None:
    """The items ``cond`` binds (maybe none) if it holds, else None."""
    bound: list[Bound] = []
    if cond.viewed_within is not None:
        bound += _viewed(ctx.profile, ctx.now, cond.viewed_within)
        if not bound:
            return None
    checks = [
        cond.cart_not_empty is None or bool(ctx.profile and ctx.profile.cart) == cond.cart_not_empty,
        cond.stage_in is None or ctx.stage in cond.stage_in,
        cond.intent_above is None or (ctx.intent is not None and ctx.intent > cond.intent_above),
        cond.intent_below is None or (ctx.intent is not None and ctx.intent < cond.intent_below),
        cond.slot_in is None or ctx.slot in cond.slot_in,
        cond.context_item is None or bool(ctx.item_id) == cond.context_item,
        cond.not_ is None or _holds(cond.not_, ctx) is None,
    ]
    if not all(checks):
        return None
    if cond.context_item and ctx.item_id:
        bound.append((ctx.item_id, None, None))
    for sub in cond.all_ or []:
        if (got := _holds(sub, ctx)) is None:
            return None
        bound += got
    if cond.any_ is not None:
        held = [got for sub in cond.any_ if (got := _holds(sub, ctx)) is not None]
        if not held:
            return None
        bound += [b for got in held for b in got]
    seen: set[str] = set()
    return [b for b in bound if not (b[0] in seen or seen.add(b[0]))]


def _merge(items: dict[str, Candidate], c: Candidate, by_rule: bool = False) -> None:
    old = items.setdefault(c.item_id, c)
    if old is c:
        return
    if by_rule and c.score > old.score:  # the rule's score wins: so do its source and reason
        old.source, old.reasons = c.source, c.reasons + [r for r in old.reasons if r not in c.reasons]
    else:
        old.reasons += [r for r in c.reasons if r not in old.reasons]
    old.score = max(old.score, c.score)
    old.pinned = c.pinned if old.pinned is None else old.pinned


def _pin(items: dict[str, Candidate], item_id: str, slot: int) -> None:
    for c in items.values():  # a later pin takes the slot over
        if c.pinned == slot:
            c.pinned = None
    items[item_id].pinned = slot


def _ordered(items: dict[str, Candidate]) -> list[Candidate]:
    out = sorted((c for c in items.values() if c.pinned is None), key=lambda c: (-c.score, c.item_id))
    for c in sorted((c for c in items.values() if c.pinned is not None), key=lambda c: (c.pinned, c.item_id)):
        out.insert(min(c.pinned, len(out)), c)
    return out


def _bought_days_ago(profile: Profile, item_id: str, now: float) -> float | None:
    # Profiles keep no purchase times: the newest add-to-cart (or purchase) entry of the item in
    # ``recent`` stands in for it. Unknown (None) counts as a recent purchase.
    ts = max((t for i, t, e in profile.recent if i == item_id and e in BUY_EVENTS), default=None)
    return None if ts is None else (now - ts) / DAY


def _excluded(a: Exclude, ctx: Context, items: dict[str, Candidate]) -> set[str]:
    drop = set(a.item_ids)
    if a.not_in_catalog:
        drop |= {i for i in items if i not in ctx.catalog}
    p = ctx.profile
    if p and a.cart:
        drop |= set(p.cart)
    if p and a.purchased:
        days = a.unless_replenishable_after_days
        drop |= {i for i in p.purchased
                 if days is None or (bought := _bought_days_ago(p, i, ctx.now)) is None or bought <= days}
    return drop


def _boost_related(a: BoostRelated, ctx: Context, items: dict[str, Candidate], bound: list[Bound]) -> None:
    top = max((c.score for c in items.values()), default=0.0) or 1.0
    skip = {b[0] for b in bound}
    proposed: list[str] = []
    for item_id, age, event in bound:
        product = ctx.catalog.get(item_id)
        what = product.title if product else item_id
        when = "" if age is None else f" you {VERBS.get(event or '', 'viewed')} {ago(age)}"
        for other, kind in ctx.companions(item_id):
            if kind not in a.kinds or other in skip or other in proposed or other not in ctx.catalog:
                continue
            score = a.factor * top * DECAY ** len(proposed)
            _merge(items, Candidate(other, score, "companions", [f"goes with {what}{when} ({kind})"]), by_rule=True)
            if len(proposed) < a.pin_first:
                _pin(items, other, len(proposed))
            proposed.append(other)


def _value(c: Candidate, name: str, catalog: Mapping[str, Product]) -> str | None:
    if name == "source":
        return c.source
    product = catalog.get(c.item_id)
    return getattr(product, name).casefold() if product else None


def _act(action: Action, ctx: Context, items: dict[str, Candidate], bound: list[Bound]) -> dict[str, Candidate]:
    if (a := action.boost) is not None:
        for c in items.values():
            if (a.source is None or c.source == a.source) and a.matches(ctx.catalog.get(c.item_id)):
                c.score *= a.factor
    elif (a := action.boost_related) is not None:
        _boost_related(a, ctx, items, bound)
    elif (a := action.pin) is not None:
        if a.item_id not in items and a.item_id in ctx.catalog:
            top = max((c.score for c in items.values()), default=0.0) or 1.0
            items[a.item_id] = Candidate(a.item_id, top, "rule", ["featured"])
        if a.item_id in items:
            _pin(items, a.item_id, a.slot)
    elif (a := action.filter) is not None:
        return {i: c for i, c in items.items() if a.matches(ctx.catalog.get(i))}
    elif (a := action.exclude) is not None:
        drop = _excluded(a, ctx, items)
        return {i: c for i, c in items.items() if i not in drop}
    elif (a := action.max_per) is not None:
        counts: Counter[str] = Counter()
        kept = {}
        # Pinned items go first, so a higher-scored item cannot push a pinned one out.
        for c in sorted(items.values(), key=lambda c: (c.pinned is None, c.pinned or 0, -c.score, c.item_id)):
            value = _value(c, a.field, ctx.catalog)
            if value is not None:
                if counts[value] >= a.k:
                    continue
                counts[value] += 1
            kept[c.item_id] = c
        return kept
    return items


def apply_rules(rules: RuleSet, ctx: Context, candidates: list[Candidate], in_place: bool = False) -> Decision:
    """Apply ``rules`` to copies of ``candidates`` (to the candidates themselves with ``in_place``,
    for a caller that made them for this call); duplicated ids are merged first.

    The result has pinned items at their slots and the rest by descending score (ties by id).

    >>> rs = parse_rules({"version": "1", "rules": [
    ...     {"name": "on-product-page", "when": {"slot_in": ["product"]},
    ...      "then": [{"pin": {"item_id": "b", "slot": 0}}, {"switch_strategy": {"to": "pdp"}}]}]})
    >>> ctx = Context(None, now=0.0, catalog={}, companions=lambda i: [], slot="product")
    >>> d = apply_rules(rs, ctx, [Candidate("a", 0.9, "cf", ["x"]), Candidate("b", 0.2, "cf", ["y"]),
    ...                           Candidate("a", 0.5, "trending", ["z"])])
    >>> [(c.item_id, c.score, c.reasons) for c in d.candidates], d.fired, d.strategy
    ([('b', 0.2, ['y']), ('a', 0.9, ['x', 'z'])], ['on-product-page'], 'pdp')
    """
    items: dict[str, Candidate] = {}
    for c in candidates:
        _merge(items, c if in_place else Candidate(c.item_id, c.score, c.source, list(c.reasons), c.pinned))
    fired: list[str] = []
    strategy: str | None = None
    for rule in rules.rules:
        bound = _holds(rule.when, ctx) if rule.when is not None else []
        if bound is None:
            continue
        fired.append(rule.name)
        for action in rule.then:
            if action.switch_strategy is not None:
                strategy = action.switch_strategy.to
            else:
                items = _act(action, ctx, items, bound)
    return Decision(_ordered(items), fired, strategy)
