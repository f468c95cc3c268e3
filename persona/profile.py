"""Per-user state, updated by every event of that user.

A :class:`Profile` is what the ``profiles`` table holds for a user: recent items with their
event times, the current session, counts per event name, the cart, purchases and short hashes
of the ids of recently applied events (so a redelivered event is not counted twice).

>>> from persona.events import parse_event
>>> p = Profile("u1")
>>> e = parse_event(b'{"event_id": "e1", "event_name": "view_item", "user_id": "u1",'
...                 b' "session_id": "s1", "timestamp": 1700000000000, "items": [{"item_id": "7"}]}')
>>> p.apply(e), p.apply(e)
(True, False)
>>> p.counts, p.recent, p.session["id"]
({'view_item': 1}, [['7', 1700000000.0, 'view_item']], 's1')
"""

from __future__ import annotations

import base64
import bisect
import functools
import hashlib
from dataclasses import asdict, dataclass, field
from operator import itemgetter
from typing import Any

import orjson

from persona.events import Event

__all__ = ["Profile", "SESSION_GAP_SECONDS", "event_key"]

MAX_RECENT = 50
MAX_PURCHASED = 200
MAX_CART = 50
# Events remembered per user. Redeliveries after a crash are the events after the last committed
# offset (a commit interval plus one write-behind flush), and client retries come within seconds.
DEDUP_WINDOW = 64
KEY_CHARS = 11  # length of an event_key
SESSION_GAP_SECONDS = 30 * 60
ITEM_EVENTS = {"view_item", "select_item", "add_to_cart"}


@functools.lru_cache(maxsize=4096)  # each event asks twice: seen() before the pipeline, remember() in apply()
def event_key(event_id: str) -> str:
    """How a profile remembers an applied event: the first 8 bytes of the SHA-256 of its id, base64url
    (11 characters instead of a 32-character uuid; SHA-256 because the storefront computes the same key
    with the browser's WebCrypto).

    >>> event_key("e1"), event_key("e2")
    ('i1zE337sfTI', 'rA8JwPi_Xno')
    """
    return base64.urlsafe_b64encode(hashlib.sha256(event_id.encode()).digest()[:8])[:KEY_CHARS].decode()


