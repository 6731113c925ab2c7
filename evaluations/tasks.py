"""Celery tasks for evaluations: thin, ids in, one service call, nothing returned (STYLE §7)."""

from __future__ import annotations

from celery import shared_task

from pipelines.tasks.retry import transient_retry


@shared_task(
    name="evaluations.run_chunk",
    ignore_result=True,
    acks_late=True,
    **transient_retry(backoff=True, backoff_max=300),
    max_retries=5,
    soft_time_limit=1800,
    time_limit=1860,  # below the broker's visibility timeout (3600 s), or Redis would redeliver a live task
)
def run_chunk(chunk_id: int) -> None:
    from evaluations.services.chunks import run_chunk_execute

    run_chunk_execute(chunk_id=chunk_id)


@shared_task(
    name="evaluations.run_mlflow_log",
    ignore_result=True,
    acks_late=True,
    **transient_retry(backoff=30, backoff_max=600),
    max_retries=3,  # then the jobs kernel's sweeper sends it again every few minutes
    soft_time_limit=600,
    time_limit=660,
)
def run_mlflow_log(run_id: int) -> None:
    from evaluations.services.tracking import run_mlflow_log as run_mlflow_log_service

    run_mlflow_log_service(run_id=run_id)
