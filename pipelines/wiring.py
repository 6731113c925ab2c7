"""The one place pipelines turns Django settings into the adapters' configurations.

Adapters (``pipelines/adapters/``) never read settings: every call takes its configuration as an
argument. Callers in pipelines get it here, built from ``django.conf.settings`` at call time (so a
changed setting, e.g. ``override_settings`` in a test, is seen on the next call). Evaluations, whose
core may import only ``pipelines.adapters``, calls the same ``from_settings`` classmethods itself.
"""

from __future__ import annotations

from django.conf import settings

from pipelines.adapters.databricks import DatabricksConfig
from pipelines.adapters.delta import DeltaConfig
from pipelines.adapters.mlflow_common import MlflowConfig
from pipelines.adapters.outbound import OutboundRules


def outbound_rules() -> OutboundRules:
    """OUTBOUND_ALLOWED_HOSTS, DELTA_ALLOWED_ROOTS (+ DELTA_ROOT), UC_ALLOWED_SCHEMAS, SECRET_ENV_PREFIX."""
    return OutboundRules.from_settings(settings)


def databricks_config() -> DatabricksConfig:
    """The deployment's workspace (DATABRICKS_*), with its SQL warehouse and Volume for Unity Catalog."""
    return DatabricksConfig.from_settings(settings)


def delta_config() -> DeltaConfig:
    """DELTA_STORAGE_OPTIONS and DELTA_STORAGE_TIMEOUT_SECONDS."""
    return DeltaConfig.from_settings(settings)


def mlflow_config() -> MlflowConfig:
    """MLFLOW_TRACKING_URI, MLFLOW_REGISTRY_URI, MLFLOW_ARTIFACT_ROOT and the Databricks workspace."""
    return MlflowConfig.from_settings(settings)