@dataclass
class Profile:
    """What persona knows about one user. Plain data: JSON in the table's changelog."""

    user_id: str
    recent: list[list[Any]] = field(default_factory=list)  # [item_id, ts, event_name], oldest first
    session: dict[str, Any] = field(default_factory=dict)  # id, start, last, events
    counts: dict[str, int] = field(default_factory=dict)
    cart: list[str] = field(default_factory=list)
    purchased: list[str] = field(default_factory=list)
    first_seen: float = 0.0
    last_seen: float = 0.0
    applied: list[str] = field(default_factory=list)  # event_key of the recent events, oldest first
    impressions: dict[str, Any] = field(default_factory=dict)  # rec_id -> what was shown, until clicked

    def __post_init__(self) -> None:
        # Profiles stored before event keys list full event ids: those become keys. (An 11-character
        # id of such a profile passes for a key, and is then not recognised if delivered again.)
        if not all(len(k) == KEY_CHARS for k in self.applied):
            self.applied = [k if len(k) == KEY_CHARS else event_key(k) for k in self.applied][-DEDUP_WINDOW:]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Profile":
        """The profile of a :meth:`to_dict` value, or of the older form with every field and full event ids;
        what it leaves out takes its default.

        >>> old = Profile.from_dict({"user_id": "u", "applied": ["e1"], "cart": [], "first_seen": 0.0})
        >>> old.applied, old.seen("e1"), old == Profile("u", applied=[event_key("e1")])
        (['i1zE337sfTI'], True, True)
        """
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """A copy as plain data, without the fields that are empty (:meth:`from_dict` restores them).

        Copied by hand: ``dataclasses.asdict`` deep-copies generically, 5x slower, and this runs for every
        changed profile at every flush.

        >>> p = Profile("u", recent=[["a", 1.0, "view_item"]], impressions={"r": {"items": [["a", "x", 0]]}})
        >>> d = p.to_dict()
        >>> d
        {'user_id': 'u', 'recent': [['a', 1.0, 'view_item']], 'impressions': {'r': {'items': [['a', 'x', 0]]}}}
        >>> asdict(Profile.from_dict(d)) == asdict(p), d["recent"][0] is p.recent[0]
        (True, False)
        """
        full = {"recent": [list(r) for r in self.recent], "session": dict(self.session), "counts": dict(self.counts),
                "cart": list(self.cart), "purchased": list(self.purchased), "first_seen": self.first_seen,
                "last_seen": self.last_seen, "applied": list(self.applied),
                "impressions": {rec_id: {**imp, **{k: [list(x) if isinstance(x, list) else x for x in v]
                                                   for k, v in imp.items() if isinstance(v, list)}}
                                for rec_id, imp in self.impressions.items()}}
        out = {"user_id": self.user_id}
        out.update(filter(itemgetter(1), full.items()))  # the non-empty fields
        return out

    def to_json(self) -> bytes:
        """:meth:`to_dict` as JSON, serialised from the live fields without copying them first.

        >>> p = Profile("u", recent=[["a", 1.0, "view_item"]], counts={"view_item": 1})
        >>> p.to_json(), orjson.loads(p.to_json()) == p.to_dict()
        (b'{"user_id":"u","recent":[["a",1.0,"view_item"]],"counts":{"view_item":1}}', True)
        """
        return orjson.dumps({"user_id": self.user_id, **{k: v for k, v in vars(self).items() if v and k != "user_id"}})

    def seen(self, event_id: str) -> bool:
        """Whether the event ``event_id`` is among the last :data:`DEDUP_WINDOW` applied."""
        return event_key(event_id) in self.applied

    def remember(self, event_id: str) -> bool:
        """Note an event as applied; False if it was already.

        >>> p = Profile("u")
        >>> p.remember("e1"), p.remember("e1"), p.seen("e1"), p.seen("e2"), p.applied
        (True, False, True, False, ['i1zE337sfTI'])
        """
        key = event_key(event_id)
        if key in self.applied:
            return False
        self.applied.append(key)
        del self.applied[:-DEDUP_WINDOW]
        return True

    def apply(self, event: Event) -> bool:
        """Fold ``event`` into the profile; False (and no change) if it was applied before."""
        if not self.remember(event.event_id):
            return False
        ts, name = event.ts, event.event_name
        self._update_session(event.session_id, ts)
        self.counts[name] = self.counts.get(name, 0) + 1
        self.first_seen = min(self.first_seen or ts, ts)
        self.last_seen = max(self.last_seen, ts)
        ids = list(dict.fromkeys(event.item_ids))  # an item listed twice is still one item
        if name in ITEM_EVENTS:
            for item_id in ids:
                bisect.insort(self.recent, [item_id, ts, name], key=lambda r: r[1])
            del self.recent[:-MAX_RECENT]
        if name == "add_to_cart":
            self.cart = [i for i in self.cart if i not in ids] + ids
            del self.cart[:-MAX_CART]
        elif name == "remove_from_cart":
            self.cart = [i for i in self.cart if i not in ids]
        elif name == "purchase":
            self.cart = [i for i in self.cart if i not in ids]
            self.purchased = [i for i in self.purchased if i not in ids] + ids
            del self.purchased[:-MAX_PURCHASED]
        return True

    def _update_session(self, session_id: str | None, ts: float) -> None:
        s = self.session
        expired = not s or ts - s.get("last", ts) > SESSION_GAP_SECONDS
        if (session_id and session_id != s.get("id")) or (not session_id and expired):
            self.session = {"id": session_id or f"auto-{int(ts)}", "start": ts, "last": ts, "events": 1}
            return
        s["start"] = min(s["start"], ts)
        s["last"] = max(s["last"], ts)
        s["events"] += 1

    def merge(self, other: "Profile") -> None:
        """Take in another profile of the same person (an anonymous one, at login).

        >>> account = Profile("acct", recent=[["b", 20.0, "view_item"]], counts={"view_item": 1})
        >>> account.merge(Profile("anon", recent=[["a", 10.0, "view_item"]], counts={"view_item": 2},
        ...                       cart=["a"], first_seen=10.0, last_seen=10.0))
        >>> account.recent, account.counts, account.cart, account.first_seen
        ([['a', 10.0, 'view_item'], ['b', 20.0, 'view_item']], {'view_item': 3}, ['a'], 10.0)
        """
        self.recent = sorted(self.recent + other.recent, key=lambda r: r[1])[-MAX_RECENT:]
        for name, n in other.counts.items():
            self.counts[name] = self.counts.get(name, 0) + n
        self.cart = (other.cart + [i for i in self.cart if i not in other.cart])[-MAX_CART:]
        self.purchased = ([i for i in other.purchased if i not in self.purchased] + self.purchased)[-MAX_PURCHASED:]
        self.first_seen = min(filter(None, (self.first_seen, other.first_seen)), default=0.0)
        self.last_seen = max(self.last_seen, other.last_seen)
        self.applied = (other.applied + [i for i in self.applied if i not in other.applied])[-DEDUP_WINDOW:]
        self.impressions = {**other.impressions, **self.impressions}

    def recent_items(self, now: float, window: float) -> list[tuple[str, float, str]]:
        """Items touched within ``window`` seconds before ``now``, newest first, one entry per item.

        >>> p = Profile("u", recent=[["a", 100.0, "view_item"], ["b", 150.0, "view_item"],
        ...                          ["a", 190.0, "add_to_cart"]])
        >>> p.recent_items(now=200.0, window=60)
        [('a', 10.0, 'add_to_cart'), ('b', 50.0, 'view_item')]
        """
        seen: set[str] = set()
        out = []
        for item_id, ts, name in reversed(self.recent):
            age = now - ts
            if age > window:
                break
            if item_id not in seen:
                seen.add(item_id)
                out.append((item_id, max(age, 0.0), name))
        return out
