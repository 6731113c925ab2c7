"""Schemathesis over every operation of the generated OpenAPI schema, in-process (WSGI), bounded.

Each operation gets a few generated requests (valid by the schema, then schema-violating ones),
sent with an all-scopes admin token to a seeded project. Any 5xx fails, and so does a response
whose status code, content type or body the schema does not document. Runs in about a minute
or two on two cores; raise SCHEMATHESIS_MAX_EXAMPLES locally to dig deeper.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.security.seed import seed_project

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "4"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Only the 5xx check for negative cases: a schema-violating request may be refused in several documented ways.
NEGATIVE_CHECKS = [not_a_server_error]
SESSION_ONLY = ("/api/v1/tokens/",)  # token management refuses API tokens by design (403 for a bearer)


def _path_parameters(seeded: Any, path: str) -> dict[str, Any]:
    filled = seeded.fill(path)
    names = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
    values = [v for p, v in zip(path.split("/"), filled.split("/"), strict=True) if p.startswith("{")]
    return {name: (int(v) if v.isdigit() else v) for name, v in zip(names, values, strict=True)}


def _runner(strategy: Any, *, app: Any, headers: dict[str, str], checks: list[Any]) -> Any:
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same requests on every run: CI failures reproduce locally
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        case.call_and_validate(app=app, headers=headers, checks=checks)

    return run


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_or_schema_violation(db: Any) -> None:
    # As Django's test client does: keep the test's connection (and its transaction) across requests.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        _fuzz()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _fuzz() -> None:
    seeded = seed_project()
    raw = SchemaGenerator().get_schema(request=None, public=True)
    schema = schemathesis.openapi.from_dict(raw)
    app = get_wsgi_application()
    headers = {"Authorization": f"Bearer {seeded.token}"}
    failures: list[str] = []
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 80, "the schema lost operations"
    for operation in operations:
        if operation.path.startswith(SESSION_ONLY):
            continue
        fixed = _path_parameters(seeded, operation.path)
        for mode, checks in ((GenerationMode.POSITIVE, CHECKS), (GenerationMode.NEGATIVE, NEGATIVE_CHECKS)):
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed or None)

            run = _runner(strategy, app=app, headers=headers, checks=checks)
            try:
                run()
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}"[:1500])
    elapsed = time.monotonic() - started
    print(f"schemathesis: {len(operations)} operations x {MAX_EXAMPLES} examples x 2 modes in {elapsed:.0f}s")
    assert not failures, "\n\n".join(failures)
