"""The one jobs kernel: long work is a row first, then a task (ARCHITECTURE.md "Long work: one kernel").

Every kind of background work (an evaluation chunk, a push, an export, a rollout, an assessment
sync, ...) is a row of a model that inherits :class:`Job`: a status, a lease (owner token and
expiry), attempts, times and an error. A task takes the row id and

- ``job_claim`` takes the row with one conditional UPDATE: only when it is queued, or running under
  an expired lease, and has attempts left; the claim gets a fresh owner token and counts an attempt.
  Only columns of the row are in the WHERE clause, so PostgreSQL re-checks them after waiting for a
  concurrent claimer's row lock and two workers never both hold a job (SQLite serialises writers).
- ``job_renew`` extends the lease while it works, and says when the claim was lost;
- ``job_finish`` records the result; ``job_fail`` either puts the row back in the queue (transient:
  the task retries it later) or fails it for good (permanent).

Each app registers its kinds (:func:`job_kind_register`, from its ``jobs`` module, imported by its
AppConfig.ready): the model, the task that runs one row, the lease, the attempts allowed, how often
it is swept. One sweeper (:func:`jobs_sweep`, task ``reviewapp.jobs_sweep``) goes over the
registered kinds: a running row whose lease expired (its worker died) goes back to the queue and is
sent again, a queued row whose message seems lost is sent again, and a row out of attempts fails.
Its beat entries are derived from the registry (:func:`jobs_sweep_schedule`): one per sweep
interval, naming the kinds swept at it, so a new kind needs no hand-written entry.

Tasks are sent by name once the current transaction commits, so services never import task modules.
The kernel does not know the kinds' apps: reviewapp's core imports neither evaluations nor pipelines.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

logger = logging.getLogger(__name__)

ERROR_MAX = 4000


class Job(models.Model):
    """The lease fields every job row has. A kind keeps its own status words (the UI shows them):
    it overrides ``status`` with its choices and names its four kernel states below."""

    JOB_QUEUED: ClassVar[str] = "queued"
    JOB_RUNNING: ClassVar[str] = "running"
    JOB_DONE: ClassVar[str] = "done"
    JOB_FAILED: ClassVar[str] = "failed"

    status = models.CharField(max_length=16, default="queued")
    attempts = models.PositiveIntegerField(default=0)  # claims so far
    # A random token per claim: a worker whose lease expired and was re-claimed cannot renew or
    # finish someone else's claim.
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)  # last time its task was sent
    started_at = models.DateTimeField(null=True, blank=True)  # first claim
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        abstract = True


# --- the registry ------------------------------------------------------------------------------

Setting = int | float | Callable[[], int | float | None] | None


@dataclass(frozen=True)
class JobKind:
    """One kind of job: its model, the task that runs one row (called with the row id), and its limits.

    ``lease_seconds``, ``max_attempts`` and ``resend_after_seconds`` may be callables, read each time
    (settings). ``max_attempts`` None: never give up (a rollout must end through its own failure
    path, which restores traffic). ``scope`` narrows the rows the sweeper looks at (the chunks of
    active runs). ``give_up(pk, still, reason)`` fails a row out of attempts when the kind has more to do
    than mark it failed; ``still`` is the condition the row must still match. ``after_sweep`` runs
    after each sweep of the kind (close runs whose chunks all finished, expire old files).
    """

    name: str
    model: type[Job]
    task: str
    lease_seconds: Setting
    max_attempts: Setting = None
    resend_after_seconds: Setting = 600
    scope: Callable[[], Q] | None = None
    give_up: Callable[[int, Q, str], bool] | None = None
    after_sweep: Callable[[], object] | None = None
    sweep_seconds: Setting = lambda: settings.JOBS_SWEEP_SECONDS  # a settings-callable


_KINDS: dict[str, JobKind] = {}


def job_kind_register(kind: JobKind) -> JobKind:
    """Add (or replace: a module imported twice) a kind of job; every registered kind is swept."""
    _KINDS[kind.name] = kind
    return kind


def job_kinds() -> list[JobKind]:
    return list(_KINDS.values())


def job_kind_get(model: type[Job]) -> JobKind:
    for kind in _KINDS.values():
        if kind.model is model:
            return kind
    raise LookupError(f"{model.__name__} is not a registered job kind.")


def _read(value: Setting) -> Any:
    return value() if callable(value) else value


# --- claiming, renewing, finishing ---------------------------------------------------------------


def job_claim(model: type[Job], pk: int, **fields: Any) -> str | None:
    """Claim the row for this worker: its new lease owner token, or None when it is not claimable.

    ``fields`` are written with the claim (an export starts its row count over; ``started_at=now``
    makes it the start of this attempt rather than of the first).
    """
    kind = job_kind_get(model)
    now = timezone.now()
    token = uuid.uuid4().hex
    rows = model._default_manager.filter(pk=pk).filter(
        Q(status=model.JOB_QUEUED) | Q(status=model.JOB_RUNNING, lease_expires_at__lt=now)
    )
    max_attempts = _read(kind.max_attempts)
    if max_attempts is not None:
        rows = rows.filter(attempts__lt=max_attempts)
    claimed = rows.update(
        **{
            "status": model.JOB_RUNNING,
            "lease_owner": token,
            "lease_expires_at": now + timedelta(seconds=float(_read(kind.lease_seconds))),
            "attempts": F("attempts") + 1,
            "started_at": Coalesce(F("started_at"), Value(now)),
            **fields,
        }
    )
    return token if claimed == 1 else None


def job_held(model: type[Job], pk: int, owner: str) -> Q:
    """The condition "this worker still holds the row": for updates that must not outlive the claim."""
    return Q(pk=pk, lease_owner=owner, status=model.JOB_RUNNING)


def job_renew(model: type[Job], pk: int, owner: str, **fields: Any) -> bool:
    """Extend the lease; False when the claim was lost (the lease expired and another worker has it)."""
    seconds = float(_read(job_kind_get(model).lease_seconds))
    return bool(
        model._default_manager.filter(job_held(model, pk, owner)).update(
            lease_expires_at=timezone.now() + timedelta(seconds=seconds), **fields
        )
    )


def job_finish(model: type[Job], pk: int, owner: str, *, status: str | None = None, **fields: Any) -> bool:
    """Record the row as finished (``status``: the kind's done state unless given); False when the
    claim was lost, and then nothing is written."""
    return bool(
        model._default_manager.filter(job_held(model, pk, owner)).update(
            status=status or model.JOB_DONE,
            lease_owner="",
            lease_expires_at=None,
            finished_at=timezone.now(),
            **fields,
        )
    )


def job_fail(model: type[Job], pk: int, owner: str, error: str, *, transient: bool, **fields: Any) -> bool:
    """Give the row up: transient puts it back in the queue for a later attempt (its task retries),
    permanent fails it with ``error``. False when the claim was lost."""
    if not transient:
        return job_finish(model, pk, owner, status=model.JOB_FAILED, error=error[:ERROR_MAX], **fields)
    return bool(
        model._default_manager.filter(job_held(model, pk, owner)).update(
            status=model.JOB_QUEUED,
            lease_owner="",
            lease_expires_at=None,
            enqueued_at=timezone.now(),
            error=error[:ERROR_MAX],
            **fields,
        )
    )


def job_closed_fields(model: type[Job], status: str, **fields: Any) -> dict[str, Any]:
    """The columns of a finished row, for kinds that finish under a lock of their own (a run's chunks)."""
    return {"status": status, "lease_owner": "", "lease_expires_at": None, "finished_at": timezone.now(), **fields}


# --- sending -------------------------------------------------------------------------------------


def job_enqueue(model: type[Job], ids: Iterable[int]) -> None:
    """Send the kind's task for each row once the current transaction commits (at once outside one).

    By name: the services that create rows never import task modules (faces).
    """
    kind = job_kind_get(model)
    for pk in ids:
        task_send_on_commit(kind.task, pk)


def task_send_on_commit(name: str, *args: Any) -> None:
    """Send the task ``name`` once the current transaction commits (at once outside of one)."""

    def send() -> None:
        from celery import current_app

        app = current_app._get_current_object()
        if name not in app.tasks:
            # A web process has not imported the task modules (only workers autodiscover them):
            # import them once, so the task's own options apply (and eager mode, in tests).
            app.autodiscover_tasks(force=True)
        app.signature(name, args=list(args)).apply_async()

    transaction.on_commit(send)


# --- the sweeper ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class KindSweep:
    requeued_ids: tuple[int, ...] = ()  # rows sent again (lease expired, or the message seems lost)
    failed: int = 0  # rows that used up their attempts

    @property
    def requeued(self) -> int:
        return len(self.requeued_ids)


def _gave_up(attempts: int) -> str:
    return f"Gave up after {attempts} attempts (the worker stopped each time before finishing)."


def job_kind_sweep(kind: JobKind, *, now: datetime | None = None) -> KindSweep:
    """Sweep one kind: re-queue rows whose lease expired, re-send lost messages, fail rows out of attempts."""
    now = now or timezone.now()
    model = kind.model
    rows = model._default_manager.all()
    if kind.scope is not None:
        rows = rows.filter(kind.scope())
    max_attempts = _read(kind.max_attempts)
    requeued: list[int] = []
    failed = 0

    def give_up(pk: int, still: Q, attempts: int) -> int:
        if kind.give_up is not None:
            return int(kind.give_up(pk, still, _gave_up(attempts)))
        return model._default_manager.filter(still, pk=pk).update(
            **job_closed_fields(model, model.JOB_FAILED, error=_gave_up(attempts))
        )

    expired = Q(status=model.JOB_RUNNING, lease_expires_at__lt=now)
    for pk, attempts in rows.filter(expired).values_list("pk", "attempts"):
        if max_attempts is not None and attempts >= max_attempts:
            failed += give_up(pk, expired, attempts)
        elif model._default_manager.filter(expired, pk=pk).update(
            status=model.JOB_QUEUED, lease_owner="", lease_expires_at=None, enqueued_at=now
        ):
            requeued.append(pk)
    resend = now - timedelta(seconds=float(_read(kind.resend_after_seconds)))
    lost = Q(status=model.JOB_QUEUED) & (Q(enqueued_at__lt=resend) | Q(enqueued_at__isnull=True))
    for pk, attempts in rows.filter(lost).values_list("pk", "attempts"):
        if max_attempts is not None and attempts >= max_attempts:
            failed += give_up(pk, lost, attempts)
        elif model._default_manager.filter(lost, pk=pk).update(enqueued_at=now):
            requeued.append(pk)
    job_enqueue(model, requeued)
    if kind.after_sweep is not None:
        kind.after_sweep()
    return KindSweep(requeued_ids=tuple(requeued), failed=failed)


def jobs_sweep(*, kinds: Iterable[str] | None = None, now: datetime | None = None) -> dict[str, KindSweep]:
    """Sweep the registered kinds named in ``kinds`` (every kind when None); one broken kind does not
    stop the others. A name no longer registered (an entry of an older deploy's schedule) is skipped."""
    wanted = None if kinds is None else set(kinds)
    out: dict[str, KindSweep] = {}
    for kind in job_kinds():
        if wanted is not None and kind.name not in wanted:
            continue
        try:
            out[kind.name] = job_kind_sweep(kind, now=now)
        except Exception:
            logger.exception("Sweeping %s failed", kind.name)
    return out


SWEEP_ENTRY = "sweep-jobs"


def jobs_sweep_schedule() -> dict[str, dict[str, Any]]:
    """The sweeper's beat entries, derived from the registry: one per sweep interval, with the kinds
    swept at it (``sweep-jobs`` for those at ``JOBS_SWEEP_SECONDS``, ``sweep-jobs-every-<n>s`` for
    others). Grouped rather than one per kind: as many sweeper messages as intervals, not kinds."""
    by_interval: dict[float, list[str]] = {}
    for kind in job_kinds():
        by_interval.setdefault(float(_read(kind.sweep_seconds)), []).append(kind.name)
    default = float(settings.JOBS_SWEEP_SECONDS)
    return {
        (SWEEP_ENTRY if seconds == default else f"{SWEEP_ENTRY}-every-{seconds:g}s"): {
            "task": "reviewapp.jobs_sweep",
            "schedule": seconds,
            "kwargs": {"kinds": sorted(names)},
        }
        for seconds, names in sorted(by_interval.items())
    }
