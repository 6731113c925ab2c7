"""Reviewapp's own kinds of job in the one jobs kernel (reviewapp.jobs); imported by ReviewappConfig.ready."""

from __future__ import annotations

from django.conf import settings

from reviewapp.jobs import JobKind, job_kind_register
from reviewapp.models import ProjectSync

PROJECT_SYNC = job_kind_register(
    JobKind(
        name="reviewapp.project_sync",
        model=ProjectSync,
        task="reviewapp.project_sync",
        # renewed with every batch; a dead worker's sync is swept after it and resumes at its cursor
        lease_seconds=lambda: settings.PROJECT_SYNC_LEASE_SECONDS,
        max_attempts=10,
        resend_after_seconds=lambda: settings.PROJECT_SYNC_LEASE_SECONDS,
    )
)
