"""Curated labels back to MLflow: assessments on the originating traces, and evaluation datasets.

**Write-back** (``assessments_sync``). For every curated label whose item carries a ``trace_id``,
the label's final answers are logged on that trace as HUMAN **feedback** (one per feedback question,
named by the question key) and its ground truth as HUMAN **expectations** (``expected_response``,
``expected_facts``, and any other expectation-type question by key). The source id is the deciding
curator (adjudicated labels) or the reviewers, comma-separated (consensus). Every assessment carries
``metadata`` ``reviewdesk.label_id`` / ``reviewdesk.label_version``.

Exactly once, per (label, label version): an :class:`AssessmentSync` ledger row is created for the
version, claimed with a conditional UPDATE (and a lease, so a dead worker's claim is taken over),
and marked synced at the end; a synced version is never looked at again. Within one sync the
trace's own assessments are read first and the label's earlier ones (found by their metadata) are
reconciled with what the label says now:

- same value: kept (a retry after a crash mid-way adopts what the first attempt wrote);
- changed feedback: overridden (``overrides=<old id>``, as ``mlflow.override_feedback``; MLflow keeps
  the old one, marked not valid);
- changed expectation: updated in place (``update_assessment``);
- a question no longer answered: its assessment is deleted.

So a new label version updates the trace instead of piling up duplicates. A trace MLflow does not
have, or a value it refuses, fails that label's row with the reason (retried on later syncs up to
``MLFLOW_ASSESSMENT_SYNC_MAX_ATTEMPTS``) and the others go on; MLflow being down
(TransientPipelineError) puts the row back and stops the sync, for the task to retry.

**Evaluation datasets** (``dataset_version_to_mlflow``): a dataset version's rows in the ``mlflow``
export shape (``inputs``, ``outputs``, ``expectations``, ``tags``) merged into an MLflow evaluation
dataset, recorded in :class:`MlflowDatasetExport` so doing it again reuses the same MLflow dataset.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from pipelines.adapters import mlflow_tracking
from pipelines.adapters.errors import PermanentPipelineError, PipelineError, TransientPipelineError
from pipelines.models import AssessmentSync, DatasetRow, DatasetVersion, MlflowDatasetExport
from reviewapp.models import CuratedLabel, Project, Question

logger = logging.getLogger(__name__)

LABEL_ID = "reviewdesk.label_id"
LABEL_VERSION = "reviewdesk.label_version"
# No dots: MLflow 3.17's dataset search does not match dotted tag keys, even quoted.
DATASET_VERSION_TAG = "reviewdesk_dataset_version"
LEASE = timedelta(minutes=5)
ERROR_MAX = 4000
Status = AssessmentSync.Status


@dataclass(frozen=True)
class SyncReport:
    synced: int = 0  # label versions now on their traces
    failed: int = 0  # label versions that failed this time (reason on their ledger row)
    written: int = 0  # assessments logged, overridden, updated or deleted in MLflow


@dataclass(frozen=True)
class _Wanted:
    kind: str  # "feedback" | "expectation"
    name: str
    value: Any
    rationale: str | None

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"


# --- what a label says ---------------------------------------------------------------------------


def _source_id(label: CuratedLabel) -> str:
    if label.method == CuratedLabel.Method.ADJUDICATED and label.decided_by_id:
        return str(label.decided_by.get_username())
    names = sorted({r.reviewer.get_username() for r in label.reviews.all() if r.reviewer_id})
    return ",".join(names) or "reviewdesk"


def _rationale(label: CuratedLabel, key: str) -> str:
    if label.method == CuratedLabel.Method.ADJUDICATED:
        return label.rationale or "Decided by a curator."
    question = ((label.agreement or {}).get("questions") or {}).get(key) or {}
    reason = question.get("reason") if isinstance(question, dict) else None
    return f"Consensus of the reviews{f': {reason}' if reason else ''}."


def _feedback_value(value: Any) -> Any:
    """A value MLflow feedback accepts (scalars, or a list / dict of scalars), or None to skip."""
    if value is None or value == "" or value == [] or value == {}:
        return None
    if isinstance(value, list) and any(v is None for v in value):
        return [v for v in value if v is not None] or None  # per-chunk relevance with unrated chunks
    return value


def label_assessments(label: CuratedLabel, *, kinds: dict[str, str]) -> list[_Wanted]:
    """The feedback and expectations one label puts on its trace (``kinds``: question key -> type)."""
    wanted: list[_Wanted] = []
    answers = label.answers if isinstance(label.answers, dict) else {}
    question_kinds = kinds
    for key, raw in answers.items():
        kind = question_kinds.get(key, Question.AssessmentType.FEEDBACK)
        if kind == "expected_response" or kind == "expected_facts":
            continue  # logged from the label's own fields below, under MLflow's names
        value = _feedback_value(raw)
        if value is None:
            continue
        if kind == Question.AssessmentType.EXPECTATION:
            wanted.append(_Wanted("expectation", key, value, None))
        else:
            wanted.append(_Wanted("feedback", key, value, _rationale(label, key)))
    if label.expected_response:
        wanted.append(_Wanted("expectation", "expected_response", label.expected_response, None))
    if label.expected_facts:
        wanted.append(_Wanted("expectation", "expected_facts", [str(f) for f in label.expected_facts], None))
    return wanted


def _question_kinds(project_id: int) -> dict[str, str]:
    """Question key -> "expected_response" / "expected_facts" (their own kinds) or the assessment type."""
    out: dict[str, str] = {}
    for key, kind, assessment_type in Question.objects.filter(project_id=project_id).values_list(
        "key", "kind", "assessment_type"
    ):
        out[key] = kind if kind in ("expected_response", "expected_facts") else assessment_type
    return out


# --- the ledger ----------------------------------------------------------------------------------


def _to_sync(project: Project | None) -> Any:
    """Labels with a trace whose current version has no synced (or given-up) ledger row."""
    done = AssessmentSync.objects.filter(label=OuterRef("pk"), label_version=OuterRef("version")).filter(
        Q(status=Status.SYNCED) | Q(status=Status.FAILED, attempts__gte=settings.MLFLOW_ASSESSMENT_SYNC_MAX_ATTEMPTS)
    )
    labels = CuratedLabel.objects.exclude(item__trace_id="").filter(~Exists(done))
    if project is not None:
        labels = labels.filter(project=project)
    return labels


def assessment_syncs_prepare(*, project: Project | None = None, limit: int | None = None) -> list[int]:
    """Ledger rows for the labels to sync (created when missing); their ids, oldest first."""
    labels = _to_sync(project).order_by("updated_at", "id")
    if limit:
        labels = labels[:limit]
    found = list(labels.values_list("pk", "version", "project_id", "item_id", "item__trace_id"))
    if not found:
        return []
    AssessmentSync.objects.bulk_create(
        [AssessmentSync(project_id=p, label_id=pk, label_version=v, item_id=i, trace_id=t) for pk, v, p, i, t in found],
        ignore_conflicts=True,
    )
    wanted = {(pk, version) for pk, version, *_ in found}
    rows = AssessmentSync.objects.filter(label_id__in=[pk for pk, *_ in found]).exclude(status=Status.SYNCED)
    return [
        pk
        for pk, label_id, v in rows.order_by("id").values_list("pk", "label_id", "label_version")
        if (label_id, v) in wanted
    ]


def _claim(sync_id: int) -> bool:
    now = timezone.now()
    open_ = Q(status__in=[Status.PENDING, Status.FAILED]) | Q(status=Status.RUNNING, claimed_at__lt=now - LEASE)
    return (
        AssessmentSync.objects.filter(open_, pk=sync_id).update(
            status=Status.RUNNING, claimed_at=now, attempts=F("attempts") + 1
        )
        == 1
    )


def _mlflow_kwargs() -> dict[str, Any]:
    return {
        "tracking_uri": settings.MLFLOW_TRACKING_URI,
    }


def assessment_sync_execute(*, sync_id: int) -> int:
    """Claim the ledger row and put its label version on the trace; the number of MLflow writes.

    A row someone else holds, or already synced, is left alone (returns 0). A permanent error fails
    the row with its reason; a transient one puts it back to pending and is raised.
    """
    if not _claim(sync_id):
        return 0
    sync = AssessmentSync.objects.select_related("label__decided_by").get(pk=sync_id)
    label = sync.label
    try:
        if label.version != sync.label_version:
            # The label changed since the row was made: its newer version has (or gets) its own row.
            AssessmentSync.objects.filter(pk=sync_id, status=Status.RUNNING).update(
                status=Status.FAILED,
                error=f"Superseded by label version {label.version}.",
                attempts=settings.MLFLOW_ASSESSMENT_SYNC_MAX_ATTEMPTS,
            )
            return 0
        ids, written = _write(sync, label)
    except TransientPipelineError:
        AssessmentSync.objects.filter(pk=sync_id, status=Status.RUNNING).update(status=Status.PENDING, claimed_at=None)
        raise
    except PipelineError as exc:
        AssessmentSync.objects.filter(pk=sync_id, status=Status.RUNNING).update(
            status=Status.FAILED, error=exc.message[:ERROR_MAX]
        )
        return 0
    AssessmentSync.objects.filter(pk=sync_id, status=Status.RUNNING).update(
        status=Status.SYNCED, assessment_ids=ids, written=written, error="", synced_at=timezone.now()
    )
    return written


def _write(sync: AssessmentSync, label: CuratedLabel) -> tuple[dict[str, str], int]:
    """Reconcile the trace's assessments of this label with what the label says now."""
    kwargs = _mlflow_kwargs()
    existing = mlflow_tracking.trace_assessments_get(trace_id=sync.trace_id, **kwargs)
    if existing is None:
        raise PermanentPipelineError(
            f"MLflow has no trace {sync.trace_id!r} (item {sync.item_id}); nothing was written.", system="mlflow"
        )
    ours: dict[str, mlflow_tracking.TraceAssessment] = {}
    for a in existing:
        if a.valid and a.metadata.get(LABEL_ID) == str(label.pk):
            ours.setdefault(f"{a.kind}:{a.name}", a)
    label = CuratedLabel.objects.select_related("decided_by").prefetch_related("reviews__reviewer").get(pk=label.pk)
    source_id = _source_id(label)
    metadata = {
        LABEL_ID: str(label.pk),
        LABEL_VERSION: str(sync.label_version),
        "reviewdesk.item_id": str(sync.item_id),
    }
    ids: dict[str, str] = {}
    written = 0
    for want in label_assessments(label, kinds=_question_kinds(label.project_id)):
        old = ours.pop(want.key, None)
        if old is not None and old.value == want.value and old.source_id == source_id:
            ids[want.key] = old.assessment_id  # unchanged, or written by an earlier attempt
            continue
        if old is not None and want.kind == "expectation":
            ids[want.key] = mlflow_tracking.trace_expectation_update(
                trace_id=sync.trace_id,
                assessment_id=old.assessment_id,
                name=want.name,
                value=want.value,
                source_id=source_id,
                metadata=metadata,
                **kwargs,
            )
        else:
            ids[want.key] = mlflow_tracking.trace_assessment_log(
                trace_id=sync.trace_id,
                kind=want.kind,
                name=want.name,
                value=want.value,
                source_id=source_id,
                rationale=want.rationale,
                metadata=metadata,
                overrides=old.assessment_id if old is not None else None,
                **kwargs,
            )
        written += 1
    for stale in ours.values():  # questions the label no longer answers
        mlflow_tracking.trace_assessment_delete(trace_id=sync.trace_id, assessment_id=stale.assessment_id, **kwargs)
        written += 1
    return ids, written


