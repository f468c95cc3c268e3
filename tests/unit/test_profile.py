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
from persona.pipeline import process
from persona.profile import DEDUP_WINDOW, MAX_RECENT, SESSION_GAP_SECONDS, Profile, event_key

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
    assert not p.seen("first")
    assert p.apply(ev("first")) is True  # forgotten: a very late redelivery counts again
    assert p.counts["view_item"] == DEDUP_WINDOW + 2


def test_the_window_is_64_events_and_the_65th_oldest_is_forgotten():
    assert DEDUP_WINDOW == 64
    p = applied(*(ev(f"e{i}", at=T0 + i) for i in range(65)))
    assert len(p.applied) == 64
    assert not p.seen("e0")
    assert all(p.seen(f"e{i}") for i in range(1, 65))
    assert [p.apply(ev(f"e{i}", at=T0 + i)) for i in (64, 1, 0)] == [False, False, True]


def test_applied_events_are_remembered_by_a_short_hash_of_their_id():
    ids = ["9f1c0e54d0b44a5e8e1f3a0c2b7d6e41", "9f1c0e54d0b44a5e8e1f3a0c2b7d6e42", "e1"]
    p = applied(*(ev(i, at=T0 + n) for n, i in enumerate(ids)))
    assert p.applied == [event_key(i) for i in ids]
    assert len(set(p.applied)) == 3  # ids differing in their last character get different keys
    assert all(len(k) == 11 and k.isascii() and k.replace("-", "").replace("_", "").isalnum() for k in p.applied)
    stored = json.dumps(p.to_dict())
    assert not any(i in stored for i in ids[:2])
    assert all(p.seen(i) for i in ids) and not p.seen("e2")
    assert event_key("e1") == "i1zE337sfTI"  # fixed: web/static/storefront.js computes the same key


def test_a_repeated_event_is_dropped_by_the_pipeline_too():
    p = Profile("u1")
    e = ev("e1", "add_to_cart", items=("a",))
    assert process(p, e, catalog={}).applied is True
    before = p.to_dict()
    again = process(p, e, catalog={})
    assert again.applied is False and again.item_signals == [] and again.examples == []
    assert p.to_dict() == before


def test_a_served_list_is_remembered_once():
    p = Profile("u1")
    shown = ev("rec-1", "view_item_list", items=("a", "b"))
    assert process(p, shown, catalog={}, served=True).applied is True
    assert process(p, shown, catalog={}, served=True).applied is False
    assert p.seen("rec-1") and p.counts == {}


def test_a_flush_stores_exactly_the_dict_readers_get():
    p = Profile("u1", recent=[["a", 1.5, "view_item"]], session={"id": "s", "start": 1.0}, counts={"view_item": 1},
                cart=["a"], purchased=["b"], first_seen=1.0, last_seen=2.0, applied=[event_key("e1")],
                impressions={"r1": {"ts": 2.0, "slot": "home", "items": [["a", "cf", 0], ["b", "content", 1]]}})
    assert json.loads(p.to_json()) == p.to_dict() and Profile.from_dict(json.loads(p.to_json())) == p


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


FIELDS = [f.name for f in dataclasses.fields(Profile)]


def full_profile() -> Profile:
    """A profile with every field set."""
    p = applied(ev("e1", at=T0, items=("a",)), ev("e2", "add_to_cart", at=T0 + 1, items=("b",)),
                ev("e3", "add_to_cart", at=T0 + 2, items=("c",)), ev("e4", "purchase", at=T0 + 3, items=("b", "d")),
                ev("e5", at=T0 + 4, session="s2"))
    p.impressions["r1"] = {"items": [["x", "content", 0], ["y", "cf", 1]], "ts": T0, "variant": "A"}
    return p


def test_to_dict_and_from_dict_round_trip_through_json():
    p = applied(ev("e1", at=T0, items=("a",)), ev("e2", "add_to_cart", at=T0 + 1, items=("b",)),
                ev("e3", "purchase", at=T0 + 2, items=("b", "c")), ev("e4", at=T0 + 3, session="s2"))
    p.impressions["r1"] = {"items": ["x", "y"], "ts": T0}
    back = Profile.from_dict(json.loads(json.dumps(p.to_dict())))
    assert back == p
    assert dataclasses.asdict(back) == dataclasses.asdict(p)
    assert "cart" not in p.to_dict() and p.cart == []  # bought: the cart is empty, and left out
    p.to_dict()["impressions"]["r1"]["items"].append("z")  # a copy: changing it leaves the profile alone
    assert p.impressions["r1"]["items"] == ["x", "y"]
    assert back.apply(ev("e2", "add_to_cart", at=T0 + 1, items=("b",))) is False  # dedup survives
    assert back.recent_items(T0 + 10, 60) == p.recent_items(T0 + 10, 60)


