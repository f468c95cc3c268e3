"""The per-user profile: dedup, recent items, sessions, cart and purchases, and its JSON form."""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persona.events import EVENT_NAMES, Event, parse_event
from persona.profile import DEDUP_WINDOW, MAX_RECENT, SESSION_GAP_SECONDS, Profile

T0 = 1_800_000_000.0
MINUTE = 60.0


def ev(event_id: str, name: str = "view_item", at: float = T0, items: tuple[str, ...] = ("a",),
       session: str | None = "s1", user: str = "u1") -> Event:
    """An event as the ingest agent gets it: through :func:`parse_event`."""
    event = {"event_id": event_id, "event_name": name, "user_id": user, "timestamp": int(at * 1000),
             "items": [{"item_id": i} for i in items]}
    if session is not None:
        event["session_id"] = session
    return parse_event(json.dumps(event).encode(), now=at)


def applied(*events: Event, user: str = "u1") -> Profile:
    p = Profile(user)
    for e in events:
        p.apply(e)
    return p


# --- dedup ------------------------------------------------------------------------------------


def test_the_same_event_twice_is_counted_once():
    p = Profile("u1")
    e = ev("e1", items=("a",))
    assert p.apply(e) is True
    before = json.dumps(p.to_dict(), sort_keys=True)
    assert p.apply(e) is False
    assert json.dumps(p.to_dict(), sort_keys=True) == before  # no change at all
    assert p.counts == {"view_item": 1}
    assert [r[0] for r in p.recent] == ["a"]


def test_a_redelivered_event_is_recognised_by_its_id_alone():
    p = applied(ev("e1", "add_to_cart", items=("a",)))
    assert p.apply(ev("e1", "purchase", at=T0 + 5, items=("a",))) is False
    assert p.cart == ["a"] and p.purchased == []


def test_dedup_remembers_the_last_dedup_window_event_ids():
    p = applied(ev("first"))
    for i in range(DEDUP_WINDOW - 1):
        p.apply(ev(f"other-{i}", at=T0 + i + 1))
    assert len(p.applied) == DEDUP_WINDOW
    assert p.apply(ev("first")) is False  # still among the last DEDUP_WINDOW ids

    p.apply(ev("one-more", at=T0 + DEDUP_WINDOW))
    assert len(p.applied) == DEDUP_WINDOW  # bounded
    assert "first" not in p.applied
    assert p.apply(ev("first")) is True  # forgotten: a very late redelivery counts again
    assert p.counts["view_item"] == DEDUP_WINDOW + 2


# --- recent items -------------------------------------------------------------------------------


def test_recent_items_are_bounded_and_sorted_by_event_time_whatever_the_arrival_order():
    times = [T0 + i * MINUTE for i in range(MAX_RECENT + 30)]
    arrival = times[:]
    random.Random(7).shuffle(arrival)
    p = Profile("u1")
    for n, t in enumerate(arrival):
        p.apply(ev(f"e{n}", at=t, items=(f"item-{int(t)}",)))
        stamps = [r[1] for r in p.recent]
        assert stamps == sorted(stamps)
        assert len(p.recent) <= MAX_RECENT
    assert len(p.recent) == MAX_RECENT
    assert [r[1] for r in p.recent] == times[-MAX_RECENT:]  # the newest ones are kept
    assert [r[0] for r in p.recent] == [f"item-{int(t)}" for t in times[-MAX_RECENT:]]


def test_an_event_older_than_everything_in_a_full_list_is_dropped():
    p = Profile("u1")
    for i in range(MAX_RECENT):
        p.apply(ev(f"e{i}", at=T0 + i, items=(f"i{i}",)))
    p.apply(ev("late", at=T0 - 100, items=("old",)))
    assert "old" not in [r[0] for r in p.recent]
    assert p.counts["view_item"] == MAX_RECENT + 1  # still counted
    assert p.first_seen == T0 - 100


@pytest.mark.parametrize("name", ["view_item", "select_item", "add_to_cart"])
def test_item_events_go_to_recent(name):
    p = applied(ev("e1", name, items=("a", "b")))
    assert p.recent == [["a", T0, name], ["b", T0, name]]


