"""Answer a per-user request on the worker that owns the user's partition.

Faust's ``table_route`` hashes the JSON-serialized key (``"u1"`` with quotes), while the
storefront's producer hashes the raw user id, so with several workers it asks the wrong one
(faust-streaming #514). This looks up the owner of the raw key's partition in the assignor's
table metadata and forwards the request there, once.
"""

from __future__ import annotations

from faust.web import Request, Response, View
from faust.web.exceptions import ServiceUnavailable
from yarl import URL

from persona.agents.app import app
from persona.agents.ingest import owner_partition
from persona.tables.state import profiles

__all__ = ["forward_to_owner", "served_here", "FORWARDED", "SERVED_BY"]

FORWARDED = "X-Persona-Forwarded-By"
SERVED_BY = "X-Persona-Served-By"  # the worker that read the state, for operators and tests


def served_here() -> dict[str, str]:
    return {SERVED_BY: str(app.conf.canonical_url)}


def owner_url(user_id: str) -> URL:
    topic = profiles.changelog_topic.get_topic_name()
    partition = owner_partition(user_id)
    for url, topics in app.router.table_metadata(profiles.name).items():
        if partition in topics.get(topic, ()):
            return URL(url)
    raise ServiceUnavailable(f"no worker owns partition {partition} yet (rebalancing); retry")


async def forward_to_owner(view: View, request: Request, user_id: str) -> Response | None:
    """The owner's answer, or None when this worker should answer itself."""
    if request.headers.get(FORWARDED):
        return None  # forwarded once already: answer from what we have rather than loop
    dest = owner_url(user_id)
    here = URL(str(app.conf.canonical_url))
    if (dest.host, dest.port) == (here.host, here.port):
        return None
    url = request.url.with_host(dest.host).with_port(dest.port)
    async with app.http_client.get(url, headers={FORWARDED: str(here)}) as resp:
        body = await resp.read()
        headers = {SERVED_BY: resp.headers.get(SERVED_BY, str(dest))}
        return view.bytes(body, content_type=resp.content_type, status=resp.status, headers=headers)
