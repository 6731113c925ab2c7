from __future__ import annotations

from django.conf import settings
from django.db import models

from reviewapp.models.projects import Project


class ApiToken(models.Model):
    """A bearer token for the REST API. Only a SHA-256 of the secret is stored."""

    class Scope(models.TextChoices):
        INGEST = "ingest", "Ingest items"
        REVIEW = "review", "Review items"
        EXPORT = "export", "Export reviews and datasets"
        CURATE = "curate", "Curate: assign, gold items, send back, flags, audit log, label schema"
        EVALUATE = "evaluate", "Evaluate: suites, runs, comparisons"
        PROMOTE = "promote", "Promote: model versions, promotion requests, approvals, rollouts"
        FEEDBACK = "feedback", "Send end users' feedback only (for your app; reads nothing)"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    # The public part of the token, used to find the row without scanning hashes.
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    project = models.ForeignKey(
        Project,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="When set, the token works only on this project.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
