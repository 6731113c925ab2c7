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
}
