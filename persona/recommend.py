"""The "content" generator: react to what a shopper touched in the last minutes.

:func:`recently_viewed` takes the items a user viewed, selected or put in the cart within
``RECENT_WINDOW`` seconds, weights each by recency (half-life ``HALF_LIFE``) and by how strong the
signal was (``SIGNAL``), and sums the content similarity of their neighbours. It returns
:class:`~persona.rules.Candidate` objects with source ``"content"``, best first, each with the
reason of its strongest contribution. Items in ``exclude`` are left out; everything else
(best-seller fill, other generators, rules, fallback) is :func:`persona.blend.blend`'s job.

>>> from persona.catalog import Product
>>> from persona.profile import Profile
>>> idx = ContentIndex([
...     Product(item_id="a", brand="X", name="A", family="woody", notes="cedar, vetiver"),
...     Product(item_id="b", brand="Y", name="B", family="woody", notes="cedar, vetiver"),
...     Product(item_id="c", brand="Z", name="C", family="floral", notes="rose")])
>>> user = Profile("u1", recent=[["a", 1000.0, "view_item"]], last_seen=1000.0)
>>> got = recently_viewed(user, idx, now=1060.0, exclude={"a"})
>>> [(c.item_id, c.source) for c in got]
[('b', 'content')]
>>> got[0].reasons
['similar to X A you viewed 1 min ago (cedar, vetiver)']
>>> recently_viewed(user, idx, now=1000.0 + RECENT_WINDOW + 1, exclude=set())  # too long ago
[]
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from persona.profile import Profile
from persona.similarity import ContentIndex

if TYPE_CHECKING:
    from persona.rules import Candidate

__all__ = ["recently_viewed", "ago", "RECENT_WINDOW", "HALF_LIFE", "SIGNAL", "VERBS"]

RECENT_WINDOW = 30 * 60
HALF_LIFE = 5 * 60
SIGNAL = {"view_item": 1.0, "select_item": 1.0, "add_to_cart": 2.0}
NEIGHBOURS_PER_ITEM = 50
VERBS = {"view_item": "viewed", "select_item": "viewed", "add_to_cart": "added to your cart"}


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


def recently_viewed(profile: Profile, index: ContentIndex, now: float, exclude: set[str],
                    limit: int | None = None) -> list[Candidate]:
    """Neighbours of recently touched items, scored by similarity x recency x signal strength.

    Only the best ``limit`` (all if None) are returned: their reasons are written, nobody else's.
    The sums run over catalog-wide vectors (one row per touched item, added in the order touched,
    so the same floats as adding item by item); the reason is the touched item that contributed most.
    """
    from persona.rules import Candidate  # not at the top: persona.rules imports VERBS and ago from here

    touched, weights, neighbours = [], [], []  # one row per touched item
    for item_id, age, name in profile.recent_items(now, RECENT_WINDOW):
        source = index.products.get(item_id)
        if source is not None:
            touched.append((source, age, name))
            weights.append(SIGNAL.get(name, 1.0) * math.exp(-math.log(2) * age / HALF_LIFE))
            neighbours.append(index.neighbour_arrays(item_id, NEIGHBOURS_PER_ITEM))
    if not touched:
        return []
    contributions = np.zeros((len(touched), len(index)))
    proposed = np.zeros(len(index), dtype=bool)
    for row, (weight, (positions, scores, _)) in enumerate(zip(weights, neighbours)):
        contributions[row, positions] = weight * scores
        proposed[positions] = True
    proposed[[index.positions[i] for i in exclude if i in index.positions]] = False
    candidates = np.flatnonzero(proposed)
    totals = contributions[:, candidates].sum(axis=0)
    if limit is not None and len(candidates) > limit:  # the head only, ties at its end included
        kth = np.partition(totals, len(totals) - limit)[len(totals) - limit]
        keep = totals >= kth
        candidates, totals = candidates[keep], totals[keep]
    ranked = sorted(zip(totals.tolist(), candidates.tolist()), key=lambda t: (-t[0], index.ids[t[1]]))[:limit]
    best_rows = contributions[:, [p for _, p in ranked]].argmax(axis=0).tolist() if ranked else []
    return [Candidate(index.ids[p], round(s, 6), "content", [_reason(touched[row], neighbours[row][2][p])])
            for (s, p), row in zip(ranked, best_rows)]


def _reason(touched: tuple, nb) -> str:
    source, age, name = touched
    why = ", ".join(nb.shared_notes[:3]) or (nb.same_family and f"{source.family} family") or source.brand
    return f"similar to {source.title} you {VERBS.get(name, 'viewed')} {ago(age)} ({why})"
