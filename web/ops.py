"""What operators and the dashboard read: health, Prometheus metrics, live figures."""

from __future__ import annotations

import asyncio
import time

from faust.web import Request, Response

from persona import feedback
from persona.agents.app import app, settings
from persona.bandit import allocation
from persona.agents.ingest import counters
from persona.tables.state import REPLICAS, catalog, models, profiles, shop, strategy_stats_everywhere, variant_stats
from persona.web.base import ApiView
from persona.web.metrics import render

__all__ = ["HealthView", "LiveView", "ReadyView", "MetricsView", "LocalStatsView", "StatsView"]

INTENT_BINS = 10


def _readiness() -> dict:
    waiting = [r.topic for r in REPLICAS if not r.ready.is_set()]
    recovering = bool(getattr(app, "in_recovery", False)) or bool(app.rebalancing)
    return {"ready": not waiting and not recovering, "waiting_for": waiting, "rebalancing": recovering}


@app.page("/health")
class HealthView(ApiView):
    async def get(self, request: Request) -> Response:
        ready = catalog.ready.is_set() and not app.rebalancing
        return self.json({"status": "ok" if ready else "starting", "worker": str(app.conf.canonical_url),
                          "catalog_items": len(catalog), "counters": dict(counters)})


@app.page("/health/live")
class LiveView(ApiView):
    async def get(self, request: Request) -> Response:
        return self.json({"live": True})


@app.page("/health/ready")
class ReadyView(ApiView):
    """Ready once the tables are recovered, no rebalance runs and every replica caught up."""

    async def get(self, request: Request) -> Response:
        state = _readiness()
        return self.json(state, status=200 if state["ready"] else 503)


@app.page("/metrics")
class MetricsView(ApiView):
    async def get(self, request: Request) -> Response:
        return self.bytes(render(), content_type="text/plain; version=0.0.4")


def local_stats() -> dict:
    intents = [counters.get(f"intent_{i}", 0) for i in range(INTENT_BINS)]
    return {"worker": str(app.conf.canonical_url), "counters": {k: v for k, v in counters.items()
                                                               if not k.startswith("intent_")},
            "intent": intents}


@app.page("/stats/local")
class LocalStatsView(ApiView):
    async def get(self, request: Request) -> Response:
        return self.json(local_stats())


async def _fetch_local(url: str) -> dict | None:
    try:
        async with app.http_client.get(f"{url.rstrip('/')}/stats/local", timeout=2) as resp:
            return await resp.json() if resp.status == 200 else None
    except Exception:  # a worker that just left: its counts are missing from this answer
        return None


@app.page("/stats")
class StatsView(ApiView):
    """Figures of all workers: event counts summed, engagement, trends, models."""

    async def get(self, request: Request) -> Response:
        here = str(app.conf.canonical_url)
        others = [u for u in app.router.table_metadata(profiles.name) if u.rstrip("/") != here.rstrip("/")]
        parts = [local_stats()] + [p for p in await asyncio.gather(*map(_fetch_local, others)) if p]
        summed: dict[str, int] = {}
        intent = [0] * INTENT_BINS
        for part in parts:
            for name, n in part["counters"].items():
                summed[name] = summed.get(name, 0) + n
            intent = [a + b for a, b in zip(intent, part["intent"])]
        stats = sorted(strategy_stats_everywhere.data.items())
        products = catalog.data
        return self.json({
            "time": time.time(),
            "workers": [p["worker"] for p in parts],
            "counters": summed,
            "strategies": [feedback.summary(k, v) for k, v in stats],
            "recent": feedback.series(stats),
            "intent": {"histogram": intent},
            "allocation": {"mode": settings.allocation, "explore": settings.explore,
                           "variants": allocation(variant_stats(), explore=settings.explore)},
            "trending": [{"item_id": i, "name": products[i].name, "brand": products[i].brand, "score": s}
                         for i, s in shop.trending(None, 10) if i in products],
            "models": {name: {"version": m.version, **(m.metrics() if hasattr(m, "metrics") else {})}
                       for name, m in models.data.items()},
        })
