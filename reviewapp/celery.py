"""The Celery app and every periodic schedule."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reviewapp.settings")

app = Celery("reviewapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    # Every minute: free leases that expired, so their slots go back to the queue.
    "reclaim-expired-leases": {"task": "reviewapp.leases_reclaim", "schedule": 60.0},
    # Dashboard figures of projects that changed, computed here so pages never compute them cold.
    "refresh-dashboard-figures": {"task": "reviewapp.stats_refresh", "schedule": float(settings.STATS_REFRESH_SECONDS)},
    # The jobs kernel's sweeper entries ("sweep-jobs", ...) are derived from its registry once the
    # apps are ready: see jobs_sweep_entries_install below.
    # Every MODEL_REGISTRY_SYNC_SECONDS (default 5 minutes): copy registered model versions from the registry.
    "sync-model-registry": {
        "task": "pipelines.registry_sync_all",
        "schedule": float(settings.MODEL_REGISTRY_SYNC_SECONDS),
    },
    # Every DELIVERY_PUSH_INTERVAL_SECONDS (default 5 minutes): push newly curated labels to every
    # delivery target whose feed is on, one micro-batch per target.
    "push-curated-feed": {
        "task": "pipelines.feed_push_due",
        "schedule": float(settings.DELIVERY_PUSH_INTERVAL_SECONDS),
    },
    # Every SOURCES_DUE_SECONDS (default 30 s): a pull for each enabled source whose interval has passed.
    "pull-due-sources": {"task": "pipelines.sources_due", "schedule": float(settings.SOURCES_DUE_SECONDS)},
    # Every MONITORING_REFRESH_SECONDS (default 1 minute): queue each project's monitoring refresh
    # (a job row; the buckets touched since its watermark are recomputed on a worker).
    "refresh-monitoring": {
        "task": "pipelines.monitoring_refresh_due",
        "schedule": float(settings.MONITORING_REFRESH_SECONDS),
    },
}
if settings.MLFLOW_ASSESSMENT_SYNC_SECONDS:
    # Every MLFLOW_ASSESSMENT_SYNC_SECONDS (default 5 minutes): write curated labels changed since
    # their last sync to their items' MLflow traces as assessments.
    app.conf.beat_schedule["sync-assessments-to-mlflow"] = {
        "task": "pipelines.assessments_sync",
        "schedule": float(settings.MLFLOW_ASSESSMENT_SYNC_SECONDS),
    }
if settings.DEMO_TRAFFIC_SECONDS:
    # Demo only (make demo sets DEMO_TRAFFIC_SECONDS): an end user's request to the demo model, as an
    # MLflow trace with simulated feedback. A tick not run in time is dropped, not run late.
    app.conf.beat_schedule["demo-traffic"] = {
        "task": "pipelines.demo_traffic",
        "schedule": float(settings.DEMO_TRAFFIC_SECONDS),
        "options": {"expires": float(settings.DEMO_TRAFFIC_SECONDS)},
    }


def jobs_sweep_entries_install(**_kwargs: Any) -> None:
    """Put the jobs kernel's sweeper entries, derived from its registry (reviewapp.jobs), in the schedule.

    The registry is filled by the apps' AppConfig.ready, after this module is imported: so this runs
    on ``import_modules`` (sent by beat and workers once Django's fixup has set Django up, before the
    scheduler reads the schedule) and after the app is finalized in a process whose apps are ready.
    Entries of the sweeper from an earlier call are replaced (a kind's interval is a setting).
    """
    from django.apps import apps

    if not apps.ready:
        return
    from reviewapp.jobs import jobs_sweep_schedule

    kept = {k: v for k, v in app.conf.beat_schedule.items() if v.get("task") != "reviewapp.jobs_sweep"}
    app.conf.beat_schedule = {**kept, **jobs_sweep_schedule()}


# Connected after Celery's Django fixup (connected when the app was made), so Django is set up here.
signals.import_modules.connect(jobs_sweep_entries_install, sender=app, weak=False)
app.on_after_finalize.connect(jobs_sweep_entries_install, weak=False)
