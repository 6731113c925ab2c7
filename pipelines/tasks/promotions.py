"""Celery tasks: promotion requests, approvals and rollouts (thin: ids in, one service call)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from pipelines.tasks.retry import transient_retry


@shared_task(
    name="pipelines.rollout_advance",
    ignore_result=True,
    acks_late=True,
    soft_time_limit=3300,
    time_limit=3400,  # below the broker's visibility timeout (3600 s), or Redis would redeliver a live task
)
def rollout_advance(rollout_id: int) -> None:
    # No autoretry: the engine retries transient errors inside each step and records the failure itself.
    from pipelines.releases.rollout import rollout_advance as rollout_advance_service

    rollout_advance_service(rollout_id=rollout_id)


@shared_task(
    name="pipelines.webhook_deliver",
    ignore_result=True,
    acks_late=True,
    **transient_retry(backoff=2, backoff_max=300),
    max_retries=6,
    soft_time_limit=30,
    time_limit=45,
)
def webhook_deliver(url: str, payload: dict[str, Any], delivery_id: str = "") -> None:
    from pipelines.releases.webhooks import webhook_deliver as webhook_deliver_service

    webhook_deliver_service(url=url, payload=payload, delivery_id=delivery_id)
