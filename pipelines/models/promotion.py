"""Model versions synced from the registry, promotion gates, requests, approvals and rollouts.

The loop's last step: a :class:`PromotionRequest` asks for a :class:`ModelVersion` to go to an
:class:`Environment` (its registry alias and serving endpoint); :class:`PromotionGate` rows say
what evidence it needs; :class:`Approval` rows record each engineer's decision; on approval a
:class:`Rollout` row carries out the change step by step (:class:`RolloutStep`), driven by a
Celery task that claims the row (lease) and can resume after a crash.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from reviewapp.jobs import Job
from reviewapp.models import Project


class ModelVersion(models.Model):
    """One registered model version, as last read from the MLflow registry."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_versions")
    registered_model = models.CharField(max_length=300)
    version = models.CharField(max_length=40)  # MLflow's version number, as text (items store it so)
    run_id = models.CharField(max_length=64, blank=True)
    source = models.CharField(max_length=1000, blank=True)
    status = models.CharField(max_length=40, blank=True)  # READY, PENDING_REGISTRATION, ...
    description = models.TextField(blank=True)
    aliases = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    # The pipeline behind the version: the logged run's params (retriever, LLM endpoint, ...)
    # and its prompt template, shown and diffed against the champion's on the version page.
    params = models.JSONField(default=dict, blank=True)
    prompt_template = models.TextField(blank=True)
    registered_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField()

    class Meta:
        ordering = ["project", "registered_model", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "registered_model", "version"], name="model_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.registered_model} v{self.version}"

    @property
    def uri(self) -> str:
        return f"models:/{self.registered_model}/{self.version}"


class Environment(models.Model):
    """A place a version is promoted to: a registry alias plus a serving endpoint."""

    class ServingKind(models.TextChoices):
        LOCAL = "local", "Local MLflow model server"
        DATABRICKS = "databricks", "Databricks Model Serving"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="environments")
    name = models.CharField(max_length=40)  # "staging", "production"
    alias = models.CharField(max_length=60)  # the registry alias set on promotion, e.g. "champion"
    serving_kind = models.CharField(max_length=16, choices=ServingKind.choices, default=ServingKind.LOCAL)
    serving_endpoint = models.CharField(max_length=200, blank=True)  # Databricks endpoint name
    local_port = models.PositiveIntegerField(null=True, blank=True)  # local MLflow server port
    canary_stages = models.JSONField(default=list, blank=True)  # e.g. [10, 50, 100]
    required_approvals = models.PositiveSmallIntegerField(default=1)
    ready_timeout_seconds = models.PositiveIntegerField(default=600)
    health_check_queries = models.PositiveSmallIntegerField(default=3)  # real queries after each traffic stage
    # The soak: after each traffic stage the candidate is queried directly for this long; the stage
    # fails when the error rate or the p95 latency of those queries is above these limits.
    soak_seconds = models.PositiveIntegerField(default=60)
    max_error_rate = models.FloatField(default=0.05)  # a fraction: 0.05 = 5% of health queries may fail
    max_p95_ms = models.PositiveIntegerField(default=10_000)
    # The version serving at 100% now, and the one before it (what rollback returns to).
    current_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    previous_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["project", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="environment_name_unique"),
            # A local port and a Databricks serving endpoint (one workspace per deployment) belong to one
            # environment: otherwise one project's rollout would replace another project's live model.
            models.UniqueConstraint(
                fields=["local_port"], condition=Q(local_port__isnull=False), name="environment_local_port_owned"
            ),
            models.UniqueConstraint(
                fields=["serving_endpoint"], condition=~Q(serving_endpoint=""), name="environment_endpoint_owned"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project_id}/{self.name}"


class PromotionGate(models.Model):
    """One line of the evidence checklist a version must pass before it is promoted."""

    class Kind(models.TextChoices):
        SUITE_METRIC = "suite_metric", "Evaluation suite metric"
        # Was "min_reviews" (counted reviews); migration 0005 renamed stored gates, and
        # pipelines.releases.gates.LEGACY_KINDS still reads the old name.
        MIN_ITEMS = "min_items", "Minimum reviewed items"
        MIN_PASS_RATE = "min_pass_rate", "Minimum human pass rate (lower bound)"
        NOT_WORSE = "not_worse_than_champion", "Not worse than the champion"
        PRODUCTION_NOT_WORSE = "production_not_worse", "Not worse than the champion in production (canary)"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="promotion_gates")
    # Null: the gate applies to every environment of the project.
    environment = models.ForeignKey(Environment, null=True, blank=True, on_delete=models.CASCADE, related_name="gates")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    params = models.JSONField(default=dict, blank=True)  # validated per kind by pipelines.releases.gates
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "id"]

    def __str__(self) -> str:
        return f"{self.kind} gate of {self.project_id}"


class PromotionRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for approval"
        APPROVED = "approved", "Approved, rollout queued"
        REJECTED = "rejected", "Rejected"
        ROLLING_OUT = "rolling_out", "Rolling out"
        LIVE = "live", "Live"
        REPLACED = "replaced", "Replaced by a later promotion"
        FAILED = "failed", "Rollout failed"
        ROLLED_BACK = "rolled_back", "Rolled back"
        CANCELLED = "cancelled", "Cancelled"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="promotion_requests")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="promotion_requests")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="promotion_requests")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # The gate checklist as evaluated when requested (re-evaluated on every approval).
    gate_report = models.JSONField(default=dict, blank=True)
    override_justification = models.TextField(blank=True)
    overridden_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"promotion #{self.pk} of {self.model_version} to {self.environment}"


class Approval(models.Model):
    class Decision(models.TextChoices):
        APPROVE = "approve", "Approved"
        REJECT = "reject", "Rejected"

    request = models.ForeignKey(PromotionRequest, on_delete=models.CASCADE, related_name="approvals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    comment = models.TextField(blank=True)
    gate_report = models.JSONField(default=dict, blank=True)  # what the approver saw
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["request", "id"]
        constraints = [models.UniqueConstraint(fields=["request", "user"], name="approval_once_per_user")]

    def __str__(self) -> str:
        return f"{self.decision} of {self.request_id} by {self.user_id}"


class Rollout(Job):
    """Carrying out a promotion (or a rollback) on one environment; at most one active per environment.

    A job of the one jobs kernel (reviewapp.jobs): claimed and leased by the worker running its steps."""

    class Kind(models.TextChoices):
        ROLLOUT = "rollout", "Rollout"
        ROLLBACK = "rollback", "Rollback"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    JOB_DONE = Status.SUCCEEDED

    request = models.ForeignKey(PromotionRequest, on_delete=models.CASCADE, related_name="rollouts")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="rollouts")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.ROLLOUT)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    to_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    from_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    stages = models.JSONField(default=list, blank=True)  # traffic % for to_version at each stage
    reason = models.TextField(blank=True)  # a rollback's written reason (audited, sent in webhooks)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["environment"],
                condition=models.Q(status__in=["queued", "running"]),
                name="rollout_one_active_per_environment",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} to {self.to_version_id} on {self.environment_id} ({self.status})"


class RolloutStep(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    key = models.CharField(max_length=40)  # "alias", "traffic_10", "health_check", "finish", ...
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    detail = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["rollout", "position"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "position"], name="rollout_step_position_unique"),
            models.UniqueConstraint(fields=["rollout", "key"], name="rollout_step_key_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.rollout_id}:{self.key} ({self.status})"
