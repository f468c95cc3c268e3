"""Content similarity between perfumes: shared notes, fragrance family, brand, gender, price band.

Notes are weighted by rarity (idf), so sharing "oud" says more than sharing "bergamot"; a note
in the same pyramid level (top/heart/base) counts a little more. :meth:`ContentIndex.precompute`
ranks the neighbours of the whole catalog at once with numpy (a second or two for ~2,000 items,
meant for a thread); until it has run, or for longer lists, neighbours are computed on demand
through an inverted index of notes and cached. Both give the same lists.

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
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

import numpy as np

from persona.catalog import Product

__all__ = ["ContentIndex", "Neighbour", "PRECOMPUTED"]

PRECOMPUTED = 50  # neighbours per item ranked by precompute(): what the content generator asks for

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
        # item -> ranked (neighbour, score) with the family fill, and without it when that can differ
        self._table: dict[str, tuple[list[tuple[str, float]], list[tuple[str, float]] | None]] | None = None
        self._table_k = 0
        self._precomputing = threading.Lock()
        self.neighbours = lru_cache(maxsize=4096)(self._neighbours)
        self.ids = list(self.products)  # catalog positions, for the vectors of neighbour_arrays
        self.positions = {item_id: n for n, item_id in enumerate(self.ids)}
        self.neighbour_arrays = lru_cache(maxsize=4096)(self._neighbour_arrays)

    def __len__(self) -> int:
        return len(self.products)

    @property
    def precomputed(self) -> bool:
        """True once :meth:`precompute` has ranked every item's neighbours."""
        return self._table is not None

    def _note_weights(self, p: Product) -> dict[str, float]:
        return {note: self._idf.get(note, 0.0) for note in p.notes}

    def _neighbours(self, item_id: str, k: int = 50) -> list[Neighbour]:
        me = self.products.get(item_id)
        if me is None:
            return []
        table = self._table
        if table is not None and k <= self._table_k:
            with_family, notes_only = table[item_id]
            # The family fills in only when fewer than k items share a note: for a smaller k than
            # the table's, that can be the list without the fill.
            ranked = (notes_only if notes_only is not None and k <= len(notes_only) else with_family)[:k]
            mine = self._note_weights(me)
            return [self._neighbour(me, mine, other_id, score) for other_id, score in ranked]
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
        return self._ranked(me, mine, norm, ((o, shared.get(o, [])) for o in candidates), k)

    def _neighbour_arrays(self, item_id: str, k: int = PRECOMPUTED) -> tuple[np.ndarray, np.ndarray, dict[int, Neighbour]]:
        """``neighbours(item_id, k)`` as catalog positions, their scores, and position -> Neighbour.

        >>> idx = ContentIndex([Product(item_id="a", brand="X", name="A", notes="rose"),
        ...                     Product(item_id="b", brand="Y", name="B", notes="rose")])
        >>> positions, scores, by_position = idx.neighbour_arrays("a")
        >>> positions.tolist(), [idx.ids[p] for p in positions], by_position[1].item_id
        ([1], ['b'], 'b')
        """
        found = self.neighbours(item_id, k)
        positions = [self.positions[nb.item_id] for nb in found]
        return (np.array(positions, dtype=np.intp), np.array([nb.score for nb in found], dtype=float),
                dict(zip(positions, found)))

    def _ranked(self, me: Product, mine: dict[str, float], norm: float,
                candidates: Iterable[tuple[str, list[str]]], k: int) -> list[Neighbour]:
        """The reference scoring: the best ``k`` of ``(other id, shared notes in my order)``."""
        out = []
        for other_id, notes in candidates:
            other = self.products[other_id]
            theirs = self._note_weights(other)
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

    def _neighbour(self, me: Product, mine: dict[str, float], other_id: str, score: float) -> Neighbour:
        other = self.products[other_id]
        notes = tuple(sorted((n for n in mine if n in other.notes), key=lambda n: -mine[n]))
        return Neighbour(other_id, score, notes, me.family == other.family and me.family != "", me.brand == other.brand)

    def precompute(self, k: int = PRECOMPUTED, block: int = 128) -> None:
        """Rank the ``k`` nearest neighbours of every item, vectorised; later ``neighbours(i, <= k)``
        are lookups. Meant for a thread: the work is numpy's (which releases the GIL) but for a
        sort of each item's shortlist, and the table replaces the lazy path in one assignment.

        The same scores as the on-demand path (a note-weight matrix product for the shared notes,
        then the same family, brand, price band and gender terms in the same order), so the same
        lists, ties included (by item id, on scores rounded to 6 decimals).
        """
        with self._precomputing:
            if self._table is not None and self._table_k >= k:
                return
            ids = list(self.products)
            table: dict[str, tuple[list[tuple[str, float]], list[tuple[str, float]] | None]] = {}
            vocab = {note: j for j, note in enumerate(self._idf)}
            weights = np.zeros((len(ids), max(len(vocab), 1)))
            for row, item_id in enumerate(ids):
                for note, w in self._note_weights(self.products[item_id]).items():
                    weights[row, vocab[note]] = w
            norms = np.sqrt((weights * weights).sum(axis=1))
            norms[norms == 0] = 1.0
            products = [self.products[i] for i in ids]
            family = _codes([p.family for p in products])
            has_family = np.array([p.family != "" for p in products], dtype=bool)
            brand = _codes([p.brand for p in products])
            band = np.array([price_band(p.price) for p in products])
            men, women = (np.array([p.gender == g for p in products], dtype=bool) for g in ("Men", "Women"))
            for lo in range(0, len(ids), block):
                rows = slice(lo, min(lo + block, len(ids)))
                dots = weights[rows] @ weights.T
                shares = dots > 0  # idf weights are positive: a dot product is 0 only without shared notes
                same_family = (family[rows, None] == family[None, :]) & has_family[rows, None]
                score = dots / (norms[rows, None] * norms[None, :])
                score = score + 0.5 * FAMILY_WEIGHT * same_family
                score = score + BRAND_WEIGHT * (brand[rows, None] == brand[None, :])
                score = score + PRICE_BAND_WEIGHT * (band[rows, None] == band[None, :])
                mismatch = (men[rows, None] & women[None, :]) | (women[rows, None] & men[None, :])
                score = np.where(mismatch, score * GENDER_MISMATCH, score)
                for r in range(score.shape[0]):
                    me_row = lo + r
                    shares[r, me_row] = same_family[r, me_row] = False
                    count = int(shares[r].sum())
                    filled = shares[r] | same_family[r] if count < k else shares[r]
                    notes_only = None
                    if count < k and has_family[me_row]:
                        notes_only = _top(ids, score[r], shares[r], k)
                    table[ids[me_row]] = (_top(ids, score[r], filled, k), notes_only)
                time.sleep(0)  # let the event loop's thread have the GIL between blocks
            self._table, self._table_k = table, k
            self.neighbours.cache_clear()
            self.neighbour_arrays.cache_clear()


def _top(ids: list[str], scores: np.ndarray, mask: np.ndarray, k: int) -> list[tuple[str, float]]:
    """The best ``k`` of the masked items: (id, score rounded to 6 decimals), ties by id."""
    candidates = np.flatnonzero(mask)
    if len(candidates) > k:
        kth = np.partition(scores[candidates], len(candidates) - k)[len(candidates) - k]
        candidates = candidates[scores[candidates] >= kth - 1e-5]  # rounding can tie items just below
    ranked = sorted(((ids[c], round(s, 6)) for c, s in zip(candidates.tolist(), scores[candidates].tolist())),
                    key=lambda t: (-t[1], t[0]))
    return ranked[:k]


def _codes(values: list[str]) -> np.ndarray:
    """Equal strings -> equal integers."""
    seen: dict[str, int] = {}
    return np.array([seen.setdefault(v, len(seen)) for v in values])
