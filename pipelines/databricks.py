"""The Databricks adapter: the only module that imports ``databricks.sdk``.

Callers pass plain values (host, token, names, dicts) and get plain dicts back; SDK and transport
errors become :class:`TransientPipelineError` (429, 503, 5xx, timeouts, refused connections) or
:class:`PermanentPipelineError` (bad credentials, unknown endpoint, invalid request, a body that
is not what the API promises). ``databricks.sdk`` costs ~1.3 s to import, so it is imported on
first use, never at Django start-up.

Clients are built with short ``retry_timeout_seconds`` / ``http_timeout_seconds``: with the
SDK's defaults the constructor alone can block for five minutes on an unreachable host (it
probes ``GET {host}/.well-known/databricks-config`` with a 300 s retry budget). One client per
(host, token, timeout) is kept per process, so the probe runs once, not per call.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pipelines.errors import PermanentPipelineError, TransientPipelineError

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

T = TypeVar("T")
SYSTEM = "databricks"

_clients: dict[tuple[str, str, float], WorkspaceClient] = {}
_clients_lock = threading.Lock()


def workspace_client(*, host: str, token: str, timeout_seconds: float = 30.0) -> WorkspaceClient:
    """A PAT-authenticated client whose every request (and the SDK's own retries) ends within ``timeout_seconds``."""
    if not host:
        raise PermanentPipelineError("no Databricks workspace host configured", system=SYSTEM)
    key = (host.rstrip("/"), hashlib.sha256(token.encode()).hexdigest(), float(timeout_seconds))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = _call("connect", lambda: _build_client(host, token, timeout_seconds))
        return client


def _build_client(host: str, token: str, timeout_seconds: float) -> WorkspaceClient:
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.core import Config

    # retry_timeout_seconds must stay > 0: the SDK's retry loop makes no attempt at all at 0.
    budget = max(1, round(timeout_seconds))
    config = Config(
        host=host,
        token=token,
        auth_type="pat",
        retry_timeout_seconds=budget,
        http_timeout_seconds=budget,
    )
    return WorkspaceClient(config=config)


def serving_endpoint_chat(
    *,
    host: str,
    token: str,
    endpoint_name: str,
    messages: list[dict[str, str]],
    temperature: float = 0.0,
    max_tokens: int = 512,
    timeout_seconds: float = 30.0,
) -> dict[str, Any]:
    """Query a chat serving endpoint (``POST /serving-endpoints/{name}/invocations``); the response as a dict."""
    from databricks.sdk.service.serving import ChatMessage, ChatMessageRole

    if not endpoint_name:
        raise PermanentPipelineError("no Databricks serving endpoint name configured", system=SYSTEM)
    try:
        chat = [ChatMessage(role=ChatMessageRole(m["role"]), content=str(m.get("content", ""))) for m in messages]
    except (KeyError, ValueError) as exc:
        raise PermanentPipelineError(
            f"a Databricks chat message needs a role of system/user/assistant: {exc}", system=SYSTEM
        ) from None
    client = workspace_client(host=host, token=token, timeout_seconds=timeout_seconds)
    response = _call(
        f"query serving endpoint {endpoint_name!r}",
        lambda: client.serving_endpoints.query(
            name=endpoint_name, messages=chat, temperature=temperature, max_tokens=max_tokens
        ),
    )
    return response.as_dict()


def serving_endpoint_get(*, host: str, token: str, name: str, timeout_seconds: float = 30.0) -> dict[str, Any]:
    """``GET /api/2.0/serving-endpoints/{name}`` as a dict (``state.ready``, ``config.served_entities``, ...)."""
    client = workspace_client(host=host, token=token, timeout_seconds=timeout_seconds)
    detailed = _call(f"get serving endpoint {name!r}", lambda: client.serving_endpoints.get(name))
    return detailed.as_dict()


def _call(what: str, fn: Callable[[], T]) -> T:
    """Run one SDK call and translate its failure into a pipeline error that says what failed."""
    import requests
    from databricks.sdk import errors

    transient: tuple[type[BaseException], ...] = (
        errors.TooManyRequests,
        errors.TemporarilyUnavailable,
        errors.InternalError,
        errors.DeadlineExceeded,
        errors.Aborted,
    )
    try:
        return fn()
    except requests.JSONDecodeError as exc:
        # A 200 whose body is not JSON: the endpoint is broken, retrying the same request will not help.
        raise PermanentPipelineError(f"{what}: the response is not JSON ({exc})", system=SYSTEM) from None
    except transient as exc:
        raise TransientPipelineError(f"{what}: {type(exc).__name__}: {exc}", system=SYSTEM) from None
    except errors.DatabricksError as exc:
        raise PermanentPipelineError(f"{what}: {type(exc).__name__}: {exc}", system=SYSTEM) from None
    except (TimeoutError, requests.Timeout, requests.ConnectionError) as exc:
        # The SDK raises TimeoutError when its own retry budget (429/503/timeouts) runs out.
        raise TransientPipelineError(f"{what}: {type(exc).__name__}: {exc}", system=SYSTEM) from None
    except (ValueError, TypeError, KeyError) as exc:
        # Bad configuration (an invalid host) or a response of the wrong shape.
        raise PermanentPipelineError(f"{what}: {type(exc).__name__}: {exc}", system=SYSTEM) from None
