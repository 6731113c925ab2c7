"""Thirty-two reviewers, three reviews per item, on real PostgreSQL, through the API.

Every reviewer is a thread with its own connection and HTTP client, draining the queue with
queue/next + submit. Some "crash" while holding a lease; once their leases expire, the sweeper
task reclaims them and the others finish the work. Whatever the interleaving: no slot is ever
leased to two reviewers at once, no reviewer is given an item twice, and every ordinary item ends
with exactly three reviews (gold items get their three plus one extra per reviewer who met them).
It runs in a shared pool, with gold items mixed in, and in assigned mode with every slot assigned
to one group; and two tabs of one reviewer submit the same item at the same moment.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.utils import timezone

from reviewapp.models import Assignment, Item, Review
from reviewapp.models.reviews import EXTRA_SLOT_BASE
from reviewapp.selectors.items import ItemQuery
from reviewapp.services.assignments import assignments_bulk_assign, reviewer_group_create
from reviewapp.services.gold import gold_answer_set
from reviewapp.services.projects import membership_set, project_set_reviews_per_item
from reviewapp.services.tokens import api_token_create
from reviewapp.tasks import leases_reclaim
from tests.factories import make_items

REVIEWERS = 32
N = 3
ITEMS = 60
CRASHERS = 4  # reviewers that take one lease and vanish
GOOD = {"correct": True, "helpfulness": 4}
NEXT = "/api/v1/projects/support/queue/next/"
REVIEWS = "/api/v1/projects/support/reviews/"


def _clients(project: Any) -> list[tuple[str, Client]]:
    clients = []
    for n in range(REVIEWERS):
        user = get_user_model().objects.create(username=f"team{n}")  # no password: hashing 32 is slow
        membership_set(project=project, user=user, role="reviewer")
        _, raw = api_token_create(user=user, name="load", scopes=["review"], project=project)
        clients.append((user.username, Client(headers={"authorization": f"Bearer {raw}"})))
    return clients


class Drain:
    """Runs reviewers in threads and records every lease handed out."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holders: dict[int, str] = {}  # slot id -> who holds it right now
        self.leases: list[tuple[str, int, int]] = []  # (reviewer, slot, item), every lease handed out
        self.problems: list[str] = []

    def run(self, clients: list[tuple[str, Client]], *, crashers: int = 0) -> None:
        start = threading.Barrier(len(clients))

        def reviewer(index: int, name: str, client: Client) -> None:
            try:
                start.wait(timeout=60)
                while True:
                    response = client.post(NEXT)
                    if response.status_code == 204:
                        return
                    if response.status_code != 200:
                        self.problems.append(f"{name}: queue/next {response.status_code} {response.content[:200]!r}")
                        return
                    body = response.json()
                    slot, item = body["assignment"]["id"], body["item"]["id"]
                    with self.lock:
                        if slot in self.holders:
                            self.problems.append(f"slot {slot} leased to {name} while {self.holders[slot]} holds it")
                        self.holders[slot] = name
                        self.leases.append((name, slot, item))
                    if index < crashers:
                        return  # crashes holding the lease; it stays in holders until swept
                    submitted = client.post(REVIEWS, {"assignment": slot, "answers": GOOD}, "application/json")
                    with self.lock:
                        self.holders.pop(slot, None)
                    if submitted.status_code != 201:
                        self.problems.append(f"{name}: submit {submitted.status_code} {submitted.content[:200]!r}")
                        return
            except Exception as exc:  # a thread's failure must fail the test, not vanish
                self.problems.append(f"{name}: {exc!r}")
            finally:
                connection.close()  # this thread's own connection

        threads = [threading.Thread(target=reviewer, args=(i, *pair)) for i, pair in enumerate(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        assert not any(thread.is_alive() for thread in threads), "a reviewer thread hung"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("gold_items", "assigned"), [(0, False), (3, False), (0, True)], ids=["plain", "with-gold", "assigned-to-a-group"]
)
@pytest.mark.slow
def test_thirty_two_reviewers_three_reviews_per_item_with_crashes_and_the_sweeper(project, gold_items, assigned):
    project_set_reviews_per_item(project=project, reviews_per_item=N, wait=True)
    project.refresh_from_db()
    make_items(project, ITEMS)
    assert Assignment.objects.filter(project=project).count() == ITEMS * N
    items = list(Item.objects.filter(project=project).order_by("id"))
    gold_ids = {item.pk for item in items[:gold_items]}
    for item in items[:gold_items]:
        gold_answer_set(project=project, item=item, answers={"correct": True}, actor=None)
    if gold_items:
        project.gold_rate = 0.2
        project.save(update_fields=["gold_rate"])
    clients = _clients(project)
    if assigned:  # assigned mode: everything goes to one group of all 32 (its own index and query)
        project.queue_mode = "assigned"
        project.save(update_fields=["queue_mode"])
        everyone = get_user_model().objects.filter(username__startswith="team")
        group = reviewer_group_create(project=project, name="all", members=list(everyone), actor=None)
        result = assignments_bulk_assign(project=project, query=ItemQuery(), actor=None, group=group)
        assert result.slots_to_group == ITEMS * N
    drain = Drain()

    drain.run(clients, crashers=CRASHERS)
    assert drain.problems == []
    abandoned = dict(drain.holders)
    assert len(abandoned) == CRASHERS
    # The crashed reviewers' slots are still held: nobody else could take them.
    assert Assignment.objects.filter(pk__in=abandoned, submitted_at__isnull=True, reviewer__isnull=False).count() == (
        CRASHERS
    )

    # Their leases run out; the sweeper (the Celery task beat runs every minute) frees them.
    Assignment.objects.filter(pk__in=abandoned).update(expires_at=timezone.now() - timedelta(seconds=1))
    leases_reclaim.apply()
    assert not Assignment.objects.filter(pk__in=abandoned, reviewer__isnull=False).exists()
    drain.holders.clear()

    survivors = clients[CRASHERS:]
    drain.run(survivors)
    assert drain.problems == []

    # No slot was ever held by two reviewers at once (checked live above); no reviewer saw an item twice.
    per_reviewer_item = Counter((name, item) for name, _, item in drain.leases)
    assert max(per_reviewer_item.values()) == 1, "a reviewer was given the same item twice"
    assert len({name for name, _, _ in drain.leases}) > REVIEWERS // 2, "too few reviewers got work: no concurrency"

    reviews = Review.objects.filter(project=project)
    assert reviews.values("item_id", "reviewer_id").distinct().count() == reviews.count()
    per_item = Counter(reviews.values_list("item_id", flat=True))
    counted = Counter(reviews.filter(assignment__slot__lt=EXTRA_SLOT_BASE).values_list("item_id", flat=True))
    for item in Item.objects.filter(project=project):
        assert counted[item.pk] == N, f"item {item.pk} has {counted[item.pk]} counted reviews"
        assert item.review_count == N
        if item.pk not in gold_ids:
            assert per_item[item.pk] == N, f"item {item.pk} has {per_item[item.pk]} reviews"
    assert not Assignment.objects.filter(project=project, submitted_at__isnull=True, slot__lt=EXTRA_SLOT_BASE).exists()
    if gold_items:
        extra = reviews.filter(assignment__slot__gte=EXTRA_SLOT_BASE)
        assert extra.exists() and set(extra.values_list("item_id", flat=True)) <= gold_ids


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_two_tabs_submitting_at_the_same_moment_save_exactly_one_review(project):
    make_items(project, 10)
    user = get_user_model().objects.create(username="twotabs")
    membership_set(project=project, user=user, role="reviewer")
    tabs = []
    for _ in range(2):
        _, raw = api_token_create(user=user, name="tab", scopes=["review"], project=project)
        tabs.append(Client(headers={"authorization": f"Bearer {raw}"}))
    for round_ in range(10):
        slots = {tab.post(NEXT).json()["assignment"]["id"] for tab in tabs}
        assert len(slots) == 1, "two tabs must share the one lease"
        slot = slots.pop()
        answers = [GOOD, {"correct": False, "helpfulness": 1}]
        responses = _submit_together(slot, list(zip(tabs, answers, strict=True)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201, 409], f"round {round_}: {statuses}"
        assert [r.json()["code"] for r in responses if r.status_code == 409] == ["already_submitted"]
        saved = Review.objects.get(assignment_id=slot)
        winner = next(i for i, r in enumerate(responses) if r.status_code == 201)
        assert saved.answers == answers[winner]  # the 201's answers, not a mix and not overwritten
    assert Review.objects.filter(reviewer=user).count() == 10
    assert set(Item.objects.filter(project=project).values_list("review_count", flat=True)) == {1}


def _submit_together(slot: int, tabs: list[tuple[Client, dict[str, Any]]]) -> list[Any]:
    """POST the same assignment from every tab at the same moment; the responses in tab order."""
    responses: list[Any] = [None] * len(tabs)
    start = threading.Barrier(len(tabs))

    def submit(index: int, tab: Client, answers: dict[str, Any]) -> None:
        try:
            start.wait(timeout=30)
            responses[index] = tab.post(REVIEWS, {"assignment": slot, "answers": answers}, "application/json")
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(i, *pair)) for i, pair in enumerate(tabs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(r is not None for r in responses), "a tab's request did not finish"
    return responses
