"""The LLM client adapter over real HTTP against a local OpenAI-compatible server: shape, retries, limits, faults."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from pipelines.adapters.errors import PermanentPipelineError, TransientPipelineError
from pipelines.adapters.llm_client import EndpointConfig, chat_complete
from pipelines.wiring import outbound_rules
from tests.fakes.http import Reply
from tests.fakes.openai_chat import FakeChatServer

KEY_ENV = "REVIEWDESK_SECRET_TEST_LLM_CLIENT_KEY"
HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def server() -> Iterator[FakeChatServer]:
    with FakeChatServer().running() as fake:
        fake.answer = lambda messages: "hello there"
        yield fake


@pytest.fixture
def endpoint(server: FakeChatServer, monkeypatch: pytest.MonkeyPatch) -> EndpointConfig:
    monkeypatch.setenv(KEY_ENV, server.token)
    return EndpointConfig(
        name="judge",
        kind="openai_compatible",
        url=server.base_url,
        model=server.model,
        credential_env=KEY_ENV,
        timeout_seconds=2,
        max_retries=3,
        max_concurrency=4,
        backoff_seconds=0.01,
    )


def test_it_sends_an_openai_chat_request_and_returns_the_first_choice(
    server: FakeChatServer, endpoint: EndpointConfig
) -> None:
    result = chat_complete(endpoint, HELLO, temperature=0, max_tokens=32, rules=outbound_rules())

    assert result.content == "hello there"
    assert result.attempts == 1
    assert result.model == server.model
    [call] = server.chat_calls()
    assert call.path == "/v1/chat/completions"
    assert call.headers["authorization"] == f"Bearer {server.token}"
    assert call.json == {"model": "judge-model", "messages": HELLO, "temperature": 0, "max_tokens": 32}


def test_it_retries_5xx_with_backoff_then_succeeds(server: FakeChatServer, endpoint: EndpointConfig) -> None:
    server.fail_next(2, Reply(500, {"error": {"message": "overloaded"}}))

    result = chat_complete(endpoint, HELLO, rules=outbound_rules())

    assert result.content == "hello there"
    assert result.attempts == 3
    assert len(server.chat_calls()) == 3


def test_it_gives_up_after_max_retries_with_a_transient_error(server: FakeChatServer, endpoint: EndpointConfig) -> None:
    server.fail_next(10, Reply(503, {"error": {"message": "down"}}))

    with pytest.raises(TransientPipelineError, match=r"HTTP 503 \(gave up after 4 attempts\)"):
        chat_complete(endpoint, HELLO, rules=outbound_rules())
    assert len(server.chat_calls()) == 4


def test_429_waits_for_retry_after(server: FakeChatServer, endpoint: EndpointConfig) -> None:
    server.fail_next(1, Reply(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "0.3"}))

    started = time.monotonic()
    result = chat_complete(endpoint, HELLO, rules=outbound_rules())

    assert time.monotonic() - started >= 0.3
    assert result.attempts == 2


def test_a_wrong_key_is_permanent_and_not_retried(server: FakeChatServer, endpoint: EndpointConfig) -> None:
    server.token = "sk-rotated"

    with pytest.raises(PermanentPipelineError, match=re.escape("HTTP 401: 'Incorrect API key provided.'")):
        chat_complete(endpoint, HELLO, rules=outbound_rules())
    assert len(server.chat_calls()) == 1


def test_an_unknown_model_is_permanent(server: FakeChatServer, endpoint: EndpointConfig) -> None:
    with pytest.raises(PermanentPipelineError, match=re.escape("HTTP 404: 'The model `gpt-nope` does not exist.'")):
        chat_complete(replace(endpoint, model="gpt-nope"), HELLO, rules=outbound_rules())


def test_a_slow_answer_times_out_and_is_retried_as_transient(server: FakeChatServer, endpoint: EndpointConfig) -> None:
    server.latency = 0.5

    started = time.monotonic()
    with pytest.raises(TransientPipelineError, match=r"no answer within 0\.2 s"):
        chat_complete(replace(endpoint, timeout_seconds=0.2, max_retries=1), HELLO, rules=outbound_rules())
    assert time.monotonic() - started < 1.5
    assert len(server.chat_calls()) == 2


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (
            Reply(200, b"<html>502 Bad Gateway</html>"),
            "returned a body that is not JSON: '<html>502 Bad Gateway</html>'",
        ),
        (Reply(200, {"id": "x", "choices": []}), "returned no choices"),
        (Reply(200, {"choices": [{"message": {"role": "assistant"}}]}), "returned a choice without text"),
        (Reply(200, ["not", "an", "object"]), "returned no choices"),
    ],
)
def test_garbage_is_a_permanent_error_with_a_clear_message(
    server: FakeChatServer, endpoint: EndpointConfig, reply: Reply, message: str
) -> None:
    server.fail_next(1, reply)

    with pytest.raises(PermanentPipelineError) as caught:
        chat_complete(endpoint, HELLO, rules=outbound_rules())
    assert message in caught.value.message
    assert "'judge'" in caught.value.message
    assert len(server.chat_calls()) == 1


def test_a_refused_connection_is_transient(endpoint: EndpointConfig) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the call: nothing listens there
    with pytest.raises(TransientPipelineError, match="cannot connect"):
        chat_complete(
            replace(endpoint, url=f"http://127.0.0.1:{port}/v1", max_retries=1), HELLO, rules=outbound_rules()
        )


def test_a_missing_credential_variable_is_a_configuration_error(endpoint: EndpointConfig) -> None:
    with pytest.raises(PermanentPipelineError, match="environment variable REVIEWDESK_SECRET_UNSET is not set"):
        chat_complete(replace(endpoint, credential_env="REVIEWDESK_SECRET_UNSET"), HELLO, rules=outbound_rules())


def test_the_concurrency_limit_holds_across_threads(server: FakeChatServer, endpoint: EndpointConfig) -> None:
    server.latency = 0.1
    limited = replace(endpoint, max_concurrency=2)
    results: list[str] = []

    def call() -> None:
        results.append(chat_complete(limited, HELLO, rules=outbound_rules()).content)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == ["hello there"] * 6
    assert server.max_in_flight == 2


def test_the_rate_limit_spaces_request_starts(server: FakeChatServer, endpoint: EndpointConfig) -> None:
    limited = replace(endpoint, rate_limit_rpm=600)  # one start every 0.1 s

    started = time.monotonic()
    for _ in range(4):
        chat_complete(limited, HELLO, rules=outbound_rules())

    assert time.monotonic() - started >= 0.3


def test_an_mlflow_model_endpoint_cannot_chat(endpoint: EndpointConfig) -> None:
    with pytest.raises(PermanentPipelineError, match="mlflow_model endpoint and cannot answer chats"):
        chat_complete(replace(endpoint, kind="mlflow_model", model="models:/m/1"), HELLO, rules=outbound_rules())
