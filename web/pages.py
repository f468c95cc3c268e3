"""Pages and the catalog API the storefront demo reads."""

from __future__ import annotations

import mimetypes
from importlib import resources

from faust.web import Request, Response

from persona.agents.app import app
from persona.catalog import Product
from persona.tables.state import catalog
from persona.trending import in_category
from persona.web.base import MAX_N, ApiView, CatalogView, int_param, text_param

__all__ = ["product_view"]

STATIC = resources.files("persona.web") / "static"
PAGES = {"/": "index.html", "/storefront": "storefront.html", "/dashboard": "dashboard.html"}


def product_view(p: Product) -> dict:
    return {"item_id": p.item_id, "name": p.name, "brand": p.brand, "category": p.category, "family": p.family,
            "gender": p.gender, "price": p.price, "rating": p.rating, "reviews": p.reviews, "image": p.image,
            "notes": list(p.notes)}


def _page(path: str, name: str) -> None:
    class Page(ApiView):
        async def get(self, request: Request) -> Response:
            page = STATIC / name
            return self.html(page.read_text(encoding="utf-8")) if page.is_file() else self.error(404, "no such page")

    Page.__name__ = f"Page_{name.split('.')[0]}"
    app.page(path)(Page)


for _path, _name in PAGES.items():
    _page(_path, _name)


@app.page("/static/{name}")
class StaticView(ApiView):
    async def get(self, request: Request, name: str) -> Response:
        entry = STATIC / name
        if "/" in name or name.startswith(".") or not entry.is_file():
            return self.error(404, f"no file {name!r}")
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return self.bytes(entry.read_bytes(), content_type=content_type, headers={"Cache-Control": "no-cache"})


@app.page("/catalog")
class CatalogListView(CatalogView):
    """Products, optionally matching a text (brand, name, notes) and a category, a page at a time."""

    async def get(self, request: Request) -> Response:
        q = (text_param(request, "q") or "").casefold()
        category = text_param(request, "category")
        offset = int_param(request, "offset", 0, 0, 1_000_000)
        limit = int_param(request, "limit", 24, 1, MAX_N)
        found = [p for p in catalog.data.values()
                 if (not category or in_category(p, category))
                 and (not q or q in p.title.casefold() or any(q in n for n in p.notes))]
        found.sort(key=lambda p: (-p.reviews, p.item_id))
        return self.json({"total": len(found), "items": [product_view(p) for p in found[offset:offset + limit]]})


@app.page("/items/{item_id}")
class ItemView(CatalogView):
    async def get(self, request: Request, item_id: str) -> Response:
        p = catalog.data.get(item_id)
        if p is None:
            return self.error(404, f"no item {item_id!r} in the catalog")
        return self.json(product_view(p))
