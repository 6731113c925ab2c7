"""The rollout engine: carry out a promotion (or a rollback) on one environment, step by step.

A :class:`Rollout` row is written first, with its steps, in the transaction that approved the
request; the ``pipelines.rollout_advance`` task is sent once that commits. The task:

1. claims the row with a conditional UPDATE (``queued``, or ``running`` with an expired lease) and a
   fresh lease owner; a second copy of the message finds nothing to claim and stops;
2. runs the steps that are not done yet, in order, renewing the lease between and during them
   (a lost lease stops the worker: someone else owns the rollout now);
3. each step re-checks the real state before it acts (the alias already points at the version,
   the endpoint already serves the split), so re-running it after a crash is harmless;
4. transient errors (5xx, timeouts) are retried in the step ``ROLLOUT_STEP_MAX_ATTEMPTS`` times;
   after that, or on a permanent error, the rollout fails: traffic and the alias go back to the
   version that served before (``from_version``), the step keeps its error, the request is FAILED.

Steps of a rollout: ``alias``; for each canary stage ``traffic_<p>`` then ``health_<p>`` (real queries
sent to the candidate itself, then a soak watched for error rate and p95 latency: ``rollout.health``); ``finish``.
A rollback has the same shape with one stage at 100%. ``rollout_retry`` resumes a failed rollout
from its failed step (the alias step runs again, since the failure put the alias back).
``rollouts_sweep`` (beat) re-sends rollouts whose worker died or whose message was lost.
"""

from pipelines.releases.rollout.engine import rollout_advance
from pipelines.releases.rollout.health import health_check_records
from pipelines.releases.rollout.lease import LeaseLost, RolloutStatus, StepStatus
from pipelines.releases.rollout.queueing import (
    PENDING_RESEND_SECONDS,
    canary_stages,
    rollout_create,
    rollout_retry,
    rollouts_sweep,
)

__all__ = [
    "PENDING_RESEND_SECONDS",
    "LeaseLost",
    "RolloutStatus",
    "StepStatus",
    "canary_stages",
    "health_check_records",
    "rollout_advance",
    "rollout_create",
    "rollout_retry",
    "rollouts_sweep",
]
