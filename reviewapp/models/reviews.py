from __future__ import annotations

from django.conf import settings
from django.db import models

from reviewapp.models.items import Item
from reviewapp.models.projects import Project


class Assignment(models.Model):
    """One review slot of an item (an item has ``reviews_per_item`` of them).

    A reviewer leases a free slot (``reviewer`` + ``expires_at``) and fills it with a Review.
    The lease lives on the slot row itself, so leasing is a row lock plus an UPDATE of that row:
    two reviewers can never hold the same slot, even under ``SELECT ... FOR UPDATE SKIP LOCKED``.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments")
    slot = models.PositiveSmallIntegerField()
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    leased_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # Set once the slot is filled; a filled slot is never leased again.
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["item", "slot"], name="assignment_item_slot_unique"),
            # One reviewer never holds two slots of one item (two tabs racing for the same item).
            models.UniqueConstraint(
                fields=["item", "reviewer"],
                condition=models.Q(reviewer__isnull=False),
                name="assignment_item_reviewer_unique",
            ),
        ]
        indexes = [
            models.Index(
                fields=["project", "id"],
                condition=models.Q(submitted_at__isnull=True),
                name="assignment_open_slots",
            ),
            models.Index(fields=["reviewer", "project"], name="assignment_reviewer"),
        ]

    def __str__(self) -> str:
        return f"item {self.item_id} slot {self.slot}"


class Skip(models.Model):
    """A reviewer passed on an item; the queue does not offer it to them again."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="skips")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "reviewer"], name="skip_unique")]

    def __str__(self) -> str:
        return f"skip of item {self.item_id}"


class Review(models.Model):
    """A reviewer's submitted answers for one item. Edits keep history in ReviewRevision."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="reviews")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="reviews")
    assignment = models.OneToOneField(Assignment, null=True, on_delete=models.SET_NULL, related_name="review")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    answers = models.JSONField(default=dict)
    comment = models.TextField(blank=True)
    time_on_task_ms = models.PositiveIntegerField(null=True, blank=True)
    schema_version = models.PositiveIntegerField(default=1)
    submitted_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-submitted_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["item", "reviewer"], name="review_item_reviewer_unique")]
        indexes = [
            models.Index(fields=["project", "id"], name="review_project_id"),
            models.Index(fields=["reviewer", "-submitted_at"], name="review_reviewer_recent"),
        ]

    def __str__(self) -> str:
        return f"review {self.pk} of item {self.item_id}"


class ReviewRevision(models.Model):
    """The answers a review had before an edit (append-only history)."""

    review = models.ForeignKey(Review, on_delete=models.CASCADE, related_name="revisions")
    answers = models.JSONField()
    comment = models.TextField(blank=True)
    edited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    replaced_at = models.DateTimeField()

    class Meta:
        ordering = ["-replaced_at", "-id"]

    def __str__(self) -> str:
        return f"revision of review {self.review_id}"
