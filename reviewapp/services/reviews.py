from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from reviewapp.errors import ReviewReturned
from reviewapp.models import Item, Project, Review, ReviewRevision
from reviewapp.selectors.projects import questions_for_project
from reviewapp.services.answers import answers_validate
from reviewapp.services.audit import audit_record
from reviewapp.services.curation import curation_item_update
from reviewapp.services.queue import REVIEW_SLOTS
from reviewapp.services.readonly import project_check_writable
from reviewapp.services.slots import slot_fill, slot_lock_for_submit, slot_time_on_task

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def review_submit(
    *,
    assignment_id: int,
    user: User,
    answers: Any,
    comment: str = "",
    time_on_task_ms: int | None = None,
    project: Project | None = None,
    lease_token: str | None = None,
) -> Review:
    """Fill the reviewer's leased slot with a review.

    An expired lease that nobody else has taken is still honoured (the reviewer's work is not
    thrown away); a slot someone else now holds raises LeaseLost. ``lease_token`` is the token of
    the lease the page or client was given: StaleLease when the slot has been leased again since
    (None: not checked, for REST clients that do not send one). With ``project``, a slot of
    another project counts as missing, so access checked on one project never reaches another.
    """
    with transaction.atomic():
        slot = slot_lock_for_submit(
            REVIEW_SLOTS,
            pk=assignment_id,
            user=user,
            project=project,
            lease_token=lease_token,
            removed="This item was removed from the project; your answers were not saved.",
        )
        project = slot.project
        project_check_writable(project)
        questions = questions_for_project(project=project)
        cleaned = answers_validate(questions=questions, item=slot.item, answers=answers)
        now = timezone.now()
        review = Review.objects.create(
            project=project,
            item=slot.item,
            assignment=slot,
            reviewer=user,
            answers=cleaned,
            comment=(comment or "").strip(),
            time_on_task_ms=slot_time_on_task(time_on_task_ms),
            schema_version=project.schema_version,
            submitted_at=now,
            updated_at=now,
        )
        slot_fill(slot, at=now)
        # An extra gold slot is outside the item's N (services/gold.py): it adds 0, but the UPDATE
        # still runs so every submit locks the item row here, before anything else reads the item.
        added = 1 if slot.counts_toward_n else 0
        Item.objects.filter(pk=slot.item_id).update(review_count=F("review_count") + added)
        audit_record(actor=user, action="review.submit", target=review, project=project, data={"item": slot.item_id})
        curation_item_update(item=slot.item, questions=questions)
    return review


def review_edit(*, review: Review, user: User, answers: Any, comment: str | None = None) -> Review:
    """Change a submitted review; the previous answers go to its history."""
    with transaction.atomic():
        current = Review.objects.select_for_update(of=("self",)).select_related("project", "item").get(pk=review.pk)
        project_check_writable(current.project)
        if current.returned_at is not None:
            raise ReviewReturned("A curator sent this review back for re-review; it can no longer be edited.")
        cleaned = answers_validate(
            questions=questions_for_project(project=current.project), item=current.item, answers=answers
        )
        new_comment = current.comment if comment is None else comment.strip()
        if cleaned == current.answers and new_comment == current.comment:
            return current
        now = timezone.now()
        ReviewRevision.objects.create(
            review=current, answers=current.answers, comment=current.comment, edited_by=user, replaced_at=now
        )
        changed_fields = ["answers", "comment", "updated_at"]
        data = {}
        if cleaned != current.answers and current.schema_version != current.project.schema_version:
            # New answers were checked against today's questions, so they answer today's version.
            data["schema_version"] = {"from": current.schema_version, "to": current.project.schema_version}
            current.schema_version = current.project.schema_version
            changed_fields.append("schema_version")
        current.answers = cleaned
        current.comment = new_comment
        current.updated_at = now
        current.save(update_fields=changed_fields)
        audit_record(actor=user, action="review.edit", target=current, project=current.project, data=data)
        curation_item_update(item=current.item)
    return current
