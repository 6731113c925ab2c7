"""Gold items: items with known answers, mixed unannounced into reviewers' queues.

Design
------
A gold item must reach *every* reviewer once (that is how each one's accuracy is measured), but
an item has only N review slots. So:

- A gold item stays an ordinary item: its N review slots remain in the ordinary pool, leased and
  counted like any other (``review_count``, progress, assignment by filter). Nothing about them
  changes when it becomes gold, so the pool never behaves differently around gold items.
- On top of that, ``queue_next`` rolls a die per new lease: with probability ``Project.gold_rate``
  it calls ``gold_slot_lease``, which takes the oldest gold item this reviewer never touched,
  skipped or had returned and leases an *extra* slot of it (``is_gold``, numbered from
  ``EXTRA_SLOT_BASE``; a free one left by an expired lease or a skip is reused, else one is
  created). Extra slots are outside N: "never more than N reviews per item" and ``review_count``
  concern the N review slots; a gold item simply collects one more review per reviewer who meets
  it. Extra slots are never in the ordinary pool (the queue index covers ``is_gold = false``).
- The die is ``random.SystemRandom`` (not a hash of reviewer and item), so nobody can work out
  from ids which item is gold; tests pass their own seeded ``random.Random``. Gold is only mixed
  into real work: when the ordinary pool is empty for a reviewer they are done, never handed a
  string of gold items (which would give them away).
- The same constraints hold as for any slot: one slot per reviewer per item (the same unique
  constraint), leases renewed and swept the same way, a skip hides the item for good.
- The reviewer sees a gold item exactly like any other (same endpoint, same page, same fields);
  the GoldAnswer is readable only with the CURATE capability (``api/gold.py``), never on review
  pages or in queue responses.
- Removing the gold answer (``gold_answer_delete``) deletes the extra slots nobody is working on;
  reviews made on extra slots stay, as history.

Accuracy (``selectors.gold_accuracy_for_reviewers``) compares every current review of a gold item
(on its review slots and its extra slots alike) with its gold answers, question by question.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from reviewapp.errors import ValidationFailed
from reviewapp.models import Assignment, GoldAnswer, Item, Project
from reviewapp.models.gold import SCORABLE_KINDS
from reviewapp.models.reviews import EXTRA_SLOT_BASE
from reviewapp.selectors.projects import questions_for_project
from reviewapp.selectors.queue import items_closed_to_user
from reviewapp.services.answers import answers_validate
from reviewapp.services.audit import audit_record
from reviewapp.services.readonly import project_check_writable
from reviewapp.services.slots import slot_take
from reviewapp.typed_input import field_error

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from reviewapp.usertypes import Actor


def gold_answer_set(*, project: Project, item: Item, answers: Any, actor: Actor, note: str = "") -> GoldAnswer:
    """Mark ``item`` gold with these known answers (or replace them). Raises ValidationFailed.

    Answers may cover some of the questions, at least one of them scorable; each is validated
    against the schema like a review's.
    """
    if item.project_id != project.pk:
        raise ValidationFailed([field_error("item", "No such item in this project.")])
    questions = questions_for_project(project=project)
    if not isinstance(answers, dict) or not answers:
        raise ValidationFailed([field_error("answers", "Give the known answers as an object keyed by question.")])
    given = [q for q in questions if q.key in answers]
    cleaned = answers_validate(questions=given, item=item, answers=answers)
    if not any(q.kind in SCORABLE_KINDS and q.key in cleaned for q in given):
        raise ValidationFailed(
            [field_error("answers", "Give at least one answer that can be scored (pass/fail, rating or choice).")]
        )
    project_check_writable(project)
    with transaction.atomic():
        gold, created = GoldAnswer.objects.select_for_update().get_or_create(
            item=item, defaults={"project": project, "answers": cleaned, "note": note.strip(), "created_by": actor}
        )
        if not created:
            gold.answers = cleaned
            gold.note = note.strip()
            gold.save(update_fields=["answers", "note", "updated_at"])
        audit_record(
            actor=actor,
            action="gold.set",
            target=gold,
            project=project,
            data={"item": item.pk, "created": created, "answers": cleaned},
        )
    return gold


def gold_answer_delete(*, gold: GoldAnswer, actor: Actor) -> None:
    """The item is an ordinary item again; reviews made on its extra slots are kept."""
    project_check_writable(gold.project)
    with transaction.atomic():
        now = timezone.now()
        # Extra slots nobody holds go; one being worked on stays until it is submitted or swept.
        Assignment.objects.filter(item_id=gold.item_id, is_gold=True, submitted_at__isnull=True).filter(
            Q(reviewer__isnull=True) | Q(expires_at__lt=now)
        ).delete()
        audit_record(
            actor=actor,
            action="gold.delete",
            target=gold,
            project=gold.project,
            data={"item": gold.item_id, "answers": gold.answers},
        )
        gold.delete()


def gold_slot_lease(*, project: Project, user: User, expires_at: datetime) -> Assignment | None:
    """Lease an extra slot of a gold item this reviewer has not seen; None when there is none.

    Runs inside queue_next's transaction. The GoldAnswer row is locked (SKIP LOCKED), so two
    reviewers never create an extra slot of one item with the same number at once.
    """
    golds = GoldAnswer.objects.filter(project=project)
    for closed in items_closed_to_user(project=project, user=user):
        golds = golds.exclude(item_id__in=closed)
    golds = golds.order_by("id")
    if connection.features.has_select_for_update_skip_locked:
        golds = golds.select_for_update(skip_locked=True)
    gold = golds.first()
    if gold is None:
        return None
    now = timezone.now()
    free = (
        Assignment.objects.select_for_update(of=("self",))
        .filter(item_id=gold.item_id, is_gold=True, submitted_at__isnull=True)
        .filter(Q(reviewer__isnull=True) | Q(expires_at__lt=now))
        .order_by("slot")
    )
    slot = free.first()
    if slot is None:
        top = Assignment.objects.filter(item_id=gold.item_id).aggregate(m=Max("slot"))["m"] or 0
        slot = Assignment(
            project=project, item_id=gold.item_id, slot=max(top + 1, EXTRA_SLOT_BASE), is_gold=True, priority=0
        )
    return slot_take(slot, user=user, expires_at=expires_at)
