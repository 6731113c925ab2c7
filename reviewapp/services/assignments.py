"""Who reviews what: assignment of review slots by filter, reviewer groups, priorities, send-back.

Assignment lives on the slot rows (``Assignment.assigned_to`` / ``assigned_group``), never on the
item, so ``queue_next`` decides with one index scan over slots. The rules, in
``selectors.open_slots_for_user``:

- shared pool (the default): a reviewer may lease a slot that is unassigned, assigned to them, or
  assigned to one of their groups;
- assigned mode: only slots assigned to them or to one of their groups; unassigned slots wait.

Bulk assignment replaces the assignment of every *open* (unsubmitted, non-gold) slot of the
matched items: named reviewers get one slot each per item, in rotation so the load is even and
never two slots of one item; the item's remaining open slots go to the group, if one is given, or
become unassigned. A lease in progress is left alone: its holder may still submit.

"Adding items to a queue" is the same operation: a priority set by filter is written to the items
and copied to their open slots (``Assignment.priority``), which queue_next orders by.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import F, OuterRef, Subquery
from django.utils import timezone

from reviewapp.errors import FieldError, ValidationFailed
from reviewapp.models import Assignment, Item, Project, Review, ReviewerGroup, Skip
from reviewapp.models.projects import QueueMode
from reviewapp.selectors.items import ItemQuery, items_matching
from reviewapp.services.audit import audit_record
from reviewapp.services.curation import curation_item_update
from reviewapp.services.readonly import project_check_writable
from reviewapp.typed_input import field_error

if TYPE_CHECKING:
    from reviewapp.usertypes import Actor

ID_CHUNK = 5_000  # ids per UPDATE ... WHERE id IN (...): far below PostgreSQL's 65,535 parameters

# --- bulk assignment -------------------------------------------------------------------------


@dataclass(frozen=True)
class BulkAssignResult:
    items: int  # items the filter matched
    slots_to_reviewers: int  # open slots now assigned to a named reviewer
    slots_to_group: int  # open slots now assigned to the group
    slots_unassigned: int  # open slots now assigned to nobody
    priority_set: int  # items whose priority was set


def assignments_bulk_assign(
    *,
    project: Project,
    query: ItemQuery,
    actor: Actor,
    reviewers: Sequence[Any] = (),
    group: ReviewerGroup | None = None,
    priority: int | None = None,
    assign: bool = True,
) -> BulkAssignResult:
    """Assign the open slots of the matching items and/or set their priority.

    ``assign=False`` leaves assignments as they are (priority only). With ``assign=True`` and
    neither reviewers nor group, the matched open slots become unassigned. ``reviewers`` must be
    members who may review; ``group`` must belong to the project (checked by the caller's getter
    and again here).
    """
    if group is not None and group.project_id != project.pk:
        raise ValidationFailed([field_error("group", "No such group in this project.")])
    if not assign and priority is None:
        raise ValidationFailed([field_error("", "Nothing to do: give reviewers, a group, a priority, or unassign.")])
    reviewer_ids = list(dict.fromkeys(r.pk for r in reviewers))
    project_check_writable(project)
    with transaction.atomic():
        items = items_matching(project=project, query=query)
        item_ids = list(items.values_list("id", flat=True))
        priority_set = 0
        if priority is not None:
            priority_set = _priority_set(project=project, item_ids=item_ids, priority=priority)
        to_reviewers = to_group = unassigned = 0
        if assign:
            to_reviewers, to_group, unassigned = _assign(
                project=project, item_ids=item_ids, reviewer_ids=reviewer_ids, group=group
            )
        result = BulkAssignResult(
            items=len(item_ids),
            slots_to_reviewers=to_reviewers,
            slots_to_group=to_group,
            slots_unassigned=unassigned,
            priority_set=priority_set,
        )
        audit_record(
            actor=actor,
            action="assignments.assign",
            target=project,
            project=project,
            data={
                "filter": query.describe(),
                "reviewers": reviewer_ids,
                "group": group.pk if group else None,
                "priority": priority,
                "assign": assign,
                **asdict(result),
            },
        )
    return result


def _assign(
    *, project: Project, item_ids: list[int], reviewer_ids: list[int], group: ReviewerGroup | None
) -> tuple[int, int, int]:
    slots = (
        list(
            Assignment.objects.select_for_update(of=("self",))
            .filter(project=project, item_id__in=item_ids, submitted_at__isnull=True, is_gold=False)
            .order_by("item_id", "slot")
            .values_list("id", "item_id", "reviewer_id")
        )
        if item_ids
        else []
    )
    chosen: dict[int, list[int]] = {}  # reviewer id -> slot ids
    rest: list[int] = []
    if reviewer_ids:
        closed = _closed_pairs(project=project, reviewer_ids=reviewer_ids, item_ids=item_ids)
        turn = 0
        used: set[int] = set()
        current_item = None
        for slot_id, item_id, holder in slots:
            if item_id != current_item:
                current_item, used = item_id, set()
            pick = None
            if holder in reviewer_ids and holder not in used:
                pick = holder  # the reviewer working on it now keeps it
            else:
                for step in range(len(reviewer_ids)):
                    candidate = reviewer_ids[(turn + step) % len(reviewer_ids)]
                    if candidate not in used and (item_id, candidate) not in closed:
                        pick = candidate
                        turn = (turn + step + 1) % len(reviewer_ids)
                        break
            if pick is None:
                rest.append(slot_id)
            else:
                used.add(pick)
                chosen.setdefault(pick, []).append(slot_id)
    else:
        rest = [slot_id for slot_id, _, _ in slots]
    for reviewer_id, ids in chosen.items():
        _update_ids(ids, assigned_to_id=reviewer_id, assigned_group=None)
    _update_ids(rest, assigned_to_id=None, assigned_group=group)
    to_reviewers = sum(len(ids) for ids in chosen.values())
    return (to_reviewers, len(rest), 0) if group is not None else (to_reviewers, 0, len(rest))


def _closed_pairs(*, project: Project, reviewer_ids: list[int], item_ids: list[int]) -> set[tuple[int, int]]:
    """(item, reviewer) pairs where that reviewer may not take a slot: touched, skipped or returned."""
    wanted = set(item_ids)
    pairs: set[tuple[int, int]] = set()
    for model, extra in ((Assignment, {}), (Skip, {}), (Review, {"returned_at__isnull": False})):
        rows = model.objects.filter(project=project, reviewer_id__in=reviewer_ids, **extra).values_list(
            "item_id", "reviewer_id"
        )
        pairs.update(pair for pair in rows if pair[0] in wanted)
    return pairs


def _update_ids(ids: list[int], **values: Any) -> None:
    for start in range(0, len(ids), ID_CHUNK):
        Assignment.objects.filter(pk__in=ids[start : start + ID_CHUNK]).update(**values)


def _priority_set(*, project: Project, item_ids: list[int], priority: int) -> int:
    changed = 0
    for start in range(0, len(item_ids), ID_CHUNK):
        chunk = item_ids[start : start + ID_CHUNK]
        changed += Item.objects.filter(project=project, pk__in=chunk).update(priority=priority)
        Assignment.objects.filter(project=project, item_id__in=chunk, submitted_at__isnull=True).update(
            priority=priority
        )
    return changed


def slots_priority_sync(*, project: Project, item_ids: Iterable[int]) -> int:
    """Copy Item.priority onto the items' open slots where it differs (after ingest updated items)."""
    ids = list(item_ids)
    synced = 0
    item_priority = Subquery(Item.objects.filter(pk=OuterRef("item_id")).values("priority")[:1])
    for start in range(0, len(ids), ID_CHUNK):
        synced += (
            Assignment.objects.filter(
                project=project, item_id__in=ids[start : start + ID_CHUNK], submitted_at__isnull=True
            )
            .exclude(priority=F("item__priority"))
            .update(priority=item_priority)
        )
    return synced


