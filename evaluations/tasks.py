"""Celery tasks for evaluations: thin, ids in, one service call, nothing returned (STYLE §7)."""

from __future__ import annotations

from celery import shared_task

from pipelines.adapters.errors import TransientPipelineError


@shared_task(
    name="evaluations.run_chunk",
    ignore_result=True,
    acks_late=True,
    autoretry_for=(TransientPipelineError,),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=5,
    soft_time_limit=1800,
    time_limit=1860,  # below the broker's visibility timeout (3600 s), or Redis would redeliver a live task
)
def run_chunk(chunk_id: int) -> None:
    from evaluations.services.chunks import run_chunk_execute

    run_chunk_execute(chunk_id=chunk_id)


@shared_task(name="evaluations.runs_sweep", ignore_result=True, soft_time_limit=120, time_limit=150)
def runs_sweep() -> None:
    from evaluations.services.runs import runs_sweep as runs_sweep_service

    runs_sweep_service()


@shared_task(
    name="evaluations.run_mlflow_log",
    ignore_result=True,
    acks_late=True,
    autoretry_for=(TransientPipelineError,),
    retry_backoff=30,
    retry_backoff_max=600,
    max_retries=3,  # then the beat task below keeps trying
    soft_time_limit=600,
    time_limit=660,
)
def run_mlflow_log(run_id: int) -> None:
    from evaluations.services.tracking import run_mlflow_log as run_mlflow_log_service

    run_mlflow_log_service(run_id=run_id)


@shared_task(name="evaluations.runs_mlflow_log_pending", ignore_result=True, soft_time_limit=900, time_limit=960)
def runs_mlflow_log_pending() -> None:
    from evaluations.services.tracking import runs_mlflow_log_pending as runs_mlflow_log_pending_service

    runs_mlflow_log_pending_service()
