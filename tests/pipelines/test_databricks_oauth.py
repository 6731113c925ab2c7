"""OAuth M2M (a service principal's client id and secret) through ``DatabricksConfig.from_settings``: the real SDK
discovers the OIDC endpoints, fetches a token with client_credentials / all-apis from the local
workspace, and sends it as a bearer; a refused secret fails clearly before anything is written."""

from __future__ import annotations

import base64
import logging
import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest

from pipelines.adapters import databricks
from pipelines.adapters.errors import PermanentPipelineError
from pipelines.releases import serving
from pipelines.wiring import databricks_config
from tests.fakes.databricks_api import FakeDatabricks
from tests.pipelines.promotion_fixtures import databricks_environment, serve_v1, versions

CLIENT_ID = "7d1c5e9a-reviewdesk-sp"
SECRET = "dose-s3cret-never-log-me"


@pytest.fixture
def workspace(settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[FakeDatabricks]:
    for key in list(os.environ):
        if key.startswith("DATABRICKS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "absent.cfg"))
    with FakeDatabricks().running() as fake:
        fake.add_service_principal(CLIENT_ID, SECRET)
        settings.DATABRICKS_HOST = fake.url
        settings.DATABRICKS_TOKEN = ""
        settings.DATABRICKS_CLIENT_ID = CLIENT_ID
        settings.DATABRICKS_CLIENT_SECRET = SECRET
        settings.DATABRICKS_TIMEOUT_SECONDS = 5
        settings.ROLLOUT_POLL_SECONDS = 0.02
        yield fake


def test_a_serving_call_carries_the_token_the_workspace_issued(workspace: FakeDatabricks, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    serve_v1(workspace)

    predictions = databricks.serving_endpoint_query_records(
        databricks_config(), name="support-prod", records=[{"request": "hi"}]
    )

    assert predictions == [{"response": "answer from support_assistant-1 to hi"}]
    discovery = [r for r in workspace.requests if r.path == "/oidc/.well-known/oauth-authorization-server"]
    assert len(discovery) == 1 and discovery[0].method == "GET"
    token_requests = [r for r in workspace.requests if r.path == "/oidc/v1/token"]
    assert len(token_requests) == 1 and token_requests[0].method == "POST"
    form = parse_qs(token_requests[0].raw.decode())
    assert form == {"grant_type": ["client_credentials"], "scope": ["all-apis"]}  # the secret is not in the body
    basic = token_requests[0].headers["authorization"]
    assert base64.b64decode(basic.removeprefix("Basic ")).decode() == f"{CLIENT_ID}:{SECRET}"
    [issued] = workspace.issued_tokens
    invocation = workspace.invocations()[-1]
    assert invocation.path == "/serving-endpoints/support-prod/invocations"
    assert invocation.headers["authorization"] == f"Bearer {issued}"
    assert workspace.token not in str([r.headers for r in workspace.requests])  # no PAT was ever sent

    # The client (and its token) is reused: a second call fetches no new token.
    assert databricks.serving_endpoint_state(databricks_config(), name="support-prod")["name"] == "support-prod"
    assert len([r for r in workspace.requests if r.path == "/oidc/v1/token"]) == 1
    assert SECRET not in caplog.text


def test_a_token_wins_over_client_credentials(workspace: FakeDatabricks, settings: Any) -> None:
    settings.DATABRICKS_TOKEN = workspace.token
    serve_v1(workspace)
    assert databricks.serving_endpoint_state(databricks_config(), name="support-prod") is not None
    assert not [r for r in workspace.requests if r.path.startswith("/oidc/")]
    assert workspace.requests[-1].headers["authorization"] == f"Bearer {workspace.token}"


@pytest.mark.django_db
def test_a_wrong_secret_fails_clearly_before_any_write(
    workspace: FakeDatabricks, settings: Any, project, caplog
) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-s3cret-either"
    settings.DATABRICKS_CLIENT_SECRET = wrong
    serve_v1(workspace)
    _v1, v2 = versions(project, 1, 2)
    environment = databricks_environment(project)

    with pytest.raises(PermanentPipelineError) as refused:
        serving.serving_apply(
            environment=environment,
            split=[serving.Split(v2, 100)],
            deadline=time.monotonic() + 5,
            heartbeat=lambda: None,
        )

    message = refused.value.message
    assert "OAuth M2M" in message and CLIENT_ID in message and "invalid_client" in message
    assert "DATABRICKS_CLIENT_SECRET" in message
    assert wrong not in message and SECRET not in message
    assert [r.path for r in workspace.requests if r.path.startswith("/api/")] == []  # not even a read
    assert workspace.routes_of("support-prod") == {"support_assistant-1": 100}
    assert workspace.issued_tokens == {}
    assert wrong not in caplog.text

    # Once the secret is fixed, the same deployment connects (a refused client was not cached).
    settings.DATABRICKS_CLIENT_SECRET = SECRET
    assert databricks.serving_endpoint_state(databricks_config(), name="support-prod") is not None
