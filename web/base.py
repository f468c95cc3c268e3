"""What every view shares: parameter parsing with 400s that say what is wrong, and timing."""

from __future__ import annotations

import hmac
import re
import time

from faust.web import Request, Response, View

from persona.agents.app import settings
from persona.agents.metrics import REQUEST_SECONDS
from persona.tables.state import catalog

__all__ = ["BadRequest", "ApiView", "CatalogView", "admin_error", "int_param", "text_param", "MAX_N"]

MAX_N = 100
MAX_TEXT = 64
WHOLE_NUMBER = re.compile(r"-?[0-9]+")


class BadRequest(Exception):
    pass


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not WHOLE_NUMBER.fullmatch(raw):  # int() would also take " 7", "1_0" and other scripts' digits
        raise BadRequest(f"{name} must be a whole number, got {raw[:20]!r}")
    if len(raw.lstrip("-").lstrip("0")) > 18 or not low <= int(raw) <= high:  # int() refuses 4,300+ digits
        raise BadRequest(f"{name} must be between {low} and {high}, got {raw[:20]}")
    return int(raw)


def text_param(request: Request, name: str, max_length: int = MAX_TEXT) -> str | None:
    raw = request.query.get(name)
    if raw is not None and not 0 < len(raw) <= max_length:
        raise BadRequest(f"{name} must have 1 to {max_length} characters")
    return raw


class ApiView(View):
    """Times every request by route and turns :class:`BadRequest` into a 400."""

    async def dispatch(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            return await super().dispatch(request)
        except BadRequest as err:
            return self.error(400, str(err))
        finally:
            route = request.match_info.route.resource.canonical if request.match_info.route.resource else "?"
            REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)


def admin_error(request: Request) -> tuple[int, str] | None:
    """Why an admin request is refused, or None: a ``Bearer`` token equal to PERSONA_ADMIN_TOKEN."""
    if not settings.admin_token:
        return 403, "admin endpoints are disabled: set PERSONA_ADMIN_TOKEN on the workers"
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), settings.admin_token.encode()):  # constant time
        return 401, "an admin token is required: Authorization: Bearer <PERSONA_ADMIN_TOKEN>"
    return None


class CatalogView(ApiView):
    """A view that needs the catalog copy: 503 until it has caught up."""

    async def dispatch(self, request: Request) -> Response:
        if not catalog.ready.is_set():
            return self.error(503, "catalog not loaded yet", headers={"Retry-After": "1"})
        return await super().dispatch(request)
