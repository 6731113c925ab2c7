"""Suites: a project's named list of scorers, versioned so every run records exactly what it ran."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from reviewapp.models import Project


class Suite(models.Model):
    """A named evaluation suite of a project; its definition lives in its versions."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="evaluation_suites")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="suite_name_unique")]

    def __str__(self) -> str:
        return f"{self.project_id}:{self.name}"


class SuiteVersion(models.Model):
    """One immutable definition of a suite. Changing a suite means adding a version.

    ``scorers`` is the validated, fully explicit list (services.suites fills in every default):
    ``[{"name": "token_f1", "scorer": "token_f1", "threshold": 0.5, "params": {...},
    "human_question": "correct"}, ...]``; ``name`` is the result key (unique in the version),
    ``human_question`` the pass/fail question its verdicts are compared with ("" for none).
    ``config`` holds run settings: ``{"human_question": ..., "max_error_rate": 0.2, "chunk_size": 100}``.
    """

    suite = models.ForeignKey(Suite, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    scorers = models.JSONField(default=list)
    config = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["suite", "number"]
        constraints = [models.UniqueConstraint(fields=["suite", "number"], name="suite_version_unique")]

    def __str__(self) -> str:
        return f"{self.suite_id} v{self.number}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Runs point at a version to say what they ran; editing one in place would rewrite history.
        if not self._state.adding:
            raise ValueError("A suite version is immutable; create a new version instead.")
        super().save(*args, **kwargs)

    @property
    def scorer_names(self) -> list[str]:
        return [str(entry["name"]) for entry in self.scorers]
