"""pipelines.adapters.databricks with the real databricks-sdk over HTTP against the local Databricks REST fake."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import pytest

from pipelines.adapters import databricks
from pipelines.adapters.errors import PermanentPipelineError, TransientPipelineError
from pipelines.adapters.llm_client import EndpointConfig, chat_complete
from pipelines.wiring import outbound_rules
from tests.fakes.databricks_api import FakeDatabricks, error
from tests.fakes.http import Reply

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Is this grounded?"}]


@pytest.fixture(autouse=True)
def no_ambient_databricks_config(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Whatever the machine has (env vars, ~/.databrickscfg) must not leak into the SDK's config.
    for key in list(os.environ):
        if key.startswith("DATABRICKS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "absent.cfg"))


@pytest.fixture
def fake() -> Iterator[FakeDatabricks]:
    with FakeDatabricks().running() as server:
        server.add_chat_endpoint("judge-llm", model="databricks-claude-sonnet")
        yield server


def query(
    fake: FakeDatabricks, *, token: str | None = None, timeout_seconds: float = 5, **overrides: object
) -> dict[str, object]:
    kwargs: dict[str, object] = {
        "endpoint_name": "judge-llm",
        "messages": MESSAGES,
        "temperature": 0.0,
        "max_tokens": 64,
    }
    kwargs.update(overrides)
    config = workspace(fake.url, token or fake.token, timeout_seconds)
    return databricks.serving_endpoint_chat(config, **kwargs)  # type: ignore[arg-type]


def workspace(host: str, token: str, timeout_seconds: float) -> databricks.DatabricksConfig:
    return databricks.DatabricksConfig(
        host=host, token=token, timeout_seconds=timeout_seconds, outbound=outbound_rules()
    )


def test_query_posts_the_chat_to_the_invocations_path(fake: FakeDatabricks) -> None:
    response = query(fake)

    assert response["choices"][0]["message"]["content"] == (  # type: ignore[index]
        '{"value": "yes", "rationale": "The fake judge found no \'no\' marker."}'
    )
    assert [(r.method, r.path) for r in fake.requests] == [
        ("GET", "/.well-known/databricks-config"),
        ("POST", "/serving-endpoints/judge-llm/invocations"),
    ]
    probe, call = fake.requests
    assert probe.bearer is None  # the host-metadata probe is unauthenticated
    assert call.bearer == fake.token
    assert call.headers["x-databricks-workspace-id"] == fake.workspace_id
    assert call.json == {"messages": MESSAGES, "temperature": 0.0, "max_tokens": 64}


def test_the_client_is_built_once_per_host_and_token(fake: FakeDatabricks) -> None:
    query(fake)
    query(fake)

    assert len(fake.calls("GET", "/.well-known/databricks-config")) == 1
    assert len(fake.invocations()) == 2


def test_get_returns_the_endpoint_state(fake: FakeDatabricks) -> None:
    detail = databricks.serving_endpoint_get(workspace(fake.url, fake.token, 5), name="judge-llm")

    assert detail["state"] == {"ready": "READY", "config_update": "NOT_UPDATING"}
    assert detail["config"]["served_entities"][0]["name"] == "databricks-claude-sonnet"
    assert fake.calls("GET", "/api/2.0/serving-endpoints/judge-llm")[0].bearer == fake.token


def test_an_unknown_endpoint_is_permanent(fake: FakeDatabricks) -> None:
    with pytest.raises(PermanentPipelineError, match="ResourceDoesNotExist: Endpoint with name 'nope' does not exist"):
        query(fake, endpoint_name="nope")


def test_a_bad_token_is_permanent(fake: FakeDatabricks) -> None:
    with pytest.raises(PermanentPipelineError, match="Unauthenticated: Invalid access token"):
        query(fake, token="dapi-wrong")


def test_a_server_error_is_transient(fake: FakeDatabricks) -> None:
    fake.fail_next(1, error(500, "INTERNAL_ERROR", "boom"), path=r"/serving-endpoints/.*")

    with pytest.raises(TransientPipelineError, match="InternalError: boom"):
        query(fake)


def test_a_body_that_is_not_json_is_permanent(fake: FakeDatabricks) -> None:
    fake.fail_next(1, Reply(200, b"<html>proxy error</html>"), path=r"/serving-endpoints/.*")

    with pytest.raises(PermanentPipelineError, match="the response is not JSON"):
        query(fake)


def test_throttling_past_the_retry_budget_is_transient(fake: FakeDatabricks) -> None:
    throttled = error(429, "REQUEST_LIMIT_EXCEEDED", "Too many requests")
    throttled.headers["Retry-After"] = "1"
    fake.fail_next(10, throttled, path=r"/serving-endpoints/.*")

    started = time.monotonic()
    with pytest.raises(TransientPipelineError, match="TimeoutError"):
        query(fake, timeout_seconds=1)
    assert time.monotonic() - started < 5


def test_a_message_role_databricks_does_not_take_is_refused_before_sending(fake: FakeDatabricks) -> None:
    with pytest.raises(PermanentPipelineError, match="role of system/user/assistant"):
        query(fake, messages=[{"role": "tool", "content": "x"}])
    assert fake.invocations() == []


@pytest.mark.slow
def test_an_unreachable_host_fails_within_the_timeout() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    started = time.monotonic()
    with pytest.raises(TransientPipelineError):
        databricks.serving_endpoint_chat(
            workspace(f"http://127.0.0.1:{port}", "dapi-x", 1), endpoint_name="e", messages=MESSAGES
        )
    # Construction (metadata probe) and the call each stop at the 1 s budget, not the SDK's 300 s default.
    assert time.monotonic() - started < 10


def test_chat_complete_reaches_databricks_through_the_adapter_and_retries_5xx(
    fake: FakeDatabricks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REVIEWDESK_SECRET_TEST_DBX_TOKEN", fake.token)
    endpoint = EndpointConfig(
        name="dbx-judge",
        kind="databricks_serving",
        url=fake.url,
        endpoint_name="judge-llm",
        credential_env="REVIEWDESK_SECRET_TEST_DBX_TOKEN",
        timeout_seconds=5,
        backoff_seconds=0.01,
    )
    fake.no_markers = ("ungrounded",)
    fake.fail_next(1, error(503, "TEMPORARILY_UNAVAILABLE", "scaling up"), path=r"/serving-endpoints/.*")
    fake.fail_next(1, error(500, "INTERNAL_ERROR", "boom"), path=r"/serving-endpoints/.*")

    result = chat_complete(endpoint, [{"role": "user", "content": "this answer is ungrounded"}], rules=outbound_rules())

    assert '"value": "no"' in result.content
    assert result.model == "databricks-claude-sonnet"
    # 503 is retried inside the SDK (Retry-After), the 500 by our backoff: three invocations in all.
    assert len(fake.invocations()) == 3
    assert result.attempts == 2
