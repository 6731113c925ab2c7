from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from reviewapp.errors import AlreadySubmitted, LeaseLost, StaleLease, ValidationFailed
from reviewapp.models import Assignment, AuditEvent, Item, Review, ReviewRevision
from reviewapp.services.ingest import items_ingest
from reviewapp.services.projects import project_set_reviews_per_item
from reviewapp.services.queue import REVIEW_SLOTS, leases_reclaim_expired, queue_next
from reviewapp.services.reviews import review_edit, review_submit
from reviewapp.services.slots import slot_skip
from tests.factories import item_row, make_items

GOOD = {"correct": True, "helpfulness": 4}


def test_ingest_creates_then_updates_without_duplicates(project):
    first = items_ingest(project=project, rows=[item_row(1), item_row(2)])
    again = items_ingest(project=project, rows=[item_row(1, response="changed"), item_row(3)])
    assert (first.created, first.updated) == (2, 0)
    assert (again.created, again.updated) == (1, 1)
    assert Item.objects.filter(project=project).count() == 3
    assert Item.objects.get(external_id="ext-1").response == "changed"
    assert Assignment.objects.filter(project=project).count() == 3 * project.reviews_per_item


def test_ingest_rejects_whole_batch_and_names_field(project):
    rows = [item_row(1), item_row(2, retrieved_context=[{"content": "ok"}, {"content": 5}]), item_row(3)]
    with pytest.raises(ValidationFailed) as exc:
        items_ingest(project=project, rows=rows)
    assert exc.value.errors == [
        {"index": 1, "field": "retrieved_context[1].content", "message": "Expected `str`, got `int`"}
    ]
    assert Item.objects.count() == 0


def test_ingest_reports_unknown_fields_and_duplicates(project):
    rows = [item_row(1), item_row(1), item_row(2, colour="red")]
    with pytest.raises(ValidationFailed) as exc:
        items_ingest(project=project, rows=rows)
    fields = [(e["index"], e["field"]) for e in exc.value.errors]
    assert fields == [(1, "external_id"), (2, "colour")]


def test_ingest_accepts_chat_requests_and_needs_a_user_turn(project):
    chat = {"messages": [{"role": "system", "content": "be nice"}, {"role": "user", "content": "hi"}]}
    items_ingest(project=project, rows=[item_row(1, request=chat)])
    assert Item.objects.get().request_text == "hi"
    with pytest.raises(ValidationFailed) as exc:
        items_ingest(project=project, rows=[item_row(2, request={"messages": [{"role": "system", "content": "x"}]})])
    assert exc.value.errors[0]["field"] == "request.messages"


def test_queue_leases_then_submit_fills_slot(project, reviewer):
    make_items(project, 2)
    lease = queue_next(project=project, user=reviewer)
    assert lease is not None and lease.reviewer == reviewer
    again = queue_next(project=project, user=reviewer)
    assert again.pk == lease.pk  # the held lease comes back, not a second item
    review = review_submit(assignment_id=lease.pk, user=reviewer, answers=GOOD, comment=" fine ")
    assert review.answers == GOOD and review.comment == "fine"
    assert Item.objects.get(pk=lease.item_id).review_count == 1
    nxt = queue_next(project=project, user=reviewer)
    assert nxt.item_id != lease.item_id
    review_submit(assignment_id=nxt.pk, user=reviewer, answers=GOOD)
    assert queue_next(project=project, user=reviewer) is None
    assert AuditEvent.objects.filter(action="review.submit").count() == 2


def test_two_reviewers_never_share_a_slot_and_n_is_respected(project, reviewer, reviewer2, curator):
    make_items(project, 1)
    project_set_reviews_per_item(project=project, reviews_per_item=2)
    a = queue_next(project=project, user=reviewer)
    b = queue_next(project=project, user=reviewer2)
    assert a.item_id == b.item_id and a.pk != b.pk
    assert queue_next(project=project, user=curator) is None  # both slots held


def test_submit_validates_answers_against_schema(project, reviewer):
    make_items(project, 1)
    lease = queue_next(project=project, user=reviewer)
    with pytest.raises(ValidationFailed) as exc:
        review_submit(assignment_id=lease.pk, user=reviewer, answers={"helpfulness": 9, "nope": 1})
    fields = {e["field"] for e in exc.value.errors}
    assert fields == {"answers.nope", "answers.correct", "answers.helpfulness"}
    assert Review.objects.count() == 0


