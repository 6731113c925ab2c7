"""Every task that talks to the outside retries a TransientPipelineError the one way (pipelines/tasks/retry.py)."""

from __future__ import annotations

import pytest

from evaluations import tasks as evaluation_tasks
from pipelines.adapters.errors import TransientPipelineError
from pipelines.tasks import assessments, model_versions, promotions, pushes


@pytest.mark.parametrize(
    ("task", "backoff", "backoff_max", "max_retries"),
    [
        (assessments.assessments_sync, 10, 300, 3),
        (assessments.assessment_sync_execute, 10, 300, 3),
        (assessments.dataset_version_to_mlflow, 10, 300, 5),
        (assessments.mlflow_dataset_export_run, 10, 300, 5),
        (evaluation_tasks.run_chunk, True, 300, 5),
        (evaluation_tasks.run_mlflow_log, 30, 600, 3),
        (model_versions.registry_sync, 30, 600, 3),
        (promotions.webhook_deliver, 2, 300, 6),
        (pushes.push_execute, 5, 300, 5),
    ],
)
def test_tasks_retry_transient_errors_with_backoff(task, backoff, backoff_max, max_retries) -> None:  # type: ignore[no-untyped-def]
    assert task.autoretry_for == (TransientPipelineError,)
    assert (task.retry_backoff, task.retry_backoff_max, task.max_retries) == (backoff, backoff_max, max_retries)


def test_tasks_that_do_not_retry_keep_celerys_defaults() -> None:
    assert not getattr(promotions.rollout_advance, "autoretry_for", ())  # it retries inside each step
    assert not getattr(pushes.feed_push_due, "autoretry_for", ())
