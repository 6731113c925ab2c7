from __future__ import annotations

from celery import shared_task


@shared_task(name="reviewapp.leases_reclaim", ignore_result=True, soft_time_limit=60, time_limit=90)
def leases_reclaim() -> None:
    from reviewapp.services.queue import leases_reclaim_expired

    leases_reclaim_expired()


@shared_task(name="reviewapp.stats_refresh", ignore_result=True, soft_time_limit=240, time_limit=270)
def stats_refresh() -> None:
    from reviewapp.selectors.stats import projects_stats_refresh

    projects_stats_refresh()
