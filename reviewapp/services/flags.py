"""Flags: a reviewer marks an item for curators ("unsafe", "needs an expert", ...).

A flag never blocks the item: its review goes on as usual, and curators read the flags
(``selectors.flag_list``) next to the reviews. Who may flag is decided by the caller's getter,
``selectors.flaggable_item_get_for_user`` (an item you hold or reviewed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction

from reviewapp.errors import FieldError, ValidationFailed
from reviewapp.models import Flag, Item
from reviewapp.services.audit import audit_record
from reviewapp.typed_input import field_error

if TYPE_CHECKING:
    from django.contrib.auth.models import User

NOTE_MAX = 2_000


def flag_create(*, item: Item, user: User, kind: str, note: str = "") -> tuple[Flag, bool]:
    """Flag ``item``; flagging it again with the same kind replaces the note. Returns (flag, created)."""
    note = (note or "").strip()
    errors: list[FieldError] = []
    if kind not in Flag.Kind.values:
        errors.append(field_error("kind", f"Use one of {', '.join(Flag.Kind.values)}."))
    if len(note) > NOTE_MAX:
        errors.append(field_error("note", f"At most {NOTE_MAX} characters."))
    if kind == Flag.Kind.OTHER and not note:
        errors.append(field_error("note", "Say what is wrong when the kind is 'other'."))
    if errors:
        raise ValidationFailed(errors, "The flag is not valid.")
    with transaction.atomic():
        flag, created = Flag.objects.update_or_create(
            item=item, created_by=user, kind=kind, defaults={"project_id": item.project_id, "note": note}
        )
        audit_record(
            actor=user,
            action="item.flag",
            target=item,
            project=item.project,
            data={"flag": flag.pk, "kind": kind, "note": note, "created": created},
        )
    return flag, created
