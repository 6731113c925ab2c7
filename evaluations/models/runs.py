"""Runs: one evaluation of a suite version over a dataset, split into chunks that workers claim.

A run is a row first, then tasks (docs/architecture.md): ``run_start`` snapshots the item ids into
RunChunk rows and enqueues one task per chunk. A task claims its chunk through the jobs kernel
(reviewapp.jobs: a conditional UPDATE and a lease, renewed while it works), writes only the
RunResult rows that are missing — (run, item, scorer) is unique, so a redelivered task never
double-counts — and the last chunk to finish closes the run. The kernel's sweeper re-queues
chunks whose lease expired (a killed worker). The UI and the API read progress from these rows.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from evaluations.models.suites import SuiteVersion
from reviewapp.jobs import Job
from reviewapp.models import Item, Project


class Run(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="evaluation_runs")
    suite_version = models.ForeignKey(SuiteVersion, on_delete=models.PROTECT, related_name="runs")
    # The dataset filter as validated (services.datasets); the item ids themselves are on the chunks.
    dataset = models.JSONField(default=dict, blank=True)
    # When the run is over a curated dataset version: {"id", "dataset_id", "name", "number",
    # "content_hash", "row_count"} (a plain snapshot, no foreign key: evaluations' core reaches
    # pipelines only through its adapters). Its per-item expectations are on the chunks. Empty for a run over a filter.
    dataset_version = models.JSONField(default=dict, blank=True)
    # {"kind": "stored"} | {"kind": "mlflow_model", "model_uri": ...} | {"kind": "endpoint", "endpoint": ...}
    target = models.JSONField(default=dict)
    # Run options (services.runs.RunOptions): {"judges_skipped": {"item_ids": [...], "reason": ...}}
    # when some items are scored without the suite's LLM judges (an online source over its budget).
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    items_total = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)  # chunks done or failed
    rows_done = models.PositiveIntegerField(default=0)  # items whose chunk finished
    rows_errored = models.PositiveIntegerField(default=0)  # of those, items with at least one errored result
    max_error_rate = models.FloatField(default=0.2)
    error = models.TextField(blank=True, help_text="Why the run failed.")
    # Per scorer name, at finish: n, n_scored, n_errors, n_judged, n_passed, n_skipped, mean, pass_rate, error_rate.
    metrics = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # MLflow: logged once the run finished, by a job of its own (RunMlflowLog, ``run.mlflow_log``).

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["project", "-id"], name="eval_run_project_recent"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def mlflow(self) -> RunMlflowLog | None:
        """The MLflow logging job of a finished run (None before it finished, or when cancelled)."""
        try:
            return self.mlflow_log
        except RunMlflowLog.DoesNotExist:
            return None

    @property
    def mlflow_logged(self) -> bool:
        log = self.mlflow
        return log is not None and log.status == RunMlflowLog.Status.DONE

    @property
    def mlflow_run_id(self) -> str:
        return self.mlflow.mlflow_run_id if self.mlflow is not None else ""

    @property
    def mlflow_experiment_id(self) -> str:
        return self.mlflow.mlflow_experiment_id if self.mlflow is not None else ""

    @property
    def mlflow_error(self) -> str:
        """Why the last attempt to log the run failed (it is retried)."""
        return self.mlflow.error if self.mlflow is not None else ""

    @property
    def percent(self) -> int:
        if self.status == self.Status.SUCCEEDED:
            return 100
        return round(100 * min(self.rows_done, self.items_total) / self.items_total) if self.items_total else 0

    @property
    def error_rate(self) -> float | None:
        return self.rows_errored / self.rows_done if self.rows_done else None

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        from django.utils import timezone

        end = self.finished_at or timezone.now()
        return max(0.0, (end - self.started_at).total_seconds())

    @property
    def items_per_second(self) -> float | None:
        seconds = self.duration_seconds
        return self.rows_done / seconds if seconds else None

    @property
    def dataset_version_label(self) -> str:
        """``Support gold v2 (3f9a1c2e)``, or "" for a run over a filter."""
        info = self.dataset_version or {}
        if not info:
            return ""
        return f"{info.get('name', '?')} v{info.get('number', '?')} ({str(info.get('content_hash', ''))[:8]})"

    @property
    def target_label(self) -> str:
        kind = self.target.get("kind", "stored")
        if kind == "mlflow_model":
            return str(self.target.get("model_uri", ""))
        if kind == "endpoint":
            return f"endpoint {self.target.get('endpoint', '')}"
        return "stored responses"


class RunChunk(Job):
    """A slice of a run's items, claimed by one task at a time under a lease (reviewapp.jobs)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    JOB_QUEUED = Status.PENDING
    TERMINAL = (Status.DONE, Status.FAILED, Status.CANCELLED)

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    item_ids = models.JSONField(default=list)
    # Runs over a dataset version: per item id (as text), what the version snapshotted —
    # {"expected_response", "expected_facts", "guidelines", "human"} — so scorers and alignment use
    # the labels as they were, not today's. Empty for a run over a filter (live curated labels).
    expectations = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    rows_done = models.PositiveIntegerField(default=0)
    rows_errored = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="run_chunk_unique")]
        indexes = [
            # The sweeper: unfinished chunks, by lease.
            models.Index(
                fields=["status", "lease_expires_at"],
                condition=models.Q(status__in=["pending", "running"]),
                name="run_chunk_open",
            )
        ]

    def __str__(self) -> str:
        return f"chunk {self.index} of run {self.run_id} ({self.status})"


class RunMlflowLog(Job):
    """Logging a finished run to MLflow, once: a job of the kernel, retried until MLflow takes it.

    Its key is the run's, so the task ``evaluations.run_mlflow_log`` takes the run id as before.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Logged"
        FAILED = "failed", "Failed"

    run = models.OneToOneField(Run, on_delete=models.CASCADE, primary_key=True, related_name="mlflow_log")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    mlflow_run_id = models.CharField(max_length=64, blank=True)
    mlflow_experiment_id = models.CharField(max_length=64, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "enqueued_at"], name="eval_run_mlflow_log_open")]

    def __str__(self) -> str:
        return f"MLflow logging of run {self.run_id} ({self.status})"


class RunRow(models.Model):
    """A response generated for an item by the run's target (targets other than stored responses)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="rows")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    response = models.TextField(blank=True)
    retrieved_context = models.JSONField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "item"]
        constraints = [models.UniqueConstraint(fields=["run", "item"], name="run_row_unique")]

    def __str__(self) -> str:
        return f"row of item {self.item_id} in run {self.run_id}"


class RunResult(models.Model):
    """One scorer's verdict on one item in one run (MLflow feedback shape)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="results")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    scorer = models.CharField(max_length=100)  # the suite entry's name
    value = models.JSONField(null=True, blank=True)
    # ``value`` as a number (bools as 0/1) when it is one, so means are a database aggregate.
    number = models.FloatField(null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True)
    rationale = models.TextField(blank=True)
    error = models.TextField(blank=True)
    source_type = models.CharField(max_length=16, default="CODE")
    # Not scored on purpose (the run's options said so; the reason is the rationale): no value, no error.
    skipped = models.BooleanField(default=False)

    class Meta:
        ordering = ["run", "item", "scorer"]
        constraints = [
            # What makes a redelivered or re-claimed chunk harmless: a verdict is written once.
            models.UniqueConstraint(fields=["run", "item", "scorer"], name="run_result_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.scorer} on item {self.item_id} in run {self.run_id}"
