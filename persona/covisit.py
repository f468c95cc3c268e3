"""Session co-visitation: items viewed close together in a session, learned one click at a time.

When a shopper views ``item`` after ``prev`` in the same session, the pair gets weight in both
directions, more the closer the two views are (``1 / distance``, over the last ``window`` views).
Weights fade with event time (half-life ``half_life`` seconds), so the neighbours follow what
shoppers do now. Decay is lazy: a weight added at time ``ts`` is stored as
``w * 2 ** ((ts - origin) / half_life)`` (the *decay-normalized* scale), so nothing has to be
rewritten as time passes; reads multiply by ``2 ** (-(now - origin) / half_life)``. When the
exponent grows past ``MAX_EXPONENT`` the origin moves forward and every weight is rescaled once.
Each item keeps at most ``max_neighbours`` neighbours (the weakest are dropped, amortised).

The same pure functions do the work for :class:`CoVisitation` and for a stream processor that
keeps ``{neighbour_id: weight}`` per item in a table partitioned by item: :func:`pair_updates`
turns a click into weight updates (route each to its first item's partition),
:func:`apply_updates` folds the updates for one item into its neighbour dict, and
:func:`top_neighbours` / :func:`score_session` read the dicts back. The stream fixes ``origin``
once (e.g. the deployment's start); should it run past ``MAX_EXPONENT`` half-lives (four years
with the default three days) it moves the origin as :class:`CoVisitation` does, multiplying every
stored weight by ``2 ** (-(new_origin - origin) / half_life)``.

>>> table = {}
>>> for a, b, w in pair_updates(["a"], "b", ts=3600.0, half_life=3600):
...     table[a] = apply_updates(table.get(a, {}), [(b, w)])
>>> table, top_neighbours(table["a"], factor=decay_factor(now=7200.0, origin=0.0, half_life=3600))
({'a': {'b': 2.0}, 'b': {'a': 2.0}}, [('b', 0.5)])

>>> cv = CoVisitation(half_life=3600)
>>> for items in (["a", "b", "c"], ["a", "b"], ["x", "c"]):
...     for i, item in enumerate(items):
...         cv.learn(items[:i], item, ts=1000.0)
>>> cv.neighbours("b")
[('a', 2.0), ('c', 1.0)]
>>> cv.neighbours("b", now=1000.0 + 3600)  # one half-life later
[('a', 1.0), ('c', 0.5)]
>>> [(i, round(s, 3), why) for i, s, why in cv.recommend(["a", "b"], exclude=["a", "b"])]
[('c', 0.433, 'b')]

(``c`` gets 0.5 x 0.5 / 2.5 as a's neighbour, a weighing 0.5 in the session, plus 1 x 1 / 3 as b's.)
"""

from __future__ import annotations

import heapq
from operator import itemgetter
from typing import Callable, Iterable, Mapping, Sequence

__all__ = [
    "CoVisitation",
    "pair_updates",
    "apply_updates",
    "position_weights",
    "decay_factor",
    "top_neighbours",
    "score_session",
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

    >>> pair_updates(["x", "a", "c", "a"], "d", ts=0.0, window=3)  # x is out of the window
    [('a', 'd', 1.0), ('d', 'a', 1.0), ('c', 'd', 0.5), ('d', 'c', 0.5)]
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


def decay_factor(now: float, origin: float, half_life: float = HALF_LIFE) -> float:
    """What a decay-normalized weight is multiplied by to read it at ``now``. A ``now`` before
    ``origin`` reads as ``origin`` (stored weights hold no history to go back to).

    >>> decay_factor(now=200.0, origin=100.0, half_life=50.0), decay_factor(now=0.0, origin=1e9)
    (0.25, 1.0)
    """
    return 2.0 ** (-max(now - origin, 0.0) / half_life)


def top_neighbours(neighbours: Mapping[str, float], k: int = 20, factor: float = 1.0) -> list[tuple[str, float]]:
    """The ``k`` strongest entries of a neighbour dict times ``factor``, best first (ties by id).

    >>> top_neighbours({"a": 1.0, "b": 3.0, "c": 1.0}, k=2, factor=0.5)
    [('b', 1.5), ('a', 0.5)]
    """
    top = heapq.nsmallest(k, neighbours.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(b, w * factor) for b, w in top]


def score_session(
    session_items: Sequence[str],
    neighbours_of: Callable[[str], Mapping[str, float] | None],
    k: int = 20,
    exclude: Iterable[str] = (),
    factor: float = 1.0,
    normalise: bool = True,
) -> list[tuple[str, float, str]]:
    """Up to ``k`` items ``(item_id, score, because_of)`` for a session, best first.

    Every session item votes for its neighbours (``neighbours_of(item)``, e.g. ``table.get``),
    weighted by its position in the session (:func:`position_weights`: the last view counts
    most). With ``normalise`` a session item's votes are its neighbours' shares of its co-visit
    weight, so a popular item does not drown the others (and ``factor`` cancels out); without it
    they are the raw weights times ``factor``. ``because_of`` is the session item that
    contributed most.

    >>> nbs = {"a": {"b": 3.0, "c": 1.0}, "b": {"a": 3.0}}
    >>> score_session(["a", "b"], nbs.get)  # c: 0.5 (a's weight) x 1/4 (c's share of a's)
    [('a', 1.0, 'b'), ('b', 0.375, 'a'), ('c', 0.125, 'a')]
    >>> score_session(["a", "b"], nbs.get, exclude={"a", "b"}, normalise=False)
    [('c', 0.5, 'a')]
    """
    exclude = set(exclude)
    scores: dict[str, float] = {}
    best: dict[str, tuple[float, str]] = {}
    for source, weight in position_weights(session_items).items():
        found = neighbours_of(source)
        total = sum(found.values()) if found else 0.0
        if total <= 0.0:  # unknown, or every weight underflowed
            continue
        scale = weight / total if normalise else weight * factor
        for other, w in found.items():
            if other in exclude:
                continue
            contribution = scale * w
            scores[other] = scores.get(other, 0.0) + contribution
            if contribution > best.get(other, (0.0, ""))[0]:
                best[other] = (contribution, source)
    top = heapq.nsmallest(k, scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(item, score, best[item][1]) for item, score in top]


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
    >>> cv.recommend(["a"], exclude={"c"}, normalise=False)
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
        return decay_factor(self.last_ts if now is None else now, self.origin, self.half_life)

    def neighbours(self, item_id: str, k: int = 20, now: float | None = None) -> list[tuple[str, float]]:
        """The ``k`` (at most ``max_neighbours``) strongest neighbours of ``item_id`` with their
        weight at ``now`` (default: the time of the latest click learned), best first."""
        k = min(k, self.max_neighbours)
        return top_neighbours(self._neighbours.get(item_id, {}), k, self._factor(now))

    def recommend(
        self,
        session_items: Sequence[str],
        k: int = 20,
        now: float | None = None,
        exclude: Iterable[str] = (),
        normalise: bool = True,
    ) -> list[tuple[str, float, str]]:
        """Up to ``k`` items ``(item_id, score, because_of)`` for a session, best first: see
        :func:`score_session`; ``now`` matters only with ``normalise=False``."""
        return score_session(session_items, self._neighbours.get, k, exclude, self._factor(now), normalise)
