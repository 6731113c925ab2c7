"""The reviewer's browser UI, through the Django test client: responses and database together."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from reviewapp.models import ApiToken, Assignment, Item, Review, ReviewRevision, Skip
from reviewapp.services.projects import question_create
from reviewapp.services.queue import REVIEW_SLOTS, queue_next
from reviewapp.services.reviews import review_submit
from reviewapp.services.slots import slot_skip
from reviewapp.services.tokens import api_token_create
from tests.factories import ProjectFactory, make_items, member

HTMX = {"HX-Request": "true"}
GOOD_POST = {"answers.correct": "true", "answers.helpfulness": "4", "answers.issue": "none", "comment": " fine "}


@pytest.fixture
def items(project):
    make_items(project, 3)
    return list(Item.objects.filter(project=project).order_by("id"))


@pytest.fixture
def rita(client, reviewer):
    client.force_login(reviewer)
    return client


def review_url(project) -> str:
    return reverse("review-page", args=[project.slug])


def lease_of(project, user) -> Assignment:
    return Assignment.objects.get(project=project, reviewer=user, submitted_at__isnull=True)


def submit_url(assignment: Assignment) -> str:
    return reverse("review-submit", args=[assignment.project.slug, assignment.pk])


def fieldset(html: str, key: str) -> str:
    """The HTML of one question's fieldset."""
    match = re.search(rf'<fieldset[^>]*data-key="{key}".*?</fieldset>', html, re.S)
    assert match, f"no fieldset for {key}"
    return match.group(0)


# --- access ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["project-list", "review-list", "token-list"])
def test_pages_need_login(client, db, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_login_page_and_login_lands_on_my_projects(client, reviewer):
    page = client.get(reverse("login"))
    assert page.status_code == 200 and b'name="password"' in page.content
    response = client.post(reverse("login"), {"username": "rita", "password": "pw-for-tests-1"})
    assert response.status_code == 302 and response["Location"] == reverse("project-list")


def test_logout_is_a_post(rita):
    assert rita.get(reverse("project-list")).status_code == 200
    response = rita.post(reverse("logout"))
    assert response.status_code == 302
    assert rita.get(reverse("project-list")).status_code == 302


def test_outsider_gets_404_on_review_page_and_takes_no_lease(client, outsider, project, items):
    client.force_login(outsider)
    assert client.get(review_url(project)).status_code == 404
    assert not Assignment.objects.filter(reviewer=outsider).exists()


def test_outsider_cannot_submit_into_a_project(client, outsider, reviewer, project, items):
    lease = queue_next(project=project, user=reviewer)
    client.force_login(outsider)
    assert client.post(submit_url(lease), GOOD_POST).status_code == 404
    assert Review.objects.count() == 0


# --- my projects ----------------------------------------------------------------------------


def test_project_list_shows_progress_in_a_fixed_number_of_queries(
    rita, reviewer, project, items, django_assert_num_queries
):
    for n in range(3):
        other = ProjectFactory(slug=f"other-{n}", name=f"Other {n}")
        member(other, "reviewer", username="rita")
        make_items(other, 2, start=10 * n + 100)
    lease = queue_next(project=project, user=reviewer)
    review_submit(assignment_id=lease.pk, user=reviewer, answers={"correct": True, "helpfulness": 3})
    with django_assert_num_queries(6):  # session, user, memberships, projects, reviews, my reviews
        response = rita.get(reverse("project-list"))
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count("Start reviewing") == 4
    assert "Support assistant" in html and "Other 2" in html
    assert "<strong>1</strong> of 3 reviews (33%)" in html
    assert reverse("review-page", args=["support"]) in html


# --- the review page ------------------------------------------------------------------------


def test_review_page_leases_an_item_and_shows_it(rita, reviewer, project, items):
    response = rita.get(review_url(project))
    html = response.content.decode()
    lease = lease_of(project, reviewer)
    assert response.status_code == 200
    assert lease.item_id == items[0].pk
    assert "How do I reset my password? (0)" in html
    assert "Open <strong>Settings</strong> and choose <em>Reset password</em>" in html
    assert "docs/account.md" in html and "Passwords are reset from Settings." in html
    assert "<details open>" in html
    for key in ("correct", "helpfulness", "issue"):
        assert f'data-key="{key}"' in html
    assert "data-done>0</strong> done · <strong data-left>3</strong> left" in html
    assert "Rate <strong>correctness</strong> first." in html  # guidelines, as markdown
    assert 'hx-trigger="every 60s"' in html  # the lease heartbeat
    assert 'hx-headers=\'{"x-csrftoken": "' in html
    assert submit_url(lease) in html


def test_reload_keeps_the_same_lease(rita, reviewer, project, items):
    rita.get(review_url(project))
    rita.get(review_url(project))
    assert Assignment.objects.filter(reviewer=reviewer).count() == 1


def test_chat_request_is_shown_as_a_transcript(rita, project):
    chat = {
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "<b>Hi</b>, how do I export?"},
        ]
    }
    make_items(project, 1, request=chat)
    html = rita.get(review_url(project)).content.decode()
    assert 'class="turn turn-system"' in html and 'class="turn turn-user"' in html
    assert "&lt;b&gt;Hi&lt;/b&gt;, how do I export?" in html


