"""Pairwise services: pairing, leasing with random sides, preferences with the true versions, results."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.utils import timezone

from reviewapp.errors import AlreadySubmitted, ItemRemoved, LeaseLost, ValidationFailed
from reviewapp.item_stats import wilson
from reviewapp.models import AuditEvent, Item, PairwiseSkip, PairwiseSlot, PairwiseTask, Preference
from reviewapp.services.ingest import items_ingest
from reviewapp.services.pairwise import (
    PAIR_SLOTS,
    pairwise_next,
    pairwise_submit,
    pairwise_tasks_create,
    request_key,
)
from reviewapp.services.pairwise_results import pairwise_results
from reviewapp.services.projects import membership_set
from reviewapp.services.slots import slot_renew, slot_skip
from reviewapp.services.tokens import api_token_create
from tests.factories import ProjectFactory, item_row, member

CHAMPION = "champion-7"
CANDIDATE = "candidate-8"


def make_pairs(
    project: Any,
    count: int,
    *,
    a: str = CHAMPION,
    b: str = CANDIDATE,
    start: int = 0,
    response_a: str = "alpha {n}",
    response_b: str = "beta {n}",
    **extra: Any,
) -> None:
    """``count`` requests, each answered once by version ``a`` and once by ``b`` (with other whitespace)."""
    rows = []
    for n in range(start, start + count):
        rows.append(item_row(n, external_id=f"{a}-{n}", model_version=a, response=response_a.format(n=n), **extra))
        rows.append(
            item_row(
                n,
                external_id=f"{b}-{n}",
                model_version=b,
                request=f"  How do I reset\n my   password? ({n}) ",
                response=response_b.format(n=n),
                **extra,
            )
        )
    items_ingest(project=project, rows=rows)


def pair(project: Any, *, ppt: int = 1, **kw: Any) -> Any:
    return pairwise_tasks_create(
        project=project, version_a=CHAMPION, version_b=CANDIDATE, preferences_per_task=ppt, **kw
    )


def sides(slot: PairwiseSlot) -> tuple[Item, Item]:
    """The sides of a lease, read back from the database (not from the service's helpers)."""
    slot = PairwiseSlot.objects.get(pk=slot.pk)
    task = slot.task
    right_id = task.item_b_id if slot.left_item_id == task.item_a_id else task.item_a_id
    return Item.objects.get(pk=slot.left_item_id), Item.objects.get(pk=right_id)


# --- pairing -----------------------------------------------------------------------------------


def test_pairing_matches_requests_with_whitespace_normalised(project, engineer):
    make_pairs(project, 3)
    items_ingest(project=project, rows=[item_row(99, external_id="lonely", model_version=CHAMPION, request="Other?")])
    result = pair(project, actor=engineer)
    assert (result.created, result.existing, result.unmatched_a, result.unmatched_b) == (3, 0, 1, 0)
    tasks = list(PairwiseTask.objects.filter(project=project).select_related("item_a", "item_b"))
    assert [(t.item_a.external_id, t.item_b.external_id) for t in tasks] == [
        (f"{CHAMPION}-{n}", f"{CANDIDATE}-{n}") for n in range(3)
    ]
    assert all(
        (t.version_a, t.version_b, t.status, t.created_by) == (CHAMPION, CANDIDATE, "open", engineer) for t in tasks
    )
    assert PairwiseSlot.objects.filter(project=project, reviewer__isnull=True).count() == 3


def test_pairing_is_idempotent_and_only_adds_new_pairs(project):
    make_pairs(project, 3)
    assert pair(project, ppt=2).created == 3
    again = pair(project, ppt=2)
    assert (again.created, again.existing, again.unmatched_a, again.unmatched_b) == (0, 3, 0, 0)
    swapped = pairwise_tasks_create(project=project, version_a=CANDIDATE, version_b=CHAMPION)
    assert (swapped.created, swapped.existing) == (0, 3)
    assert PairwiseTask.objects.count() == 3 and PairwiseSlot.objects.count() == 6

    make_pairs(project, 2, start=3)  # new outputs arrive
    assert pair(project, ppt=2).created == 2
    assert PairwiseTask.objects.count() == 5 and PairwiseSlot.objects.count() == 10
    assert AuditEvent.objects.filter(action="pairwise.tasks_create").count() == 2  # runs that created nothing: none


def test_the_database_refuses_the_same_two_items_in_either_order(project):
    make_pairs(project, 1)
    pair(project)
    task = PairwiseTask.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        PairwiseTask.objects.create(
            project=project, item_a=task.item_b, item_b=task.item_a, version_a=CANDIDATE, version_b=CHAMPION
        )


def test_chat_requests_compare_their_message_list(project):
    def chat(*turns: tuple[str, str]) -> dict[str, Any]:
        return {"messages": [{"role": r, "content": c} for r, c in turns]}

    rows = [
        item_row(
            1, external_id="a1", model_version=CHAMPION, request=chat(("system", "Be brief."), ("user", "Reset?"))
        ),
        item_row(
            1, external_id="b1", model_version=CANDIDATE, request=chat(("system", "Be  brief. "), ("user", "Reset?"))
        ),
        item_row(2, external_id="a2", model_version=CHAMPION, request=chat(("system", "Be brief."), ("user", "Bill?"))),
        item_row(2, external_id="b2", model_version=CANDIDATE, request=chat(("system", "Be long."), ("user", "Bill?"))),
        item_row(3, external_id="a3", model_version=CHAMPION, request=chat(("user", "Plan  prices?"))),
        item_row(3, external_id="b3", model_version=CANDIDATE, request="Plan prices?"),
    ]
    items_ingest(project=project, rows=rows)
    result = pair(project)
    assert (result.created, result.unmatched_a, result.unmatched_b) == (2, 1, 1)
    pairs = set(PairwiseTask.objects.values_list("item_a__external_id", "item_b__external_id"))
    assert pairs == {("a1", "b1"), ("a3", "b3")}
    assert request_key("a  b") == request_key(" a\nb ") != request_key("a b c")


def test_repeated_requests_pair_one_to_one_in_id_order(project):
    rows = [
        item_row(1, external_id="a1", model_version=CHAMPION, request="Same?"),
        item_row(2, external_id="a2", model_version=CHAMPION, request="Same?"),
        item_row(3, external_id="b1", model_version=CANDIDATE, request="Same?"),
    ]
    items_ingest(project=project, rows=rows)
    result = pair(project)
    assert (result.created, result.unmatched_a, result.unmatched_b) == (1, 1, 0)
    assert PairwiseTask.objects.values_list("item_a__external_id", "item_b__external_id").get() == ("a1", "b1")
    # A second candidate answer arrives: it pairs with the champion answer still unpaired.
    items_ingest(project=project, rows=[item_row(4, external_id="b2", model_version=CANDIDATE, request="Same?")])
    assert pair(project).created == 1
    assert set(PairwiseTask.objects.values_list("item_a__external_id", "item_b__external_id")) == {
        ("a1", "b1"),
        ("a2", "b2"),
    }


def test_pairing_filters_narrow_the_items(project):
    make_pairs(project, 2, source="chat")
    make_pairs(project, 2, start=2, source="email")
    assert pair(project, source="email").created == 2
    assert set(PairwiseTask.objects.values_list("item_a__source", flat=True)) == {"email"}
    assert pair(project, created_after=timezone.now() + timedelta(days=1)).created == 0
    assert pair(project, created_before=timezone.now() + timedelta(days=1)).created == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"version_a": "7", "version_b": "7"}, "version_b"),
        ({"version_a": " ", "version_b": "7"}, "version_a"),
        ({"version_a": "7", "version_b": "x" * 101}, "version_b"),
        ({"version_a": "7", "version_b": "8", "preferences_per_task": 0}, "preferences_per_task"),
    ],
)
def test_pairing_rejects_bad_input_by_field_and_writes_nothing(project, kwargs, field):
    make_pairs(project, 1, a="7", b="8")
    with pytest.raises(ValidationFailed) as exc:
        pairwise_tasks_create(project=project, **kwargs)
    assert [e["field"] for e in exc.value.errors] == [field]
    assert not PairwiseTask.objects.exists()