def test_double_submit_is_a_conflict(project, reviewer):
    make_items(project, 1)
    lease = queue_next(project=project, user=reviewer)
    review_submit(assignment_id=lease.pk, user=reviewer, answers=GOOD)
    with pytest.raises(AlreadySubmitted):
        review_submit(assignment_id=lease.pk, user=reviewer, answers=GOOD)
    assert Review.objects.count() == 1


def test_expired_lease_taken_by_another_is_lost(project, reviewer, reviewer2):
    make_items(project, 1)
    lease = queue_next(project=project, user=reviewer)
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    taken = queue_next(project=project, user=reviewer2)
    assert taken.pk == lease.pk
    with pytest.raises(LeaseLost):
        review_submit(assignment_id=lease.pk, user=reviewer, answers=GOOD)


def test_expired_lease_nobody_took_is_still_honoured(project, reviewer):
    make_items(project, 1)
    lease = queue_next(project=project, user=reviewer)
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert review_submit(assignment_id=lease.pk, user=reviewer, answers=GOOD).pk


def test_a_review_form_from_an_earlier_lease_of_the_same_slot_is_refused(project, reviewer, reviewer2):
    """A page names its lease's token: once the slot was leased again, that page's answers are refused."""
    make_items(project, 1)
    old = queue_next(project=project, user=reviewer)
    Assignment.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    taken = queue_next(project=project, user=reviewer2)
    slot_skip(REVIEW_SLOTS, slot=taken, user=reviewer2)
    new = queue_next(project=project, user=reviewer)  # the same slot, leased again
    assert new.pk == old.pk and len(new.lease_token) >= 16 and new.lease_token != old.lease_token
    for stale in (old.lease_token, ""):
        with pytest.raises(StaleLease, match="earlier lease"):
            review_submit(assignment_id=old.pk, user=reviewer, answers=GOOD, lease_token=stale)
    assert not Review.objects.exists()
    assert review_submit(assignment_id=new.pk, user=reviewer, answers=GOOD, lease_token=new.lease_token).pk


def test_a_held_lease_keeps_its_token_and_a_submit_without_one_is_not_checked(project, reviewer):
    make_items(project, 2)
    lease = queue_next(project=project, user=reviewer)
    assert queue_next(project=project, user=reviewer).lease_token == lease.lease_token  # reload, second tab
    Assignment.objects.filter(pk=lease.pk).update(lease_token="")  # leased before leases had tokens
    again = queue_next(project=project, user=reviewer)
    assert (
        again.pk == lease.pk
        and again.lease_token
        and again.lease_token == Assignment.objects.get(pk=lease.pk).lease_token
    )
    assert review_submit(assignment_id=lease.pk, user=reviewer, answers=GOOD).pk  # REST clients without a token
    skipped = queue_next(project=project, user=reviewer)
    slot_skip(REVIEW_SLOTS, slot=skipped, user=reviewer)
    assert Assignment.objects.get(pk=skipped.pk).lease_token == ""


def test_sweeper_frees_expired_leases(project, reviewer):
    make_items(project, 1)
    lease = queue_next(project=project, user=reviewer)
    assert leases_reclaim_expired() == 0
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert leases_reclaim_expired() == 1
    assert Assignment.objects.get(pk=lease.pk).reviewer is None


def test_skip_releases_and_hides_item(project, reviewer, reviewer2):
    make_items(project, 1)
    lease = queue_next(project=project, user=reviewer)
    slot_skip(REVIEW_SLOTS, slot=lease, user=reviewer, reason="not my area")
    assert queue_next(project=project, user=reviewer) is None
    assert queue_next(project=project, user=reviewer2).pk == lease.pk


def test_edit_keeps_history(project, reviewer):
    make_items(project, 1)
    lease = queue_next(project=project, user=reviewer)
    review = review_submit(assignment_id=lease.pk, user=reviewer, answers=GOOD)
    review_edit(review=review, user=reviewer, answers={"correct": False, "helpfulness": 2}, comment="on reflection")
    review.refresh_from_db()
    assert review.answers == {"correct": False, "helpfulness": 2}
    revision = ReviewRevision.objects.get(review=review)
    assert revision.answers == GOOD


def test_reviews_per_item_change_adds_and_removes_free_slots(project):
    make_items(project, 3)
    project_set_reviews_per_item(project=project, reviews_per_item=3)
    assert Assignment.objects.filter(project=project).count() == 9
    project_set_reviews_per_item(project=project, reviews_per_item=1)
    assert Assignment.objects.filter(project=project).count() == 3
