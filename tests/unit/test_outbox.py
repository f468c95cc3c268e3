"""What the ingest agent sends on per flush: summed per key, one record per partition, and the
item-keyed agents fold those records into the same state as one record per event did."""

from __future__ import annotations

from persona import feedback, trending
from persona.agents.ingest import Outbox, add_covisits, add_feedback, add_item_signals, owner_partition
from persona.covisit import apply_updates
from persona.pipeline import Effects

TOPICS = {"aggregates": "aggregates", "training": "training"}


def test_records_are_grouped_by_the_partition_of_their_key():
    box = Outbox(partitions=4)
    items = [f"item-{n}" for n in range(40)]
    box.add(Effects(True, item_signals=[(i, "view_item", 1, 100.0) for i in items]))
    box.add(Effects(True, feedback=[("trending", "home", "impressions", 1.0, 100.0)]))
    records = box.records(**TOPICS)
    assert len(records) == len({owner_partition(i, 4) for i in items + ["trending|home"]}) <= 4
    for topic, partition, value in records:
        assert topic == "aggregates" and set(value) <= {"item_signals", "feedback"}
        assert all(owner_partition(key, 4) == partition for per_key in value.values() for key in per_key)
    assert sorted(i for _, _, value in records for i in value.get("item_signals", {})) == sorted(items)
    assert [value["feedback"] for _, _, value in records if "feedback" in value] == [
        {"trending|home": [["impressions", 1.0, 100.0]]}]


def test_covisit_weights_are_summed_and_examples_keep_their_order():
    box = Outbox(partitions=1)
    box.add(Effects(True, covisit=[("a", "b", 0.5), ("a", "c", 1.0)], examples=[{"model": "cf", "user": "u"}]))
    box.add(Effects(True, covisit=[("a", "b", 0.25)], examples=[{"model": "forget", "user": "u"}]))
    records = dict((topic, value) for topic, _, value in box.records(**TOPICS))
    assert records["aggregates"] == {"covisit": {"a": {"b": 0.75, "c": 1.0}}}
    assert [e["model"] for e in records["training"]] == ["cf", "forget"]


def test_an_empty_outbox_sends_nothing():
    assert Outbox().records(**TOPICS) == []


def test_folding_a_batch_equals_folding_one_record_at_a_time():
    signals = [["view_item", 1, 1000.0], ["add_to_cart", 2, 1400.0], ["view_item", 1, 1900.0]]
    one_by_one = None
    for entry in signals:
        one_by_one = add_item_signals(one_by_one, [entry])
    assert add_item_signals(None, signals) == one_by_one
    assert one_by_one["counts"] == {"view_item": 2, "add_to_cart": 2}
    assert trending.score(one_by_one["windows"], 1900.0) > 0

    clicks = [["impressions", 1.0, 60.0], ["clicks", 1.0, 70.0], ["impressions", 1.0, 130.0]]
    expected = {}
    for kind, amount, ts in clicks:
        expected = feedback.add(expected, kind, amount, ts)
    assert add_feedback(None, clicks) == expected

    assert add_covisits({"b": 1.0}, {"b": 0.5, "c": 2.0}) == apply_updates({"b": 1.0}, [("b", 0.5), ("c", 2.0)])


def test_every_table_changelog_is_created_up_front():
    from persona.agents.topics import TABLES, topic_specs
    from persona.settings import Settings
    from persona.tables.state import CACHED_TABLES

    assert {cache.name for cache in CACHED_TABLES} == set(TABLES)
    names = {t.name: t for t in topic_specs(Settings(app_id="shop", partitions=6))}
    for cache in CACHED_TABLES:
        spec = names[f"shop-{cache.name}-changelog"]
        assert spec.num_partitions == 6 and spec.topic_configs["cleanup.policy"] == "compact"


def test_a_record_folds_each_kind_into_its_table_and_skips_what_it_does_not_know(monkeypatch):
    from types import SimpleNamespace

    from persona.agents import ingest
    from persona.tables.cache import WriteBehind

    caches = {kind: WriteBehind({}) for kind in ("item_signals", "covisit", "feedback")}
    monkeypatch.setattr(ingest, "FOLDS", {"item_signals": (caches["item_signals"], add_item_signals),
                                          "covisit": (caches["covisit"], add_covisits),
                                          "feedback": (caches["feedback"], add_feedback)})
    record = SimpleNamespace(message=SimpleNamespace(topic="aggregates", partition=0, offset=1))
    box = Outbox(partitions=1)
    box.add(Effects(True, item_signals=[("a", "view_item", 2, 100.0)], covisit=[("a", "b", 0.5)]))
    [(_, _, value)] = box.records(**TOPICS)
    touched = ingest.fold({**value, "unknown": {"x": 1}, "feedback": "not an object"}, record)
    assert touched == [caches["item_signals"], caches["covisit"]]
    assert caches["item_signals"].get("a")["counts"] == {"view_item": 2}
    assert caches["covisit"].get("a") == add_covisits(None, {"b": 0.5})
    assert caches["feedback"].get("trending|home") is None
