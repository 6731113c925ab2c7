"""MLflow tracking adapter: the only module that imports ``mlflow`` to log runs.

``import mlflow`` costs ~1.4 s and 165 MB (docs: toolchain §3), so it happens inside the functions
that need it, in the worker, never at Django import time. Every error leaves here as
``TransientPipelineError`` (server down, timeout, database locked: retry later) or
``PermanentPipelineError`` (a request MLflow refuses: retrying will not help).

Logging is idempotent per ``key``: the MLflow run carries the tag ``reviewdesk.key``; a finished
run with that tag is reused, and an unfinished one (an attempt that died half-way) is deleted
and logged again, so a retry never leaves two MLflow runs or a table with rows twice.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.errors import PermanentPipelineError, PipelineError, TransientPipelineError

SYSTEM = "mlflow"
KEY_TAG = "reviewdesk.key"
# MLflow error codes that mean "this request is wrong": everything else is worth a retry.
PERMANENT_CODES = frozenset(
    {
        "INVALID_PARAMETER_VALUE",
        "RESOURCE_ALREADY_EXISTS",
        "RESOURCE_DOES_NOT_EXIST",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
        "BAD_REQUEST",
        "INVALID_STATE",
        "FEATURE_DISABLED",
        "MAX_BLOB_SIZE_EXCEEDED",
    }
)
PARAMS_PER_BATCH = 100  # MLflow's log_batch limits
METRICS_PER_BATCH = 1000
PARAM_VALUE_MAX = 6000


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    experiment_id: str
    reused: bool = False  # an earlier attempt had already logged it


def _translate(exc: BaseException) -> PipelineError:
    if isinstance(exc, PipelineError):
        return exc
    message = f"MLflow: {type(exc).__name__}: {str(exc)[:500]}"
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        if exc.error_code in PERMANENT_CODES:
            return PermanentPipelineError(message, system=SYSTEM)
        return TransientPipelineError(message, system=SYSTEM)
    transient: tuple[type[BaseException], ...] = (OSError, TimeoutError, ConnectionError)
    try:
        import requests
        from sqlalchemy.exc import OperationalError

        transient += (requests.RequestException, OperationalError)
    except ImportError:  # pragma: no cover - both come with mlflow
        pass
    if isinstance(exc, transient):
        return TransientPipelineError(message, system=SYSTEM)
    return PermanentPipelineError(message, system=SYSTEM)


def _http_limits(max_retries: int, timeout: int) -> None:
    # MLflow reads these per request; an operator's own environment wins.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(max_retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(timeout))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")


def _is_local_store(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("sqlite:", "file:", "postgresql:", "mysql:", "mssql:")) or "://" not in tracking_uri


def _experiment_id(client: Any, name: str, *, tracking_uri: str, artifact_root: str | None) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return str(experiment.experiment_id)
    location = None
    if artifact_root and _is_local_store(tracking_uri):
        # Without this a database-backed store puts artifacts under ./mlruns of whatever the cwd is.
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        location = f"{Path(artifact_root).resolve().as_uri()}/{safe}"
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # another worker created it just now
            raise
        return str(client.get_experiment_by_name(name).experiment_id)


def evaluation_run_log(
    *,
    tracking_uri: str,
    experiment_name: str,
    key: str,
    run_name: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    table: dict[str, list[Any]],
    table_file: str = "eval_results.json",
    artifact_root: str | None = None,
    http_max_retries: int = 2,
    http_timeout: int = 10,
) -> LoggedRun:
    """Log one evaluation as one MLflow run: params, metrics, tags and the per-row table artifact."""
    _http_limits(http_max_retries, http_timeout)
    try:
        from mlflow import MlflowClient
        from mlflow.entities import Metric, Param

        client = MlflowClient(tracking_uri=tracking_uri)
        experiment_id = _experiment_id(client, experiment_name, tracking_uri=tracking_uri, artifact_root=artifact_root)
        earlier = client.search_runs([experiment_id], filter_string=f"tags.`{KEY_TAG}` = '{key}'", max_results=20)
        for previous in earlier:
            if previous.info.status == "FINISHED":
                return LoggedRun(run_id=previous.info.run_id, experiment_id=experiment_id, reused=True)
            client.delete_run(previous.info.run_id)
        run = client.create_run(experiment_id, run_name=run_name, tags={**tags, KEY_TAG: key})
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        param_list = [Param(k, str(v)[:PARAM_VALUE_MAX]) for k, v in params.items()]
        metric_list = [Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None]
        for start in range(0, len(param_list), PARAMS_PER_BATCH):
            client.log_batch(run_id, params=param_list[start : start + PARAMS_PER_BATCH])
        for start in range(0, len(metric_list), METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=metric_list[start : start + METRICS_PER_BATCH])
        client.log_table(run_id, data=table, artifact_file=table_file)
        client.set_terminated(run_id, status="FINISHED")
        return LoggedRun(run_id=run_id, experiment_id=experiment_id)
    except Exception as exc:
        raise _translate(exc) from exc
