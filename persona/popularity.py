"""Best-sellers: what shoppers buy and put in their carts, with the catalog rating as a prior.

Live signals (purchases, add-to-carts, views per item) come from the stream; a perfume nobody
touched yet still ranks by its Bayesian-averaged customer rating, so a cold shop has an order.

>>> from persona.catalog import Product
>>> products = [Product(item_id="a", brand="X", name="A", rating=4.8, reviews=200),
...             Product(item_id="b", brand="Y", name="B", rating=5.0, reviews=1),
...             Product(item_id="c", brand="Z", name="C", rating=0.0, reviews=0)]
>>> [i for i, _ in best_sellers(products, {}.get, n=3)]
['a', 'b', 'c']
>>> [i for i, _ in best_sellers(products, {"c": {"purchase": 3}}.get, n=3)]
['c', 'a', 'b']
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Mapping

from persona.catalog import Product

__all__ = ["SIGNAL_WEIGHTS", "best_sellers", "prior", "BestSellers"]

SIGNAL_WEIGHTS = {"purchase": 5.0, "add_to_cart": 2.0, "select_item": 0.3, "view_item": 0.1}
PRIOR_MEAN = 3.5  # rating assumed for an item with no reviews
PRIOR_STRENGTH = 10  # reviews' worth of weight given to the prior mean


def prior(p: Product) -> float:
    """Bayesian average rating in [0, 1], nudged up by the number of reviews."""
    avg = (p.rating * p.reviews + PRIOR_MEAN * PRIOR_STRENGTH) / (p.reviews + PRIOR_STRENGTH)
    return avg / 5.0 + 0.05 * math.log1p(p.reviews) / math.log1p(1000)


def signal(counts: Mapping[str, float]) -> float:
    return sum(SIGNAL_WEIGHTS.get(name, 0.0) * n for name, n in counts.items())


def best_sellers(
    products: Iterable[Product], counts_of: Callable[[str], Mapping[str, float] | None], n: int = 10
) -> list[tuple[str, float]]:
    """Top ``n`` items by live signal (log-scaled) plus the rating prior, best first.

    ``counts_of(item_id)`` gives the item's counts per event name (or None).
    """
    scored = [(p.item_id, math.log1p(signal(counts_of(p.item_id) or {})) + prior(p)) for p in products]
    scored.sort(key=lambda s: (-s[1], s[0]))
    return [(i, round(s, 6)) for i, s in scored[:n]]


class BestSellers:
    """:func:`best_sellers` for a catalog that changes rarely and live counts that change often:
    the rating priors are ranked once; each call rescores only the items that have counts.

    >>> products = [Product(item_id="a", brand="X", name="A", rating=4.8, reviews=200),
    ...             Product(item_id="b", brand="Y", name="B", rating=5.0, reviews=1),
    ...             Product(item_id="c", brand="Z", name="C", rating=0.0, reviews=0)]
    >>> ranker = BestSellers(products)
    >>> counts = {"c": {"purchase": 3}}
    >>> ranker.top(counts, counts.get, n=3) == best_sellers(products, counts.get, n=3)
    True
    """

    def __init__(self, products: Iterable[Product]):
        self.priors = {p.item_id: prior(p) for p in products}
        self.by_prior = sorted(self.priors.items(), key=lambda s: (-s[1], s[0]))

    def top(self, counted: Iterable[str], counts_of: Callable[[str], Mapping[str, float] | None],
            n: int = 10) -> list[tuple[str, float]]:
        """Top ``n``, as :func:`best_sellers` ranks them; ``counted``: every item that may have counts."""
        live = {}
        for item_id in counted:
            if item_id in self.priors:
                counts = counts_of(item_id)
                if counts:
                    live[item_id] = math.log1p(signal(counts)) + self.priors[item_id]
        # An item without counts scores its prior: the n best of those are all that can make the cut.
        quiet = [(i, s) for i, s in self.by_prior[: n + len(live)] if i not in live]
        scored = sorted([*live.items(), *quiet[:n]], key=lambda s: (-s[1], s[0]))
        return [(i, round(s, 6)) for i, s in scored[:n]]
