"""The review cycle's query counts, pinned: one slot engine serves review and pairwise slots, and
the lease token costs no query. Counts include session, user, savepoints and the audit row;
lower them on purpose (issue 16), never by accident upwards."""

from __future__ import annotations

from django.urls import reverse

from reviewapp.models import Assignment, PairwiseSlot
from reviewapp.services.pairwise import pairwise_tasks_create
from tests.factories import make_items
from tests.reviewapp.test_api import NEXT, REVIEWS, bearer
from tests.reviewapp.test_pairwise_services import CANDIDATE, CHAMPION, make_pairs

HTMX = {"HX-Request": "true"}
GOOD_POST = {"answers.correct": "true", "answers.helpfulness": "4", "answers.issue": "none"}


def held(model, user):  # type: ignore[no-untyped-def]
    return model.objects.get(reviewer=user, submitted_at__isnull=True)


def test_the_review_pages_queries_are_pinned(client, project, reviewer, django_assert_num_queries):
    make_items(project, 4)
    client.force_login(reviewer)
    page = reverse("review-page", args=[project.slug])
    with django_assert_num_queries(17):  # a new lease (+ 2: the navigation's roles and project-creation check)
        client.get(page)
    with django_assert_num_queries(13):  # the lease held, renewed
        client.get(page)
    lease = held(Assignment, reviewer)
    with django_assert_num_queries(32):  # save the review, lease and show the next item
        response = client.post(
            reverse("review-submit", args=[project.slug, lease.pk]),
            {**GOOD_POST, "token": lease.lease_token},
            headers=HTMX,
        )
    assert response.status_code == 200 and lease.item.reviews.count() == 1
    lease = held(Assignment, reviewer)
    with django_assert_num_queries(26):
        client.post(reverse("review-skip", args=[project.slug, lease.pk]), {}, headers=HTMX)
    lease = held(Assignment, reviewer)
    with django_assert_num_queries(9):
        assert client.post(reverse("review-renew", args=[project.slug, lease.pk]), headers=HTMX).status_code == 204


def test_the_review_apis_queries_are_pinned(project, reviewer, django_assert_num_queries):
    make_items(project, 2)
    api = bearer(reviewer, "review")
    with django_assert_num_queries(12):
        api.post(NEXT)
    with django_assert_num_queries(7):
        lease = api.post(NEXT).json()["assignment"]
    payload = {"assignment": lease["id"], "token": lease["token"], "answers": {"correct": True, "helpfulness": 4}}
    with django_assert_num_queries(16):
        assert api.post(REVIEWS, payload, "application/json").status_code == 201


def test_the_pairwise_pages_queries_are_pinned(client, project, reviewer, django_assert_num_queries):
    make_pairs(project, 3)
    pairwise_tasks_create(project=project, version_a=CHAMPION, version_b=CANDIDATE)
    client.force_login(reviewer)
    page = reverse("pairwise-page", args=[project.slug])
    with django_assert_num_queries(13):  # + 2: the navigation's roles and project-creation check
        client.get(page)
    with django_assert_num_queries(12):
        client.get(page)
    slot = held(PairwiseSlot, reviewer)
    with django_assert_num_queries(22):
        response = client.post(
            reverse("pairwise-submit", args=[project.slug, slot.pk]),
            {"choice": "a", "token": slot.lease_token},
            headers=HTMX,
        )
    assert response.status_code == 200 and slot.task.preferences.count() == 1
    slot = held(PairwiseSlot, reviewer)
    with django_assert_num_queries(22):
        client.post(reverse("pairwise-skip", args=[project.slug, slot.pk]), {}, headers=HTMX)
