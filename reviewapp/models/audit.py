from __future__ import annotations

from django.conf import settings
from django.db import models

from reviewapp.models.projects import Project


class AuditEvent(models.Model):
    """Append-only record of every state change: who did what to which object, and when."""

    project = models.ForeignKey(Project, null=True, on_delete=models.CASCADE, related_name="audit_events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The curators' audit page and API: a project's events, newest first, maybe of one action.
            models.Index(fields=["project", "-id"], name="audit_project_recent"),
            models.Index(fields=["project", "action", "-id"], name="audit_project_action_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.target_type}:{self.target_id}"
