"""The Databricks adapter: the only module that imports ``databricks.sdk``.

Every call takes a :class:`DatabricksConfig` (the workspace, its credentials and timeout; the app
builds it from its ``DATABRICKS_*`` settings) and plain values, and returns plain dicts; this module
reads no settings. SDK and transport errors become :class:`TransientPipelineError` (408, 425, 429,
5xx, timeouts, refused connections) or :class:`PermanentPipelineError` (bad credentials, unknown
endpoint, invalid request, a body that is not what the API promises): see :func:`_call`.
``databricks.sdk`` costs ~1.3 s to import, so it is imported on first use, never at Django start-up.

Clients are built with short ``retry_timeout_seconds`` / ``http_timeout_seconds``: with the
SDK's defaults the constructor alone can block for five minutes on an unreachable host (it
probes ``GET {host}/.well-known/databricks-config`` with a 300 s retry budget). One client per
(host, token, timeout) is kept per process, so the probe runs once, not per call.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pipelines.adapters import outbound
from pipelines.adapters.errors import (
    PermanentPipelineError,
    TransientPipelineError,
    connection_error,
    http_status_error,
)

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

    from pipelines.adapters.table_rows import TableBatch

T = TypeVar("T")
SYSTEM = "databricks"

_clients: dict[tuple[str, str, float], WorkspaceClient] = {}
_clients_lock = threading.Lock()


@dataclass(frozen=True)
class DatabricksConfig:
    """A workspace and how to reach it: a PAT (``token``) or a service principal (``client_id`` and
    ``client_secret``, OAuth M2M), every request and the SDK's retries bounded by ``timeout_seconds``.

    ``warehouse_id`` and ``uc_volume`` serve Unity Catalog delivery (SQL statements, Volume uploads);
    ``outbound`` decides whether the host may be called at all. Secrets are left out of ``repr``.
    """

    host: str = ""
    token: str = field(default="", repr=False)
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    timeout_seconds: float = 30.0
    warehouse_id: str = ""
    uc_volume: str = ""
    outbound: outbound.OutboundRules = field(default_factory=outbound.OutboundRules)

    @classmethod
    def from_settings(cls, settings: Any) -> DatabricksConfig:
        """The deployment's workspace, from the ``DATABRICKS_*`` settings (a token wins over OAuth M2M)."""
        token = str(settings.DATABRICKS_TOKEN or "")
        return cls(
            host=str(settings.DATABRICKS_HOST or ""),
            token=token,
            client_id="" if token else str(settings.DATABRICKS_CLIENT_ID or ""),
            client_secret="" if token else str(settings.DATABRICKS_CLIENT_SECRET or ""),
            timeout_seconds=float(settings.DATABRICKS_TIMEOUT_SECONDS),
            warehouse_id=str(getattr(settings, "DATABRICKS_WAREHOUSE_ID", "") or ""),
            uc_volume=str(getattr(settings, "DATABRICKS_UC_VOLUME", "") or ""),
            outbound=outbound.OutboundRules.from_settings(settings),
        )

    @property
    def configured(self) -> bool:
        """True when a workspace is named (``DATABRICKS_HOST``)."""
        return bool(self.host)

    @property
    def has_credentials(self) -> bool:
        return bool(self.token or (self.client_id and self.client_secret))


def workspace_client(config: DatabricksConfig) -> WorkspaceClient:
    """A client whose every request (and the SDK's own retries) ends within ``config.timeout_seconds``:
    PAT-authenticated with ``config.token``, or OAuth M2M (a service principal) when no token is given."""
    if not config.host:
        raise PermanentPipelineError("Databricks is not configured: set DATABRICKS_HOST", system=SYSTEM)
    if not config.has_credentials:
        raise PermanentPipelineError(
            "no Databricks credentials: set DATABRICKS_TOKEN (or DATABRICKS_CLIENT_ID/SECRET)", system=SYSTEM
        )
    host, token = config.host, config.token
    # The same outbound rule as LLM endpoints and webhooks: no private or metadata address unless allowed.
    outbound.url_guard(
        host if "://" in host else f"https://{host}", rules=config.outbound, what="Databricks host", system=SYSTEM
    )
    secret = token if token else f"{config.client_id}\0{config.client_secret}"
    # Keyed by a hash: the credentials themselves are never kept anywhere but in the SDK's config.
    key = (host.rstrip("/"), hashlib.sha256(secret.encode()).hexdigest(), float(config.timeout_seconds))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = _call(
                "connect",
                lambda: _build_client(host, token, config.timeout_seconds, config.client_id, config.client_secret),
            )
        return client


