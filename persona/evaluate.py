"""Prequential evaluation of session-based next-item prediction, in the style of Ludewig et al.

Clicks are replayed in time order. For every click that is not the first of its session, each
method is first asked for ``k`` items given the session so far (and the user id, when the data
has one) and the clicked item is looked up in the list (hit rate and reciprocal rank at ``k``);
only then does every method learn the click. So no method ever predicts from a click it has not
yet been shown, and every method keeps learning while it is evaluated, as it would in production.
Clicks before ``warmup`` (or before ``report_from_ts``) are learned but not scored: replaying a
training file first and a test file after it gives the usual train/test protocol in one pass.

A method is any object with ``learn(click)`` and
``recommend(session_items, user_id, k, now, exclude) -> list[str]``; one whose ``recommend`` also
takes a ``session_id`` keyword gets the id of the current session (SKNN uses it not to find the
current session among its neighbours).

>>> from persona.datasets import Click
>>> clicks = [Click(f"s{s}", None, item, ts=10.0 * s + i)
...           for s in range(5) for i, item in enumerate("abc")]
>>> results = evaluate(clicks, {"POP": POP(), "item-kNN": ItemKNN()}, progress=False)
>>> results["item-kNN"]["HR@20"], results["item-kNN"]["predictions"]
(0.8, 10.0)
>>> print(format_table(results, columns=["HR@20", "MRR@20"]))
method    HR@20  MRR@20
--------  -----  ------
POP       0.800   0.333
item-kNN  0.800   0.600
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import inspect
import math
import sys
import time
from collections import Counter
from itertools import islice
from pathlib import Path
from typing import Collection, Iterable, Mapping, Protocol, Sequence

from persona.covisit import CoVisitation, position_weights
from persona.datasets import Click, read_sessions

__all__ = [
    "Method",
    "POP",
    "SPOP",
    "SessionRecency",
    "ItemKNN",
    "SKNN",
    "VSKNN",
    "CoVisit",
    "Blend",
    "default_methods",
    "evaluate",
    "format_table",
    "plot",
    "main",
]


class Method(Protocol):
    """What :func:`evaluate` replays clicks through; any generator fits with a small adapter.

    >>> class Again:  # "view it again": the item just viewed
    ...     def learn(self, click): pass
    ...     def recommend(self, session_items, user_id, k, now, exclude):
    ...         return [session_items[-1]][:k]
    >>> clicks = [Click("s1", None, i, float(t)) for t, i in enumerate("aab")]
    >>> evaluate(clicks, {"again": Again()}, progress=False)["again"]["HR@20"]
    0.5
    """

    def learn(self, click: Click) -> None: ...

    def recommend(
        self, session_items: Sequence[str], user_id: str | None, k: int, now: float, exclude: Collection[str]
    ) -> list[str]: ...


def _top(scores: Mapping[str, float], k: int, exclude: Collection[str] = ()) -> list[str]:
    """The ``k`` best-scored items, ties by item id."""
    pairs = ((i, s) for i, s in scores.items() if i not in exclude)
    return [i for i, _ in heapq.nsmallest(k, pairs, key=lambda kv: (-kv[1], kv[0]))]


# --- baselines -------------------------------------------------------------------------------


class POP:
    """Most clicked items so far. The top ``size`` list is kept up to date click by click (an
    item's count only grows, so only the clicked item can move).

    >>> pop = POP()
    >>> for item in "abcbcc":
    ...     pop.learn(Click("s", None, item, 0.0))
    >>> pop.recommend(["a"], None, 2, 0.0, ())
    ['c', 'b']
    """

    def __init__(self, size: int = 200):
        self.size = size
        self.counts: Counter[str] = Counter()
        self._top: list[str] = []
        self._in_top: set[str] = set()

    def learn(self, click: Click) -> None:
        item = click.item_id
        self.counts[item] += 1
        top, counts = self._top, self.counts
        if item in self._in_top:
            i = top.index(item)
        elif len(top) < self.size:
            top.append(item)
            self._in_top.add(item)
            i = len(top) - 1
        elif counts[item] > counts[top[-1]]:
            self._in_top.discard(top[-1])
            top[-1] = item
            self._in_top.add(item)
            i = len(top) - 1
        else:
            return
        while i > 0 and counts[top[i - 1]] < counts[item]:
            top[i - 1], top[i] = top[i], top[i - 1]
            i -= 1

    def ranking(self, k: int, exclude: Collection[str] = ()) -> list[str]:
        return list(islice((i for i in self._top if i not in exclude), k))

    def recommend(self, session_items, user_id, k, now, exclude) -> list[str]:
        return self.ranking(k, exclude)


class SPOP(POP):
    """Items of the current session by how often they were clicked in it (ties by global
    popularity), then the most popular items.

    >>> spop = SPOP()
    >>> for item in "abcbcc":
    ...     spop.learn(Click("s", None, item, 0.0))
    >>> spop.recommend(["a", "b", "a"], None, 3, 0.0, ())
    ['a', 'b', 'c']
    """

    def recommend(self, session_items, user_id, k, now, exclude) -> list[str]:
        in_session = Counter(i for i in session_items if i not in exclude)
        ranked = sorted(in_session, key=lambda i: (-in_session[i], -self.counts[i], i))[:k]
        return ranked + self.ranking(k - len(ranked), set(exclude) | set(ranked))


class SessionRecency:
    """Items of the current session, each scoring ``decay ** steps_back`` per view (the last
    view 1, the one before ``decay``, ...): S-POP with recency. With ``decay <= 0.5`` the last
    item always comes first, then the others by recency and repeat views.

    >>> SessionRecency().recommend(["a", "b", "a", "c"], None, 3, 0.0, ())  # c 1, a 0.5 + 0.125, b 0.25
    ['c', 'a', 'b']
    """

    def __init__(self, decay: float = 0.5):
        self.decay = decay

    def learn(self, click: Click) -> None:
        pass

    def recommend(self, session_items, user_id, k, now, exclude) -> list[str]:
        scores: Counter[str] = Counter()
        weight = 1.0
        for item in reversed(session_items):
            scores[item] += weight
            weight *= self.decay
        return _top(scores, k, exclude)


class ItemKNN:
    """Item-to-item kNN on session co-occurrence (Hidasi et al.'s baseline): neighbours of the
    last item by ``co(i, j) / ((supp_i + lmbd) ** alpha * (supp_j + lmbd) ** (1 - alpha))``,
    with supports and co-occurrences counted in sessions; ``alpha = 0.5`` is the cosine.
    """

    def __init__(self, lmbd: float = 20.0, alpha: float = 0.5):
        self.lmbd = lmbd
        self.alpha = alpha
        self.support: Counter[str] = Counter()
        self.cooc: dict[str, Counter[str]] = {}
        self.sessions: dict[str, set[str]] = {}

    def learn(self, click: Click) -> None:
        seen = self.sessions.setdefault(click.session_id, set())
        item = click.item_id
        if item in seen:
            return
        row = self.cooc.setdefault(item, Counter())
        for other in seen:
            row[other] += 1
            self.cooc[other][item] += 1
        seen.add(item)
        self.support[item] += 1

    def recommend(self, session_items, user_id, k, now, exclude) -> list[str]:
        last = session_items[-1]
        row = self.cooc.get(last)
        if not row:
            return []
        norm = (self.support[last] + self.lmbd) ** self.alpha
        beta = 1.0 - self.alpha
        scores = {j: c / (norm * (self.support[j] + self.lmbd) ** beta) for j, c in row.items()}
        return _top(scores, k, exclude)


class SKNN:
    """Session-based kNN (Jannach and Ludewig): the ``neighbours`` past sessions most similar to
    the current one (cosine on item sets) among the ``sample_size`` most recent sessions that
    share an item with it; an item scores the summed similarity of the neighbours that hold it.

    An inverted index item -> session ids (most recently active last) finds the candidates.
    """

    weighted = False

    def __init__(self, neighbours: int = 100, sample_size: int = 500, max_postings: int = 5000):
        self.neighbours = neighbours
        self.sample_size = sample_size
        self.max_postings = max_postings
        self.items: dict[str, set[str]] = {}
        self.last_seen: dict[str, float] = {}
        self.postings: dict[str, dict[str, None]] = {}

    def learn(self, click: Click) -> None:
        sid, item = click.session_id, click.item_id
        self.items.setdefault(sid, set()).add(item)
        self.last_seen[sid] = max(self.last_seen.get(sid, click.ts), click.ts)
        posting = self.postings.setdefault(item, {})
        posting.pop(sid, None)
        posting[sid] = None
        if len(posting) > self.max_postings:
            del posting[next(iter(posting))]

    def _candidates(self, current: set[str], session_id: str | None) -> list[str]:
        found: set[str] = set()
        for item in current:
            posting = self.postings.get(item)
            if posting:
                found.update(islice(reversed(posting), self.sample_size))
        found.discard(session_id)
        if len(found) > self.sample_size:
            return heapq.nlargest(self.sample_size, found, key=lambda s: (self.last_seen[s], s))
        return list(found)

    def _similarity(self, current: set[str], weights: Mapping[str, float], other: set[str]) -> float:
        shared = current & other
        if not shared:
            return 0.0
        return len(shared) / math.sqrt(len(current) * len(other))

    def _score(self, neighbours, session_items, exclude) -> dict[str, float]:
        scores: dict[str, float] = {}
        for sid, sim in neighbours:
            for item in self.items[sid]:
                if item not in exclude:
                    scores[item] = scores.get(item, 0.0) + sim
        return scores

    def recommend(self, session_items, user_id, k, now, exclude, session_id=None) -> list[str]:
        current = set(session_items)
        weights = position_weights(session_items) if self.weighted else {}
        sims = []
        for sid in self._candidates(current, session_id):
            sim = self._similarity(current, weights, self.items[sid])
            if sim > 0:
                sims.append((sid, sim))
        neighbours = heapq.nlargest(self.neighbours, sims, key=lambda kv: (kv[1], kv[0]))
        return _top(self._score(neighbours, session_items, set(exclude)), k)


class VSKNN(SKNN):
    """Vector multiplication SKNN (Ludewig and Jannach): like :class:`SKNN`, but the current
    session's items weigh linearly by position (the last one 1, see
    :func:`persona.covisit.position_weights`) in the similarity, and a neighbour's vote is
    divided by how far back the most recent item it shares with the current session is."""

    weighted = True

    def _similarity(self, current, weights, other) -> float:
        return sum(weights[i] for i in current & other) / len(current)

    def _score(self, neighbours, session_items, exclude) -> dict[str, float]:
        scores: dict[str, float] = {}
        recent_first = list(dict.fromkeys(reversed(session_items)))
        for sid, sim in neighbours:
            items = self.items[sid]
            step = next((n for n, i in enumerate(recent_first, start=1) if i in items), len(recent_first))
            vote = sim / step
            for item in items:
                if item not in exclude:
                    scores[item] = scores.get(item, 0.0) + vote
        return scores


# --- persona methods -------------------------------------------------------------------------


class CoVisit:
    """:class:`persona.covisit.CoVisitation` as an evaluation method."""

    def __init__(self, **params):
        self.model = CoVisitation(**params)
        self.sessions: dict[str, list[str]] = {}

    def learn(self, click: Click) -> None:
        earlier = self.sessions.setdefault(click.session_id, [])
        self.model.learn(earlier, click.item_id, click.ts)
        earlier.append(click.item_id)
        del earlier[: -self.model.window]

    def recommend(self, session_items, user_id, k, now, exclude) -> list[str]:
        return [item for item, _, _ in self.model.recommend(session_items, k, now, exclude)]


# Chosen on validation data only: the last day of the yoochoose training file, scored after
# learning the five days before it (never on the test files): c in {0, 0.5, 1, 2, 5, 20, 60},
# session weight in {0.5, 1, 1.5, 2, 3, 4}; past 2 the session items all come first anyway.
BLEND_WEIGHTS = {"covisit": 1.0, "session": 2.0, "pop": 0.05}
BLEND_C = 1.0


class Blend:
    """Weighted reciprocal-rank fusion of several methods: an item scores
    ``sum(weight[m] / (c + rank_m(item)))`` over the methods ``m`` that rank it (ranks from 1,
    each method asked for ``depth`` items, default ``k``). Every member learns every click.

    The default blend is :class:`CoVisit` + :class:`SessionRecency` + :class:`POP` (the fill),
    weighted by ``BLEND_WEIGHTS`` with ``c = BLEND_C``. A small ``c`` (RRF usually takes 60)
    keeps the top of each short list apart: here the session's last item comes first, the best
    co-visited item level with the third most recent session item, and best-sellers only fill.

    >>> b = Blend({"x": SessionRecency(), "y": POP()}, weights={"x": 1.0, "y": 0.5}, c=1.0)
    >>> for item in "ppq":
    ...     b.learn(Click("s0", None, item, 0.0))
    >>> b.recommend(["a", "q"], None, 3, 0.0, ())  # q: 1/2 + 0.5/3, a: 1/3, p: 0.5/2
    ['q', 'a', 'p']
    """

    def __init__(
        self,
        methods: Mapping[str, Method] | None = None,
        weights: Mapping[str, float] | None = None,
        c: float = BLEND_C,
        depth: int | None = None,
    ):
        if methods is None:
            methods = {"covisit": CoVisit(), "session": SessionRecency(), "pop": POP()}
            weights = {**BLEND_WEIGHTS, **(weights or {})}
        self.methods = dict(methods)
        self.weights = {name: 1.0 for name in self.methods} | dict(weights or {})
        self.c = c
        self.depth = depth
        self._session_aware = {n: _takes_session_id(m) for n, m in self.methods.items()}

    def learn(self, click: Click) -> None:
        for method in self.methods.values():
            method.learn(click)

    def recommend(self, session_items, user_id, k, now, exclude, session_id=None) -> list[str]:
        scores: dict[str, float] = {}
        depth = self.depth or k
        for name, method in self.methods.items():
            weight = self.weights.get(name, 0.0)
            if weight == 0.0:
                continue
            extra = {"session_id": session_id} if self._session_aware[name] else {}
            ranked = method.recommend(session_items, user_id, depth, now, exclude, **extra)
            for rank, item in enumerate(ranked, start=1):
                scores[item] = scores.get(item, 0.0) + weight / (self.c + rank)
        return _top(scores, k, exclude)


def default_methods() -> dict[str, Method]:
    """Fresh instances of the baselines and the persona methods, by display name."""
    return {
        "POP": POP(),
        "S-POP": SPOP(),
        "item-kNN": ItemKNN(),
        "SKNN": SKNN(),
        "V-SKNN": VSKNN(),
        "CoVisitation": CoVisit(),
        "Blend": Blend(),
    }


# --- the harness -----------------------------------------------------------------------------


def _takes_session_id(method) -> bool:
    try:
        return "session_id" in inspect.signature(method.recommend).parameters
    except (TypeError, ValueError):
        return False


def _percentiles(counts: Mapping[str, int]) -> dict[str, float]:
    """Popularity percentile of each item, 0 (least clicked) to 1 (most), mid-rank for ties.

    >>> _percentiles({"a": 1, "b": 5, "c": 5, "d": 9})
    {'a': 0.0, 'b': 0.5, 'c': 0.5, 'd': 1.0}
    """
    ordered = sorted(counts.values())
    n = len(ordered)
    if n < 2:
        return {item: 1.0 for item in counts}
    out = {}
    for item, c in counts.items():
        mid = (bisect.bisect_left(ordered, c) + bisect.bisect_right(ordered, c) - 1) / 2
        out[item] = mid / (n - 1)
    return out


def evaluate(
    clicks: Iterable[Click],
    methods: Mapping[str, Method],
    k: int = 20,
    progress: bool = True,
    warmup: int = 0,
    report_from_ts: float | None = None,
) -> dict[str, dict[str, float]]:
    """Replay ``clicks`` (in time order) through ``methods``, predicting before learning.

    Clicks before index ``warmup`` and before time ``report_from_ts`` are learned, not scored.
    Per method: ``HR@k`` and ``MRR@k`` of the next click; ``coverage``, the share of all items
    clicked in the replay that the method ever recommended; ``popularity``, the mean popularity
    percentile (by clicks over the whole replay, 0 = least, 1 = most clicked) of the items it
    recommended; ``ms/prediction`` and ``ms/click`` (learning) wall time; ``predictions`` scored.
    """
    clicks = clicks if isinstance(clicks, Sequence) else list(clicks)
    names = list(methods)
    hits = dict.fromkeys(names, 0)
    rr = dict.fromkeys(names, 0.0)
    predict_time = dict.fromkeys(names, 0.0)
    learn_time = dict.fromkeys(names, 0.0)
    recommended: dict[str, Counter[str]] = {n: Counter() for n in names}
    session_aware = {n: _takes_session_id(m) for n, m in methods.items()}
    sessions: dict[str, tuple[list[str], float]] = {}
    counts: Counter[str] = Counter()
    predictions = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(clicks), unit="click", file=sys.stderr, mininterval=0.5)
    clock = time.perf_counter
    for index, click in enumerate(clicks):
        items, last_ts = sessions.get(click.session_id, ([], click.ts))
        scored = index >= warmup and (report_from_ts is None or click.ts >= report_from_ts)
        if items and scored:
            predictions += 1
            context = tuple(items)
            for name, method in methods.items():
                extra = {"session_id": click.session_id} if session_aware[name] else {}
                t0 = clock()
                ranked = method.recommend(context, click.user_id, k, last_ts, (), **extra)[:k]
                predict_time[name] += clock() - t0
                recommended[name].update(ranked)
                try:
                    rank = ranked.index(click.item_id) + 1
                except ValueError:
                    continue
                hits[name] += 1
                rr[name] += 1.0 / rank
        for name, method in methods.items():
            t0 = clock()
            method.learn(click)
            learn_time[name] += clock() - t0
        items.append(click.item_id)
        sessions[click.session_id] = (items, click.ts)
        counts[click.item_id] += 1
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    percentile = _percentiles(counts)
    results = {}
    for name in names:
        recs = recommended[name]
        n_recs = sum(recs.values())
        results[name] = {
            f"HR@{k}": hits[name] / predictions if predictions else 0.0,
            f"MRR@{k}": rr[name] / predictions if predictions else 0.0,
            "coverage": len(recs) / len(counts) if counts else 0.0,
            "popularity": sum(percentile[i] * c for i, c in recs.items()) / n_recs if n_recs else 0.0,
            "ms/prediction": 1000 * predict_time[name] / predictions if predictions else 0.0,
            "ms/click": 1000 * learn_time[name] / len(clicks) if clicks else 0.0,
            "predictions": float(predictions),
        }
    return results


def format_table(results: Mapping[str, Mapping[str, float]], columns: Sequence[str] | None = None) -> str:
    """A plain text table, one row per method."""
    if not results:
        return "(no results)"
    columns = list(columns or next(iter(results.values())))

    def cell(value: float) -> str:
        return str(int(value)) if float(value).is_integer() and abs(value) >= 10 else f"{value:.3f}"

    rows = [["method", *columns]] + [[name, *(cell(r[c]) for c in columns)] for name, r in results.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        first = row[0].ljust(widths[0])
        lines.append("  ".join([first] + [v.rjust(w) for v, w in zip(row[1:], widths[1:])]).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot(results: Mapping[str, Mapping[str, float]], path: str, title: str | None = None) -> None:
    """Write a PNG bar chart of the hit rate and MRR of every method to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    first = next(iter(results.values()))
    hr = next(key for key in first if key.startswith("HR@"))
    mrr = next(key for key in first if key.startswith("MRR@"))
    x = range(len(names))
    width = 0.4
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(names) + 2), 4.0))
    for offset, key in ((-width / 2, hr), (width / 2, mrr)):
        values = [results[n][key] for n in names]
        bars = ax.bar([i + offset for i in x], values, width, label=key)
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    ax.set_xticks(list(x), names, rotation=20, ha="right")
    ax.set_ylim(0, min(1.0, 1.15 * max(max(r[hr], r[mrr]) for r in results.values()) + 0.05))
    ax.set_title(title or "Next-item prediction (prequential)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m persona.evaluate",
        description="Prequential next-item evaluation of the baselines and persona's methods. "
        "With several files, all but the last are learned first (training), and only the "
        "last one is scored.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="click files, oldest first")
    parser.add_argument("--format", dest="fmt", default=None, help="yoochoose, diginetica or sequences")
    parser.add_argument("--k", type=int, default=20, help="list length (default 20)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N clicks of the scored file")
    parser.add_argument("--warmup", type=int, default=0, help="learn, don't score, the first N clicks")
    parser.add_argument("--methods", default=None, help="comma-separated subset of: " + ", ".join(default_methods()))
    parser.add_argument("--plot", default=None, metavar="PNG", help="also write a bar chart")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    *train_paths, test_path = args.paths
    train = [c for p in train_paths for c in read_sessions(p, args.fmt)]
    test = read_sessions(test_path, args.fmt)[: args.limit]
    methods = default_methods()
    if args.methods:
        wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
        unknown = [m for m in wanted if m not in methods]
        if unknown:
            parser.error(f"unknown methods: {', '.join(unknown)}")
        methods = {m: methods[m] for m in wanted}
    started = time.perf_counter()
    results = evaluate(train + test, methods, k=args.k, progress=not args.no_progress,
                       warmup=len(train) + args.warmup)
    elapsed = time.perf_counter() - started
    print(format_table(results))
    print(f"\n{len(train)} clicks learned first, {len(test)} replayed, "
          f"{int(next(iter(results.values()))['predictions'])} predictions scored, {elapsed:.1f} s")
    if args.plot:
        plot(results, args.plot, title=f"Next-item prediction on {Path(test_path).name} (prequential, k={args.k})")
        print(f"chart: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
