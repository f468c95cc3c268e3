"""The smallest complete path on the real broker: events in, RocksDB state, recommendations out."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import pytest
from aiokafka import AIOKafkaConsumer

from persona.catalog import default_catalog_path, read_catalog

from .conftest import Worker, event, produce_events, wait_for

CATALOG = {p.item_id: p for p in read_catalog(default_catalog_path())}
SAUVAGE = next(p.item_id for p in CATALOG.values() if p.brand == "DIOR" and p.name == "Sauvage")


def recs(worker: Worker, user: str, n: int = 10) -> dict:
    status, body = worker.get(f"/recommendations/{user}?n={n}")
    assert status == 200, body
    return body


def test_unknown_user_gets_best_sellers(worker):
    body = recs(worker, "nobody-yet", n=5)
    assert body["fallback"] is True and body["strategy"] == "best_sellers"
    assert len(body["items"]) == 5
    assert {"user_id", "rec_id", "strategy", "fallback", "items"} <= set(body)
    for item in body["items"]:
        assert item["item_id"] in CATALOG
        assert item["name"] == CATALOG[item["item_id"]].name and item["reasons"]


def test_view_changes_recommendations_within_a_second(worker):
    produce_events(worker.env, [event("warm-up", items=(SAUVAGE,))])
    wait_for(lambda: recs(worker, "warm-up")["fallback"] is False)

    before = recs(worker, "shopper-1")
    sent = time.monotonic()
    produce_events(worker.env, [event("shopper-1", items=(SAUVAGE,))])
    after = wait_for(lambda: (r := recs(worker, "shopper-1"))["fallback"] is False and r, timeout=5)
    took = time.monotonic() - sent
    print(f"view_item -> changed recommendations in {took * 1000:.0f} ms")
    assert took < 1.0
    assert before["fallback"] is True and after["fallback"] is False
    assert [i["item_id"] for i in after["items"]] != [i["item_id"] for i in before["items"]]
    assert SAUVAGE not in {i["item_id"] for i in after["items"]}, "the item just viewed is not recommended"
    assert "Sauvage" in after["items"][0]["reasons"][0]
    # related by content: most of the list shares the viewed perfume's family or notes
    viewed = CATALOG[SAUVAGE]
    related = [i for i in after["items"] if i["family"] == viewed.family
               or set(CATALOG[i["item_id"]].notes) & set(viewed.notes)]
    assert len(related) >= 8


def test_purchase_is_excluded_and_profile_is_kept(worker):
    user = "buyer-1"
    produce_events(worker.env, [event(user, items=(SAUVAGE,))])
    first = wait_for(lambda: (r := recs(worker, user))["fallback"] is False and r)
    top = first["items"][0]["item_id"]
    produce_events(worker.env, [event(user, "purchase", items=(top,), transaction_id="t-1")])
    wait_for(lambda: top in worker.get(f"/users/{user}")[1].get("purchased", []))
    assert top not in {i["item_id"] for i in recs(worker, user, n=100)["items"]}
    status, profile = worker.get(f"/users/{user}")
    assert status == 200
    assert profile["counts"] == {"view_item": 1, "purchase": 1}
    assert profile["session"]["id"] == f"s-{user}"


def test_duplicate_event_ids_are_applied_once(worker):
    e = event("dup-1", items=(SAUVAGE,))
    produce_events(worker.env, [e, e, e])
    wait_for(lambda: worker.get("/users/dup-1")[0] == 200)
    produce_events(worker.env, [event("dup-1", "search", search_term="oud")])
    profile = wait_for(lambda: (p := worker.get("/users/dup-1")[1]).get("counts", {}).get("search") and p)
    assert profile["counts"]["view_item"] == 1


def _dead_letters(env, want: int) -> list:
    async def read():
        consumer = AIOKafkaConsumer(env.settings.dlq_topic, bootstrap_servers=env["PERSONA_BOOTSTRAP"],
                                    group_id=None, auto_offset_reset="earliest")
        await consumer.start()
        got, deadline = [], time.monotonic() + 10
        try:
            while len(got) < want and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    got.extend(records)
        finally:
            await consumer.stop()
        return got
    return asyncio.run(read())


def test_malformed_events_go_to_the_dlq_and_the_worker_goes_on(worker):
    bad = [b'{"event_id": "x1", "event_name": "view_item"', b"\xff\xfe not utf-8",
           json.dumps({"event_id": "x2", "event_name": "teleport", "user_id": "dlq-1"}).encode()]
    produce_events(worker.env, bad)
    produce_events(worker.env, [event("after-bad", items=(SAUVAGE,))])
    wait_for(lambda: worker.get("/users/after-bad")[0] == 200)
    letters = _dead_letters(worker.env, want=3)
    assert sorted(r.value for r in letters) == sorted(bad), "the original bytes, unchanged"
    reasons = {r.value: dict(r.headers)["persona.reason"].decode() for r in letters}
    assert "Invalid JSON" in reasons[bad[0]]
    assert reasons[bad[2]].startswith("event_name:")
    assert all(dict(r.headers)["persona.received_at"].isdigit() for r in letters)
    assert worker.get("/health")[1]["counters"]["dead_lettered"] >= 3


@pytest.mark.parametrize("query, message", [
    ("n=0", "between 1 and 100"), ("n=101", "between 1 and 100"), ("n=ten", "whole number"), ("n=-3", "between"),
])
def test_bad_parameters_get_a_4xx_with_a_message(worker, query, message):
    status, body = worker.get(f"/recommendations/u?{query}")
    assert status == 400 and message in body["error"]


def test_unknown_profile_is_404(worker):
    status, body = worker.get("/users/never-seen")
    assert status == 404 and "never-seen" in body["error"]


def test_tail_prints_one_json_object_a_line_for_one_user(worker):
    produce_events(worker.env, [event("tailed", items=(SAUVAGE,)), event("other", items=(SAUVAGE,)),
                                event("tailed", "search", search_term="vanilla")])
    out = worker.env.run("tail", worker.env.settings.events_topic, "--from-beginning", "--user", "tailed",
                         "--max", "2", "--idle-exit", "10").stdout
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["value"]["event_name"] for r in lines] == ["view_item", "search"]
    assert all(r["key"] == "tailed" and r["topic"] == worker.env.settings.events_topic for r in lines)


def test_kcat_produces_and_reads_persona_topics(worker):
    """A client we did not write: librdkafka's default partitioner differs from Java's murmur2."""
    e = event("kcat-user", items=(SAUVAGE,))
    subprocess.run(["kcat", "-b", worker.env["PERSONA_BOOTSTRAP"], "-P", "-t", worker.env.settings.events_topic,
                    "-K", "\t"], input=f"kcat-user\t{json.dumps(e)}\n", text=True, check=True, timeout=30)
    wait_for(lambda: recs(worker, "kcat-user")["fallback"] is False)

    def changelogged() -> list[dict]:  # profiles reach the changelog at the next flush (PERSONA_FLUSH_EVERY)
        out = subprocess.run(["kcat", "-b", worker.env["PERSONA_BOOTSTRAP"], "-C", "-t",
                              f"{worker.env['PERSONA_APP_ID']}-profiles-changelog", "-e", "-J", "-q"],
                             capture_output=True, text=True, check=True, timeout=30).stdout
        return [r for r in map(json.loads, out.splitlines()) if r["key"] == '"kcat-user"']

    mine = wait_for(changelogged, every=0.5)
    assert json.loads(mine[-1]["payload"])["counts"] == {"view_item": 1}


def test_replay_feeds_profiles(worker):
    worker.env.run("replay", "--limit", "300", "--rate", "0")
    out = worker.env.run("tail", worker.env.settings.events_topic, "--from-beginning", "--max", "2000",
                         "--idle-exit", "3").stdout
    replayed = [json.loads(line)["value"] for line in out.splitlines()]
    users = {e["user_id"] for e in replayed if isinstance(e, dict) and e.get("event_id", "").startswith("yc")}
    assert len(users) > 20
    user = sorted(users)[0]
    wait_for(lambda: worker.get(f"/users/{user}")[0] == 200)
    assert all(i["item_id"] in CATALOG for i in recs(worker, user)["items"])
