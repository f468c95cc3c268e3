"""What one event changes: the shopper's profile, and the messages it sends on.

:func:`process` is the whole per-event logic of the ingest agent, without Kafka: it folds the
event into the profile and returns :class:`Effects`, the records the agent produces next —
item signals (popularity, trending), co-visitation updates (keyed by item), and training examples
whose label has just resolved (intent: positive at a conversion, negative when a session ends
without one; re-ranker: clicks on served recommendations and the items shown above them).

>>> from persona.events import parse_event
>>> p = Profile("u1")
>>> def ev(i, name, item, ts, **extra):
...     return parse_event(json.dumps({"event_id": f"e{i}", "event_name": name, "user_id": "u1",
...         "session_id": "s1", "timestamp": ts * 1000, "items": [{"item_id": item}], **extra}))
>>> fx = process(p, ev(1, "view_item", "a", 1_700_000_000), catalog={})
>>> fx.applied, fx.item_signals, fx.covisit
(True, [('a', 'view_item', 1, 1700000000.0)], [])
>>> fx = process(p, ev(2, "add_to_cart", "b", 1_700_000_060), catalog={})
>>> [(e["model"], e["label"]) for e in fx.examples if e["model"] == "intent"]
[('intent', True)]
>>> [(a, b) for a, b, _ in process(p, ev(3, "view_item", "c", 1_700_000_090), catalog={}).covisit]
[('b', 'c'), ('c', 'b'), ('a', 'c'), ('c', 'a')]
"""

from __future__ import annotations

import json  # noqa: F401  (used by the doctest)
from dataclasses import dataclass, field
from typing import Any, Mapping

from persona.catalog import Product
from persona.covisit import pair_updates
from persona.events import Event
from persona.models import ReRanker, Shopper, session_features
from persona.profile import Profile

__all__ = ["Effects", "process", "aggregate_only", "CF_WEIGHTS"]

CF_WEIGHTS = {"view_item": 1.0, "select_item": 1.0, "add_to_cart": 3.0, "purchase": 5.0}
ITEM_SIGNALS = set(CF_WEIGHTS)
CONVERSIONS = {"add_to_cart", "purchase"}
CLICKS = {"select_item", "add_to_cart"}
MAX_IMPRESSIONS = 5  # open impressions per user; older ones resolve as not clicked
ATTRIBUTION_WINDOW = 30 * 60  # a cart or purchase within this time of an impression is attributed to it
UNCLICKED_NEGATIVES = 3  # top slots of an unclicked impression learnt as negatives
# Co-visitation weights are stored decay-normalized relative to this event time (2026-01-01):
# with a 3-day half-life the scale reaches 2**1000 (float's limit) about eight years later.
COVISIT_ORIGIN = 1_767_225_600.0


@dataclass
class Effects:
    applied: bool
    item_signals: list[tuple[str, str, int, float]] = field(default_factory=list)  # item, event, n, ts
    covisit: list[tuple[str, str, float]] = field(default_factory=list)  # item, neighbour, weight
    examples: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[tuple[str, str, str, float, float]] = field(default_factory=list)  # source, slot, kind, n, ts


def _intent_examples(profile: Profile, event: Event, catalog: Mapping[str, Product]) -> list[dict]:
    """Examples whose label resolves with this event (computed before the event is applied)."""
    s = profile.session
    if not s:
        return []
    ends = event.session_id and event.session_id != s.get("id")
    ends = ends or (not event.session_id and event.ts - s["last"] > 30 * 60)
    if ends and not s.get("converted"):
        return [{"model": "intent", "features": session_features(profile, s["last"], catalog), "label": False}]
    if not ends and event.event_name in CONVERSIONS and not s.get("converted"):
        s["converted"] = True
        return [{"model": "intent", "features": session_features(profile, event.ts, catalog), "label": True}]
    return []