def assessments_sync(*, project: Project | None = None, limit: int | None = None) -> SyncReport:
    """Write the curated labels changed since their last sync to their MLflow traces.

    ``project``: only that project's labels (the on-demand sync); else every project (the beat task).
    """
    synced = failed = written = 0
    for sync_id in assessment_syncs_prepare(project=project, limit=limit):
        written += assessment_sync_execute(sync_id=sync_id)
        status = AssessmentSync.objects.filter(pk=sync_id).values_list("status", flat=True).first()
        synced += status == Status.SYNCED
        failed += status == Status.FAILED
    return SyncReport(synced=synced, failed=failed, written=written)


def assessment_sync_list(*, project: Project) -> Any:
    return AssessmentSync.objects.filter(project=project).order_by("-id")


# --- dataset versions as MLflow evaluation datasets -----------------------------------------------


def _mlflow_records(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``mlflow`` export shape, with only the fields an MLflow dataset record takes."""
    from pipelines.datasets.exports import shape_row

    records = []
    for canonical in rows:
        shaped = shape_row("mlflow", canonical)
        if shaped is None:
            continue
        records.append(
            {
                "inputs": shaped["inputs"],
                "outputs": shaped.get("outputs"),
                "expectations": shaped.get("expectations") or {},
                "tags": {k: str(v) for k, v in (shaped.get("tags") or {}).items()},
            }
        )
    return records


def dataset_version_to_mlflow(*, version: DatasetVersion, name: str | None = None) -> dict[str, Any]:
    """Materialise the version as an MLflow evaluation dataset; the same one again on a re-run.

    Returns ``{"dataset_id", "name", "records", "reused"}``. The record is kept in
    :class:`MlflowDatasetExport` (one per version); its MLflow dataset is found again by id, or by
    its ``reviewdesk_dataset_version`` tag when an earlier attempt died before recording it.
    """
    version = DatasetVersion.objects.select_related("dataset__project").get(pk=version.pk)
    default = f"{version.dataset.project.slug}.{version.dataset.name} v{version.number}"
    with transaction.atomic():
        export, _created = MlflowDatasetExport.objects.select_for_update().get_or_create(
            version=version, defaults={"name": (name or default)[:300]}
        )
        if export.status == MlflowDatasetExport.Status.DONE and export.mlflow_dataset_id:
            return {
                "dataset_id": export.mlflow_dataset_id,
                "name": export.name,
                "records": export.records,
                "reused": True,
            }
        export.attempts += 1
        export.status = MlflowDatasetExport.Status.RUNNING
        export.save(update_fields=["attempts", "status"])
    rows = DatasetRow.objects.filter(version=version).order_by("position").values_list("data", flat=True)
    records = _mlflow_records(rows.iterator(chunk_size=2000))
    try:
        result = mlflow_tracking.evaluation_dataset_merge(
            name=export.name,
            records=records,
            tags={
                DATASET_VERSION_TAG: str(version.pk),
                "reviewdesk_project": version.dataset.project.slug,
                "reviewdesk_content_hash": version.content_hash,
            },
            key_tag=DATASET_VERSION_TAG,
            dataset_id=export.mlflow_dataset_id,
            experiment_name=f"{settings.MLFLOW_EXPERIMENT_PREFIX}-{version.dataset.project.slug}",
            artifact_root=settings.MLFLOW_ARTIFACT_ROOT,
            **_mlflow_kwargs(),
        )
    except PipelineError as exc:
        MlflowDatasetExport.objects.filter(pk=export.pk).update(
            status=MlflowDatasetExport.Status.FAILED, error=exc.message[:ERROR_MAX]
        )
        raise
    MlflowDatasetExport.objects.filter(pk=export.pk).update(
        status=MlflowDatasetExport.Status.DONE,
        mlflow_dataset_id=result.dataset_id,
        records=result.records,
        error="",
        finished_at=timezone.now(),
    )
    return {"dataset_id": result.dataset_id, "name": result.name, "records": result.records, "reused": result.reused}
