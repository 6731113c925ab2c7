"""Flags: a reviewer marks an item for curators ("unsafe", "needs an expert", ...).

A flag never blocks the item: its review goes on as usual, and curators read the flags
(``selectors.flag_list``) next to the reviews. Who may flag is decided by the caller's getter,
``selectors.flaggable_item_get_for_user`` (an item you hold or reviewed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from django.db import transaction

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
    """Flag ``item``; flagging it again with the same kind replaces the note. Returns (flag, created)."""
    project_check_writable(item.project)
    note = (note or "").strip()
    _, errors = struct_errors({"kind": kind, "note": note}, FlagIn)
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
