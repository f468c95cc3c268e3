"""Companions of a product: what goes with it, for "goes well with" and the accessories rule.

The shared catalog holds only fragrances, so companions are defined generically, best first:

1. explicit relations (``item_id, related_item_id, kind``: ``accessory``, ``refill``, ``layering``...),
   which a shop with real accessories loads from a CSV file or the relations topic;
2. the same scent line in another concentration (``concentration``): same brand and line name;
3. layering partners (``layering``): same brand, sharing a base note, or a complementary family.

>>> from persona.catalog import Product
>>> c = Companions([
...     Product(item_id="edt", brand="DIOR", name="Sauvage", category="Eau de Toilette",
...             family="fresh", base_notes="ambroxan, cedar"),
...     Product(item_id="edp", brand="DIOR", name="Sauvage", category="Eau de Parfum",
...             family="fresh", base_notes="ambroxan, vanilla"),
...     Product(item_id="oud", brand="DIOR", name="Oud Ispahan", category="Parfum",
...             family="oriental", base_notes="oud, cedar"),
...     Product(item_id="far", brand="Chanel", name="Bleu", family="woody", base_notes="cedar")],
...     relations={"edt": [("case", "accessory")]})
>>> c("edt")
[('case', 'accessory'), ('edp', 'concentration'), ('oud', 'layering')]
"""

from __future__ import annotations

import csv
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping

from persona.catalog import Product

__all__ = ["Companions", "read_relations", "KINDS"]

KINDS = ("accessory", "refill", "layering", "concentration")
MAX_LAYERING = 5
# Families that layer well: a fresh or citrus top over a warm base, florals over orientals.
COMPLEMENTARY = {
    frozenset(pair)
    for pair in [("citrusy", "woody"), ("fresh", "woody"), ("floral", "oriental"), ("fruity", "oriental"),
                 ("aromatic", "woody"), ("floral", "woody"), ("spicy", "citrusy"), ("fresh", "oriental")]
}


def read_relations(path: str | Path) -> dict[str, list[tuple[str, str]]]:
    """Read ``item_id,related_item_id,kind`` rows (with that header) into a relations map."""
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    with open(path, newline="", encoding="utf-8") as f:
        for line_no, row in enumerate(csv.DictReader(f), start=2):
            item, related, kind = (row.get(k, "").strip() for k in ("item_id", "related_item_id", "kind"))
            if not (item and related and kind):
                raise ValueError(f"{path}:{line_no}: item_id, related_item_id and kind are all required")
            out[item].append((related, kind))
    return dict(out)


def _line(p: Product) -> tuple[str, str]:
    return p.brand.casefold(), p.name.casefold()


class Companions:
    """``companions(item_id)`` -> ``[(related_item_id, kind)]``, best first."""

    def __init__(self, products: Iterable[Product], relations: Mapping[str, list[tuple[str, str]]] | None = None):
        self.products = {p.item_id: p for p in products}
        self.relations = dict(relations or {})
        self._by_line: dict[tuple[str, str], list[str]] = defaultdict(list)
        self._by_brand: dict[str, list[str]] = defaultdict(list)
        for p in self.products.values():
            self._by_line[_line(p)].append(p.item_id)
            self._by_brand[p.brand.casefold()].append(p.item_id)
        self._cached = lru_cache(maxsize=8192)(self._companions)

    def __call__(self, item_id: str) -> list[tuple[str, str]]:
        return self._cached(item_id)

    def _companions(self, item_id: str) -> list[tuple[str, str]]:
        out = list(self.relations.get(item_id, ()))
        me = self.products.get(item_id)
        if me is None:
            return out
        seen = {item_id} | {i for i, _ in out}
        for other in self._by_line[_line(me)]:
            if other not in seen and self.products[other].category != me.category:
                out.append((other, "concentration"))
                seen.add(other)
        partners = []
        for other_id in self._by_brand[me.brand.casefold()]:
            other = self.products[other_id]
            if other_id in seen or {me.gender, other.gender} == {"Men", "Women"}:
                continue
            shared_base = len(set(me.base_notes) & set(other.base_notes))
            complementary = frozenset((me.family, other.family)) in COMPLEMENTARY
            if shared_base or complementary:
                partners.append((-(shared_base + complementary), -other.rating, other_id))
        titles = {self.products[i].title for i, _ in out if i in self.products} | {me.title}
        layering = []
        for *_, other_id in sorted(partners):
            title = self.products[other_id].title
            if title not in titles:  # the catalog lists some products twice, under two ids
                titles.add(title)
                layering.append((other_id, "layering"))
        return out + layering[:MAX_LAYERING]
