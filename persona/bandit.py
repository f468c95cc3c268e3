"""Which blend a session gets: Thompson sampling over blend variants, or a fixed A/B split.

Each variant is a set of generator weights for :mod:`persona.blend`. Its reward is the click-through
rate of the lists it served (clicks per item shown), read from the live feedback counts. With
Thompson sampling each session draws a CTR for every variant from its Beta posterior and takes the
best; ``explore`` of the sessions pick a variant uniformly instead. The draw is seeded by the session
id, so a shopper sees one variant for the whole session.

>>> stats = {"balanced": (2, 100), "focused": (30, 100), "popular": (1, 100)}  # (clicks, shown)
>>> choose("s-1", stats, mode="bandit", explore=0.0)
'focused'
>>> choose("s-1", stats, mode="ab") == choose("s-1", stats, mode="ab")
True
>>> sorted(allocation(stats)) == sorted(VARIANTS)
True
"""

from __future__ import annotations

import random
import zlib
from typing import Mapping

__all__ = ["VARIANTS", "choose", "allocation"]

# Generator weights (at intent 0, at intent 1) per variant; "balanced" is persona's default blend.
VARIANTS: dict[str, dict[str, tuple[float, float]]] = {
    "balanced": {"content": (0.8, 1.6), "covisit": (0.8, 1.4), "cf": (0.6, 0.5), "trending": (0.6, 0.2),
                 "best_sellers": (0.05, 0.05)},
    "focused": {"content": (1.4, 2.0), "covisit": (1.4, 2.0), "cf": (0.3, 0.3), "trending": (0.2, 0.1),
                "best_sellers": (0.05, 0.05)},
    "popular": {"content": (0.4, 0.8), "covisit": (0.6, 0.8), "cf": (1.0, 0.8), "trending": (1.2, 0.8),
                "best_sellers": (0.3, 0.2)},
}


def _rng(session_id: str) -> random.Random:
    return random.Random(zlib.crc32(session_id.encode()))


def choose(session_id: str, stats: Mapping[str, tuple[float, float]], mode: str = "bandit",
           explore: float = 0.1) -> str:
    """The variant for a session. ``stats`` maps variant -> (clicks, items shown)."""
    names = sorted(VARIANTS)
    rng = _rng(session_id)
    if mode == "ab" or rng.random() < explore:
        return names[rng.randrange(len(names))]
    draws = {}
    for name in names:
        clicks, shown = stats.get(name, (0.0, 0.0))
        draws[name] = rng.betavariate(1.0 + clicks, 1.0 + max(shown - clicks, 0.0))
    return max(names, key=lambda n: draws[n])


def allocation(stats: Mapping[str, tuple[float, float]], samples: int = 2000, explore: float = 0.1) -> dict:
    """The share of sessions each variant would get now, with its posterior mean CTR."""
    wins = dict.fromkeys(VARIANTS, 0)
    for i in range(samples):
        wins[choose(f"sample-{i}", stats, "bandit", explore)] += 1
    return {name: {"share": wins[name] / samples, "clicks": stats.get(name, (0, 0))[0],
                   "shown": stats.get(name, (0, 0))[1],
                   "mean_ctr": (1 + stats.get(name, (0, 0))[0]) / (2 + stats.get(name, (0, 0))[1])}
            for name in VARIANTS}
