"""The adjudication pages through the test client: access, side-by-side reviews, deciding, conflicts."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from reviewapp.models import Adjudication, CuratedLabel, Item
from reviewapp.services.curation import adjudication_decide
from reviewapp.services.projects import project_set_reviews_per_item, question_create
from reviewapp.services.queue import queue_next
from reviewapp.services.reviews import review_submit
from tests.factories import make_items, member


def session(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def htmx(user: Any) -> Client:
    client = session(user)
    client.defaults["HTTP_HX_REQUEST"] = "true"
    return client


@pytest.fixture
def disputed(project, reviewer, reviewer2):  # type: ignore[no-untyped-def]
    """Two disputed items (ext-0, ext-1) with two reviews each."""
    project = project_set_reviews_per_item(project=project, reviews_per_item=2, wait=True)
    question_create(project=project, key="ideal", title="Expected response", kind="expected_response", required=False)
    make_items(project, 2)
    answers = {
        "rita": {"correct": True, "helpfulness": 4, "ideal": "Open Settings."},
        "rob": {"correct": False, "helpfulness": 1, "ideal": "Use the <b>reset</b> link."},
    }
    for user in (reviewer, reviewer2):
        for _ in range(2):
            lease = queue_next(project=project, user=user)
            assert lease is not None
            review_submit(
                assignment_id=lease.pk,
                user=user,
                answers=answers[user.username],
                comment=f"{user.username} says so",
                time_on_task_ms=65_000,
            )
    return project


def url(project: Any, external_id: str | None = None) -> str:
    if external_id is None:
        return f"/projects/{project.slug}/adjudicate/"
    return f"/projects/{project.slug}/adjudicate/{Item.objects.get(external_id=external_id).pk}/"


def test_the_queue_page_lists_disagreements(disputed, curator):
    response = session(curator).get(url(disputed))
    assert response.status_code == 200
    html = response.content.decode()
    assert "ext-0" in html and "ext-1" in html
    assert "Is the answer correct?" in html and "tie: 1 x pass, 1 x fail" in html
    assert 'Open <span class="count">2</span>' in html


def test_curators_see_the_link_and_reviewers_get_403(disputed, curator, reviewer, outsider):
    assert "data-adjudicate-link" in session(curator).get("/").content.decode()
    assert "data-adjudicate-link" not in session(reviewer).get("/").content.decode()
    for path in (url(disputed), url(disputed, "ext-0")):
        assert session(reviewer).get(path).status_code == 403
        assert session(outsider).get(path).status_code == 404
        assert Client().get(path).status_code == 302  # to the login page
    response = session(reviewer).post(url(disputed, "ext-0"), {"version": "1", "answers.correct": "true"})
    assert response.status_code == 403
    assert not CuratedLabel.objects.exists()


def test_the_deciding_page_shows_every_review_and_marks_disagreements(disputed, curator):
    response = session(curator).get(url(disputed, "ext-0"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-reviewer="rita"' in html and 'data-reviewer="rob"' in html
    assert "1 min 5 s on task" in html
    assert "rita says so" in html and "rob says so" in html
    assert '<tr class="is-disagree" data-row="correct">' in html
    assert '<tr class="is-disagree" data-row="helpfulness">' in html
    assert "spread 3 &gt; 1 (1 to 4)" in html
    assert "Use the &lt;b&gt;reset&lt;/b&gt; link." in html  # escaped, never markup
    assert 'data-fill="decide-ideal"' in html  # pick one reviewer's expected response
    # Prefilled where there is a suggestion: the median rating (lower middle of 1 and 4).
    assert 'name="answers.helpfulness" value="1" data-key="1" checked' in html
    assert 'name="answers.correct" value="true" data-key="y" checked' not in html


def test_deciding_writes_the_label_and_shows_the_next_item(disputed, curator):
    adjudication = Adjudication.objects.get(item__external_id="ext-0")
    response = htmx(curator).post(
        url(disputed, "ext-0"),
        {
            "version": str(adjudication.version),
            "answers.correct": "false",
            "answers.helpfulness": "2",
            "answers.ideal": "Use the reset link.",
            "comment": "Rob found the bug.",
        },
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Saved your decision" in html
    assert response["HX-Push-Url"] == url(disputed, "ext-1")
    assert 'id="adjudication-panel"' in html and "<html" not in html  # the fragment only
    label = CuratedLabel.objects.get(item__external_id="ext-0")
    assert label.method == "adjudicated" and label.decided_by == curator
    assert label.answers == {"correct": False, "helpfulness": 2, "ideal": "Use the reset link."}
    assert label.expected_response == "Use the reset link." and label.rationale == "Rob found the bug."


def test_a_plain_form_post_redirects_to_the_next_item(disputed, curator):
    adjudication = Adjudication.objects.get(item__external_id="ext-1")
    response = session(curator).post(
        url(disputed, "ext-1"),
        {"version": str(adjudication.version), "answers.correct": "true", "answers.helpfulness": "4"},
    )
    assert response.status_code == 302 and response["Location"] == url(disputed, "ext-0")
    assert CuratedLabel.objects.get(item__external_id="ext-1").answers == {"correct": True, "helpfulness": 4}


def test_missing_answers_come_back_in_place(disputed, curator):
    adjudication = Adjudication.objects.get(item__external_id="ext-0")
    response = htmx(curator).post(
        url(disputed, "ext-0"), {"version": str(adjudication.version), "answers.helpfulness": "3"}
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "This question is required." in html
    assert 'name="answers.helpfulness" value="3" data-key="3" checked' in html
    assert not CuratedLabel.objects.exists()


def test_a_stale_decision_is_409_and_keeps_the_curators_answers(disputed, curator):
    other = member(disputed, "curator", username="carl")
    adjudication = Adjudication.objects.get(item__external_id="ext-0")
    loaded = adjudication.version
    adjudication_decide(
        item=adjudication.item, user=other, expected_version=loaded, answers={"correct": True, "helpfulness": 4}
    )
    response = htmx(curator).post(
        url(disputed, "ext-0"),
        {"version": str(loaded), "answers.correct": "false", "answers.helpfulness": "2", "comment": "mine"},
    )
    assert response.status_code == 409
    html = response.content.decode()
    assert "carl already decided this item" in html
    assert 'name="answers.helpfulness" value="2" data-key="2" checked' in html and ">mine</textarea>" in html
    assert f'name="version" value="{loaded + 1}"' in html  # saving again now replaces carl's decision
    assert CuratedLabel.objects.get().decided_by == other


def test_the_empty_queue(project, curator):
    response = session(curator).get(url(project))
    assert response.status_code == 200 and "No disagreements" in response.content.decode()


def test_reviews_of_different_question_versions_are_shown_with_what_each_was_asked(
    project, reviewer, reviewer2, curator
):
    project = project_set_reviews_per_item(project=project, reviews_per_item=2, wait=True)
    make_items(project, 1)
    first = queue_next(project=project, user=reviewer)
    review_submit(assignment_id=first.pk, user=reviewer, answers={"correct": True, "helpfulness": 4})
    question_create(project=project, key="notes", title="Anything else?", kind="text", required=False)
    second = queue_next(project=project, user=reviewer2)
    review_submit(assignment_id=second.pk, user=reviewer2, answers={"correct": True, "helpfulness": 4, "notes": "fine"})
    assert Adjudication.objects.get().reason == "mixed_versions"
    html = session(curator).get(url(project, "ext-0")).content.decode()
    assert "answered different versions of the questions" in html
    assert "question sets v1, v2" in html
    assert '<tr class="is-disagree" data-row="notes">' in html
    assert "not asked" in html
