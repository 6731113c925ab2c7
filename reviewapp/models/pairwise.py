"""Pairwise comparison: two responses to one request, judged side by side.

A PairwiseTask pairs two items of a project that answer the same request with different model
versions. It has ``preferences_per_task`` slots (PairwiseSlot rows) that reviewers lease exactly
like review slots (the lease lives on the slot row), and each filled slot holds one Preference.
Left/right order is drawn at random when a slot is leased and stored on the slot, so a reload
shows the same sides and the Preference records what was really shown.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Greatest, Least

from reviewapp.models.items import Item
from reviewapp.models.projects import Project
from reviewapp.models.slots import LeasedSlot


class PairwiseTask(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Done"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="pairwise_tasks")
    item_a = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    item_b = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    # The versions the pair was made for, kept even if an item is later re-ingested with another version.
    version_a = models.CharField(max_length=100)
    version_b = models.CharField(max_length=100)
    preferences_per_task = models.PositiveSmallIntegerField(default=1)
    # Submitted preferences, kept in step by pairwise_submit so progress needs no COUNT.
    preference_count = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # One task per pair of items whichever is called A: re-running a pairing adds nothing.
            models.UniqueConstraint(
                Least("item_a", "item_b"), Greatest("item_a", "item_b"), name="pairwise_pair_unique"
            ),
            models.CheckConstraint(condition=~models.Q(item_a=models.F("item_b")), name="pairwise_two_items"),
            models.CheckConstraint(condition=models.Q(preferences_per_task__gte=1), name="pairwise_at_least_one"),
        ]
        indexes = [models.Index(fields=["project", "version_a", "version_b"], name="pairwise_task_versions")]

    def __str__(self) -> str:
        return f"pair {self.item_a_id} vs {self.item_b_id}"


class PairwiseSlot(LeasedSlot):
    """One judgement slot of a task; leased like an Assignment, with the sides drawn at lease time."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    task = models.ForeignKey(PairwiseTask, on_delete=models.CASCADE, related_name="slots")
    slot = models.PositiveSmallIntegerField()
    # Which item is shown on the left for the current lease (the other one is on the right).
    left_item = models.ForeignKey(Item, null=True, blank=True, on_delete=models.CASCADE, related_name="+")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["task", "slot"], name="pairwise_slot_unique"),
            # A reviewer never holds two slots of one pair (two tabs racing for the same pair).
            models.UniqueConstraint(
                fields=["task", "reviewer"],
                condition=models.Q(reviewer__isnull=False),
                name="pairwise_slot_task_reviewer_unique",
            ),
        ]
        indexes = [
            models.Index(
                fields=["project", "id"],
                condition=models.Q(submitted_at__isnull=True),
                name="pairwise_open_slots",
            ),
            models.Index(fields=["reviewer", "project"], name="pairwise_slot_reviewer"),
        ]

    def __str__(self) -> str:
        return f"pair task {self.task_id} slot {self.slot}"


class PairwiseSkip(models.Model):
    """A reviewer passed on a pair; it is not offered to them again."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    task = models.ForeignKey(PairwiseTask, on_delete=models.CASCADE, related_name="skips")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "reviewer"], name="pairwise_skip_unique")]

    def __str__(self) -> str:
        return f"skip of pair task {self.task_id}"


class Preference(models.Model):
    """A reviewer's judgement of one pair, with what was really shown on each side and who won."""

    class Choice(models.TextChoices):
        A = "a", "Left (A) is better"
        B = "b", "Right (B) is better"
        TIE = "tie", "Tie"
        BOTH_BAD = "both_bad", "Both bad"

    class Outcome(models.TextChoices):
        WIN = "win", "One response won"
        TIE = "tie", "Tie"
        BOTH_BAD = "both_bad", "Both bad"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="preferences")
    task = models.ForeignKey(PairwiseTask, on_delete=models.CASCADE, related_name="preferences")
    slot = models.OneToOneField(PairwiseSlot, null=True, on_delete=models.SET_NULL, related_name="preference")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="preferences")
    left_item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    right_item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    left_model_version = models.CharField(max_length=100)
    right_model_version = models.CharField(max_length=100)
    # What the reviewer picked, by side as shown (a = left, b = right).
    choice = models.CharField(max_length=8, choices=Choice.choices)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    winner_item = models.ForeignKey(Item, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    winner_model_version = models.CharField(max_length=100, blank=True)
    loser_model_version = models.CharField(max_length=100, blank=True)
    reason = models.TextField(blank=True)
    time_on_task_ms = models.PositiveIntegerField(null=True, blank=True)
    submitted_at = models.DateTimeField()

    class Meta:
        ordering = ["-submitted_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["task", "reviewer"], name="preference_task_reviewer_unique"),
            # A winner exactly when one side won; a tie or "both bad" has none.
            models.CheckConstraint(
                condition=models.Q(outcome="win", winner_item__isnull=False)
                | (~models.Q(outcome="win") & models.Q(winner_item__isnull=True)),
                name="preference_winner_iff_win",
            ),
        ]
        indexes = [models.Index(fields=["project", "id"], name="preference_project_id")]

    def __str__(self) -> str:
        return f"preference {self.pk} on pair task {self.task_id}"
