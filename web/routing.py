"""Answer a per-user request from a worker whose copy of the user's partition is current.

Faust's ``table_route`` hashes the JSON-serialized key (``"u1"`` with quotes), while the
storefront's producer hashes the raw user id, so with several workers it asks the wrong one
(faust-streaming #514). This looks up the owner of the raw key's partition in the assignor's
table metadata and forwards the request there.

During a rebalance the owner may be unknown, gone (a killed worker stays in the assignment until
the group evicts it) or still replaying the changelog, and its table is then empty or behind: a
request must neither fail at once nor be answered from such a table. So the worker asked:

1. answers itself when it owns the partition and has recovered it (``owner``);
2. else forwards to the owner named by the assignment; a worker answers a forwarded request only
   from a current copy, otherwise it says 503 and the asker goes on;
3. else answers from a *replica*: a standby copy (``table_standby_replicas``), or the copy of an
   owner still recovering, whose changelog position has reached the end of the changelog, here
   or on another worker;
4. else waits a little and tries again, for at most :data:`ROUTE_WAIT` seconds, then answers 503.

A replica is as current as the changelog: while its owner is alive it may lag by the owner's
flush interval; once the owner is gone it holds everything the owner wrote. ``X-Persona-Served-By``
names the worker that read the state, ``X-Persona-Read-From`` says ``owner`` or ``replica``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextvars import ContextVar
from typing import Collection

import aiohttp
from faust.types import TP
from faust.web import Request, Response, View
from yarl import URL

from persona.agents.app import app
from persona.agents.ingest import owner_partition
from persona.tables.state import profiles

__all__ = ["forward_to_owner", "served_here", "copy_state", "owner_url", "FORWARDED", "SERVED_BY", "READ_FROM",
           "ROUTE_WAIT"]

logger = logging.getLogger(__name__)

FORWARDED = "X-Persona-Forwarded-By"
SERVED_BY = "X-Persona-Served-By"  # the worker that read the state, for operators and tests
READ_FROM = "X-Persona-Read-From"  # "owner" or "replica"
ROUTE_WAIT = 8.0  # seconds a request may wait for a current copy of its partition
FORWARDED_WAIT = 1.0  # ... of which a forwarded request waits on the owner it was sent to
ASK_TIMEOUT = 3.0  # seconds for one forwarded request (a stopping worker may accept and never answer)
POLL = 0.05

_read_from: ContextVar[str] = ContextVar("persona_read_from", default="owner")
_recovered: set[int] = set()  # partitions this worker owns whose table is current


def served_here() -> dict[str, str]:
    return {SERVED_BY: str(app.conf.canonical_url), READ_FROM: _read_from.get()}


def _changelog_tp(partition: int) -> TP:
    return TP(profiles.changelog_topic.get_topic_name(), partition)


@app.on_partitions_assigned.connect
async def _forget_moved_partitions(sender, assigned, **kwargs) -> None:
    """At each new assignment, a partition stays current here only if it stayed here: one that was
    elsewhere in between may have changed there."""
    topic = profiles.changelog_topic.get_topic_name()
    _recovered.intersection_update(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic)


def _caught_up(tp: TP) -> bool:
    """Whether this worker has applied its copy of ``tp`` up to the end of the changelog."""
    try:
        end = app.consumer.highwater(tp)  # the next offset, as of the last fetch of ``tp``
    except Exception:  # not fetched by this consumer (any more)
        return False
    if not end:  # unknown, or nothing fetched yet
        return False
    app.tables.recovery.flush_buffers()  # standby records wait in buffers of up to 1,000 records
    applied = profiles.data.persisted_offset(tp)
    return applied is not None and applied >= end - 1


def _rebalance_seconds() -> float:
    """How long the current rebalance has run (0 when none runs)."""
    if not app.rebalancing:
        return 0.0
    states = getattr(app, "_rebalancing_sensor_state", None) or {}
    starts = [s["time_start"] for s in states.values() if isinstance(s, dict) and "time_start" in s]
    return time.monotonic() - min(starts) if starts else 0.0


def _maybe_evicted() -> bool:
    """A rebalance that outlasts the session timeout may have gone on without this worker (stuck
    in a revoke, it was evicted): its partitions may be someone else's by now."""
    return _rebalance_seconds() > app.conf.broker_session_timeout


def _recovery_ended(tp: TP) -> bool:
    """Whether the recovery of the current assignment has replayed ``tp``'s changelog to the end
    it had when the recovery began (and no rebalance runs)."""
    if app.rebalancing or getattr(app, "in_recovery", False):
        return False
    recovery = app.tables.recovery
    if tp not in recovery.active_highwaters:  # assigned, but its recovery has not begun
        return False
    end = recovery.active_highwaters[tp]
    applied = profiles.data.persisted_offset(tp)
    return end is None or end < 0 or (applied is not None and applied >= end)


