"""The slot engine: leased slots of every kind of review work (review slots, pairwise slots).

A unit of work has a fixed number of slot rows (an item's ``reviews_per_item`` Assignments, a pair's
``preferences_per_task`` PairwiseSlots). The lease lives on the slot row itself (``reviewer``,
``leased_at``, ``expires_at`` and a ``lease_token`` drawn anew for every lease), so:

- no double lease: a new lease is a row lock (``SELECT ... FOR UPDATE SKIP LOCKED``, chosen by the
  kind's own queue) plus an UPDATE of that row; the unique (unit, reviewer) constraint stops one
  reviewer racing themselves onto one unit from two tabs (``slot_next`` retries);
- never more than N per unit: a filled slot (``submitted_at``) is never leased again;
- nothing lost: a reviewer gets the lease they hold back (renewed) before any new one, an expired
  lease nobody else took is still theirs to submit, and every write locks the slot first
  (``slot_lock_own``) and says why it refuses (ItemRemoved, LeaseLost, StaleLease, AlreadySubmitted).

The lease token guards against stale forms: a page names the token of the lease it was rendered
for, and a submit from a page of an earlier lease of the same slot (taken by someone else since,
or leased again) is refused with StaleLease. What differs per kind (which rows, what is loaded
with a slot, how a skip is recorded, the wording) is a ``SlotKind``; the kinds' own services
(``services.queue``, ``services.reviews``, ``services.pairwise``) choose new slots and record
the work.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from django.db import IntegrityError, models, transaction
from django.utils import timezone

from reviewapp.errors import AlreadySubmitted, ItemRemoved, LeaseLost, StaleLease
from reviewapp.models import Project
from reviewapp.models.slots import LeasedSlot
from reviewapp.services.audit import audit_record

S = TypeVar("S", bound=LeasedSlot)
NEXT_ATTEMPTS = 3
LEASE_FIELDS = ["reviewer", "leased_at", "expires_at", "lease_token"]
MAX_TIME_ON_TASK_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class SlotKind(Generic[S]):
    """What the engine needs to know about one kind of slot."""

    model: type[S]
    related: tuple[str, ...]  # loaded with a locked slot: what its page shows and its submit records
    unit: str  # the slot's unit of work, a foreign key on the slot ("item", "task")
    skip_model: type[models.Model]  # a reviewer's skip of a unit: (project, <unit>, reviewer, reason)
    skip_action: str  # audit action of a skip
    # Per-kind lease fields, cleared with the lease (e.g. the sides of a pair).
    lease_extra: tuple[str, ...] = ()
    # A submit must bring the lease token (pairwise); otherwise a missing token is not checked, for
    # REST clients written before review leases had one.
    token_required: bool = False
    # Called on a skip, before the lease is released; returns more fields to save with it.
    on_skip: Callable[[S, Any], list[str]] | None = None
    texts: dict[str, str] = field(default_factory=dict)  # removed, lost, submitted, stale


def slot_lease_until(project: Project) -> datetime:
    return timezone.now() + timedelta(seconds=project.lease_seconds)


def slot_next(kind: SlotKind[S], *, project: Project, user: Any, lease_new: Callable[[], S | None]) -> S | None:
    """The reviewer's current lease (renewed), else ``lease_new()``'s; None when nothing is left.

    A reviewer who holds an unsubmitted slot gets it back, so a reload or a second tab never loses
    work or takes a second unit. ``lease_new`` runs in the same transaction: it locks a free slot
    and leases it with ``slot_take``.
    """
    for _attempt in range(NEXT_ATTEMPTS):
        try:
            with transaction.atomic():
                held = (
                    kind.model._default_manager.select_for_update(of=("self",))
                    .select_related(*kind.related)
                    .filter(project=project, reviewer=user, submitted_at__isnull=True)
                    .order_by("id")
                    .first()
                )
                if held is None:
                    return lease_new()
                held.expires_at = slot_lease_until(project)
                fields = ["expires_at"]
                if not held.lease_token:  # leased before leases had tokens
                    held.lease_token = _new_token()
                    fields.append("lease_token")
                held.save(update_fields=fields)
                return held
        except IntegrityError:
            # The same reviewer raced themselves onto one unit from two tabs; try again.
            continue
    return None


def slot_take(slot: S, *, user: Any, expires_at: datetime, **extra: Any) -> S:
    """Write a new lease onto a locked free slot (or a new one), with a fresh token."""
    slot.reviewer = user
    slot.leased_at = timezone.now()
    slot.expires_at = expires_at
    slot.lease_token = _new_token()
    for name, value in extra.items():
        setattr(slot, name, value)
    if slot.pk is None:
        slot.save()
    else:
        slot.save(update_fields=[*LEASE_FIELDS, *extra])
    return slot


def slot_lock_own(
    kind: SlotKind[S], *, pk: int, user: Any, project: Project | None = None, removed: str | None = None
) -> S:
    """Lock the reviewer's own unsubmitted lease, or say why not; call inside a transaction.

    With ``project``, a slot of another project counts as missing.
    """
    slots = kind.model._default_manager.select_for_update(of=("self",)).select_related(*kind.related)
    if project is not None:
        slots = slots.filter(project=project)
    current = slots.filter(pk=pk).first()
    if current is None:
        raise ItemRemoved(removed or kind.texts["removed"])
    if current.reviewer_id != user.pk:
        raise LeaseLost(kind.texts["lost"])
    if current.submitted_at is not None:
        raise AlreadySubmitted(kind.texts["submitted"])
    return current


def slot_lock_for_submit(
    kind: SlotKind[S],
    *,
    pk: int,
    user: Any,
    lease_token: str | None,
    project: Project | None = None,
    removed: str | None = None,
) -> S:
    """``slot_lock_own``, and the page or client must name the current lease's token.

    A page rendered for an earlier lease of this slot (the slot was leased again since) is refused
    with StaleLease. None means the caller has no token: refused when the kind requires one.
    """
    current = slot_lock_own(kind, pk=pk, user=user, project=project, removed=removed)
    if lease_token is not None or kind.token_required:
        if not lease_token or not secrets.compare_digest(current.lease_token, lease_token):
            raise StaleLease(kind.texts["stale"])
    return current


def slot_renew(kind: SlotKind[S], *, slot: S, user: Any) -> S:
    """Extend the lease while the reviewer works; LeaseLost once someone else has the slot."""
    with transaction.atomic():
        current = slot_lock_own(kind, pk=slot.pk, user=user)
        current.expires_at = slot_lease_until(current.project)  # type: ignore[attr-defined]
        current.save(update_fields=["expires_at"])
    return current


def slot_skip(kind: SlotKind[S], *, slot: S, user: Any, reason: str = "") -> None:
    """Give the slot back and never offer its unit to this reviewer again."""
    reason = (reason or "").strip()[:500]
    with transaction.atomic():
        current = slot_lock_own(kind, pk=slot.pk, user=user)
        unit_id = f"{kind.unit}_id"
        kind.skip_model._default_manager.get_or_create(
            project=current.project,  # type: ignore[attr-defined]
            reviewer=user,
            defaults={"reason": reason},
            **{unit_id: getattr(current, unit_id)},
        )
        extra = kind.on_skip(current, user) if kind.on_skip is not None else []
        slot_release(kind, slot=current, also=extra)
        audit_record(
            actor=user,
            action=kind.skip_action,
            target=getattr(current, kind.unit),
            project=current.project,  # type: ignore[attr-defined]
            data={"reason": reason},
        )


def slot_release(kind: SlotKind[S], *, slot: S, also: list[str] | None = None) -> None:
    """Give the slot back without skipping (its unit may come back to the reviewer later)."""
    for name in ("reviewer", "leased_at", "expires_at", *kind.lease_extra):
        setattr(slot, name, None)
    slot.lease_token = ""
    slot.save(update_fields=[*LEASE_FIELDS, *kind.lease_extra, *(also or [])])


def slot_fill(slot: S, *, at: datetime) -> None:
    """Mark the locked slot filled: it is never leased again."""
    slot.submitted_at = at
    slot.save(update_fields=["submitted_at"])


def slot_time_on_task(value: int | None) -> int | None:
    """The client's time on task, within reason (a day at most), or None."""
    if value is None:
        return None
    try:
        return max(0, min(int(value), MAX_TIME_ON_TASK_MS))
    except (TypeError, ValueError):
        return None


def _new_token() -> str:
    return secrets.token_urlsafe(16)