def test_response_markdown_is_sanitised_in_the_page(rita, project):
    evil = "<script>window.__xss=1</script>\n\n[click](javascript:alert(1))\n\n| a |\n|---|\n| 1 |"
    context = [{"doc_uri": "x.md", "content": '<img src=x onerror="alert(1)">'}]
    make_items(project, 1, response=evil, retrieved_context=context)
    html = rita.get(review_url(project)).content.decode()
    response_html = html.split("data-response>", 1)[1].split("</div>", 1)[0]
    assert "<script" not in response_html and "javascript:" not in response_html.replace("](javascript:", "")
    assert "&lt;script&gt;" in response_html and "<table>" in response_html
    assert "<img" not in html and "&lt;img src=x onerror=" in html


def test_submit_creates_a_review_and_redirects_to_the_next_item(rita, reviewer, project, items):
    rita.get(review_url(project))
    lease = lease_of(project, reviewer)
    response = rita.post(submit_url(lease), {**GOOD_POST, "time_on_task_ms": "12345"})
    assert response.status_code == 302 and response["Location"] == review_url(project)
    review = Review.objects.get(reviewer=reviewer)
    assert review.item_id == items[0].pk
    assert review.answers == {"correct": True, "helpfulness": 4, "issue": "none"}
    assert review.comment == "fine" and review.time_on_task_ms == 12345
    follow = rita.get(response["Location"])
    assert "Saved your review" in follow.content.decode()
    assert lease_of(project, reviewer).item_id == items[1].pk


@pytest.mark.parametrize("sent", ["inf", "-inf", "nan", "1e400", "soon"])
def test_a_nonsense_time_on_task_is_dropped_not_a_server_error(rita, reviewer, project, items, sent):
    rita.get(review_url(project))
    response = rita.post(submit_url(lease_of(project, reviewer)), {**GOOD_POST, "time_on_task_ms": sent})
    assert response.status_code == 302
    assert Review.objects.get(reviewer=reviewer).time_on_task_ms is None


