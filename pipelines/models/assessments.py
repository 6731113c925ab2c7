"""Curated labels written back to MLflow: the per-label ledger, and datasets materialised in MLflow.

:class:`AssessmentSync` has one row per (curated label, label version): the write of that version's
final feedback and expectations to the item's MLflow trace. A synced row means there is nothing
left to do for that version; a new label version gets a new row, whose sync overrides the earlier
assessments on the trace. :class:`MlflowDatasetExport` records the MLflow evaluation dataset a
dataset version was materialised as, so doing it again reuses it.
"""

from __future__ import annotations

from django.db import models

from pipelines.models.datasets import DatasetVersion
from reviewapp.jobs import Job
from reviewapp.models import CuratedLabel, Project


class AssessmentSync(Job):
    """A job of the one jobs kernel (reviewapp.jobs); ``finished_at`` is when it synced (or failed)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SYNCED = "synced", "Synced"
        FAILED = "failed", "Failed"

    JOB_QUEUED = Status.PENDING
    JOB_DONE = Status.SYNCED

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assessment_syncs")
    label = models.ForeignKey(CuratedLabel, on_delete=models.CASCADE, related_name="assessment_syncs")
    label_version = models.PositiveIntegerField()
    item_id = models.BigIntegerField()
    trace_id = models.CharField(max_length=200)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    # "feedback:<question key>" / "expectation:expected_response" -> MLflow assessment id, once synced.
    assessment_ids = models.JSONField(default=dict, blank=True)
    written = models.PositiveIntegerField(default=0)  # assessments logged, overridden, updated or deleted
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["label", "label_version"], name="assessment_sync_label_version"),
        ]
        indexes = [models.Index(fields=["status", "id"], name="assessment_sync_status")]

    def __str__(self) -> str:
        return f"assessments of label {self.label_id} v{self.label_version} ({self.status})"


class MlflowDatasetExport(Job):
    """A job of the one jobs kernel (reviewapp.jobs): materialising one version in MLflow."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    version = models.OneToOneField(DatasetVersion, on_delete=models.CASCADE, related_name="mlflow_export")
    name = models.CharField(max_length=300)
    mlflow_dataset_id = models.CharField(max_length=100, blank=True)
    records = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.version} as MLflow dataset {self.mlflow_dataset_id or '?'} ({self.status})"
