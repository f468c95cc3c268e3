"""HTTP API of a worker: recommendations, related items, trending, profiles, rules, models, health.

Per-user routes are answered by the worker that owns the user (see :mod:`.routing`), so any
worker can be asked about any user. Every served recommendation is logged as an impression.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field

import orjson
from faust.web import Request, Response

from persona.agents import topics
from persona.agents.app import app, settings
from persona.bandit import choose
from persona.agents.ingest import counters, owner_partition, send_control
from persona.models import journey_stage
from persona.blend import Blended, blend, related
from persona.blend import Request as BlendRequest
from persona.profile import Profile
from persona.rules import Candidate, InvalidRules, parse_rules
from persona.tables.state import ACTIVE_RULES, catalog, models, profiles, rules, shop, variant_stats
from persona.web.base import MAX_N, ApiView, CatalogView, admin_error, int_param, text_param
from persona.web.routing import forward_to_owner, served_here

logger = logging.getLogger(__name__)

__all__ = ["RecommendationsView", "RelatedView", "TrendingView", "UserView", "RulesView", "ModelsView"]

def item_view(c: Candidate) -> dict:
    p = catalog.data[c.item_id]
    return {"item_id": c.item_id, "name": p.name, "brand": p.brand, "category": p.category, "family": p.family,
            "gender": p.gender, "price": p.price, "image": p.image, "score": round(c.score, 6),
            "reasons": c.reasons, "source": c.source}


class ServedLists:
    """The lists answered within ``linger`` seconds, sent together: one record per partition of
    the impressions topic, one impression (a GA4 view_item_list) a line. Every record the worker
    consumes costs it about a millisecond at steady rates (BENCHMARKS.md), whatever it holds.
    """

    def __init__(self, linger: float = settings.impression_linger) -> None:
        self.linger = linger
        self._lines: dict[int, list[bytes]] = defaultdict(list)
        self._sending: asyncio.Task | None = None
        self._in_order = asyncio.Lock()  # a user's lists reach the topic in the order they were served

    def add(self, user_id: str, rec_id: str, slot: str | None, variant: str, items: list[Candidate]) -> None:
        self._lines[owner_partition(user_id)].append(orjson.dumps({
            "event_id": rec_id, "event_name": "view_item_list", "user_id": user_id, "rec_id": rec_id,
            "variant": variant, "timestamp": int(time.time() * 1000),
            "items": [{"item_id": c.item_id, "index": n, "item_list_id": c.source, "item_list_name": slot}
                      for n, c in enumerate(items)]}))
        if self._sending is None:
            self._sending = asyncio.ensure_future(self.send(self.linger))

    async def send(self, after: float = 0.0) -> None:
        await asyncio.sleep(after)  # at least the answers of this turn of the loop first
        lines, self._lines, self._sending = self._lines, defaultdict(list), None
        async with self._in_order:
            for partition, batch in sorted(lines.items()):
                try:
                    await topics.impressions.send(key=b"served", value=b"\n".join(batch), partition=partition)
                except Exception as err:  # the answers are out: count what their feedback will miss
                    counters["impressions_unsent"] += len(batch)
                    logger.warning("%d served lists not logged to partition %d: %r", len(batch), partition, err)


served_lists = ServedLists()


@app.on_before_shutdown.connect
async def send_served_lists(app, **kwargs) -> None:
    """The lists still lingering go out before the producer stops."""
    await served_lists.send()


def profile_version(p: Profile) -> tuple:
    """Changes with every event applied to the profile (counts grow by one per event; merges, carts,
    purchases and sessions show too), not with the impressions the worker logs.

    >>> a = Profile("u", counts={"view_item": 1}, recent=[["x", 1.0, "view_item"]])
    >>> b = Profile("u", counts={"view_item": 1}, recent=[["x", 1.0, "view_item"]], impressions={"r": {}})
    >>> profile_version(a) == profile_version(b), profile_version(a) == profile_version(Profile("u"))
    (True, False)
    """
    recent = p.recent
    return (sum(p.counts.values()), p.last_seen, len(recent), tuple(recent[-1]) if recent else None,
            tuple(p.cart), len(p.purchased), tuple(p.session.values()))


class Answers:
    """Blended answers per (user, profile version, request), each kept for between 0.8 × ``ttl`` and
    ``ttl`` seconds (drawn at random) while the catalog, relations and rules stay as they were. Any
    event applied to the user's profile changes the key, so a new view shows at once; other
    shoppers' signals show within ``ttl`` (as they reach the item tables only every
    ``item_flush_every`` anyway). With one fixed time to live, the answers blended in a burst (a
    worker starting, a new rule set) would all expire in one burst again, over and over; drawn,
    they spread out within a few rounds.

    >>> answers, blends = Answers(ttl=2.0), []
    >>> blend = lambda: blends.append(1) or len(blends)
    >>> [answers.get(("u", 1), "v1", blend, now=t) for t in (0.0, 1.5, 2.1)]  # kept 1.6-2 s, then blended again
    [1, 1, 2]
    >>> answers.get(("u", 2), "v1", blend, now=2.2), answers.get(("u", 1), "v2", blend, now=2.3)  # new event, new rules
    (3, 4)

    At ``max_size`` answers the expired ones go (all of them, if most are still fresh):

    >>> small = Answers(ttl=2.0, max_size=2)
    >>> _ = small.get("a", "v", blend, now=0.0), small.get("b", "v", blend, now=1.0), small.get("c", "v", blend, now=2.5)
    >>> sorted(small._answers)
    ['b', 'c']
    """

    def __init__(self, ttl: float = settings.answer_ttl, max_size: int = 10_000) -> None:
        self.ttl, self.max_size = ttl, max_size
        self._version: object = None
        self._answers: dict[tuple, tuple[float, object]] = {}  # key -> (kept until, answer)

    def get(self, key: tuple, version: object, compute, now: float | None = None):
        now = time.monotonic() if now is None else now
        if version != self._version:
            self._version, self._answers = version, {}
        elif len(self._answers) >= self.max_size:
            fresh = {k: v for k, v in self._answers.items() if now < v[0]}
            self._answers = fresh if len(fresh) <= self.max_size // 2 else {}
        found = self._answers.get(key)
        if found is None or now >= found[0]:
            found = self._answers[key] = (now + self.ttl * random.uniform(0.8, 1.0), compute())
        return found[1]


answers = Answers()


@dataclass
class Answer:
    """A blended answer as served: its items rendered once, and one ``rec_id`` for as long as it is
    kept. Asking the same question again within the answer's time to live gets the same list with
    the same ``rec_id``, logged as one impression: a page reloaded or a widget refreshed is not a
    new list shown, and counting it again would skew CTR and teach the re-ranker extra negatives.
    """

    out: Blended
    items: list[dict]
    rec_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    logged: bool = False


def counted_blend(profile: Profile | None, req: BlendRequest) -> Answer:
    counters["answers_blended"] += 1  # against "recommendations_served": how often an answer is kept
    out = blend(profile, req, shop.sources())
    return Answer(out, [item_view(c) for c in out.items])


@app.page("/recommendations/{user_id}")
class RecommendationsView(CatalogView):
    async def get(self, request: Request, user_id: str) -> Response:
        req = BlendRequest(n=int_param(request, "n", 10, 1, MAX_N), now=time.time(),
                           slot=text_param(request, "slot"), item_id=text_param(request, "item_id"),
                           category=text_param(request, "category"))
        if req.item_id is not None and req.item_id not in catalog.data:
            return self.error(404, f"no item {req.item_id!r} in the catalog")
        if (forwarded := await forward_to_owner(self, request, user_id)) is not None:
            return forwarded
        profile = profiles.peek(user_id)  # the live object: blending only reads it
        session = profile.session if profile else {}
        req.variant = session.get("variant") or choose(session.get("id") or user_id, shop.variant_stats(),
                                                        settings.allocation, settings.explore)
        key = (user_id, profile_version(profile) if profile else None, req.n, req.slot, req.item_id, req.category,
               req.variant)
        answer = answers.get(key, shop.version(tick=False), lambda: counted_blend(profile, req))
        out = answer.out
        counters["recommendations_served"] += 1
        if not answer.logged:
            served_lists.add(user_id, answer.rec_id, req.slot, req.variant, out.items)
            answer.logged = True
        if out.intent is not None:
            counters[f"intent_{min(int(out.intent * 10), 9)}"] += 1
        return self.json({
            "user_id": user_id, "rec_id": answer.rec_id, "strategy": out.strategy, "fallback": out.fallback,
            "variant": req.variant,
            "intent": out.intent, "stage": out.stage, "rules_fired": out.fired,
            "items": answer.items,
        }, headers=served_here())


@app.page("/items/{item_id}/related")
class RelatedView(CatalogView):
    async def get(self, request: Request, item_id: str) -> Response:
        n = int_param(request, "n", 10, 1, MAX_N)
        if item_id not in catalog.data:
            return self.error(404, f"no item {item_id!r} in the catalog")
        return self.json({"item_id": item_id, "items": [item_view(c) for c in related(item_id, shop.sources(), n)]})


@app.page("/trending")
class TrendingView(CatalogView):
    async def get(self, request: Request) -> Response:
        n = int_param(request, "n", 10, 1, MAX_N)
        category = text_param(request, "category")
        label = f"trending in {category}" if category else "trending now"
        found = [Candidate(i, s, "trending", [label]) for i, s in shop.trending(category, n)]
        return self.json({"category": category, "items": [item_view(c) for c in found]})


@app.page("/users/{user_id}")
class UserView(ApiView):
    async def get(self, request: Request, user_id: str) -> Response:
        if (forwarded := await forward_to_owner(self, request, user_id)) is not None:
            return forwarded
        profile = profiles.peek(user_id)
        if profile is None:
            return self.error(404, f"no profile for user {user_id!r}", headers=served_here())
        src, now = shop.sources(), max(time.time(), profile.last_seen)
        intent = src.intent(profile, now) if src.intent else None
        return self.json({**asdict(profile), "intent": intent,  # every field, also those the stored form leaves out
                          "stage": journey_stage(profile, intent, now, catalog.data)}, headers=served_here())

    async def delete(self, request: Request, user_id: str) -> Response:
        """Delete everything about a user (admin): profile, model factors; the deletion is recorded."""
        if refused := admin_error(request):
            return self.error(*refused)
        await send_control(user_id, {"op": "delete", "why": "deletion request"})
        return self.json({"user_id": user_id, "status": "deletion scheduled"}, status=202)


@app.page("/rules")
class RulesView(ApiView):
    async def put(self, request: Request) -> Response:
        """Validate a rule set and make it the active one on every worker (admin)."""
        if refused := admin_error(request):
            return self.error(*refused)
        raw = await request.read()
        try:
            ruleset = parse_rules(raw)
        except InvalidRules as err:
            return self.error(400, str(err))
        await topics.rules.send(key=ACTIVE_RULES.encode(), value=raw)
        return self.json({"version": ruleset.version, "rules": len(ruleset.rules), "status": "published"},
                         status=202)

    async def get(self, request: Request) -> Response:
        active = shop.rules
        return self.json({"version": active.version, "source": "topic" if rules.get(ACTIVE_RULES) else "default",
                          "rules": active.model_dump(mode="json", exclude_none=True)["rules"],
                          "rejected": rules.rejected.get(ACTIVE_RULES)})


@app.page("/models")
class ModelsView(ApiView):
    async def get(self, request: Request) -> Response:
        return self.json({name: {"version": m.version, **(m.metrics() if hasattr(m, "metrics") else {})}
                          for name, m in models.data.items()})
