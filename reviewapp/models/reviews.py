from __future__ import annotations

from django.conf import settings
from django.db import models

from reviewapp.models.items import Item
from reviewapp.models.projects import Project
from reviewapp.models.slots import LeasedSlot

# Slot numbers from here up are extra slots outside an item's N (one per reviewer who meets a gold
# item in the gold mix); numbers below are the N review slots. reviews_per_item is at most 20.
EXTRA_SLOT_BASE = 10_000


class Assignment(LeasedSlot):
    """One review slot of an item (an item has ``reviews_per_item`` of them).

    A reviewer leases a free slot (``LeasedSlot``: the lease lives on the row) and fills it with a
    Review. Two reviewers can never hold the same slot, even under ``SELECT ... FOR UPDATE SKIP LOCKED``.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments")
    slot = models.PositiveSmallIntegerField()
    # Who may lease the slot (services/assignments.py). Neither set: anyone, in a shared-pool
    # project; nobody, in an assigned-mode project, until a curator assigns it.
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # covered by the partial index below
    )
    assigned_group = models.ForeignKey(
        "reviewapp.ReviewerGroup",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="slots",
        db_index=False,  # covered by the partial index below
    )
    # Item.priority, copied here so queue_next is one ordered index scan (no join to items).
    # db_default: ingest creates slots with raw SQL.
    priority = models.IntegerField(default=0, db_default=0)
    # An extra slot of a gold item (slot >= EXTRA_SLOT_BASE): outside the item's N, never in the
    # ordinary pool, handed out by the gold mix (services/gold.py).
    is_gold = models.BooleanField(default=False, db_default=False)

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
            # queue_next (selectors.queue_sources_for_user): ORDER BY priority DESC, id over the open
            # slots assigned to nobody, to one reviewer, or to one group; one ordered index scan each.
            models.Index(
                fields=["project", "-priority", "id"],
                condition=models.Q(
                    submitted_at__isnull=True, is_gold=False, assigned_to__isnull=True, assigned_group__isnull=True
                ),
                name="assignment_open_unassigned",
            ),
            models.Index(
                fields=["assigned_to", "-priority", "id"],
                condition=models.Q(submitted_at__isnull=True, assigned_to__isnull=False),
                name="assignment_open_assigned_to",
            ),
            models.Index(
                fields=["assigned_group", "-priority", "id"],
                condition=models.Q(submitted_at__isnull=True, assigned_group__isnull=False),
                name="assignment_open_group",
            ),
            models.Index(fields=["reviewer", "project"], name="assignment_reviewer"),
            # queue_next's first question, "does this reviewer hold a lease already?": a tiny index
            # (one row per reviewer at work). Without it PostgreSQL walked the primary key (33 ms
            # at 100,000 items) looking for the reviewer's row in id order.
            models.Index(
                fields=["reviewer", "id"],
                condition=models.Q(submitted_at__isnull=True, reviewer__isnull=False),
                name="assignment_held",
            ),
        ]

    def __str__(self) -> str:
        return f"item {self.item_id} slot {self.slot}"

    @property
    def counts_toward_n(self) -> bool:
        """One of the item's ``reviews_per_item`` slots (not an extra per-reviewer gold slot)."""
        return self.slot < EXTRA_SLOT_BASE


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
    # Sent back for re-review by a curator (services/assignments.py: item_send_back). A returned
    # review is kept for history but no longer counts: its slot was reopened for another reviewer.
    returned_at = models.DateTimeField(null=True, blank=True)
    returned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    return_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-submitted_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["item", "reviewer"], name="review_item_reviewer_unique")]
        indexes = [
            models.Index(fields=["project", "id"], name="review_project_id"),
            models.Index(fields=["reviewer", "-submitted_at"], name="review_reviewer_recent"),
            # queue_next keeps a returned review's author away from its item: a small partial index.
            models.Index(
                fields=["reviewer", "project"],
                condition=models.Q(returned_at__isnull=False),
                name="review_returned",
            ),
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
