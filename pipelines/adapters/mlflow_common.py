"""What the MLflow adapters (``mlflow_tracking``, ``mlflow_registry``) share: their configuration, the
HTTP limits MLflow reads from the environment, the stores that talk to Databricks with credentials
passed in, and the one mapping of MLflow's errors.

HTTP limits. MLflow 3.17 reads its per-request timeout and retry budget only from the environment
(``MLFLOW_HTTP_REQUEST_TIMEOUT``, ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``_BACKOFF_FACTOR``, read per
request in ``mlflow/utils/rest_utils.py: http_request``); ``MlflowClient`` and the REST stores take no
such argument. So the wiring publishes them once, at process start (``reviewapp/settings.py`` calls
:func:`http_limits_environ`), and no adapter touches ``os.environ`` per call.

Databricks credentials. MLflow looks for a workspace's credentials in the environment or a config
file (``mlflow/utils/databricks_utils.py: get_databricks_host_creds``). The REST stores, however, take
a ``get_host_creds`` function (``BaseRestStore(get_host_creds)``), so for ``databricks`` /
``databricks-uc`` URIs the adapters build the stores themselves with :func:`databricks_host_creds`:
the host and a bearer token (the PAT, or the service principal's OAuth token from
:mod:`pipelines.adapters.databricks`) come from :class:`MlflowConfig` and never enter the environment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines.adapters import outbound
from pipelines.adapters.databricks import DatabricksConfig, bearer_token
from pipelines.adapters.errors import PermanentPipelineError, PipelineError, TransientPipelineError, http_status_error

if TYPE_CHECKING:
    from mlflow.exceptions import MlflowException

SYSTEM = "mlflow"
# MLflow error codes that mean "this request is wrong" whatever HTTP status MLflow gives them
# (INVALID_STATE, FEATURE_DISABLED and MAX_BLOB_SIZE_EXCEEDED map to 500 or nothing); every other code
# follows its HTTP status (errors.http_status_error).
PERMANENT_CODES = frozenset(
    {
        "INVALID_PARAMETER_VALUE",
        "RESOURCE_ALREADY_EXISTS",
        "RESOURCE_DOES_NOT_EXIST",
        "NOT_FOUND",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
        "BAD_REQUEST",
        "INVALID_STATE",
        "FEATURE_DISABLED",
        "MAX_BLOB_SIZE_EXCEEDED",
    }
)


@dataclass(frozen=True)
class MlflowConfig:
    """Where runs, traces and models live, and the Databricks workspace behind ``databricks`` URIs."""

    tracking_uri: str
    registry_uri: str = ""  # blank: the tracking server's own registry
    artifact_root: str = ""  # new experiments keep their artifacts under it (local stores)
    databricks: DatabricksConfig = field(default_factory=DatabricksConfig)
    secret_env_prefix: str = outbound.DEFAULT_SECRET_ENV_PREFIX  # stripped from model processes

    @classmethod
    def from_settings(cls, settings: Any) -> MlflowConfig:
        return cls(
            tracking_uri=str(settings.MLFLOW_TRACKING_URI),
            registry_uri=str(getattr(settings, "MLFLOW_REGISTRY_URI", "") or ""),
            artifact_root=str(getattr(settings, "MLFLOW_ARTIFACT_ROOT", "") or ""),
            databricks=DatabricksConfig.from_settings(settings),
            secret_env_prefix=str(getattr(settings, "SECRET_ENV_PREFIX", outbound.DEFAULT_SECRET_ENV_PREFIX)),
        )

    @property
    def registry(self) -> str:
        return self.registry_uri or self.tracking_uri

    @property
    def registry_is_unity_catalog(self) -> bool:
        """True when model versions live in Unity Catalog (``MLFLOW_REGISTRY_URI=databricks-uc``)."""
        return _scheme(self.registry) == "databricks-uc"

    @property
    def registry_is_databricks(self) -> bool:
        return _scheme(self.registry) in ("databricks", "databricks-uc")

    @property
    def tracking_is_databricks(self) -> bool:
        return _scheme(self.tracking_uri) == "databricks"


def _scheme(uri: str) -> str:
    return uri.split(":", 1)[0].strip().lower()


def http_limits_environ(*, max_retries: int, timeout: int) -> dict[str, str]:
    """The variables through which MLflow's HTTP client learns its limits; the wiring sets them once at
    process start (module docstring). MLflow's defaults retry a dead server for minutes."""
    return {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(max_retries),
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        # Traces we log (the demo's traffic) are written before the call returns: feedback is logged
        # on them at once, and the async queue's flush costs about a second per trace.
        "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false",
    }


