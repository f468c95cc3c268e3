"""Content similarity between perfumes: shared notes, fragrance family, brand, gender, price band.

Notes are weighted by rarity (idf), so sharing "oud" says more than sharing "bergamot"; a note
in the same pyramid level (top/heart/base) counts a little more. Neighbours are computed on
demand through an inverted index of notes and cached.

>>> from persona.catalog import Product
>>> idx = ContentIndex([
...     Product(item_id="a", brand="X", name="A", family="woody", gender="Men", notes="cedar, vetiver, lemon"),
...     Product(item_id="b", brand="Y", name="B", family="woody", gender="Men", notes="cedar, vetiver"),
...     Product(item_id="c", brand="Z", name="C", family="floral", gender="Women", notes="rose, lemon"),
... ])
>>> [(n.item_id, n.shared_notes) for n in idx.neighbours("a", k=2)]
[('b', ('cedar', 'vetiver')), ('c', ('lemon',))]
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

from persona.catalog import Product

__all__ = ["ContentIndex", "Neighbour"]

FAMILY_WEIGHT = 1.0
BRAND_WEIGHT = 0.3
PRICE_BAND_WEIGHT = 0.2
GENDER_MISMATCH = 0.5  # Men <-> Women similarity is halved; Unisex goes with both


@dataclass(frozen=True, slots=True)
class Neighbour:
    item_id: str
    score: float
    shared_notes: tuple[str, ...]
    same_family: bool
    same_brand: bool


def price_band(price: float) -> int:
    """Log-spaced price bands: items within about a factor of two share a band.

    >>> price_band(700), price_band(1300), price_band(90)
    (9, 10, 6)
    """
    return int(math.log2(price)) if price > 0 else -1


class ContentIndex:
    """Item-to-item content similarity over a catalog (rebuilt when the catalog changes)."""

    def __init__(self, products: Iterable[Product]):
        self.products = {p.item_id: p for p in products}
        by_note: dict[str, list[str]] = defaultdict(list)
        for p in self.products.values():
            for note in set(p.notes):
                by_note[note].append(p.item_id)
        n = max(len(self.products), 1)
        self._idf = {note: math.log(1 + n / len(ids)) for note, ids in by_note.items()}
        self._by_note = dict(by_note)
        self.neighbours = lru_cache(maxsize=4096)(self._neighbours)

    def __len__(self) -> int:
        return len(self.products)

    def _note_weights(self, p: Product) -> dict[str, float]:
        return {note: self._idf.get(note, 0.0) for note in p.notes}

    def _neighbours(self, item_id: str, k: int = 50) -> list[Neighbour]:
        me = self.products.get(item_id)
        if me is None:
            return []
        mine = self._note_weights(me)
        norm = math.sqrt(sum(w * w for w in mine.values())) or 1.0
        shared: dict[str, list[str]] = defaultdict(list)
        for note in mine:
            for other in self._by_note.get(note, ()):
                if other != item_id:
                    shared[other].append(note)
        candidates = set(shared)
        if len(candidates) < k and me.family:  # too few shared notes: let the family fill in
            candidates.update(o for o, p in self.products.items() if p.family == me.family and o != item_id)
        out = []
        for other_id in candidates:
            other = self.products[other_id]
            theirs = self._note_weights(other)
            notes = shared.get(other_id, [])
            norm_other = math.sqrt(sum(w * w for w in theirs.values())) or 1.0
            score = sum(mine[n] * theirs[n] for n in notes) / (norm * norm_other)
            score += FAMILY_WEIGHT * (me.family == other.family and me.family != "") / 2
            score += BRAND_WEIGHT * (me.brand == other.brand)
            score += PRICE_BAND_WEIGHT * (price_band(me.price) == price_band(other.price))
            if {me.gender, other.gender} == {"Men", "Women"}:
                score *= GENDER_MISMATCH
            ranked_notes = tuple(sorted(notes, key=lambda n: -mine[n]))
            same_family = me.family == other.family and me.family != ""
            out.append(Neighbour(other_id, round(score, 6), ranked_notes, same_family, me.brand == other.brand))
        out.sort(key=lambda n: (-n.score, n.item_id))
        return out[:k]
