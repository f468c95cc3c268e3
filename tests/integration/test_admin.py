"""``POST /admin/reset`` on the real broker: refused without the token, zeroes engagement, starts models afresh."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from persona.feedback import KINDS

from .conftest import ADMIN_TOKEN, Worker, event, models_settled, produce_events, wait_for

SAUVAGE = "53482"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def reset(worker: Worker, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(worker.url + "/admin/reset", data=body, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_a_reset_needs_the_admin_token(worker):
    for headers in ({}, {"Authorization": "Bearer not-the-token"}, {"Authorization": ADMIN_TOKEN + "x"}):
        status, body = reset(worker, b'{"engagement": true}', headers)
        assert status == 401 and "admin token" in body["error"], (headers, status, body)


def test_a_bad_reset_gets_a_400_that_says_why(worker):
    for raw, reason in [(b"{}", "nothing to reset"), (b'{"models": ["knn"]}', "models.0"),
                        (b'{"engagement": "yes"}', "engagement"), (b"not json", "Invalid JSON")]:
        status, body = reset(worker, raw, AS_ADMIN)
        assert status == 400 and reason in body["error"], (raw, status, body)


def clicked_recommendation(worker: Worker, user: str) -> dict:
    """A shopper views a product, gets recommendations, clicks and carts the first one."""
    produce_events(worker.env, [event(user, items=(SAUVAGE,))])
    wait_for(lambda: worker.get(f"/users/{user}")[0] == 200)
    recs = worker.get(f"/recommendations/{user}?slot=home&n=5")[1]
    wait_for(lambda: recs["rec_id"] in worker.get(f"/users/{user}")[1]["impressions"])
    item = recs["items"][0]
    produce_events(worker.env, [event(user, "select_item", items=(item["item_id"],), rec_id=recs["rec_id"]),
                                event(user, "add_to_cart", items=(item["item_id"],), rec_id=recs["rec_id"])])
    return item


def test_a_reset_zeroes_engagement_and_starts_the_models_afresh(worker):
    item = clicked_recommendation(worker, "reset-shopper")
    wait_for(lambda: any(r["source"] == item["source"] and r["slot"] == "home" and r["clicks"] >= 1
                         and r["carts"] >= 1 for r in worker.get("/stats")[1]["strategies"]), timeout=20)
    wait_for(lambda: (m := worker.get("/models")[1]) and m.get("reranker", {}).get("examples", 0) >= 1
             and m.get("intent", {}).get("examples", 0) >= 1 and m.get("cf", {}).get("version", 0) >= 1, timeout=30)
    before = models_settled(worker)

    status, body = reset(worker, b'{"engagement": true}', AS_ADMIN)
    assert status == 202 and body["engagement"] is True and body["models"] == [] and body["engagement_keys"] >= 1

    def all_zero():
        stats = worker.get("/stats")[1]
        rows = stats["strategies"]
        return rows and all(r[kind] == 0 for r in rows for kind in KINDS) and not stats["recent"] and rows

    rows = wait_for(all_zero, timeout=20)
    assert {(r["source"], r["slot"]) for r in rows} >= {(item["source"], "home")}
    assert worker.get("/models")[1] == before  # an engagement reset leaves the models alone

    status, body = reset(worker, b'{"models": ["intent", "reranker", "cf"]}', AS_ADMIN)
    assert (status, body["models"], body["engagement"]) == (202, ["intent", "reranker", "cf"], False)
    wait_for(lambda: all(worker.get("/models")[1][name]["version"] > before[name]["version"] for name in before),
             timeout=20)
    after = models_settled(worker)  # and stays: the old snapshots do not come back
    for name in ("intent", "reranker", "cf"):
        assert after[name]["version"] > before[name]["version"], (name, before, after)
    for name in ("intent", "reranker"):
        assert after[name]["examples"] == 0 and after[name]["log_loss"] is None, (name, after)
    assert worker.get("/stats")[1]["models"] == after

    # learning and counting go on from zero
    item = clicked_recommendation(worker, "after-reset")
    grown = wait_for(lambda: (m := worker.get("/models")[1])["reranker"]["examples"] >= 1 and m, timeout=30)
    assert grown["reranker"]["version"] > after["reranker"]["version"]
    row = wait_for(lambda: next((r for r in worker.get("/stats")[1]["strategies"]
                                 if r["source"] == item["source"] and r["slot"] == "home" and r["clicks"] >= 1), None))
    assert row["clicks"] == 1
