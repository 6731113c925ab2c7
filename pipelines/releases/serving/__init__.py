"""Serving backends of an environment: Databricks Model Serving, or local MLflow model servers.

The rollout (``pipelines.releases.rollout``) asks for one thing, whatever the backend: "serve these versions
with this traffic split and tell me when it is ready" (:func:`serving_apply`), then "answer these
records" (:func:`serving_query`). Both re-check the real state first, so a step that runs twice
does nothing the second time.

- **databricks**: through ``pipelines.adapters.databricks`` (``update_config`` with served entities and a
  traffic config, polling ``get`` with our own deadline, ``query`` with ``dataframe_records``).
  The version at 100% is served alone (the old entity is dropped), as Databricks recommends.
- **local** (the default): each version runs in its own ``mlflow models serve -m models:/name/v
  --env-manager local`` process on a free port, and the environment's port is a small weighted
  proxy (``pipelines.adapters.serving_proxy``) that splits requests between them, so canary stages are real
  here too. Processes are detached from the worker and tracked by JSON state files under
  ``settings.LOCAL_SERVING_DIR``; a worker restart leaves the endpoint answering.
"""

from pipelines.releases.serving.endpoint import serving_apply, serving_describe, serving_prepare, serving_query
from pipelines.releases.serving.local import (
    local_endpoint_restore,
    local_model_server_ensure,
    local_model_server_stop,
    local_proxy_ensure,
    local_query,
    local_routes_read,
    local_servers_prune,
    local_serving_stop_all,
)
from pipelines.releases.serving.split import SYSTEM, EndpointNotReady, Heartbeat, Split, entity_name

__all__ = [
    "SYSTEM",
    "EndpointNotReady",
    "Heartbeat",
    "Split",
    "entity_name",
    "local_endpoint_restore",
    "local_model_server_ensure",
    "local_model_server_stop",
    "local_proxy_ensure",
    "local_query",
    "local_routes_read",
    "local_servers_prune",
    "local_serving_stop_all",
    "serving_apply",
    "serving_describe",
    "serving_prepare",
    "serving_query",
]
