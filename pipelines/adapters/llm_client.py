"""Chat completions against the deployment's LLM endpoints: the only module that speaks HTTP to an LLM.

Two kinds of endpoint answer chats:

- ``openai_compatible``: ``POST {url}/chat/completions`` (OpenAI, vLLM, Ollama, LiteLLM, ...), with
  ``Authorization: Bearer $<credential_env>`` when the endpoint names a credential variable;
- ``databricks_serving``: a Databricks Model Serving endpoint, queried through
  :mod:`pipelines.adapters.databricks` (the only module that imports ``databricks.sdk``).

Every call is bounded: a per-attempt timeout, ``1 + max_retries`` attempts with exponential
backoff and jitter on 408, 425, 429, 5xx, timeouts and refused connections only
(``errors.status_is_transient``; then :class:`TransientPipelineError`), and no retry on other
4xx or on an answer that is not a chat completion (:class:`PermanentPipelineError`, with the
reason). Each endpoint has a concurrency limit (a semaphore held only while a request is in
flight, not while backing off) and a rate limiter that spaces request starts ``60 /
rate_limit_rpm`` seconds apart. Both are per process: with N worker processes the endpoint sees up
to N times the limits.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import requests
from requests.adapters import HTTPAdapter

from pipelines.adapters import outbound
from pipelines.adapters.errors import PermanentPipelineError, TransientPipelineError, status_is_transient

EndpointKind = Literal["databricks_serving", "openai_compatible", "mlflow_model"]
CHAT_KINDS = ("databricks_serving", "openai_compatible")
BACKOFF_CAP_SECONDS = 8.0
RETRY_AFTER_CAP_SECONDS = 30.0


@dataclass(frozen=True)
class EndpointConfig:
    """One model endpoint, as judges and generation targets use it (no secrets: only the env var name).

    ``url`` is the base URL of an OpenAI-compatible API (``https://api.openai.com/v1``) or the
    Databricks workspace host; ``endpoint_name`` is the Databricks serving endpoint; ``model`` is
    the model id sent to an OpenAI-compatible API, or the ``models:/name/version`` URI of an
    ``mlflow_model`` endpoint.
    """

    name: str
    kind: EndpointKind
    url: str = ""
    endpoint_name: str = ""
    model: str = ""
    credential_env: str = ""
    rate_limit_rpm: int | None = None
    timeout_seconds: float = 30.0
    max_retries: int = 3
    max_concurrency: int = 4
    backoff_seconds: float = 0.5  # first retry waits about this long, doubling each time

    @property
    def identity(self) -> str:
        """What is actually called, independent of the endpoint's name (for caches)."""
        return f"{self.kind}|{self.url.rstrip('/')}|{self.endpoint_name}|{self.model}"


@dataclass(frozen=True)
class ChatResult:
    content: str
    model: str
    latency_ms: float  # of the successful attempt
    attempts: int


class _Retryable(Exception):
    """One attempt failed in a way worth retrying; ``retry_after`` is the server's hint, if any."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _EndpointState:
    """Per-endpoint concurrency limit, rate limiter and HTTP connection pool."""

    def __init__(self, endpoint: EndpointConfig) -> None:
        self.semaphore = threading.BoundedSemaphore(max(1, endpoint.max_concurrency))
        self.interval = 60.0 / endpoint.rate_limit_rpm if endpoint.rate_limit_rpm else 0.0
        self._next_start = 0.0
        self._lock = threading.Lock()
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(10, endpoint.max_concurrency), max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def wait_for_slot(self) -> None:
        """Reserve the next start time ``interval`` after the previous one, and sleep until it."""
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + self.interval
        if start > now:
            time.sleep(start - now)


_states: dict[EndpointConfig, _EndpointState] = {}
_states_lock = threading.Lock()


def _state_for(endpoint: EndpointConfig) -> _EndpointState:
    # Keyed by the whole config, so an endpoint edited in the admin gets fresh limits.
    with _states_lock:
        state = _states.get(endpoint)
        if state is None:
            state = _states[endpoint] = _EndpointState(endpoint)
        return state


def credential_for(endpoint: EndpointConfig, *, rules: outbound.OutboundRules) -> str | None:
    """The secret named by ``credential_env``; a named but unset variable is a configuration error."""
    if not endpoint.credential_env:
        return None
    problem = outbound.credential_env_problem(endpoint.credential_env, rules=rules)
    if problem:
        # Never read (and send to a provider) a variable outside SECRET_ENV_PREFIX, e.g. DATABASE_URL.
        raise PermanentPipelineError(f"endpoint {endpoint.name!r}: {problem}", system=endpoint.name)
    value = os.environ.get(endpoint.credential_env)
    if not value:
        raise PermanentPipelineError(
            f"endpoint {endpoint.name!r}: the environment variable {endpoint.credential_env} is not set",
            system=endpoint.name,
        )
    return value


def chat_complete(
    endpoint: EndpointConfig,
    messages: list[dict[str, str]],
    *,
    rules: outbound.OutboundRules,
    temperature: float = 0.0,
    max_tokens: int = 512,
) -> ChatResult:
    """Send one chat and return the first choice's text; see the module docstring for the failure rules.

    ``rules``: the deployment's outbound rules (``OutboundRules.from_settings``): which hosts may be
    called and which variables may hold endpoint keys.
    """
    if endpoint.kind not in CHAT_KINDS:
        raise PermanentPipelineError(
            f"endpoint {endpoint.name!r} is a {endpoint.kind} endpoint and cannot answer chats", system=endpoint.name
        )
    if not messages:
        raise PermanentPipelineError("a chat needs at least one message", system=endpoint.name)
    state = _state_for(endpoint)
    if endpoint.kind == "openai_compatible":
        outbound.url_guard(endpoint.url, rules=rules, what=f"endpoint {endpoint.name!r}", system=endpoint.name)
    token = credential_for(endpoint, rules=rules)
    attempts = 1 + max(0, endpoint.max_retries)
    last_reason = ""
    for attempt in range(1, attempts + 1):
        state.wait_for_slot()
        try:
            with state.semaphore:
                started = time.perf_counter()
                if endpoint.kind == "openai_compatible":
                    content, model = _openai_chat(state, endpoint, token, messages, temperature, max_tokens)
                else:
                    content, model = _databricks_chat(endpoint, rules, token, messages, temperature, max_tokens)
        except _Retryable as exc:
            last_reason = exc.reason
            if attempt == attempts:
                break
            delay = endpoint.backoff_seconds * 2 ** (attempt - 1)
            delay = min(BACKOFF_CAP_SECONDS, delay) * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto
            if exc.retry_after is not None:
                delay = max(delay, min(exc.retry_after, RETRY_AFTER_CAP_SECONDS))
            time.sleep(delay)
            continue
        latency_ms = (time.perf_counter() - started) * 1000
        return ChatResult(content=content, model=model, latency_ms=latency_ms, attempts=attempt)
    raise TransientPipelineError(
        f"endpoint {endpoint.name!r}: {last_reason} (gave up after {attempts} attempts)", system=endpoint.name
    )


def _openai_chat(
    state: _EndpointState,
    endpoint: EndpointConfig,
    token: str | None,
    messages: list[dict[str, str]],
    temperature: float,
    max_tokens: int,
) -> tuple[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body: dict[str, Any] = {"messages": messages, "temperature": temperature, "max_tokens": max_tokens}
    if endpoint.model:
        body["model"] = endpoint.model
    url = endpoint.url.rstrip("/") + "/chat/completions"
    # (connect, read): a refused or black-holed host fails fast; a slow answer gets the full timeout.
    timeout = (min(5.0, endpoint.timeout_seconds), endpoint.timeout_seconds)
    try:
        response = state.session.post(url, json=body, headers=headers, timeout=timeout)
    except requests.Timeout:
        raise _Retryable(f"no answer within {endpoint.timeout_seconds:g} s") from None
    except requests.ConnectionError as exc:
        # The URL is not repeated: errors are shown to engineers, and an internal address is information.
        raise _Retryable(f"cannot connect to the endpoint: {type(exc).__name__}") from None
    except requests.RequestException as exc:
        raise PermanentPipelineError(
            f"endpoint {endpoint.name!r}: bad request: {type(exc).__name__}", system=endpoint.name
        ) from None
    if status_is_transient(response.status_code):
        raise _Retryable(f"HTTP {response.status_code}", _retry_after(response.headers.get("Retry-After")))
    if response.status_code >= 400:
        raise PermanentPipelineError(
            f"endpoint {endpoint.name!r}: HTTP {response.status_code}: {_error_text(response.text)}",
            system=endpoint.name,
        )
    try:
        payload = response.json()
    except ValueError:
        raise PermanentPipelineError(
            f"endpoint {endpoint.name!r} returned a body that is not JSON: {_excerpt(response.text)}",
            system=endpoint.name,
        ) from None
    return _choice_content(endpoint, payload), str(payload.get("model") or endpoint.model)


def _databricks_chat(
    endpoint: EndpointConfig,
    rules: outbound.OutboundRules,
    token: str | None,
    messages: list[dict[str, str]],
    temperature: float,
    max_tokens: int,
) -> tuple[str, str]:
    from pipelines.adapters import databricks

    if not token:
        raise PermanentPipelineError(
            f"endpoint {endpoint.name!r}: a Databricks endpoint needs credential_env (the variable holding a token)",
            system=endpoint.name,
        )
    try:
        workspace = databricks.DatabricksConfig(
            host=endpoint.url, token=token, timeout_seconds=endpoint.timeout_seconds, outbound=rules
        )
        payload = databricks.serving_endpoint_chat(
            workspace,
            endpoint_name=endpoint.endpoint_name,
            messages=messages,
            temperature=temperature,
            max_tokens=max_tokens,
        )
    except TransientPipelineError as exc:
        raise _Retryable(exc.message) from None
    return _choice_content(endpoint, payload), str(payload.get("model") or endpoint.endpoint_name)


def _choice_content(endpoint: EndpointConfig, payload: Any) -> str:
    """``choices[0].message.content`` of a chat completion, or a clear PermanentPipelineError."""
    choices = payload.get("choices") if isinstance(payload, dict) else None
    if not isinstance(choices, list) or not choices:
        raise PermanentPipelineError(
            f"endpoint {endpoint.name!r} returned no choices: {_excerpt(json.dumps(payload, default=str))}",
            system=endpoint.name,
        )
    first = choices[0] if isinstance(choices[0], dict) else {}
    message = first.get("message")
    content = message.get("content") if isinstance(message, dict) else first.get("text")
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        content = "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    if not isinstance(content, str):
        raise PermanentPipelineError(
            f"endpoint {endpoint.name!r} returned a choice without text: {_excerpt(json.dumps(first, default=str))}",
            system=endpoint.name,
        )
    return content


def _retry_after(raw: str | None) -> float | None:
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None  # an HTTP date; the backoff applies


def _error_text(body: str) -> str:
    """The provider's own error message when it sent one (OpenAI and Databricks shapes), else an excerpt."""
    try:
        data = json.loads(body)
    except ValueError:
        return _excerpt(body)
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return _excerpt(str(error["message"]))
        if data.get("message"):
            return _excerpt(str(data["message"]))
        if isinstance(error, str):
            return _excerpt(error)
    return _excerpt(body)


def _excerpt(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[:limit] + "…")
