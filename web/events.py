"""``POST /events``: HTTP ingest for storefronts that cannot produce to Kafka.

Up to ``MAX_BATCH`` events a request, each validated like the stream. Valid events are produced
to ``persona.events`` keyed by user; invalid ones go to the dead-letter topic with their reason
(nothing is lost) and are listed in a 400 answer with their index.
"""

from __future__ import annotations

import orjson
from faust.web import Request, Response

from persona.agents import topics
from persona.agents.app import app
from persona.agents.ingest import dead_letter, owner_partition
from persona.events import InvalidEvent, parse_event
from persona.web.base import ApiView

__all__ = ["EventsView", "MAX_BATCH"]

MAX_BATCH = 1000
MAX_BODY = 8 * 1024 * 1024


def _split(body: bytes) -> list[bytes]:
    """The raw events of a body: ``{"events": [...]}``, ``[...]`` or one event object."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise InvalidEvent(f"body: not JSON ({err})") from None
    if isinstance(data, dict) and isinstance(data.get("events"), list):
        data = data["events"]
    events = data if isinstance(data, list) else [data]
    if not 0 < len(events) <= MAX_BATCH:
        raise InvalidEvent(f"body: 1 to {MAX_BATCH} events a request, got {len(events)}")
    return [orjson.dumps(e) for e in events]


@app.page("/events")
class EventsView(ApiView):
    async def post(self, request: Request) -> Response:
        body = await request.read()
        if len(body) > MAX_BODY:
            return self.error(413, f"body over {MAX_BODY} bytes: send at most {MAX_BATCH} events a request")
        try:
            raws = _split(body)
        except InvalidEvent as err:
            return self.error(400, str(err))
        rejected = []
        for index, raw in enumerate(raws):
            try:
                e = parse_event(raw)
            except InvalidEvent as err:
                rejected.append({"index": index, "reason": str(err)})
                await dead_letter(None, raw, str(err), f"http/{request.remote}")
                continue
            await topics.events.send(key=e.user_id.encode(), value=raw, partition=owner_partition(e.user_id))
        accepted = len(raws) - len(rejected)
        if rejected:
            return self.json({"error": f"{len(rejected)} of {len(raws)} events rejected", "accepted": accepted,
                              "rejected": rejected}, status=400)
        return self.json({"accepted": accepted}, status=202)
