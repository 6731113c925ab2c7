"""Background exports: one row per requested file, written by a Celery task under a lease.

The row is created first (status QUEUED), then ``pipelines.tasks.datasets.export_job_run`` claims it
through the jobs kernel (reviewapp.jobs),
writes the file to a temporary name and renames it into place when complete, so a download never
sees half a file and a retried or swept job simply starts over.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from pipelines.models.datasets import DatasetVersion
from reviewapp.jobs import Job
from reviewapp.models import Project


class ExportJob(Job):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired (file deleted)"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="export_jobs")
    # A dataset version; null for an export of the live curated labels (``filter``).
    version = models.ForeignKey(
        DatasetVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="export_jobs"
    )
    filter = models.JSONField(default=dict, blank=True)  # live exports: the validated filter
    format = models.CharField(max_length=16)  # jsonl / csv / parquet
    shape = models.CharField(max_length=16)  # mlflow / agent-eval / sft / preference
    compression = models.CharField(max_length=8, blank=True)  # "" or "gzip"
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    rows_done = models.PositiveIntegerField(default=0)
    rows_total = models.PositiveIntegerField(null=True, blank=True)  # known up front for versions
    file_path = models.CharField(max_length=500, blank=True)  # relative to settings.VAR_DIR
    file_size = models.BigIntegerField(null=True, blank=True)
    # The lease of the worker writing the file (reviewapp.jobs); the kernel's sweeper re-queues
    # RUNNING jobs whose lease expired.
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "lease_expires_at"], name="export_job_sweep")]

    def __str__(self) -> str:
        return f"export {self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED, self.Status.EXPIRED)

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        if not self.rows_total:
            return 0
        return min(99, round(100 * self.rows_done / self.rows_total))
