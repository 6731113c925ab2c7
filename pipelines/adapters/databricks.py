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

import functools
import hashlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pipelines.adapters import outbound
from pipelines.adapters.errors import PermanentPipelineError, TransientPipelineError

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

T = TypeVar("T")
SYSTEM = "databricks"

_clients: dict[tuple[str, str, float], WorkspaceClient] = {}
_clients_lock = threading.Lock()


def workspace_client(
    *, host: str, token: str, timeout_seconds: float = 30.0, client_id: str = "", client_secret: str = ""
) -> WorkspaceClient:
    """A client whose every request (and the SDK's own retries) ends within ``timeout_seconds``: PAT-authenticated
    with ``token``, or OAuth M2M (a service principal's ``client_id``/``client_secret``) when no token is given."""
    if not host:
        raise PermanentPipelineError("no Databricks workspace host configured", system=SYSTEM)
    # The same outbound rule as LLM endpoints and webhooks: no private or metadata address unless allowed.
    outbound.url_guard(host if "://" in host else f"https://{host}", what="Databricks host", system=SYSTEM)
    secret = token if token else f"{client_id}\0{client_secret}"
    # Keyed by a hash: the credentials themselves are never kept anywhere but in the SDK's config.
    key = (host.rstrip("/"), hashlib.sha256(secret.encode()).hexdigest(), float(timeout_seconds))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = _call(
                "connect", lambda: _build_client(host, token, timeout_seconds, client_id, client_secret)
            )
        return client


def databricks_configured() -> bool:
    """True when the deployment names a Databricks workspace (``DATABRICKS_HOST``)."""
    from django.conf import settings

    return bool(settings.DATABRICKS_HOST)


def settings_client() -> WorkspaceClient:
    """The deployment's workspace client, from ``DATABRICKS_*`` settings (credentials never leave them)."""
    from django.conf import settings

    if not settings.DATABRICKS_HOST:
        raise PermanentPipelineError("Databricks is not configured: set DATABRICKS_HOST", system=SYSTEM)
    oauth = bool(settings.DATABRICKS_CLIENT_ID and settings.DATABRICKS_CLIENT_SECRET)
    if not settings.DATABRICKS_TOKEN and not oauth:
        raise PermanentPipelineError(
            "no Databricks credentials: set DATABRICKS_TOKEN (or DATABRICKS_CLIENT_ID/SECRET)", system=SYSTEM
        )
    return workspace_client(
        host=settings.DATABRICKS_HOST,
        token=settings.DATABRICKS_TOKEN,
        timeout_seconds=settings.DATABRICKS_TIMEOUT_SECONDS,
        client_id="" if settings.DATABRICKS_TOKEN else settings.DATABRICKS_CLIENT_ID,
        client_secret="" if settings.DATABRICKS_TOKEN else settings.DATABRICKS_CLIENT_SECRET,
    )


def _build_client(
    host: str, token: str, timeout_seconds: float, client_id: str = "", client_secret: str = ""
) -> WorkspaceClient:
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.core import Config

    # retry_timeout_seconds must stay > 0: the SDK's retry loop makes no attempt at all at 0.
    budget = max(1, round(timeout_seconds))
    if token:
        config = Config(
            host=host, token=token, auth_type="pat", retry_timeout_seconds=budget, http_timeout_seconds=budget
        )
        return WorkspaceClient(config=config)
    # OAuth M2M: the SDK reads the OIDC discovery document now and fetches a token (scope all-apis) on first use.
    config = Config(
        host=host,
        client_id=client_id,
        client_secret=client_secret,
        auth_type="oauth-m2m",
        retry_timeout_seconds=budget,
        http_timeout_seconds=budget,
    )
    try:
        config.authenticate()  # fetch the first token here, so a refused secret fails before any API call
    except ValueError as exc:  # the SDK's token request raises ValueError("<error>: <description>") on refusal
        raise PermanentPipelineError(
            f"Databricks OAuth M2M: the token endpoint refused service principal {client_id!r} ({exc}); "
            "check DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET",
            system=SYSTEM,
        ) from None
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


# --- Serving endpoint configuration and rollout (promotion owns this section) ---------------------
#
# A served entity is given as a plain dict {"name", "entity_name", "entity_version"}; every one is
# served on a "Small" workload that scales to zero. Routes are {"served_model_name", "traffic_percentage"}.
# The calls below never wait with the SDK's 20-minute waiter: the rollout polls
# ``serving_endpoint_state`` with its own short deadline (Environment.ready_timeout_seconds).


def _served_entities(entities: list[dict[str, str]]) -> list[Any]:
    from databricks.sdk.service.serving import ServedEntityInput

    return [
        ServedEntityInput(
            name=e["name"],
            entity_name=e["entity_name"],
            entity_version=str(e["entity_version"]),
            workload_size="Small",
            scale_to_zero_enabled=True,
        )
        for e in entities
    ]


def _traffic_config(routes: list[dict[str, Any]]) -> Any:
    from databricks.sdk.service.serving import Route, TrafficConfig

    return TrafficConfig(
        routes=[
            Route(served_model_name=r["served_model_name"], traffic_percentage=int(r["traffic_percentage"]))
            for r in routes
        ]
    )


