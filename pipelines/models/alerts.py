"""Alert rules on monitoring figures (issue 14 §4), and their history of firings and resolutions.

A rule watches one metric of one model version (named, or the environment's champion or candidate)
over the last ``window_hours``: either against a threshold (above or below a value, once at least
``min_n`` items are in the window), or against the champion ("worse by more than ``delta`` with 95%
confidence"). The worker evaluates the enabled rules after each monitoring refresh; a rule moves
between ``ok`` and ``firing``, and each move is an :class:`AlertEvent`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from pipelines.models.promotion import Environment, Rollout
from reviewapp.models import Project


class AlertRule(models.Model):
    class Scope(models.TextChoices):
        VERSION = "version", "A named model version"
        CHAMPION = "champion", "The environment's champion"
        CANDIDATE = "candidate", "The environment's newest promotion"

    class Comparison(models.TextChoices):
        ABOVE = "above", "Above a threshold"
        BELOW = "below", "Below a threshold"
        WORSE_THAN_CHAMPION = "worse_than_champion", "Worse than the champion by more than Δ (95%)"

    class State(models.TextChoices):
        OK = "ok", "OK"
        FIRING = "firing", "Firing"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=120)
    metric = models.CharField(max_length=120)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.VERSION)
    model_version = models.CharField(max_length=100, blank=True)  # scope "version"
    environment = models.ForeignKey(Environment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    window_hours = models.PositiveIntegerField(default=24)
    comparison = models.CharField(max_length=20, choices=Comparison.choices)
    threshold = models.FloatField(null=True, blank=True)  # above / below
    delta = models.FloatField(null=True, blank=True)  # worse_than_champion
    min_n = models.PositiveIntegerField(default=30)  # items needed (per side) before the rule may fire
    rollback = models.BooleanField(default=False)  # roll back the environment's latest promotion on firing
    enabled = models.BooleanField(default=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.OK)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    last_figures = models.JSONField(default=dict, blank=True)  # the numbers behind the last verdict
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="alert_rule_name_unique")]

    def __str__(self) -> str:
        return f"alert {self.name}"


class AlertEvent(models.Model):
    """A rule fired or resolved; with the figures of that evaluation and the rollback it started."""

    class Kind(models.TextChoices):
        FIRED = "fired", "Fired"
        RESOLVED = "resolved", "Resolved"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    at = models.DateTimeField()
    figures = models.JSONField(default=dict, blank=True)
    rollout = models.ForeignKey(Rollout, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    detail = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["rule", "at"], name="alert_event_rule_at")]

    def __str__(self) -> str:
        return f"{self.rule_id} {self.kind} at {self.at:%Y-%m-%d %H:%M}"
