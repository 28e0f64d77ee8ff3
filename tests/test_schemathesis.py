"""Schemathesis against the OpenAPI schema, in-process through the real application.

Every operation of ``/openapi.json`` is called with data generated from its schema,
valid and invalid (Schemathesis' positive and negative modes), and every answer goes
through all of Schemathesis' checks: no server error, status code, content type,
headers and body as the schema documents them, invalid data refused, valid data
accepted. A stateful run then follows the schema's OpenAPI links (a submitted
record's ``index`` and ``leaf_hash`` to its entry, receipt and proofs).

The log is a real one (SQLite in a temporary directory, a running sequencer) that
already holds a few records, so reads find entries, statements and signatories.

Examples per operation: ``LEDGER_FUZZ_EXAMPLES`` (default 25, what CI runs); the
generation is derandomized, so a run is reproducible.
"""

from __future__ import annotations

import functools
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest
import schemathesis
from conftest import ORIGIN
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.schemas import OpenApiSchema
from test_api_support import BASE, now_maker

from api.app import build_app
from api.server import prepare
from api.settings import Settings

EXAMPLES = int(os.environ.get("LEDGER_FUZZ_EXAMPLES", "25"))


def _seed(app: FastAPI) -> None:
    """A registration, a statement and an endorsement, so that reads have something."""
    m = now_maker()
    reg = m.register("alice", domain="example.org", country="FR")
    stmt = m.statement(["alice"], title="Seeded statement")
    records = [reg, stmt, m.endorse("alice", stmt.record_id, comment="Yes.")]
    with anyio.from_thread.start_blocking_portal() as portal:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        try:
            for record in records:
                r = portal.call(
                    functools.partial(client.post, "/api/v1/records", content=record.encode())
                )
                assert r.status_code == 201, r.text
        finally:
            portal.call(client.aclose)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    data_dir: Path = tmp_path_factory.mktemp("schemathesis")
    cfg = Settings(
        data_dir=data_dir,
        origin=ORIGIN,
        database_url=f"sqlite:///{data_dir / 'ledger.db'}",
        rate_limit_rps=0,  # rate limits have their own tests (test_hostile_http.py)
        batch_max_ms=1,
        max_batch_records=50,
    )
    service = prepare(cfg)
    try:
        # The sequencer runs for the module; the application has no lifespan of its own,
        # so Schemathesis (which starts an application's lifespan) starts nothing twice.
        sequencer = service.start_sequencer()
        application = build_app(service.storage, cfg, service.vkey, sequencer=sequencer)
        _seed(application)
        yield application
    finally:
        service.close()


@pytest.fixture(scope="module")
def api_schema(app: FastAPI) -> OpenApiSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", app)


#: Every operation of the schema (test_every_operation_is_fuzzed keeps this complete).
#: Listed rather than read from the schema at collection time: the schema is loaded
#: from the running application, which exists only once the fixtures run.
OPERATIONS = [
    "POST /api/v1/records",
    "POST /api/v1/records/batch",
    "GET /checkpoint",
    "GET /tile/{path}",
    "GET /api/v1/log",
    "GET /api/v1/entries/{index}",
    "GET /api/v1/entries/by-leaf/{leaf_hash}",
    "GET /api/v1/proofs/inclusion",
    "GET /api/v1/proofs/consistency",
    "GET /api/v1/receipts/{entry}",
    "GET /api/v1/statements",
    "GET /api/v1/statements/{statement_id}",
    "GET /api/v1/statements/{statement_id}/endorsements",
    "GET /api/v1/signatories",
    "GET /api/v1/signatories/{key_hash}",
    "GET /livez",
    "GET /readyz",
    "GET /healthz",
    "GET /metrics",
]

_SETTINGS: dict[str, Any] = {
    "max_examples": EXAMPLES,
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": list(HealthCheck),
}


def test_every_operation_is_fuzzed(api_schema: OpenApiSchema) -> None:
    found = set()
    for result in api_schema.get_all_operations():
        op = result.ok()  # type: ignore[union-attr]
        found.add(f"{op.method.upper()} {op.path}")
    assert found == set(OPERATIONS)