@pytest.mark.parametrize("name", ["remove_from_cart", "purchase", "view_item_list", "search"])
def test_other_events_do_not_go_to_recent(name):
    p = applied(ev("e1", name, items=("a",)))
    assert p.recent == []
    assert p.counts == {name: 1}


def test_recent_items_are_newest_first_once_each_within_the_window():
    p = applied(ev("e1", at=T0, items=("a",)), ev("e2", at=T0 + 10 * MINUTE, items=("b",)),
                ev("e3", "add_to_cart", at=T0 + 20 * MINUTE, items=("a",)))
    now = T0 + 21 * MINUTE
    assert p.recent_items(now, window=30 * MINUTE) == [("a", MINUTE, "add_to_cart"), ("b", 11 * MINUTE, "view_item")]
    assert p.recent_items(now, window=5 * MINUTE) == [("a", MINUTE, "add_to_cart")]
    assert p.recent_items(now + 60 * MINUTE, window=30 * MINUTE) == []


def test_first_and_last_seen_follow_event_time_not_arrival():
    p = applied(ev("e1", at=T0), ev("e2", at=T0 - 50), ev("e3", at=T0 + 20))
    assert (p.first_seen, p.last_seen) == (T0 - 50, T0 + 20)


# --- sessions ---------------------------------------------------------------------------------


def test_events_of_one_session_id_are_one_session():
    p = applied(ev("e1", at=T0, session="s1"), ev("e2", at=T0 + MINUTE, session="s1"),
                ev("e3", at=T0 + 2 * MINUTE, session="s1"))
    assert p.session == {"id": "s1", "start": T0, "last": T0 + 2 * MINUTE, "events": 3}


def test_a_new_session_id_starts_a_new_session():
    p = applied(ev("e1", at=T0, session="s1"), ev("e2", at=T0 + MINUTE, session="s1"),
                ev("e3", at=T0 + 2 * MINUTE, session="s2"))
    assert p.session == {"id": "s2", "start": T0 + 2 * MINUTE, "last": T0 + 2 * MINUTE, "events": 1}


def test_a_session_id_keeps_its_session_across_a_long_pause():
    p = applied(ev("e1", at=T0, session="s1"), ev("e2", at=T0 + 3 * SESSION_GAP_SECONDS, session="s1"))
    assert p.session["id"] == "s1" and p.session["events"] == 2 and p.session["start"] == T0


def test_without_session_id_a_pause_over_30_minutes_starts_a_new_session():
    assert SESSION_GAP_SECONDS == 30 * MINUTE
    p = applied(ev("e1", at=T0, session=None), ev("e2", at=T0 + 29 * MINUTE, session=None))
    first = p.session["id"]
    assert p.session["events"] == 2 and p.session["start"] == T0

    p.apply(ev("e3", at=T0 + 29 * MINUTE + SESSION_GAP_SECONDS + 1, session=None))
    assert p.session["id"] != first
    assert p.session["events"] == 1 and p.session["start"] == T0 + 29 * MINUTE + SESSION_GAP_SECONDS + 1


def test_without_session_id_a_short_pause_continues_an_explicit_session():
    p = applied(ev("e1", at=T0, session="s1"), ev("e2", at=T0 + 5 * MINUTE, session=None))
    assert p.session["id"] == "s1" and p.session["events"] == 2


def test_a_late_event_of_the_current_session_moves_its_start_back():
    p = applied(ev("e1", at=T0, session="s1"), ev("e2", at=T0 - 2 * MINUTE, session="s1"))
    assert p.session == {"id": "s1", "start": T0 - 2 * MINUTE, "last": T0, "events": 2}


# --- cart and purchases -----------------------------------------------------------------------


def test_add_to_cart_keeps_one_entry_per_item_latest_last():
    p = applied(ev("e1", "add_to_cart", items=("a",)), ev("e2", "add_to_cart", at=T0 + 1, items=("b",)),
                ev("e3", "add_to_cart", at=T0 + 2, items=("a",)))
    assert p.cart == ["b", "a"]


