"""The decision engine: candidates from every generator, one score, rules, explanations.

:func:`blend` asks each generator for candidates (content similarity to what the shopper touched
recently, session co-visitation, trending, collaborative filtering, best-sellers as the floor),
normalises each generator's scores to [0, 1], weights them by the shopper's intent (a focused
shopper gets more of what is close to the current item, a browsing one more of what is popular),
adjusts by the re-ranker's click probability, then lets the rule set boost, pin, filter and
exclude. Every item keeps the reasons of the generators that proposed it.

>>> from persona.catalog import Product
>>> from persona.profile import Profile
>>> products = [Product(item_id=i, brand=b, name=i.upper(), family=f, notes=n) for i, b, f, n in [
...     ("a", "X", "woody", "cedar, vetiver"), ("b", "Y", "woody", "cedar, vetiver"),
...     ("c", "Z", "floral", "rose"), ("d", "Z", "floral", "rose, musk")]]
>>> src = Sources.of(products, best=[("c", 1.0), ("d", 0.9)])
>>> user = Profile("u1", recent=[["a", 1000.0, "view_item"]], last_seen=1000.0)
>>> out = blend(user, Request(n=3, now=1060.0), src)
>>> out.strategy, out.fallback, [c.item_id for c in out.items]
('personalized', False, ['b', 'c', 'd'])
>>> out.items[0].reasons
['similar to X A you viewed 1 min ago (cedar, vetiver)']
>>> blend(None, Request(n=2, now=0.0), src).fallback
True
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from persona.bandit import VARIANTS
from persona.catalog import Product
from persona.companions import Companions
from persona.profile import Profile
from persona.recommend import RECENT_WINDOW, recently_viewed
from persona.rules import Candidate, Context, RuleSet, apply_rules, load_default_rules
from persona.similarity import ContentIndex
from persona.trending import in_category

__all__ = ["Sources", "Request", "Blended", "blend", "related", "rerank", "WEIGHTS"]

# Generator weights at intent 0 and at intent 1 (linear in between), per blend variant.
WEIGHTS = VARIANTS["balanced"]
FILL_FACTOR = 3  # best-sellers offered to the rules, per requested item
RERANK_DEPTH = 3  # candidates the re-ranker scores, per requested item (the head of the merged list)
NOT_PERSONAL = {"best_sellers", "trending"}  # what an unknown shopper gets too: the fallback


@dataclass
class Request:
    n: int = 10
    now: float = 0.0
    slot: str | None = None
    item_id: str | None = None  # product-page context
    category: str | None = None  # keep items of this family, concentration or gender
    variant: str = "balanced"  # generator weights: a key of persona.bandit.VARIANTS


@dataclass
class Sources:
    """Everything the blender reads. Generators that are not available are None."""

    catalog: Mapping[str, Product]
    index: ContentIndex
    companions: Companions
    best: list[tuple[str, float]]
    rules: RuleSet
    trending: Callable[[str | None, int], list[tuple[str, float]]] | None = None  # (category, n)
    covisit: Callable[[Sequence[str], int], list[tuple[str, float, str]]] | None = None
    collaborative: Callable[[str, int], list[tuple[str, float]]] | None = None
    intent: Callable[[Profile, float], float] | None = None
    # (profile, slot) -> P(click) of a candidate at a rank, for one answer's candidates
    click_probability: Callable[[Profile | None, str | None], Callable[[Candidate, int], float]] | None = None

    @classmethod
    def of(cls, products: Sequence[Product], best: list[tuple[str, float]], **generators) -> "Sources":
        """Sources over a product list, with content similarity, companions and default rules."""
        return cls(catalog={p.item_id: p for p in products}, index=ContentIndex(products),
                   companions=Companions(products), best=best, rules=load_default_rules(), **generators)


@dataclass
class Blended:
    strategy: str
    fallback: bool
    items: list[Candidate]
    intent: float | None = None
    stage: str | None = None
    fired: list[str] = field(default_factory=list)


def _normalised(pairs: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    top = max((s for _, s in pairs), default=0.0)
    return [(i, s / top) for i, s in pairs] if top > 0 else []


def _dominant_family(profile: Profile, catalog: Mapping[str, Product], now: float) -> str | None:
    families = Counter(catalog[i].family for i, _, _ in profile.recent_items(now, RECENT_WINDOW) if i in catalog)
    return families.most_common(1)[0][0] if families else None


def _generate(profile: Profile | None, req: Request, src: Sources, now: float,
              exclude: set[str]) -> dict[str, list[Candidate]]:
    """Candidates per generator, scores normalised to [0, 1]."""
    out: dict[str, list[Candidate]] = {}
    # The product-page item counts as a view right now, next to what the shopper touched recently:
    # one call, so an item close to both gets the sum of both contributions, once.
    touched = (profile.recent if profile else []) + ([[req.item_id, now, "view_item"]] if req.item_id else [])
    if touched:
        out["content"] = recently_viewed(Profile("", recent=touched), src.index, now, exclude, limit=3 * req.n)
    session = [i for i, _, _ in reversed(profile.recent_items(now, RECENT_WINDOW))] if profile else []
    session += [req.item_id] if req.item_id else []
    if src.covisit and session:
        out["covisit"] = [Candidate(i, s, "covisit", [f"viewed together with {src.catalog[b].title}"])
                          for i, s, b in src.covisit(session, 3 * req.n) if b in src.catalog]
    if src.collaborative and profile:
        out["cf"] = [Candidate(i, s, "cf", ["shoppers with a similar taste liked it"])
                     for i, s in src.collaborative(profile.user_id, 3 * req.n)]
    if src.trending:
        family = _dominant_family(profile, src.catalog, now) if profile else None
        trend = [Candidate(i, s, "trending", ["trending now"]) for i, s in src.trending(req.category, req.n)]
        if family:
            trend += [Candidate(i, s, "trending", [f"trending in {family} fragrances"])
                      for i, s in src.trending(family, req.n)]
        out["trending"] = trend
    bought = set(profile.purchased) if profile else set()
    fill = itertools.islice(((i, s) for i, s in src.best if i not in exclude and i not in bought), FILL_FACTOR * req.n)
    out["best_sellers"] = [Candidate(i, s, "best_sellers", ["best-seller"]) for i, s in fill]
    catalog = src.catalog
    for name, cands in out.items():
        cands = [c for c in cands if c.item_id not in exclude and c.item_id in catalog]
        if req.category:
            cands = [c for c in cands if in_category(catalog[c.item_id], req.category)]
        top = max((c.score for c in cands), default=0.0)
        last = {c.item_id: c.score for c in cands}  # an item proposed twice gets its last score, both times
        for c in cands:  # in place: every candidate here was made for this answer
            c.score = last[c.item_id] / top
        out[name] = cands if top > 0 else []
    return out


def _merge(per_generator: dict[str, list[Candidate]], intent: float,
           weights: dict[str, tuple[float, float]] = WEIGHTS) -> list[Candidate]:
    merged: dict[str, Candidate] = {}
    best_part: dict[str, float] = {}
    for name, cands in per_generator.items():
        low, high = weights[name]
        weight = low + (high - low) * intent
        for c in cands:
            part = weight * c.score
            m = merged.get(c.item_id)
            if m is None:  # the first proposal becomes the merged candidate (each was made for this answer)
                merged[c.item_id] = c
                c.score = best_part[c.item_id] = part
                continue
            m.score += part
            if part > best_part[c.item_id]:
                best_part[c.item_id], m.source = part, c.source
                m.reasons = c.reasons + [r for r in m.reasons if r not in c.reasons]
            else:
                m.reasons += [r for r in c.reasons if r not in m.reasons]
    return sorted(merged.values(), key=lambda c: (-c.score, c.item_id))


def rerank(candidates: list[Candidate], click_probability: Callable[[Candidate, int], float], depth: int) -> None:
    """Scale the first ``depth`` candidates' scores by 0.5 + P(click), the rest by 0.5.

    Scoring a candidate costs a feature vector and a model prediction, so only the head of the
    merged list is scored (the usual retrieve-then-re-rank split). The tail gets the lowest factor:
    no candidate below the head can pass one the re-ranker scored.

    >>> cands = [Candidate(i, s, "cf", []) for i, s in [("a", 1.0), ("b", 0.9), ("c", 0.8)]]
    >>> rerank(cands, lambda c, rank: 1.0 if c.item_id == "b" else 0.0, depth=2)
    >>> [(c.item_id, c.score) for c in cands]
    [('a', 0.5), ('b', 1.35), ('c', 0.4)]
    """
    for rank, c in enumerate(candidates):
        c.score *= 0.5 + (click_probability(c, rank) if rank < depth else 0.0)


def blend(profile: Profile | None, req: Request, src: Sources) -> Blended:
    """Up to ``req.n`` items for a shopper (``profile`` None: unknown shopper)."""
    from persona.models import journey_stage

    now = max(req.now, profile.last_seen) if profile else req.now
    intent = src.intent(profile, now) if profile and src.intent else None
    stage = journey_stage(profile, intent, now) if profile else None
    exclude = {req.item_id} if req.item_id else set()
    if profile:
        exclude |= set(profile.cart) | {i for i, _, _ in profile.recent_items(now, RECENT_WINDOW)}
    generated = _generate(profile, req, src, now, exclude)
    candidates = _merge(generated, intent if intent is not None else 0.5, VARIANTS.get(req.variant, WEIGHTS))
    if src.click_probability:
        rerank(candidates, src.click_probability(profile, req.slot), RERANK_DEPTH * req.n)
    ctx = Context(profile=profile, now=now, catalog=src.catalog, companions=src.companions,
                  intent=intent, stage=stage, slot=req.slot, item_id=req.item_id)
    decision = apply_rules(src.rules, ctx, candidates, in_place=True)  # the merged candidates are this answer's own
    items = [c for c in decision.candidates if c.item_id not in exclude and c.item_id in src.catalog
             and (not req.category or in_category(src.catalog[c.item_id], req.category))][: req.n]
    personal = any(c.source not in NOT_PERSONAL for c in items)
    strategy = decision.strategy or ("personalized" if personal else "best_sellers")
    # A fallback is knowing too little, not a blend variant that ranks popular items first.
    knew = any(cands for name, cands in generated.items() if name not in NOT_PERSONAL)
    return Blended(strategy, not knew, items, intent, stage, decision.fired)


def related(item_id: str, src: Sources, n: int = 10) -> list[Candidate]:
    """What goes with a product: companions first, then co-visited and similar items."""
    product = src.catalog.get(item_id)
    if product is None:
        return []
    out = [Candidate(i, 1.0, "companions", [f"{kind} for {product.title}"])
           for i, kind in src.companions(item_id) if i in src.catalog]
    if src.covisit:
        out += [Candidate(i, s, "covisit", [f"viewed together with {product.title}"])
                for i, s, _ in src.covisit([item_id], n)]
    out += [Candidate(nb.item_id, nb.score, "content", [f"similar to {product.title}"])
            for nb in src.index.neighbours(item_id, n)]
    seen: set[str] = {item_id}
    unique = [c for c in out if not (c.item_id in seen or seen.add(c.item_id))]
    return unique[:n]
