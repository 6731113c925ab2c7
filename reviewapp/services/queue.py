"""The review queue: lease a free slot, keep it alive, give it back.

Each item has ``reviews_per_item`` slots (Assignment rows). Leasing locks one free slot row
with ``SELECT ... FOR UPDATE SKIP LOCKED`` and writes the lease onto that same row; if another
transaction leased it in the meantime, PostgreSQL re-checks the row's new values and skips it,
so two reviewers never hold one slot. On SQLite, writes are serialised by the database lock.
Holding, renewing, skipping and locking one's own lease are the slot engine's (``services.slots``,
kind ``REVIEW_SLOTS``); this module chooses which slot a reviewer gets next.

Sibling spacing (blind review): items of a project whose requests are the same (``Item.request_hash``,
see ``reviewapp.blind``) are siblings, typically two model versions' answers to one question. A
reviewer never gets a sibling of any of their last ``project.sibling_spacing`` items (leased or
skipped), so at least that many other items come between two answers to one request and the
reviewer does not anchor on the other version's answer. When only such siblings are left for the
reviewer, the first one in queue order is served anyway: nobody is told "all done" while work
remains. Spacing is per reviewer and keeps the queue order (priority, then oldest) otherwise.
Cost: one small indexed query per new lease, and one more pass over the sources only when the
spaced pass finds nothing.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from reviewapp.models import Assignment, Item, Project, Skip
from reviewapp.selectors.queue import queue_sources_for_user
from reviewapp.services.gold import gold_slot_lease
from reviewapp.services.slots import (
    SlotKind,
    slot_lease_until,
    slot_lock_own,
    slot_next,
    slot_release,
    slot_take,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

_dice = random.SystemRandom()  # which lease is a gold item must not be predictable


def _unassign_on_skip(slot: Assignment, user: User) -> list[str]:
    # A slot assigned to this reviewer personally becomes unassigned (a group assignment stays), so
    # curators see it as needing someone else instead of it waiting for a reviewer who declined it.
    if slot.assigned_to_id != user.pk:
        return []
    slot.assigned_to = None
    return ["assigned_to"]


REVIEW_SLOTS = SlotKind(
    model=Assignment,
    related=("project", "item"),
    unit="item",
    skip_model=Skip,
    skip_action="item.skip",
    on_skip=_unassign_on_skip,
    texts={
        "removed": "This item was removed from the project; take the next one.",
        "lost": "Your lease on this item expired and another reviewer has it now.",
        "submitted": "You already submitted this item; edit it from My reviews.",
        "stale": "This page showed the item under an earlier lease; another reviewer may have answered it since.",
    },
)


def queue_next(*, project: Project, user: User, rng: random.Random | None = None) -> Assignment | None:
    """The reviewer's current lease, or a newly leased free slot; None when nothing is left.

    A reviewer who already holds an unsubmitted slot gets it back (renewed), so a reload or a
    second tab never loses work or takes a second item. A new lease is the first slot open to
    the reviewer in priority order (``selectors.queue_sources_for_user``: queue mode, assignment,
    items they never saw), skipping siblings of their last ``sibling_spacing`` items unless only
    those are left, or, at the project's gold rate, a gold item (``services.gold``).
    ``rng`` is for tests: the gold die.
    """
    dice = rng or _dice
    return slot_next(
        REVIEW_SLOTS, project=project, user=user, lease_new=lambda: _lease_new(project=project, user=user, rng=dice)
    )


def _lease_new(*, project: Project, user: User, rng: random.Random) -> Assignment | None:
    sources = queue_sources_for_user(project=project, user=user)
    recent = recent_request_hashes(project=project, user=user)
    slot = _best_slot(sources, recent=recent)
    if slot is None and recent:
        # Only siblings of the reviewer's last items are left: serve them rather than leave the
        # reviewer with nothing while work remains (one more pass, only in this case).
        slot = _best_slot(sources, recent=[])
    if slot is None:
        return None  # gold is mixed into real work, never served on its own (services/gold.py)
    if project.gold_rate > 0 and rng.random() < project.gold_rate:
        gold = gold_slot_lease(project=project, user=user, expires_at=slot_lease_until(project))
        if gold is not None:
            return gold  # the ordinary slot's row lock ends with this transaction, untouched
    return slot_take(slot, user=user, expires_at=slot_lease_until(project))


def recent_request_hashes(*, project: Project, user: User) -> list[str]:
    """The request hashes of the items the reviewer met last: their siblings must wait.

    The items of their last ``sibling_spacing`` leases (submitted or held, by lease time) and of
    their last ``sibling_spacing`` skips (a skipped answer was read too). One small query; none
    when spacing is off (0). Passing the hashes as a list keeps each lease query cheap to build.
    """
    k = project.sibling_spacing
    if k <= 0:
        return []
    leased = (
        Assignment.objects.filter(project=project, reviewer=user, leased_at__isnull=False)
        .order_by("-leased_at", "-id")
        .values("item_id")[:k]
    )
    skipped = Skip.objects.filter(project=project, reviewer=user).order_by("-id").values("item_id")[:k]
    # A UNION, not one OR of the two: "id IN (a) OR id IN (b)" scans every item of the table.
    items = [Item.objects.filter(pk__in=ids).exclude(request_hash="").order_by() for ids in (leased, skipped)]
    hashes = items[0].values_list("request_hash", flat=True).union(items[1].values_list("request_hash", flat=True))
    return sorted(hashes)


def _best_slot(sources: list[QuerySet[Assignment]], *, recent: list[str]) -> Assignment | None:
    """The first open slot over all sources in queue order (priority, then oldest), locked.

    Slots of items whose request hash is in ``recent`` (siblings of the reviewer's last items)
    are passed over, so the next sibling comes at least K items later.
    """
    slot = None
    for source in sources:
        if recent:
            source = source.exclude(item__request_hash__in=recent)
        if connection.features.has_select_for_update_skip_locked:
            source = source.select_for_update(skip_locked=True, of=("self",))
        first = source.select_related("item").first()  # the caller shows the item: no second query
        # The best first row wins; the others' row locks end with this short transaction.
        if first is not None and (slot is None or (-first.priority, first.pk) < (-slot.priority, slot.pk)):
            slot = first
    return slot


def assignment_release(*, assignment: Assignment, user: User) -> None:
    """Give the slot back without skipping (the reviewer may get the item again later)."""
    with transaction.atomic():
        slot_release(REVIEW_SLOTS, slot=slot_lock_own(REVIEW_SLOTS, pk=assignment.pk, user=user))


def leases_reclaim_expired(*, project: Project | None = None) -> int:
    """Free expired, unsubmitted leases (the sweeper). Returns how many were freed."""
    qs = Assignment.objects.filter(submitted_at__isnull=True, expires_at__lt=timezone.now())
    if project is not None:
        qs = qs.filter(project=project)
    return qs.update(reviewer=None, leased_at=None, expires_at=None, lease_token="")
