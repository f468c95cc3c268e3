"""The product catalog: perfumes read from CSV, keyed by a stable item id.

The CSV has the columns of ``catalog/perfume_final.csv`` in the shared data folder
(``perfume_id, brand, name, category, gender, base_price, notes, top_note, heart_note,
base_note, fragrance, customer_rating, review_count, url, image``). The item id is the
shop's article id (``perfume_id``), so ids stay the same however often the file is loaded.

>>> import io
>>> csv_text = ('perfume_id,brand,name,category,gender,base_price,notes,top_note,heart_note,'
...             'base_note,fragrance,customer_rating,review_count,url,image\\n'
...             '12855,Hugo Boss,BOSS Bottled,Eau de Toilette,Men,739.0,"apple, cedar",apple,,cedar,'
...             'fruity,4.9,144,/x.aspx,https://img/x.jpg\\n')
>>> [p] = read_catalog(io.StringIO(csv_text))
>>> p.item_id, p.brand, p.notes, p.family, p.rating
('12855', 'Hugo Boss', ('apple', 'cedar'), 'fruity', 4.9)
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import IO, Iterable, Iterator

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["Product", "read_catalog", "data_dir", "default_catalog_path"]


def _split_notes(value: object) -> object:
    if isinstance(value, str):
        return tuple(n.strip().lower() for n in value.split(",") if n.strip())
    return value


class Product(BaseModel):
    """A catalog item as every worker holds it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    item_id: str = Field(min_length=1)
    brand: str
    name: str
    category: str = ""  # concentration: Eau de Parfum, Eau de Toilette, Parfum, ...
    gender: str = ""
    price: float = 0.0  # EUR per litre in the shared catalog
    notes: tuple[str, ...] = ()
    top_notes: tuple[str, ...] = ()
    heart_notes: tuple[str, ...] = ()
    base_notes: tuple[str, ...] = ()
    family: str = ""  # fragrance family: woody, floral, ...
    rating: float = 0.0
    reviews: int = 0
    url: str = ""
    image: str = ""

    _split = field_validator("notes", "top_notes", "heart_notes", "base_notes", mode="before")(
        _split_notes
    )

    @property
    def title(self) -> str:
        """A shop-style label, e.g. ``Hugo Boss BOSS Bottled Eau de Toilette``."""
        return f"{self.brand} {self.name} {self.category}".strip()


_COLUMNS = {
    "perfume_id": "item_id",
    "base_price": "price",
    "top_note": "top_notes",
    "heart_note": "heart_notes",
    "base_note": "base_notes",
    "fragrance": "family",
    "customer_rating": "rating",
    "review_count": "reviews",
}


def _rows(f: IO[str]) -> Iterator[Product]:
    for line_no, row in enumerate(csv.DictReader(f), start=2):
        fields = {_COLUMNS.get(k, k): (v or "").strip() for k, v in row.items() if k}
        for numeric in ("price", "rating", "reviews"):
            if fields.get(numeric) == "":
                fields.pop(numeric)
        try:
            yield Product.model_validate(fields)
        except ValueError as err:
            raise ValueError(f"catalog line {line_no}: {err}") from None


def read_catalog(source: str | Path | IO[str]) -> list[Product]:
    """Read a catalog CSV (a path or an open text file) into products."""
    if isinstance(source, (str, Path)):
        with open(source, newline="", encoding="utf-8") as f:
            return list(_rows(f))
    return list(_rows(source))


def data_dir() -> Path:
    """The shared data folder: ``$PERSONA_DATA``, else ``../shared/data`` beside the repository."""
    if env := os.environ.get("PERSONA_DATA"):
        return Path(env)
    repo = Path(__file__).resolve().parent.parent
    for candidate in (repo.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return repo.parent / "shared" / "data"


def default_catalog_path() -> Path:
    return data_dir() / "catalog" / "perfume_final.csv"


def by_id(products: Iterable[Product]) -> dict[str, Product]:
    return {p.item_id: p for p in products}
