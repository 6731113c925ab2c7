"""Celery tasks: monitoring buckets kept up to date (pipelines/sources/monitoring.py).

Thin: the beat queues each project's refresh row; a worker runs one row. Safe to run twice: a
refresh recomputes buckets from the per-item values, never by adding deltas.
"""

from __future__ import annotations

from celery import shared_task


@shared_task(name="pipelines.monitoring_refresh_due", ignore_result=True)
def monitoring_refresh_due() -> None:
    """Beat: queue every project's monitoring refresh that is not already queued or running."""
    from pipelines.sources.monitoring import monitoring_refresh_queue

    monitoring_refresh_queue()


@shared_task(
    name="pipelines.monitoring_refresh",
    ignore_result=True,
    acks_late=True,
    soft_time_limit=840,
    time_limit=870,  # below the row's lease (900 s)
)
def monitoring_refresh(refresh_id: int) -> None:
    """One project's refresh row (also what the jobs kernel's sweeper sends again after a dead worker)."""
    from pipelines.sources.monitoring import monitoring_refresh_execute

    monitoring_refresh_execute(refresh_id=refresh_id)


@shared_task(name="pipelines.alerts_evaluate", ignore_result=True, acks_late=True, soft_time_limit=240, time_limit=270)
def alerts_evaluate(project_id: int) -> None:
    """The project's alert rules, after its monitoring refresh (idempotent: a rule moves once, locked)."""
    from pipelines.sources.alerts import alerts_evaluate as evaluate

    evaluate(project_id=project_id)
