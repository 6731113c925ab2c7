"""Running a suite: start (a row, chunks, one task per chunk), execute a chunk, sweep, cancel.

The life of a run (see models/runs.py):

1. ``run_start`` validates the dataset and target, snapshots the matching item ids into chunks and
   enqueues ``evaluations.run_chunk`` for each once the transaction commits.
2. ``run_chunk_execute`` (services.chunks) claims its chunk through the jobs kernel (reviewapp.jobs:
   ``pending``, or ``running`` with an expired lease, and a fresh lease owner token); it then
   scores only the (item, scorer) pairs that have no RunResult yet, writes them with ON CONFLICT
   DO NOTHING, renews its lease as it goes and stops
   when it lost the claim or the run stopped. Closing the chunk and, when it is the last one, the
   run happens in one transaction under a lock on the run row, so exactly one chunk closes a run.
3. The kernel's sweeper (``reviewapp.jobs_sweep``, beat; ``runs_sweep`` here) puts chunks whose
   lease expired back to ``pending`` and enqueues them again (a worker was killed), re-enqueues
   chunks pending for too long (a lost message), fails chunks that used up their attempts, and
   closes runs whose chunks are all finished.
4. A closed run fails when more than ``max_error_rate`` of its rows errored (checked early, after
   EARLY_FAIL_MIN_ROWS rows, so a dead judge endpoint does not burn through 10,000 calls), and
   is then logged to MLflow (services.tracking).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from evaluations.models import Run, RunChunk, RunResult, SuiteVersion
from evaluations.selectors import run_metrics_compute
from evaluations.services.datasets import (
    VERSION_INFO_KEYS,
    VersionSnapshot,
    dataset_items,
    dataset_validate,
    version_expectations_validate,
)
from evaluations.services.tracking import run_mlflow_log_queue
from evaluations.target_input import StoredTarget, target_parse
from reviewapp.errors import Conflict, FieldError, ValidationFailed
from reviewapp.jobs import job_enqueue, job_kind_sweep
from reviewapp.models import Item, Project
from reviewapp.services.audit import audit_record
from reviewapp.typed_input import field_error
from reviewapp.usertypes import signed_in

if TYPE_CHECKING:
    from reviewapp.usertypes import Actor

logger = logging.getLogger(__name__)

EARLY_FAIL_MIN_ROWS = 100  # a run may fail on its error rate once this many rows are done
TEXT_MAX = 4000  # rationale / error characters kept per result
Status = Run.Status
ChunkStatus = RunChunk.Status


# --- targets -----------------------------------------------------------------------------------


def targets_module() -> ModuleType | None:
    """``evaluations.targets`` (response generation), when this deployment has it."""
    try:
        from evaluations import targets
    except ModuleNotFoundError as exc:
        if exc.name == "evaluations.targets":
            return None
        raise
    return targets


def target_validate(*, target: Any, project: Project | None = None) -> dict[str, Any]:
    """``{"kind": "stored"}`` (score the items' own responses) or a generation target, checked."""
    if target in (None, "", "stored"):
        return {"kind": "stored"}
    parsed = target_parse(target)
    if isinstance(parsed, StoredTarget):
        return parsed.canonical()
    targets = targets_module()
    if targets is None:
        message = f"Generating responses ({parsed.kind}) is not available here."
        raise ValidationFailed([field_error("target.kind", message)])
    return dict(targets.target_validate(target, project=project))


# --- options -----------------------------------------------------------------------------------

SKIP_REASON_MAX = 200


@dataclass(frozen=True)
class RunOptions:
    """How a run scores beyond its suite and dataset.

    ``judges_skipped_item_ids``: items of the run scored without the suite's LLM judges (its code
    scorers still run); each skipped judge gets a result marked ``skipped`` with ``judges_skipped_reason``
    as its rationale, so a missing judge score is explained, never silently absent. Online
    evaluation of a source uses it for the items over the source's hourly judge budget.
    """

    judges_skipped_item_ids: tuple[int, ...] = ()
    judges_skipped_reason: str = ""

    def stored(self) -> dict[str, Any]:
        if not self.judges_skipped_item_ids:
            return {}
        return {
            "judges_skipped": {
                "item_ids": sorted(set(self.judges_skipped_item_ids)),
                "reason": self.judges_skipped_reason,
            }
        }


def run_options_validate(options: RunOptions | None, *, item_ids: Iterable[int]) -> dict[str, Any]:
    """The options as stored on the run; ValidationFailed names what is wrong."""
    if options is None:
        return {}
    errors: list[FieldError] = []
    skipped = options.judges_skipped_item_ids
    if any(not isinstance(i, int) or isinstance(i, bool) for i in skipped):
        errors.append(field_error("options.judges_skipped_item_ids", "Item ids are whole numbers."))
    elif skipped and not set(skipped) <= set(item_ids):
        errors.append(field_error("options.judges_skipped_item_ids", "Only items of the run can skip its judges."))
    reason = (options.judges_skipped_reason or "").strip()
    if skipped and not (0 < len(reason) <= SKIP_REASON_MAX):
        message = f"Say why the judges are skipped (1 to {SKIP_REASON_MAX} characters)."
        errors.append(field_error("options.judges_skipped_reason", message))
    if errors:
        raise ValidationFailed(errors, "The run cannot start.")
    return RunOptions(judges_skipped_item_ids=tuple(skipped), judges_skipped_reason=reason).stored()


def run_judges_skipped(run: Run) -> tuple[frozenset[int], str]:
    """The items that skip the run's LLM judges, and why."""
    skipped = (run.options or {}).get("judges_skipped") or {}
    return frozenset(int(i) for i in skipped.get("item_ids") or []), str(skipped.get("reason") or "")


# --- start and cancel --------------------------------------------------------------------------


def run_start(
    *,
    project: Project,
    suite_version: SuiteVersion,
    actor: Actor,
    dataset: Any = None,
    target: Any = None,
    dataset_version: VersionSnapshot | None = None,
    options: RunOptions | None = None,
) -> Run:
    """Create the run and its chunks; each chunk's task is enqueued once this commits.

    With ``dataset_version`` the run is over that curated version's items, in its row order (a
    ``dataset`` filter then narrows them), and scorers use the version's snapshotted expectations.
    ``options`` (RunOptions): e.g. items that skip the LLM judges.
    """
    errors: list[FieldError] = []
    if suite_version.suite.project_id != project.pk:
        raise ValidationFailed([field_error("suite_version", "This suite version belongs to another project.")])
    if dataset_version is not None and dataset_version.project_id != project.pk:
        raise ValidationFailed([field_error("dataset_version", "This dataset version belongs to another project.")])
    clean_dataset: dict[str, Any] = {}
    clean_target: dict[str, Any] = {}
    try:
        clean_dataset = dataset_validate(dataset=dataset)
    except ValidationFailed as exc:
        errors.extend(exc.errors)
    try:
        clean_target = target_validate(target=target, project=project)
    except ValidationFailed as exc:
        errors.extend(exc.errors)
    if errors:
        raise ValidationFailed(errors, "The run cannot start.")
    expectations: dict[str, dict[str, Any]] = {}
    version_info: dict[str, Any] = {}
    if dataset_version is None:
        ids = list(dataset_items(project=project, dataset=clean_dataset).values_list("id", flat=True))
    else:
        ids = _version_item_ids(project=project, snapshot=dataset_version, dataset=clean_dataset)
        expectations = version_expectations_validate({i: dataset_version.expectations.get(i, {}) for i in ids})
        version_info = {k: dataset_version.info.get(k) for k in VERSION_INFO_KEYS}
    if not ids:
        field = "dataset" if dataset_version is None or clean_dataset else "dataset_version"
        message = (
            "No item of this project matches the dataset."
            if field == "dataset"
            else "This dataset version has no row whose item still exists."
        )
        raise ValidationFailed([field_error(field, message)], "The run cannot start.")
    clean_options = run_options_validate(options, item_ids=ids)
    config = suite_version.config or {}
    size = int(config.get("chunk_size") or settings.EVALUATION_CHUNK_SIZE)
    max_error_rate = config.get("max_error_rate")
    now = timezone.now()
    with transaction.atomic():
        run = Run.objects.create(
            project=project,
            suite_version=suite_version,
            dataset=clean_dataset,
            dataset_version=version_info,
            target=clean_target,
            options=clean_options,
            items_total=len(ids),
            chunks_total=math.ceil(len(ids) / size),
            max_error_rate=settings.EVALUATION_MAX_ERROR_RATE if max_error_rate is None else float(max_error_rate),
            created_by=signed_in(actor),
        )
        chunks = RunChunk.objects.bulk_create(
            [
                RunChunk(
                    run=run,
                    index=n,
                    item_ids=ids[start : start + size],
                    expectations={str(i): expectations[str(i)] for i in ids[start : start + size]}
                    if expectations
                    else {},
                    enqueued_at=now,
                )
                for n, start in enumerate(range(0, len(ids), size))
            ]
        )
        audit_record(
            actor=actor,
            action="evaluation.run_start",
            target=run,
            project=project,
            data={
                "suite_version": suite_version.pk,
                "dataset": clean_dataset,
                "dataset_version": version_info or None,
                "target": clean_target,
                "items": len(ids),
            },
        )
        _enqueue([c.pk for c in chunks])
    return run


def _version_item_ids(*, project: Project, snapshot: VersionSnapshot, dataset: dict[str, Any]) -> list[int]:
    """The version's item ids in row order: those still in the project, narrowed by the filter if any."""
    narrowing = {k: v for k, v in dataset.items() if k != "limit"}
    kept = set(
        dataset_items(project=project, dataset=narrowing).filter(pk__in=snapshot.item_ids).values_list("id", flat=True)
    )
    ids = [i for i in dict.fromkeys(snapshot.item_ids) if i in kept]
    if dataset.get("limit"):
        ids = ids[: dataset["limit"]]
    return ids


def _enqueue(chunk_ids: Iterable[int]) -> None:
    """One task per chunk, sent once the current transaction commits (at once outside of one)."""
    job_enqueue(RunChunk, chunk_ids)


def run_cancel(*, run: Run, actor: Actor) -> Run:
    """Stop a queued or running run: pending chunks are dropped, running ones stop at their next step."""
    with transaction.atomic():
        locked = Run.objects.select_for_update().get(pk=run.pk)
        if locked.status not in Run.ACTIVE:
            raise Conflict(f"This run already {locked.get_status_display().lower()}; only queued or running runs stop.")
        now = timezone.now()
        RunChunk.objects.filter(run=locked, status=ChunkStatus.PENDING).update(
            status=ChunkStatus.CANCELLED, finished_at=now
        )
        locked.status = Status.CANCELLED
        locked.finished_at = now
        locked.error = f"Cancelled by {getattr(actor, 'username', None) or 'an operator'}."
        locked.metrics = run_metrics_compute(run=locked)
        locked.save(update_fields=["status", "finished_at", "error", "metrics"])
        audit_record(actor=actor, action="evaluation.run_cancel", target=locked, project=locked.project, data={})
    return locked


# --- closing chunks and runs -------------------------------------------------------------------


def chunk_close(chunk_id: int, expect: Q, status: str, error: str = "") -> bool:
    """Mark the chunk finished if it still matches ``expect``, count its rows, maybe close the run."""
    run_id = RunChunk.objects.filter(pk=chunk_id).values_list("run_id", flat=True).first()
    if run_id is None:
        return False
    with transaction.atomic():
        # The run row lock serialises chunk closes, so exactly one of them sees "no chunk left".
        run = Run.objects.select_for_update().get(pk=run_id)
        chunk = RunChunk.objects.filter(expect, pk=chunk_id).first()
        if chunk is None:
            return False
        ids = list(chunk.item_ids)
        rows_done = Item.objects.filter(pk__in=ids).count()
        if status == ChunkStatus.FAILED:
            rows_errored = rows_done
        else:
            rows_errored = (
                RunResult.objects.filter(run_id=run_id, item_id__in=ids)
                .exclude(error="")
                .values("item_id")
                .distinct()
                .count()
            )
        chunk.status = status
        chunk.finished_at = timezone.now()
        chunk.rows_done, chunk.rows_errored = rows_done, rows_errored
        chunk.error = error
        chunk.lease_owner, chunk.lease_expires_at = "", None
        chunk.save(
            update_fields=[
                "status",
                "finished_at",
                "rows_done",
                "rows_errored",
                "error",
                "lease_owner",
                "lease_expires_at",
            ]
        )
        if run.status in Run.ACTIVE:
            run.chunks_done += 1
            run.rows_done += rows_done
            run.rows_errored += rows_errored
            run.save(update_fields=["chunks_done", "rows_done", "rows_errored"])
            _run_maybe_finish(run)
    return True


def _run_maybe_finish(run: Run) -> None:
    """Close ``run`` (locked by the caller) when its chunks are done or its error rate is too high."""
    if run.status not in Run.ACTIVE:
        return
    open_chunks = RunChunk.objects.filter(run=run).exclude(status__in=RunChunk.TERMINAL).exists()
    rate = run.error_rate
    too_many = rate is not None and rate > run.max_error_rate
    if too_many and (not open_chunks or run.rows_done >= EARLY_FAIL_MIN_ROWS):
        _run_close(run, Status.FAILED, _error_rate_reason(run))
    elif not open_chunks:
        _run_close(run, Status.SUCCEEDED, "")


def _error_rate_reason(run: Run) -> str:
    rate = run.error_rate or 0.0
    reason = (
        f"{run.rows_errored} of {run.rows_done} rows errored ({rate:.0%}), more than this suite's limit "
        f"of {run.max_error_rate:.0%}."
    )
    top = (
        RunResult.objects.filter(run=run)
        .exclude(error="")
        .values("scorer", "error")
        .annotate(n=Count("id"))
        .order_by("-n")
        .first()
    )
    if top:
        reason += f" Most common: {top['scorer']}: “{top['error'][:300]}” ({top['n']} rows)."
    failed = RunChunk.objects.filter(run=run, status=ChunkStatus.FAILED).exclude(error="").first()
    if failed:
        reason += f" Chunk {failed.index} failed: {failed.error[:300]}"
    return reason


def _run_close(run: Run, status: str, error: str) -> None:
    now = timezone.now()
    run.status = status
    run.error = error
    run.finished_at = now
    run.metrics = run_metrics_compute(run=run)
    run.save(update_fields=["status", "error", "finished_at", "metrics"])
    RunChunk.objects.filter(run=run, status=ChunkStatus.PENDING).update(status=ChunkStatus.CANCELLED, finished_at=now)
    run_mlflow_log_queue(run=run)


# --- the sweeper -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    requeued: int  # chunks enqueued again (lease expired, or the message seems lost)
    failed: int  # chunks that used up their attempts
    closed: int  # runs closed because all their chunks had finished


def runs_sweep(*, now: datetime | None = None) -> SweepResult:
    """The jobs kernel's sweep of evaluation chunks, then close runs whose chunks all finished."""
    from evaluations.jobs import RUN_CHUNK

    swept = job_kind_sweep(replace(RUN_CHUNK, after_sweep=None), now=now)
    return SweepResult(requeued=swept.requeued, failed=swept.failed, closed=runs_close_finished())


def chunk_give_up(chunk_id: int, still: Q, reason: str) -> bool:
    """Fail a chunk that used up its attempts: its rows count as errored, and it may close its run."""
    return chunk_close(chunk_id, still, ChunkStatus.FAILED, reason)


def chunks_in_active_runs() -> Q:
    return Q(run__status__in=Run.ACTIVE)


def runs_close_finished() -> int:
    """Close active runs whose chunks have all finished (a close the last chunk missed); how many closed."""
    closed = 0
    finished = Run.objects.filter(status__in=Run.ACTIVE).exclude(
        chunks__status__in=[ChunkStatus.PENDING, ChunkStatus.RUNNING]
    )
    for run_id in finished.values_list("pk", flat=True):
        with transaction.atomic():
            run = Run.objects.select_for_update().get(pk=run_id)
            _run_maybe_finish(run)
            closed += run.status not in Run.ACTIVE
    return closed
