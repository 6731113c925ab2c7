"""The Celery app and every periodic schedule."""

from __future__ import annotations

import os

from celery import Celery
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
    # The one sweeper of the jobs kernel (reviewapp.jobs): jobs of every registered kind whose worker
    # died (lease expired) or whose message was lost are sent again; a new kind needs no entry here.
    "sweep-jobs": {"task": "reviewapp.jobs_sweep", "schedule": float(settings.JOBS_SWEEP_SECONDS)},
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