def test_pairing_reports_every_bad_field_at_once_with_its_message(project):
    with pytest.raises(ValidationFailed) as exc:
        pairwise_tasks_create(project=project, version_a="x" * 101, version_b=" ", preferences_per_task=0)
    assert sorted((e["field"], e["message"]) for e in exc.value.errors) == [
        ("preferences_per_task", "Between 1 and 20."),
        ("version_a", "At most 100 characters."),
        ("version_b", "Name a model version."),
    ]


def test_pairing_stays_within_the_project(project):
    other = ProjectFactory(slug="other")
    make_pairs(other, 2)
    make_pairs(project, 1)
    assert pair(project).created == 1
    assert set(PairwiseTask.objects.values_list("item_a__project", flat=True)) == {project.pk}


# --- leasing -----------------------------------------------------------------------------------


def test_a_lease_stores_its_sides_and_a_reload_shows_the_same(project, reviewer):
    make_pairs(project, 2)
    pair(project)
    lease = pairwise_next(project=project, user=reviewer)
    stored = PairwiseSlot.objects.get(pk=lease.pk)
    assert stored.reviewer == reviewer and stored.expires_at > timezone.now()
    assert stored.left_item_id in (stored.task.item_a_id, stored.task.item_b_id)
    assert len(stored.lease_token) >= 16
    again = pairwise_next(project=project, user=reviewer)
    assert (again.pk, again.left_item_id, again.lease_token) == (lease.pk, stored.left_item_id, stored.lease_token)
    # Even after the lease ran out, if nobody took the pair.
    PairwiseSlot.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    late = pairwise_next(project=project, user=reviewer)
    assert (late.pk, late.left_item_id, late.lease_token) == (lease.pk, stored.left_item_id, stored.lease_token)


