"""Celery task of the demo's simulated traffic (thin: one service call). Scheduled only when
DEMO_TRAFFIC_SECONDS is set (reviewapp/celery.py); never retried: a lost demo request is harmless."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="pipelines.demo_traffic", ignore_result=True, soft_time_limit=60, time_limit=90)
def demo_traffic() -> None:
    from pipelines.demo_traffic import demo_traffic_tick

    demo_traffic_tick()
