"""Event parsing and validation: what the storefront may send, and the reason for every rejection."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from persona.events import EVENT_NAMES, MAX_EVENT_BYTES, Event, InvalidEvent, parse_event

NOW = 1_800_000_000.0  # 2027-01-15, a fixed "now" for every time-dependent check
DAY = 24 * 3600
# the machine running the tests may be busy: judge the properties, not the speed of generating inputs
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NEEDS_ITEMS = ("view_item", "add_to_cart", "remove_from_cart", "purchase", "select_item")


def raw(**fields) -> bytes:
    """A valid view_item event as JSON bytes, with ``fields`` replaced (None drops a field)."""
    event = {
        "event_id": "e1",
        "event_name": "view_item",
        "user_id": "u1",
        "session_id": "s1",
        "timestamp": int(NOW * 1000) - 60_000,
        "items": [{"item_id": "12855"}],
    }
    event.update(fields)
    return json.dumps({k: v for k, v in event.items() if v is not None}).encode()


def reason(data: bytes | str) -> str:
    with pytest.raises(InvalidEvent) as err:
        parse_event(data, now=NOW)
    return str(err.value)


# --- valid events ----------------------------------------------------------------------------


def test_a_valid_event_is_parsed_with_all_its_fields():
    e = parse_event(raw(items=[{"item_id": "12855", "item_brand": "Hugo Boss", "price": 59.9, "quantity": 2}]), now=NOW)
    assert isinstance(e, Event)
    assert (e.event_id, e.event_name, e.user_id, e.session_id) == ("e1", "view_item", "u1", "s1")
    assert e.item_ids == ["12855"]
    assert e.items[0].item_brand == "Hugo Boss" and e.items[0].price == 59.9 and e.items[0].quantity == 2
    assert e.ts == NOW - 60


@pytest.mark.parametrize("iso", [
    "2023-11-14T22:13:20Z",
    "2023-11-14T22:13:20+00:00",
    "2023-11-14T23:13:20+01:00",  # same instant, another time zone
    "2023-11-14T22:13:20",  # no zone: taken as UTC
    "2023-11-14T22:13:20.000Z",
])
def test_iso_8601_and_epoch_milliseconds_give_the_same_event_time(iso):
    # 1_700_000_000 s after the epoch is 2023-11-14 22:13:20 UTC
    assert datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc).timestamp() == 1_700_000_000
    from_iso = parse_event(raw(timestamp=iso), now=1_700_000_100)
    from_ms = parse_event(raw(timestamp=1_700_000_000_000), now=1_700_000_100)
    assert from_iso.ts == from_ms.ts == 1_700_000_000.0


def test_milliseconds_keep_their_sub_second_part():
    assert parse_event(raw(timestamp=1_700_000_000_250), now=NOW).ts == pytest.approx(1_700_000_000.25)


@pytest.mark.parametrize("item_id", [12855, "12855"])
def test_a_numeric_item_id_is_accepted_as_a_string(item_id):
    e = parse_event(raw(items=[{"item_id": item_id}, {"item_id": 7}]), now=NOW)
    assert e.item_ids == ["12855", "7"]
    assert all(isinstance(i, str) for i in e.item_ids)


def test_a_missing_timestamp_means_now():
    e = parse_event(raw(timestamp=None), now=NOW)
    assert e.timestamp is not None
    assert e.ts == pytest.approx(NOW, abs=0.001)


def test_a_missing_timestamp_means_the_wall_clock_by_default():
    before = time.time()
    e = parse_event(raw(timestamp=None))
    after = time.time()
    assert before - 0.001 <= e.ts <= after + 0.001


@pytest.mark.parametrize("name", ["view_item_list", "search"])
def test_events_about_no_particular_item_need_no_items(name):
    e = parse_event(raw(event_name=name, items=None, search_term="oud"), now=NOW)
    assert e.event_name == name and e.items == []


def test_unknown_fields_are_ignored():
    e = parse_event(raw(page_location="https://shop/x", items=[{"item_id": "1", "color": "red"}]), now=NOW)
    assert e.item_ids == ["1"]


def test_a_timestamp_less_than_a_day_ahead_is_tolerated():
    assert parse_event(raw(timestamp=int((NOW + DAY - 60) * 1000)), now=NOW).ts == NOW + DAY - 60


def test_a_str_is_accepted_as_well_as_bytes():
    assert parse_event(raw().decode(), now=NOW) == parse_event(raw(), now=NOW)


# --- invalid events: every rejection names the field -------------------------------------


def field_of(message: str) -> str:
    return message.split(":", 1)[0]


@pytest.mark.parametrize("data, field", [
    (raw(event_name="teleport"), "event_name"),
    (raw(event_name=None), "event_name"),
    (raw(event_id=None), "event_id"),
    (raw(user_id=None), "user_id"),
    (raw(event_id=""), "event_id"),
    (raw(user_id="u" * 129), "user_id"),
    (raw(event_id=5), "event_id"),
    (raw(user_id=["u1"]), "user_id"),
    (raw(session_id=7), "session_id"),
    (raw(timestamp="yesterday"), "timestamp"),
    (raw(timestamp=[1]), "timestamp"),
    (raw(items={"item_id": "1"}), "items"),
    (raw(items=["12855"]), "items.0"),
    (raw(items=[{"item_id": True}]), "items.0.item_id"),
    (raw(items=[{"item_id": 1.5}]), "items.0.item_id"),
    (raw(items=[{"item_name": "no id"}]), "items.0.item_id"),
    (raw(items=[{"item_id": "1", "price": -1}]), "items.0.price"),
    (raw(items=[{"item_id": "1", "quantity": "two"}]), "items.0.quantity"),
    (raw(items=[{"item_id": str(i)} for i in range(201)]), "items"),
    (raw(event_name="search", items=None, search_term="x" * 513), "search_term"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_a_malformed_field_is_named_in_the_reason(data, field):
    message = reason(data)
    assert field_of(message).startswith(field), message


@pytest.mark.parametrize("name", NEEDS_ITEMS)
@pytest.mark.parametrize("items", [[], None])
def test_item_events_need_at_least_one_item(name, items):
    message = reason(raw(event_name=name, items=items))
    assert field_of(message) == "items"
    assert name in message


def test_an_oversized_payload_is_rejected_before_parsing():
    padding = "x" * MAX_EVENT_BYTES
    message = reason(raw(page_title=padding))  # valid JSON with an ignored field, just too big
    assert field_of(message) == "event"
    assert str(MAX_EVENT_BYTES) in message


def test_a_payload_of_exactly_the_limit_is_accepted():
    base = raw(page_title="")
    padded = raw(page_title="x" * (MAX_EVENT_BYTES - len(base)))
    assert len(padded) == MAX_EVENT_BYTES
    assert parse_event(padded, now=NOW).event_id == "e1"


@pytest.mark.parametrize("data", [
    raw().replace(b'"u1"', b'"u\xff1"'),  # invalid byte inside a string
    raw().replace(b'"s1"', b'"s\xc3"'),  # truncated two-byte sequence
    b"\xff\xfe" + raw(),  # UTF-16 byte-order mark
    "{}".encode("utf-16"),
])
def test_non_utf8_bytes_are_rejected(data):
    message = reason(data)
    assert field_of(message) == "event"
    assert "json" in message.lower() or "utf-8" in message.lower() or "unicode" in message.lower()


@pytest.mark.parametrize("data", [b"", b"not json", b"{", b'{"event_id": "e1",}', b"[]", b"null", b'"view_item"'])
def test_malformed_json_or_a_non_object_is_rejected(data):
    assert field_of(reason(data)) == "event"


def test_a_timestamp_more_than_a_day_in_the_future_is_rejected():
    message = reason(raw(timestamp=int((NOW + DAY + 60) * 1000)))
    assert field_of(message) == "timestamp" and "future" in message


def test_an_iso_timestamp_in_the_future_is_rejected_too():
    future = datetime.fromtimestamp(NOW, timezone.utc) + timedelta(days=2)
    assert field_of(reason(raw(timestamp=future.isoformat()))) == "timestamp"


@pytest.mark.parametrize("ts", [1_700_000_000, 1_700_000_000.5, 0, -1])
def test_a_timestamp_in_seconds_instead_of_milliseconds_is_rejected(ts):
    message = reason(raw(timestamp=ts))
    assert field_of(message) == "timestamp" and "2000" in message


def test_an_iso_timestamp_before_2000_is_rejected():
    assert field_of(reason(raw(timestamp="1999-12-31T23:59:59Z"))) == "timestamp"


def test_invalid_event_is_a_value_error():
    assert issubclass(InvalidEvent, ValueError)


# --- edge cases: numbers JSON allows, and the byte limit of a str payload --------------------


def test_a_huge_integer_timestamp_is_an_invalid_event():
    message = reason(raw(timestamp=10**400))
    assert field_of(message) == "timestamp"


def test_a_nan_timestamp_is_an_invalid_event():
    data = raw().replace(str(int(NOW * 1000) - 60_000).encode(), b"NaN")
    assert b"NaN" in data
    assert field_of(reason(data)) == "timestamp"


def test_the_size_limit_counts_utf8_bytes_of_a_str_payload():
    event = json.loads(raw())
    event["page_title"] = "é" * (MAX_EVENT_BYTES // 2 + 10)  # two bytes each in UTF-8
    data = json.dumps(event, ensure_ascii=False)
    assert len(data) < MAX_EVENT_BYTES < len(data.encode())
    assert field_of(reason(data)) == "event"


# --- properties ------------------------------------------------------------------------------


def parses_or_rejects(data: bytes | str) -> None:
    try:
        result = parse_event(data, now=NOW)
    except InvalidEvent as err:
        assert str(err), "a rejection must say why"
        assert ":" in str(err), "the reason starts with the field it is about"
    else:
        assert isinstance(result, Event)


@PROPERTY
@given(st.binary(max_size=512))
@example(b"\xff")
@example(b"{}")
@example(raw())
@example(b"[" * 1000)
def test_arbitrary_bytes_give_an_event_or_an_invalid_event(data):
    parses_or_rejects(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


@PROPERTY
@given(st.dictionaries(
    st.sampled_from(["event_id", "event_name", "user_id", "session_id", "timestamp", "items", "search_term"]),
    json_values | st.sampled_from(EVENT_NAMES),
))
def test_event_shaped_junk_gives_an_event_or_an_invalid_event(fields):
    parses_or_rejects(json.dumps(fields).encode())


ids = st.text(min_size=1, max_size=128)
items = st.fixed_dictionaries(
    {"item_id": ids | st.integers(min_value=0, max_value=10**12)},
    optional={"item_name": st.text(max_size=40), "price": st.floats(0, 1e6), "quantity": st.integers(0, 100)},
)
MIN_MS, MAX_MS = 946_684_800_000, int((NOW + DAY) * 1000)


@st.composite
def valid_events(draw):
    name = draw(st.sampled_from(EVENT_NAMES))
    event = {"event_id": draw(ids), "event_name": name, "user_id": draw(ids)}
    event["items"] = draw(st.lists(items, min_size=1 if name in NEEDS_ITEMS else 0, max_size=5))
    if name == "login":
        event["previous_user_id"] = draw(ids)
    if draw(st.booleans()):
        event["session_id"] = draw(ids)
    stamp = draw(st.sampled_from(["ms", "iso", "none"]))
    if stamp == "ms":
        event["timestamp"] = draw(st.integers(MIN_MS, MAX_MS))
    elif stamp == "iso":
        moment = draw(st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2027, 1, 15),
                                   timezones=st.just(timezone.utc)))
        event["timestamp"] = moment.isoformat()
    return event


@PROPERTY
@given(valid_events())
def test_valid_events_round_trip_through_json(event):
    e = parse_event(json.dumps(event).encode(), now=NOW)
    assert (e.event_id, e.event_name, e.user_id) == (event["event_id"], event["event_name"], event["user_id"])
    assert e.session_id == event.get("session_id")
    assert e.item_ids == [str(i["item_id"]) for i in event["items"]]
    if isinstance(event.get("timestamp"), int):
        assert e.ts == event["timestamp"] / 1000
    elif isinstance(event.get("timestamp"), str):
        assert e.ts == datetime.fromisoformat(event["timestamp"]).timestamp()
    else:
        assert e.ts == pytest.approx(NOW, abs=0.001)
    assert MIN_MS / 1000 <= e.ts <= NOW + DAY


def test_login_needs_the_anonymous_id_it_replaces():
    assert field_of(reason(json.dumps({"event_id": "e", "event_name": "login", "user_id": "acct"}))) == \
        "previous_user_id"
    e = parse_event(json.dumps({"event_id": "e", "event_name": "login", "user_id": "acct",
                                "previous_user_id": "anon-1"}).encode(), now=NOW)
    assert e.previous_user_id == "anon-1"
