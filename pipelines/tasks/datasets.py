"""Celery tasks: curated datasets, versions and exports (thin: ids in, one service call)."""

from __future__ import annotations

from celery import shared_task


@shared_task(
    name="pipelines.export_job_run",
    ignore_result=True,
    acks_late=True,  # safe: the job is claimed with a conditional UPDATE and written to a temp file
    soft_time_limit=3600,
    time_limit=3660,
)
def export_job_run(job_id: int) -> None:
    from pipelines.datasets.export_jobs import export_job_run as export_job_run_service

    export_job_run_service(job_id=job_id)


@shared_task(name="pipelines.export_jobs_sweep", ignore_result=True, soft_time_limit=60, time_limit=90)
def export_jobs_sweep() -> None:
    from pipelines.datasets.export_jobs import export_jobs_expire
    from pipelines.datasets.export_jobs import export_jobs_sweep as export_jobs_sweep_service

    export_jobs_sweep_service()
    export_jobs_expire()
