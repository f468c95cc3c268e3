"""Public session datasets (clicks only) replayed as storefront events on our catalog.

Three formats are read into time-ordered :class:`Click` records:

* ``yoochoose``: tab-separated ``SessionId  ItemId  Time`` (epoch seconds), with a header;
* ``diginetica``: ``session_id;user_id;item_id;timeframe;eventdate`` with a header,
  ``user_id`` may be ``NA``;
* ``sequences``: one user per line, ``user_id item_id item_id ...``, no header, no times.

The datasets' item ids are not perfumes, so an :class:`ItemMapper` maps them onto catalog
ids, and :func:`to_events` turns the clicks into GA4-shaped events, with add-to-cart and
purchase events synthesized from a seed (the datasets have no conversions).

>>> import tempfile
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "clicks.txt"
>>> _ = path.write_text("SessionId\\tItemId\\tTime\\n1\\t10\\t100.5\\n2\\t20\\t50.0\\n1\\t20\\t101.0\\n")
>>> clicks = read_sessions(path)
>>> [(c.session_id, c.item_id, c.ts) for c in clicks]
[('2', '20', 50.0), ('1', '10', 100.5), ('1', '20', 101.0)]
>>> mapper = ItemMapper.from_clicks(clicks, ["chanel-no5", "dior-sauvage"])
>>> mapper("20"), mapper("10")
('chanel-no5', 'dior-sauvage')
>>> [(e["event_name"], e["session_id"], e["timestamp"]) for e in to_events(clicks, mapper, start=1.7e9)]
[('view_item', 's-2', 1700000000000), ('view_item', 's-1', 1700000001000), ('view_item', 's-1', 1700000002000)]
"""

from __future__ import annotations

import calendar
import heapq
import math
import random
import zlib
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Callable, Iterable, Iterator, Literal, Sequence

__all__ = ["Click", "Format", "ItemMapper", "read_sessions", "detect_format", "to_events"]

Format = Literal["yoochoose", "diginetica", "sequences"]


@dataclass(frozen=True, slots=True)
class Click:
    """One item view of a dataset session; ``ts`` is in epoch seconds."""

    session_id: str
    user_id: str | None
    item_id: str
    ts: float


def detect_format(first_line: str) -> Format:
    """The format of a file from its first line.

    >>> detect_format("SessionId\\tItemId\\tTime"), detect_format("session_id;user_id;item_id;timeframe;eventdate")
    ('yoochoose', 'diginetica')
    >>> detect_format("u1 10 11 12")
    'sequences'
    """
    if first_line.split("\t")[0].strip() == "SessionId":
        return "yoochoose"
    if "session_id" in first_line.strip().split(";"):
        return "diginetica"
    return "sequences"


def _row(fmt: Format, fields: list[str]) -> Click:
    if fmt == "yoochoose":
        session_id, item_id, time = fields
        ts = float(time)
        if not math.isfinite(ts):
            raise ValueError(f"time {time!r} is not a number")
        return Click(session_id, None, item_id, ts)
    session_id, user_id, item_id, timeframe, day = fields
    midnight = calendar.timegm(date.fromisoformat(day).timetuple())
    return Click(session_id, None if user_id == "NA" else user_id, item_id, midnight + int(timeframe) / 1000)


def _parse(path: Path, fmt: Format) -> Iterator[Click]:
    sep, width, header = {"yoochoose": ("\t", 3, "SessionId"), "diginetica": (";", 5, "session_id")}.get(
        fmt, (None, 0, None)
    )
    with open(path, encoding="utf-8") as f:
        for index, line in enumerate(f):
            fields = [x.strip() for x in line.split(sep)] if sep else line.split()
            if not line.strip() or (index == 0 and fields[0] == header):
                continue
            try:
                if sep is None:  # sequences
                    if len(fields) < 2:
                        raise ValueError("a user id and at least one item id expected")
                    yield from (Click(fields[0], fields[0], item, index * 3600.0 + pos * 30.0)
                                for pos, item in enumerate(fields[1:]))
                elif len(fields) != width or not all(fields):
                    raise ValueError(f"{width} non-empty {sep!r}-separated fields expected, got {len(fields)}")
                else:
                    yield _row(fmt, fields)
            except ValueError as err:
                raise ValueError(f"{path}, line {index + 1}: {err} in {line.rstrip()!r}") from None


def read_sessions(path: str | Path, fmt: Format | None = None) -> list[Click]:
    """Read a session file into clicks, in time order over the whole dataset.

    ``fmt=None`` detects the format from the first line (see :func:`detect_format`). Clicks
    with the same time keep their file order. A malformed line raises :class:`ValueError`
    naming the file and line number.

    Sequences have no times: the ``i``-th line (from 0) gets ``i * 3600 + position * 30`` seconds.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "seq.txt"
    >>> _ = path.write_text("u1 10 11\\nu2 12\\n")
    >>> [(c.user_id, c.item_id, c.ts) for c in read_sessions(path)]
    [('u1', '10', 0.0), ('u1', '11', 30.0), ('u2', '12', 3600.0)]
    >>> _ = path.write_text("session_id;user_id;item_id;timeframe;eventdate\\n1;NA;7;oops;2016-05-09\\n")
    >>> read_sessions(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: .../seq.txt, line 2: invalid literal for int() with base 10: 'oops' in '1;NA;7;oops;2016-05-09'
    """
    path = Path(path)
    if fmt is None:
        with open(path, encoding="utf-8") as f:
            fmt = detect_format(f.readline())
    if fmt not in ("yoochoose", "diginetica", "sequences"):
        raise ValueError(f"unknown session format {fmt!r}")
    return sorted(_parse(path, fmt), key=lambda c: c.ts)


