from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reviewapp.models import AuditEvent, Project
from reviewapp.usertypes import signed_in

if TYPE_CHECKING:
    from reviewapp.usertypes import Actor


def audit_record(
    *,
    actor: Actor,
    action: str,
    target: Any,
    project: Project | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the audit log. Call inside the transaction that made the change."""
    return AuditEvent.objects.create(
        project=project,
        actor=signed_in(actor),
        action=action,
        target_type=type(target).__name__.lower(),
        target_id=str(target.pk),
        data=data or {},
    )
