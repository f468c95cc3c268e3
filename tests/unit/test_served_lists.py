"""Served lists travel in batches, one impression a line, and the ingest agent takes them apart."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson

from persona.agents import ingest, topics
from persona.agents.app import settings
from persona.agents.ingest import owner_partition
from persona.rules import Candidate
from persona.web import views


class RecordingTopic:
    def __init__(self):
        self.sent: list[tuple[int, bytes]] = []

    async def send(self, key, value, partition):
        self.sent.append((partition, value))


async def test_the_lists_of_one_turn_of_the_loop_go_as_one_record_per_partition(monkeypatch):
    topic = RecordingTopic()
    monkeypatch.setattr(topics, "impressions", topic)
    served = views.ServedLists(linger=0.0)
    users = ["u1", "u2", "u3", "u4", "u5"]
    for n, user in enumerate(users):
        served.add(user, f"rec{n}", "home", "A", [Candidate("i1", 1.0, "trending", [])])
    assert topic.sent == []  # nothing before the turn ends
    await asyncio.sleep(0.01)
    assert len(topic.sent) == len({owner_partition(u) for u in users})
    lines = {(p, orjson.loads(line)["user_id"]) for p, value in topic.sent for line in value.split(b"\n")}
    assert lines == {(owner_partition(u), u) for u in users}
    before = len(topic.sent)
    served.add("u1", "rec9", None, "B", [])  # a later turn: a record of its own
    await asyncio.sleep(0.01)
    assert len(topic.sent) == before + 1
    partition, value = topic.sent[-1]
    assert partition == owner_partition("u1") and orjson.loads(value)["rec_id"] == "rec9"


async def test_lists_served_within_the_linger_share_a_record_per_partition(monkeypatch):
    topic = RecordingTopic()
    monkeypatch.setattr(topics, "impressions", topic)
    served = views.ServedLists(linger=0.2)
    served.add("u1", "rec1", None, "A", [])
    await asyncio.sleep(0.05)  # a later turn of the loop, within the linger
    served.add("u1", "rec2", None, "A", [])
    assert topic.sent == []
    await asyncio.sleep(0.3)
    assert [(p, [orjson.loads(line)["rec_id"] for line in v.split(b"\n")]) for p, v in topic.sent] == \
        [(owner_partition("u1"), ["rec1", "rec2"])]


async def test_each_line_of_a_served_record_is_applied_or_dead_lettered_alone(monkeypatch):
    applied, dead = [], []
    monkeypatch.setattr(ingest, "apply", lambda e, event, served: applied.append((e.rec_id, served)))

    async def dead_letter(key, value, reason, source):
        dead.append((value, source))
    monkeypatch.setattr(ingest, "dead_letter", dead_letter)
    good = orjson.dumps({"event_id": "r1", "event_name": "view_item_list", "user_id": "u1", "rec_id": "r1",
                         "items": [{"item_id": "i1", "index": 0, "item_list_id": "trending"}]})
    message = SimpleNamespace(topic=settings.impressions_topic, partition=owner_partition("u1"), offset=42,
                              timestamp=0.0, key=b"served", value=good + b"\n" + b"not json")
    await ingest.handle(SimpleNamespace(message=message))
    assert applied == [("r1", True)]
    assert dead == [(b"not json", f"{settings.impressions_topic}/{owner_partition('u1')}/42 line 2")]
