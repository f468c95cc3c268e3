"""The state persona keeps: per-user profiles, per-item signals, and every worker's catalog copy.

- ``profiles``: user id -> :class:`persona.profile.Profile` as a dict, RocksDB-backed and
  changelogged, partitioned like ``persona.events`` (by user).
- ``item_stats``: item id -> counts per event name, written by the partition that owns the item.
- ``catalog`` and ``item_stats_everywhere``: full copies on every worker (see :mod:`.replica`).
"""

from __future__ import annotations

import time

import orjson

from persona.agents.app import app, settings
from persona.catalog import Product
from persona.popularity import best_sellers
from persona.similarity import ContentIndex
from persona.tables.replica import Replica

__all__ = ["profiles", "item_stats", "catalog", "item_stats_everywhere", "shop"]

profiles = app.Table(
    "profiles", key_type=str,
    default=None, partitions=settings.partitions, help="user id -> profile",
)
item_stats = app.Table(
    "item_stats", key_type=str,
    default=None, partitions=settings.partitions, help="item id -> counts per event name",
)


def _product(raw: bytes) -> Product:
    return Product.model_validate_json(raw)


catalog = Replica(settings.catalog_topic, bytes.decode, _product)
item_stats_everywhere = Replica(item_stats.changelog_topic.get_topic_name(), orjson.loads, orjson.loads)


class Shop:
    """Derived views of the replicas that serving needs, rebuilt only when a replica changed."""

    BEST_SELLERS_EVERY = 1.0  # seconds between best-seller recomputations at most

    def __init__(self) -> None:
        self._index: ContentIndex | None = None
        self._index_version = -1
        self._best: list[tuple[str, float]] = []
        self._best_key = (-1, -1)
        self._best_at = 0.0

    @property
    def index(self) -> ContentIndex:
        if self._index is None or self._index_version != catalog.version:
            self._index = ContentIndex(catalog.data.values())
            self._index_version = catalog.version
        return self._index

    def best_sellers(self, n: int = 100) -> list[tuple[str, float]]:
        key = (catalog.version, item_stats_everywhere.version)
        now = time.monotonic()
        if key != self._best_key and (now - self._best_at >= self.BEST_SELLERS_EVERY or not self._best):
            self._best = best_sellers(catalog.data.values(), item_stats_everywhere.data, n=n)
            self._best_key, self._best_at = key, now
        return self._best


shop = Shop()


@app.task
async def follow_catalog() -> None:
    await catalog.run(settings.bootstrap)


@app.task
async def follow_item_stats() -> None:
    await item_stats_everywhere.run(settings.bootstrap)
