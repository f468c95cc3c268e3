"""The worker's Prometheus registry and the histograms the agents and views observe."""

from __future__ import annotations

import gc
import time

from prometheus_client import CollectorRegistry, Histogram

__all__ = ["registry", "REQUEST_SECONDS", "EVENT_LAG_SECONDS", "GC_PAUSE_SECONDS"]

registry = CollectorRegistry()
REQUEST_SECONDS = Histogram("persona_http_request_seconds", "HTTP request latency", ["route"], registry=registry,
                            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
EVENT_LAG_SECONDS = Histogram("persona_event_lag_seconds", "From an event's Kafka timestamp to its processing",
                              registry=registry, buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 5, 30))
GC_PAUSE_SECONDS = Histogram("persona_gc_pause_seconds", "Python garbage collections: the event loop stops meanwhile",
                             ["generation"], registry=registry,
                             buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1))

_gc_started = 0.0


def _time_gc(phase: str, info: dict) -> None:
    global _gc_started
    if phase == "start":
        _gc_started = time.perf_counter()
    else:
        GC_PAUSE_SECONDS.labels(str(info["generation"])).observe(time.perf_counter() - _gc_started)


gc.callbacks.append(_time_gc)
