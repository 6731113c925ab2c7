"""Curated datasets: a named filter over a project's curated labels, and immutable versions of it.

A version is a snapshot: one :class:`DatasetRow` per matching item, holding the *canonical row*
(everything any export shape needs, see ``pipelines.datasets.versions``) and its content hash. Rows keep
their ``row_id`` (stable per item across versions), so two versions can be diffed by row id and
hash, and Delta / Unity Catalog pushes MERGE on it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from reviewapp.models import Project


class Dataset(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # The validated filter (pipelines.datasets.versions.dataset_filter_validate).
    filter = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="dataset_name_unique")]

    def __str__(self) -> str:
        return f"{self.project_id}/{self.name}"


class DatasetVersion(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    # The filter as it was when the snapshot was taken (the dataset's filter may change later).
    filter = models.JSONField(default=dict, blank=True)
    row_count = models.PositiveIntegerField(default=0)
    # sha256 over (row_id, content_hash) in row order: equal hashes mean equal contents.
    content_hash = models.CharField(max_length=64)
    # Question keys (feedback columns) present in this version, in schema order.
    question_keys = models.JSONField(default=list, blank=True)
    note = models.TextField(blank=True)
    # Rows whose expected response repeats the response their label fails (stored before that was
    # refused; see pipelines.datasets.expectations). The rows stay as frozen; a new version is needed.
    failed_expectation_rows = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dataset", "-number"]
        constraints = [models.UniqueConstraint(fields=["dataset", "number"], name="dataset_version_unique")]

    def __str__(self) -> str:
        return f"{self.dataset} v{self.number}"

    @property
    def needs_new_version(self) -> bool:
        return self.failed_expectation_rows > 0


class DatasetRow(models.Model):
    # No index of its own: the (version, position) unique index leads with it.
    version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="rows", db_index=False)
    position = models.PositiveIntegerField()  # stable export order within the version
    row_id = models.CharField(max_length=100)  # stable across versions (one per item)
    # A plain id, not a foreign key: the snapshot outlives a deleted item.
    item_id = models.BigIntegerField()
    content_hash = models.CharField(max_length=64)
    data = models.JSONField()  # the canonical row

    class Meta:
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "position"], name="dataset_row_position_unique"),
            models.UniqueConstraint(fields=["version", "row_id"], name="dataset_row_id_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.version} row {self.row_id}"
