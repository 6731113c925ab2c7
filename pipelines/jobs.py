"""Pipelines' kinds of job in the one jobs kernel (reviewapp.jobs); imported by PipelinesConfig.ready."""

from __future__ import annotations

from django.conf import settings

from pipelines.models import Push
from reviewapp.jobs import JobKind, job_kind_register

PUSH = job_kind_register(
    JobKind(
        name="pipelines.push",
        model=Push,
        task="pipelines.push_execute",
        lease_seconds=lambda: settings.DELIVERY_PUSH_LEASE_SECONDS,
        max_attempts=lambda: settings.DELIVERY_PUSH_MAX_ATTEMPTS,
        resend_after_seconds=lambda: settings.DELIVERY_PUSH_LEASE_SECONDS,
    )
)
