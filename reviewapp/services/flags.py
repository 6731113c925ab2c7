"""Flags: a reviewer marks an item for curators ("unsafe", "needs an expert", ...).

A flag never blocks the item: its review goes on as usual, and curators read the flags
(``selectors.flag_list``) next to the reviews. Who may flag is decided by the caller's getter,
``selectors.flaggable_item_get_for_user`` (an item you hold or reviewed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from django.db import transaction
from django.utils import timezone

from reviewapp.errors import ValidationFailed
from reviewapp.models import Flag, Item
from reviewapp.services.audit import audit_record
from reviewapp.services.readonly import project_check_writable
from reviewapp.typed_input import TypedInput, field_error, says, struct_errors

if TYPE_CHECKING:
    from django.contrib.auth.models import User

NOTE_MAX = 2_000


# A runtime Literal of the model's choices (Any: mypy cannot read a Literal built from values).
FlagKind: Any = Annotated[
    Literal.__getitem__(tuple(Flag.Kind.values)), says(f"Use one of {', '.join(Flag.Kind.values)}.")
]


class FlagIn(TypedInput):
    kind: FlagKind
    note: Annotated[str, msgspec.Meta(max_length=NOTE_MAX), says(f"At most {NOTE_MAX} characters.")] = ""


def flag_create(*, item: Item, user: User, kind: str, note: str = "") -> tuple[Flag, bool]:
    """Flag ``item``; flagging again with the same kind replaces the note and reopens it. Returns (flag, created)."""
    project_check_writable(item.project)
    note = (note or "").strip()
    _, errors = struct_errors({"kind": kind, "note": note}, FlagIn)
    if kind == Flag.Kind.OTHER and not note:
        errors.append(field_error("note", "Say what is wrong when the kind is 'other'."))
    if errors:
        raise ValidationFailed(errors, "The flag is not valid.")
    with transaction.atomic():
        flag, created = Flag.objects.update_or_create(
            item=item,
            created_by=user,
            kind=kind,
            # Flagging a closed flag again opens it again: the reviewer still sees the problem.
            defaults={
                "project_id": item.project_id,
                "note": note,
                "status": Flag.Status.OPEN,
                "resolution": "",
                "resolved_by": None,
                "resolved_at": None,
            },
        )
        audit_record(
            actor=user,
            action="item.flag",
            target=item,
            project=item.project,
            data={"flag": flag.pk, "kind": kind, "note": note, "created": created},
        )
    return flag, created


RESOLUTION_MAX = 2_000
CLOSING = {Flag.Status.RESOLVED, Flag.Status.DISMISSED}


def flag_close(*, flag: Flag, actor: User, status: str, comment: str) -> Flag:
    """A curator resolves (acted on it) or dismisses (nothing wrong) an open flag, saying why.

    Raises ValidationFailed for an unknown status, a missing or too long comment, or a flag
    already closed (another curator got there first: their comment stands).
    """
    comment = (comment or "").strip()
    errors: list[Any] = []
    if status not in CLOSING:
        errors.append(field_error("status", "Resolve or dismiss."))
    if not comment:
        errors.append(field_error("comment", "Say what you did, or why nothing needs doing."))
    elif len(comment) > RESOLUTION_MAX:
        errors.append(field_error("comment", f"At most {RESOLUTION_MAX} characters."))
    if errors:
        raise ValidationFailed(errors, "The flag was not closed.")
    with transaction.atomic():
        locked = Flag.objects.select_for_update().select_related("project").get(pk=flag.pk)
        if locked.status != Flag.Status.OPEN:
            raise ValidationFailed(
                [field_error("status", f"This flag was already {locked.get_status_display().lower()}.")],
                "The flag was not closed.",
            )
        locked.status = status
        locked.resolution = comment
        locked.resolved_by = actor
        locked.resolved_at = timezone.now()
        locked.save(update_fields=["status", "resolution", "resolved_by", "resolved_at"])
        audit_record(
            actor=actor,
            action=f"flag.{'resolve' if status == Flag.Status.RESOLVED else 'dismiss'}",
            target=locked.item,
            project=locked.project,
            data={"flag": locked.pk, "kind": locked.kind, "comment": comment},
        )
    return locked
