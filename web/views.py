"""HTTP API of a worker: recommendations, profiles, health.

Every per-user route is answered by the worker that owns the user (see :mod:`.routing`), so any
worker can be asked about any user.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from faust.web import Request, Response, View

from persona.agents.app import app
from persona.agents.ingest import counters
from persona.recommend import recommend
from persona.profile import Profile
from persona.tables.state import catalog, item_stats_everywhere, profiles, shop
from persona.web.routing import forward_to_owner, served_here

__all__ = ["RecommendationsView", "UserView", "HealthView"]

MAX_N = 100
STATIC = Path(__file__).parent / "static"


class BadRequest(Exception):
    pass


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}, got {value}")
    return value


def item_view(rec, product) -> dict:
    return {
        "item_id": rec.item_id,
        "name": product.name,
        "brand": product.brand,
        "category": product.category,
        "family": product.family,
        "price": product.price,
        "image": product.image,
        "score": rec.score,
        "reasons": rec.reasons,
        "source": rec.source,
    }


@app.page("/recommendations/{user_id}")
class RecommendationsView(View):
    async def get(self, request: Request, user_id: str) -> Response:
        try:
            n = int_param(request, "n", 10, 1, MAX_N)
        except BadRequest as err:
            return self.error(400, str(err))
        if not catalog.ready.is_set():
            return self.error(503, "catalog not loaded yet", headers={"Retry-After": "1"})
        if (forwarded := await forward_to_owner(self, request, user_id)) is not None:
            return forwarded
        stored = profiles.get(user_id)
        profile = Profile.from_dict(stored) if stored else None
        recs = recommend(profile, shop.index, shop.best_sellers(), now=time.time(), n=n)
        products = catalog.data
        return self.json({
            "user_id": user_id,
            "rec_id": uuid.uuid4().hex,
            "strategy": recs.strategy,
            "fallback": recs.fallback,
            "items": [item_view(r, products[r.item_id]) for r in recs.items if r.item_id in products],
        }, headers=served_here())


@app.page("/users/{user_id}")
class UserView(View):
    async def get(self, request: Request, user_id: str) -> Response:
        if (forwarded := await forward_to_owner(self, request, user_id)) is not None:
            return forwarded
        stored = profiles.get(user_id)
        if not stored:
            return self.error(404, f"no profile for user {user_id!r}", headers=served_here())
        return self.json(stored, headers=served_here())


@app.page("/health")
class HealthView(View):
    async def get(self, request: Request) -> Response:
        ready = catalog.ready.is_set() and not app.rebalancing
        return self.json({
            "status": "ok" if ready else "starting",
            "worker": str(app.conf.canonical_url),
            "catalog_items": len(catalog),
            "items_with_signals": len(item_stats_everywhere),
            "counters": dict(counters),
        })


@app.page("/")
class IndexView(View):
    async def get(self, request: Request) -> Response:
        return self.html((STATIC / "index.html").read_text(encoding="utf-8"))
