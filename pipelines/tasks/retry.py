"""How a task retries when the outside system is down for now: one definition for every tasks module.

A ``TransientPipelineError`` (MLflow, Databricks, a webhook's receiver unreachable or answering 5xx)
is retried by Celery with exponential backoff and jitter; after the last retry the task ends, and the
next scheduled run or the jobs kernel's sweeper (reviewapp/jobs.py) sends the work again.
"""

from __future__ import annotations

from typing import Any

from pipelines.adapters.errors import TransientPipelineError


def transient_retry(*, backoff: int | bool, backoff_max: int) -> dict[str, Any]:
    """Celery task options: retry on TransientPipelineError, first after ``backoff`` seconds (``True``:
    Celery's 1 s), doubling up to ``backoff_max``. Each task sets its own ``max_retries``."""
    return {"autoretry_for": (TransientPipelineError,), "retry_backoff": backoff, "retry_backoff_max": backoff_max}
