"""Session co-visitation: items viewed close together in a session, learned one click at a time.

When a shopper views ``item`` after ``prev`` in the same session, the pair gets weight in both
directions, more the closer the two views are (``1 / distance``, over the last ``window`` views).
Weights fade with event time (half-life ``half_life`` seconds), so the neighbours follow what
shoppers do now. Decay is lazy: a weight added at time ``ts`` is stored as
``w * 2 ** ((ts - origin) / half_life)`` (the *decay-normalized* scale), so nothing has to be
rewritten as time passes; reads multiply by ``2 ** (-(now - origin) / half_life)``. When the
exponent grows past ``MAX_EXPONENT`` the origin moves forward and every weight is rescaled once.
Each item keeps at most ``max_neighbours`` neighbours (the weakest are dropped, amortised).

The same two pure functions do the work for :class:`CoVisitation` and for a stream processor
that keeps ``{neighbour_id: weight}`` per item in a table partitioned by item:
:func:`pair_updates` turns a click into weight updates, :func:`apply_updates` folds the updates
for one item into its neighbour dict.

>>> cv = CoVisitation(half_life=3600)
>>> for items in (["a", "b", "c"], ["a", "b"], ["x", "c"]):
...     for i, item in enumerate(items):
...         cv.learn(items[:i], item, ts=1000.0)
>>> cv.neighbours("b")
[('a', 2.0), ('c', 1.0)]
>>> cv.neighbours("b", now=1000.0 + 3600)  # one half-life later
[('a', 1.0), ('c', 0.5)]
>>> cv.recommend(["a", "b"], exclude=["a", "b"])  # c: 0.5 x 0.5 (after a) + 1 x 1 (after b)
[('c', 1.25, 'b')]
"""

from __future__ import annotations

import heapq
from operator import itemgetter
from typing import Iterable, Mapping, Sequence

__all__ = [
    "CoVisitation",
    "pair_updates",
    "apply_updates",
    "position_weights",
    "HALF_LIFE",
    "WINDOW",
    "MAX_NEIGHBOURS",
    "MAX_EXPONENT",
]

HALF_LIFE = 3 * 24 * 3600
WINDOW = 5
MAX_NEIGHBOURS = 100
MAX_EXPONENT = 512.0  # 2 ** 512 is far from float overflow (2 ** 1024) even summed over many clicks


def pair_updates(
    session_items: Sequence[str],
    item_id: str,
    ts: float,
    window: int = WINDOW,
    half_life: float = HALF_LIFE,
    origin: float = 0.0,
) -> list[tuple[str, str, float]]:
    """Weight updates ``(a, b, weight)`` for viewing ``item_id`` after ``session_items`` at ``ts``.

    Each distinct item among the last ``window`` earlier views pairs with ``item_id`` in both
    directions with weight ``1 / distance`` (its closest occurrence counts), in the
    decay-normalized scale relative to ``origin``. Viewing the item just viewed again (a reload)
    adds nothing.

    >>> pair_updates(["a", "b", "a", "c"], "d", ts=0.0, window=3)
    [('c', 'd', 1.0), ('d', 'c', 1.0), ('a', 'd', 0.5), ('d', 'a', 0.5), ('b', 'd', 0.3333333333333333), ('d', 'b', 0.3333333333333333)]
    >>> pair_updates(["a", "b"], "b", ts=0.0)
    []
    >>> pair_updates(["a"], "b", ts=7200.0, half_life=3600)  # stored 4x: read back at ts, it is 1
    [('a', 'b', 4.0), ('b', 'a', 4.0)]
    """
    if not session_items or session_items[-1] == item_id:
        return []
    scale = 2.0 ** ((ts - origin) / half_life)
    distances: dict[str, int] = {}
    for distance, prev in enumerate(reversed(session_items[-window:]), start=1):
        if prev != item_id and prev not in distances:
            distances[prev] = distance
    out = []
    for prev, distance in distances.items():
        w = scale / distance
        out.append((prev, item_id, w))
        out.append((item_id, prev, w))
    return out