def databricks_host_creds(config: MlflowConfig) -> Callable[[], Any]:
    """A ``get_host_creds`` function for MLflow's REST stores: the workspace of ``config.databricks``.

    Called per request, so an OAuth token the SDK refreshed is picked up. MLflow's own requests path
    is used (``use_databricks_sdk=False``), which honours MLFLOW_HTTP_REQUEST_TIMEOUT per request.
    """
    from mlflow.utils.rest_utils import MlflowHostCreds

    workspace = config.databricks
    if not workspace.host or not workspace.has_credentials:
        raise PermanentPipelineError(
            f"the MLflow registry {config.registry!r} (tracking {config.tracking_uri!r}) is on Databricks: "
            "set DATABRICKS_HOST and DATABRICKS_TOKEN (or DATABRICKS_CLIENT_ID/SECRET)",
            system=SYSTEM,
        )
    host = workspace.host if "://" in workspace.host else f"https://{workspace.host}"
    outbound.url_guard(host, rules=workspace.outbound, what="Databricks host", system=SYSTEM)

    def creds() -> Any:
        token = workspace.token or bearer_token(workspace)
        return MlflowHostCreds(host, token=token, use_databricks_sdk=False)

    return creds


def tracking_store(config: MlflowConfig) -> Any:
    """The REST tracking store of a Databricks workspace, credentials from ``config``."""
    from mlflow.store.tracking.rest_store import RestStore

    return RestStore(databricks_host_creds(config))


def registry_store(config: MlflowConfig) -> Any:
    """The registry store of ``config.registry`` on Databricks (Unity Catalog or the workspace registry)."""
    creds = databricks_host_creds(config)
    if config.registry_is_unity_catalog:
        from mlflow.store._unity_catalog.registry.rest_store import UcModelRegistryStore

        store = UcModelRegistryStore(store_uri=config.registry, tracking_uri=config.tracking_uri)
        # The constructor binds MLflow's environment lookup; these are its documented credential hooks.
        store.get_host_creds = creds
        store.get_tracking_host_creds = creds
        return store
    from mlflow.store.model_registry.rest_store import RestStore

    return RestStore(creds)


def mlflow_error(message: str, exc: MlflowException) -> PipelineError:
    """The pipeline error for an ``MlflowException``: a code that says the request is wrong is
    permanent, every other follows its HTTP status (408/425/429/5xx transient, other 4xx permanent)."""
    if exc.error_code in PERMANENT_CODES:
        return PermanentPipelineError(message, system=SYSTEM)
    return http_status_error(SYSTEM, int(exc.get_http_status_code()), message)


def store_error(message: str, exc: BaseException) -> PipelineError:
    """Any other failure under MLflow: I/O, HTTP and database errors are transient, the rest permanent."""
    if isinstance(exc, PipelineError):
        return exc
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        return mlflow_error(message, exc)
    transient: tuple[type[BaseException], ...] = (OSError, TimeoutError, ConnectionError)
    try:
        import requests
        from sqlalchemy.exc import OperationalError

        transient += (requests.RequestException, OperationalError)
    except ImportError:  # pragma: no cover - both come with mlflow
        pass
    error_class = TransientPipelineError if isinstance(exc, transient) else PermanentPipelineError
    return error_class(message, system=SYSTEM)