def bearer_token(config: DatabricksConfig) -> str:
    """A bearer token for the workspace: the PAT, or the service principal's current OAuth access token
    (fetched by the SDK once and refreshed before it expires). For other clients of the same workspace
    (MLflow's REST stores), so they need no credentials in the environment."""
    client = workspace_client(config)
    headers = _call("authenticate", client.config.authenticate)
    value = str(headers.get("Authorization", ""))
    if not value.lower().startswith("bearer "):
        raise PermanentPipelineError("Databricks authentication gave no bearer token", system=SYSTEM)
    return value[7:]


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
    config: DatabricksConfig,
    *,
    endpoint_name: str,
    messages: list[dict[str, str]],
    temperature: float = 0.0,
    max_tokens: int = 512,
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
    client = workspace_client(config)
    response = _call(
        f"query serving endpoint {endpoint_name!r}",
        lambda: client.serving_endpoints.query(
            name=endpoint_name, messages=chat, temperature=temperature, max_tokens=max_tokens
        ),
    )
    return response.as_dict()


def serving_endpoint_get(config: DatabricksConfig, *, name: str) -> dict[str, Any]:
    """``GET /api/2.0/serving-endpoints/{name}`` as a dict (``state.ready``, ``config.served_entities``, ...)."""
    client = workspace_client(config)
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


def serving_endpoint_state(config: DatabricksConfig, *, name: str) -> dict[str, Any] | None:
    """``GET /api/2.0/serving-endpoints/{name}`` as a dict, or None when the endpoint does not exist."""
    from databricks.sdk import errors

    client = workspace_client(config)

    def get() -> dict[str, Any] | None:
        try:
            return client.serving_endpoints.get(name).as_dict()
        except errors.NotFound:
            return None

    return _call(f"get serving endpoint {name!r}", get)


def serving_endpoint_config_update(
    config: DatabricksConfig, *, name: str, entities: list[dict[str, str]], routes: list[dict[str, Any]]
) -> dict[str, Any]:
    """``PUT /api/2.0/serving-endpoints/{name}/config``: serve ``entities`` with the ``routes`` split; no waiting."""
    client = workspace_client(config)

    def put() -> dict[str, Any]:
        waiter = client.serving_endpoints.update_config(
            name=name, served_entities=_served_entities(entities), traffic_config=_traffic_config(routes)
        )
        return waiter.response.as_dict() if waiter.response is not None else {}

    return _call(f"update the config of serving endpoint {name!r}", put)


def serving_endpoint_create(
    config: DatabricksConfig, *, name: str, entities: list[dict[str, str]], routes: list[dict[str, Any]]
) -> dict[str, Any]:
    """``POST /api/2.0/serving-endpoints``: create the endpoint serving ``entities``; no waiting."""
    from databricks.sdk.service.serving import EndpointCoreConfigInput

    client = workspace_client(config)
    endpoint = EndpointCoreConfigInput(
        name=name, served_entities=_served_entities(entities), traffic_config=_traffic_config(routes)
    )

    def create() -> dict[str, Any]:
        waiter = client.serving_endpoints.create(name=name, config=endpoint)
        return waiter.response.as_dict() if waiter.response is not None else {}

    return _call(f"create serving endpoint {name!r}", create)


def serving_endpoint_query_records(config: DatabricksConfig, *, name: str, records: list[dict[str, Any]]) -> list[Any]:
    """``POST /serving-endpoints/{name}/invocations`` with ``dataframe_records``; the predictions (a list)."""
    return serving_endpoint_query_served(config, name=name, records=records)[0]


def client_ready(config: DatabricksConfig) -> None:
    """Build (and cache) the workspace's client now: the first one of a process takes seconds (imports,
    host probe), which must not count as the latency of the first request timed after it."""
    workspace_client(config)


def serving_endpoint_query_served(
    config: DatabricksConfig, *, name: str, records: list[dict[str, Any]], served_entity: str | None = None
) -> tuple[list[Any], str]:
    """Query the endpoint, or one served entity behind it; ``(predictions, served model name)``.

    Without ``served_entity``: ``serving_endpoints.query`` (``POST /serving-endpoints/{name}/invocations``,
    split by the endpoint's routes). With it: the served entity's own invocation path, ``POST
    /serving-endpoints/{name}/served-models/{served_entity}/invocations`` (Databricks' "query individual
    models behind an endpoint"), which the SDK has no method for, so it goes through the SDK's API
    client (same auth, retries and error mapping). The served model name is the ``served-model-name``
    response header ("" when absent).
    """
    client = workspace_client(config)
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


