"""The state persona keeps, and every worker's read-only copies of what all workers need.

Partitioned tables (RocksDB, changelogged), written by the agent that owns the key through a
write-behind cache (:class:`.cache.WriteBehind`; reads through it see the latest writes):

- ``profiles``: user id -> :class:`persona.profile.Profile` as a dict (partitioned like events).
- ``item_stats``: item id -> ``{"counts": {event: n}, "windows": {bucket: weight}}``.
- ``neighbours``: item id -> ``{neighbour id: co-visitation weight}``.

Copies on every worker (:class:`.replica.Replica`): the catalog, the two item tables' changelogs,
model snapshots, the active rule set and product relations. :class:`Shop` turns them into the
blender's :class:`persona.blend.Sources`, rebuilding what is derived only when a copy changed.
"""

from __future__ import annotations

import gc
import itertools
import threading
import time
from typing import Sequence

import orjson

from persona.agents.app import app, settings
from persona.blend import Sources
from persona.catalog import Product
from persona.companions import Companions
from persona.covisit import score_session
from persona.models import loads as load_model
from persona.models import session_features
from persona.popularity import BestSellers
from persona.profile import Profile
from persona.rules import RuleSet, load_default_rules, parse_rules
from persona.similarity import ContentIndex
from persona.tables.cache import WriteBehind
from persona.tables.replica import Replica
from persona.trending import in_category, trending

__all__ = ["CACHED_TABLES", "profiles", "item_stats", "neighbours", "strategy_stats", "catalog",
           "item_stats_everywhere", "neighbours_everywhere", "strategy_stats_everywhere",
           "models", "rules", "relations", "shop", "variant_stats", "ACTIVE_RULES"]

ACTIVE_RULES = "active"  # the key of the rule set in the rules topic


# Per partition store. Faust's defaults (3 memtables of 64 MiB and a 2 GiB block cache for each of
# the 4 tables x 8 partitions) let a worker that restores 1M profiles reach ~0.8 GiB of memtables.
STORE_OPTIONS = {"write_buffer_size": 16 * 2**20, "max_write_buffer_number": 2, "block_cache_size": 64 * 2**20}


def _table(name: str, help: str):
    return app.Table(name, key_type=str, default=None, partitions=settings.partitions, help=help,
                     options=dict(STORE_OPTIONS))  # a copy: Faust's store pops keys from it


def _cached(table, flush_every: float = settings.item_flush_every, **codecs) -> WriteBehind:
    return WriteBehind(table, max_keys=settings.flush_max_keys, flush_every=flush_every, **codecs)


profiles = _cached(_table("profiles", "user id -> profile"), flush_every=settings.flush_every,
                   encode=Profile.to_dict, decode=Profile.from_dict, dump=Profile.to_json)
item_stats = _cached(_table("item_stats", "item id -> counts and trending windows"))
strategy_stats = _cached(_table("strategy_stats", "source|slot -> impressions, clicks, carts, purchases, revenue"))
neighbours = _cached(_table("neighbours", "item id -> co-visited items with decayed weights"))
CACHED_TABLES = (profiles, item_stats, strategy_stats, neighbours)


def _changelog(table) -> str:
    return table.changelog_topic.get_topic_name()


catalog = Replica(settings.catalog_topic, bytes.decode, Product.model_validate_json)
item_stats_everywhere = Replica(_changelog(item_stats), orjson.loads, orjson.loads)
neighbours_everywhere = Replica(_changelog(neighbours), orjson.loads, orjson.loads)
strategy_stats_everywhere = Replica(_changelog(strategy_stats), orjson.loads, orjson.loads)
models = Replica(settings.models_topic, bytes.decode, load_model)
rules = Replica(settings.rules_topic, bytes.decode, parse_rules)
relations = Replica(settings.relations_topic, bytes.decode, lambda v: [tuple(r) for r in orjson.loads(v)])
REPLICAS = (catalog, item_stats_everywhere, neighbours_everywhere, strategy_stats_everywhere, models, rules,
            relations)


def covisited(session: Sequence[str], k: int) -> list[tuple[str, float, str]]:
    """Co-visited items of a session, the latest view weighing most: (item, score, because)."""
    return score_session(session, neighbours_everywhere.get, k)


def variant_stats() -> dict[str, tuple[float, float]]:
    """(clicks, items shown) per blend variant, all slots together."""
    out: dict[str, tuple[float, float]] = {}
    for key, stats in strategy_stats_everywhere.data.items():
        source, _, _ = key.partition("|")
        if source.startswith("variant:"):
            name, totals = source.removeprefix("variant:"), stats.get("totals", {})
            clicks, shown = out.get(name, (0.0, 0.0))
            out[name] = (clicks + totals.get("clicks", 0.0), shown + totals.get("impressions", 0.0))
    return out


