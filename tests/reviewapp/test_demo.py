"""The demo: its corpus and RAG outputs as data, and ``load_demo`` writing them through the services."""

from __future__ import annotations

import re
from collections import Counter
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from reviewapp.demo.corpus import chunk_get, chunks_all, chunks_by_ref, documents_all
from reviewapp.demo.items import CASES, MODEL_VERSIONS, items_build
from reviewapp.demo.project import DEMO_USERS, ISSUE_CHOICES, PROJECT_SLUG
from reviewapp.models import Assignment, AuditEvent, Item, Membership, Project, Question, Review
from reviewapp.services.ingest import items_validate
from reviewapp.services.queue import queue_next
from reviewapp.services.reviews import review_submit

EXPECTED_ROLES = {"reviewer": "reviewer", "curator": "curator", "engineer": "engineer", "admin": "admin"}


def load_demo(*args: str) -> str:
    out = StringIO()
    call_command("load_demo", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def db_snapshot() -> dict[str, object]:
    """Everything load_demo may write, down to timestamps and password hashes."""
    user_model = get_user_model()
    return {
        "projects": list(Project.objects.values_list("slug", "schema_version", "reviews_per_item", "guidelines")),
        "questions": list(Question.objects.order_by("id").values_list("id", "key", "kind", "options", "order")),
        "items": list(Item.objects.order_by("id").values_list("id", "external_id", "response", "updated_at")),
        "assignments": Assignment.objects.count(),
        "memberships": sorted(Membership.objects.values_list("user__username", "role")),
        "users": sorted(user_model.objects.values_list("username", "password", "is_staff", "is_superuser")),
        "audit": AuditEvent.objects.count(),
    }


# --- the data, without a database --------------------------------------------------------------


def test_corpus_is_a_small_help_centre_with_kb_uris():
    docs = documents_all()
    assert 12 <= len(docs) <= 15
    assert all(re.fullmatch(r"kb/[a-z-]+/[a-z0-9-]+\.md", doc.doc_uri) for doc in docs)
    topics = {doc.doc_uri.split("/")[1] for doc in docs}
    assert {"billing", "account", "sharing", "exports", "api", "offline", "data", "integrations"} <= topics
    for doc in docs:
        assert len([c for c in chunks_all() if c.doc_uri == doc.doc_uri]) >= 2, doc.doc_uri
    assert len(chunks_by_ref()) == len(chunks_all())  # anchors are unique per article


def test_chunks_split_on_sections_and_keep_code_blocks_whole():
    chunk = chunk_get("kb/api/authentication.md#making-a-request")
    assert chunk.content.startswith("API authentication — Making a request\n\n")
    assert chunk.body.count("```") == 2
    with pytest.raises(KeyError, match="no demo chunk"):
        chunk_get("kb/api/authentication.md#no-such-section")


def test_cases_cite_two_to_four_existing_chunks_and_answer_differently_per_version():
    assert len({case.key for case in CASES}) == len(CASES)
    for case in CASES:
        assert 2 <= len(case.context) <= 4, case.key
        assert len(set(case.context)) == len(case.context), case.key
        for ref in case.context:
            chunk_get(ref)
        assert case.v1.strip() and case.v2.strip() and case.v1 != case.v2, case.key
        assert set(case.intended_issue) <= set(ISSUE_CHOICES), case.key
        assert case.expected_facts, case.key


def test_version_two_is_visibly_better_but_not_perfect():
    v1_ok = sum(case.intended_issue[0] == "none" for case in CASES)
    v2_ok = sum(case.intended_issue[1] == "none" for case in CASES)
    assert v1_ok <= len(CASES) // 4
    assert v2_ok >= len(CASES) * 3 // 4
    assert v2_ok < len(CASES)  # a few subtle mistakes for reviewers to catch
    assert {issue for case in CASES for issue in case.intended_issue} == set(ISSUE_CHOICES)


def test_rows_are_valid_ingest_input_with_text_and_chat_requests():
    rows = items_build()
    assert rows == items_build()  # deterministic: same ids, latencies and traces every run
    parsed, errors = items_validate(rows)
    assert errors == [] and len(parsed) == len(rows) == 2 * len(CASES)
    assert 56 <= len(rows) <= 70
    chats = [row for row in rows if isinstance(row["request"], dict)]
    assert 8 <= len(chats) < len(rows)
    assert all(row["request"]["messages"][-1]["role"] == "user" for row in chats)
    responses = [row["response"] for row in rows]
    assert any("|---" in text and "```python" in text for text in responses)  # a table and a code block
    for row in rows:
        assert {"channel", "topic", "latency_ms"} <= row["metadata"].keys()
        assert row["trace_id"].startswith("tr-") and row["source"] == "demo"
        assert row["model_name"] == "support-assistant" and row["model_version"] in MODEL_VERSIONS


# --- load_demo -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_load_demo_creates_project_schema_items_and_users():
    out = load_demo()

    project = Project.objects.get(slug=PROJECT_SLUG)
    assert project.name == "Support assistant"
    assert project.reviews_per_item == 2
    assert "## Correct" in project.guidelines and "ungrounded" in project.guidelines

    questions = {q.key: q for q in project.questions.all()}
    assert sorted(q.kind for q in questions.values()) == sorted(Question.Kind.values)
    expectations = {k for k, q in questions.items() if q.assessment_type == Question.AssessmentType.EXPECTATION}
    assert expectations == {"expected_response", "expected_facts"}
    assert questions["correct"].kind == "pass_fail"
    assert questions["helpfulness"].options == {
        "min": 1,
        "max": 5,
        "min_label": "Useless or harmful",
        "max_label": "Fully resolves it",
    }
    assert questions["issue"].options["choices"] == ["none", "incorrect", "ungrounded", "incomplete", "unsafe"]
    assert questions["chunk_relevance"].options["min"] == 0 and questions["chunk_relevance"].options["max"] == 2
    optional = {k for k, q in questions.items() if not q.required}
    assert optional == {"notes", "expected_response", "expected_facts", "chunk_relevance"}

    items = Item.objects.filter(project=project)
    assert items.count() == 2 * len(CASES)
    assert Counter(items.values_list("model_version", flat=True)) == {"1": len(CASES), "2": len(CASES)}
    assert set(items.values_list("model_name", flat=True)) == {"support-assistant"}
    assert set(items.values_list("source", flat=True)) == {"demo"}
    uris = {doc.doc_uri for doc in documents_all()}
    for item in items:
        assert 2 <= len(item.retrieved_context) <= 4
        assert {chunk["doc_uri"] for chunk in item.retrieved_context} <= uris
    assert Assignment.objects.filter(project=project).count() == 2 * items.count()

    roles = dict(Membership.objects.filter(project=project).values_list("user__username", "role"))
    assert roles == EXPECTED_ROLES
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_staff and admin.is_superuser
    assert not get_user_model().objects.filter(username__in=["reviewer", "curator", "engineer"], is_staff=True)
    for user in DEMO_USERS:
        assert authenticate(username=user.username, password=user.password) is not None, user.username
        assert re.search(rf"^\s+{user.username}\s+/ {user.password}\s+{user.role}", out, re.M), out
    assert f"{2 * len(CASES)} items and 48 reviews added" in out


@pytest.mark.django_db
@pytest.mark.slow
def test_the_demo_comes_with_reviews_curated_labels_and_disagreements():
    """12 cases of each version reviewed twice through the real services; the engineer disagrees on 3."""
    from reviewapp.demo.reviews import DISAGREEING_CASES, REVIEWED_CASES
    from reviewapp.models import Adjudication, CuratedLabel

    load_demo()
    project = Project.objects.get(slug=PROJECT_SLUG)
    reviews = Review.objects.filter(project=project)
    assert Counter(reviews.values_list("reviewer__username", flat=True)) == {
        "curator": 2 * REVIEWED_CASES,
        "engineer": 2 * REVIEWED_CASES,
    }
    assert Item.objects.filter(project=project, review_count=2).count() == 2 * REVIEWED_CASES
    assert Adjudication.objects.filter(project=project, status="open").count() == DISAGREEING_CASES
    labels = CuratedLabel.objects.filter(project=project)
    assert labels.count() == 2 * REVIEWED_CASES - DISAGREEING_CASES
    # Answers follow the demo author's labels: v1 of the first case is wrong, v2 right.
    first = CASES[0]
    v1 = labels.get(item__external_id=f"demo-{first.key}-v1")
    assert v1.answers["correct"] is (first.intended_issue[0] == "none")
    assert v1.expected_facts == list(first.expected_facts)
    # The person trying the demo still has every other item to review.
    reviewer = get_user_model().objects.get(username="reviewer")
    slot = queue_next(project=project, user=reviewer)
    assert slot is not None and slot.item.review_count == 0


@pytest.mark.django_db
@pytest.mark.slow
def test_running_load_demo_twice_changes_nothing():
    load_demo()
    before = db_snapshot()
    out = load_demo()
    assert db_snapshot() == before
    assert "nothing changed" in out
    assert "reviewer  / reviewer" in out  # the logins are printed every time


@pytest.mark.django_db
@pytest.mark.slow
def test_load_demo_adds_back_only_what_is_missing_and_keeps_reviews():
    load_demo()
    project = Project.objects.get(slug=PROJECT_SLUG)
    reviewer = get_user_model().objects.get(username="reviewer")
    slot = queue_next(project=project, user=reviewer)
    assert slot is not None
    review_submit(
        assignment_id=slot.pk,
        user=reviewer,
        answers={"correct": False, "helpfulness": 2, "issue": "incorrect", "tone": ["clear"]},
    )
    Item.objects.filter(project=project, external_id="demo-slack-create-page-v2").delete()
    Membership.objects.filter(project=project, user__username="curator").delete()
    reviews = Review.objects.filter(project=project).count()

    out = load_demo()

    assert "1 memberships, 1 items and 0 reviews added" in out
    assert Item.objects.filter(project=project).count() == 2 * len(CASES)
    assert Membership.objects.get(project=project, user__username="curator").role == "curator"
    assert Review.objects.filter(project=project).count() == reviews
    assert Review.objects.filter(project=project, reviewer=reviewer).count() == 1


@pytest.mark.django_db
@pytest.mark.slow
def test_demo_item_takes_an_answer_to_every_question():
    load_demo()
    project = Project.objects.get(slug=PROJECT_SLUG)
    curator = get_user_model().objects.get(username="curator")
    slot = queue_next(project=project, user=curator)
    assert slot is not None
    n_chunks = len(slot.item.retrieved_context)
    review = review_submit(
        assignment_id=slot.pk,
        user=curator,
        answers={
            "correct": True,
            "helpfulness": 5,
            "issue": "none",
            "tone": ["clear", "friendly"],
            "notes": "Grounded in the refunds article.",
            "expected_response": "Yes, within 14 days of purchase.",
            "expected_facts": ["Annual plans are refundable within 14 days."],
            "chunk_relevance": [2] + [0] * (n_chunks - 1),
        },
    )
    assert set(review.answers) == {q.key for q in project.questions.all()}


@pytest.mark.django_db
@override_settings(DEBUG=False, TESTING=False)
def test_load_demo_refuses_without_debug_or_testing():
    with pytest.raises(CommandError, match=r"weak passwords.*--force"):
        load_demo()
    assert not Project.objects.filter(slug=PROJECT_SLUG).exists()
    assert not get_user_model().objects.filter(username__in=[u.username for u in DEMO_USERS]).exists()


@pytest.mark.django_db
@override_settings(DEBUG=False, TESTING=False)
@pytest.mark.slow
def test_load_demo_force_runs_without_debug():
    load_demo("--force")
    assert Project.objects.filter(slug=PROJECT_SLUG).exists()


@pytest.mark.django_db
@override_settings(DEBUG=True, TESTING=False)
@pytest.mark.slow
def test_load_demo_runs_with_debug():
    load_demo()
    assert Item.objects.filter(project__slug=PROJECT_SLUG).count() == 2 * len(CASES)
