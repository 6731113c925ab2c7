"""Team review in the browser: skip with a reason, flags, the curators' queue page and audit log,
returned reviews, and two tabs submitting one item."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from reviewapp.models import Assignment, AuditEvent, Flag, Item, Project, Review, ReviewerGroup, Skip
from reviewapp.services.assignments import item_send_back
from reviewapp.services.queue import queue_next
from reviewapp.services.reviews import review_submit
from tests.factories import make_items

HTMX = {"HX-Request": "true"}
GOOD_POST = {"answers.correct": "true", "answers.helpfulness": "4"}


@pytest.fixture
def items(project):
    make_items(project, 3)
    return list(Item.objects.filter(project=project).order_by("id"))


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def lease_of(project, user) -> Assignment:
    return Assignment.objects.get(project=project, reviewer=user, submitted_at__isnull=True)


# --- the review page: skip reason, flag ---------------------------------------------------------


def test_the_review_page_offers_skip_with_a_reason_and_a_flag(project, items, reviewer):
    html = login(reviewer).get(reverse("review-page", args=[project.slug])).content.decode()
    lease = lease_of(project, reviewer)
    assert 'id="skip-dialog"' in html and 'name="reason"' in html
    assert f'action="{reverse("review-skip", args=[project.slug, lease.pk])}"' in html
    assert 'id="flag-dialog"' in html and 'value="needs_expert"' in html
    assert f'action="{reverse("review-flag", args=[project.slug, lease.pk])}"' in html
    assert "<kbd>f</kbd>" in html


def test_skip_with_a_reason_stores_it_and_shows_the_next_item(project, items, reviewer):
    client = login(reviewer)
    client.get(reverse("review-page", args=[project.slug]))
    lease = lease_of(project, reviewer)
    response = client.post(
        reverse("review-skip", args=[project.slug, lease.pk]), {"reason": "Outside my expertise"}, headers=HTMX
    )
    assert response.status_code == 200 and "Skipped" in response.content.decode()
    assert Skip.objects.get(reviewer=reviewer).reason == "Outside my expertise"
    assert lease_of(project, reviewer).item_id != lease.item_id


def test_flag_over_htmx_answers_with_a_status_line_not_the_panel(project, items, reviewer):
    client = login(reviewer)
    client.get(reverse("review-page", args=[project.slug]))
    lease = lease_of(project, reviewer)
    url = reverse("review-flag", args=[project.slug, lease.pk])
    response = client.post(url, {"kind": "unsafe", "note": "dangerous advice"}, headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 201
    assert "Flagged" in html and 'id="review-panel"' not in html  # the typed answers stay on the page
    flag = Flag.objects.get()
    assert (flag.item_id, flag.created_by, flag.kind, flag.note) == (
        lease.item_id,
        reviewer,
        "unsafe",
        "dangerous advice",
    )
    assert lease_of(project, reviewer).pk == lease.pk  # still holding the item
    bad = client.post(url, {"kind": "other", "note": ""}, headers=HTMX)
    assert bad.status_code == 422 and "Not flagged" in bad.content.decode()
    plain = client.post(url, {"kind": "needs_expert"})
    assert plain.status_code == 302 and plain["Location"] == reverse("review-page", args=[project.slug])
    assert Flag.objects.count() == 2


def test_nobody_flags_a_lease_that_is_not_theirs(project, items, reviewer, reviewer2, outsider):
    theirs = queue_next(project=project, user=reviewer2)
    url = reverse("review-flag", args=[project.slug, theirs.pk])
    assert login(reviewer).post(url, {"kind": "unsafe"}).status_code == 404
    assert login(outsider).post(url, {"kind": "unsafe"}).status_code == 404
    assert not Flag.objects.exists()


# --- two tabs -------------------------------------------------------------------------------------


def test_two_tabs_submitting_one_item_save_the_first_and_say_so_in_the_second(project, items, reviewer):
    tab1, tab2 = login(reviewer), login(reviewer)
    page1 = tab1.get(reverse("review-page", args=[project.slug]))
    page2 = tab2.get(reverse("review-page", args=[project.slug]))
    lease = lease_of(project, reviewer)
    same = f'data-lease="{lease.pk}:{lease.lease_token}"'  # one lease, one token, in both tabs
    assert same in page1.content.decode() and same in page2.content.decode()
    url = reverse("review-submit", args=[project.slug, lease.pk])
    first = tab1.post(url, {**GOOD_POST, "comment": "from tab one", "token": lease.lease_token}, headers=HTMX)
    second = tab2.post(
        url, {"answers.correct": "false", "answers.helpfulness": "1", "token": lease.lease_token}, headers=HTMX
    )
    assert first.status_code == 200
    assert second.status_code == 409 and "You already submitted this item" in second.content.decode()
    saved = Review.objects.get()
    assert saved.comment == "from tab one" and saved.answers["correct"] is True
    # Both tabs now show the same next item: the second tab did not take another one.
    nxt = lease_of(project, reviewer)
    assert f'data-lease="{nxt.pk}:{nxt.lease_token}"' in first.content.decode()
    assert f'data-lease="{nxt.pk}:{nxt.lease_token}"' in second.content.decode()
    assert Assignment.objects.filter(reviewer=reviewer, submitted_at__isnull=True).count() == 1


# --- returned reviews -----------------------------------------------------------------------------


def test_a_returned_review_is_marked_and_cannot_be_edited(project, items, reviewer, curator):
    lease = queue_next(project=project, user=reviewer)
    done = review_submit(assignment_id=lease.pk, user=reviewer, answers={"correct": True, "helpfulness": 4})
    item_send_back(item=done.item, actor=curator, reason="check the sources")
    client = login(reviewer)
    assert "sent back" in client.get(reverse("review-list")).content.decode()
    detail = client.get(reverse("review-detail", args=[done.pk])).content.decode()
    assert "sent back for re-review" in detail
    response = client.post(
        reverse("review-detail", args=[done.pk]), {"answers.correct": "false", "answers.helpfulness": "1"}, headers=HTMX
    )
    assert response.status_code == 409 and "sent this review back" in response.content.decode()
    done.refresh_from_db()
    assert done.answers == {"correct": True, "helpfulness": 4}


# --- the curators' queue page ---------------------------------------------------------------------


def test_the_queue_page_is_for_curators(project, items, reviewer, curator, outsider):
    url = reverse("assignments-page", args=[project.slug])
    assert login(reviewer).get(url).status_code == 403
    assert login(outsider).get(url).status_code == 404
    html = login(curator).get(url).content.decode()
    assert "Assign items by filter" in html and "Queue settings" in html and "Reviewer groups" in html
    assert 'value="rita"' in html  # reviewers to pick
    projects = login(curator).get(reverse("project-list")).content.decode()
    assert url in projects
    assert url not in login(reviewer).get(reverse("project-list")).content.decode()


def test_assign_by_filter_from_the_page(project, items, reviewer, reviewer2, curator):
    client = login(curator)
    response = client.post(
        reverse("assignments-assign", args=[project.slug]),
        {"ids": f"{items[0].pk}, {items[1].pk}", "action": "assign", "reviewers": ["rob"], "priority": "4"},
    )
    assert response.status_code == 302
    assert set(Assignment.objects.filter(assigned_to=reviewer2).values_list("item_id", flat=True)) == {
        items[0].pk,
        items[1].pk,
    }
    assert list(Item.objects.filter(pk__in=[items[0].pk, items[1].pk]).values_list("priority", flat=True)) == [4, 4]
    page = client.get(response["Location"]).content.decode()
    assert "2 items matched: 2 slots to reviewers" in page
    assert queue_next(project=project, user=reviewer).item_id == items[2].pk
    bad = client.post(reverse("assignments-assign", args=[project.slug]), {"ids": "1, x", "action": "assign"})
    assert bad.status_code == 422
    html = bad.content.decode()
    assert "Give whole numbers" in html and "Pick reviewers or a group" in html
    assert AuditEvent.objects.filter(action="assignments.assign").count() == 1


def test_queue_settings_and_groups_from_the_page(project, items, reviewer, curator):
    client = login(curator)
    saved = client.post(
        reverse("assignments-settings", args=[project.slug]),
        {"queue_mode": "assigned", "gold_rate": "0.1", "lease_seconds": "300"},
    )
    assert saved.status_code == 302
    project.refresh_from_db()
    assert (project.queue_mode, project.gold_rate, project.lease_seconds) == ("assigned", 0.1, 300)
    bad = client.post(
        reverse("assignments-settings", args=[project.slug]),
        {"queue_mode": "assigned", "gold_rate": "3", "lease_seconds": "300"},
    )
    assert bad.status_code == 422
    assert Project.objects.get(pk=project.pk).gold_rate == 0.1
    made = client.post(reverse("groups-create", args=[project.slug]), {"name": "experts", "members": ["rita"]})
    assert made.status_code == 302
    assert list(ReviewerGroup.objects.get(name="experts").members.values_list("username", flat=True)) == ["rita"]
    assert client.post(reverse("groups-create", args=[project.slug]), {"name": "experts"}).status_code == 422
    assert login(reviewer).post(reverse("groups-create", args=[project.slug]), {"name": "x"}).status_code == 403


# --- the audit log ----------------------------------------------------------------------------------


def test_the_audit_page_lists_and_filters_events_for_curators(project, items, reviewer, curator):
    lease = queue_next(project=project, user=reviewer)
    review_submit(assignment_id=lease.pk, user=reviewer, answers={"correct": True, "helpfulness": 4})
    url = reverse("audit-page", args=[project.slug])
    assert login(reviewer).get(url).status_code == 403
    client = login(curator)
    html = client.get(url).content.decode()
    assert "review.submit" in html and "items.ingest" in html and "rita" in html
    only = client.get(url, {"action": "review.submit"}).content.decode()
    table = only.split("data-audit-table", 1)[1]
    assert "review.submit" in table and "items.ingest" not in table


def test_the_audit_page_runs_a_fixed_number_of_queries(project, items, reviewer, curator, django_assert_num_queries):
    for _ in range(3):
        lease = queue_next(project=project, user=reviewer)
        review_submit(assignment_id=lease.pk, user=reviewer, answers={"correct": True, "helpfulness": 4})
    client = login(curator)
    url = reverse("audit-page", args=[project.slug])
    client.get(url)
    with django_assert_num_queries(8):  # +2: the navigation (roles, may create projects)
        client.get(url)