class ItemMapper:
    """Map dataset item ids onto catalog ids, the same way in every run and process.

    Fitted ids (see :meth:`from_clicks`) map as assigned; other ids go to a catalog id
    chosen by a CRC-32 of the seed and the id (Python's ``hash`` is salted per process).

    >>> m = ItemMapper(["a", "b", "c"], seed=1)
    >>> m("214536502") == ItemMapper(["a", "b", "c"], seed=1)("214536502")
    True
    """

    def __init__(self, catalog_ids: Sequence[str], seed: int = 0) -> None:
        if not catalog_ids:
            raise ValueError("catalog_ids is empty")
        self.catalog_ids = list(catalog_ids)
        self.seed = seed
        self.assigned: dict[str, str] = {}

    @classmethod
    def from_clicks(cls, clicks: Iterable[Click], catalog_ids: Sequence[str], seed: int = 0) -> ItemMapper:
        """Give the most clicked dataset items the first catalog ids, one each.

        ``catalog_ids`` should be in order of preference (e.g. most reviewed first). Items are
        ranked by click count, ties by id; with more items than catalog ids the assignment
        wraps around.

        >>> clicks = [Click("s", None, i, 0.0) for i in ["x", "y", "y", "z", "z", "z"]]
        >>> m = ItemMapper.from_clicks(clicks, ["top", "second"])
        >>> m("z"), m("y"), m("x")
        ('top', 'second', 'top')
        """
        mapper = cls(catalog_ids, seed)
        counts = Counter(c.item_id for c in clicks)
        ranked = sorted(counts, key=lambda item: (-counts[item], item))
        n = len(mapper.catalog_ids)
        mapper.assigned = {item: mapper.catalog_ids[rank % n] for rank, item in enumerate(ranked)}
        return mapper

    def __call__(self, item_id: str) -> str:
        if (found := self.assigned.get(item_id)) is not None:
            return found
        return self.catalog_ids[zlib.crc32(f"{self.seed}:{item_id}".encode()) % len(self.catalog_ids)]


CART_RATE, PURCHASE_RATE = 0.25, 0.4


def to_events(
    clicks: Sequence[Click],
    mapper: Callable[[str], str],
    start: float,
    speedup: float | None = None,
    seed: int = 0,
    tag: str = "yc",
) -> Iterator[dict]:
    """Replay clicks as GA4-shaped event dicts, lazily and in timestamp order.

    The first click happens at ``start`` (epoch seconds). With ``speedup`` the dataset's gaps
    are divided by it; with ``None`` consecutive events are exactly one second apart. At the
    last click of a session an ``add_to_cart`` of that item follows one second later with
    probability 0.25, and of those, 40% get a ``purchase`` two seconds after the click
    (``random.Random(seed)``, so a seed always gives the same conversions).

    >>> clicks = [Click("1", "7", "10", 5.0), Click("1", "7", "11", 65.0)]
    >>> events = list(to_events(clicks, lambda i: "p" + i, start=1.7e9, speedup=60, seed=4))
    >>> [(e["event_id"], e["event_name"], e["user_id"], e["timestamp"]) for e in events]  # doctest: +NORMALIZE_WHITESPACE
    [('yc-1-0', 'view_item', 'u-7', 1700000000000), ('yc-1-1', 'view_item', 'u-7', 1700000001000),
     ('yc-1-cart', 'add_to_cart', 'u-7', 1700000002000), ('yc-1-purchase', 'purchase', 'u-7', 1700000003000)]
    >>> events[-1]["items"], events[-1]["transaction_id"]
    ([{'item_id': 'p11', 'quantity': 1}], 'yc-1-t')
    """
    if speedup is not None and speedup <= 0:
        raise ValueError(f"speedup must be positive, got {speedup}")
    clicks = sorted(clicks, key=lambda c: c.ts)
    last_click = {c.session_id: i for i, c in enumerate(clicks)}
    rng = random.Random(seed)
    seen: Counter[str] = Counter()
    pending: list[tuple[int, int, dict]] = []  # synthesized conversions: (ms, order, event)
    clock = start - 1.0  # time of the latest event, for speedup=None

    def event(name: str, suffix: str, click: Click, t: float) -> dict:
        return {
            "event_id": f"{tag}-{click.session_id}-{suffix}",
            "event_name": name,
            "user_id": f"u-{click.user_id or click.session_id}",
            "session_id": f"s-{click.session_id}",
            "timestamp": round(t * 1000),
            "items": [{"item_id": mapper(click.item_id), "quantity": 1}],
        }

    for i, click in enumerate(clicks):
        t = clock + 1.0 if speedup is None else start + (click.ts - clicks[0].ts) / speedup
        view = event("view_item", str(seen[click.session_id]), click, t)
        seen[click.session_id] += 1
        while pending and pending[0][0] <= view["timestamp"]:
            yield heapq.heappop(pending)[2]
        yield view
        clock = t
        if last_click[click.session_id] == i and rng.random() < CART_RATE:
            heapq.heappush(pending, (view["timestamp"] + 1000, 2 * i, event("add_to_cart", "cart", click, t + 1)))
            clock = t + 1
            if rng.random() < PURCHASE_RATE:
                purchase = event("purchase", "purchase", click, t + 2) | {"transaction_id": f"{tag}-{click.session_id}-t"}
                heapq.heappush(pending, (view["timestamp"] + 2000, 2 * i + 1, purchase))
                clock = t + 2
    while pending:
        yield heapq.heappop(pending)[2]
