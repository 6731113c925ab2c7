"""Celery tasks: deliveries to Delta tables and Unity Catalog (thin: ids in, one service call)."""

from __future__ import annotations

from celery import shared_task

from pipelines.tasks.retry import transient_retry


@shared_task(
    name="pipelines.push_execute",
    ignore_result=True,
    acks_late=True,
    **transient_retry(backoff=5, backoff_max=300),
    max_retries=5,  # then the jobs kernel's sweeper re-queues it (DELIVERY_PUSH_MAX_ATTEMPTS bounds worker deaths)
    soft_time_limit=540,
    time_limit=570,  # below the push lease (DELIVERY_PUSH_LEASE_SECONDS, 600) and the broker's visibility timeout
)
def push_execute(push_id: int) -> None:
    from pipelines.datasets.pushes import push_execute as push_execute_service

    push_execute_service(push_id=push_id)


@shared_task(name="pipelines.feed_push_due", ignore_result=True, soft_time_limit=120, time_limit=150)
def feed_push_due() -> None:
    from pipelines.datasets.pushes import feed_push_due as feed_push_due_service

    feed_push_due_service()