def test_sides_are_drawn_at_random_and_each_preference_records_them_truthfully(project, reviewer):
    make_pairs(project, 40)
    pair(project)
    left_versions = []
    while (lease := pairwise_next(project=project, user=reviewer)) is not None:
        left, right = sides(lease)
        left_versions.append(left.model_version)
        preference = pairwise_submit(slot_id=lease.pk, user=reviewer, lease_token=lease.lease_token, choice="a")
        preference.refresh_from_db()
        assert (preference.left_item, preference.right_item) == (left, right)
        assert (preference.left_model_version, preference.right_model_version) == (
            left.model_version,
            right.model_version,
        )
        assert (preference.winner_item, preference.winner_model_version, preference.loser_model_version) == (
            left,
            left.model_version,
            right.model_version,
        )
    counts = Counter(left_versions)
    assert sum(counts.values()) == 40
    # Each of 40 independent fair draws; both versions on the left at least 5 times (p of failure < 1e-6).
    assert counts[CHAMPION] >= 5 and counts[CANDIDATE] >= 5, counts


@pytest.mark.parametrize(
    ("choice", "outcome", "winner_side"),
    [("a", "win", "left"), ("b", "win", "right"), ("tie", "tie", None), ("both_bad", "both_bad", None)],
)
def test_the_winner_follows_the_side_chosen(project, reviewer, choice, outcome, winner_side):
    make_pairs(project, 20)
    pair(project)
    seen_left = set()
    while (lease := pairwise_next(project=project, user=reviewer)) is not None:
        left, right = sides(lease)
        seen_left.add(left.model_version)
        preference = pairwise_submit(
            slot_id=lease.pk, user=reviewer, lease_token=lease.lease_token, choice=choice, reason="  because  "
        )
        row = Preference.objects.get(pk=preference.pk)
        assert (row.choice, row.outcome, row.reason) == (choice, outcome, "because")
        winner, loser = {"left": (left, right), "right": (right, left), None: (None, None)}[winner_side]
        assert row.winner_item == winner
        assert row.winner_model_version == (winner.model_version if winner else "")
        assert row.loser_model_version == (loser.model_version if loser else "")
    assert Preference.objects.filter(reviewer=reviewer).count() == 20
    assert seen_left == {CHAMPION, CANDIDATE}  # both orders were exercised


def test_two_reviewers_never_share_a_slot_and_nobody_judges_a_pair_twice(project, reviewer, reviewer2, curator):
    make_pairs(project, 1)
    pair(project, ppt=2)
    rita = pairwise_next(project=project, user=reviewer)
    rob = pairwise_next(project=project, user=reviewer2)
    assert rita.task_id == rob.task_id and rita.pk != rob.pk
    assert pairwise_next(project=project, user=curator) is None  # both slots are held
    pairwise_submit(slot_id=rita.pk, user=reviewer, lease_token=rita.lease_token, choice="tie")
    assert pairwise_next(project=project, user=reviewer) is None  # never the same pair again
    pairwise_submit(slot_id=rob.pk, user=reviewer2, lease_token=rob.lease_token, choice="b")
    task = PairwiseTask.objects.get()
    assert (task.preference_count, task.status) == (2, "done")
    assert pairwise_next(project=project, user=curator) is None