def _attribute(profile: Profile, event: Event, catalog: Mapping[str, Product]) -> tuple[list[dict], list[tuple]]:
    """Impressions and what follows them: re-ranker examples and feedback per source and slot.

    A served list is remembered by ``rec_id`` for ``ATTRIBUTION_WINDOW`` seconds. A ``select_item``
    or ``add_to_cart`` carrying its ``rec_id`` is a click: the clicked item is a positive example and
    the items shown above it negatives (skip-above). Carts and purchases are attributed to the list
    named by ``rec_id``, else to the latest open list that showed the item. A list that expires
    unclicked makes its top ``UNCLICKED_NEGATIVES`` items negatives.
    """
    examples: list[dict] = []
    feedback: list[tuple[str, str, str, float, float]] = []  # source, slot, kind, amount, ts

    shoppers: list[Shopper] = []  # built once, when the first example needs it (``recent`` does not change here)

    def example(item_id: str, source: str, position: int, slot: str | None, label: bool) -> None:
        if item_id in catalog:
            if not shoppers:
                shoppers.append(Shopper.of(profile, catalog))
            x = ReRanker.features(catalog[item_id], source, 0.0, position, slot, shoppers[0], catalog)
            examples.append({"model": "reranker", "features": x, "label": label})

    def shown(item_id: str) -> tuple[dict, list] | None:
        imp = profile.impressions.get(event.rec_id or "")
        candidates = [imp] if imp else sorted(profile.impressions.values(), key=lambda i: -i["ts"])
        for imp in candidates:
            for entry in imp["items"]:
                if entry[0] == item_id and event.ts - imp["ts"] <= ATTRIBUTION_WINDOW:
                    return imp, entry
        return None

    imps = profile.impressions
    if event.event_name == "view_item_list" and event.rec_id:
        slot = (event.items[0].item_list_name if event.items else None) or "none"
        items = [[i.item_id, i.item_list_id or "unknown", i.index if i.index is not None else n]
                 for n, i in enumerate(event.items)]
        imps[event.rec_id] = {"ts": event.ts, "slot": slot, "items": items, "clicked": [], "variant": event.variant}
        feedback += [(source, slot, "impressions", 1.0, event.ts) for _, source, _ in items]
        if event.variant:
            profile.session.setdefault("variant", event.variant)  # one variant for the whole session
            feedback.append((f"variant:{event.variant}", slot, "impressions", float(len(items)), event.ts))
        expired = sorted(imps, key=lambda r: imps[r]["ts"])[: max(0, len(imps) - MAX_IMPRESSIONS)]
        expired += [r for r in imps if event.ts - imps[r]["ts"] > ATTRIBUTION_WINDOW and r not in expired]
        for rec_id in expired:
            imp = imps.pop(rec_id)
            if not imp["clicked"]:
                for item_id, source, position in imp["items"][:UNCLICKED_NEGATIVES]:
                    example(item_id, source, position, imp["slot"], False)
        return examples, feedback
    kinds = {"select_item": "clicks", "add_to_cart": "carts", "purchase": "purchases"}
    if event.event_name not in kinds:
        return examples, feedback
    for item in event.items:
        found = shown(item.item_id)
        if found is None:
            continue
        imp, (item_id, source, position) = found
        counted = [(kinds[event.event_name], 1.0)]
        if event.event_name in CLICKS and event.rec_id in imps and item_id not in imp["clicked"]:
            if not imp["clicked"]:  # the first click of a list teaches the re-ranker
                for other_id, other_source, other_position in imp["items"]:
                    example(other_id, other_source, other_position, imp["slot"], other_id == item_id)
                    if other_id == item_id:
                        break
            imp["clicked"].append(item_id)
            if event.event_name == "add_to_cart":  # straight from the list into the cart: a click too
                counted.append(("clicks", 1.0))
        if event.event_name == "purchase":
            counted.append(("revenue", (item.price or 0.0) * (item.quantity or 1)))
        for s in [source] + ([f"variant:{imp['variant']}"] if imp.get("variant") else []):
            feedback += [(s, imp["slot"], kind, amount, event.ts) for kind, amount in counted]
    return examples, feedback


def aggregate_only(event: Event) -> Effects:
    """Effects of an event sent without consent: counts for best-sellers and trending, nothing personal."""
    signals = [(i.item_id, event.event_name, i.quantity or 1, event.ts) for i in event.items] \
        if event.event_name in ITEM_SIGNALS else []
    return Effects(applied=True, item_signals=signals)


def process(profile: Profile, event: Event, catalog: Mapping[str, Product], served: bool = False) -> Effects:
    """Apply ``event`` to ``profile`` (in place) and return what to send on.

    ``served`` marks an impression logged by a worker rather than sent by the storefront: it is
    remembered for attributing clicks but is not shopper activity (no counts, no session).
    """
    if profile.seen(event.event_id):
        return Effects(applied=False)
    if served:
        profile.remember(event.event_id)
        examples, feedback = _attribute(profile, event, catalog)
        return Effects(applied=True, examples=examples, feedback=feedback)
    examples = _intent_examples(profile, event, catalog)
    session_before = profile.session.get("id")
    covisits = event.event_name in ("view_item", "select_item")
    if covisits:  # what this session touched before: oldest first
        in_session = event.ts - profile.session.get("start", event.ts)
        recent_before = [i for i, _, _ in reversed(profile.recent_items(event.ts, in_session))]
    more, feedback = _attribute(profile, event, catalog)
    profile.apply(event)
    fx = Effects(applied=True, examples=examples + more, feedback=feedback)
    if event.event_name not in ITEM_SIGNALS:
        return fx
    same_session = profile.session.get("id") == session_before
    for item in event.items:
        fx.item_signals.append((item.item_id, event.event_name, item.quantity or 1, event.ts))
        fx.examples.append({"model": "cf", "user": profile.user_id, "item": item.item_id,
                            "weight": CF_WEIGHTS[event.event_name]})
        if same_session and covisits:
            fx.covisit += pair_updates(recent_before, item.item_id, event.ts, origin=COVISIT_ORIGIN)
    return fx