def test_remove_from_cart_removes_only_the_named_items():
    p = applied(ev("e1", "add_to_cart", items=("a", "b", "c")), ev("e2", "remove_from_cart", at=T0 + 1, items=("b",)))
    assert p.cart == ["a", "c"]
    p.apply(ev("e3", "remove_from_cart", at=T0 + 2, items=("not-in-cart",)))
    assert p.cart == ["a", "c"]


def test_a_purchase_empties_those_items_from_the_cart_and_records_them():
    p = applied(ev("e1", "add_to_cart", items=("a", "b")),
                ev("e2", "purchase", at=T0 + 1, items=("a", "z")))
    assert p.cart == ["b"]
    assert p.purchased == ["a", "z"]
    p.apply(ev("e3", "purchase", at=T0 + 2, items=("a",)))  # bought again: once in the list, latest last
    assert p.purchased == ["z", "a"]
    assert p.counts == {"add_to_cart": 1, "purchase": 2}


def test_an_item_listed_twice_in_one_event_is_in_the_cart_once():
    p = applied(ev("e1", "add_to_cart", items=("a", "a")), ev("e2", "purchase", at=T0 + 1, items=("b", "b")))
    assert p.cart == ["a"]
    assert p.purchased == ["b"]


# --- JSON form --------------------------------------------------------------------------------


def test_to_dict_and_from_dict_round_trip_through_json():
    p = applied(ev("e1", at=T0, items=("a",)), ev("e2", "add_to_cart", at=T0 + 1, items=("b",)),
                ev("e3", "purchase", at=T0 + 2, items=("b", "c")), ev("e4", at=T0 + 3, session="s2"))
    p.impressions["r1"] = {"items": ["x", "y"], "ts": T0}
    back = Profile.from_dict(json.loads(json.dumps(p.to_dict())))
    assert back == p
    assert p.to_dict() == dataclasses.asdict(p)
    p.to_dict()["impressions"]["r1"]["items"].append("z")  # a copy: changing it leaves the profile alone
    assert p.impressions["r1"]["items"] == ["x", "y"]
    assert back.apply(ev("e2", "add_to_cart", at=T0 + 1, items=("b",))) is False  # dedup survives
    assert back.recent_items(T0 + 10, 60) == p.recent_items(T0 + 10, 60)


def test_a_new_profile_round_trips_too():
    assert Profile.from_dict(json.loads(json.dumps(Profile("u9").to_dict()))) == Profile("u9")


# --- property: counts are the number of distinct events ---------------------------------------


@st.composite
def events_with_redeliveries(draw):
    n = draw(st.integers(1, 40))  # fewer distinct events than DEDUP_WINDOW
    events = []
    for i in range(n):
        name = draw(st.sampled_from([n for n in EVENT_NAMES if n != "login"]))  # login: see test_events
        k = draw(st.integers(1 if name != "search" else 0, 3))
        items = tuple(draw(st.lists(st.sampled_from("abcdefgh"), min_size=k, max_size=k, unique=True)))
        at = T0 + draw(st.integers(-3600, 3600))
        session = draw(st.sampled_from([None, "s1", "s2"]))
        events.append(ev(f"e{i}", name, at=at, items=items, session=session))
    stream = list(events)
    for dup in draw(st.lists(st.sampled_from(events), max_size=20)):  # redeliveries, anywhere later
        first = stream.index(dup)
        stream.insert(draw(st.integers(first + 1, len(stream))), dup)
    return events, stream


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events_with_redeliveries())
def test_counts_are_the_distinct_events_per_name_whatever_the_redeliveries(case):
    events, stream = case
    p = Profile("u1")
    seen: set[str] = set()
    for e in stream:
        assert p.apply(e) is (e.event_id not in seen)
        seen.add(e.event_id)
    assert p.counts == Counter(e.event_name for e in events)
    assert sum(p.counts.values()) == len(events)
    stamps = [r[1] for r in p.recent]
    assert stamps == sorted(stamps) and len(p.recent) <= MAX_RECENT
    assert len(p.cart) == len(set(p.cart)) and len(p.purchased) == len(set(p.purchased))
    assert p.first_seen == min(e.ts for e in events) and p.last_seen == max(e.ts for e in events)
    assert Profile.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert p.to_dict() == dataclasses.asdict(p)
