"""The project's audit log."""

from __future__ import annotations

from django.db.models import QuerySet

from reviewapp.models import Project
from reviewapp.models.audit import AuditEvent


def audit_event_list(*, project: Project, action: str | None = None) -> QuerySet[AuditEvent]:
    """The project's audit log, newest first."""
    events = AuditEvent.objects.filter(project=project).select_related("actor")
    if action:
        events = events.filter(action=action)
    return events.order_by("-id")


def audit_actions(*, project: Project) -> list[str]:
    # order_by() first: the model's default ordering would add created_at to SELECT DISTINCT,
    # and each action would come back once per event.
    rows = AuditEvent.objects.filter(project=project).order_by().values_list("action", flat=True).distinct()
    return sorted(rows)