# --- reviewer groups ---------------------------------------------------------------------------


def reviewer_group_create(*, project: Project, name: str, members: Sequence[Any] = (), actor: Actor) -> ReviewerGroup:
    name = _group_name(project=project, name=name)
    with transaction.atomic():
        group = ReviewerGroup.objects.create(project=project, name=name)
        group.members.set(members)
        audit_record(
            actor=actor,
            action="group.create",
            target=group,
            project=project,
            data={"name": name, "members": sorted(m.pk for m in members)},
        )
    return group


def reviewer_group_update(
    *, group: ReviewerGroup, actor: Actor, name: str | None = None, members: Sequence[Any] | None = None
) -> ReviewerGroup:
    with transaction.atomic():
        data: dict[str, Any] = {}
        if name is not None and name.strip() != group.name:
            group.name = _group_name(project=group.project, name=name, exclude_pk=group.pk)
            group.save(update_fields=["name"])
            data["name"] = group.name
        if members is not None:
            group.members.set(members)
            data["members"] = sorted(m.pk for m in members)
        if data:
            audit_record(actor=actor, action="group.update", target=group, project=group.project, data=data)
    return group


def reviewer_group_delete(*, group: ReviewerGroup, actor: Actor) -> None:
    """Delete a group; its open slots become unassigned (SET_NULL)."""
    with transaction.atomic():
        audit_record(actor=actor, action="group.delete", target=group, project=group.project, data={"name": group.name})
        group.delete()


