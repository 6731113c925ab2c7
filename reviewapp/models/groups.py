from __future__ import annotations

from django.conf import settings
from django.db import models

from reviewapp.models.projects import Project


class ReviewerGroup(models.Model):
    """Named reviewers of one project that slots can be assigned to together (e.g. "medical experts")."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="reviewer_groups")
    name = models.CharField(max_length=100)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="reviewer_groups")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="reviewer_group_name_unique")]

    def __str__(self) -> str:
        return f"{self.project_id}:{self.name}"
