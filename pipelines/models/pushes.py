"""Deliveries: where a project's curated rows go (a Delta table or a Unity Catalog table) and each push.

A :class:`DeliveryTarget` names one destination of one project. With ``feed_enabled`` the beat task
pushes newly curated labels there every few minutes; its watermark (``watermark_at``,
``watermark_id``: the ``updated_at`` and id of the last curated label delivered) says which labels
are new; each micro-batch also re-reads an overlap before it (``pipelines.datasets.pushes``).

A :class:`Push` is one batch, row first then a task: a dataset version (a snapshot) or a feed
range (``dataset_version`` null). ``batch_id`` is derived from the target and the batch's content
range only, so a retried or repeated batch has the same id and the destination applies it once
(a Delta application transaction, or our ledger for Unity Catalog).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from pipelines.models.datasets import DatasetVersion
from reviewapp.models import Project


class TargetKind(models.TextChoices):
    DELTA = "delta", "Delta table"
    UNITY_CATALOG = "unity_catalog", "Unity Catalog table"


class DeliveryTarget(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="delivery_targets")
    kind = models.CharField(max_length=16, choices=TargetKind.choices)
    # A Delta table URI (local folder, s3://, abfss://, gs://) or a Unity Catalog `catalog.schema.table`.
    target = models.CharField(max_length=500)
    feed_enabled = models.BooleanField(default=False, help_text="Push newly curated labels continuously.")
    watermark_at = models.DateTimeField(null=True, blank=True)
    watermark_id = models.BigIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "kind", "target"], name="delivery_target_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.target}"


class Push(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="pushes")
    delivery_target = models.ForeignKey(DeliveryTarget, on_delete=models.CASCADE, related_name="pushes")
    # Null: a micro-batch of the continuous "latest curated" feed (range_* below).
    dataset_version = models.ForeignKey(
        DatasetVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="pushes"
    )
    # Copied from the target, so the record still says where rows went if the target changes.
    target_kind = models.CharField(max_length=16, choices=TargetKind.choices)
    target = models.CharField(max_length=500)
    batch_id = models.CharField(max_length=64, db_index=True)  # also the Delta application transaction id
    # Feed range: curated labels with (updated_at, id) in ((from_at, from_id), (to_at, to_id)].
    range_from_at = models.DateTimeField(null=True, blank=True)
    range_from_id = models.BigIntegerField(default=0)
    range_to_at = models.DateTimeField(null=True, blank=True)
    range_to_id = models.BigIntegerField(default=0)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    rows_total = models.PositiveIntegerField(default=0)
    rows_written = models.PositiveIntegerField(default=0)  # inserted + updated by this push (0 on a replay)
    # Rows of the dataset that the pushed version no longer holds, deleted in the same commit (0: feed, replay).
    rows_deleted = models.PositiveIntegerField(default=0)
    skipped = models.BooleanField(default=False, help_text="The batch had already been applied; nothing written.")
    table_version = models.BigIntegerField(null=True, blank=True)  # the Delta version holding this batch
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)  # of the attempt that finished it

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "lease_expires_at"], name="push_status_lease"),
            models.Index(fields=["delivery_target", "status"], name="push_target_status"),
        ]

    def __str__(self) -> str:
        return f"push {self.pk} -> {self.target} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    @property
    def is_feed(self) -> bool:
        return self.dataset_version_id is None
