"""Every door to the outside: MLflow tracking and registry, Databricks, Unity Catalog, Delta, LLM
endpoints, webhook receivers, local model serving's proxy and process runner, and the outbound-address
checker.

The contract (docs/architecture.md, "The adapter contract"): adapters import no app (checked by
import-linter in ``make lint``) and read no settings: each call takes its configuration
(``DatabricksConfig``, ``DeltaConfig``, ``MlflowConfig``, ``OutboundRules``); every request has a short
timeout and a bounded retry budget; failures leave as ``errors.TransientPipelineError`` (worth a retry:
408, 425, 429, 5xx, no answer) or ``errors.PermanentPipelineError``, by ``errors.http_status_error``.
"""
