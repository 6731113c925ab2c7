"""Monitoring: per-item values, the precomputed time buckets built from them, and the refresh job.

Three tables, so that the page reads a few thousand rows whatever the traffic:

- ``MonitoringValue``: one row per (item, metric) with the item's model version, its time (the
  trace's timestamp when the item carries one, else when it was created) and its value under the
  one per-item rule (``reviewapp.item_stats``: the curated label, else the mean of the reviews).
  It is what a bucket is recomputed from exactly, and it remembers where an item was counted
  before, so an item that moves (a new model version, a corrected time) leaves its old bucket too.
- ``MonitoringBucket``: per project, granularity (hour or day), metric, model version and start:
  n (items) and the sums that merge (sum, sum of squares), from which the page and the API derive
  the mean or rate and its 95% interval over items.
- ``MonitoringRefresh``: one job row per project in the jobs kernel, with the watermarks of the
  last refresh (what changed since is recomputed; nothing else).
"""

from __future__ import annotations

from django.db import models

from reviewapp.jobs import Job
from reviewapp.models import Item, Project


class Granularity(models.TextChoices):
    HOUR = "hour", "Hour"
    DAY = "day", "Day"


class MonitoringValue(models.Model):
    """One item's value of one metric (volume: 1), where the item is counted (version, time)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+", db_index=False)
    metric = models.CharField(max_length=120)
    model_version = models.CharField(max_length=100, blank=True)
    at = models.DateTimeField()
    value = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "metric"], name="monitoring_value_unique")]
        indexes = [
            # A bucket's exact recompute: one metric and version over a time range.
            models.Index(fields=["project", "metric", "model_version", "at"], name="monitoring_value_bucket"),
        ]

    def __str__(self) -> str:
        return f"{self.metric} of item {self.item_id}"


class MonitoringBucket(models.Model):
    """The items of one metric, model version and hour (or day): n and the sums that merge."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    granularity = models.CharField(max_length=4, choices=Granularity.choices)
    metric = models.CharField(max_length=120)
    model_version = models.CharField(max_length=100, blank=True)
    start = models.DateTimeField()
    n = models.PositiveIntegerField()  # items
    total = models.FloatField()  # sum of the item values (a rate's successes; split votes count their fraction)
    total_sq = models.FloatField()  # sum of their squares (a mean's spread)
    refreshed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "granularity", "metric", "model_version", "start"], name="monitoring_bucket_unique"
            )
        ]
        indexes = [
            # The page and the API: one metric of a project over a time range, every version.
            models.Index(fields=["project", "granularity", "metric", "start"], name="monitoring_bucket_series"),
        ]

    def __str__(self) -> str:
        return f"{self.metric} v{self.model_version} {self.granularity} {self.start:%Y-%m-%d %H:%M}"


class MonitoringRefresh(Job):
    """A project's monitoring refresh (jobs kernel): the beat queues it, a worker runs it."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Refreshing"
        DONE = "done", "Up to date"
        FAILED = "failed", "Failed"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="+")
    # What the last refresh covered: rows changed at or after ``changed_since`` (less an overlap, for
    # transactions that committed late) and results after ``result_id``. None: never ran (a full recompute).
    changed_since = models.DateTimeField(null=True, blank=True)
    result_id = models.BigIntegerField(default=0)
    last_items = models.PositiveIntegerField(default=0)  # items recomputed by the last refresh
    last_buckets = models.PositiveIntegerField(default=0)  # buckets it rewrote
    last_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "enqueued_at"], name="monitoring_refresh_open")]

    def __str__(self) -> str:
        return f"monitoring refresh of project {self.project_id}"