class Shop:
    """What serving derives from the replicas, rebuilt only when they change.

    Content neighbours of the whole catalog are ranked in a thread when the catalog changes
    (:meth:`ContentIndex.precompute`); until then the index answers on demand. Rankings over the
    whole catalog (best-sellers, trending) are recomputed at most once per ``REFRESH_EVERY``.
    """

    REFRESH_EVERY = 1.0  # seconds between recomputations of rankings over the whole catalog

    def __init__(self) -> None:
        self._built: dict[object, tuple[object, object]] = {}
        self._precomputing: threading.Thread | None = None

    def _cached(self, name: object, key: object, build):
        if name not in self._built or self._built[name][0] != key:
            self._built[name] = (key, build())
        return self._built[name][1]

    @property
    def index(self) -> ContentIndex:
        index = self._cached("index", catalog.version, lambda: ContentIndex(catalog.data.values()))
        if not index.precomputed and not (self._precomputing and self._precomputing.is_alive()):
            # One at a time: a catalog arriving in several batches is ranked again once its thread ends.
            self._precomputing = threading.Thread(target=index.precompute, name="content-neighbours", daemon=True)
            self._precomputing.start()
        return index

    @property
    def companions(self) -> Companions:
        return self._cached("companions", (catalog.version, relations.version),
                            lambda: Companions(catalog.data.values(), relations.data))

    @property
    def rules(self) -> RuleSet:
        return rules.get(ACTIVE_RULES) or load_default_rules()

    def _tick(self) -> tuple[int, int]:
        return catalog.version, int(time.monotonic() / self.REFRESH_EVERY)

    def version(self, tick: bool = True) -> tuple:
        """Changes whenever what :meth:`sources` serves may have: a copy changed, or a tick passed
        (item statistics and co-visitation count within the tick, like trending and best-sellers).
        Without ``tick``, only what an answer must show at once: the catalog, relations and rules.
        Models are left out there: the trainer publishes them every few seconds, and a kept answer
        (at most ``answer_ttl`` old) ranked by the previous model is as good as any other."""
        if not tick:
            return catalog.version, relations.version, rules.version, self.index.precomputed
        return (*self._tick(), relations.version, rules.version, models.version, self.index.precomputed)

    def best_sellers(self) -> list[tuple[str, float]]:
        ranker = self._cached("best_ranker", catalog.version, lambda: BestSellers(catalog.data.values()))
        return self._cached("best", self._tick(), lambda: ranker.top(
            list(item_stats_everywhere.data), lambda i: (item_stats_everywhere.get(i) or {}).get("counts"), n=300))

    def _trending_all(self) -> list[tuple[Product, float]]:
        """Every item with a trending score, best first: computed once per tick for all categories."""
        def build() -> list[tuple[Product, float]]:
            windows = lambda i: (item_stats_everywhere.get(i) or {}).get("windows")  # noqa: E731
            products = catalog.data
            stats = [products[i] for i in list(item_stats_everywhere.data) if i in products]  # the rest scores 0
            ranked = trending(stats, windows, time.time(), len(stats))
            return [(products[i], s) for i, s in ranked]
        return self._cached("trending", self._tick(), build)

    def trending(self, category: str | None = None, n: int = 20) -> list[tuple[str, float]]:
        """Trending items, optionally in a category (a family, concentration or gender)."""
        def build() -> list[tuple[str, float]]:
            ranked = self._trending_all()
            if category:
                ranked = (kv for kv in ranked if in_category(kv[0], category))
            return [(p.item_id, s) for p, s in itertools.islice(ranked, n)]
        return self._cached(("trending", category, n), self._tick(), build)

    def variant_stats(self) -> dict[str, tuple[float, float]]:
        """:func:`variant_stats`, recomputed at most once per tick."""
        return self._cached("variant_stats", (strategy_stats_everywhere.version, self._tick()), variant_stats)

    def sources(self) -> Sources:
        return self._cached("sources", self.version(), self._sources)

    def _sources(self) -> Sources:
        intent, reranker, cf = (models.get(name) for name in ("intent", "reranker", "cf"))
        products = catalog.data
        converts = intent.compiled() if intent else None  # a snapshot serves, it does not learn
        return Sources(
            catalog=products, index=self.index, companions=self.companions, best=self.best_sellers(),
            rules=self.rules,
            trending=self.trending,
            covisit=covisited,
            collaborative=(lambda user, k: cf.top(user, k)) if cf else None,
            intent=(lambda p, now: converts(session_features(p, now, products))) if intent else None,
            click_probability=reranker.scorer(products) if reranker else None,
        )


shop = Shop()


@app.timer(1.0)
async def prepare_serving() -> None:
    """Rank content neighbours as soon as the catalog copy has caught up, not at the first request."""
    global _frozen
    if catalog.ready.is_set():
        shop.index  # noqa: B018 (starts the ranking thread when the catalog changed)
        if shop.index.precomputed and not _frozen:
            # What start-up built (modules, catalog, neighbour lists) lives as long as the process: out
            # of the collector's sight, a full collection no longer walks it (100-250 ms pauses before).
            gc.freeze()
            _frozen = True


_frozen = False


def _follow(replica: Replica):
    async def follow() -> None:
        await replica.run(settings.client_options())
    follow.__name__ = f"follow_{replica.topic}"
    return follow


for _replica in REPLICAS:
    app.task(_follow(_replica))