def uc_model_alias_get(config: DatabricksConfig, *, full_name: str, alias: str) -> str | None:
    """The version a Unity Catalog model alias points at, or None when the alias is not set."""
    from databricks.sdk import errors

    client = workspace_client(config)

    def get() -> str | None:
        try:
            info = client.model_versions.get_by_alias(full_name, alias)
        except errors.NotFound:
            return None
        return None if info.version is None else str(info.version)

    return _call(f"get alias {alias!r} of {full_name!r}", get)


def uc_model_alias_set(config: DatabricksConfig, *, full_name: str, alias: str, version: str) -> None:
    """``PUT /api/2.1/unity-catalog/models/{full_name}/aliases/{alias}`` with ``version_num``."""
    client = workspace_client(config)
    _call(
        f"set alias {alias!r} of {full_name!r}",
        lambda: client.registered_models.set_alias(full_name, alias, int(version)),
    )


def uc_model_alias_delete(config: DatabricksConfig, *, full_name: str, alias: str) -> None:
    from databricks.sdk import errors

    client = workspace_client(config)

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


def uc_file_upload(config: DatabricksConfig, *, path: str, data: bytes) -> None:
    """``PUT /api/2.0/fs/files{path}?overwrite=true``: a file in a UC Volume (replaced if it exists)."""
    import io

    client = workspace_client(config)
    _call(
        f"upload {path}",
        lambda: client.files.upload(path, io.BytesIO(data), overwrite=True, use_parallel=False),
    )


