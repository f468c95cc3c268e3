"""The one Faust application of persona. Agents, tables and views import ``app`` from here."""

from __future__ import annotations

import gc

import faust
from aiohttp_cors import ResourceOptions

from persona.agents import rebalance
from persona.agents.durability import DurableApp
from persona.settings import Settings

__all__ = ["app", "settings"]

settings = Settings.from_env()


class ServiceWorker(faust.Worker):
    """Faust's worker without its terminal spinner, and with fewer young-generation collections.

    For a log level of warn or above, Faust's worker lowers the root logger to DEBUG so that every
    record turns the spinner; every debug call in aiokafka and Faust then builds a record that the
    handler drops. A Faust no-op agent at 650 events/s used 58 % of a core with ``-l warn``, 46 %
    with ``-l info`` (BENCHMARKS.md).
    """

    YOUNG_GC_THRESHOLD = 10_000  # Python's default, 700, collected ~9 times a second at 250 events/s

    def on_setup_root_logger(self, logger, level: int) -> None:
        self.spinner = None  # no spinner handler: the root logger keeps the level asked for

    async def on_first_start(self) -> None:
        # Most objects of an event or a request die young, freed by reference counting: a collection
        # every 10,000 allocations instead of 700 scans far fewer of them (510 ms -> 60-95 ms of
        # collections in 45 s at 250 events/s).
        gc.set_threshold(self.YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
        await super().on_first_start()


def _credentials():
    """Faust's form of the broker security settings (None: PLAINTEXT)."""
    options = settings.client_options()
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(username=settings.sasl_username, password=settings.sasl_password,
                                     mechanism=settings.sasl_mechanism, ssl_context=options.get("ssl_context"))
    if settings.security_protocol == "SSL":
        return faust.SSLCredentials(options["ssl_context"])
    return None


app = DurableApp(  # commits wait for the changelogs; see durability.py
    settings.app_id,
    broker=settings.broker_url,
    broker_credentials=_credentials(),
    store="rocksdb://",
    autodiscover=False,  # modules are imported explicitly by persona.agents.worker
    topic_partitions=settings.partitions,
    topic_replication_factor=settings.replication,
    web_host=settings.web_host,
    web_port=settings.web_port,
    canonical_url=f"http://{settings.web_host}:{settings.web_port}",
    key_serializer="raw",
    value_serializer="raw",
    table_standby_replicas=settings.standby_replicas,
    # with the address in it: Faust refuses a remembered assignment made for another address
    consumer_group_instance_id=f"{settings.instance_id}@{settings.web_host}:{settings.web_port}"
    if settings.instance_id else None,
    Worker=ServiceWorker,
    TableManager="persona.agents.restore:BulkRestoringTables",  # far-behind tables copied in bulk first
    # The changelog and forwarded records share the event loop with the agents: let the
    # producer batch them instead of sending one request per record.
    producer_linger=0.01,
    broker_max_poll_records=settings.max_poll_records or None,
    consumer_max_fetch_size=settings.fetch_bytes,
    producer_max_request_size=32 * 1024 * 1024,  # model snapshots (see topics.MODEL_BYTES)
    web_cors_options={origin.strip(): ResourceOptions(allow_headers="*", expose_headers="*", allow_methods="*")
                      for origin in settings.cors_origins.split(",") if origin.strip()},
)
rebalance.install()