def _group_name(*, project: Project, name: str, exclude_pk: int | None = None) -> str:
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValidationFailed([field_error("name", "Give a name of 1 to 100 characters.")])
    clash = ReviewerGroup.objects.filter(project=project, name=name)
    if exclude_pk is not None:
        clash = clash.exclude(pk=exclude_pk)
    if clash.exists():
        raise ValidationFailed([field_error("name", "A group of this name already exists in the project.")])
    return name


# --- send back -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendBackResult:
    returned: list[int]  # review ids now marked returned
    reopened: int  # slots open again


def item_send_back(
    *,
    item: Item,
    actor: Actor,
    review_ids: Sequence[int] | None = None,
    reason: str = "",
    reason_required: bool = False,
) -> SendBackResult:
    """Send reviews of an item back for re-review (a curator action).

    The chosen reviews are marked returned (kept, with who returned them, when and why; they no
    longer count toward the item's N and can no longer be edited) and their slots are reopened
    for *another* reviewer: the original reviewer is never offered the item again (see
    ``selectors.open_slots_for_user``). Why not re-ask them: a review is sent back because it
    is doubtful, and an independent second opinion is what the curator needs; it also keeps
    "never the same reviewer twice on one item" true without exceptions. A slot the original
    reviewer was personally assigned becomes unassigned (their group assignment stays); to
    choose who re-reviews, assign the item afterwards (bulk assignment with ``ids``).
    ``review_ids=None`` returns every current review of the item. ``reason_required``: the page
    asks for a reason (the re-reviewer and the audit log read it); the API keeps it optional.
    """
    reason = (reason or "").strip()[:500]
    project_check_writable(item.project)
    if reason_required and not reason:
        raise ValidationFailed([field_error("reason", "Say why this item needs another review.")])
    with transaction.atomic():
        reviews = Review.objects.select_for_update(of=("self",)).filter(item=item, returned_at__isnull=True)
        if review_ids is not None:
            wanted = list(dict.fromkeys(review_ids))
            reviews = reviews.filter(pk__in=wanted)
            found = {r.pk: r for r in reviews}
            missing = [pk for pk in wanted if pk not in found]
            if missing:
                raise ValidationFailed(
                    [field_error("reviews", f"Not a current review of this item: {', '.join(map(str, missing))}.")],
                    "Some reviews cannot be sent back.",
                )
            chosen = [found[pk] for pk in wanted]
        else:
            chosen = list(reviews.order_by("id"))
        if not chosen:
            raise ValidationFailed([field_error("reviews", "This item has no current reviews to send back.")])
        slot_ids = [r.assignment_id for r in chosen if r.assignment_id is not None]
        slots = list(Assignment.objects.select_for_update(of=("self",)).filter(pk__in=slot_ids))
        now = timezone.now()
        Review.objects.filter(pk__in=[r.pk for r in chosen]).update(
            returned_at=now, returned_by=actor, return_reason=reason, assignment=None
        )
        authors = {r.assignment_id: r.reviewer_id for r in chosen}
        for slot in slots:
            slot.reviewer = None
            slot.leased_at = slot.expires_at = slot.submitted_at = None
            if slot.assigned_to_id is not None and slot.assigned_to_id == authors.get(slot.pk):
                slot.assigned_to = None
            slot.priority = item.priority
        Assignment.objects.bulk_update(
            slots, ["reviewer", "leased_at", "expires_at", "submitted_at", "assigned_to", "priority"]
        )
        counted = sum(1 for slot in slots if slot.counts_toward_n)
        Item.objects.filter(pk=item.pk).update(review_count=F("review_count") - counted)
        # The item's curated label or adjudication follows its current reviews (returned ones no longer count).
        curation_item_update(item=item)
        result = SendBackResult(returned=[r.pk for r in chosen], reopened=len(slots))
        audit_record(
            actor=actor,
            action="item.send_back",
            target=item,
            project=item.project,
            data={"reviews": result.returned, "reopened": result.reopened, "reason": reason},
        )
    return result