def test_htmx_submit_returns_the_panel_with_the_next_item_already_leased(rita, reviewer, project, items):
    rita.get(review_url(project))
    lease = lease_of(project, reviewer)
    response = rita.post(submit_url(lease), GOOD_POST, headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="review-panel"')
    assert "<html" not in html and "<nav" not in html
    assert "How do I reset my password? (1)" in html
    assert "1</strong> done" in html
    nxt = lease_of(project, reviewer)
    assert nxt.item_id == items[1].pk and submit_url(nxt) in html
    assert Review.objects.filter(reviewer=reviewer, item=items[0]).exists()


def test_skip_hides_the_item_and_shows_the_next(rita, reviewer, project, items):
    rita.get(review_url(project))
    lease = lease_of(project, reviewer)
    url = reverse("review-skip", args=[project.slug, lease.pk])
    response = rita.post(url, {"answers.correct": "true"}, headers=HTMX)
    assert response.status_code == 200
    assert "Skipped" in response.content.decode()
    assert Skip.objects.filter(reviewer=reviewer, item=items[0]).exists()
    assert not Review.objects.exists()
    assert lease_of(project, reviewer).item_id == items[1].pk


def test_validation_errors_are_shown_next_to_the_question_and_answers_kept(rita, reviewer, project, items):
    rita.get(review_url(project))
    lease = lease_of(project, reviewer)
    response = rita.post(
        submit_url(lease), {"answers.correct": "false", "answers.issue": "wrong", "comment": "keep me"}, headers=HTMX
    )
    html = response.content.decode()
    assert response.status_code == 422
    assert "This question is required." in fieldset(html, "helpfulness")
    assert "has-error" in fieldset(html, "helpfulness")
    assert "required" not in fieldset(html, "correct").split("</legend>", 1)[1]
    assert re.search(r'value="false"[^>]*checked', fieldset(html, "correct"))
    assert re.search(r'value="wrong"[^>]*checked', fieldset(html, "issue"))
    assert "keep me</textarea>" in html
    assert not Review.objects.exists()
    assert lease_of(project, reviewer).pk == lease.pk  # still the same item


def test_lease_lost_says_so_and_moves_on(rita, reviewer, reviewer2, project, items):
    rita.get(review_url(project))
    lease = lease_of(project, reviewer)
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert queue_next(project=project, user=reviewer2).pk == lease.pk
    response = rita.post(submit_url(lease), GOOD_POST, headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 409
    assert "Your lease expired and another reviewer has this item now." in html
    assert "Your answers were not saved." in html
    assert not Review.objects.filter(reviewer=reviewer).exists()
    assert lease_of(project, reviewer).item_id == items[1].pk


def test_a_form_of_an_earlier_lease_is_refused_and_says_why(rita, reviewer, reviewer2, project, items):
    page = rita.get(review_url(project)).content.decode()
    lease = lease_of(project, reviewer)
    assert f'name="token" value="{lease.lease_token}"' in page
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    slot_skip(REVIEW_SLOTS, slot=queue_next(project=project, user=reviewer2), user=reviewer2)
    assert queue_next(project=project, user=reviewer).pk == lease.pk  # leased again, with a new token
    response = rita.post(submit_url(lease), {**GOOD_POST, "token": lease.lease_token}, headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 409
    assert "This page showed the item under an earlier lease" in html and "Your answers were not saved." in html
    assert not Review.objects.exists()
    fresh = lease_of(project, reviewer)
    assert f'name="token" value="{fresh.lease_token}"' in html
    response = rita.post(submit_url(fresh), {**GOOD_POST, "token": fresh.lease_token}, headers=HTMX)
    assert response.status_code == 200 and Review.objects.filter(reviewer=reviewer).count() == 1


def test_lease_lost_without_htmx_is_a_message_after_redirect(rita, reviewer, reviewer2, project, items):
    rita.get(review_url(project))
    lease = lease_of(project, reviewer)
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    queue_next(project=project, user=reviewer2)
    response = rita.post(submit_url(lease), GOOD_POST, follow=True)
    assert "another reviewer has this item" in response.content.decode()


def test_removed_item_is_explained(rita, reviewer, project, items):
    rita.get(review_url(project))
    lease = lease_of(project, reviewer)
    Item.objects.filter(pk=lease.item_id).delete()
    response = rita.post(submit_url(lease), GOOD_POST, headers=HTMX)
    assert response.status_code == 409
    assert "This item was removed from the project." in response.content.decode()
    assert not Review.objects.exists()


def test_double_submit_says_already_submitted(rita, reviewer, project, items):
    rita.get(review_url(project))
    lease = lease_of(project, reviewer)
    rita.post(submit_url(lease), GOOD_POST, headers=HTMX)
    response = rita.post(submit_url(lease), GOOD_POST, headers=HTMX)
    assert response.status_code == 409
    assert "You already submitted this item." in response.content.decode()
    assert Review.objects.filter(reviewer=reviewer).count() == 1


def test_empty_queue_shows_all_done(rita, reviewer, project, items):
    for _ in items:
        lease = queue_next(project=project, user=reviewer)
        review_submit(assignment_id=lease.pk, user=reviewer, answers={"correct": True, "helpfulness": 5})
    html = rita.get(review_url(project)).content.decode()
    assert "All done" in html and "data-review-form" not in html
    assert "3</strong> done" in html


def test_heartbeat_renews_the_lease_then_stops_once_lost(rita, reviewer, reviewer2, project, items):
    rita.get(review_url(project))
    lease = lease_of(project, reviewer)
    url = reverse("review-renew", args=[project.slug, lease.pk])
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() + timedelta(seconds=5))
    response = rita.post(url, headers=HTMX)
    assert response.status_code == 204
    assert lease_of(project, reviewer).expires_at > timezone.now() + timedelta(seconds=500)
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    queue_next(project=project, user=reviewer2)
    lost = rita.post(url, headers=HTMX)
    assert lost.status_code == 286  # htmx stops polling
    assert "another reviewer has this item" in lost.content.decode()


def test_every_question_kind_round_trips(rita, reviewer, project):
    question_create(
        project=project,
        key="topics",
        title="Topics",
        kind="multi_choice",
        required=False,
        options={"choices": ["billing", "account", "other"]},
    )
    question_create(project=project, key="ideal", title="Ideal answer", kind="expected_response", required=False)
    question_create(project=project, key="facts", title="Key facts", kind="expected_facts", required=False)
    question_create(project=project, key="notes", title="Notes", kind="text", required=False)
    question_create(
        project=project,
        key="ctx",
        title="Chunk relevance",
        kind="context_relevance",
        options={"min": 0, "max": 2, "min_label": "off topic", "max_label": "relevant"},
    )
    make_items(project, 1)
    html = rita.get(review_url(project)).content.decode()
    ideal = fieldset(html, "ideal")
    assert "></textarea>" in ideal  # an expectation starts empty: only what a person writes or takes over
    assert 'data-value="Open **Settings** and choose *Reset password*. (0)" data-from-model' in ideal
    assert 'name="answers.ctx[0]"' in html and 'name="answers.ctx[1]"' in html
    assert "0 = off topic … 2 = relevant" in html
    lease = lease_of(project, reviewer)
    post = {
        **GOOD_POST,
        "answers.topics": ["other", "account"],
        "answers.ideal": "Go to Settings.",
        "answers.facts": "Reset is in Settings\n\nIt takes a minute\n",
        "answers.notes": "short",
        "answers.ctx[0]": "2",
        "answers.ctx[1]": "0",
    }
    assert rita.post(submit_url(lease), post, headers=HTMX).status_code == 200
    assert Review.objects.get().answers == {
        "correct": True,
        "helpfulness": 4,
        "issue": "none",
        "topics": ["account", "other"],
        "ideal": "Go to Settings.",
        "facts": ["Reset is in Settings", "It takes a minute"],
        "notes": "short",
        "ctx": [2, 0],
    }


def test_a_missing_chunk_rating_is_reported(rita, reviewer, project):
    question_create(project=project, key="ctx", title="Chunk relevance", kind="context_relevance")
    make_items(project, 1)
    rita.get(review_url(project))
    response = rita.post(submit_url(lease_of(project, reviewer)), {**GOOD_POST, "answers.ctx[0]": "1"}, headers=HTMX)
    assert response.status_code == 422
    assert "Rate every retrieved chunk." in fieldset(response.content.decode(), "ctx")
    assert re.search(r'name="answers.ctx\[0\]" value="1"[^>]*checked', response.content.decode())


# --- my reviews -----------------------------------------------------------------------------


def submit_all(project, user, count: int) -> list[Review]:
    reviews = []
    for _ in range(count):
        lease = queue_next(project=project, user=user)
        reviews.append(review_submit(assignment_id=lease.pk, user=user, answers={"correct": True, "helpfulness": 4}))
    return reviews


def test_my_reviews_is_paginated_in_a_fixed_number_of_queries(
    rita, reviewer, reviewer2, project, django_assert_num_queries
):
    make_items(project, 31)
    submit_all(project, reviewer, 30)
    submit_all(project, reviewer2, 1)
    with django_assert_num_queries(4):  # session, user, count, page
        first = rita.get(reverse("review-list"))
    html = first.content.decode()
    assert html.count('class="cell-item"') == 25
    assert "Page 1 of 2 · 30 reviews" in html
    second = rita.get(reverse("review-list") + "?page=2")
    assert second.content.decode().count('class="cell-item"') == 5


def test_my_reviews_filters_by_project_and_hides_others_projects(rita, reviewer, project, outsider):
    make_items(project, 2)
    submit_all(project, reviewer, 2)
    other = ProjectFactory(slug="secret")
    assert rita.get(reverse("review-list") + "?project=secret").status_code == 404
    html = rita.get(reverse("review-list") + f"?project={project.slug}").content.decode()
    assert html.count('class="cell-item"') == 2 and other.name not in html


def test_edit_keeps_history(rita, reviewer, project):
    make_items(project, 1)
    (review,) = submit_all(project, reviewer, 1)
    url = reverse("review-detail", args=[review.pk])
    page = rita.get(url).content.decode()
    assert re.search(r'value="4"[^>]*checked', fieldset(page, "helpfulness"))
    assert "Not edited since it was submitted." in page
    response = rita.post(url, {"answers.correct": "false", "answers.helpfulness": "2", "comment": "on reflection"})
    assert response.status_code == 302
    review.refresh_from_db()
    assert review.answers == {"correct": False, "helpfulness": 2} and review.comment == "on reflection"
    revision = ReviewRevision.objects.get(review=review)
    assert revision.answers == {"correct": True, "helpfulness": 4} and revision.edited_by == reviewer
    html = rita.get(url).content.decode()
    assert "replaced" in html and "Your changes were saved." in html


def test_htmx_edit_returns_the_panel_and_shows_errors(rita, reviewer, project):
    make_items(project, 1)
    (review,) = submit_all(project, reviewer, 1)
    url = reverse("review-detail", args=[review.pk])
    ok = rita.post(url, {"answers.correct": "true", "answers.helpfulness": "5"}, headers=HTMX)
    assert ok.status_code == 200 and ok.content.decode().lstrip().startswith('<section id="review-edit-panel"')
    assert "Your changes were saved." in ok.content.decode()
    bad = rita.post(url, {"answers.correct": "true"}, headers=HTMX)
    assert bad.status_code == 422
    assert "This question is required." in fieldset(bad.content.decode(), "helpfulness")
    review.refresh_from_db()
    assert review.answers == {"correct": True, "helpfulness": 5}
    assert ReviewRevision.objects.filter(review=review).count() == 1


def test_others_cannot_open_or_edit_a_review(client, reviewer, reviewer2, curator, outsider, project):
    make_items(project, 1)
    (review,) = submit_all(project, reviewer, 1)
    url = reverse("review-detail", args=[review.pk])
    for user, status in ((reviewer2, 403), (curator, 403), (outsider, 404)):
        client.force_login(user)
        assert client.get(url).status_code == status
        assert client.post(url, {"answers.correct": "false", "answers.helpfulness": "1"}).status_code == status
    review.refresh_from_db()
    assert review.answers == {"correct": True, "helpfulness": 4}


# --- API tokens -----------------------------------------------------------------------------


def test_token_is_shown_once_and_only_its_hash_is_stored(rita, reviewer, project):
    response = rita.post(reverse("token-list"), {"name": "ci", "scopes": ["review"], "project": "support"})
    html = response.content.decode()
    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]
    secret = re.search(r'value="(rd_[0-9a-f]+_[-\w]+)"', html).group(1)
    token = ApiToken.objects.get(user=reviewer)
    assert token.scopes == ["review"] and token.project == project
    _, prefix, raw = secret.split("_", 2)
    assert token.prefix == prefix and token.secret_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in str(ApiToken.objects.filter(pk=token.pk).values().get())
    again = rita.get(reverse("token-list")).content.decode()
    assert "ci" in again and f"rd_{prefix}_…" in again and raw not in again


def test_token_form_errors(rita, reviewer):
    response = rita.post(reverse("token-list"), {"name": "", "scopes": []})
    assert response.status_code == 422
    assert "This field is required." in response.content.decode()
    assert not ApiToken.objects.exists()


def test_token_for_a_project_the_user_is_not_in_is_refused(rita, reviewer):
    ProjectFactory(slug="secret")
    response = rita.post(reverse("token-list"), {"name": "x", "scopes": ["review"], "project": "secret"})
    assert response.status_code == 422
    assert not ApiToken.objects.exists()


def test_revoke_own_token(rita, reviewer):
    token, _ = api_token_create(user=reviewer, name="old", scopes=["review"])
    response = rita.post(reverse("token-revoke", args=[token.pk]), follow=True)
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert "was revoked" in response.content.decode()


def test_another_users_token_cannot_be_revoked(rita, reviewer2):
    token, _ = api_token_create(user=reviewer2, name="robs", scopes=["review"])
    assert rita.post(reverse("token-revoke", args=[token.pk])).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


# --- CSRF -----------------------------------------------------------------------------------


def test_posts_need_the_csrf_token(reviewer, project, items):
    client = Client(enforce_csrf_checks=True)
    client.force_login(reviewer)
    client.get(review_url(project))
    lease = lease_of(project, reviewer)
    assert client.post(submit_url(lease), GOOD_POST, headers=HTMX).status_code == 403
    assert client.post(reverse("token-list"), {"name": "x", "scopes": ["review"]}).status_code == 403
    assert not Review.objects.exists() and not ApiToken.objects.exists()
    token = client.cookies["csrftoken"].value
    response = client.post(submit_url(lease), GOOD_POST, headers={**HTMX, "X-CSRFToken": token})
    assert response.status_code == 200
    assert Review.objects.filter(reviewer=reviewer).count() == 1