def sql_statement_run(
    config: DatabricksConfig,
    *,
    statement: str,
    warehouse_id: str,
    timeout_seconds: float = 300.0,
    parameters: list[dict[str, str | None]] | None = None,
) -> dict[str, Any]:
    """Run one SQL statement on a warehouse and wait for it (``POST /api/2.0/sql/statements``, then
    ``GET .../{id}`` while PENDING/RUNNING). Returns ``{"statement_id", "columns", "types", "rows"}``:
    column names, their ``type_name`` (``LONG``, ``STRING``, ``TIMESTAMP``, ...) and every row of every
    result chunk (``GET .../{id}/result/chunks/{n}`` after the first), values as JSON_ARRAY strings.

    ``parameters``: named parameter markers (``:name`` in the statement), each ``{"name", "value",
    "type"}`` (value None is NULL, type defaults to STRING): values are never formatted into the SQL.
    A FAILED statement raises PermanentPipelineError with Databricks' error code and message
    (TransientPipelineError for overload codes); no answer within ``timeout_seconds`` cancels it and
    raises TransientPipelineError.
    """
    import time

    from databricks.sdk.service.sql import Disposition, Format, StatementParameterListItem

    if not warehouse_id:
        raise PermanentPipelineError("no SQL warehouse configured: set DATABRICKS_WAREHOUSE_ID", system=SYSTEM)
    client = workspace_client(config)
    wait = min(50, max(5, int(config.timeout_seconds)))
    first_line = statement.strip().split("\n", 1)[0][:60]
    what = f"SQL statement {first_line!r}"
    items = [
        StatementParameterListItem(name=p["name"] or "", value=p.get("value"), type=p.get("type") or None)
        for p in parameters or []
    ]
    response = _call(
        what,
        lambda: client.statement_execution.execute_statement(
            statement=statement,
            warehouse_id=warehouse_id,
            wait_timeout=f"{wait}s",
            parameters=items or None,
            disposition=Disposition.INLINE,
            format=Format.JSON_ARRAY,
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
        code = str((getattr(err.error_code, "value", err.error_code) if err else None) or "")
        message = (err.message if err else "") or f"the statement ended {state}"
        error_class = (
            TransientPipelineError if code in SQL_TRANSIENT_ERRORS or state == "CANCELED" else PermanentPipelineError
        )
        raise error_class(f"{what}: {state} {code}: {message}".replace(" : ", ": "), system=SYSTEM)
    schema_columns = (response.manifest.schema.columns or []) if response.manifest and response.manifest.schema else []
    if response.manifest and response.manifest.truncated:
        # INLINE results stop at 25 MiB: a page that big must be asked for in smaller pieces.
        raise PermanentPipelineError(
            f"{what}: the result was truncated (over 25 MiB); read fewer rows at a time", system=SYSTEM
        )
    rows = list((response.result.data_array if response.result else None) or [])
    chunk = response.result
    while chunk is not None and chunk.next_chunk_index is not None:
        chunk = _call(
            what,
            functools.partial(
                client.statement_execution.get_statement_result_chunk_n,
                response.statement_id or "",
                chunk.next_chunk_index,
            ),
        )
        rows.extend(chunk.data_array or [])
    return {
        "statement_id": response.statement_id,
        "columns": [c.name for c in schema_columns],
        "types": [str(getattr(c.type_name, "value", c.type_name) or "") for c in schema_columns],
        "rows": rows,
    }


# --- Unity Catalog table reads (sources) -------------------------------------------------------
#
# A UC table is read in pages ordered by (watermark column, key column): the watermark is the pair of
# the last row read, and the next page asks for rows strictly after it,
#   WHERE wm > :wm OR (wm = :wm AND key > :key)  ORDER BY wm, key  LIMIT n,
# so rows that share a watermark value (many requests in one millisecond) are neither skipped at a
# page boundary nor read twice. Values travel as named parameters; identifiers are backtick-quoted
# after validation (a column name with a backtick is refused). Rows whose watermark or key is NULL
# are never read. Rows that arrive later with a watermark below the stored one are not read either:
# use a column that only grows (an ingestion time, a table version, an id).

# UC column types (TableInfo type_name) a watermark may have, and the SQL type of its parameter.
WATERMARK_TYPES = {
    "TIMESTAMP": "TIMESTAMP",
    "TIMESTAMP_NTZ": "TIMESTAMP_NTZ",
    "DATE": "DATE",
    "LONG": "BIGINT",
    "INT": "INT",
    "SHORT": "SMALLINT",
    "BYTE": "TINYINT",
    "STRING": "STRING",
}
KEY_TYPES = {k: v for k, v in WATERMARK_TYPES.items() if k in ("LONG", "INT", "SHORT", "BYTE", "STRING")}
MAX_PAGE_ROWS = 10_000


@dataclass(frozen=True)
class UcWatermark:
    """The (watermark column, key column) values of the last row read, as the API returned them
    (JSON_ARRAY text); both None before the first row."""

    value: str | None = None
    key: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"value": self.value, "key": self.key}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> UcWatermark:
        data = data or {}
        value, key = data.get("value"), data.get("key")
        return cls(value=None if value is None else str(value), key=None if key is None else str(key))


def _identifier(name: str) -> str:
    return f"`{name}`"  # names with a backtick were refused by ColumnMapping.build / uc_table_read


def _json_array_value(value: str | None, type_name: str) -> Any:
    """A JSON_ARRAY cell (text or null) as a Python value of its column's type."""
    import json

    if value is None:
        return None
    if type_name in ("LONG", "INT", "SHORT", "BYTE"):
        return int(value)
    if type_name in ("DOUBLE", "FLOAT"):
        return float(value)
    if type_name == "BOOLEAN":
        return value.lower() == "true"
    if type_name in ("ARRAY", "STRUCT", "MAP"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value  # STRING, TIMESTAMP (ISO 8601 text), DATE, DECIMAL, ...


def uc_table_read(
    config: DatabricksConfig,
    *,
    table: str,
    mapping: dict[str, str],
    watermark_column: str,
    key_column: str | None = None,
    metadata_columns: list[str] | tuple[str, ...] = (),
    watermark: UcWatermark | None = None,
    batch_size: int = 1000,
    warehouse_id: str | None = None,
    timeout_seconds: float = 300.0,
) -> Iterator[TableBatch]:
    """Read the rows of the Unity Catalog table ``table`` (``catalog.schema.table``) after ``watermark``.

    Pages of ``batch_size`` rows ordered by ``(watermark_column, key_column)`` (``key_column``
    defaults to the column mapped to ``trace_id``, else ``external_id``; it breaks ties and should be
    unique), until a page comes back short. Yields :class:`~pipelines.adapters.table_rows.TableBatch`:
    item-shaped rows (``mapping``: item field -> column, see ``table_rows``), the :class:`UcWatermark`
    to store after ingesting them, and the rows scanned. Lazy: stop at any point, resume from the
    stored watermark. The table's columns are checked first (``GET /api/2.1/unity-catalog/tables``).

    PermanentPipelineError: a bad table name, no such table, a mapped column it lacks, a watermark
    or key column of an unorderable type, a FAILED statement. TransientPipelineError: 408/429/5xx,
    timeouts, an overloaded warehouse.
    """
    from pipelines.adapters.table_rows import ColumnMapping, column_name_check
    from pipelines.adapters.unity_catalog import uc_name_validate, uc_quote

    problem = uc_name_validate(table)
    if problem:
        raise PermanentPipelineError(f"invalid Unity Catalog table name {table!r}: {problem}", system=SYSTEM)
    if not 1 <= batch_size <= MAX_PAGE_ROWS:
        raise PermanentPipelineError(f"batch_size must be between 1 and {MAX_PAGE_ROWS}", system=SYSTEM)
    columns = ColumnMapping.build(mapping, metadata_columns, system=SYSTEM)
    key_column = key_column or columns.fields.get("trace_id") or columns.fields.get("external_id")
    if not key_column:
        raise PermanentPipelineError(
            "a Unity Catalog source needs a key column to order rows that share a watermark value: "
            "map trace_id or external_id, or name the key column",
            system=SYSTEM,
        )
    for column in (watermark_column, key_column):
        column_name_check(column, system=SYSTEM)
    warehouse = warehouse_id if warehouse_id is not None else config.warehouse_id
    if not warehouse:
        raise PermanentPipelineError("no SQL warehouse configured: set DATABRICKS_WAREHOUSE_ID", system=SYSTEM)
    info = uc_table_get(config, full_name=table)
    if info is None:
        raise PermanentPipelineError(f"Unity Catalog table {table} does not exist (or is not visible)", system=SYSTEM)
    types = {c["name"]: str(c.get("type_name") or "").upper() for c in info.get("columns") or []}
    columns.check(list(types), table=f"Unity Catalog table {table}", system=SYSTEM)
    for label, column, allowed in (("watermark", watermark_column, WATERMARK_TYPES), ("key", key_column, KEY_TYPES)):
        if column not in types:
            raise PermanentPipelineError(
                f"Unity Catalog table {table} has no column {column!r} (the {label} column)", system=SYSTEM
            )
        if types[column] not in allowed:
            raise PermanentPipelineError(
                f"the {label} column {column!r} of {table} is {types[column]}; use one of {', '.join(allowed)}",
                system=SYSTEM,
            )
    return _uc_pages(
        config,
        table=uc_quote(table),
        columns=columns,
        wm_column=watermark_column,
        wm_type=WATERMARK_TYPES[types[watermark_column]],
        key_column=key_column,
        key_type=KEY_TYPES[types[key_column]],
        start=watermark or UcWatermark(),
        batch_size=batch_size,
        warehouse_id=warehouse,
        timeout_seconds=timeout_seconds,
    )


def _uc_pages(
    config: DatabricksConfig,
    *,
    table: str,
    columns: Any,
    wm_column: str,
    wm_type: str,
    key_column: str,
    key_type: str,
    start: UcWatermark,
    batch_size: int,
    warehouse_id: str,
    timeout_seconds: float,
) -> Iterator[TableBatch]:
    from pipelines.adapters.table_rows import TableBatch

    selected = list(dict.fromkeys([*columns.columns, wm_column, key_column]))
    wm, key = _identifier(wm_column), _identifier(key_column)
    select = (
        f"SELECT {', '.join(_identifier(c) for c in selected)} FROM {table} "  # noqa: S608 (identifiers quoted)
        f"WHERE {wm} IS NOT NULL AND {key} IS NOT NULL"
    )
    order = f" ORDER BY {wm}, {key} LIMIT {int(batch_size)}"
    position = start
    parameters: list[dict[str, str | None]] | None
    while True:
        if position.value is None:
            statement, parameters = select + order, None
        else:
            statement = select + f" AND ({wm} > :wm OR ({wm} = :wm AND {key} > :key))" + order
            parameters = [
                {"name": "wm", "value": position.value, "type": wm_type},
                {"name": "key", "value": position.key, "type": key_type},
            ]
        result = sql_statement_run(
            config,
            statement=statement,
            warehouse_id=warehouse_id,
            timeout_seconds=timeout_seconds,
            parameters=parameters,
        )
        names, types, data = result["columns"], result["types"], result["rows"]
        if names != selected:
            raise PermanentPipelineError(
                f"reading {table}: the statement returned columns {names}, not {selected}", system=SYSTEM
            )
        if not data:
            return
        by_column = {name: [_json_array_value(row[i], types[i]) for row in data] for i, name in enumerate(names)}
        last = data[-1]
        after = UcWatermark(value=last[names.index(wm_column)], key=last[names.index(key_column)])
        if after == position:  # only possible if the key is not unique: the next page would be this one again
            raise PermanentPipelineError(
                f"reading {table}: rows after ({wm_column}, {key_column}) = ({after.value}, {after.key}) repeat "
                f"that position; the key column {key_column!r} must be unique",
                system=SYSTEM,
            )
        position = after
        yield TableBatch(rows=columns.rows(by_column), watermark=position, scanned=len(data))
        if len(data) < batch_size:
            return


def _statement_state(response: Any) -> str:
    state = response.status.state if response.status else None
    return str(getattr(state, "value", state) or "")


def sql_warehouse_get(config: DatabricksConfig, *, warehouse_id: str) -> dict[str, Any] | None:
    """``GET /api/2.0/sql/warehouses/{id}`` as a dict (``state``, ``name``), or None when there is no such warehouse."""
    from databricks.sdk import errors

    client = workspace_client(config)

    def get() -> dict[str, Any] | None:
        try:
            return client.warehouses.get(warehouse_id).as_dict()
        except errors.NotFound:
            return None

    return _call(f"get SQL warehouse {warehouse_id!r}", get)


def uc_table_get(config: DatabricksConfig, *, full_name: str) -> dict[str, Any] | None:
    """``GET /api/2.1/unity-catalog/tables/{full_name}`` as a dict (columns, comment, ...), or None when absent."""
    from databricks.sdk import errors

    client = workspace_client(config)

    def get() -> dict[str, Any] | None:
        try:
            return client.tables.get(full_name).as_dict()
        except errors.NotFound:
            return None

    return _call(f"get table {full_name!r}", get)


def _status_of(exc: BaseException) -> int | None:
    """The HTTP status behind an SDK error, from its class (the SDK keeps no status on the exception)."""
    from databricks.sdk.errors import platform

    by_class: dict[type, int] = {klass: status for status, klass in platform.STATUS_CODE_MAPPING.items()}
    for klass in type(exc).__mro__:
        if klass in by_class:
            return by_class[klass]
    return None


def _call(what: str, fn: Callable[[], T]) -> T:
    """Run one SDK call and translate its failure into a pipeline error that says what failed.

    HTTP failures follow the one rule of ``errors.http_status_error`` (408/425/429/5xx transient, other
    4xx permanent), read from the SDK's error class. The SDK has a class for every status the
    Databricks API documents; what it raises as a bare ``DatabricksError`` is an answer from something
    in between (a gateway's 502, a proxy's 408), so it is transient.
    """
    import requests
    from databricks.sdk import errors

    try:
        return fn()
    except requests.JSONDecodeError as exc:
        # A 200 whose body is not JSON: the endpoint is broken, retrying the same request will not help.
        raise PermanentPipelineError(f"{what}: the response is not JSON ({exc})", system=SYSTEM) from None
    except errors.Aborted as exc:  # a 409 for a concurrent change: the retry reads the new state
        raise TransientPipelineError(f"{what}: {type(exc).__name__}: {exc}", system=SYSTEM) from None
    except errors.DatabricksError as exc:
        status = _status_of(exc)
        message = f"{what}: {type(exc).__name__}: {exc}"
        if status is None:
            raise TransientPipelineError(message, system=SYSTEM) from None
        raise http_status_error(SYSTEM, status, message) from None
    except (TimeoutError, requests.Timeout, requests.ConnectionError) as exc:
        # The SDK raises TimeoutError when its own retry budget (429/503/timeouts) runs out. The exception's
        # text names the host and URL; engineers see this message, so only its type is kept.
        raise connection_error(SYSTEM, f"{what}: {type(exc).__name__}: the workspace did not answer") from None
    except (ValueError, TypeError, KeyError) as exc:
        # Bad configuration (an invalid host) or a response of the wrong shape.
        raise PermanentPipelineError(f"{what}: {type(exc).__name__}: {exc}", system=SYSTEM) from None