def test_a_task_stays_open_until_every_preference_is_in(project, reviewer, reviewer2):
    make_pairs(project, 1)
    pair(project, ppt=2)
    lease = pairwise_next(project=project, user=reviewer)
    pairwise_submit(slot_id=lease.pk, user=reviewer, lease_token=lease.lease_token, choice="a")
    task = PairwiseTask.objects.get()
    assert (task.preference_count, task.status) == (1, "open")
    assert pairwise_next(project=project, user=reviewer2) is not None


def test_submitting_twice_is_a_conflict_and_keeps_the_first(project, reviewer):
    make_pairs(project, 2)
    pair(project)
    lease = pairwise_next(project=project, user=reviewer)
    first = pairwise_submit(slot_id=lease.pk, user=reviewer, lease_token=lease.lease_token, choice="a")
    with pytest.raises(AlreadySubmitted):
        pairwise_submit(slot_id=lease.pk, user=reviewer, lease_token=lease.lease_token, choice="b")
    assert list(Preference.objects.values_list("pk", "choice")) == [(first.pk, "a")]


def test_a_lost_lease_is_a_conflict_and_writes_nothing(project, reviewer, reviewer2):
    make_pairs(project, 1)
    pair(project)
    lease = pairwise_next(project=project, user=reviewer)
    PairwiseSlot.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    taken = pairwise_next(project=project, user=reviewer2)
    assert taken.pk == lease.pk and taken.lease_token != lease.lease_token
    with pytest.raises(LeaseLost):
        pairwise_submit(slot_id=lease.pk, user=reviewer, lease_token=lease.lease_token, choice="a")
    assert not Preference.objects.exists()
    assert PairwiseSlot.objects.get(pk=lease.pk).reviewer == reviewer2


def test_a_form_from_an_earlier_lease_of_the_same_slot_is_refused(project, reviewer, reviewer2):
    """The sides are drawn again for every lease: a choice made on old sides must not be recorded."""
    make_pairs(project, 1)
    pair(project)
    old = pairwise_next(project=project, user=reviewer)
    PairwiseSlot.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    taken = pairwise_next(project=project, user=reviewer2)
    slot_skip(PAIR_SLOTS, slot=taken, user=reviewer2)
    new = pairwise_next(project=project, user=reviewer)  # the same slot again, sides drawn anew
    assert new.pk == old.pk and new.lease_token != old.lease_token
    with pytest.raises(LeaseLost):
        pairwise_submit(slot_id=old.pk, user=reviewer, lease_token=old.lease_token, choice="a")
    with pytest.raises(LeaseLost):
        pairwise_submit(slot_id=old.pk, user=reviewer, lease_token="", choice="a")
    assert not Preference.objects.exists()
    pairwise_submit(slot_id=new.pk, user=reviewer, lease_token=new.lease_token, choice="a")
    assert Preference.objects.get().left_item_id == PairwiseSlot.objects.get(pk=new.pk).left_item_id


def test_bad_input_names_the_field_and_keeps_the_lease(project, reviewer):
    make_pairs(project, 1)
    pair(project)
    lease = pairwise_next(project=project, user=reviewer)
    with pytest.raises(ValidationFailed) as exc:
        pairwise_submit(
            slot_id=lease.pk, user=reviewer, lease_token=lease.lease_token, choice="left", reason="x" * 2001
        )
    assert [(e["field"], e["message"]) for e in exc.value.errors] == [
        ("choice", "Pick A, B, tie or both bad."),
        ("reason", "At most 2000 characters."),
    ]
    assert not Preference.objects.exists()
    slot = PairwiseSlot.objects.get(pk=lease.pk)
    assert (slot.reviewer, slot.submitted_at) == (reviewer, None)


def test_a_slot_of_another_project_counts_as_removed(project, reviewer):
    other = ProjectFactory(slug="other")
    member(other, "reviewer", username="rita")
    make_pairs(other, 1)
    pairwise_tasks_create(project=other, version_a=CHAMPION, version_b=CANDIDATE)
    lease = pairwise_next(project=other, user=reviewer)
    with pytest.raises(ItemRemoved):
        pairwise_submit(slot_id=lease.pk, user=reviewer, lease_token=lease.lease_token, choice="a", project=project)
    assert not Preference.objects.exists()