#: Operations without parameters or body: there is no invalid input to generate.
NO_INPUT = {
    "GET /checkpoint",
    "GET /api/v1/log",
    "GET /livez",
    "GET /readyz",
    "GET /healthz",
    "GET /metrics",
}

#: Where data valid for the schema may still be refused (so Schemathesis' check that
#: valid data is accepted does not apply; every other check does): a record must be
#: signed (random text is 400 ``malformed`` or 422 ``bad_signature``), a batch holds
#: such records, and proof sizes must lie within the log's current size and give
#: exactly one of ``index`` and ``leaf_hash`` (400 ``invalid_parameter``).
STATE_DEPENDENT = {
    "POST /api/v1/records",
    "POST /api/v1/records/batch",
    "GET /api/v1/proofs/inclusion",
    "GET /api/v1/proofs/consistency",
}

CASES = [
    pytest.param(label, mode, id=f"{label}-{mode.value}")
    for label in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode.is_positive or label not in NO_INPUT
]


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_every_operation_conforms(
    api_schema: OpenApiSchema, label: str, mode: GenerationMode
) -> None:
    """All checks: no 500, documented statuses, content types, headers and bodies.

    Positive data must be accepted (except in STATE_DEPENDENT operations); negative
    data must be refused with a 4xx.
    """
    method, path = label.split(" ", 1)
    operation = api_schema[path][method]
    excluded = [positive_data_acceptance] if label in STATE_DEPENDENT else []
    if label == "POST /api/v1/records/batch":
        # A batch answers 200 with one result per item, a refused item (not a string,
        # not a record) included: invalid items are refused in the results, not by a 4xx.
        excluded.append(negative_data_rejection)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(**_SETTINGS)
    def run(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(excluded_checks=excluded)

    run()


def test_stateful_links(api_schema: OpenApiSchema) -> None:
    """Sequences of calls along the OpenAPI links, every answer checked.

    About half of the record submissions carry a freshly signed registration instead of
    generated text (which never verifies), so that the links from an accepted record
    to its entry, receipt and proof are followed.
    """
    base = api_schema.as_state_machine()
    maker = now_maker()
    counter = iter(range(10**9))

    class Links(base):  # type: ignore[misc, valid-type]
        def before_call(self, case: schemathesis.Case[Any]) -> None:
            if case.operation.label != "POST /api/v1/records":
                return
            # Decided by the generated case (replays must take the same path); the label
            # is always fresh, so the answer is always 201 whatever ran before.
            if zlib.crc32(repr(case.body).encode()) % 2:
                return
            text = maker.register(f"stateful {next(counter)}").encode().decode()
            if case.media_type == "application/json":
                case.body = {"record": text}
            else:
                case.media_type = "text/plain"
                case.body = text

        def validate_response(
            self, response: Any, case: schemathesis.Case[Any], *args: Any, **kwargs: Any
        ) -> None:
            excluded = [positive_data_acceptance] if case.operation.label in STATE_DEPENDENT else []
            case.validate_response(response, excluded_checks=excluded)

    Links.run(settings=settings(**{**_SETTINGS, "stateful_step_count": 6}))
    assert next(counter) > 0, "the state machine submitted records"


def test_schema_documents_errors_for_every_operation(app: FastAPI) -> None:
    """Each operation lists problem+json answers, and writes list 413, 429 and 503."""
    doc = app.openapi()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            errors = {s for s in op["responses"] if s[0] in "45"}
            assert errors, (method, path)
            for status in errors:
                content = op["responses"][status]["content"]
                assert "application/problem+json" in content, (method, path, status)
            if method == "post":
                assert {"400", "413", "422", "429", "503"} <= errors, (method, path)
    links = doc["paths"]["/api/v1/records"]["post"]["responses"]["201"].get("links", {})
    assert links, "POST /api/v1/records links its answer to the entry it created"
