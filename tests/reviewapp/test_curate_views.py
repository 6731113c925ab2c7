"""Curator actions in the browser UI through the Django test client: create pairs (with the preview
count), mark and unmark gold items, send an item back, resolve or dismiss flags. Each checks who
may act, that errors are shown on the page, and that the audit log records the action."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from reviewapp.models import AuditEvent, Flag, GoldAnswer, Item, PairwiseTask, Review
from reviewapp.services.flags import flag_create
from reviewapp.services.queue import queue_next
from reviewapp.services.reviews import review_submit
from tests.factories import make_items
from tests.reviewapp.test_pairwise_services import CANDIDATE, CHAMPION, make_pairs

HTMX = {"HX-Request": "true"}


@pytest.fixture
def cora(client, curator):
    client.force_login(curator)
    return client


@pytest.fixture
def rita(client, reviewer):
    client.force_login(reviewer)
    return client


def submit(project: Any, user: Any) -> Review:
    lease = queue_next(project=project, user=user)
    assert lease is not None
    return review_submit(assignment_id=lease.pk, user=user, answers={"correct": True, "helpfulness": 4})


def url(name: str, project: Any, *args: Any) -> str:
    return reverse(name, args=[project.slug, *args])


# --- permissions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "method", "args"),
    [
        ("pairwise-create", "get", ()),
        ("pairwise-create", "post", ()),
        ("pairwise-preview", "get", ()),
        ("curate-page", "get", ()),
        ("curate-item", "get", ("item",)),
        ("curate-send-back", "post", ("item",)),
        ("curate-gold-set", "post", ("item",)),
        ("curate-gold-delete", "post", ("item",)),
        ("curate-flag-close", "post", ("flag",)),
    ],
)
def test_reviewers_and_outsiders_cannot_curate(client, project, reviewer, engineer, outsider, name, method, args):
    make_items(project, 1)
    item = Item.objects.get(project=project)
    flag, _ = flag_create(item=item, user=reviewer, kind="unsafe")
    ids = {"item": item.pk, "flag": flag.pk}
    target = url(name, project, *[ids[a] for a in args])
    data = {"reason": "x", "comment": "x", "status": "resolved", "version_a": CHAMPION, "version_b": CANDIDATE}
    for user in (reviewer, engineer, outsider):
        client.force_login(user)
        response = getattr(client, method)(target, data)
        assert response.status_code in (403, 404), (user, name, response.status_code)
    assert not AuditEvent.objects.filter(action__in=["item.send_back", "flag.resolve", "gold.set"]).exists()
    assert Flag.objects.get().status == Flag.Status.OPEN


def test_anonymous_is_sent_to_sign_in(client, project):
    response = client.get(url("curate-page", project))
    assert response.status_code == 302 and "/login/" in response["Location"]


# --- pairs ---------------------------------------------------------------------------------------


def test_the_preview_counts_the_pairs_without_creating_them(cora, project):
    make_pairs(project, 3)
    make_items(project, 1, start=10, model_version=CHAMPION)  # no partner
    response = cora.get(
        url("pairwise-preview", project), {"version_a": CHAMPION, "version_b": CANDIDATE, "limit": ""}, headers=HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "<strong data-preview-count>3</strong>" in html and "1 item of A" in html
    assert not PairwiseTask.objects.exists()
    capped = cora.get(url("pairwise-preview", project), {"version_a": CHAMPION, "version_b": CANDIDATE, "limit": "2"})
    assert "<strong data-preview-count>2</strong>" in capped.content.decode()


def test_the_preview_says_what_is_wrong(cora, project):
    make_pairs(project, 1)
    same = cora.get(url("pairwise-preview", project), {"version_a": CHAMPION, "version_b": CHAMPION})
    assert "Pick a version other than version_a." in same.content.decode()
    bad = cora.get(url("pairwise-preview", project), {"version_a": CHAMPION, "version_b": CANDIDATE, "limit": "x"})
    assert "Give a whole number." in bad.content.decode()


def test_the_form_page_shows_the_versions_and_the_count(cora, project):
    make_pairs(project, 2)
    html = cora.get(url("pairwise-create", project)).content.decode()
    assert f'<option value="{CHAMPION}"' in html and f'<option value="{CANDIDATE}"' in html
    assert "<strong data-preview-count>2</strong>" in html


def test_creating_pairs_filters_caps_and_is_audited(cora, project, curator):
    make_pairs(project, 4, source="chat")
    make_pairs(project, 2, start=10, source="email")
    data = {"version_a": CHAMPION, "version_b": CANDIDATE, "source": "chat", "limit": "3", "preferences_per_task": "2"}
    response = cora.post(url("pairwise-create", project), data, follow=True)
    assert response.status_code == 200
    assert "Created 3 pairs" in response.content.decode()
    tasks = PairwiseTask.objects.filter(project=project)
    assert tasks.count() == 3
    assert {t.item_a.source for t in tasks} == {"chat"}
    assert {t.preferences_per_task for t in tasks} == {2}
    event = AuditEvent.objects.get(action="pairwise.tasks_create")
    assert event.actor == curator and event.data["created"] == 3 and event.data["filter"]["source"] == "chat"
    assert event.data["limit"] == 3
    again = cora.post(url("pairwise-create", project), {**data, "limit": ""}, follow=True)
    assert "Created 1 pair " in again.content.decode()  # only the chat pair left out by the cap


def test_invalid_pairs_are_refused_on_the_page(cora, project):
    make_pairs(project, 1)
    response = cora.post(
        url("pairwise-create", project), {"version_a": CHAMPION, "version_b": CHAMPION, "preferences_per_task": "99"}
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "Pick a version other than version_a." in html and "Between 1 and 20." in html
    assert not PairwiseTask.objects.exists() and not AuditEvent.objects.filter(action="pairwise.tasks_create").exists()


def test_empty_pairwise_pages_point_curators_to_creating_pairs(cora, client, project, reviewer):
    make_pairs(project, 1)
    for name in ("pairwise-page", "pairwise-results"):
        html = cora.get(url(name, project)).content.decode()
        assert url("pairwise-create", project) in html, name
    assert url("pairwise-create", project) in cora.get(reverse("project-list")).content.decode()
    client.force_login(reviewer)
    html = client.get(url("pairwise-page", project)).content.decode()
    assert "A curator creates them" in html and url("pairwise-create", project) not in html


# --- gold ----------------------------------------------------------------------------------------


def test_marking_an_item_gold_and_unmarking_it(cora, project, curator):
    make_items(project, 1)
    item = Item.objects.get(project=project)
    page = cora.get(url("curate-item", project, item.pk)).content.decode()
    assert 'name="answers.correct"' in page and "Mark as gold" in page
    assert url("reviewer-dashboard", project) in page  # each reviewer's gold accuracy
    response = cora.post(
        url("curate-gold-set", project, item.pk),
        {"answers.correct": "true", "answers.helpfulness": "5", "note": "checked with the docs"},
        follow=True,
    )
    assert response.status_code == 200
    gold = GoldAnswer.objects.get(item=item)
    assert gold.answers == {"correct": True, "helpfulness": 5} and gold.note == "checked with the docs"
    assert AuditEvent.objects.get(action="gold.set").actor == curator
    assert "data-gold-badge" in response.content.decode()
    listed = cora.get(url("curate-page", project)).content.decode()
    assert f'data-gold="{item.pk}"' in listed
    cora.post(url("curate-gold-delete", project, item.pk))
    assert not GoldAnswer.objects.exists()
    assert AuditEvent.objects.get(action="gold.delete").actor == curator


def test_gold_without_a_scorable_answer_is_refused_on_the_page(cora, project):
    make_items(project, 1)
    item = Item.objects.get(project=project)
    response = cora.post(url("curate-gold-set", project, item.pk), {"answers.helpfulness": "9"})
    assert response.status_code == 422
    assert "has-error" in response.content.decode()
    empty = cora.post(url("curate-gold-set", project, item.pk), {"note": "x"})
    assert empty.status_code == 422 and "data-gold-error" in empty.content.decode()
    assert not GoldAnswer.objects.exists() and not AuditEvent.objects.filter(action="gold.set").exists()


def test_unmarking_an_item_that_is_not_gold_is_a_404(cora, project):
    make_items(project, 1)
    item = Item.objects.get(project=project)
    assert cora.post(url("curate-gold-delete", project, item.pk)).status_code == 404


# --- send back -----------------------------------------------------------------------------------


def test_sending_an_item_back_needs_a_reason_and_is_audited(cora, project, reviewer, curator):
    make_items(project, 1)
    review = submit(project, reviewer)
    target = url("curate-send-back", project, review.item_id)
    refused = cora.post(target, {"reason": "  "})
    assert refused.status_code == 422 and "Say why this item needs another review." in refused.content.decode()
    review.refresh_from_db()
    assert review.returned_at is None
    response = cora.post(target, {"reason": "answered the wrong question"}, follow=True)
    assert "Sent back 1 review" in response.content.decode()
    review.refresh_from_db()
    assert review.returned_at is not None and review.return_reason == "answered the wrong question"
    event = AuditEvent.objects.get(action="item.send_back")
    assert event.actor == curator and event.data["reason"] == "answered the wrong question"


def test_an_item_without_reviews_cannot_be_sent_back(cora, project):
    make_items(project, 1)
    item = Item.objects.get(project=project)
    response = cora.post(url("curate-send-back", project, item.pk), {"reason": "doubtful"})
    assert response.status_code == 422 and "no current reviews" in response.content.decode()


def test_an_item_of_another_project_is_a_404(cora, project):
    from tests.factories import ProjectFactory

    other = ProjectFactory(slug="other")
    make_items(other, 1)
    item = Item.objects.get(project=other)
    assert cora.get(url("curate-item", project, item.pk)).status_code == 404
    assert cora.post(url("curate-send-back", project, item.pk), {"reason": "x"}).status_code == 404


# --- flags ---------------------------------------------------------------------------------------


def test_resolving_and_dismissing_flags_with_a_comment(cora, project, reviewer, curator):
    make_items(project, 2)
    first, second = Item.objects.filter(project=project).order_by("id")
    unsafe, _ = flag_create(item=first, user=reviewer, kind="unsafe", note="<b>rude</b>")
    broken, _ = flag_create(item=second, user=reviewer, kind="bad_data")
    page = cora.get(url("curate-page", project)).content.decode()
    assert f'data-flag="{unsafe.pk}"' in page and "&lt;b&gt;rude&lt;/b&gt;" in page
    cora.post(url("curate-flag-close", project, unsafe.pk), {"status": "resolved", "comment": "removed the item"})
    cora.post(
        url("curate-flag-close", project, broken.pk), {"status": "dismissed", "comment": "reads fine", "back": "item"}
    )
    unsafe.refresh_from_db()
    broken.refresh_from_db()
    assert (unsafe.status, unsafe.resolution, unsafe.resolved_by) == ("resolved", "removed the item", curator)
    assert broken.status == "dismissed" and broken.resolved_at is not None
    assert AuditEvent.objects.get(action="flag.resolve").data["comment"] == "removed the item"
    assert AuditEvent.objects.get(action="flag.dismiss").actor == curator
    open_page = cora.get(url("curate-page", project)).content.decode()
    assert "data-flag=" not in open_page and "data-no-flags" in open_page
    assert f'data-flag="{unsafe.pk}"' in cora.get(url("curate-page", project) + "?flags=all").content.decode()


def test_closing_a_flag_needs_a_comment_and_only_once(cora, project, reviewer):
    make_items(project, 1)
    item = Item.objects.get(project=project)
    flag, _ = flag_create(item=item, user=reviewer, kind="needs_expert")
    target = url("curate-flag-close", project, flag.pk)
    refused = cora.post(target, {"status": "resolved", "comment": ""})
    assert refused.status_code == 422 and "Say what you did" in refused.content.decode()
    on_item = cora.post(target, {"status": "bogus", "comment": "x", "back": "item"})
    assert on_item.status_code == 422 and "Resolve or dismiss." in on_item.content.decode()
    assert cora.post(target, {"status": "dismissed", "comment": "fine"}).status_code == 302
    again = cora.post(target, {"status": "resolved", "comment": "late"})
    assert again.status_code == 422 and "already dismissed" in again.content.decode()
    assert AuditEvent.objects.filter(action__startswith="flag.").exclude(action="flag.dismiss").count() == 0


# --- the REST twin -------------------------------------------------------------------------------


def test_the_api_counts_pairs_on_a_dry_run_and_caps_them(client, project, curator):
    from reviewapp.services.tokens import api_token_create

    make_pairs(project, 3)
    _, secret = api_token_create(user=curator, name="t", scopes=["ingest"])
    headers = {"Authorization": f"Bearer {secret}"}
    target = reverse("api-pairwise-tasks", args=[project.slug])
    body = {"version_a": CHAMPION, "version_b": CANDIDATE, "limit": 2}
    dry = client.post(target, {**body, "dry_run": True}, content_type="application/json", headers=headers)
    assert dry.status_code == 200 and dry.json()["created"] == 2
    assert not PairwiseTask.objects.exists()
    made = client.post(target, body, content_type="application/json", headers=headers)
    assert made.status_code == 201 and made.json()["created"] == 2
    assert PairwiseTask.objects.count() == 2


def test_the_flags_api_shows_how_a_flag_was_closed(cora, client, project, reviewer, curator):
    from reviewapp.services.flags import flag_close
    from reviewapp.services.tokens import api_token_create

    make_items(project, 2)
    first, second = Item.objects.filter(project=project).order_by("id")
    closed, _ = flag_create(item=first, user=reviewer, kind="unsafe")
    flag_create(item=second, user=reviewer, kind="bad_data")
    flag_close(flag=closed, actor=curator, status="resolved", comment="fixed the source")
    _, secret = api_token_create(user=curator, name="t", scopes=["curate"])
    rows = client.get(
        reverse("api-flags", args=[project.slug]), {"status": "resolved"}, headers={"Authorization": f"Bearer {secret}"}
    ).json()["results"]
    assert [(r["id"], r["status"], r["resolution"], r["resolved_by"]) for r in rows] == [
        (closed.pk, "resolved", "fixed the source", "cora")
    ]


def test_flagging_a_closed_flag_again_opens_it_again(project, reviewer, curator):
    from reviewapp.services.flags import flag_close

    make_items(project, 1)
    item = Item.objects.get(project=project)
    flag, _ = flag_create(item=item, user=reviewer, kind="unsafe")
    flag_close(flag=flag, actor=curator, status="dismissed", comment="reads fine")
    again, created = flag_create(item=item, user=reviewer, kind="unsafe", note="still rude")
    assert not created and again.pk == flag.pk
    again.refresh_from_db()
    assert (again.status, again.resolution, again.resolved_by, again.note) == ("open", "", None, "still rude")
