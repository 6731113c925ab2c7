"""Celery tasks: pulls of sources (thin: ids in, one service call)."""

from __future__ import annotations

from celery import shared_task

from pipelines.adapters.errors import TransientPipelineError


@shared_task(
    name="pipelines.source_pull_execute",
    ignore_result=True,
    acks_late=True,
    autoretry_for=(TransientPipelineError,),
    retry_backoff=5,
    retry_backoff_max=300,
    max_retries=5,  # then the jobs kernel's sweeper re-queues it (SOURCES_PULL_MAX_ATTEMPTS bounds worker deaths)
    soft_time_limit=540,
    time_limit=570,  # below the pull's lease (SOURCES_PULL_LEASE_SECONDS, 600), renewed with each batch
)
def source_pull_execute(pull_id: int) -> None:
    from pipelines.sources.pulls import source_pull_execute as source_pull_execute_service

    source_pull_execute_service(pull_id=pull_id)


@shared_task(name="pipelines.sources_due", ignore_result=True, soft_time_limit=60, time_limit=90)
def sources_due() -> None:
    from pipelines.sources.pulls import sources_due as sources_due_service

    sources_due_service()
