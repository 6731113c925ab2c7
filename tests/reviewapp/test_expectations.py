"""Issue 10 §1 and §6 at the interfaces: an expected response never repeats the answer it fails (review
submit, edit, adjudication; REST and pages), existing such expectations are repaired, and a curator
does not settle their own disagreement unless the project allows self-adjudication."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from reviewapp.models import Adjudication, AuditEvent, CuratedLabel, Item, Review, ReviewRevision
from reviewapp.services.curation import adjudication_decide
from reviewapp.services.projects import project_set_reviews_per_item, project_set_self_adjudication, question_create
from reviewapp.services.queue import queue_next
from reviewapp.services.reviews import review_submit
from reviewapp.services.tokens import api_token_create
from tests.factories import make_items, member

pytestmark = pytest.mark.django_db

MESSAGE = "the expected response repeats the answer you failed: correct it or leave it empty"
REVIEWS = "/api/v1/projects/support/reviews/"
QUEUE = "/api/v1/projects/support/adjudications/"
RESPONSE_0 = "Open **Settings** and choose *Reset password*. (0)"


def bearer(user: Any, *scopes: str) -> Client:
    _, raw = api_token_create(user=user, name="test", scopes=list(scopes))
    return Client(headers={"authorization": f"Bearer {raw}"})


def session(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def spaced(text: str) -> str:
    """The same text with different spacing: still the same answer."""
    return "  " + text.replace(" ", "\n   ") + "\n"


@pytest.fixture
def ideal(project):  # type: ignore[no-untyped-def]
    question_create(project=project, key="ideal", title="Ideal answer", kind="expected_response", required=False)
    make_items(project, 2)
    return project


def lease(project: Any, user: Any) -> Any:
    slot = queue_next(project=project, user=user)
    assert slot is not None
    return slot


# --- review submit and edit ----------------------------------------------------------------------


def test_rest_submit_refuses_a_failed_answer_as_its_own_expectation(ideal, reviewer):
    slot = lease(ideal, reviewer)
    client = bearer(reviewer, "review")
    answers = {"correct": False, "helpfulness": 2, "ideal": spaced(slot.item.response)}
    response = client.post(REVIEWS, {"assignment": slot.pk, "answers": answers}, "application/json")
    assert response.status_code == 400, response.content
    assert response.json()["errors"] == [{"index": None, "field": "answers.ideal", "message": MESSAGE}]
    assert not Review.objects.exists()
    # Left empty, the same verdict is fine; so is a correction.
    for expected in ("", "Use the reset link in Settings."):
        answers["ideal"] = expected
        ok = client.post(REVIEWS, {"assignment": slot.pk, "answers": answers}, "application/json")
        assert ok.status_code == 201, ok.content
        review = Review.objects.get()
        assert review.answers.get("ideal", "") == expected
        review.delete()
        slot.submitted_at = None
        slot.save(update_fields=["submitted_at"])


def test_a_passed_answer_may_be_accepted_as_the_expectation(ideal, reviewer):
    slot = lease(ideal, reviewer)
    answers = {"correct": True, "helpfulness": 5, "ideal": slot.item.response}
    response = bearer(reviewer, "review").post(REVIEWS, {"assignment": slot.pk, "answers": answers}, "application/json")
    assert response.status_code == 201
    assert Review.objects.get().answers["ideal"] == slot.item.response.strip()


def test_page_submit_shows_the_refusal_on_the_field(ideal, reviewer):
    slot = lease(ideal, reviewer)
    client = session(reviewer)
    client.get(reverse("review-page", args=[ideal.slug]))
    response = client.post(
        reverse("review-submit", args=[ideal.slug, slot.pk]),
        {"answers.correct": "false", "answers.helpfulness": "2", "answers.ideal": slot.item.response},
    )
    assert response.status_code == 422
    html = response.content.decode()
    start = html.index('data-key="ideal"')
    assert MESSAGE in html[start : html.index("</fieldset>", start)]
    assert not Review.objects.exists()


def test_an_untouched_expected_response_on_the_page_stores_nothing(ideal, reviewer):
    """The page no longer prefills the field, so a fail with the field left alone posts it empty."""
    client = session(reviewer)
    html = client.get(reverse("review-page", args=[ideal.slug])).content.decode()
    slot = lease(ideal, reviewer)
    assert f'data-value="{RESPONSE_0}"' in html and f">{RESPONSE_0}</textarea>" not in html
    response = client.post(
        reverse("review-submit", args=[ideal.slug, slot.pk]),
        {"answers.correct": "false", "answers.helpfulness": "2", "answers.ideal": ""},
    )
    assert response.status_code == 302
    assert Review.objects.get().answers == {"correct": False, "helpfulness": 2}


def test_rest_and_page_edits_refuse_it_too(ideal, reviewer):
    slot = lease(ideal, reviewer)
    review = review_submit(assignment_id=slot.pk, user=reviewer, answers={"correct": True, "helpfulness": 4})
    response = bearer(reviewer, "review").patch(
        f"/api/v1/reviews/{review.pk}/",
        {"answers": {"correct": False, "helpfulness": 2, "ideal": slot.item.response}},
        "application/json",
    )
    assert response.status_code == 400
    assert response.json()["errors"] == [{"index": None, "field": "answers.ideal", "message": MESSAGE}]
    page = session(reviewer).post(
        reverse("review-detail", args=[review.pk]),
        {"answers.correct": "false", "answers.helpfulness": "2", "answers.ideal": spaced(slot.item.response)},
    )
    assert page.status_code == 422 and MESSAGE in page.content.decode()
    review.refresh_from_db()
    assert review.answers == {"correct": True, "helpfulness": 4}
    assert not ReviewRevision.objects.exists()


# --- adjudication ------------------------------------------------------------------------------


@pytest.fixture
def disputed(ideal, reviewer, reviewer2):  # type: ignore[no-untyped-def]
    """ext-0 (and ext-1) disputed by rita (pass) and rob (fail)."""
    project = project_set_reviews_per_item(project=ideal, reviews_per_item=2, wait=True)
    for user, verdict in ((reviewer, True), (reviewer2, False)):
        for _ in range(2):
            slot = lease(project, user)
            review_submit(assignment_id=slot.pk, user=user, answers={"correct": verdict, "helpfulness": 3})
    return project


def test_rest_adjudication_refuses_it_on_the_field_given(disputed, curator):
    target = Item.objects.get(external_id="ext-0")
    version = Adjudication.objects.get(item=target).version
    client = bearer(curator, "curate")
    top_level = client.post(
        f"{QUEUE}{target.pk}/",
        {"version": version, "answers": {"correct": False, "helpfulness": 2}, "expected_response": target.response},
        "application/json",
    )
    assert top_level.status_code == 400
    assert top_level.json()["errors"] == [{"index": None, "field": "expected_response", "message": MESSAGE}]
    in_answers = client.post(
        f"{QUEUE}{target.pk}/",
        {"version": version, "answers": {"correct": False, "helpfulness": 2, "ideal": spaced(target.response)}},
        "application/json",
    )
    assert in_answers.status_code == 400
    assert in_answers.json()["errors"] == [{"index": None, "field": "answers.ideal", "message": MESSAGE}]
    assert not CuratedLabel.objects.exists()
    ok = client.post(
        f"{QUEUE}{target.pk}/",
        {"version": version, "answers": {"correct": False, "helpfulness": 2}},
        "application/json",
    )
    assert ok.status_code == 200 and ok.json()["expected_response"] == ""


def test_rest_adjudication_refuses_it_without_an_expected_response_question(project, reviewer, reviewer2, curator):
    project = project_set_reviews_per_item(project=project, reviews_per_item=2, wait=True)
    make_items(project, 1)
    for user, verdict in ((reviewer, True), (reviewer2, False)):
        review_submit(assignment_id=lease(project, user).pk, user=user, answers={"correct": verdict, "helpfulness": 3})
    target = Item.objects.get()
    response = bearer(curator, "curate").post(
        f"{QUEUE}{target.pk}/",
        {
            "version": Adjudication.objects.get().version,
            "answers": {"correct": False, "helpfulness": 2},
            "expected_response": target.response,
        },
        "application/json",
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "expected_response"


def test_page_adjudication_shows_the_refusal(disputed, curator):
    target = Item.objects.get(external_id="ext-0")
    adjudication = Adjudication.objects.get(item=target)
    response = session(curator).post(
        f"/projects/{disputed.slug}/adjudicate/{target.pk}/",
        {
            "version": str(adjudication.version),
            "answers.correct": "false",
            "answers.helpfulness": "2",
            "answers.ideal": target.response,
        },
    )
    assert response.status_code == 422 and MESSAGE in response.content.decode()
    assert not CuratedLabel.objects.exists()


# --- self-adjudication ---------------------------------------------------------------------------


@pytest.fixture
def own(ideal, reviewer, curator):  # type: ignore[no-untyped-def]
    """ext-0 and ext-1 disputed between rita and the curator cora herself."""
    project = project_set_reviews_per_item(project=ideal, reviews_per_item=2, wait=True)
    for user, verdict in ((reviewer, True), (curator, False)):
        for _ in range(2):
            review_submit(
                assignment_id=lease(project, user).pk, user=user, answers={"correct": verdict, "helpfulness": 3}
            )
    return project


def decide_rest(user: Any, target: Item) -> Any:
    return bearer(user, "curate").post(
        f"{QUEUE}{target.pk}/",
        {"version": Adjudication.objects.get(item=target).version, "answers": {"correct": False, "helpfulness": 2}},
        "application/json",
    )


def test_a_curator_cannot_decide_an_item_they_reviewed(own, curator):
    target = Item.objects.get(external_id="ext-0")
    response = decide_rest(curator, target)
    assert response.status_code == 403
    assert "You reviewed this item, so another curator decides it" in response.json()["detail"]
    page = session(curator).post(
        f"/projects/{own.slug}/adjudicate/{target.pk}/",
        {
            "version": str(Adjudication.objects.get(item=target).version),
            "answers.correct": "false",
            "answers.helpfulness": "2",
        },
    )
    assert page.status_code == 403 and "another curator decides it" in page.content.decode()
    swapped = session(curator).post(
        f"/projects/{own.slug}/adjudicate/{target.pk}/",
        {"version": str(Adjudication.objects.get(item=target).version), "answers.correct": "false"},
        headers={"HX-Request": "true"},
    )
    assert swapped.status_code == 422 and "another curator decides it" in swapped.content.decode()
    assert not CuratedLabel.objects.exists()
    # The queue says so and does not start her on those items; the deciding page disables saving.
    listed = session(curator).get(QUEUE).json()["results"]
    assert [r["decidable_by_you"] for r in listed] == [False, False]
    html = session(curator).get(f"/projects/{own.slug}/adjudicate/").content.decode()
    assert html.count("not decidable by you") == 2 and "Start with the oldest" not in html
    detail = session(curator).get(f"/projects/{own.slug}/adjudicate/{target.pk}/").content.decode()
    assert "data-submit disabled" in detail
    # Another curator decides it, unmarked.
    other = member(own, "curator", username="carl")
    assert [r["decidable_by_you"] for r in session(other).get(QUEUE).json()["results"]] == [True, True]
    assert decide_rest(other, target).status_code == 200
    label = CuratedLabel.objects.get(item=target)
    assert label.decided_by == other and label.self_adjudicated is False


def test_with_self_adjudication_on_the_decision_is_marked(own, curator):
    project_set_self_adjudication(project=own, allowed=True, actor=curator)
    target = Item.objects.get(external_id="ext-0")
    assert [r["decidable_by_you"] for r in session(curator).get(QUEUE).json()["results"]] == [True, True]
    response = decide_rest(curator, target)
    assert response.status_code == 200, response.content
    assert response.json()["self_adjudicated"] is True
    label = CuratedLabel.objects.get(item=target)
    assert label.self_adjudicated and label.decided_by == curator
    event = AuditEvent.objects.get(action="adjudication.decide", target_id=str(label.pk))
    assert event.data["self_adjudicated"] is True
    assert AuditEvent.objects.filter(action="project.self_adjudication", data={"from": False, "to": True}).exists()
    assert session(curator).get("/api/v1/projects/support/").json()["self_adjudication"] is True


def test_only_project_admins_switch_self_adjudication(own, curator):
    url = f"/projects/{own.slug}/adjudicate/settings/"
    assert session(curator).post(url, {"self_adjudication": "on"}).status_code == 403
    assert "data-self-adjudication" not in session(curator).get(f"/projects/{own.slug}/adjudicate/").content.decode()
    admin = member(own, "admin", username="ada")
    assert "data-self-adjudication" in session(admin).get(f"/projects/{own.slug}/adjudicate/").content.decode()
    assert session(admin).post(url, {"self_adjudication": "on"}).status_code == 302
    own.refresh_from_db()
    assert own.self_adjudication
    assert AuditEvent.objects.filter(action="project.self_adjudication", actor=admin).exists()
    assert [r["decidable_by_you"] for r in session(curator).get(QUEUE).json()["results"]] == [True, True]
    session(admin).post(url, {})
    own.refresh_from_db()
    assert not own.self_adjudication


def test_self_adjudication_is_off_by_default_in_the_service(own, curator):
    from reviewapp.errors import NotAllowed

    target = Item.objects.get(external_id="ext-1")
    with pytest.raises(NotAllowed):
        adjudication_decide(
            item=target,
            user=curator,
            expected_version=Adjudication.objects.get(item=target).version,
            answers={"correct": True, "helpfulness": 3},
        )


# --- repair of stored expectations ---------------------------------------------------------------


def test_repair_clears_reviews_and_labels_and_recomputes_curation(disputed, reviewer, reviewer2, curator):
    """Bad rows written directly (as the prefilled page stored them), then ``migrate`` repairs them."""
    ext0, ext1 = Item.objects.get(external_id="ext-0"), Item.objects.get(external_id="ext-1")
    # ext-0: rita passed it and accepted the answer (allowed); rob failed it with the answer "expected".
    passing = Review.objects.get(item=ext0, reviewer=reviewer)
    passing.answers = {"correct": True, "helpfulness": 3, "ideal": ext0.response}
    passing.save(update_fields=["answers"])
    failing = Review.objects.get(item=ext0, reviewer=reviewer2)
    failing.answers = {"correct": False, "helpfulness": 3, "ideal": ext0.response}
    failing.save(update_fields=["answers"])
    # ...then a curator's Fail decision kept the model's answer as the expectation.
    adjudication_decide(
        item=ext0,
        user=curator,
        expected_version=Adjudication.objects.get(item=ext0).version,
        answers={"correct": False, "helpfulness": 2},
    )
    CuratedLabel.objects.filter(item=ext0).update(
        expected_response=ext0.response, answers={"correct": False, "helpfulness": 2, "ideal": ext0.response}
    )
    # ext-1: both reviewers fail it and both "expect" the model's answer, so consensus copied it.
    for review in Review.objects.filter(item=ext1):
        review.answers = {"correct": False, "helpfulness": 2, "ideal": ext1.response}
        review.save(update_fields=["answers"])
    bad_reviews = [failing.pk, *Review.objects.filter(item=ext1).values_list("id", flat=True)]
    Adjudication.objects.filter(item=ext1).delete()
    from reviewapp.services.curation import curation_item_update

    curation_item_update(item=ext1)
    consensus = CuratedLabel.objects.get(item=ext1)
    assert consensus.method == "consensus" and consensus.expected_response == ext1.response
    decided_version = Adjudication.objects.get(item=ext0).version

    call_command("migrate", verbosity=0)

    for review in Review.objects.filter(item=ext1):
        assert review.answers == {"correct": False, "helpfulness": 2}
    failing.refresh_from_db()
    assert failing.answers == {"correct": False, "helpfulness": 3}
    passing.refresh_from_db()
    assert passing.answers["ideal"] == ext0.response  # a pass may accept the answer
    label0 = CuratedLabel.objects.get(item=ext0)
    assert label0.expected_response == "" and "ideal" not in label0.answers
    assert label0.method == "adjudicated" and label0.revisions.count() == 1
    assert label0.reviews_changed_at is None  # the repair is not a reviewer's change: no reopening
    assert Adjudication.objects.get(item=ext0).version == decided_version
    label1 = CuratedLabel.objects.get(item=ext1)
    assert label1.method == "consensus" and label1.expected_response == "" and "ideal" not in label1.answers
    cleared = AuditEvent.objects.filter(action="review.expectation_cleared")
    assert sorted(int(e.target_id) for e in cleared) == sorted(bad_reviews)
    assert cleared.get(target_id=str(failing.pk)).data["cleared"] == {"ideal": ext0.response}
    assert AuditEvent.objects.filter(action="curation.expectation_cleared", target_id=str(label0.pk)).exists()
    assert AuditEvent.objects.filter(action="curation.consensus_update", target_id=str(label1.pk)).exists()
    # Idempotent: running it again changes and records nothing.
    events = AuditEvent.objects.count()
    call_command("expectations_repair")
    assert AuditEvent.objects.count() == events


# --- the demo ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_demo_stores_no_failed_answer_as_expectation_and_admin_can_adjudicate():
    from io import StringIO

    from django.contrib.auth import get_user_model

    from reviewapp.demo.project import PROJECT_SLUG
    from reviewapp.models import Project
    from reviewapp.selectors.curation import adjudication_list, adjudication_next

    call_command("load_demo", stdout=StringIO(), stderr=StringIO())
    project = Project.objects.get(slug=PROJECT_SLUG)
    reviews = Review.objects.filter(project=project).select_related("item")
    assert reviews.filter(answers__correct=False).exists()
    for review in reviews:
        if review.answers.get("correct") is False:
            assert " ".join(review.answers.get("expected_response", "").split()) != " ".join(
                review.item.response.split()
            )
    assert not project.self_adjudication  # the safe default, also in the demo
    users = {u.username: u for u in get_user_model().objects.filter(username__in=["curator", "admin"])}
    assert adjudication_list(project=project).count() == 3
    # The demo's curator reviewed the three disagreements; the admin (also a curator) decides them.
    assert adjudication_next(project=project, user=users["curator"]) is None
    first = adjudication_next(project=project, user=users["admin"])
    assert first is not None
    response = session(users["admin"]).post(
        f"/projects/{project.slug}/adjudicate/{first.item_id}/",
        {
            "version": str(first.version),
            "answers.correct": "false",
            "answers.helpfulness": "2",
            "answers.issue": "incorrect",
            "answers.tone": "too terse",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert CuratedLabel.objects.get(item_id=first.item_id).decided_by == users["admin"]
