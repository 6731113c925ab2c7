from __future__ import annotations

from django.conf import settings
from django.db import models

from reviewapp.models.items import Item
from reviewapp.models.projects import Project


class Flag(models.Model):
    """A reviewer's warning about an item, for curators. It never blocks the item's review."""

    class Kind(models.TextChoices):
        UNSAFE = "unsafe", "Unsafe or harmful"
        NEEDS_EXPERT = "needs_expert", "Needs an expert"
        BAD_DATA = "bad_data", "Broken or garbled item"
        OTHER = "other", "Other"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"
        DISMISSED = "dismissed", "Dismissed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="flags")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="flags")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # A curator closes a flag with a comment: resolved (acted on) or dismissed (nothing wrong).
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # Flagging twice (a double click, a second tab) updates the note instead of piling up.
            models.UniqueConstraint(fields=["item", "created_by", "kind"], name="flag_unique_per_reviewer_kind")
        ]
        indexes = [models.Index(fields=["project", "-id"], name="flag_project_recent")]

    def __str__(self) -> str:
        return f"{self.kind} flag on item {self.item_id}"
