"""Sixteen reviewers drain one queue at once, through the API, on real PostgreSQL.

Every reviewer is a thread with its own database connection and its own HTTP client. They call
queue/next and submit what they get until the queue answers 204. Whatever the interleaving, no
slot may be held by two reviewers at once, no reviewer may see an item twice, and every item
must end with exactly ``reviews_per_item`` reviews.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from reviewapp.models import Assignment, Item, Review
from reviewapp.services.projects import membership_set, project_set_reviews_per_item
from reviewapp.services.tokens import api_token_create
from tests.factories import make_items

REVIEWERS = 16
ITEMS = 40
GOOD = {"correct": True, "helpfulness": 4}
NEXT = "/api/v1/projects/support/queue/next/"
REVIEWS = "/api/v1/projects/support/reviews/"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("reviews_per_item", [1, 2])
@pytest.mark.slow
def test_sixteen_reviewers_drain_the_queue_without_overlap(project, reviews_per_item):
    make_items(project, ITEMS)
    project_set_reviews_per_item(project=project, reviews_per_item=reviews_per_item, wait=True)
    clients = []
    for n in range(REVIEWERS):
        user = get_user_model().objects.create(username=f"conc{n}")  # no password: hashing 16 is slow
        membership_set(project=project, user=user, role="reviewer")
        _, raw = api_token_create(user=user, name="load", scopes=["review"], project=project)
        clients.append((user.username, Client(headers={"authorization": f"Bearer {raw}"})))

    lock = threading.Lock()
    holders: dict[int, str] = {}  # slot id -> who holds it right now
    leases: list[tuple[str, int, int]] = []  # (reviewer, slot, item), every lease handed out
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
                    problems.append(f"{name}: queue/next {response.status_code} {response.content[:200]!r}")
                    return
                body: dict[str, Any] = response.json()
                slot, item = body["assignment"]["id"], body["item"]["id"]
                with lock:
                    if slot in holders:
                        problems.append(f"slot {slot} leased to {name} while {holders[slot]} holds it")
                    holders[slot] = name
                    leases.append((name, slot, item))
                submitted = client.post(REVIEWS, {"assignment": slot, "answers": GOOD}, "application/json")
                with lock:
                    holders.pop(slot, None)
                if submitted.status_code != 201:
                    problems.append(f"{name}: submit {submitted.status_code} {submitted.content[:200]!r}")
                    return
        except Exception as exc:  # a thread's failure must fail the test, not vanish
            problems.append(f"{name}: {exc!r}")
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=reviewer, args=pair) for pair in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a reviewer thread hung"

    assert problems == []
    assert len(leases) == ITEMS * reviews_per_item  # every lease was a distinct, submitted slot
    assert len({slot for _, slot, _ in leases}) == len(leases)
    per_reviewer_item = Counter((name, item) for name, _, item in leases)
    assert max(per_reviewer_item.values()) == 1, "a reviewer was given the same item twice"
    assert len({name for name, _, _ in leases}) > 1, "only one reviewer did all the work; no concurrency"

    reviews_per = Counter(Review.objects.filter(project=project).values_list("item_id", flat=True))
    item_ids = list(Item.objects.filter(project=project).values_list("id", flat=True))
    assert {item_id: reviews_per[item_id] for item_id in item_ids} == dict.fromkeys(item_ids, reviews_per_item)
    assert set(Item.objects.filter(project=project).values_list("review_count", flat=True)) == {reviews_per_item}
    assert Review.objects.values("item_id", "reviewer_id").distinct().count() == Review.objects.count()
    assert not Assignment.objects.filter(project=project, submitted_at__isnull=True).exists()
