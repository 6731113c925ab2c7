"""Sources: where a project's production traffic comes from, and each pull of it.

A :class:`Source` is one feed of rows into the review queue: an MLflow experiment's traces, a Delta
table, a Unity Catalog table, or REST pushes (today's ingest, counted by the items' ``source``
value). Its ``settings`` and ``column_mapping`` are validated per kind and its ``rules`` (ordered)
decide which rows are taken (``pipelines.sources.sampling``); ``watermark`` says how far it has read.

A :class:`SourcePull` is one pull, a job of the one jobs kernel (row first, then a task): its
counters move batch by batch, each batch committing with the source's watermark advance, so a
killed worker resumes from the last committed batch. A :class:`SourcedItem` records which source,
pull and rule took each item (caps are counted from these rows, so restarts keep counting).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings as django_settings
from django.db import models
from django.utils import timezone

from evaluations.models import Run, Suite
from reviewapp.jobs import Job
from reviewapp.models import Item, Project


class SourceKind(models.TextChoices):
    MLFLOW_TRACES = "mlflow_traces", "MLflow experiment traces"
    DELTA_TABLE = "delta_table", "Delta table"
    UC_TABLE = "uc_table", "Unity Catalog table"
    REST = "rest", "REST pushes"


class Source(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="sources")
    # For a REST source, the name is the items' ``source`` value it counts.
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=SourceKind.choices)
    settings = models.JSONField(default=dict, blank=True)  # validated per kind (pipelines.sources.config)
    column_mapping = models.JSONField(default=dict, blank=True)  # table kinds: item field -> column
    rules = models.JSONField(default=list, blank=True)  # ordered sampling rules (pipelines.sources.sampling)
    interval_seconds = models.PositiveIntegerField(default=300)
    # Online evaluation: each item the source newly takes is scored by the suite's latest version
    # (pipelines.sources.online); its LLM judges within this many calls per rolling hour.
    suite = models.ForeignKey(Suite, null=True, blank=True, on_delete=models.SET_NULL, related_name="sources")
    judge_calls_per_hour = models.PositiveIntegerField(default=100)
    enabled = models.BooleanField(default=True)
    watermark = models.JSONField(default=dict, blank=True)  # per kind; {} = from the beginning
    last_pull_at = models.DateTimeField(null=True, blank=True)  # when the last pull was created
    last_status = models.CharField(max_length=16, blank=True)
    last_summary = models.JSONField(default=dict, blank=True)  # the last finished pull's counters
    last_error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project", "name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="source_name_unique")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} source {self.name}"

    @property
    def next_due_at(self) -> datetime | None:
        """When the beat pulls it next (None: disabled, or REST, which is pushed to)."""
        if not self.enabled or self.kind == SourceKind.REST:
            return None
        if self.last_pull_at is None:
            return self.created_at
        if (self.last_summary or {}).get("more"):  # the last pull ran out of time with rows left
            return self.last_pull_at
        return self.last_pull_at + timedelta(seconds=self.interval_seconds)


class SourcePull(Job):
    """One pull of a source, under the jobs kernel's lease (reviewapp.jobs)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    JOB_DONE = Status.SUCCEEDED
    COUNTERS = ("scanned", "taken", "created", "updated", "unchanged", "skipped", "sampled_out", "capped")

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="pulls")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="source_pulls")
    trigger = models.CharField(max_length=16, default="manual")  # manual | beat | command
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    scanned = models.PositiveIntegerField(default=0)  # rows read from the source
    taken = models.PositiveIntegerField(default=0)  # rows a rule took
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)  # taken but not a valid item (reasons below)
    sampled_out = models.PositiveIntegerField(default=0)  # no rule took it
    capped = models.PositiveIntegerField(default=0)  # a rule would have taken it but its cap was full
    skipped_reasons = models.JSONField(default=dict, blank=True)  # key -> reason, the first few
    batches = models.PositiveIntegerField(default=0)  # batches committed
    # Where the pull starts, and how far its committed batches got (a resumed pull goes on from there).
    watermark_from = models.JSONField(default=dict, blank=True)
    watermark_to = models.JSONField(default=dict, blank=True)
    # A re-scan (manage.py ingest_traces) reads from watermark_from and leaves the source's watermark alone.
    rescan = models.BooleanField(default=False)
    max_rows = models.PositiveIntegerField(null=True, blank=True)  # read at most this many rows (None: all)
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # At most one queued or running pull per source: a repeated "pull now" gets the same row.
            models.UniqueConstraint(
                fields=["source"], condition=models.Q(status__in=["queued", "running"]), name="source_pull_one_active"
            )
        ]
        indexes = [models.Index(fields=["status", "lease_expires_at"], name="source_pull_status_lease")]

    def __str__(self) -> str:
        return f"pull {self.pk} of source {self.source_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    def counters(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in self.COUNTERS}


class SourcedItem(models.Model):
    """Which source, pull and rule took an item (the first time it was taken)."""

    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="sourced")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="sourced_items")
    pull = models.ForeignKey(SourcePull, null=True, blank=True, on_delete=models.SET_NULL, related_name="items")
    rule = models.CharField(max_length=100)
    taken_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["source", "rule", "taken_at"], name="sourced_item_rule_time")]

    def __str__(self) -> str:
        return f"item {self.item_id} from source {self.source_id} by {self.rule}"


class SourceRun(models.Model):
    """An evaluation run a pull's batch started over the items it newly took (online evaluation).

    Started in the batch's own transaction, so a batch commits with its run or not at all; its
    ``judge_calls`` are the LLM-judge calls it was allowed (the items within the source's hourly
    budget times the suite's judges): the budget counts these rows, under a lock on the source.
    """

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="runs")
    pull = models.ForeignKey(SourcePull, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="source_run")
    items = models.PositiveIntegerField(default=0)
    judged_items = models.PositiveIntegerField(default=0)  # items the judges score
    judges_skipped = models.PositiveIntegerField(default=0)  # items over the budget (code scorers only)
    judge_calls = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["source", "created_at"], name="source_run_recent")]

    def __str__(self) -> str:
        return f"run {self.run_id} of source {self.source_id}"