def test_a_removed_item_removes_its_pair(project, reviewer):
    make_pairs(project, 1)
    pair(project)
    lease = pairwise_next(project=project, user=reviewer)
    Item.objects.filter(model_version=CANDIDATE).delete()
    with pytest.raises(ItemRemoved):
        pairwise_submit(slot_id=lease.pk, user=reviewer, lease_token=lease.lease_token, choice="a")
    assert not PairwiseTask.objects.exists()


def test_skip_gives_the_pair_back_and_never_offers_it_again(project, reviewer, reviewer2):
    make_pairs(project, 2)
    pair(project)
    lease = pairwise_next(project=project, user=reviewer)
    slot_skip(PAIR_SLOTS, slot=lease, user=reviewer, reason=" too long ")
    slot = PairwiseSlot.objects.get(pk=lease.pk)
    assert (slot.reviewer, slot.left_item, slot.lease_token) == (None, None, "")
    assert PairwiseSkip.objects.get().reason == "too long"
    assert AuditEvent.objects.filter(action="pairwise.skip", actor=reviewer).exists()
    following = pairwise_next(project=project, user=reviewer)
    assert following.task_id != lease.task_id
    assert pairwise_next(project=project, user=reviewer2).task_id == lease.task_id  # others still get it


def test_renew_extends_the_lease_and_fails_once_it_is_lost(project, reviewer, reviewer2):
    make_pairs(project, 1)
    pair(project)
    lease = pairwise_next(project=project, user=reviewer)
    PairwiseSlot.objects.filter(pk=lease.pk).update(expires_at=timezone.now() + timedelta(seconds=5))
    renewed = slot_renew(PAIR_SLOTS, slot=lease, user=reviewer)
    assert renewed.expires_at > timezone.now() + timedelta(seconds=project.lease_seconds - 5)
    PairwiseSlot.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    pairwise_next(project=project, user=reviewer2)
    with pytest.raises(LeaseLost):
        slot_renew(PAIR_SLOTS, slot=lease, user=reviewer)


def test_submit_is_audited_with_the_sides(project, reviewer):
    make_pairs(project, 1)
    pair(project)
    lease = pairwise_next(project=project, user=reviewer)
    left, right = sides(lease)
    preference = pairwise_submit(slot_id=lease.pk, user=reviewer, lease_token=lease.lease_token, choice="b")
    event = AuditEvent.objects.get(action="pairwise.submit")
    assert (event.actor, event.target_type, event.target_id) == (reviewer, "preference", str(preference.pk))
    assert event.data == {
        "task": lease.task_id,
        "choice": "b",
        "left_item": left.pk,
        "right_item": right.pk,
        "winner_item": right.pk,
    }


# --- results -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    # Newcombe (1998), Statistics in Medicine 17:857-872, Table I, method 3 (Wilson score, no correction).
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_interval_matches_published_values(successes, n, low, high):
    got_low, got_high = wilson(successes, n)
    assert (round(got_low, 4), round(got_high, 4)) == (low, high)


def test_wilson_interval_without_data_is_none():
    assert wilson(0, 0) is None


def judge(project: Any, user: Any, decide: Any) -> None:
    """Judge every pair the user can get; ``decide(left_version, right_version)`` returns the choice."""
    while (lease := pairwise_next(project=project, user=user)) is not None:
        left, right = sides(lease)
        choice = decide(left.model_version, right.model_version)
        pairwise_submit(slot_id=lease.pk, user=user, lease_token=lease.lease_token, choice=choice)


def test_results_count_by_version_whatever_side_it_was_shown_on(project, reviewer, reviewer2, curator):
    make_pairs(project, 10)
    pair(project, ppt=3)
    # rita always prefers the candidate, rob the champion except on ties, cora says both bad.
    judge(project, reviewer, lambda left, right: "a" if left == CANDIDATE else "b")
    judge(project, reviewer2, lambda left, right: "a" if left == CHAMPION else "b")
    judge(project, curator, lambda left, right: "both_bad")
    [row] = pairwise_results(project=project)
    assert (row.version_a, row.version_b, row.tasks, row.done_tasks) == (CHAMPION, CANDIDATE, 10, 10)
    assert (row.wins, row.losses, row.ties, row.both_bad, row.judgements, row.decisive) == (10, 10, 0, 10, 30, 20)
    # Every pair split 1-1, so each pair's value is 0.5: the rate is 0.5 over n = 10 pairs, and the
    # bootstrap over pairs has nothing to vary (the interval is the point).
    assert (row.n, row.win_rate, row.interval) == (10, 0.5, (0.5, 0.5))
    assert row.left_wins == Preference.objects.filter(choice="a").count()


