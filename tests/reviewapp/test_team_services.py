"""Team review at scale, at the service layer: queue modes, assignment by filter, priorities,
skip reasons, flags, send-back, gold items and the audit trail."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from reviewapp.errors import ReviewReturned, ValidationFailed
from reviewapp.item_stats import wilson
from reviewapp.models import Assignment, AuditEvent, Flag, GoldAnswer, Item, Review, Skip
from reviewapp.models.reviews import EXTRA_SLOT_BASE
from reviewapp.selectors.gold import gold_accuracy_for_reviewers
from reviewapp.selectors.items import ITEM_FILTERS, ItemQuery, item_filter_register, items_matching
from reviewapp.selectors.queue import queue_progress
from reviewapp.services.assignments import (
    assignments_bulk_assign,
    item_send_back,
    project_queue_settings_set,
    reviewer_group_create,
    reviewer_group_delete,
)
from reviewapp.services.flags import flag_create
from reviewapp.services.gold import gold_answer_delete, gold_answer_set
from reviewapp.services.ingest import items_ingest
from reviewapp.services.projects import project_set_reviews_per_item
from reviewapp.services.queue import REVIEW_SLOTS, leases_reclaim_expired, queue_next
from reviewapp.services.reviews import review_edit, review_submit
from reviewapp.services.slots import slot_skip
from tests.factories import item_row, make_items

GOOD = {"correct": True, "helpfulness": 4}
EVERYTHING = ItemQuery()


def items_of(project) -> list[Item]:
    return list(Item.objects.filter(project=project).order_by("id"))


def lease_item(project, user, **kwargs) -> int | None:
    lease = queue_next(project=project, user=user, **kwargs)
    return None if lease is None else lease.item_id


def review(project, user, answers=None, **kwargs) -> Review:
    lease = queue_next(project=project, user=user, **kwargs)
    assert lease is not None, f"{user} got nothing to review"
    return review_submit(assignment_id=lease.pk, user=user, answers=answers or GOOD)


def set_n(project, n: int) -> None:
    project_set_reviews_per_item(project=project, reviews_per_item=n)
    project.refresh_from_db()


# --- priority ------------------------------------------------------------------------------------


def test_the_queue_serves_higher_priority_first_then_oldest(project, reviewer):
    items_ingest(project=project, rows=[item_row(0), item_row(1, priority=5), item_row(2), item_row(3, priority=1)])
    ids = [i.pk for i in items_of(project)]
    order = []
    for _ in range(4):
        order.append(review(project, reviewer).item_id)
    assert order == [ids[1], ids[3], ids[0], ids[2]]
    assert lease_item(project, reviewer) is None


def test_reingesting_an_item_with_a_new_priority_moves_its_open_slots(project, reviewer):
    make_items(project, 3)
    last = items_of(project)[-1]
    items_ingest(project=project, rows=[item_row(2, priority=9)])
    assert set(Assignment.objects.filter(item=last).values_list("priority", flat=True)) == {9}
    assert lease_item(project, reviewer) == last.pk


def test_priority_by_filter_puts_items_at_the_front_of_the_queue(project, reviewer, curator):
    make_items(project, 2)
    make_items(project, 2, start=2, model_version="2")
    result = assignments_bulk_assign(
        project=project, query=ItemQuery(model_version="2"), actor=curator, priority=7, assign=False
    )
    assert result.items == 2 and result.priority_set == 2 and result.slots_to_reviewers == 0
    assert list(Item.objects.filter(project=project, model_version="2").values_list("priority", flat=True)) == [7, 7]
    assert Item.objects.get(pk=lease_item(project, reviewer)).model_version == "2"
    # Assignments were left alone: the slots are still open to anyone.
    assert not Assignment.objects.filter(project=project, assigned_to__isnull=False).exists()


# --- queue modes and assignment ----------------------------------------------------------------


def test_assigned_mode_offers_reviewers_only_what_is_assigned_to_them(project, reviewer, reviewer2, curator):
    make_items(project, 3)
    project_queue_settings_set(project=project, actor=curator, queue_mode="assigned")
    first = items_of(project)[0]
    assert lease_item(project, reviewer) is None  # nothing assigned yet: nothing to review
    result = assignments_bulk_assign(
        project=project, query=ItemQuery(ids=(first.pk,)), actor=curator, reviewers=[reviewer2]
    )
    assert result.slots_to_reviewers == 1
    assert lease_item(project, reviewer) is None
    assert lease_item(project, reviewer2) == first.pk
    assert queue_progress(project=project, user=reviewer).left == 0


def test_shared_mode_never_hands_out_slots_assigned_to_someone_else(project, reviewer, reviewer2, curator):
    make_items(project, 3)
    first, second, third = items_of(project)
    assignments_bulk_assign(
        project=project, query=ItemQuery(ids=(first.pk, second.pk)), actor=curator, reviewers=[reviewer2]
    )
    assert review(project, reviewer).item_id == third.pk
    assert lease_item(project, reviewer) is None
    assert {review(project, reviewer2).item_id, review(project, reviewer2).item_id} == {first.pk, second.pk}


def test_a_group_assignment_reaches_its_members_only(project, reviewer, reviewer2, curator):
    make_items(project, 2)
    project_queue_settings_set(project=project, actor=curator, queue_mode="assigned")
    experts = reviewer_group_create(project=project, name="experts", members=[reviewer2], actor=curator)
    result = assignments_bulk_assign(project=project, query=EVERYTHING, actor=curator, group=experts)
    assert result.slots_to_group == 2
    assert lease_item(project, reviewer) is None
    assert lease_item(project, reviewer2) is not None
    # Deleting the group leaves its slots assigned to nobody (waiting, in assigned mode).
    reviewer_group_delete(group=experts, actor=curator)
    assert Assignment.objects.filter(project=project, assigned_group__isnull=True).count() == 2


def test_priority_decides_across_personal_group_and_unassigned_slots(project, reviewer, reviewer2, curator):
    make_items(project, 4)
    personal, grouped, free, others = items_of(project)
    team = reviewer_group_create(project=project, name="team", members=[reviewer], actor=curator)

    def assign(item, **kwargs):
        assignments_bulk_assign(project=project, query=ItemQuery(ids=(item.pk,)), actor=curator, **kwargs)

    assign(personal, reviewers=[reviewer], priority=1)
    assign(grouped, group=team, priority=5)
    assign(free, priority=3, assign=False)
    assign(others, reviewers=[reviewer2], priority=9)
    order = [review(project, reviewer).item_id for _ in range(3)]
    assert order == [grouped.pk, free.pk, personal.pk]
    assert lease_item(project, reviewer) is None  # rob's item is never offered to rita


def test_bulk_assignment_rotates_reviewers_and_never_gives_one_two_slots_of_an_item(
    project, reviewer, reviewer2, curator
):
    set_n(project, 3)
    make_items(project, 4)
    team = reviewer_group_create(project=project, name="team", members=[reviewer, reviewer2], actor=curator)
    result = assignments_bulk_assign(
        project=project, query=EVERYTHING, actor=curator, reviewers=[reviewer, reviewer2], group=team
    )
    assert (result.items, result.slots_to_reviewers, result.slots_to_group, result.slots_unassigned) == (4, 8, 4, 0)
    for item in items_of(project):
        slots = Assignment.objects.filter(item=item)
        assert sorted(s.assigned_to_id for s in slots if s.assigned_to_id) == sorted([reviewer.pk, reviewer2.pk])
        assert [s.assigned_group_id for s in slots if s.assigned_group_id] == [team.pk]


def test_bulk_assignment_passes_over_reviewers_who_already_saw_the_item(project, reviewer, reviewer2, curator):
    set_n(project, 2)
    make_items(project, 1)
    done = review(project, reviewer)
    result = assignments_bulk_assign(project=project, query=EVERYTHING, actor=curator, reviewers=[reviewer, reviewer2])
    assert result.slots_to_reviewers == 1 and result.slots_unassigned == 0
    open_slot = Assignment.objects.get(item_id=done.item_id, submitted_at__isnull=True)
    assert open_slot.assigned_to_id == reviewer2.pk


def test_unassign_returns_slots_to_the_shared_pool(project, reviewer, reviewer2, curator):
    make_items(project, 2)
    assignments_bulk_assign(project=project, query=EVERYTHING, actor=curator, reviewers=[reviewer2])
    assert lease_item(project, reviewer) is None
    result = assignments_bulk_assign(project=project, query=EVERYTHING, actor=curator)
    assert result.slots_unassigned == 2
    assert lease_item(project, reviewer) is not None


def test_filters_by_source_metadata_dates_ids_and_registered_extras(project, curator):
    items_ingest(
        project=project,
        rows=[
            item_row(0, source="chat", metadata={"channel": "web", "lang": "en"}),
            item_row(1, source="chat", metadata={"channel": "app", "lang": "en"}),
            item_row(2, source="email", metadata={"channel": "web", "lang": "de"}),
        ],
    )
    a, b, c = items_of(project)
    Item.objects.filter(pk=a.pk).update(created_at=timezone.now() - timedelta(days=10))

    def ids(**kwargs):
        return sorted(items_matching(project=project, query=ItemQuery(**kwargs)).values_list("id", flat=True))

    assert ids(source="chat") == [a.pk, b.pk]
    assert ids(metadata={"channel": "web"}) == [a.pk, c.pk]
    assert ids(metadata={"channel": "web", "lang": "en"}) == [a.pk]
    assert ids(created_from=timezone.now() - timedelta(days=1)) == [b.pk, c.pk]
    assert ids(created_to=timezone.now() - timedelta(days=1)) == [a.pk]
    assert ids(ids=(b.pk, c.pk), source="chat") == [b.pk]
    with pytest.raises(ValidationFailed) as bad_key:
        ids(metadata={"a__b": 1})
    assert bad_key.value.errors[0]["field"] == "filter.metadata.a__b"
    with pytest.raises(ValidationFailed) as unknown:
        ids(extra={"judge_score_below": 0.5})
    assert unknown.value.errors[0]["field"] == "filter.extra.judge_score_below"
    # The extension point: another app registers a filter by name.
    item_filter_register(name="external_id_prefix", apply=lambda qs, value: qs.filter(external_id__startswith=value))
    try:
        assert ids(extra={"external_id_prefix": "ext-2"}) == [c.pk]
    finally:
        ITEM_FILTERS.pop("external_id_prefix")


# --- skip and flag -------------------------------------------------------------------------------


def test_skip_keeps_its_reason_and_gives_back_a_personal_assignment(project, reviewer, reviewer2, curator):
    make_items(project, 1)
    assignments_bulk_assign(project=project, query=EVERYTHING, actor=curator, reviewers=[reviewer])
    lease = queue_next(project=project, user=reviewer)
    slot_skip(REVIEW_SLOTS, slot=lease, user=reviewer, reason="  Outside my expertise ")
    skip = Skip.objects.get(reviewer=reviewer)
    assert skip.reason == "Outside my expertise"
    slot = Assignment.objects.get(pk=lease.pk)
    assert slot.reviewer_id is None and slot.assigned_to_id is None
    assert lease_item(project, reviewer2) == lease.item_id
    event = AuditEvent.objects.get(action="item.skip")
    assert event.actor == reviewer and event.data == {"reason": "Outside my expertise"}


def test_a_flag_is_recorded_once_per_kind_and_does_not_block_the_review(project, reviewer):
    make_items(project, 1)
    lease = queue_next(project=project, user=reviewer)
    flag, created = flag_create(item=lease.item, user=reviewer, kind="unsafe", note="mentions self-harm")
    again, created_again = flag_create(item=lease.item, user=reviewer, kind="unsafe", note="see request")
    assert created and not created_again and again.pk == flag.pk
    assert Flag.objects.get().note == "see request"
    flag_create(item=lease.item, user=reviewer, kind="needs_expert")
    assert Flag.objects.count() == 2
    review_submit(assignment_id=lease.pk, user=reviewer, answers=GOOD)  # still reviewable
    assert AuditEvent.objects.filter(action="item.flag", actor=reviewer).count() == 3
    with pytest.raises(ValidationFailed) as bad:
        flag_create(item=lease.item, user=reviewer, kind="spicy", note="x" * 2001)
    assert [e["field"] for e in bad.value.errors] == ["kind", "note"]
    assert bad.value.errors[0]["message"].startswith("Use one of unsafe, ")
    assert bad.value.errors[1]["message"] == "At most 2000 characters."
    with pytest.raises(ValidationFailed) as bad:
        flag_create(item=lease.item, user=reviewer, kind="other", note=" ")
    assert bad.value.errors == [
        {"index": None, "field": "note", "message": "Say what is wrong when the kind is 'other'."}
    ]


# --- send back -----------------------------------------------------------------------------------


def test_send_back_keeps_the_review_and_reopens_its_slot_for_someone_else(project, reviewer, reviewer2, curator):
    make_items(project, 1)
    done = review(project, reviewer, {"correct": False, "helpfulness": 1})
    result = item_send_back(item=done.item, actor=curator, reason="answered the wrong question")
    assert result.returned == [done.pk] and result.reopened == 1
    done.refresh_from_db()
    assert done.returned_at is not None and done.returned_by == curator and done.assignment_id is None
    assert done.return_reason == "answered the wrong question" and done.answers["correct"] is False
    assert Item.objects.get(pk=done.item_id).review_count == 0
    assert lease_item(project, reviewer) is None  # the original reviewer is not asked again
    redo = review(project, reviewer2)
    assert redo.item_id == done.item_id
    assert Item.objects.get(pk=done.item_id).review_count == 1
    assert Review.objects.filter(item_id=done.item_id).count() == 2  # history kept
    with pytest.raises(ReviewReturned):
        review_edit(review=done, user=reviewer, answers=GOOD)
    event = AuditEvent.objects.get(action="item.send_back")
    assert event.actor == curator and event.data["reviews"] == [done.pk]


def test_send_back_of_chosen_reviews_only(project, reviewer, reviewer2, curator):
    set_n(project, 2)
    make_items(project, 1)
    first, second = review(project, reviewer), review(project, reviewer2)
    with pytest.raises(ValidationFailed):
        item_send_back(item=first.item, actor=curator, review_ids=[first.pk, 99999])
    assert not Review.objects.filter(returned_at__isnull=False).exists()  # nothing changed
    item_send_back(item=first.item, actor=curator, review_ids=[second.pk])
    assert list(Review.objects.filter(returned_at__isnull=False).values_list("pk", flat=True)) == [second.pk]
    assert Item.objects.get(pk=first.item_id).review_count == 1
    with pytest.raises(ValidationFailed):
        item_send_back(item=first.item, actor=curator, review_ids=[second.pk])  # already returned


# --- gold ----------------------------------------------------------------------------------------


def test_gold_answers_are_validated_against_the_schema(project, curator):
    make_items(project, 1)
    item = items_of(project)[0]
    with pytest.raises(ValidationFailed) as bad:
        gold_answer_set(project=project, item=item, answers={"correct": "maybe", "nope": 1}, actor=curator)
    assert {e["field"] for e in bad.value.errors} == {"answers.correct", "answers.nope"}
    with pytest.raises(ValidationFailed):
        gold_answer_set(project=project, item=item, answers={}, actor=curator)
    gold = gold_answer_set(project=project, item=item, answers={"correct": "pass"}, actor=curator, note="per docs")
    assert gold.answers == {"correct": True} and gold.created_by == curator  # partial answers are fine
    assert AuditEvent.objects.filter(action="gold.set", actor=curator).count() == 1


def test_gold_items_reach_every_reviewer_once_on_extra_slots_outside_n(project, reviewer, reviewer2, curator):
    make_items(project, 3)
    gold_item = items_of(project)[0]
    gold_answer_set(project=project, item=gold_item, answers={"correct": True}, actor=curator)
    project_queue_settings_set(project=project, actor=curator, gold_rate=1.0)
    firsts = [review(project, user) for user in (reviewer, reviewer2)]
    assert [r.item_id for r in firsts] == [gold_item.pk, gold_item.pk]
    assert all(r.assignment.slot >= EXTRA_SLOT_BASE and r.assignment.is_gold for r in firsts)
    # Each meets it once; then the ordinary work (the other two items, N=1) is shared between them.
    seen = [review(project, reviewer).item_id, review(project, reviewer2).item_id]
    assert gold_item.pk not in seen and len(set(seen)) == 2
    assert lease_item(project, reviewer) is None and lease_item(project, reviewer2) is None
    gold_item.refresh_from_db()
    assert gold_item.review_count == 0  # extra reviews are outside N...
    project_queue_settings_set(project=project, actor=curator, gold_rate=0.0)
    assert review(project, curator).item_id == gold_item.pk  # ...and its own review slot is still open
    assert Item.objects.get(pk=gold_item.pk).review_count == 1
    assert Review.objects.filter(item=gold_item).count() == 3


def test_gold_is_only_mixed_into_real_work(project, reviewer, curator):
    make_items(project, 2)
    gold_item = items_of(project)[0]
    gold_answer_set(project=project, item=gold_item, answers={"correct": True}, actor=curator)
    project_queue_settings_set(project=project, actor=curator, gold_rate=1.0)
    assert review(project, reviewer).item_id == gold_item.pk  # an extra gold slot
    review(project, reviewer)  # the only other item
    # No ordinary work left for this reviewer: done, even at a gold rate of 1.
    assert lease_item(project, reviewer) is None


def test_a_gold_item_is_an_ordinary_item_in_the_pool(project, reviewer, reviewer2, curator):
    set_n(project, 2)
    make_items(project, 1)
    gold_item = items_of(project)[0]
    gold_answer_set(project=project, item=gold_item, answers={"correct": True}, actor=curator)
    # Gold rate 0: no extra slots; its two review slots are filled through the pool like any item's.
    assert [review(project, u).item_id for u in (reviewer, reviewer2)] == [gold_item.pk, gold_item.pk]
    assert Item.objects.get(pk=gold_item.pk).review_count == 2
    assert not Assignment.objects.filter(is_gold=True).exists()
    assert {r.username for r in gold_accuracy_for_reviewers(project=project)} == {"rita", "rob"}


def test_the_gold_rate_decides_how_many_extra_gold_leases(project, reviewer, curator):
    make_items(project, 40)
    golds = items_of(project)[-10:]  # the newest: the pool reaches them last
    for item in golds:
        gold_answer_set(project=project, item=item, answers={"correct": True}, actor=curator)
    gold_ids = {g.pk for g in golds}
    project_queue_settings_set(project=project, actor=curator, gold_rate=0.25)
    served = [review(project, reviewer, rng=random.Random(7 + n)).item_id for n in range(20)]
    # One die per new lease: an extra gold lease exactly when it falls under the rate.
    expected = sum(random.Random(7 + n).random() < 0.25 for n in range(20))
    assert 0 < expected < 10
    assert len(gold_ids & set(served)) == expected
    assert Assignment.objects.filter(is_gold=True, reviewer=reviewer).count() == expected
    assert len(set(served)) == 20  # never an item twice


def test_removing_gold_drops_free_extra_slots_and_keeps_reviews(project, reviewer, reviewer2, curator):
    make_items(project, 2)
    gold_item = items_of(project)[0]
    gold = gold_answer_set(project=project, item=gold_item, answers={"correct": True}, actor=curator)
    project_queue_settings_set(project=project, actor=curator, gold_rate=1.0)
    done = review(project, reviewer)
    assert done.assignment.is_gold
    held = queue_next(project=project, user=reviewer2)
    assert held.is_gold
    free = Assignment.objects.create(project=project, item=gold_item, slot=held.slot + 1, is_gold=True)
    gold_answer_delete(gold=gold, actor=curator)
    assert not GoldAnswer.objects.exists()
    assert not Assignment.objects.filter(pk=free.pk).exists()  # nobody was on it
    assert Assignment.objects.filter(pk=held.pk, reviewer=reviewer2).exists()  # being worked on: stays
    assert Review.objects.filter(pk=done.pk).exists()
    assert AuditEvent.objects.filter(action="gold.delete", actor=curator).count() == 1


def test_more_reviews_per_item_adds_review_slots_only(project, reviewer, curator):
    make_items(project, 2)
    gold_item = items_of(project)[0]
    gold_answer_set(project=project, item=gold_item, answers={"correct": True}, actor=curator)
    project_queue_settings_set(project=project, actor=curator, gold_rate=1.0)
    review(project, reviewer)  # creates an extra gold slot
    set_n(project, 3)
    for item in items_of(project):
        regular = Assignment.objects.filter(item=item, slot__lt=EXTRA_SLOT_BASE)
        assert sorted(regular.values_list("slot", flat=True)) == [0, 1, 2]
        assert not regular.filter(is_gold=True).exists()
    assert Assignment.objects.filter(item=gold_item, slot__gte=EXTRA_SLOT_BASE).count() == 1


def test_gold_accuracy_per_reviewer_with_a_wilson(project, reviewer, reviewer2, curator):
    make_items(project, 4)
    golds = items_of(project)[:2]
    for item in golds:
        gold_answer_set(project=project, item=item, answers={"correct": True, "helpfulness": 4}, actor=curator)
    project_queue_settings_set(project=project, actor=curator, gold_rate=1.0)
    for _ in range(2):
        review(project, reviewer, {"correct": True, "helpfulness": 4})
    review(project, reviewer2, {"correct": True, "helpfulness": 2})
    review(project, reviewer2, {"correct": False, "helpfulness": 4})
    rows = {row.username: row for row in gold_accuracy_for_reviewers(project=project)}
    rita, rob = rows["rita"], rows["rob"]
    assert (rita.n, rita.correct, rita.accuracy) == (2, 2, 1.0)
    assert rita.per_question == {"correct": (2, 2), "helpfulness": (2, 2)}
    assert (rob.n, rob.correct, rob.accuracy) == (2, 0, 0.0)
    assert rob.per_question == {"correct": (1, 2), "helpfulness": (1, 2)}
    assert rita.ci_low == pytest.approx(0.3424, abs=1e-3) and rita.ci_high == 1.0
    assert rob.ci_low == pytest.approx(0.0, abs=1e-9) and rob.ci_high == pytest.approx(0.6576, abs=1e-3)
    assert [r.username for r in gold_accuracy_for_reviewers(project=project)] == ["rita", "rob"]


def test_wilson_interval_matches_the_textbook():
    # Newcombe (1998), Statistics in Medicine 17:857, table I: 81/263 -> 0.2553 to 0.3662.
    low, high = wilson(81, 263)
    assert low == pytest.approx(0.2553, abs=1e-4) and high == pytest.approx(0.3662, abs=1e-4)
    assert wilson(0, 0) is None


# --- leases and the audit trail -----------------------------------------------------------------


def test_the_sweeper_frees_expired_leases_and_keeps_assignments(project, reviewer, reviewer2, curator):
    make_items(project, 2)
    assignments_bulk_assign(project=project, query=EVERYTHING, actor=curator, reviewers=[reviewer])
    lease = queue_next(project=project, user=reviewer)
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert leases_reclaim_expired() == 1
    slot = Assignment.objects.get(pk=lease.pk)
    assert slot.reviewer_id is None and slot.assigned_to_id == reviewer.pk
    assert lease_item(project, reviewer2) is None  # still assigned to rita
    assert lease_item(project, reviewer) == lease.item_id


def test_every_state_change_is_in_the_audit_log(project, reviewer, reviewer2, curator):
    make_items(project, 3)
    group = reviewer_group_create(project=project, name="g", members=[reviewer], actor=curator)
    project_queue_settings_set(project=project, actor=curator, lease_seconds=120)
    assignments_bulk_assign(project=project, query=EVERYTHING, actor=curator, group=group)
    lease = queue_next(project=project, user=reviewer)
    flag_create(item=lease.item, user=reviewer, kind="needs_expert")
    done = review_submit(assignment_id=lease.pk, user=reviewer, answers=GOOD)
    review_edit(review=done, user=reviewer, answers={"correct": False, "helpfulness": 2})
    slot_skip(REVIEW_SLOTS, slot=queue_next(project=project, user=reviewer), user=reviewer, reason="unclear")
    item_send_back(item=done.item, actor=curator)
    gold = gold_answer_set(project=project, item=items_of(project)[2], answers={"correct": True}, actor=curator)
    gold_answer_delete(gold=gold, actor=curator)
    events = AuditEvent.objects.filter(project=project)
    expected = {
        "group.create": curator,
        "project.queue_settings": curator,
        "assignments.assign": curator,
        "item.flag": reviewer,
        "review.submit": reviewer,
        "review.edit": reviewer,
        "item.skip": reviewer,
        "item.send_back": curator,
        "gold.set": curator,
        "gold.delete": curator,
    }
    for action, actor in expected.items():
        event = events.filter(action=action).first()
        assert event is not None, f"no {action} event"
        assert event.actor == actor and event.created_at is not None
    assert events.get(action="project.queue_settings").data == {
        "from": {"lease_seconds": 600},
        "to": {"lease_seconds": 120},
    }
