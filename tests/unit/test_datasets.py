"""Session datasets: the three formats, format detection, the item mapper and the event replay."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from persona.catalog import data_dir
from persona.datasets import Click, ItemMapper, detect_format, read_sessions, to_events
from persona.events import parse_event

START = 1_800_000_000.0
YOOCHOOSE = "SessionId\tItemId\tTime\n1\t10\t100.5\n2\t20\t50.25\n1\t11\t160.0\n2\t10\t50.25\n"
DIGINETICA = (
    "session_id;user_id;item_id;timeframe;eventdate\n"
    "1;NA;81766;526309;2016-05-09\n"
    "1;NA;31331;1031018;2016-05-09\n"
    "1;NA;32118;243569;2016-05-09\n"
    "2;99;9654;75848;2016-05-08"  # the real file has no newline at the end either
)
SEQUENCES = "u1 10 11 12\n\nu2 11\n"


def write(tmp_path: Path, text: str, name: str = "data.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_yoochoose_is_read_in_time_order_keeping_file_order_for_ties(tmp_path):
    clicks = read_sessions(write(tmp_path, YOOCHOOSE), "yoochoose")
    assert clicks == [
        Click("2", None, "20", 50.25),
        Click("2", None, "10", 50.25),
        Click("1", None, "10", 100.5),
        Click("1", None, "11", 160.0),
    ]


def test_diginetica_times_are_midnight_utc_plus_timeframe_and_na_is_no_user(tmp_path):
    clicks = read_sessions(write(tmp_path, DIGINETICA, "views.csv"), "diginetica")
    may_9 = 1462752000  # 2016-05-09T00:00:00Z
    assert [(c.session_id, c.user_id, c.item_id) for c in clicks] == [
        ("2", "99", "9654"), ("1", None, "32118"), ("1", None, "81766"), ("1", None, "31331"),
    ]
    assert clicks[0].ts == pytest.approx(may_9 - 86400 + 75.848)
    assert clicks[1].ts == pytest.approx(may_9 + 243.569)
    assert clicks[3].ts == pytest.approx(may_9 + 1031.018)


def test_sequences_get_one_user_per_line_and_synthetic_ordered_times(tmp_path):
    clicks = read_sessions(write(tmp_path, SEQUENCES), "sequences")
    assert [(c.session_id, c.user_id, c.item_id) for c in clicks] == [
        ("u1", "u1", "10"), ("u1", "u1", "11"), ("u1", "u1", "12"), ("u2", "u2", "11"),
    ]
    assert [c.ts for c in clicks] == [0.0, 30.0, 60.0, 2 * 3600.0]  # the blank line still counts


@pytest.mark.parametrize(
    ("text", "fmt"), [(YOOCHOOSE, "yoochoose"), (DIGINETICA, "diginetica"), (SEQUENCES, "sequences")]
)
def test_format_is_detected_from_the_first_line(tmp_path, text, fmt):
    path = write(tmp_path, text)
    assert detect_format(text.splitlines()[0]) == fmt
    assert read_sessions(path) == read_sessions(path, fmt)


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown session format 'csv'"):
        read_sessions(write(tmp_path, YOOCHOOSE), "csv")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("SessionId\tItemId\tTime\n1\t10\t100.5\n1\t11\n", 3, "3 non-empty '\\\\t'-separated fields expected, got 2"),
        ("SessionId\tItemId\tTime\n1\t10\tsoon\n", 2, "could not convert string to float: 'soon'"),
        ("SessionId\tItemId\tTime\n1\t10\tnan\n", 2, "time 'nan' is not a number"),
        (DIGINETICA.replace("2016-05-08", "2016-13-08"), 5, "month must be in 1..12"),
        (DIGINETICA.replace("1;NA;31331;1031018", "1;NA;;1031018"), 3, "5 non-empty ';'-separated fields"),
        ("u1 10\nu2\n", 2, "a user id and at least one item id expected"),
    ],
)
def test_a_bad_line_is_reported_with_file_and_line_number(tmp_path, text, line, reason):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=f"data.txt, line {line}: {reason}"):
        read_sessions(path)


def _real(name: str) -> Path:
    path = data_dir() / "sessions" / name
    if not path.is_file():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.mark.parametrize(
    ("name", "fmt", "events", "sessions", "items"),
    [
        ("yoochoose-clicks-100k_test.txt", "yoochoose", 13568, 3416, 1771),
        ("diginetica-sample-train-item-views.csv", "diginetica", 12391, 2986, 7139),
    ],
)
def test_the_shared_files_have_the_documented_counts(name, fmt, events, sessions, items):
    clicks = read_sessions(_real(name))
    assert detect_format(_real(name).open().readline()) == fmt
    assert len(clicks) == events
    assert len({c.session_id for c in clicks}) == sessions
    assert len({c.item_id for c in clicks}) == items
    assert all(a.ts <= b.ts for a, b in zip(clicks, clicks[1:]))
    if fmt == "diginetica":
        assert sum(c.user_id is not None for c in clicks) == 4710
        assert len({c.user_id for c in clicks} - {None}) == 1270


def test_the_hash_fallback_is_the_same_in_another_process():
    ids = [str(214536500 + i) for i in range(50)]
    here = [ItemMapper(["a", "b", "c", "d", "e"], seed=7)(i) for i in ids]
    code = (
        "import json, sys; from persona.datasets import ItemMapper; "
        "m = ItemMapper(['a', 'b', 'c', 'd', 'e'], seed=7); print(json.dumps([m(i) for i in sys.argv[1:]]))"
    )
    there = subprocess.run(
        [sys.executable, "-c", code, *ids], capture_output=True, text=True, check=True,
        env={"PYTHONHASHSEED": "12345", "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert json.loads(there.stdout) == here
    assert here == [ItemMapper(["a", "b", "c", "d", "e"], seed=7)(i) for i in ids]  # a second instance
    assert len(set(here)) == 5  # it spreads
    assert here != [ItemMapper(["a", "b", "c", "d", "e"], seed=8)(i) for i in ids]  # the seed matters


def test_frequent_items_get_distinct_preferred_catalog_ids_and_wrap_around():
    counts = {"a": 9, "b": 7, "c": 7, "d": 3, "e": 1}
    clicks = [Click("s", None, item, 0.0) for item, n in counts.items() for _ in range(n)]
    catalog = ["best", "second", "third", "fourth"]
    mapper = ItemMapper.from_clicks(clicks, catalog)
    assert [mapper(i) for i in "abcd"] == catalog  # by count, ties by id
    assert mapper("e") == "best"  # five items, four perfumes: wraps around
    assert ItemMapper.from_clicks(reversed(clicks), catalog).assigned == mapper.assigned
    assert mapper("never-seen") == ItemMapper(catalog)("never-seen")


def test_on_the_real_data_the_top_items_are_all_distinct():
    clicks = read_sessions(_real("yoochoose-clicks-100k_test.txt"))
    catalog = [f"p{i}" for i in range(500)]
    mapper = ItemMapper.from_clicks(clicks, catalog)
    counts = Counter(c.item_id for c in clicks)
    cut = sorted(counts.values(), reverse=True)[499]
    top = [item for item, n in counts.items() if n > cut]  # surely among the 500 most clicked
    assert 400 < len(top) <= 500
    assert len({mapper(i) for i in top}) == len(top)
    assert {mapper(i) for i in counts} == set(catalog)  # 1771 items: every perfume is used


def test_an_empty_catalog_is_refused():
    with pytest.raises(ValueError, match="empty"):
        ItemMapper([])


def _clicks(sessions: int = 200) -> list[Click]:
    """``sessions`` interleaved sessions of 3 clicks each, 10 s apart within a session."""
    return sorted(
        (Click(str(s), "42" if s % 2 else None, str(s * 10 + k), 1000.0 + s * 3 + k * 10)
         for s in range(sessions) for k in range(3)),
        key=lambda c: c.ts,
    )


@pytest.mark.parametrize("speedup", [None, 1.0, 4.0, 1000.0])
def test_events_are_valid_time_ordered_unique_and_start_at_start(speedup):
    clicks = _clicks()
    events = list(to_events(clicks, ItemMapper(["p1", "p2", "p3"]), START, speedup=speedup, seed=1, tag="dn"))
    stamps = [e["timestamp"] for e in events]
    assert stamps[0] == START * 1000
    assert stamps == sorted(stamps)
    assert all(isinstance(t, int) for t in stamps)
    assert len({e["event_id"] for e in events}) == len(events)
    assert all(e["event_id"].startswith("dn-") for e in events)
    views = [e for e in events if e["event_name"] == "view_item"]
    assert len(views) == len(clicks)
    if speedup is None:
        assert [b - a for a, b in zip(stamps, stamps[1:])] == [1000] * (len(events) - 1)
    else:
        assert [v["timestamp"] for v in views] == [round((START + (c.ts - 1000.0) / speedup) * 1000) for c in clicks]
    for e in events:
        json.dumps(e)
        parsed = parse_event(json.dumps(e).encode(), now=START + 10**6)
        assert parsed.ts == e["timestamp"] / 1000


def test_each_click_becomes_a_view_of_the_mapped_item_by_the_right_user():
    clicks = [Click("7", None, "10", 5.0), Click("8", "42", "11", 6.0)]
    events = list(to_events(clicks, {"10": "p10", "11": "p11"}.get, START, seed=0))
    assert events[:2] == [
        {"event_id": "yc-7-0", "event_name": "view_item", "user_id": "u-7", "session_id": "s-7",
         "timestamp": 1_800_000_000_000, "items": [{"item_id": "p10", "quantity": 1}]},
        {"event_id": "yc-8-0", "event_name": "view_item", "user_id": "u-42", "session_id": "s-8",
         "timestamp": 1_800_000_001_000, "items": [{"item_id": "p11", "quantity": 1}]},
    ]


def test_conversions_follow_the_last_click_of_a_session_and_are_seeded():
    clicks = _clicks(2000)
    mapper = ItemMapper(["p1", "p2", "p3", "p4"])
    events = list(to_events(clicks, mapper, START, speedup=2.0, seed=5))
    last = {c.session_id: c for c in clicks}
    views = {e["event_id"]: e for e in events if e["event_name"] == "view_item"}
    carts = [e for e in events if e["event_name"] == "add_to_cart"]
    purchases = [e for e in events if e["event_name"] == "purchase"]
    assert 0.2 < len(carts) / 2000 < 0.3
    assert 0.3 < len(purchases) / len(carts) < 0.5
    carted = {e["session_id"] for e in carts}
    for e in carts + purchases:
        session = e["session_id"].removeprefix("s-")
        view = views[f"yc-{session}-2"]  # the session's last click
        assert e["items"] == [{"item_id": mapper(last[session].item_id), "quantity": 1}] == view["items"]
        assert e["user_id"] == view["user_id"]
        offset = 1000 if e["event_name"] == "add_to_cart" else 2000
        assert e["timestamp"] == view["timestamp"] + offset
    for e in purchases:
        assert e["session_id"] in carted
        assert e["transaction_id"] == f"yc-{e['session_id'].removeprefix('s-')}-t"
    assert len({e["transaction_id"] for e in purchases}) == len(purchases)
    assert list(to_events(clicks, mapper, START, speedup=2.0, seed=5)) == events
    assert list(to_events(clicks, mapper, START, speedup=2.0, seed=6)) != events


def test_the_replay_is_lazy():
    class Mapper:
        calls = 0

        def __call__(self, item_id: str) -> str:
            self.calls += 1
            return "p1"

    mapper = Mapper()
    events = to_events(_clicks(1000), mapper, START)
    assert mapper.calls == 0
    next(events)
    assert mapper.calls == 1


def test_a_speedup_must_be_positive():
    with pytest.raises(ValueError, match="speedup must be positive"):
        next(to_events(_clicks(1), ItemMapper(["p1"]), START, speedup=0))
