"""Two workers share the partitions; either one answers correctly for any user."""

from __future__ import annotations

from persona.agents.ingest import owner_partition

from .conftest import Env, Worker, event, models_settled, produce_events, wait_for


def test_any_worker_answers_for_any_user(deployment, tmp_path):
    partitions = deployment.settings.partitions
    users = [f"pair-{i}" for i in range(40)]
    assert len({owner_partition(u, partitions) for u in users}) == partitions, "users on every partition"
    # A fixed split of sessions over the blend variants: the bandit's choice follows the click
    # statistics, which every served list changes, so two asks in a row could differ by design.
    env = Env({**deployment, "PERSONA_ALLOCATION": "ab"})
    a = Worker(env, tmp_path / "a").start()
    b = Worker(env, tmp_path / "b").start()
    try:
        # both workers ready and every partition assigned to one of them
        def settled():
            return all(w.get("/health")[1].get("status") == "ok" for w in (a, b)) and \
                all(w.get(f"/users/{users[0]}")[0] in (200, 404) for w in (a, b))
        wait_for(settled, timeout=60, every=0.5)
        produce_events(deployment, [event(u, items=("12855",)) for u in users])
        produce_events(deployment, [event(u, "add_to_cart", items=("79931",)) for u in users[::2]])
        for w in (a, b):
            wait_for(lambda: all(w.get(f"/users/{u}")[0] == 200 for u in users), timeout=30, every=0.2)
        models_settled(a, b, expect=("cf", "intent"))
        for u in users:
            pa, pb = a.get(f"/users/{u}"), b.get(f"/users/{u}")
            assert pa == pb, u
            assert pa[1]["counts"].get("add_to_cart", 0) == (1 if u in users[::2] else 0)
            ra, rb = a.get(f"/recommendations/{u}")[1], b.get(f"/recommendations/{u}")[1]
            assert ra["fallback"] is rb["fallback"] is False and ra["variant"] == rb["variant"]
            assert [i["item_id"] for i in ra["items"]] == [i["item_id"] for i in rb["items"]]
        owners = {}
        for u in users:
            (_, _, ha), (_, _, hb) = a.fetch(f"/users/{u}"), b.fetch(f"/users/{u}")
            assert ha["X-Persona-Served-By"] == hb["X-Persona-Served-By"], "one owner, whoever is asked"
            owners.setdefault(owner_partition(u, partitions), set()).add(ha["X-Persona-Served-By"])
        assert all(len(o) == 1 for o in owners.values()), "a partition has one owner"
        assert {o.pop() for o in owners.values()} == {a.url, b.url}, "both workers own partitions"
    finally:
        a.stop()
        b.stop()
