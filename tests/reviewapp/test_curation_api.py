"""The curation REST API: the adjudication queue and decisions, curated labels, schema versions."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from reviewapp.models import Adjudication, AuditEvent, CuratedLabel, Item, Question
from reviewapp.services.projects import project_set_reviews_per_item, question_create, question_update
from reviewapp.services.queue import queue_next
from reviewapp.services.reviews import review_submit
from reviewapp.services.tokens import api_token_create
from tests.factories import make_items, member

QUEUE = "/api/v1/projects/support/adjudications/"
LABELS = "/api/v1/projects/support/curated-labels/"
VERSIONS = "/api/v1/projects/support/schema-versions/"


def session(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def bearer(user: Any, *scopes: str) -> Client:
    _, raw = api_token_create(user=user, name="test", scopes=list(scopes))
    return Client(headers={"authorization": f"Bearer {raw}"})


def submit(project: Any, user: Any, answers: dict[str, Any], **kwargs: Any) -> Any:
    lease = queue_next(project=project, user=user)
    assert lease is not None
    return review_submit(assignment_id=lease.pk, user=user, answers=answers, **kwargs)


@pytest.fixture
def disputed(project, reviewer, reviewer2):  # type: ignore[no-untyped-def]
    """Three items with two reviews each: ext-0 and ext-1 disputed, ext-2 agreed."""
    project = project_set_reviews_per_item(project=project, reviews_per_item=2, wait=True)
    make_items(project, 3)
    plan = {
        "ext-0": ({"correct": True, "helpfulness": 4}, {"correct": False, "helpfulness": 2}),
        "ext-1": ({"correct": True, "helpfulness": 5}, {"correct": True, "helpfulness": 1}),
        "ext-2": ({"correct": True, "helpfulness": 4}, {"correct": True, "helpfulness": 4}),
    }
    for who, (user, extra) in enumerate(
        [(reviewer, {"comment": "looks right", "time_on_task_ms": 42_000}), (reviewer2, {"comment": "not so sure"})]
    ):
        for _ in plan:
            lease = queue_next(project=project, user=user)  # the queue picks the order
            assert lease is not None
            answers = plan[lease.item.external_id][who]
            review_submit(assignment_id=lease.pk, user=user, answers=answers, **extra)
    return project


def item(external_id: str) -> Item:
    return Item.objects.get(external_id=external_id)


def test_the_queue_lists_disagreements_with_their_questions(disputed, curator):
    response = session(curator).get(QUEUE)
    assert response.status_code == 200
    body = response.json()
    assert body["next"] is None
    rows = body["results"]
    assert [r["item_external_id"] for r in rows] == ["ext-0", "ext-1"]
    assert rows[0]["status"] == "open" and rows[0]["reason"] == "disagreement"
    assert rows[0]["disagreements"] == [
        {"key": "correct", "reason": "tie: 1 x pass, 1 x fail"},
        {"key": "helpfulness", "reason": "spread 2 > 1 (2 to 4)"},
    ]
    assert [d["key"] for d in rows[1]["disagreements"]] == ["helpfulness"]
    assert rows[0]["version"] == Adjudication.objects.get(item__external_id="ext-0").version
    assert Adjudication.objects.count() == 2 and CuratedLabel.objects.count() == 1


def test_the_queue_pages_by_cursor(disputed, curator):
    client = bearer(curator, "curate")
    first = client.get(QUEUE, {"page_size": 1}).json()
    assert [r["item_external_id"] for r in first["results"]] == ["ext-0"]
    second = client.get(first["next"]).json()
    assert [r["item_external_id"] for r in second["results"]] == ["ext-1"] and second["next"] is None


@pytest.mark.parametrize("path", [QUEUE, "{detail}"])
def test_only_curators_may_adjudicate(disputed, path, reviewer, engineer, outsider, curator):
    url = path.format(detail=f"{QUEUE}{item('ext-0').pk}/")
    assert session(reviewer).get(url).status_code == 403
    assert session(engineer).get(url).status_code == 403  # engineers export, they do not decide
    assert session(outsider).get(url).status_code == 404
    assert Client().get(url).status_code in (401, 403)
    assert bearer(curator, "review", "export").get(url).status_code == 403  # the token needs `curate`
    assert bearer(curator, "curate").get(url).status_code == 200


def test_a_reviewer_cannot_decide(disputed, reviewer):
    target = item("ext-0")
    response = session(reviewer).post(
        f"{QUEUE}{target.pk}/", {"version": 1, "answers": {"correct": True}}, "application/json"
    )
    assert response.status_code == 403
    assert not CuratedLabel.objects.filter(item=target).exists()


def test_the_detail_shows_every_review_side_by_side(disputed, curator):
    target = item("ext-0")
    body = session(curator).get(f"{QUEUE}{target.pk}/").json()
    assert body["item"]["external_id"] == "ext-0"
    assert [(r["reviewer"], r["answers"], r["comment"], r["time_on_task_ms"]) for r in body["reviews"]] == [
        ("rita", {"correct": True, "helpfulness": 4}, "looks right", 42_000),
        ("rob", {"correct": False, "helpfulness": 2}, "not so sure", None),
    ]
    rows = {row["key"]: row for row in body["comparison"]}
    assert rows["correct"]["agreed"] is False and rows["correct"]["suggestion"] is None
    assert rows["helpfulness"]["agreed"] is False and rows["helpfulness"]["suggestion"] == 2
    assert rows["issue"]["agreed"] is True
    assert body["suggested_answers"] == {"helpfulness": 2}
    assert body["curated_label"] is None
    assert [q["key"] for q in body["questions"]] == ["correct", "helpfulness", "issue"]


def test_an_item_that_is_not_disputed_is_404(disputed, curator):
    assert session(curator).get(f"{QUEUE}{item('ext-2').pk}/").status_code == 404


def test_a_decision_writes_an_adjudicated_label(disputed, curator):
    target = item("ext-0")
    version = Adjudication.objects.get(item=target).version
    response = bearer(curator, "curate").post(
        f"{QUEUE}{target.pk}/",
        {
            "version": version,
            "answers": {"correct": False, "helpfulness": 2},
            "expected_response": "Use the reset link.",
            "expected_facts": ["The link is valid for one hour."],
            "rationale": "Rob is right.",
        },
        "application/json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["method"] == "adjudicated" and body["decided_by"] == "cora"
    assert body["answers"] == {"correct": False, "helpfulness": 2}
    assert body["expected_facts"] == ["The link is valid for one hour."]
    label = CuratedLabel.objects.get(item=target)
    assert label.decided_by == curator and label.rationale == "Rob is right."
    assert sorted(body["reviews"]) == sorted(label.reviews.values_list("id", flat=True))
    assert len(body["reviews"]) == 2
    assert Adjudication.objects.get(item=target).status == "decided"
    assert AuditEvent.objects.filter(action="adjudication.decide", actor=curator, target_id=str(label.pk)).exists()
    assert [r["item_external_id"] for r in session(curator).get(QUEUE).json()["results"]] == ["ext-1"]
    decided = session(curator).get(QUEUE, {"status": "decided"}).json()["results"]
    assert [r["item_external_id"] for r in decided] == ["ext-0"]


def test_bad_decisions_are_400_with_field_errors_and_write_nothing(disputed, curator):
    target = item("ext-0")
    version = Adjudication.objects.get(item=target).version
    client = session(curator)
    response = client.post(
        f"{QUEUE}{target.pk}/", {"version": version, "answers": {"helpfulness": 7, "nope": 1}}, "application/json"
    )
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == {"answers.nope", "answers.correct", "answers.helpfulness"}
    response = client.post(f"{QUEUE}{target.pk}/", {"answers": {"correct": True}}, "application/json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "version"
    assert not CuratedLabel.objects.filter(item=target).exists()


def test_a_decision_on_a_stale_page_is_409(disputed, curator):
    other = member(disputed, "curator", username="carl")
    target = item("ext-0")
    loaded = session(curator).get(f"{QUEUE}{target.pk}/").json()["adjudication"]["version"]
    first = session(other).post(
        f"{QUEUE}{target.pk}/", {"version": loaded, "answers": {"correct": True, "helpfulness": 4}}, "application/json"
    )
    assert first.status_code == 200
    late = session(curator).post(
        f"{QUEUE}{target.pk}/", {"version": loaded, "answers": {"correct": False, "helpfulness": 2}}, "application/json"
    )
    assert late.status_code == 409
    assert late.json()["code"] == "already_decided" and "carl already decided" in late.json()["detail"]
    label = CuratedLabel.objects.get(item=target)
    assert label.decided_by == other and label.answers == {"correct": True, "helpfulness": 4}


def test_curated_labels_for_exporters(disputed, curator, engineer, reviewer):
    target = item("ext-0")
    version = Adjudication.objects.get(item=target).version
    session(curator).post(
        f"{QUEUE}{target.pk}/", {"version": version, "answers": {"correct": True, "helpfulness": 4}}, "application/json"
    )
    assert session(reviewer).get(LABELS).status_code == 403
    assert bearer(engineer, "review").get(LABELS).status_code == 403
    body = bearer(engineer, "export").get(LABELS).json()
    rows = {r["item_external_id"]: r for r in body["results"]}
    assert set(rows) == {"ext-0", "ext-2"}
    assert rows["ext-2"]["method"] == "consensus" and rows["ext-2"]["decided_by"] is None
    assert rows["ext-0"]["method"] == "adjudicated" and rows["ext-0"]["decided_by"] == "cora"
    assert len(rows["ext-2"]["reviews"]) == 2
    assert rows["ext-2"]["agreement"]["questions"]["helpfulness"]["values"] == [4, 4]
    only = session(engineer).get(LABELS, {"method": "adjudicated"}).json()["results"]
    assert [r["item_external_id"] for r in only] == ["ext-0"]


def test_curated_labels_list_query_count_is_constant(
    disputed, engineer, reviewer, reviewer2, django_assert_num_queries
):
    make_items(disputed, 4, start=10)
    for _ in range(4):
        submit(disputed, reviewer, {"correct": True, "helpfulness": 3})
        submit(disputed, reviewer2, {"correct": True, "helpfulness": 3})
    client = session(engineer)
    # session, user, project with membership role, labels with items and deciders, their reviews
    with django_assert_num_queries(5):
        response = client.get(LABELS)
    assert len(response.json()["results"]) == 5


def test_schema_versions_list_every_question_set(project, reviewer):
    make_items(project, 1)
    submit(project, reviewer, {"correct": True, "helpfulness": 4})
    question_create(project=project, key="notes", title="Notes", kind="text", required=False)
    question_update(question=Question.objects.get(project=project, key="notes"), consensus_rule="skip")
    body = session(reviewer).get(VERSIONS).json()
    assert [(v["version"], v["current"]) for v in body] == [(1, False), (2, True)]
    assert [q["key"] for q in body[0]["questions"]] == ["correct", "helpfulness", "issue"]
    assert body[1]["questions"][-1]["key"] == "notes" and body[1]["questions"][-1]["consensus_rule"] == "skip"
    assert body[1]["questions"][1]["max_spread"] == 1


def test_openapi_schema_documents_curation(db, settings):
    settings.API_DOCS_PUBLIC = True  # the operator's choice; tests/security covers the default
    schema = Client().get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    assert set(paths["/api/v1/projects/{slug}/adjudications/{item_id}/"]) == {"get", "post"}
    decide = paths["/api/v1/projects/{slug}/adjudications/{item_id}/"]["post"]
    assert decide["operationId"] == "adjudications_decide" and set(decide["responses"]) >= {"200", "400", "409"}
    assert "/api/v1/projects/{slug}/adjudications/" in paths
    assert "/api/v1/projects/{slug}/curated-labels/" in paths
    assert "/api/v1/projects/{slug}/schema-versions/" in paths


def test_the_queue_query_count_is_constant(disputed, curator, reviewer, reviewer2, django_assert_num_queries):
    make_items(disputed, 3, start=10)
    for user, correct in ((reviewer, True), (reviewer2, False)):
        for _ in range(3):
            submit(disputed, user, {"correct": correct, "helpfulness": 3})
    assert Adjudication.objects.count() == 5
    client = session(curator)
    # session, user, project with membership role, the page of adjudications with their items
    with django_assert_num_queries(4):
        response = client.get(QUEUE)
    assert len(response.json()["results"]) == 5
