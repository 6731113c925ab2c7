"""Curated labels back to MLflow: assessments on the originating traces, and evaluation datasets.

**Write-back** (``assessments_sync``). For every curated label whose item carries a ``trace_id``,
the label's final answers are logged on that trace as HUMAN **feedback** (one per feedback question,
named by the question key) and its ground truth as HUMAN **expectations** (``expected_response``,
``expected_facts``, and any other expectation-type question by key). The source id is the deciding
curator (adjudicated labels) or the reviewers, comma-separated (consensus). Every assessment carries
``metadata`` ``reviewdesk.label_id`` / ``reviewdesk.label_version``.

Exactly once, per (label, label version): an :class:`AssessmentSync` ledger row is created for the
version, claimed through the jobs kernel (reviewapp.jobs: a lease, so a dead worker's claim is taken over),
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
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from pipelines.adapters import mlflow_tracking
from pipelines.adapters.errors import PermanentPipelineError, PipelineError, TransientPipelineError
from pipelines.models import AssessmentSync, DatasetRow, DatasetVersion, MlflowDatasetExport
from reviewapp.jobs import job_claim, job_fail, job_finish
from reviewapp.models import CuratedLabel, Project, Question

logger = logging.getLogger(__name__)

LABEL_ID = "reviewdesk.label_id"
LABEL_VERSION = "reviewdesk.label_version"
# No dots: MLflow 3.17's dataset search does not match dotted tag keys, even quoted.
DATASET_VERSION_TAG = "reviewdesk_dataset_version"
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
    if label.method == CuratedLabel.Method.ADJUDICATED and label.decided_by is not None:
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
    ids = [
        pk
        for pk, label_id, v in rows.order_by("id").values_list("pk", "label_id", "label_version")
        if (label_id, v) in wanted
    ]
    # This sync runs them: failed ones with attempts left go back to the queue (tried again on later
    # syncs), and none of them looks lost to the kernel's sweeper meanwhile.
    AssessmentSync.objects.filter(pk__in=ids, status=Status.FAILED).update(
        status=Status.PENDING, finished_at=None, enqueued_at=timezone.now()
    )
    AssessmentSync.objects.filter(pk__in=ids, status=Status.PENDING).update(enqueued_at=timezone.now())
    return ids


def _mlflow_kwargs() -> dict[str, Any]:
    return {
        "tracking_uri": settings.MLFLOW_TRACKING_URI,
    }


def assessment_sync_execute(*, sync_id: int) -> int:
    """Claim the ledger row and put its label version on the trace; the number of MLflow writes.

    A row someone else holds, or already synced, is left alone (returns 0). A permanent error fails
    the row with its reason; a transient one puts it back to pending and is raised.
    """
    owner = job_claim(AssessmentSync, sync_id)
    if owner is None:
        return 0
    sync = AssessmentSync.objects.select_related("label__decided_by").get(pk=sync_id)
    label = sync.label
    try:
        if label.version != sync.label_version:
            # The label changed since the row was made: its newer version has (or gets) its own row.
            job_fail(
                AssessmentSync,
                sync_id,
                owner,
                f"Superseded by label version {label.version}.",
                transient=False,
                attempts=settings.MLFLOW_ASSESSMENT_SYNC_MAX_ATTEMPTS,
            )
            return 0
        ids, written = _write(sync, label)
    except TransientPipelineError:
        job_fail(AssessmentSync, sync_id, owner, "", transient=True)  # MLflow is down: retried
        raise
    except PipelineError as exc:
        job_fail(AssessmentSync, sync_id, owner, exc.message[:ERROR_MAX], transient=False)
        return 0
    job_finish(AssessmentSync, sync_id, owner, assessment_ids=ids, written=written, error="")
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


def mlflow_dataset_export_create(*, version: DatasetVersion, name: str | None = None) -> MlflowDatasetExport:
    """The version's record (made when missing, queued); a failed one is queued again, its attempts afresh."""
    version = DatasetVersion.objects.select_related("dataset__project").get(pk=version.pk)
    default = f"{version.dataset.project.slug}.{version.dataset.name} v{version.number}"
    now = timezone.now()
    with transaction.atomic():
        export, _created = MlflowDatasetExport.objects.select_for_update().get_or_create(
            version=version, defaults={"name": (name or default)[:300], "enqueued_at": now}
        )
        if export.status == MlflowDatasetExport.Status.FAILED:
            MlflowDatasetExport.objects.filter(pk=export.pk).update(
                status=MlflowDatasetExport.Status.QUEUED, attempts=0, finished_at=None, enqueued_at=now
            )
            export.refresh_from_db()
    return export


def dataset_version_to_mlflow(*, version: DatasetVersion, name: str | None = None) -> dict[str, Any]:
    """Materialise the version as an MLflow evaluation dataset; the same one again on a re-run.

    Returns ``{"dataset_id", "name", "records", "reused"}``. The record is kept in
    :class:`MlflowDatasetExport` (one per version); its MLflow dataset is found again by id, or by
    its ``reviewdesk_dataset_version`` tag when an earlier attempt died before recording it.
    """
    export = mlflow_dataset_export_create(version=version, name=name)
    return mlflow_dataset_export_run(export_id=export.pk)


def _reused(export: MlflowDatasetExport) -> dict[str, Any]:
    return {"dataset_id": export.mlflow_dataset_id, "name": export.name, "records": export.records, "reused": True}


def mlflow_dataset_export_run(*, export_id: int) -> dict[str, Any]:
    """Claim the record (jobs kernel) and merge the version's rows into its MLflow dataset.

    A done record is reused as it is; one another worker holds raises TransientPipelineError (the
    task tries again later). MLflow errors are recorded on the row and raised: a transient one puts
    it back in the queue, a permanent one fails it.
    """
    export = MlflowDatasetExport.objects.get(pk=export_id)
    if export.status == MlflowDatasetExport.Status.DONE and export.mlflow_dataset_id:
        return _reused(export)
    owner = job_claim(MlflowDatasetExport, export_id)
    if owner is None:
        export.refresh_from_db()
        if export.status == MlflowDatasetExport.Status.DONE and export.mlflow_dataset_id:
            return _reused(export)
        raise TransientPipelineError("Another worker is writing this dataset version to MLflow now.", system="mlflow")
    export = MlflowDatasetExport.objects.select_related("version__dataset__project").get(pk=export_id)
    version = export.version
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
        transient = isinstance(exc, TransientPipelineError)
        job_fail(MlflowDatasetExport, export_id, owner, exc.message[:ERROR_MAX], transient=transient)
        raise
    job_finish(
        MlflowDatasetExport, export_id, owner, mlflow_dataset_id=result.dataset_id, records=result.records, error=""
    )
    return {"dataset_id": result.dataset_id, "name": result.name, "records": result.records, "reused": result.reused}