# --- queue settings --------------------------------------------------------------------------

# Blind review settings: only admins (Capability.MANAGE) change them, curators see them.
ADMIN_QUEUE_SETTINGS: tuple[str, ...] = ("show_model_to_reviewers", "sibling_spacing")
MAX_SIBLING_SPACING = 1000


def project_queue_settings_set(
    *,
    project: Project,
    actor: Actor,
    queue_mode: str | None = None,
    gold_rate: float | None = None,
    lease_seconds: int | None = None,
    show_model_to_reviewers: bool | None = None,
    sibling_spacing: int | None = None,
) -> Project:
    """Change how the project's queue hands out items; each given setting is checked first.

    ``show_model_to_reviewers`` and ``sibling_spacing`` (blind review, ``reviewapp.blind``) are
    admins' settings (``ADMIN_QUEUE_SETTINGS``): the caller checks the MANAGE capability.
    """
    project_check_writable(project)
    errors: list[FieldError] = []
    changes: dict[str, Any] = {}
    if queue_mode is not None:
        if queue_mode not in QueueMode.values:
            errors.append(field_error("queue_mode", f"Use one of {', '.join(QueueMode.values)}."))
        changes["queue_mode"] = queue_mode
    if gold_rate is not None:
        if not 0.0 <= gold_rate <= 1.0:
            errors.append(field_error("gold_rate", "Give a share from 0 to 1."))
        changes["gold_rate"] = float(gold_rate)
    if lease_seconds is not None:
        if not 30 <= lease_seconds <= 24 * 3600:
            errors.append(field_error("lease_seconds", "Give 30 seconds to 24 hours."))
        changes["lease_seconds"] = lease_seconds
    if show_model_to_reviewers is not None:
        changes["show_model_to_reviewers"] = bool(show_model_to_reviewers)
    if sibling_spacing is not None:
        if not 0 <= sibling_spacing <= MAX_SIBLING_SPACING:
            errors.append(field_error("sibling_spacing", f"Give 0 (off) to {MAX_SIBLING_SPACING} items."))
        changes["sibling_spacing"] = sibling_spacing
    if errors:
        raise ValidationFailed(errors, "The queue settings are not valid.")
    if not changes:
        return project
    with transaction.atomic():
        before = {key: getattr(project, key) for key in changes}
        for key, value in changes.items():
            setattr(project, key, value)
        project.save(update_fields=list(changes))
        audit_record(
            actor=actor,
            action="project.queue_settings",
            target=project,
            project=project,
            data={"from": before, "to": changes},
        )
    return project