def _assigned(kind: str, tp: TP) -> bool:
    """Whether ``tp`` is among this worker's ``actives`` or ``standbys``, without building the sets
    of all of them as ``assigned_actives()`` does (a request asks once or twice)."""
    assignment = getattr(app.assignor, "_assignment", None)
    if assignment is None:
        return tp in getattr(app.assignor, f"assigned_{kind}")()
    return tp.partition in getattr(assignment, kind).get(tp.topic, ())


def copy_state(partition: int) -> str | None:
    """``owner``, ``replica`` (a caught-up standby or recovering copy) or None: what this worker
    may answer from for ``partition``."""
    state = _copy_state(partition)
    if state is not None:
        # A read outside a stream event searches only the open databases; a standby's opens lazily.
        profiles.data._db_for_partition(partition)
    return state


def _copy_state(partition: int) -> str | None:
    if app.should_stop or profiles.should_stop:  # stopping: the store has let go of its databases
        return None
    tp = _changelog_tp(partition)
    active = _assigned("actives", tp)
    if active:
        if partition not in _recovered and _recovery_ended(tp):
            _recovered.add(partition)
        if partition in _recovered and not _maybe_evicted():
            return "owner"
    if (active or _assigned("standbys", tp)) and _caught_up(tp):
        return "replica"
    return None


def _workers() -> dict[str, Collection[int]]:
    """Every worker of the current assignment -> the profiles partitions it owns."""
    topic = profiles.changelog_topic.get_topic_name()
    return {url: topics.get(topic, ()) for url, topics in app.router.table_metadata(profiles.name).items()}


def owner_url(partition: int) -> URL | None:
    for url, partitions in _workers().items():
        if partition in partitions:
            return URL(url)
    return None


def _ident(url: URL) -> tuple[str | None, int | None]:
    return url.host, url.port


def _here() -> URL:
    return URL(str(app.conf.canonical_url))


def _serve_here(state: str) -> None:
    _read_from.set(state)
    return None


async def _ask(view: View, request: Request, dest: URL, deadline: float) -> Response | None:
    """``dest``'s answer, or None when it cannot answer (503, unreachable, too slow)."""
    url = request.url.with_host(dest.host).with_port(dest.port)
    timeout = aiohttp.ClientTimeout(total=max(0.2, min(ASK_TIMEOUT, deadline - time.monotonic())))
    try:
        async with app.http_client.get(url, headers={FORWARDED: str(_here())}, timeout=timeout) as resp:
            if resp.status == 503:
                return None
            body = await resp.read()
            headers = {SERVED_BY: resp.headers.get(SERVED_BY, str(dest)),
                       READ_FROM: resp.headers.get(READ_FROM, "owner")}
            return view.bytes(body, content_type=resp.content_type, status=resp.status, headers=headers)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
        return None


async def _answer_forwarded(view: View, partition: int) -> Response | None:
    """A forwarded request: answer from a current copy, or wait briefly when this worker is the
    owner still recovering, else 503 so that the asker tries elsewhere (never forward again)."""
    deadline = time.monotonic() + FORWARDED_WAIT
    while True:
        if state := copy_state(partition):
            return _serve_here(state)
        owner = owner_url(partition)
        if owner is None or _ident(owner) != _ident(_here()) or time.monotonic() > deadline:
            return view.error(503, f"no current copy of partition {partition} here", headers={"Retry-After": "1"})
        await asyncio.sleep(POLL)


async def forward_to_owner(view: View, request: Request, user_id: str) -> Response | None:
    """The answer of the worker holding a current copy of ``user_id``'s partition, or None when
    this worker should answer itself (then :func:`served_here` says from what)."""
    partition = owner_partition(user_id)
    if request.headers.get(FORWARDED):
        return await _answer_forwarded(view, partition)
    here = _ident(_here())
    deadline = time.monotonic() + ROUTE_WAIT
    waited = False
    while True:
        state = copy_state(partition)
        if state == "owner":
            return _serve_here(state)
        owner = owner_url(partition)
        if owner is not None and _ident(owner) != here:
            if (answer := await _ask(view, request, owner, deadline)) is not None:
                return answer
        if state == "replica" or (state := copy_state(partition)) is not None:
            return _serve_here(state)
        for peer in map(URL, _workers()):
            if _ident(peer) not in (here, _ident(owner) if owner else None):
                if (answer := await _ask(view, request, peer, deadline)) is not None:
                    return answer
        if time.monotonic() > deadline:
            logger.warning("no current copy of partition %d reachable within %.0f s", partition, ROUTE_WAIT)
            return view.error(503, f"no worker holds a current copy of partition {partition} (rebalancing); "
                                   "retry", headers={"Retry-After": "1"})
        if not waited:
            waited = True
            logger.info("partition %d: waiting for a current copy (owner %s)", partition, owner)
        await asyncio.sleep(POLL)
