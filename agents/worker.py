"""Everything a worker runs, imported explicitly (Faust's autodiscover hides import errors)."""

from persona.agents import ingest, trainer  # noqa: F401  (agents)
from persona.agents.app import app
from persona.tables import state  # noqa: F401  (tables and replicas)
from persona.web import admin, events, ops, openapi, pages, views  # noqa: F401  (HTTP API and pages)

__all__ = ["app"]
