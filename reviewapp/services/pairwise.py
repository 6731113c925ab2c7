"""Pairwise mode: two model versions' answers to one request, judged side by side, blind.

- ``pairwise_tasks_create`` pairs the items of two model versions that answer the same request.
  It is idempotent: an item already paired for these two versions is not paired again, and the
  database refuses a second task for the same two items whichever is called A.
- ``pairwise_next`` leases a pair slot through the slot engine (``services.slots``, kind
  ``PAIR_SLOTS``), like ``queue_next`` leases a review slot. The left/right order is drawn at random
  when the slot is leased and stored on it, with the lease's fresh token.
- ``pairwise_submit`` records a Preference from the sides stored on the lease, never from what a
  client says it showed: the client names the side (a = left, b = right) and the lease token, and
  the server works out which item and which model version won.
Results (win rates with Wilson intervals) are in ``reviewapp.services.pairwise_results``.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from reviewapp.blind import request_key  # one definition of "the same request" (siblings too)
from reviewapp.errors import AlreadySubmitted, FieldError, ValidationFailed
from reviewapp.models import Item, PairwiseSkip, PairwiseSlot, PairwiseTask, Preference, Project
from reviewapp.selectors.pairwise import pairwise_open_slots_for_user
from reviewapp.services.audit import audit_record
from reviewapp.services.readonly import project_check_writable
from reviewapp.services.slots import (
    SlotKind,
    slot_fill,
    slot_lease_until,
    slot_lock_for_submit,
    slot_next,
    slot_take,
    slot_time_on_task,
)
from reviewapp.typed_input import TypedInput, field_error, says, struct_errors
from reviewapp.usertypes import signed_in

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from reviewapp.usertypes import Actor

MAX_PREFERENCES_PER_TASK = 20
MAX_REASON = 2000


# --- pairing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairingResult:
    created: int  # new tasks
    existing: int  # tasks these two versions already had
    unmatched_a: int  # items of version A with no partner of version B (not yet paired)
    unmatched_b: int


# A runtime Literal of the model's choices (Any: mypy cannot read a Literal built from values).
Choice: Any = Annotated[Literal.__getitem__(tuple(Preference.Choice.values)), says("Pick A, B, tie or both bad.")]
VersionName = Annotated[str, msgspec.Meta(max_length=100), says("At most 100 characters.")]


class PairingIn(TypedInput):
    """What pairing two model versions takes (the filters are checked by their callers' forms)."""

    version_a: VersionName
    version_b: VersionName
    preferences_per_task: Annotated[
        int, msgspec.Meta(ge=1, le=MAX_PREFERENCES_PER_TASK), says(f"Between 1 and {MAX_PREFERENCES_PER_TASK}.")
    ] = 1


class PreferenceIn(TypedInput):
    """A judgement of a leased pair, by side as shown."""

    choice: Choice
    reason: Annotated[str, msgspec.Meta(max_length=MAX_REASON), says(f"At most {MAX_REASON} characters.")] = ""


def _pairing_errors(*, version_a: str, version_b: str, preferences_per_task: int) -> list[FieldError]:
    raw = {"version_a": version_a, "version_b": version_b, "preferences_per_task": preferences_per_task}
    _, errors = struct_errors(raw, PairingIn)
    for field, value in (("version_a", version_a), ("version_b", version_b)):
        if not value.strip():
            errors.append(field_error(field, "Name a model version."))
    if version_a.strip() and version_a == version_b:
        errors.append(field_error("version_b", "Pick a version other than version_a."))
    return errors


@dataclass(frozen=True)
class PairingFilter:
    """Which items pairing considers (all of the two versions' items when empty)."""

    source: str = ""
    model_name: str = ""
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True)
class PairingPlan:
    pairs: list[tuple[int, int]]
    existing: int
    unmatched_a: int
    unmatched_b: int