def _merge(neighbours: dict[str, float], updates: Iterable[tuple[str, float]], max_neighbours: int) -> dict[str, float]:
    for other, w in updates:
        neighbours[other] = neighbours.get(other, 0.0) + w
    if len(neighbours) > max_neighbours + max(max_neighbours // 2, 1):
        kept = heapq.nlargest(max_neighbours, neighbours.items(), key=itemgetter(1))
        neighbours.clear()
        neighbours.update(kept)
    return neighbours


def apply_updates(
    neighbours: Mapping[str, float],
    updates: Iterable[tuple[str, float]],
    max_neighbours: int = MAX_NEIGHBOURS,
) -> dict[str, float]:
    """A new neighbour dict: ``neighbours`` plus ``updates`` (``(neighbour_id, weight)`` pairs).

    The dict may grow to one and a half times ``max_neighbours``; then it is cut back to the
    ``max_neighbours`` strongest, so pruning costs O(1) amortised per update.

    >>> apply_updates({"a": 1.0}, [("a", 0.5), ("b", 2.0)])
    {'a': 1.5, 'b': 2.0}
    >>> apply_updates({"a": 1.0, "b": 3.0}, [("c", 2.0)], max_neighbours=2)
    {'a': 1.0, 'b': 3.0, 'c': 2.0}
    >>> apply_updates({"a": 1.0, "b": 3.0, "c": 2.0}, [("d", 0.5)], max_neighbours=2)
    {'b': 3.0, 'c': 2.0}
    """
    return _merge(dict(neighbours), updates, max_neighbours)


def position_weights(session_items: Sequence[str]) -> dict[str, float]:
    """Weight of each distinct session item: ``position / length``, the last view weighs 1.

    >>> position_weights(["a", "b", "a", "c"])
    {'b': 0.5, 'a': 0.75, 'c': 1.0}
    """
    n = len(session_items)
    weights: dict[str, float] = {}
    for position, item in enumerate(session_items, start=1):
        weights.pop(item, None)
        weights[item] = position / n
    return weights


class CoVisitation:
    """Item-to-item co-visitation with time decay, learned online.

    Parameters
    ----------
    half_life
        Seconds after which a co-visit counts half.
    window
        How many earlier views of the session a new view pairs with.
    max_neighbours
        Neighbours kept per item.

    Examples
    --------
    >>> cv = CoVisitation(half_life=100, max_neighbours=2)
    >>> cv.learn(["a"], "b", ts=0.0)
    >>> cv.learn(["a"], "c", ts=100.0)
    >>> cv.neighbours("a")  # both seen once, but the older pair has faded
    [('c', 1.0), ('b', 0.5)]
    >>> cv.recommend(["a"], exclude={"c"})
    [('b', 0.5, 'a')]
    """

    def __init__(self, half_life: float = HALF_LIFE, window: int = WINDOW, max_neighbours: int = MAX_NEIGHBOURS):
        if half_life <= 0 or window < 1 or max_neighbours < 1:
            raise ValueError("half_life, window and max_neighbours must be positive")
        self.half_life = half_life
        self.window = window
        self.max_neighbours = max_neighbours
        self.origin: float | None = None  # time at which stored weights equal actual weights
        self.last_ts = 0.0
        self._neighbours: dict[str, dict[str, float]] = {}

    def __len__(self) -> int:
        return len(self._neighbours)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._neighbours

    def learn(self, session_items: Sequence[str], item_id: str, ts: float) -> None:
        """Learn that ``item_id`` was viewed at ``ts`` after ``session_items`` (oldest first)."""
        if self.origin is None:
            self.origin = ts
        elif (ts - self.origin) / self.half_life > MAX_EXPONENT:
            self._renormalise(ts)
        self.last_ts = max(self.last_ts, ts)
        by_item: dict[str, list[tuple[str, float]]] = {}
        for a, b, w in pair_updates(session_items, item_id, ts, self.window, self.half_life, self.origin):
            by_item.setdefault(a, []).append((b, w))
        for a, updates in by_item.items():
            self._neighbours[a] = _merge(self._neighbours.get(a, {}), updates, self.max_neighbours)

    def _renormalise(self, new_origin: float) -> None:
        factor = 2.0 ** (-(new_origin - self.origin) / self.half_life)
        for item_id, neighbours in self._neighbours.items():
            self._neighbours[item_id] = {b: w * factor for b, w in neighbours.items() if w * factor > 0.0}
        self.origin = new_origin

    def _factor(self, now: float | None) -> float:
        if self.origin is None:
            return 1.0
        now = self.last_ts if now is None else now
        return 2.0 ** (-(now - self.origin) / self.half_life)

    def neighbours(self, item_id: str, k: int = 20, now: float | None = None) -> list[tuple[str, float]]:
        """The ``k`` strongest neighbours of ``item_id`` with their weight at ``now`` (default: the
        time of the latest click learned), best first."""
        found = self._neighbours.get(item_id)
        if not found:
            return []
        factor = self._factor(now)
        top = heapq.nsmallest(k, found.items(), key=lambda kv: (-kv[1], kv[0]))
        return [(b, w * factor) for b, w in top]

    def recommend(
        self,
        session_items: Sequence[str],
        k: int = 20,
        now: float | None = None,
        exclude: Iterable[str] = (),
    ) -> list[tuple[str, float, str]]:
        """Up to ``k`` items ``(item_id, score, because_of)`` for a session, best first.

        Sums the neighbours of every session item, each weighted by its position in the session
        (:func:`position_weights`: the last view counts most). ``because_of`` is the session item
        that contributed most to the score.
        """
        exclude = set(exclude)
        scores: dict[str, float] = {}
        best: dict[str, tuple[float, str]] = {}
        factor = self._factor(now)
        for source, weight in position_weights(session_items).items():
            found = self._neighbours.get(source)
            if not found:
                continue
            for other, w in found.items():
                if other in exclude:
                    continue
                contribution = weight * w * factor
                scores[other] = scores.get(other, 0.0) + contribution
                if contribution > best.get(other, (0.0, ""))[0]:
                    best[other] = (contribution, source)
        top = heapq.nsmallest(k, scores.items(), key=lambda kv: (-kv[1], kv[0]))
        return [(item, score, best[item][1]) for item, score in top]
