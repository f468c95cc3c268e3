"""Live engagement per generator and slot: impressions, clicks, carts, purchases, revenue.

Each ``source|slot`` key keeps its totals and per-minute counts for the last hour (event time),
so the rates can be read both overall and as a series.

>>> s = add({}, "impressions", 10, ts=60.0)
>>> s = add(s, "clicks", 2, ts=61.0)
>>> s = add(s, "purchases", 1, ts=65.0)
>>> s = add(s, "revenue", 80.0, ts=65.0)
>>> row = summary("content|home", s)
>>> row["ctr"], row["conversion"], row["revenue_per_1000"]
(0.2, 0.1, 8000.0)
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

__all__ = ["KINDS", "RESET", "add", "summary", "series"]

KINDS = ("impressions", "clicks", "carts", "purchases", "revenue")
MINUTE = 60
KEEP_MINUTES = 60
RESET = "reset"


def add(stats: Mapping[str, Any], kind: str, amount: float, ts: float) -> dict[str, Any]:
    """A copy of ``stats`` with ``amount`` of ``kind`` added at event time ``ts``; kind ``reset``
    starts the counts again from nothing (an operator's reset of the engagement figures).

    >>> s = add(add({}, "clicks", 2, ts=60.0), "impressions", 5, ts=61.0)
    >>> fresh = add(s, "reset", 0, ts=62.0)
    >>> fresh, summary("cf|home", fresh)["clicks"], summary("cf|home", fresh)["ctr"]
    ({}, 0.0, None)
    >>> add(fresh, "clicks", 1, ts=63.0)["totals"]
    {'clicks': 1.0}
    """
    if kind == RESET:
        return {}
    totals = dict(stats.get("totals", {}))
    totals[kind] = totals.get(kind, 0.0) + amount
    minutes = {k: dict(v) for k, v in stats.get("minutes", {}).items()}
    key = str(int(ts // MINUTE) * MINUTE)
    minutes.setdefault(key, {})[kind] = minutes.get(key, {}).get(kind, 0.0) + amount
    newest = max(int(k) for k in minutes)
    minutes = {k: v for k, v in minutes.items() if int(k) > newest - KEEP_MINUTES * MINUTE}
    return {"totals": totals, "minutes": minutes}


def _rates(source: str, slot: str, t: Mapping[str, float]) -> dict[str, Any]:
    shown = t.get("impressions", 0.0)

    def per(kind: str) -> float | None:
        return round(t.get(kind, 0.0) / shown, 6) if shown else None

    return {"source": source, "slot": slot, **{k: t.get(k, 0.0) for k in KINDS},
            "ctr": per("clicks"), "cart_rate": per("carts"), "conversion": per("purchases"),
            "revenue_per_1000": round(1000 * t.get("revenue", 0.0) / shown, 2) if shown else None}


def summary(key: str, stats: Mapping[str, Any]) -> dict[str, Any]:
    """Totals and rates of one ``source|slot`` key."""
    source, _, slot = key.partition("|")
    return _rates(source, slot, stats.get("totals", {}))


def series(items: Iterable[tuple[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Per-minute counts per source (slots added up), oldest first.

    >>> series([("a|home", add({}, "clicks", 1, ts=120.0)), ("a|cart", add({}, "clicks", 2, ts=130.0))])
    [{'minute': 120, 'source': 'a', 'impressions': 0.0, 'clicks': 3.0, 'carts': 0.0, 'purchases': 0.0, 'revenue': 0.0}]
    """
    out: dict[tuple[int, str], dict[str, Any]] = {}
    for key, stats in items:
        source = key.partition("|")[0]
        for minute, counts in stats.get("minutes", {}).items():
            row = out.setdefault((int(minute), source), {"minute": int(minute), "source": source,
                                                          **{k: 0.0 for k in KINDS}})
            for kind, n in counts.items():
                row[kind] += n
    return [out[k] for k in sorted(out)]
