"""Trending items: event-time hopping windows of interaction weight per item.

Each item keeps its weight in ``STEP``-second buckets keyed by bucket start (a JSON-friendly
``{"1700000100": 3.0}``). The trending score at ``now`` is the weight of the hopping window of
``SIZE`` seconds that ends at the current step, so the ranking moves every ``STEP`` seconds of event
time and forgets what is older than the window.

>>> w = {}
>>> w = add(w, ts=1000.0, weight=1.0)
>>> w = add(w, ts=1200.0, weight=3.0)
>>> score(w, now=1250.0), score(w, now=1000.0 + SIZE)
(4.0, 3.0)
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

from persona.catalog import Product

__all__ = ["STEP", "SIZE", "WEIGHTS", "add", "score", "trending", "in_category"]

STEP = 300  # window hop: 5 minutes
SIZE = 3600  # window size: 1 hour
WEIGHTS = {"view_item": 1.0, "select_item": 1.0, "add_to_cart": 3.0, "purchase": 5.0}


def _bucket(ts: float) -> int:
    return int(ts // STEP) * STEP


def add(windows: Mapping[str, float], ts: float, weight: float) -> dict[str, float]:
    """A copy of ``windows`` with ``weight`` added at event time ``ts``; buckets that no
    window reaching the newest bucket can include are dropped."""
    out = dict(windows)
    key = str(_bucket(ts))
    out[key] = out.get(key, 0.0) + weight
    newest = max(int(k) for k in out)
    return {k: v for k, v in out.items() if int(k) > newest - SIZE - STEP}


def score(windows: Mapping[str, float], now: float) -> float:
    """Weight in the hopping window ``(end - SIZE, end]`` of the step that contains ``now``."""
    end = _bucket(now)
    return sum(v for k, v in windows.items() if end - SIZE < int(k) <= end)


def in_category(p: Product, category: str) -> bool:
    """A category names a fragrance family, a concentration or a gender (any case).

    >>> p = Product(item_id="a", brand="X", name="A", family="woody", category="Eau de Parfum", gender="Men")
    >>> in_category(p, "Woody"), in_category(p, "eau de parfum"), in_category(p, "women")
    (True, True, False)
    """
    c = category.casefold()
    return c in (p.family.casefold(), p.category.casefold(), p.gender.casefold())


def trending(
    products: Iterable[Product],
    windows_of: Callable[[str], Mapping[str, float] | None],
    now: float,
    n: int = 20,
    where: Callable[[Product], bool] | None = None,
) -> list[tuple[str, float]]:
    """Top ``n`` items by window score, optionally among products matching ``where``.

    >>> from persona.catalog import Product
    >>> ps = [Product(item_id="a", brand="X", name="A", family="woody"),
    ...       Product(item_id="b", brand="Y", name="B", family="floral")]
    >>> stats = {"a": {"0": 2.0}, "b": {"0": 5.0}}
    >>> trending(ps, stats.get, now=100.0), trending(ps, stats.get, 100.0, where=lambda p: p.family == "woody")
    ([('b', 5.0), ('a', 2.0)], [('a', 2.0)])
    """
    scored = []
    for p in products:
        if where is not None and not where(p):
            continue
        s = score(windows_of(p.item_id) or {}, now)
        if s > 0:
            scored.append((p.item_id, s))
    scored.sort(key=lambda kv: (-kv[1], kv[0]))
    return scored[:n]
