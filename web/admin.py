"""``POST /admin/reset`` (admin token): start models afresh, zero the engagement counters.

Models are reset by the trainer: a ``reset`` message on the training topic, in order with the
examples, makes it replace them by fresh ones versioned above the last snapshot, published at its
next tick. Engagement is reset by a ``reset`` entry for every ``source|slot`` key on the aggregates
topic, in order with that key's counts; keys first counted after the request keep their counts.
"""

from __future__ import annotations

import time
from typing import Literal

import orjson
from faust.web import Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from persona import feedback
from persona.agents import topics
from persona.agents.app import app
from persona.agents.ingest import Outbox
from persona.tables.state import strategy_stats_everywhere
from persona.web.base import ApiView, admin_error

__all__ = ["ResetRequest", "ResetView", "parse_reset"]

ModelName = Literal["intent", "reranker", "cf"]


class ResetRequest(BaseModel):
    """What to reset: ``{"models": ["intent", "reranker", "cf"], "engagement": true}``."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"anyOf": [
        {"required": ["models"], "properties": {"models": {"minItems": 1}}},
        {"required": ["engagement"], "properties": {"engagement": {"const": True}}}]})

    models: list[ModelName] = Field(default_factory=list, max_length=3, description="models to start afresh")
    engagement: bool = Field(False, description="zero the impressions, clicks, carts... per generator and slot")

    @model_validator(mode="after")
    def _something(self) -> "ResetRequest":
        if not self.models and not self.engagement:
            raise ValueError('nothing to reset: name "models" and/or set "engagement": true')
        return self


class InvalidReset(ValueError):
    pass


def parse_reset(body: bytes) -> ResetRequest:
    """The validated request, or :class:`InvalidReset` saying what is wrong with it."""
    try:
        if not body.strip():
            raise InvalidReset('body: a JSON object is required, like {"models": ["cf"], "engagement": true}')
        req = ResetRequest.model_validate_json(body)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidReset(f"{where}: {first['msg'].removeprefix('Value error, ')}") from None
    req.models = list(dict.fromkeys(req.models))
    return req


async def reset_models(names: list[str]) -> None:
    await topics.training.send(value=orjson.dumps({"model": "reset", "names": names}))


async def reset_engagement() -> int:
    """Send a reset for every engagement key known here, as the aggregates topic carries counts:
    ``{"feedback": {key: [[kind, amount, ts], ...]}}`` on the key's partition. How many keys."""
    box, now = Outbox(), time.time()
    for key in strategy_stats_everywhere.data:
        box.feedback[key] = [[feedback.RESET, 0, now]]
    await box.send()
    return len(box.feedback)


@app.page("/admin/reset")
class ResetView(ApiView):
    async def post(self, request: Request) -> Response:
        if refused := admin_error(request):
            return self.error(*refused)
        try:
            req = parse_reset(await request.read())
        except InvalidReset as err:
            return self.error(400, str(err))
        if req.models:
            await reset_models(req.models)
        keys = await reset_engagement() if req.engagement else 0
        return self.json({"models": req.models, "engagement": req.engagement, "engagement_keys": keys,
                          "status": "reset scheduled"}, status=202)
