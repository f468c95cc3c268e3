"""The HTTP API fuzzed from its own OpenAPI document: no server error, answers as documented.

Every operation of ``GET /openapi.json`` gets schema-valid and schema-violating requests generated
by schemathesis (derandomized, so a run is repeatable); the admin operations get them with the
admin token too. Each answer must have a documented status, content type and body, never a
5xx, and the worker must still run and be ready afterwards.
"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from .conftest import ADMIN_TOKEN, Worker

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 6  # per operation, mode and credential: generating rule sets and event batches is slow
POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
AS_ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SAUVAGE = "53482"  # a catalog item: generated ids are never in the catalog, so give one


def is_admin(operation) -> bool:
    return "security" in operation.definition.raw


def plan(operation, as_admin: bool) -> list[tuple[schemathesis.GenerationMode, dict]]:
    """(mode, fixed parts) to fuzz an operation with. Schema-violating requests need something to
    violate: a query parameter, a body or a credential (a path segment cannot be sent empty). Without
    the token an admin operation must refuse whatever the body, so one cheap body will do."""
    raw = operation.definition.raw
    if is_admin(operation) and not as_admin:
        return [(POSITIVE, {"body": {}} if "requestBody" in raw else {})]
    violable = len(operation.query) or "requestBody" in raw or is_admin(operation)
    out = [(POSITIVE, {}), (NEGATIVE, {})] if violable else [(POSITIVE, {})]
    where = {p["in"] for p in raw.get("parameters", []) if p["name"] == "item_id"}
    if where & {"path", "query"}:
        out.append((POSITIVE, {"path_parameters" if "path" in where else "query": {"item_id": SAUVAGE}}))
    return out


def fuzz(worker: Worker, operation, mode, fixed: dict, headers: dict[str, str], session: requests.Session) -> int:
    """Send generated requests to one operation; how many. Fails on the first answer a check rejects."""
    sent = 0

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    def run(case):
        nonlocal sent
        case.call_and_validate(base_url=worker.url, session=session, headers=headers, checks=CHECKS, timeout=30)
        sent += 1

    run()
    return sent


@pytest.fixture(scope="module")
def operations(worker):
    schema = schemathesis.openapi.from_url(f"{worker.url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


# With the token first: the fuzzed rule sets and resets it publishes are then served to the rest.
@pytest.mark.parametrize("as_admin", [True, False], ids=["admin", "anonymous"])
def test_every_operation_answers_fuzzed_requests_as_documented(worker, operations, as_admin):
    chosen = [op for op in operations if is_admin(op)] if as_admin else operations
    assert len(chosen) >= (3 if as_admin else 17), [op.label for op in operations]
    sent = 0
    with requests.Session() as session:
        for operation in chosen:
            for mode, fixed in plan(operation, as_admin):
                sent += fuzz(worker, operation, mode, fixed, AS_ADMIN if as_admin else {}, session)
    assert sent >= len(chosen) * 2
    assert worker.proc.poll() is None, worker.tail_log()
    assert worker.get("/health/ready")[0] == 200
    assert "Traceback" not in worker.log.read_text(errors="replace"), worker.tail_log(80)
