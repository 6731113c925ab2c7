"""Curation: question-set versions, items waiting for a curator, and curated labels.

An item is *ready* once it has ``reviews_per_item`` submitted reviews that answered the same schema
version. Its reviews are then combined per question (reviewapp.consensus): when they agree, a
consensus CuratedLabel is written; otherwise an Adjudication row puts the item in the curators'
queue, and a curator's decision writes an adjudicated CuratedLabel.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from reviewapp.models.items import Item
from reviewapp.models.projects import Project
from reviewapp.models.reviews import Review


class SchemaVersion(models.Model):
    """The question set of one schema version, frozen once a review answered it.

    ``questions`` is a list of question snapshots (key, title, kind, options, ...), so reviews of an
    older version can be shown and combined with the questions they answered.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="schema_versions")
    version = models.PositiveIntegerField()
    questions = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    # The current version's snapshot follows the questions until its first review arrives.
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project", "version"]
        constraints = [models.UniqueConstraint(fields=["project", "version"], name="schema_version_unique")]

    def __str__(self) -> str:
        return f"{self.project_id} v{self.version}"


class Adjudication(models.Model):
    """An item whose reviews need a curator: they disagree, or answered different schema versions.

    ``version`` goes up on every change of the row; a decision names the version its curator saw,
    so a decision made on a stale page (someone else decided, or the reviews changed) is refused.
    """

    class Status(models.TextChoices):
        OPEN = "open", "Waiting for a curator"
        DECIDED = "decided", "Decided"

    class Reason(models.TextChoices):
        DISAGREEMENT = "disagreement", "Reviewers disagree"
        MIXED_VERSIONS = "mixed_versions", "Reviews answered different question versions"
        REVIEWS_CHANGED = "reviews_changed", "Reviews changed since the decision"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="adjudications")
    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="adjudication")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    reason = models.CharField(max_length=32, choices=Reason.choices, default=Reason.DISAGREEMENT)
    # [{"key": "correct", "reason": "tie: 1 x pass, 1 x fail"}, ...], in question order.
    disagreements = models.JSONField(default=list, blank=True)
    # The schema version of the reviews; null when they answered different versions.
    schema_version = models.PositiveIntegerField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    opened_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["project", "status", "id"], name="adjudication_queue")]

    def __str__(self) -> str:
        return f"adjudication of item {self.item_id} ({self.status})"

    @property
    def disagreeing_keys(self) -> list[str]:
        return [d.get("key", "") for d in self.disagreements or [] if isinstance(d, dict)]


class CuratedLabel(models.Model):
    """The final label of an item, which datasets and exports are built from."""

    class Method(models.TextChoices):
        CONSENSUS = "consensus", "Consensus of the reviews"
        ADJUDICATED = "adjudicated", "Decided by a curator"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="curated_labels")
    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="curated_label")
    answers = models.JSONField(default=dict, blank=True, help_text="Final answers, keyed by question key.")
    expected_response = models.TextField(blank=True)
    expected_facts = models.JSONField(default=list, blank=True)
    method = models.CharField(max_length=16, choices=Method.choices)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    rationale = models.TextField(blank=True, help_text="Why the curator decided so (adjudicated labels).")
    reviews = models.ManyToManyField(Review, related_name="curated_labels", blank=True)
    # Per question: rule, each review's value, whether they agreed, the combined value, and why not.
    agreement = models.JSONField(default=dict, blank=True)
    schema_version = models.PositiveIntegerField()
    # Set when the reviews behind an adjudicated label changed after the decision (the label stays).
    reviews_changed_at = models.DateTimeField(null=True, blank=True)
    # The curator who decided had reviewed the item (allowed by Project.self_adjudication).
    self_adjudicated = models.BooleanField(default=False)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["project", "id"], name="curated_label_project_id"),
            # The delivery feed reads a project's labels in (updated_at, id) order from a watermark.
            models.Index(fields=["project", "updated_at", "id"], name="curated_label_feed"),
        ]
        constraints = [
            # Provenance: a consensus has no decider; a curator's decision always names one.
            models.CheckConstraint(
                condition=models.Q(method="consensus", decided_by__isnull=True)
                | models.Q(method="adjudicated", decided_by__isnull=False),
                name="curated_label_method_decider",
            ),
        ]

    def __str__(self) -> str:
        return f"curated label of item {self.item_id} ({self.method})"


class CuratedLabelRevision(models.Model):
    """What a curated label was before it changed (append-only history)."""

    label = models.ForeignKey(CuratedLabel, on_delete=models.CASCADE, related_name="revisions")
    answers = models.JSONField(default=dict)
    expected_response = models.TextField(blank=True)
    expected_facts = models.JSONField(default=list)
    method = models.CharField(max_length=16, choices=CuratedLabel.Method.choices)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    rationale = models.TextField(blank=True)
    review_ids = models.JSONField(default=list)
    schema_version = models.PositiveIntegerField()
    # Null when the label was recomputed automatically after a review changed.
    replaced_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    replaced_at = models.DateTimeField()

    class Meta:
        ordering = ["-replaced_at", "-id"]

    def __str__(self) -> str:
        return f"revision of curated label {self.label_id}"