def test_results_fold_both_orientations_into_one_row(project, reviewer):
    make_pairs(project, 2, source="first")
    make_pairs(project, 2, start=2, source="second")
    pair(project, source="first")
    reverse = pairwise_tasks_create(project=project, version_a=CANDIDATE, version_b=CHAMPION, source="second")
    assert (reverse.created, reverse.existing) == (2, 2)
    assert PairwiseTask.objects.filter(version_a=CANDIDATE, item_a__model_version=CANDIDATE).count() == 2
    judge(project, reviewer, lambda left, right: "a" if left == CHAMPION else "b")  # the champion always wins
    [row] = pairwise_results(project=project)
    assert (row.version_a, row.version_b, row.tasks, row.done_tasks) == (CHAMPION, CANDIDATE, 4, 4)
    assert (row.wins, row.losses, row.n, row.win_rate) == (4, 0, 4, 1.0)
    assert row.interval == pytest.approx(wilson(4, 4))  # four unanimous pairs: Wilson over pairs


def test_results_list_pairs_without_judgements(project):
    make_pairs(project, 2)
    pair(project)
    [row] = pairwise_results(project=project)
    assert (row.tasks, row.n, row.win_rate, row.interval) == (2, 0, None, None)


# --- concurrency -------------------------------------------------------------------------------

REVIEWERS = 8
PAIRS = 20
NEXT = "/api/v1/projects/support/pairwise/next/"
PREFERENCES = "/api/v1/projects/support/pairwise/preferences/"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_eight_reviewers_judge_every_pair_exactly_twice_without_overlap(project):
    make_pairs(project, PAIRS)
    pair(project, ppt=2)
    clients = []
    for n in range(REVIEWERS):
        user = get_user_model().objects.create(username=f"pw{n}")
        membership_set(project=project, user=user, role="reviewer")
        _, raw = api_token_create(user=user, name="load", scopes=["review"], project=project)
        clients.append((user.username, Client(headers={"authorization": f"Bearer {raw}"})))
    lock = threading.Lock()
    holders: dict[int, str] = {}
    problems: list[str] = []
    start = threading.Barrier(REVIEWERS)

    def reviewer(name: str, client: Client) -> None:
        try:
            start.wait(timeout=30)
            while True:
                response = client.post(NEXT)
                if response.status_code == 204:
                    return
                if response.status_code != 200:
                    problems.append(f"{name}: next {response.status_code}")
                    return
                lease = response.json()["lease"]
                with lock:
                    if lease["id"] in holders:
                        problems.append(f"slot {lease['id']} leased to {name} while {holders[lease['id']]} holds it")
                    holders[lease["id"]] = name
                body = {"lease": lease["id"], "token": lease["token"], "choice": "a"}
                submitted = client.post(PREFERENCES, body, "application/json")
                with lock:
                    holders.pop(lease["id"], None)
                if submitted.status_code != 201:
                    problems.append(f"{name}: submit {submitted.status_code} {submitted.content[:200]!r}")
                    return
        except Exception as exc:  # a thread's failure must fail the test, not vanish
            problems.append(f"{name}: {exc!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=reviewer, args=c) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert problems == []
    per_task = Counter(Preference.objects.values_list("task_id", flat=True))
    assert len(per_task) == PAIRS and set(per_task.values()) == {2}
    per_reviewer_task = Counter(Preference.objects.values_list("task_id", "reviewer_id"))
    assert set(per_reviewer_task.values()) == {1}
    assert set(PairwiseTask.objects.values_list("status", "preference_count")) == {("done", 2)}
    for preference in Preference.objects.select_related("left_item", "winner_item"):
        assert preference.winner_item == preference.left_item  # everybody chose "a"
        assert preference.winner_model_version == preference.left_item.model_version
