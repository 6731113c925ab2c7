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


@shared_task(name="reviewapp.jobs_sweep", ignore_result=True, soft_time_limit=120, time_limit=150)
def jobs_sweep(kinds: list[str] | None = None) -> None:
    """The one sweeper: re-queue expired or lost jobs of the named kinds, or of every registered kind
    (reviewapp.jobs); beat sends one per sweep interval (jobs_sweep_schedule)."""
    from reviewapp.jobs import jobs_sweep as jobs_sweep_service

    jobs_sweep_service(kinds=kinds)


@shared_task(name="reviewapp.project_sync", ignore_result=True, soft_time_limit=3600, time_limit=3700)
def project_sync(sync_id: int) -> None:
    """Bring a project's items in line with its settings (services.project_sync); resumes at its cursor."""
    from reviewapp.services.project_sync import project_sync_run

    project_sync_run(sync_id)
