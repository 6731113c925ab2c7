"""A worker's lease on a rollout (renewed between and during steps), the status names, a step's deadline."""

from __future__ import annotations

import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from pipelines.models import Environment, Rollout, RolloutStep

RolloutStatus = Rollout.Status
StepStatus = RolloutStep.Status


class LeaseLost(Exception):
    """Another worker owns the rollout now (our lease expired); stop without writing anything."""


class _Run:
    """One worker's claim on a rollout: renews the lease, and notices when it was lost."""

    def __init__(self, rollout: Rollout, owner: str) -> None:
        self.rollout = rollout
        self.owner = owner
        self.last_renew = time.monotonic()

    def renew(self, *, force: bool = False) -> None:
        lease = settings.ROLLOUT_LEASE_SECONDS
        if not force and time.monotonic() - self.last_renew < min(5.0, lease / 3):
            return
        renewed = Rollout.objects.filter(
            pk=self.rollout.pk, lease_owner=self.owner, status=RolloutStatus.RUNNING
        ).update(lease_expires_at=timezone.now() + timedelta(seconds=lease))
        if not renewed:
            raise LeaseLost(f"rollout {self.rollout.pk}: lease lost")
        self.last_renew = time.monotonic()


def _deadline(environment: Environment) -> float:
    return time.monotonic() + environment.ready_timeout_seconds
