"""The feedback loop and what operators read, on the real broker."""

from __future__ import annotations

import json
import time
import urllib.request

from .conftest import Worker, event, produce_events, wait_for

SAUVAGE = "53482"


def post(worker: Worker, path: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(worker.url + path, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_http_ingest_accepts_valid_events_and_dead_letters_the_rest(worker):
    good = event("http-user", items=(SAUVAGE,))
    status, body = post(worker, "/events", json.dumps({"events": [good]}).encode())
    assert (status, body) == (202, {"accepted": 1})
    wait_for(lambda: worker.get("/users/http-user")[0] == 200)

    dlq_before = worker.get("/health")[1]["counters"].get("dead_lettered", 0)
    bad = {"event_id": "x", "event_name": "view_item", "user_id": "http-user"}  # no items
    status, body = post(worker, "/events", json.dumps([event("http-user", "search", search_term="oud"), bad]).encode())
    assert status == 400 and body["accepted"] == 1
    assert body["rejected"] == [{"index": 1, "reason": "items: view_item needs at least one item"}]
    assert worker.get("/health")[1]["counters"]["dead_lettered"] == dlq_before + 1
    wait_for(lambda: worker.get("/users/http-user")[1]["counts"].get("search") == 1)

    assert post(worker, "/events", b"{not json")[0] == 400
    assert post(worker, "/events", json.dumps({"events": [good] * 1001}).encode())[0] == 400


def test_a_click_on_a_recommendation_is_attributed_to_its_generator(worker):
    user = "clicker"
    produce_events(worker.env, [event(user, items=(SAUVAGE,))])
    wait_for(lambda: worker.get(f"/users/{user}")[0] == 200)
    status, recs = worker.get(f"/recommendations/{user}?slot=home&n=5")
    assert status == 200
    wait_for(lambda: recs["rec_id"] in worker.get(f"/users/{user}")[1]["impressions"])
    clicked = recs["items"][0]
    produce_events(worker.env, [event(user, "select_item", items=(clicked["item_id"],), rec_id=recs["rec_id"]),
                                event(user, "add_to_cart", items=(clicked["item_id"],), rec_id=recs["rec_id"])])

    def row():
        rows = worker.get("/stats")[1]["strategies"]
        return next((r for r in rows if r["source"] == clicked["source"] and r["slot"] == "home"
                     and r["clicks"] >= 1 and r["carts"] >= 1), None)

    found = wait_for(row, timeout=10)
    assert found["impressions"] >= 1 and 0 < found["ctr"] <= 1
    metrics = urllib.request.urlopen(worker.url + "/metrics", timeout=10).read().decode()
    assert f'persona_engagement{{rate="ctr",slot="home",source="{clicked["source"]}"}}' in metrics


def test_the_same_list_asked_for_again_keeps_its_rec_id_and_is_one_impression(worker):
    user = "reloader"
    produce_events(worker.env, [event(user, items=(SAUVAGE,))])
    wait_for(lambda: worker.get(f"/users/{user}")[0] == 200)
    first = worker.get(f"/recommendations/{user}?n=5")[1]
    wait_for(lambda: first["rec_id"] in worker.get(f"/users/{user}")[1]["impressions"])  # its session's variant set

    before = worker.get("/health")[1]["counters"]
    again, once_more = (worker.get(f"/recommendations/{user}?n=5")[1] for _ in range(2))  # within the answer TTL
    assert again["rec_id"] == once_more["rec_id"] and again["items"] == once_more["items"]
    wait_for(lambda: again["rec_id"] in worker.get(f"/users/{user}")[1]["impressions"])
    time.sleep(0.5)  # a second impression of it, had one been logged, would be applied by now
    counters = worker.get("/health")[1]["counters"]
    assert counters["view_item_list"] == before["view_item_list"] + (again["rec_id"] != first["rec_id"])
    assert counters.get("duplicates", 0) == before.get("duplicates", 0)  # not logged twice either

    produce_events(worker.env, [event(user, items=(again["items"][0]["item_id"],))])  # a new event: a new list, with an id of its own
    after = wait_for(lambda: (r := worker.get(f"/recommendations/{user}?n=5")[1])["rec_id"] != again["rec_id"] and r)
    wait_for(lambda: after["rec_id"] in worker.get(f"/users/{user}")[1]["impressions"])


def test_operators_read_health_metrics_and_the_api_description(worker):
    assert worker.get("/health/live") == (200, {"live": True})
    assert worker.get("/health/ready")[1]["ready"] is True
    metrics = urllib.request.urlopen(worker.url + "/metrics", timeout=10).read().decode()
    for name in ("persona_events_total", "persona_dead_lettered_total", "persona_event_lag_seconds_bucket",
                 "persona_http_request_seconds_bucket", "persona_consumer_lag"):
        assert name in metrics, name
    status, spec = worker.get("/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    assert {"/recommendations/{user_id}", "/events", "/trending", "/metrics"} <= set(spec["paths"])
    stats = worker.get("/stats")[1]
    assert stats["workers"] == [worker.url] and stats["counters"]["applied"] > 0


def test_a_session_keeps_its_blend_variant_and_the_allocation_is_visible(worker):
    user = "explorer"
    produce_events(worker.env, [event(user, items=(SAUVAGE,))])
    wait_for(lambda: worker.get(f"/users/{user}")[0] == 200)
    first = worker.get(f"/recommendations/{user}")[1]
    wait_for(lambda: worker.get(f"/users/{user}")[1]["session"].get("variant") == first["variant"])
    assert {worker.get(f"/recommendations/{user}")[1]["variant"] for _ in range(5)} == {first["variant"]}
    rows = wait_for(lambda: [r for r in worker.get("/stats")[1]["strategies"]
                             if r["source"] == f"variant:{first['variant']}"])
    assert rows[0]["impressions"] >= len(first["items"])
    allocation = worker.get("/stats")[1]["allocation"]
    assert allocation["mode"] == "bandit"
    assert set(allocation["variants"]) == {"balanced", "focused", "popular"}
    assert abs(sum(v["share"] for v in allocation["variants"].values()) - 1) < 1e-9
