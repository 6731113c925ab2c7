"""The backend-agnostic entry points: serve a split on an environment, query it, describe it."""

from __future__ import annotations

from typing import Any

from pipelines.adapters import databricks
from pipelines.adapters.errors import PermanentPipelineError
from pipelines.models import Environment, ModelVersion
from pipelines.releases.serving.databricks import _databricks_apply
from pipelines.releases.serving.local import _local_apply, local_query
from pipelines.releases.serving.split import SYSTEM, Heartbeat, Split, entity_name
from pipelines.wiring import databricks_config


def serving_apply(
    *, environment: Environment, split: list[Split], deadline: float, heartbeat: Heartbeat
) -> dict[str, Any]:
    """Serve ``split`` on the environment and wait (until ``deadline``, a monotonic time) until it is ready."""
    if environment.serving_kind == Environment.ServingKind.DATABRICKS:
        return _databricks_apply(environment=environment, split=split, deadline=deadline, heartbeat=heartbeat)
    return _local_apply(environment=environment, split=split, deadline=deadline, heartbeat=heartbeat)


def serving_query(
    *, environment: Environment, records: list[dict[str, Any]], version: ModelVersion | None = None
) -> list[dict[str, Any]]:
    """Send ``records`` to the environment's endpoint; one ``{"prediction", "served_by"}`` per record.

    ``served_by`` is the version that answered ("" when the endpoint does not say). With ``version``
    the request goes to that version alone: on Databricks its served entity's own invocation path, on
    the local proxy the version-pinning header. A rollout's health checks reach the canary this way.
    """
    if environment.serving_kind == Environment.ServingKind.DATABRICKS:
        entity = entity_name(version) if version is not None else None
        predictions, served = databricks.serving_endpoint_query_served(
            databricks_config(), name=environment.serving_endpoint, records=records, served_entity=entity
        )
        by = _version_of_entity(served)
        return [{"prediction": p, "served_by": by, "served_entity": served} for p in predictions]
    if not environment.local_port:
        raise PermanentPipelineError(f"environment {environment.name!r} has no local port", system=SYSTEM)
    return local_query(
        port=environment.local_port, records=records, version=str(version.version) if version is not None else None
    )


def serving_prepare(*, environment: Environment) -> None:
    """Get the client to the environment's endpoint ready before requests are timed (errors surface later)."""
    if environment.serving_kind == Environment.ServingKind.DATABRICKS:
        databricks.client_ready(databricks_config())


def _version_of_entity(served: str) -> str:
    """Our served entity names end in ``-<version>`` (``entity_name``); "" for a name we did not give."""
    head, _, tail = served.rpartition("-")
    return tail if head and tail.isdigit() else ""


def serving_describe(*, environment: Environment) -> str:
    if environment.serving_kind == Environment.ServingKind.DATABRICKS:
        return f"Databricks endpoint {environment.serving_endpoint}"
    return f"local endpoint http://127.0.0.1:{environment.local_port}/invocations"
