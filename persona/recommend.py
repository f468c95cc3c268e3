"""Recommendations for one user: react to what they touched in the last minutes, else best-sellers.

The real-time strategy takes the items a user viewed, selected or put in the cart within
``RECENT_WINDOW`` seconds, weights each by recency (half-life ``HALF_LIFE``) and by how strong the
signal was, and sums the content similarity of their neighbours. What the user bought, has in the
cart or just looked at is left out. Slots it cannot fill come from the best-sellers.

>>> from persona.catalog import Product
>>> from persona.profile import Profile
>>> idx = ContentIndex([
...     Product(item_id="a", brand="X", name="A", family="woody", notes="cedar, vetiver"),
...     Product(item_id="b", brand="Y", name="B", family="woody", notes="cedar, vetiver"),
...     Product(item_id="c", brand="Z", name="C", family="floral", notes="rose")])
>>> user = Profile("u1", recent=[["a", 1000.0, "view_item"]], last_seen=1000.0)
>>> recs = recommend(user, idx, best=[("c", 0.9), ("b", 0.5)], now=1060.0, n=2)
>>> recs.strategy, recs.fallback, [r.item_id for r in recs.items]
('recently_viewed', False, ['b', 'c'])
>>> recs.items[0].reasons
['similar to X A you viewed 1 min ago (cedar, vetiver)']
>>> recommend(None, idx, best=[("c", 0.9)], now=0.0, n=1).fallback
True
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field

from persona.profile import Profile
from persona.similarity import ContentIndex

__all__ = ["Recommendation", "Recommended", "recommend", "RECENT_WINDOW", "HALF_LIFE"]

RECENT_WINDOW = 30 * 60
HALF_LIFE = 5 * 60
SIGNAL = {"view_item": 1.0, "select_item": 1.0, "add_to_cart": 2.0}
NEIGHBOURS_PER_ITEM = 50
VERBS = {"view_item": "viewed", "select_item": "viewed", "add_to_cart": "added to your cart"}


@dataclass
class Recommended:
    item_id: str
    score: float
    reasons: list[str]
    source: str


@dataclass
class Recommendation:
    strategy: str
    fallback: bool
    items: list[Recommended] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def ago(seconds: float) -> str:
    """Human-readable age: ``ago(5)`` -> ``'just now'``, ``ago(150)`` -> ``'2 min ago'``.

    >>> ago(5), ago(150), ago(7300)
    ('just now', '2 min ago', '2 h ago')
    """
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    return f"{int(seconds // 3600)} h ago"


def recently_viewed(profile: Profile, index: ContentIndex, now: float, exclude: set[str]) -> list[Recommended]:
    """Neighbours of recently touched items, scored by similarity x recency x signal strength."""
    scores: dict[str, float] = defaultdict(float)
    best_reason: dict[str, tuple[float, str]] = {}
    for item_id, age, name in profile.recent_items(now, RECENT_WINDOW):
        source = index.products.get(item_id)
        if source is None:
            continue
        weight = SIGNAL.get(name, 1.0) * math.exp(-math.log(2) * age / HALF_LIFE)
        for nb in index.neighbours(item_id, NEIGHBOURS_PER_ITEM):
            if nb.item_id in exclude:
                continue
            contribution = weight * nb.score
            scores[nb.item_id] += contribution
            if contribution > best_reason.get(nb.item_id, (0.0, ""))[0]:
                why = ", ".join(nb.shared_notes[:3]) or (nb.same_family and f"{source.family} family") or source.brand
                text = f"similar to {source.title} you {VERBS.get(name, 'viewed')} {ago(age)} ({why})"
                best_reason[nb.item_id] = (contribution, text)
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return [Recommended(i, round(s, 6), [best_reason[i][1]], "recently_viewed") for i, s in ranked]


def recommend(
    profile: Profile | None,
    index: ContentIndex,
    best: list[tuple[str, float]],
    now: float,
    n: int = 10,
) -> Recommendation:
    """Up to ``n`` items for a user; ``best`` is the best-seller list, best first."""
    exclude: set[str] = set()
    personal: list[Recommended] = []
    if profile is not None:
        now = max(now, profile.last_seen)
        exclude = set(profile.purchased) | set(profile.cart)
        exclude |= {item_id for item_id, _, _ in profile.recent_items(now, RECENT_WINDOW)}
        personal = recently_viewed(profile, index, now, exclude)[:n]
    chosen = {r.item_id for r in personal}
    fill = [
        Recommended(i, s, ["best-seller"], "best_sellers")
        for i, s in best
        if i not in exclude and i not in chosen and i in index.products
    ]
    items = personal + fill[: n - len(personal)]
    if personal:
        return Recommendation("recently_viewed", False, items)
    return Recommendation("best_sellers", True, items)
