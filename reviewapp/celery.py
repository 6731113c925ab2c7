"""The Celery app and every periodic schedule."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reviewapp.settings")

app = Celery("reviewapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    # Every minute: free leases that expired, so their slots go back to the queue.
    "reclaim-expired-leases": {"task": "reviewapp.leases_reclaim", "schedule": 60.0},
    # Every 30 s: re-queue evaluation chunks whose worker died (lease expired) or whose message was lost.
    "sweep-evaluation-runs": {"task": "evaluations.runs_sweep", "schedule": 30.0},
    # Every 5 minutes: log finished evaluation runs that MLflow could not take yet (server down).
    "log-evaluation-runs-to-mlflow": {"task": "evaluations.runs_mlflow_log_pending", "schedule": 300.0},
}
