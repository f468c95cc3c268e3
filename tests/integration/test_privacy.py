"""Privacy and access on the real broker: deletion, consent, login merge, admin tokens."""

from __future__ import annotations

import asyncio
import json
import urllib.request

from aiokafka import AIOKafkaConsumer

from .conftest import ADMIN_TOKEN, Worker, event, produce_events, wait_for

SAUVAGE = "53482"


def call(worker: Worker, method: str, path: str, token: str | None = None, body: bytes | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(worker.url + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def last_records(env, topic: str) -> dict:
    """The latest value per key of a topic (None for a tombstone)."""
    async def read():
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=env["PERSONA_BOOTSTRAP"], group_id=None,
                                    auto_offset_reset="earliest")
        await consumer.start()
        out = {}
        try:
            while batch := await consumer.getmany(timeout_ms=1500):
                for records in batch.values():
                    out.update({r.key: r.value for r in records})
        finally:
            await consumer.stop()
        return out
    return asyncio.run(read())


def test_a_deleted_user_leaves_nothing_readable(worker):
    user = "to-delete"
    produce_events(worker.env, [event(user, items=(SAUVAGE,)), event(user, "add_to_cart", items=(SAUVAGE,))])
    wait_for(lambda: worker.get(f"/users/{user}")[1].get("cart") == [SAUVAGE])
    key, changelog = f'"{user}"'.encode(), f"{worker.env['PERSONA_APP_ID']}-profiles-changelog"
    wait_for(lambda: last_records(worker.env, changelog).get(key), every=0.5)  # the profile was flushed
    assert call(worker, "DELETE", f"/users/{user}")[0] == 401
    assert call(worker, "DELETE", f"/users/{user}", token="wrong")[0] == 401
    status, body = call(worker, "DELETE", f"/users/{user}", token=ADMIN_TOKEN)
    assert status == 202 and body["user_id"] == user
    wait_for(lambda: worker.get(f"/users/{user}")[0] == 404)
    assert worker.get(f"/recommendations/{user}")[1]["fallback"] is True
    records = wait_for(lambda: (r := last_records(worker.env, changelog)).get(key) is None and r, every=0.5)
    assert key in records and records[key] is None, "the latest changelog record is a tombstone"
    deletions = last_records(worker.env, worker.env.settings.deletions_topic)
    assert json.loads(deletions[user.encode()])["user_id"] == user


def test_without_consent_only_aggregate_counts_are_kept(worker):
    produce_events(worker.env, [event("no-consent", "add_to_cart", items=("79931",), consent=False)
                                for _ in range(3)])
    produce_events(worker.env, [event("consenting", items=(SAUVAGE,))])
    wait_for(lambda: worker.get("/users/consenting")[0] == 200)
    assert worker.get("/users/no-consent")[0] == 404
    assert worker.get("/recommendations/no-consent")[1]["fallback"] is True
    trending = wait_for(lambda: [i for i in worker.get("/trending?n=50")[1]["items"] if i["item_id"] == "79931"])
    assert trending, "the anonymous carts still count for trending"

    produce_events(worker.env, [event("changes-mind", items=(SAUVAGE,))])
    wait_for(lambda: worker.get("/users/changes-mind")[0] == 200)
    produce_events(worker.env, [event("changes-mind", "search", search_term="x", consent=False)])
    wait_for(lambda: worker.get("/users/changes-mind")[0] == 404)


def test_login_merges_the_anonymous_profile_into_the_account(worker):
    anon, account = "anon-42", "account-42"
    produce_events(worker.env, [event(anon, items=(SAUVAGE,)), event(anon, "add_to_cart", items=("79931",)),
                                event(account, items=("12855",))])
    wait_for(lambda: worker.get(f"/users/{anon}")[1].get("cart") == ["79931"])
    wait_for(lambda: worker.get(f"/users/{account}")[0] == 200)
    produce_events(worker.env, [event(account, "login", previous_user_id=anon)])
    merged = wait_for(lambda: (p := worker.get(f"/users/{account}")[1]).get("cart") == ["79931"] and p)
    assert {r[0] for r in merged["recent"]} == {SAUVAGE, "79931", "12855"}
    assert merged["counts"]["view_item"] == 2 and merged["counts"]["login"] == 1
    wait_for(lambda: worker.get(f"/users/{anon}")[0] == 404)


def test_rules_are_admin_only_over_http(worker):
    rules = json.dumps({"version": "http-1", "rules": [{"name": "diverse", "then": [
        {"max_per": {"field": "brand", "k": 1}}]}]}).encode()
    assert call(worker, "PUT", "/rules", body=rules)[0] == 401
    assert call(worker, "PUT", "/rules", token=ADMIN_TOKEN, body=b'{"version": "x", "rules": []}')[0] == 400
    assert call(worker, "PUT", "/rules", token=ADMIN_TOKEN, body=rules)[0] == 202
    wait_for(lambda: worker.get("/rules")[1]["version"] == "http-1")