def _pairing_plan(
    *, project: Project, version_a: str, version_b: str, where: PairingFilter, limit: int | None
) -> PairingPlan:
    """The pairs a pairing would create now (at most ``limit``, the oldest items first)."""
    items = Item.objects.filter(project=project, model_version__in=[version_a, version_b])
    if where.source:
        items = items.filter(source=where.source)
    if where.model_name:
        items = items.filter(model_name=where.model_name)
    if where.created_after is not None:
        items = items.filter(created_at__gte=where.created_after)
    if where.created_before is not None:
        items = items.filter(created_at__lt=where.created_before)
    existing = list(
        PairwiseTask.objects.filter(project=project)
        .filter(Q(version_a=version_a, version_b=version_b) | Q(version_a=version_b, version_b=version_a))
        .values_list("item_a_id", "item_b_id")
    )
    paired = {pk for pair in existing for pk in pair}
    pools: dict[str, dict[str, list[int]]] = {version_a: defaultdict(list), version_b: defaultdict(list)}
    for pk, version, request in (
        items.order_by("id").values_list("id", "model_version", "request").iterator(chunk_size=2000)
    ):
        if pk not in paired:
            pools[version][request_key(request)].append(pk)
    pairs: list[tuple[int, int]] = []
    unmatched_a = unmatched_b = 0
    for key in pools[version_a].keys() | pools[version_b].keys():
        a_ids, b_ids = pools[version_a].get(key, []), pools[version_b].get(key, [])
        n = min(len(a_ids), len(b_ids))
        pairs.extend(zip(a_ids[:n], b_ids[:n], strict=True))
        unmatched_a += len(a_ids) - n
        unmatched_b += len(b_ids) - n
    pairs.sort()  # the queue hands out pairs in creation order: keep it the order of the items
    if limit is not None:
        # Pairs left out by the limit are not "unmatched": a later run pairs them.
        pairs = pairs[:limit]
    return PairingPlan(pairs=pairs, existing=len(existing), unmatched_a=unmatched_a, unmatched_b=unmatched_b)


def _checked(version_a: str, version_b: str, preferences_per_task: int, limit: int | None) -> tuple[str, str]:
    version_a, version_b = version_a.strip(), version_b.strip()
    errors = _pairing_errors(version_a=version_a, version_b=version_b, preferences_per_task=preferences_per_task)
    if limit is not None and not 1 <= limit <= MAX_PAIRS_PER_RUN:
        errors.append(field_error("limit", f"Between 1 and {MAX_PAIRS_PER_RUN}, or empty for every pair."))
    if errors:
        raise ValidationFailed(errors)
    return version_a, version_b


MAX_PAIRS_PER_RUN = 1_000_000


def pairwise_tasks_preview(
    *,
    project: Project,
    version_a: str,
    version_b: str,
    preferences_per_task: int = 1,
    limit: int | None = None,
    where: PairingFilter | None = None,
) -> PairingResult:
    """What ``pairwise_tasks_create`` would do now, without writing: ``created`` is the pairs it would make."""
    version_a, version_b = _checked(version_a, version_b, preferences_per_task, limit)
    plan = _pairing_plan(
        project=project, version_a=version_a, version_b=version_b, where=where or PairingFilter(), limit=limit
    )
    return PairingResult(
        created=len(plan.pairs), existing=plan.existing, unmatched_a=plan.unmatched_a, unmatched_b=plan.unmatched_b
    )


def pairwise_tasks_create(
    *,
    project: Project,
    version_a: str,
    version_b: str,
    actor: Actor = None,
    preferences_per_task: int = 1,
    source: str = "",
    model_name: str = "",
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: int | None = None,
) -> PairingResult:
    """Pair every item of ``version_a`` with an item of ``version_b`` that answers the same request.

    The filters (``source``, ``model_name``, a creation-time range) narrow the items considered;
    ``limit`` caps the new pairs (the oldest items first; the rest are paired by a later run).
    When a request has several items of one version, they are paired in id order and the extras
    stay unmatched. Each new task gets ``preferences_per_task`` slots. Running it again creates
    only the pairs that are new (items ingested since), never a duplicate.
    """
    project_check_writable(project)
    version_a, version_b = _checked(version_a, version_b, preferences_per_task, limit)
    where = PairingFilter(
        source=source, model_name=model_name, created_after=created_after, created_before=created_before
    )
    with transaction.atomic():
        # One pairing at a time per project, so two concurrent runs cannot pair one item twice.
        Project.objects.select_for_update().filter(pk=project.pk).first()
        plan = _pairing_plan(project=project, version_a=version_a, version_b=version_b, where=where, limit=limit)
        tasks = PairwiseTask.objects.bulk_create(
            [
                PairwiseTask(
                    project=project,
                    item_a_id=a,
                    item_b_id=b,
                    version_a=version_a,
                    version_b=version_b,
                    preferences_per_task=preferences_per_task,
                    created_by=signed_in(actor),
                )
                for a, b in plan.pairs
            ],
            batch_size=1000,
        )
        PairwiseSlot.objects.bulk_create(
            [PairwiseSlot(project=project, task=task, slot=n) for task in tasks for n in range(preferences_per_task)],
            batch_size=2000,
        )
        result = PairingResult(
            created=len(tasks), existing=plan.existing, unmatched_a=plan.unmatched_a, unmatched_b=plan.unmatched_b
        )
        if tasks:
            audit_record(
                actor=actor,
                action="pairwise.tasks_create",
                target=project,
                project=project,
                data={
                    "version_a": version_a,
                    "version_b": version_b,
                    "preferences_per_task": preferences_per_task,
                    "filter": {
                        "source": source,
                        "model_name": model_name,
                        "created_after": created_after.isoformat() if created_after else None,
                        "created_before": created_before.isoformat() if created_before else None,
                    },
                    "limit": limit,
                    "created": result.created,
                    "first_task": tasks[0].pk,
                    "last_task": tasks[-1].pk,
                },
            )
    return result


