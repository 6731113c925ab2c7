"""Every door to the outside: MLflow tracking and registry, Databricks, Unity Catalog, Delta, LLM
endpoints, local model serving's proxy and process runner, and the outbound-address checker.

Adapters import no app (checked by import-linter in ``make lint``) and turn the outside's failures into
``errors.TransientPipelineError`` (worth a retry) or ``errors.PermanentPipelineError``.
"""