def serving_endpoint_state(*, name: str) -> dict[str, Any] | None:
    """``GET /api/2.0/serving-endpoints/{name}`` as a dict, or None when the endpoint does not exist."""
    from databricks.sdk import errors

    client = settings_client()

    def get() -> dict[str, Any] | None:
        try:
            return client.serving_endpoints.get(name).as_dict()
        except errors.NotFound:
            return None

    return _call(f"get serving endpoint {name!r}", get)


def serving_endpoint_config_update(
    *, name: str, entities: list[dict[str, str]], routes: list[dict[str, Any]]
) -> dict[str, Any]:
    """``PUT /api/2.0/serving-endpoints/{name}/config``: serve ``entities`` with the ``routes`` split; no waiting."""
    client = settings_client()

    def put() -> dict[str, Any]:
        waiter = client.serving_endpoints.update_config(
            name=name, served_entities=_served_entities(entities), traffic_config=_traffic_config(routes)
        )
        return waiter.response.as_dict() if waiter.response is not None else {}

    return _call(f"update the config of serving endpoint {name!r}", put)


def serving_endpoint_create(
    *, name: str, entities: list[dict[str, str]], routes: list[dict[str, Any]]
) -> dict[str, Any]:
    """``POST /api/2.0/serving-endpoints``: create the endpoint serving ``entities``; no waiting."""
    from databricks.sdk.service.serving import EndpointCoreConfigInput

    client = settings_client()
    config = EndpointCoreConfigInput(
        name=name, served_entities=_served_entities(entities), traffic_config=_traffic_config(routes)
    )

    def create() -> dict[str, Any]:
        waiter = client.serving_endpoints.create(name=name, config=config)
        return waiter.response.as_dict() if waiter.response is not None else {}

    return _call(f"create serving endpoint {name!r}", create)


def serving_endpoint_query_records(*, name: str, records: list[dict[str, Any]]) -> list[Any]:
    """``POST /serving-endpoints/{name}/invocations`` with ``dataframe_records``; the predictions (a list)."""
    return serving_endpoint_query_served(name=name, records=records)[0]


def client_ready() -> None:
    """Build (and cache) the deployment's client now: the first one of a process takes seconds (imports,
    host probe), which must not count as the latency of the first request timed after it."""
    _call("connect to Databricks", settings_client)


def serving_endpoint_query_served(
    *, name: str, records: list[dict[str, Any]], served_entity: str | None = None
) -> tuple[list[Any], str]:
    """Query the endpoint, or one served entity behind it; ``(predictions, served model name)``.

    Without ``served_entity``: ``serving_endpoints.query`` (``POST /serving-endpoints/{name}/invocations``,
    split by the endpoint's routes). With it: the served entity's own invocation path, ``POST
    /serving-endpoints/{name}/served-models/{served_entity}/invocations`` (Databricks' "query individual
    models behind an endpoint"), which the SDK has no method for, so it goes through the SDK's API
    client (same auth, retries and error mapping). The served model name is the ``served-model-name``
    response header ("" when absent).
    """
    client = settings_client()
    if served_entity is None:
        response = _call(
            f"query serving endpoint {name!r}",
            lambda: client.serving_endpoints.query(name=name, dataframe_records=records),
        )
        predictions, served = response.predictions, response.served_model_name or ""
    else:
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if client.config.workspace_id:
            headers["X-Databricks-Workspace-Id"] = client.config.workspace_id
        raw = _call(
            f"query served model {served_entity!r} of serving endpoint {name!r}",
            lambda: client.api_client.do(
                "POST",
                f"/serving-endpoints/{name}/served-models/{served_entity}/invocations",
                body={"dataframe_records": records},
                headers=headers,
                response_headers=["served-model-name"],
            ),
        )
        raw = raw if isinstance(raw, dict) else {}
        predictions, served = raw.get("predictions"), str(raw.get("served-model-name") or "")
    if predictions is None:
        raise PermanentPipelineError(f"serving endpoint {name!r} answered without 'predictions'", system=SYSTEM)
    return list(predictions), served


def uc_model_alias_get(*, full_name: str, alias: str) -> str | None:
    """The version a Unity Catalog model alias points at, or None when the alias is not set."""
    from databricks.sdk import errors

    client = settings_client()

    def get() -> str | None:
        try:
            info = client.model_versions.get_by_alias(full_name, alias)
        except errors.NotFound:
            return None
        return None if info.version is None else str(info.version)

    return _call(f"get alias {alias!r} of {full_name!r}", get)


def uc_model_alias_set(*, full_name: str, alias: str, version: str) -> None:
    """``PUT /api/2.1/unity-catalog/models/{full_name}/aliases/{alias}`` with ``version_num``."""
    client = settings_client()
    _call(
        f"set alias {alias!r} of {full_name!r}",
        lambda: client.registered_models.set_alias(full_name, alias, int(version)),
    )


