"""Prometheus metrics of a worker (``GET /metrics``).

Counters that the agents keep anyway are read at scrape time; engagement per generator comes from
the feedback table's copy, model figures from the model snapshots, so every worker reports the same
rates and its own event counts.
"""

from __future__ import annotations

import time

from faust.types import TP
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from persona import feedback
from persona.agents.app import app
from persona.agents.ingest import counters, positions
from persona.agents.metrics import REQUEST_SECONDS, registry
from persona.tables.state import models, strategy_stats_everywhere

__all__ = ["render", "observe_request"]

RATES = ("ctr", "cart_rate", "conversion", "revenue_per_1000")
SKIP = {"applied", "dead_lettered", "duplicates", "repartitioned"}


class StreamCollector:
    def collect(self):
        events = CounterMetricFamily("persona_events", "Events applied, by name", labels=["event"])
        for name, n in counters.items():
            if name not in SKIP and not name.startswith("intent_"):
                events.add_metric([name], n)
        yield events
        for name, help_text in [("dead_lettered", "Events sent to the dead-letter topic"),
                                ("duplicates", "Events ignored as already applied"),
                                ("repartitioned", "Events moved to their user's partition")]:
            yield CounterMetricFamily(f"persona_{name}", help_text, value=counters[name])
        lag = GaugeMetricFamily("persona_consumer_lag", "Records not yet processed", labels=["topic", "partition"])
        for (topic, partition), offset in positions.items():
            try:
                end = app.consumer.highwater(TP(topic, partition))
            except Exception:  # partition revoked, or no highwater known yet
                continue
            lag.add_metric([topic, str(partition)], max(end - offset - 1, 0))
        yield lag
        rates = GaugeMetricFamily("persona_engagement", "Engagement per generator and slot",
                                  labels=["source", "slot", "rate"])
        for key, stats in strategy_stats_everywhere.data.items():
            row = feedback.summary(key, stats)
            for rate in RATES:
                if row[rate] is not None:
                    rates.add_metric([row["source"], row["slot"], rate], row[rate])
        yield rates
        figures = GaugeMetricFamily("persona_model", "Prequential model figures", labels=["model", "figure"])
        for name, model in models.data.items():
            figures.add_metric([name, "version"], model.version)
            for figure, value in (model.metrics() if hasattr(model, "metrics") else {}).items():
                if isinstance(value, (int, float)):
                    figures.add_metric([name, figure], value)
        yield figures


registry.register(StreamCollector())


def render() -> bytes:
    return generate_latest(registry)


def observe_request(route: str, started: float) -> None:
    REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)