# --- leasing -----------------------------------------------------------------------------------

PAIR_SLOTS = SlotKind(
    model=PairwiseSlot,
    related=("project", "task__item_a", "task__item_b"),
    unit="task",
    skip_model=PairwiseSkip,
    skip_action="pairwise.skip",
    lease_extra=("left_item",),
    token_required=True,
    texts={
        "removed": "This pair was removed from the project; take the next one.",
        "lost": "Your lease on this pair expired and another reviewer has it now.",
        "submitted": "You already judged this pair.",
        "stale": "This page showed the pair under an earlier lease, perhaps with other sides.",
    },
)


def pairwise_next(*, project: Project, user: User) -> PairwiseSlot | None:
    """The reviewer's current pair (renewed, same sides), or a newly leased one; None when none is left."""
    project_check_writable(project)
    return slot_next(PAIR_SLOTS, project=project, user=user, lease_new=lambda: _lease_new(project=project, user=user))


def _lease_new(*, project: Project, user: User) -> PairwiseSlot | None:
    candidates = (
        pairwise_open_slots_for_user(project=project, user=user).select_related(*PAIR_SLOTS.related).order_by("id")
    )
    if connection.features.has_select_for_update_skip_locked:
        candidates = candidates.select_for_update(skip_locked=True, of=("self",))
    slot = candidates.first()
    if slot is None:
        return None
    task = slot.task
    # Drawn per lease, not per task, so no version sits on one side for everybody.
    left = task.item_a_id if secrets.randbelow(2) == 0 else task.item_b_id
    return slot_take(slot, user=user, expires_at=slot_lease_until(project), left_item_id=left)


def pairwise_slot_sides(slot: PairwiseSlot) -> tuple[Item, Item]:
    """The (left, right) items of a leased slot, as stored at lease time."""
    task = slot.task
    if slot.left_item_id == task.item_b_id:
        return task.item_b, task.item_a
    return task.item_a, task.item_b


# --- judging -----------------------------------------------------------------------------------


def pairwise_submit(
    *,
    slot_id: int,
    user: User,
    lease_token: str,
    choice: str,
    reason: str = "",
    time_on_task_ms: int | None = None,
    project: Project | None = None,
) -> Preference:
    """Record the reviewer's judgement of their leased pair.

    ``choice`` is by side as shown: ``a`` (left better), ``b`` (right better), ``tie`` or
    ``both_bad``. The winner is worked out from the sides stored on the lease. ``lease_token``
    must be the current lease's, else LeaseLost: the sides may have been drawn again since the
    page was shown. With ``project``, a slot of another project counts as missing.
    """
    with transaction.atomic():
        current = slot_lock_for_submit(PAIR_SLOTS, pk=slot_id, user=user, project=project, lease_token=lease_token)
        project_check_writable(current.project)
        reason = (reason or "").strip()
        _, errors = struct_errors({"choice": choice, "reason": reason}, PreferenceIn)
        if errors:
            raise ValidationFailed(errors)
        task = current.task
        if Preference.objects.filter(task=task, reviewer=user).exists():
            raise AlreadySubmitted("You already judged this pair.")
        left, right = pairwise_slot_sides(current)
        winner, loser = {"a": (left, right), "b": (right, left)}.get(choice, (None, None))
        outcome = Preference.Outcome.WIN if winner is not None else Preference.Outcome(choice)
        now = timezone.now()
        preference = Preference.objects.create(
            project=current.project,
            task=task,
            slot=current,
            reviewer=user,
            left_item=left,
            right_item=right,
            left_model_version=left.model_version,
            right_model_version=right.model_version,
            choice=choice,
            outcome=outcome,
            winner_item=winner,
            winner_model_version=winner.model_version if winner is not None else "",
            loser_model_version=loser.model_version if loser is not None else "",
            reason=reason,
            time_on_task_ms=slot_time_on_task(time_on_task_ms),
            submitted_at=now,
        )
        slot_fill(current, at=now)
        # The UPDATE locks the task row, so two reviewers filling its last slots count in turn.
        PairwiseTask.objects.filter(pk=task.pk).update(preference_count=F("preference_count") + 1)
        PairwiseTask.objects.filter(pk=task.pk, preference_count__gte=F("preferences_per_task")).update(
            status=PairwiseTask.Status.DONE
        )
        audit_record(
            actor=user,
            action="pairwise.submit",
            target=preference,
            project=current.project,
            data={
                "task": task.pk,
                "choice": choice,
                "left_item": left.pk,
                "right_item": right.pk,
                "winner_item": winner.pk if winner is not None else None,
            },
        )
    return preference