def test_a_new_profile_is_stored_as_its_user_id_alone_and_round_trips():
    assert Profile("u9").to_dict() == {"user_id": "u9"}
    assert Profile.from_dict(json.loads(json.dumps(Profile("u9").to_dict()))) == Profile("u9")


def test_a_full_profile_keeps_every_field_and_round_trips():
    p = full_profile()
    d = p.to_dict()
    assert list(d) == FIELDS
    assert d == dataclasses.asdict(p)
    assert Profile.from_dict(json.loads(json.dumps(d))) == p


def test_to_dict_leaves_out_exactly_the_empty_fields():
    p = Profile("u1", counts={"search": 1}, last_seen=T0)
    assert p.to_dict() == {"user_id": "u1", "counts": {"search": 1}, "last_seen": T0}
    assert Profile.from_dict(p.to_dict()) == p


def test_to_dict_copies_every_list_and_dict():
    p = full_profile()
    d = p.to_dict()
    d["recent"][0][0] = d["cart"][0] = d["purchased"][0] = d["applied"][0] = "changed"
    d["session"]["id"] = d["impressions"]["r1"]["items"][0][0] = "changed"
    d["counts"]["view_item"] = 99
    assert p == full_profile()


def test_the_stored_form_of_an_empty_field_is_read_either_way():
    stored = {"user_id": "u1", "recent": [], "session": {}, "counts": {"search": 1}, "cart": [], "purchased": [],
              "first_seen": 0.0, "last_seen": T0, "applied": [], "impressions": {}}
    assert Profile.from_dict(stored) == Profile.from_dict({"user_id": "u1", "counts": {"search": 1}, "last_seen": T0})


# --- profiles stored before event keys --------------------------------------------------------


def old_form(p: Profile, ids: list[str]) -> dict:
    """``p`` as stored before profiles kept event keys: every field, and the full event ids."""
    return {**dataclasses.asdict(p), "applied": list(ids)}


def test_a_stored_profile_with_full_event_ids_still_drops_those_events():
    ids = [f"{n:032x}" for n in range(3)]
    p = applied(*(ev(i, at=T0 + n) for n, i in enumerate(ids)))
    old = Profile.from_dict(json.loads(json.dumps(old_form(p, ids))))
    assert old.applied == [event_key(i) for i in ids]
    assert all(old.apply(ev(i, at=T0 + n)) is False for n, i in enumerate(ids))
    assert old.counts == {"view_item": 3}
    assert process(old, ev(ids[0]), catalog={}).applied is False
    assert old.apply(ev("new", at=T0 + 10)) is True
    assert Profile.from_dict(json.loads(json.dumps(old.to_dict()))).applied == [event_key(i) for i in ids + ["new"]]


def test_a_stored_profile_with_256_full_event_ids_keeps_the_last_64():
    ids = [f"{n:032x}" for n in range(256)]
    old = Profile.from_dict(old_form(Profile("u1"), ids))
    assert old.applied == [event_key(i) for i in ids[-64:]]
    assert old.seen(ids[-64]) and old.seen(ids[-1]) and not old.seen(ids[-65])


# --- merge ------------------------------------------------------------------------------------


def test_a_merged_profile_drops_the_events_of_both():
    account = applied(ev("acct-1", at=T0, items=("a",)), user="acct")
    anon = applied(ev("anon-1", at=T0 - 60, items=("b",), user="anon"), user="anon")
    account.merge(Profile.from_dict(json.loads(json.dumps({**anon.to_dict(), "user_id": "acct"}))))
    assert account.applied == [event_key("anon-1"), event_key("acct-1")]
    assert account.apply(ev("anon-1", at=T0 - 60, items=("b",), user="acct")) is False
    assert account.apply(ev("acct-1", at=T0, items=("a",), user="acct")) is False
    assert account.counts == {"view_item": 2}


def test_a_merge_message_in_the_old_form_is_understood():
    anon = applied(ev("anon-1", at=T0 - 60, items=("b",), user="anon"), user="anon")
    account = Profile("acct")
    account.merge(Profile.from_dict({**old_form(anon, ["anon-1"]), "user_id": "acct"}))
    assert account.seen("anon-1") and account.applied == [event_key("anon-1")]


def test_a_merge_keeps_the_window_bounded_and_the_events_of_the_account_last():
    account = applied(*(ev(f"acct-{i}", at=T0 + i) for i in range(40)))
    anon = applied(*(ev(f"anon-{i}", at=T0 - 100 + i) for i in range(40)))
    account.merge(anon)
    assert len(account.applied) == DEDUP_WINDOW
    assert all(account.seen(f"acct-{i}") for i in range(40))
    assert [i for i in range(40) if account.seen(f"anon-{i}")] == list(range(16, 40))


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
    assert {k: v for k, v in dataclasses.asdict(p).items() if v or k == "user_id"} == p.to_dict()
    assert json.loads(p.to_json()) == p.to_dict()  # what a flush stores
