"""Interaction events: the GA4-shaped schema the storefront sends, and its validation.

Every event on ``persona.events`` is one JSON object. :func:`parse_event` turns the raw bytes
into an :class:`Event` or raises :class:`InvalidEvent` with a reason a person can act on.

>>> e = parse_event(b'{"event_id": "e1", "event_name": "view_item", "user_id": "u1",'
...                 b' "session_id": "s1", "timestamp": 1700000000000,'
...                 b' "items": [{"item_id": "12855"}]}')
>>> e.event_name, e.user_id, e.items[0].item_id, e.ts
('view_item', 'u1', '12855', 1700000000.0)
>>> try:
...     parse_event(b'{"event_id": "e2", "event_name": "teleport", "user_id": "u1"}')
... except InvalidEvent as err:
...     print(err)  # doctest: +ELLIPSIS
event_name: Input should be 'view_item', 'add_to_cart', ...
"""

from __future__ import annotations

import functools
import math
import time
from datetime import datetime, timezone
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = ["EVENT_NAMES", "Event", "InvalidEvent", "Item", "parse_event", "MAX_EVENT_BYTES"]

EVENT_NAMES = (
    "view_item",
    "add_to_cart",
    "remove_from_cart",
    "purchase",
    "view_item_list",
    "select_item",
    "search",
    "login",
)
EventName = Literal[
    "view_item", "add_to_cart", "remove_from_cart", "purchase", "view_item_list", "select_item", "search", "login"
]

MAX_EVENT_BYTES = 64 * 1024
MAX_FUTURE_SECONDS = 24 * 3600  # client clocks drift, but not by days
MIN_TIMESTAMP = 946684800.0  # 2000-01-01: older timestamps are unit mistakes (seconds vs ms)

Id = Annotated[str, Field(min_length=1, max_length=128)]


class InvalidEvent(ValueError):
    """Raised for input that is not a valid event; the message is the reason sent to the DLQ."""


class Item(BaseModel):
    """One product in an event (GA4 ``items[]``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    item_id: Id
    item_name: str | None = None
    item_brand: str | None = None
    item_category: str | None = None
    price: float | None = Field(default=None, ge=0)
    quantity: int | None = Field(default=None, ge=0)
    index: int | None = Field(default=None, ge=0)  # position in a list (view_item_list)
    item_list_id: str | None = None  # for recommendations: the generator that proposed the item
    item_list_name: str | None = None  # for recommendations: the slot (home, product, cart...)

    @field_validator("item_id", mode="before")
    @classmethod
    def _numbers_are_ids_too(cls, v: object) -> object:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


class Event(BaseModel):
    """A storefront interaction. ``timestamp`` is event time: ISO-8601 or epoch milliseconds."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: Id
    event_name: EventName
    user_id: Id
    session_id: Id | None = None
    timestamp: datetime | int | float | None = None
    items: list[Item] = Field(default_factory=list, max_length=200)
    transaction_id: str | None = None
    rec_id: str | None = None
    search_term: str | None = Field(default=None, max_length=512)
    variant: str | None = Field(default=None, max_length=64)  # the blend variant of a served list
    previous_user_id: Id | None = None  # login: the anonymous id whose profile joins the account
    consent: bool | None = None  # False: no personal state is kept, only aggregate counts

    @functools.cached_property  # the pipeline asks ~6 times per event
    def ts(self) -> float:
        """Event time in epoch seconds (the timestamp is filled in by :func:`parse_event`)."""
        t = self.timestamp
        if isinstance(t, datetime):
            if t.tzinfo is None:
                t = t.replace(tzinfo=timezone.utc)
            return t.timestamp()
        return float(t) / 1000.0

    @property
    def item_ids(self) -> list[str]:
        return [i.item_id for i in self.items]


_NEEDS_ITEMS = {"view_item", "add_to_cart", "remove_from_cart", "purchase", "select_item"}


def _reason(err: ValidationError) -> str:
    first = err.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "event"
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def parse_event(raw: bytes | str, now: float | None = None) -> Event:
    """Validate one event from its JSON bytes; raise :class:`InvalidEvent` with the reason.

    A missing timestamp means "now" (the time it was received).

    >>> def reason(raw):
    ...     try:
    ...         parse_event(raw)
    ...     except InvalidEvent as err:
    ...         return str(err)
    >>> reason(b'{"event_id": "e1", "event_name": "purchase", "user_id": "u1", "items": []}')
    'items: purchase needs at least one item'
    >>> reason(b'not json')
    'event: Invalid JSON: expected ident at line 1 column 2'
    >>> reason(b'{"event_id": "e1", "event_name": "search", "user_id": "u1", "timestamp": 1700000000}')
    'timestamp: 1700000 is before 2000 (epoch milliseconds expected)'
    """
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_EVENT_BYTES:
        raise InvalidEvent(f"event: {size} bytes is over the limit of {MAX_EVENT_BYTES}")
    try:
        event = Event.model_validate_json(raw)
    except ValidationError as err:
        raise InvalidEvent(_reason(err)) from None
    except UnicodeDecodeError as err:
        raise InvalidEvent(f"event: not UTF-8 ({err.reason})") from None
    if event.event_name in _NEEDS_ITEMS and not event.items:
        raise InvalidEvent(f"items: {event.event_name} needs at least one item")
    if event.event_name == "login" and not event.previous_user_id:
        raise InvalidEvent("previous_user_id: login needs the anonymous id it replaces")
    now = time.time() if now is None else now
    if event.timestamp is None:
        return event.model_copy(update={"timestamp": int(now * 1000)})
    try:
        ts = event.ts
    except OverflowError:
        ts = math.inf
    if not math.isfinite(ts):
        raise InvalidEvent("timestamp: not a finite number")
    if ts > now + MAX_FUTURE_SECONDS:
        raise InvalidEvent(f"timestamp: {ts:.0f} is more than a day in the future")
    if ts < MIN_TIMESTAMP:
        raise InvalidEvent(f"timestamp: {ts:.0f} is before 2000 (epoch milliseconds expected)")
    return event