def uc_model_alias_delete(*, full_name: str, alias: str) -> None:
    from databricks.sdk import errors

    client = settings_client()

    def delete() -> None:
        try:
            client.registered_models.delete_alias(full_name, alias)
        except errors.NotFound:
            pass

    _call(f"delete alias {alias!r} of {full_name!r}", delete)


# --- Unity Catalog: Files API, Statement Execution, tables (delivery owns this section) -----------

# Statement error codes worth retrying; any other FAILED statement is permanent (bad SQL, no table).
SQL_TRANSIENT_ERRORS = frozenset(
    {"TEMPORARILY_UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "INTERNAL_ERROR"}
)


def uc_file_upload(*, path: str, data: bytes) -> None:
    """``PUT /api/2.0/fs/files{path}?overwrite=true``: a file in a UC Volume (replaced if it exists)."""
    import io

    client = settings_client()
    _call(
        f"upload {path}",
        lambda: client.files.upload(path, io.BytesIO(data), overwrite=True, use_parallel=False),
    )


def sql_statement_run(*, statement: str, warehouse_id: str, timeout_seconds: float = 300.0) -> dict[str, Any]:
    """Run one SQL statement on a warehouse and wait for it (``POST /api/2.0/sql/statements``, then
    ``GET .../{id}`` while PENDING/RUNNING). Returns ``{"statement_id", "columns", "rows"}``.

    A FAILED statement raises PermanentPipelineError with Databricks' error code and message
    (TransientPipelineError for overload codes); no answer within ``timeout_seconds`` cancels it and
    raises TransientPipelineError.
    """
    import time

    from django.conf import settings

    if not warehouse_id:
        raise PermanentPipelineError("no SQL warehouse configured: set DATABRICKS_WAREHOUSE_ID", system=SYSTEM)
    client = settings_client()
    wait = min(50, max(5, int(settings.DATABRICKS_TIMEOUT_SECONDS)))
    first_line = statement.strip().split("\n", 1)[0][:60]
    what = f"SQL statement {first_line!r}"
    response = _call(
        what,
        lambda: client.statement_execution.execute_statement(
            statement=statement, warehouse_id=warehouse_id, wait_timeout=f"{wait}s"
        ),
    )
    deadline = time.monotonic() + timeout_seconds
    delay = 0.2
    while _statement_state(response) in ("PENDING", "RUNNING"):
        if time.monotonic() > deadline:
            cancel = functools.partial(client.statement_execution.cancel_execution, response.statement_id or "")
            _call(f"cancel {what}", cancel)
            raise TransientPipelineError(f"{what}: still running after {timeout_seconds:.0f} s", system=SYSTEM)
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
        response = _call(what, functools.partial(client.statement_execution.get_statement, response.statement_id or ""))
    state = _statement_state(response)
    if state != "SUCCEEDED":
        err = response.status.error if response.status else None
        code = str(
            err.error_code.value if err and hasattr(err.error_code, "value") else (err.error_code if err else "")
        )
        message = (err.message if err else "") or f"the statement ended {state}"
        error_class = (
            TransientPipelineError if code in SQL_TRANSIENT_ERRORS or state == "CANCELED" else PermanentPipelineError
        )
        raise error_class(f"{what}: {state} {code}: {message}".replace(" : ", ": "), system=SYSTEM)
    columns = (
        [c.name for c in (response.manifest.schema.columns or [])]
        if response.manifest and response.manifest.schema
        else []
    )
    rows = (response.result.data_array if response.result else None) or []
    return {"statement_id": response.statement_id, "columns": columns, "rows": rows}


def _statement_state(response: Any) -> str:
    state = response.status.state if response.status else None
    return str(getattr(state, "value", state) or "")


def sql_warehouse_get(*, warehouse_id: str) -> dict[str, Any] | None:
    """``GET /api/2.0/sql/warehouses/{id}`` as a dict (``state``, ``name``), or None when there is no such warehouse."""
    from databricks.sdk import errors

    client = settings_client()

    def get() -> dict[str, Any] | None:
        try:
            return client.warehouses.get(warehouse_id).as_dict()
        except errors.NotFound:
            return None

    return _call(f"get SQL warehouse {warehouse_id!r}", get)


def uc_table_get(*, full_name: str) -> dict[str, Any] | None:
    """``GET /api/2.1/unity-catalog/tables/{full_name}`` as a dict (columns, comment, ...), or None when absent."""
    from databricks.sdk import errors

    client = settings_client()

    def get() -> dict[str, Any] | None:
        try:
            return client.tables.get(full_name).as_dict()
        except errors.NotFound:
            return None

    return _call(f"get table {full_name!r}", get)


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
        # The SDK raises TimeoutError when its own retry budget (429/503/timeouts) runs out. The exception's
        # text names the host and URL; engineers see this message, so only its type is kept.
        raise TransientPipelineError(
            f"{what}: {type(exc).__name__}: the workspace did not answer", system=SYSTEM
        ) from None
    except (ValueError, TypeError, KeyError) as exc:
        # Bad configuration (an invalid host) or a response of the wrong shape.
        raise PermanentPipelineError(f"{what}: {type(exc).__name__}: {exc}", system=SYSTEM) from None
