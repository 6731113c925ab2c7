"""The REST API at its interface: HTTP in, JSON and database state out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from reviewapp.errors import ValidationFailed
from reviewapp.models import ApiToken, Assignment, Item, Membership, Review, ReviewRevision
from reviewapp.services.queue import queue_next
from reviewapp.services.reviews import review_submit
from reviewapp.services.tokens import api_token_create, api_token_revoke
from tests.factories import ProjectFactory, item_row, make_items, member, standard_questions

GOOD = {"correct": True, "helpfulness": 4}
ITEMS = "/api/v1/projects/support/items/"
NEXT = "/api/v1/projects/support/queue/next/"
REVIEWS = "/api/v1/projects/support/reviews/"
ITEM_KEYS = {
    "id",
    "external_id",
    "request",
    "response",
    "retrieved_context",
    "model_name",
    "model_version",
    "trace_id",
    "source",
    "metadata",
    "priority",
    "review_count",
    "created_at",
    "updated_at",
}
# What a reviewer of a blind project (the default) gets: no model, version, trace, source or external id.
BLIND_ITEM_KEYS = ITEM_KEYS - {"external_id", "model_name", "model_version", "trace_id", "source"}


def bearer(user: Any, *scopes: str, project: Any = None) -> Client:
    """A client authenticated with a fresh API token of ``user``."""
    _, raw = api_token_create(user=user, name="test", scopes=list(scopes), project=project)
    return Client(headers={"authorization": f"Bearer {raw}"})


def session(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def ndjson(*lines: Any) -> str:
    import json

    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)


def review_via_service(project: Any, user: Any, answers: dict[str, Any] | None = None) -> Review:
    lease = queue_next(project=project, user=user)
    assert lease is not None
    return review_submit(assignment_id=lease.pk, user=user, answers=answers or GOOD)


# --- ingest ------------------------------------------------------------------------------------


def test_ingest_a_list_creates_items_and_their_slots(project, engineer):
    response = bearer(engineer, "ingest").post(ITEMS, [item_row(1), item_row(2), item_row(3)], "application/json")
    assert response.status_code == 201
    assert response.json() == {"created": 3, "updated": 0}
    assert sorted(Item.objects.filter(project=project).values_list("external_id", flat=True)) == [
        "ext-1",
        "ext-2",
        "ext-3",
    ]
    assert Assignment.objects.filter(project=project).count() == 3


def test_ingest_one_object_with_a_chat_request(project, engineer):
    chat = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Reset?"}]}
    response = bearer(engineer, "ingest").post(ITEMS, item_row(1, request=chat), "application/json")
    assert response.status_code == 201
    assert response.json() == {"created": 1, "updated": 0}
    item = Item.objects.get(project=project)
    assert item.request == chat and item.request_text == "Reset?"
    assert item.retrieved_context[0] == {"doc_uri": "docs/account.md", "content": "Passwords are reset from Settings."}


def test_ingest_ndjson(project, engineer):
    body = ndjson(item_row(1), "", item_row(2))  # a blank line is ignored
    response = bearer(engineer, "ingest").post(ITEMS, body, "application/x-ndjson")
    assert response.status_code == 201
    assert response.json() == {"created": 2, "updated": 0}
    assert Item.objects.filter(project=project).count() == 2


def test_resending_updates_in_place_and_never_duplicates(project, engineer):
    client = bearer(engineer, "ingest")
    assert client.post(ITEMS, [item_row(1), item_row(2)], "application/json").status_code == 201
    response = client.post(ITEMS, [item_row(1, response="Fixed answer."), item_row(2)], "application/json")
    assert response.status_code == 200
    assert response.json() == {"created": 0, "updated": 2}
    assert Item.objects.filter(project=project).count() == 2
    assert Assignment.objects.filter(project=project).count() == 2
    assert Item.objects.get(external_id="ext-1").response == "Fixed answer."


def test_one_bad_row_rejects_the_whole_batch_and_lists_every_problem(project, engineer):
    rows = [
        item_row(1),
        item_row(2, retrieved_context=[{"content": "ok"}, {"content": 5}]),
        item_row(3, colour="red"),
        item_row(4, request=""),
    ]
    response = bearer(engineer, "ingest").post(ITEMS, rows, "application/json")
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "3 of 4 items are not valid; nothing was written."
    assert body["errors"] == [
        {"index": 1, "field": "retrieved_context[1].content", "message": "Expected `str`, got `int`"},
        {"index": 2, "field": "colour", "message": "Unknown field."},
        {"index": 3, "field": "request", "message": "Expected `str` of length >= 1"},
    ]
    assert Item.objects.count() == 0
    assert Assignment.objects.count() == 0


def test_ndjson_reports_malformed_lines_by_line_number_with_other_errors(project, engineer):
    body = ndjson(item_row(0), '{"request": "half', item_row(2, priority="high"))
    response = bearer(engineer, "ingest").post(ITEMS, body, "application/x-ndjson")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(1, ""), (2, "priority")]
    assert errors[0]["message"].startswith("Invalid JSON: ")
    assert Item.objects.count() == 0


def test_malformed_json_body_is_a_clear_400(project, engineer):
    response = bearer(engineer, "ingest").post(ITEMS, '[{"request": "a"},', "application/json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("The body is not valid JSON: ")
    assert Item.objects.count() == 0


def test_a_json_scalar_or_empty_body_is_rejected(project, engineer):
    client = bearer(engineer, "ingest")
    assert (
        client.post(ITEMS, "42", "application/json").json()["detail"] == "Send one item object, or a JSON list of them."
    )
    empty = client.post(ITEMS, "", "application/json")
    assert empty.status_code == 400
    assert empty.json()["detail"].startswith("The body is empty")


@override_settings(INGEST_MAX_ITEMS=2)
def test_too_many_items_are_refused_whole(project, engineer):
    client = bearer(engineer, "ingest")
    response = client.post(ITEMS, [item_row(n) for n in range(3)], "application/json")
    assert response.status_code == 400
    assert response.json()["detail"] == "Too many items (3); send at most 2 per request."
    response = client.post(ITEMS, ndjson(*[item_row(n) for n in range(3)]), "application/x-ndjson")
    assert response.status_code == 400
    assert Item.objects.count() == 0


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024)
def test_a_body_over_the_size_limit_is_413(project, engineer):
    response = bearer(engineer, "ingest").post(ITEMS, [item_row(n) for n in range(20)], "application/json")
    assert response.status_code == 413
    assert "larger than 1024 bytes" in response.json()["detail"]
    assert Item.objects.count() == 0


def test_other_media_types_are_415(project, engineer):
    assert bearer(engineer, "ingest").post(ITEMS, "request=hi", "text/plain").status_code == 415
    form = session(engineer).post(ITEMS, {"request": "hi"})  # multipart, as a browser form would send
    assert form.status_code == 415
    assert form.json()["detail"].startswith("Unsupported media type 'multipart/form-data'")
    assert Item.objects.count() == 0


# --- authentication and access -------------------------------------------------------------------


def test_no_credentials_is_401(project):
    client = Client()
    assert client.get("/api/v1/projects/").status_code == 401
    response = client.post(ITEMS, [item_row(1)], "application/json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_wrong_or_revoked_token_is_401(project, engineer):
    token, raw = api_token_create(user=engineer, name="ci", scopes=["ingest"])
    client = Client(headers={"authorization": f"Bearer {raw}"})
    assert client.get("/api/v1/projects/").status_code == 200
    api_token_revoke(token=token, user=engineer)
    response = client.post(ITEMS, [item_row(1)], "application/json")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid or revoked API token."}
    forged = Client(headers={"authorization": f"Bearer rd_{token.prefix}_not-the-secret"})
    assert forged.get("/api/v1/projects/").status_code == 401
    assert Item.objects.count() == 0


def test_a_reviewer_cannot_see_a_project_they_are_not_a_member_of(project, reviewer):
    other = ProjectFactory(slug="other")
    make_items(other, 1)
    client = session(reviewer)
    assert client.get("/api/v1/projects/other/").status_code == 404
    assert client.get("/api/v1/projects/other/items/").status_code == 404
    assert client.post("/api/v1/projects/other/queue/next/").status_code == 404
    assert client.get("/api/v1/projects/nope/").status_code == 404  # same answer as for a missing project
    assert [p["slug"] for p in client.get("/api/v1/projects/").json()] == ["support"]


def test_an_outsider_gets_404_everywhere(project, reviewer, outsider):
    make_items(project, 1)
    review = review_via_service(project, reviewer)
    client = session(outsider)
    assert client.get("/api/v1/projects/support/").status_code == 404
    assert client.get(REVIEWS).status_code == 404
    assert client.get(f"/api/v1/reviews/{review.pk}/").status_code == 404
    assert client.post(f"/api/v1/assignments/{review.assignment_id}/renew/").status_code == 404


def test_an_export_token_cannot_ingest(project, engineer):
    response = bearer(engineer, "export").post(ITEMS, [item_row(1)], "application/json")
    assert response.status_code == 403
    assert response.json() == {"detail": "This API token lacks the 'ingest' scope."}
    assert Item.objects.count() == 0


def test_a_reviewer_role_cannot_ingest_even_with_an_ingest_token(project, reviewer):
    # The token was made while rita was an engineer (a token never gets scopes its user's roles lack).
    Membership.objects.filter(project=project, user=reviewer).update(role="engineer")
    client = bearer(reviewer, "ingest")
    Membership.objects.filter(project=project, user=reviewer).update(role="reviewer")
    response = client.post(ITEMS, [item_row(1)], "application/json")
    assert response.status_code == 403
    assert Item.objects.count() == 0


def test_a_token_pinned_to_one_project_cannot_touch_another(project, engineer):
    other = ProjectFactory(slug="other")
    member(other, "engineer", username="eddie")
    client = bearer(engineer, "ingest", "review", "export", project=other)
    assert client.post(ITEMS, [item_row(1)], "application/json").status_code == 404
    assert client.get(ITEMS).status_code == 404
    assert client.get("/api/v1/projects/support/").status_code == 404
    assert [p["slug"] for p in client.get("/api/v1/projects/").json()] == ["other"]
    assert client.post("/api/v1/projects/other/items/", [item_row(1)], "application/json").status_code == 201
    assert Item.objects.filter(project=project).count() == 0


# --- projects ------------------------------------------------------------------------------------


def test_project_list_and_detail_with_questions(project, curator, reviewer):
    make_items(project, 2)
    review_via_service(project, reviewer)
    listed = session(curator).get("/api/v1/projects/").json()
    assert listed == [
        {
            "slug": "support",
            "name": "Support assistant",
            "description": "",
            "role": "curator",
            "reviews_per_item": 1,
            "items": 2,
            "reviews": 1,
            "my_reviews": 0,
            "percent": 50,
        }
    ]
    detail = bearer(reviewer, "review").get("/api/v1/projects/support/").json()
    assert detail["role"] == "reviewer"
    assert detail["guidelines"] == "Rate **correctness** first."
    assert [q["key"] for q in detail["questions"]] == ["correct", "helpfulness", "issue"]
    assert detail["questions"][1] == {
        "key": "helpfulness",
        "title": "How helpful?",
        "instructions": "",
        "kind": "rating",
        "assessment_type": "feedback",
        "required": True,
        "order": 2,
        "options": {"min": 1, "max": 5, "min_label": "useless", "max_label": "perfect"},
    }


def test_project_list_query_count_is_constant(project, engineer, django_assert_num_queries):
    for n in range(3):
        other = ProjectFactory(slug=f"p{n}")
        member(other, "engineer", username="eddie")
        make_items(other, 2)
    client = session(engineer)
    with django_assert_num_queries(6):  # session, user, roles, projects, reviews, my reviews
        assert len(client.get("/api/v1/projects/").json()) == 4


# --- item list -----------------------------------------------------------------------------------


def test_cursor_pagination_walks_every_item_exactly_once(project, reviewer):
    make_items(project, 25)
    client = bearer(reviewer, "review")
    url: str | None = f"{ITEMS}?page_size=10"
    seen: list[int] = []
    pages = 0
    while url:
        body = client.get(url).json()
        seen.extend(item["id"] for item in body["results"])
        url = body["next"]
        pages += 1
    assert pages == 3
    assert seen == list(Item.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    assert set(body["results"][0]) == BLIND_ITEM_KEYS


def test_item_list_filters(project, curator):
    make_items(project, 2, model_version="1")
    make_items(project, 3, start=10, model_version="2", source="prod")
    client = session(curator)
    assert len(client.get(f"{ITEMS}?model_version=2").json()["results"]) == 3
    assert len(client.get(f"{ITEMS}?source=prod&model_version=1").json()["results"]) == 0
    assert [i["external_id"] for i in client.get(f"{ITEMS}?external_id=ext-11").json()["results"]] == ["ext-11"]


@pytest.mark.parametrize("count", [2, 40])
def test_item_list_query_count_is_constant(project, engineer, django_assert_num_queries, count):
    make_items(project, count)
    client = session(engineer)
    with django_assert_num_queries(4):  # session, user, project with the caller's role, one page
        response = client.get(ITEMS)
    assert len(response.json()["results"]) == count


# --- queue -----------------------------------------------------------------------------------------


def test_queue_next_leases_an_item_then_204_when_nothing_is_left(project, reviewer):
    make_items(project, 1)
    client = bearer(reviewer, "review")
    response = client.post(NEXT)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"assignment", "item", "questions"}
    assert set(body["item"]) == BLIND_ITEM_KEYS
    assert body["item"]["request"] == "How do I reset my password? (0)"
    assert [q["key"] for q in body["questions"]] == ["correct", "helpfulness", "issue"]
    lease = Assignment.objects.get(pk=body["assignment"]["id"])
    assert lease.reviewer == reviewer
    assert client.post(NEXT).json()["assignment"]["id"] == lease.pk  # the held lease comes back
    submitted = client.post(REVIEWS, {"assignment": lease.pk, "answers": GOOD}, "application/json")
    assert submitted.status_code == 201
    response = client.post(NEXT)
    assert response.status_code == 204
    assert response.content == b""


def test_queue_needs_the_review_scope(project, engineer):
    make_items(project, 1)
    assert bearer(engineer, "ingest", "export").post(NEXT).status_code == 403
    assert Assignment.objects.filter(reviewer__isnull=False).count() == 0


def test_renew_extends_the_lease_and_someone_elses_lease_is_a_conflict(project, reviewer, reviewer2):
    make_items(project, 1)
    mine = bearer(reviewer, "review")
    lease_id = mine.post(NEXT).json()["assignment"]["id"]
    Assignment.objects.filter(pk=lease_id).update(expires_at=timezone.now() + timedelta(seconds=5))
    response = mine.post(f"/api/v1/assignments/{lease_id}/renew/")
    assert response.status_code == 200
    assert Assignment.objects.get(pk=lease_id).expires_at > timezone.now() + timedelta(seconds=500)
    theirs = bearer(reviewer2, "review").post(f"/api/v1/assignments/{lease_id}/renew/")
    assert theirs.status_code == 409
    assert theirs.json()["code"] == "lease_lost"


def test_skip_gives_the_item_back_for_others_only(project, reviewer, reviewer2):
    make_items(project, 1)
    mine = bearer(reviewer, "review")
    lease_id = mine.post(NEXT).json()["assignment"]["id"]
    response = mine.post(f"/api/v1/assignments/{lease_id}/skip/", {"reason": "not my area"}, "application/json")
    assert response.status_code == 204
    assert mine.post(NEXT).status_code == 204
    assert bearer(reviewer2, "review").post(NEXT).json()["assignment"]["id"] == lease_id


# --- reviews -----------------------------------------------------------------------------------------


def test_submit_creates_the_review(project, reviewer):
    make_items(project, 1)
    client = bearer(reviewer, "review")
    lease_id = client.post(NEXT).json()["assignment"]["id"]
    payload = {"assignment": lease_id, "answers": {**GOOD, "issue": "none"}, "comment": " ok ", "time_on_task_ms": 4200}
    response = client.post(REVIEWS, payload, "application/json")
    assert response.status_code == 201
    body = response.json()
    review = Review.objects.get()
    assert body["id"] == review.pk
    assert body["reviewer"] == "rita" and "item_external_id" not in body and body["project"] == "support"
    assert body["answers"] == review.answers == {"correct": True, "helpfulness": 4, "issue": "none"}
    assert review.comment == "ok" and review.time_on_task_ms == 4200
    assert Item.objects.get().review_count == 1


def test_submit_reports_each_bad_answer_and_saves_nothing(project, reviewer):
    make_items(project, 1)
    client = bearer(reviewer, "review")
    lease_id = client.post(NEXT).json()["assignment"]["id"]
    response = client.post(
        REVIEWS, {"assignment": lease_id, "answers": {"helpfulness": 9, "nope": 1}}, "application/json"
    )
    assert response.status_code == 400
    assert response.json() == {
        "detail": "Some answers are missing or not valid.",
        "errors": [
            {"index": None, "field": "answers.nope", "message": "No such question in this project."},
            {"index": None, "field": "answers.correct", "message": "This question is required."},
            {"index": None, "field": "answers.helpfulness", "message": "Give a whole number from 1 to 5."},
        ],
    }
    assert Review.objects.count() == 0


def test_submit_input_errors_use_the_same_shape(project, reviewer):
    response = bearer(reviewer, "review").post(REVIEWS, {"answers": GOOD, "time_on_task_ms": -1}, "application/json")
    assert response.status_code == 400
    assert response.json() == {
        "detail": "The input is not valid.",
        "errors": [
            {"index": None, "field": "assignment", "message": "This field is required."},
            {"index": None, "field": "time_on_task_ms", "message": "Ensure this value is greater than or equal to 0."},
        ],
    }


def test_submit_on_a_lease_another_reviewer_took_is_409(project, reviewer, reviewer2):
    make_items(project, 1)
    mine = bearer(reviewer, "review")
    lease_id = mine.post(NEXT).json()["assignment"]["id"]
    Assignment.objects.filter(pk=lease_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert bearer(reviewer2, "review").post(NEXT).json()["assignment"]["id"] == lease_id
    response = mine.post(REVIEWS, {"assignment": lease_id, "answers": GOOD}, "application/json")
    assert response.status_code == 409
    assert response.json() == {
        "detail": "Your lease on this item expired and another reviewer has it now.",
        "code": "lease_lost",
    }
    assert Review.objects.count() == 0


def test_a_review_for_an_earlier_lease_of_the_slot_is_409_when_it_names_the_token(project, reviewer, reviewer2):
    make_items(project, 1)
    mine = bearer(reviewer, "review")
    old = mine.post(NEXT).json()["assignment"]
    assert set(old) == {"id", "token", "expires_at"}
    Assignment.objects.filter(pk=old["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    theirs = bearer(reviewer2, "review")
    assert theirs.post(NEXT).json()["assignment"]["id"] == old["id"]
    assert theirs.post(f"/api/v1/assignments/{old['id']}/skip/", {}, "application/json").status_code == 204
    new = mine.post(NEXT).json()["assignment"]
    assert new["id"] == old["id"] and new["token"] != old["token"]
    stale = {"assignment": old["id"], "token": old["token"], "answers": GOOD}
    response = mine.post(REVIEWS, stale, "application/json")
    assert response.status_code == 409 and response.json()["code"] == "lease_lost"
    assert "earlier lease" in response.json()["detail"]
    assert Review.objects.count() == 0
    fresh = {"assignment": new["id"], "token": new["token"], "answers": GOOD}
    assert mine.post(REVIEWS, fresh, "application/json").status_code == 201


def test_submitting_twice_is_409(project, reviewer):
    make_items(project, 1)
    client = bearer(reviewer, "review")
    lease_id = client.post(NEXT).json()["assignment"]["id"]
    assert client.post(REVIEWS, {"assignment": lease_id, "answers": GOOD}, "application/json").status_code == 201
    again = client.post(REVIEWS, {"assignment": lease_id, "answers": GOOD}, "application/json")
    assert again.status_code == 409
    assert again.json()["code"] == "already_submitted"
    assert Review.objects.count() == 1


def test_a_lease_of_another_project_cannot_be_submitted_through_this_one(project, reviewer):
    other = ProjectFactory(slug="other")
    standard_questions(other)
    member(other, "reviewer", username="rita")
    make_items(other, 1)
    lease = queue_next(project=other, user=reviewer)
    response = bearer(reviewer, "review", project=project).post(
        REVIEWS, {"assignment": lease.pk, "answers": GOOD}, "application/json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "item_removed"
    assert Review.objects.count() == 0


def test_edit_keeps_history_and_only_the_author_may_edit(project, reviewer, reviewer2):
    make_items(project, 1)
    review = review_via_service(project, reviewer)
    url = f"/api/v1/reviews/{review.pk}/"
    client = bearer(reviewer, "review")
    response = client.patch(
        url, {"answers": {"correct": False, "helpfulness": 2}, "comment": "Wrong."}, "application/json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["answers"] == {"correct": False, "helpfulness": 2} and body["comment"] == "Wrong."
    assert body["revisions"] == [
        {"answers": GOOD, "comment": "", "edited_by": "rita", "replaced_at": body["revisions"][0]["replaced_at"]}
    ]
    comment_only = client.patch(url, {"comment": "Wrong, see docs."}, "application/json").json()
    assert comment_only["answers"] == {"correct": False, "helpfulness": 2}
    assert ReviewRevision.objects.filter(review=review).count() == 2
    assert client.get(url).json()["revisions"][0]["comment"] == "Wrong."  # newest first
    bad = client.patch(url, {"answers": {"correct": "maybe", "helpfulness": 2}}, "application/json")
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "answers.correct"
    assert bearer(reviewer2, "review").patch(url, {"comment": "mine now"}, "application/json").status_code == 403
    review.refresh_from_db()
    assert review.comment == "Wrong, see docs."


def test_review_detail_is_for_its_author_and_exporters(project, reviewer, reviewer2, curator):
    make_items(project, 1)
    review = review_via_service(project, reviewer)
    url = f"/api/v1/reviews/{review.pk}/"
    assert bearer(reviewer, "review").get(url).json()["id"] == review.pk
    assert bearer(curator, "export").get(url).status_code == 200
    assert bearer(curator, "review").get(url).status_code == 403  # a curator's token still needs export
    assert bearer(reviewer2, "review").get(url).status_code == 403


def test_review_export_pages_and_filters(project, reviewer, reviewer2, curator):
    make_items(project, 3)
    first = review_via_service(project, reviewer)
    review_via_service(project, reviewer)
    theirs = review_via_service(project, reviewer2)
    client = bearer(curator, "export")
    body = client.get(f"{REVIEWS}?page_size=2").json()
    ids = [r["id"] for r in body["results"]] + [r["id"] for r in client.get(body["next"]).json()["results"]]
    assert ids == sorted(Review.objects.values_list("id", flat=True))
    assert [r["id"] for r in client.get(f"{REVIEWS}?reviewer=rob").json()["results"]] == [theirs.pk]
    assert [r["id"] for r in client.get(f"{REVIEWS}?item={first.item_id}").json()["results"]] == [first.pk]
    Review.objects.filter(pk=first.pk).update(updated_at=timezone.now() + timedelta(hours=1))
    since = (timezone.now() + timedelta(minutes=30)).isoformat()
    assert [r["id"] for r in client.get(REVIEWS, {"updated_since": since}).json()["results"]] == [first.pk]
    bad = client.get(f"{REVIEWS}?updated_since=yesterday")
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "updated_since"


def test_review_export_needs_export(project, reviewer, curator):
    assert session(reviewer).get(REVIEWS).status_code == 403
    assert bearer(curator, "review", "ingest").get(REVIEWS).status_code == 403
    assert bearer(curator, "export").get(REVIEWS).status_code == 200


@pytest.mark.parametrize("count", [1, 6])
def test_review_export_query_count_is_constant(project, curator, django_assert_num_queries, count):
    make_items(project, count)
    for n in range(count):
        review_via_service(project, member(project, "reviewer", username=f"r{n}"))
    client = session(curator)
    with django_assert_num_queries(4):  # session, user, project with role, one page with reviewer+item+project
        response = client.get(REVIEWS)
    assert len(response.json()["results"]) == count


# --- tokens --------------------------------------------------------------------------------------


def test_a_signed_in_user_creates_lists_and_revokes_tokens(project, engineer):
    client = session(engineer)
    response = client.post(
        "/api/v1/tokens/", {"name": "CI", "scopes": ["ingest"], "project": "support"}, "application/json"
    )
    assert response.status_code == 201
    created = response.json()
    assert created["scopes"] == ["ingest"] and created["project"] == "support"
    raw = created["token"]
    token_client = Client(headers={"authorization": f"Bearer {raw}"})
    assert token_client.post(ITEMS, [item_row(1)], "application/json").status_code == 201
    listed = client.get("/api/v1/tokens/").json()
    assert [t["id"] for t in listed] == [created["id"]]
    assert "token" not in listed[0]
    assert listed[0]["last_used_at"] is not None
    assert client.delete(f"/api/v1/tokens/{created['id']}/").status_code == 204
    assert ApiToken.objects.get(pk=created["id"]).revoked_at is not None
    assert token_client.get("/api/v1/projects/").status_code == 401


def test_a_token_cannot_mint_list_or_revoke_tokens(project, engineer):
    token, raw = api_token_create(user=engineer, name="ci", scopes=["ingest", "review", "export"])
    client = Client(headers={"authorization": f"Bearer {raw}"})
    assert client.post("/api/v1/tokens/", {"name": "more", "scopes": ["ingest"]}, "application/json").status_code == 403
    assert client.get("/api/v1/tokens/").status_code == 403
    assert client.delete(f"/api/v1/tokens/{token.pk}/").status_code == 403
    assert ApiToken.objects.count() == 1


def test_token_creation_checks_its_input(project, engineer, outsider):
    other = ProjectFactory(slug="other")
    client = session(engineer)
    response = client.post("/api/v1/tokens/", {"name": "x", "scopes": ["admin"]}, "application/json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "scopes[0]"
    response = client.post(
        "/api/v1/tokens/", {"name": "x", "scopes": ["ingest"], "project": other.slug}, "application/json"
    )
    assert response.status_code == 400
    assert response.json()["errors"] == [{"index": None, "field": "project", "message": "No such project among yours."}]
    token, _ = api_token_create(user=engineer, name="mine", scopes=["review"])
    assert session(outsider).delete(f"/api/v1/tokens/{token.pk}/").status_code == 404  # not theirs to revoke
    token.refresh_from_db()
    assert token.revoked_at is None


def test_the_token_service_reports_every_bad_field_with_its_message(project, engineer):
    with pytest.raises(ValidationFailed) as bad:
        api_token_create(user=engineer, name=" ", scopes=[])
    assert [(e["field"], e["message"]) for e in bad.value.errors] == [
        ("name", "Give the token a name."),
        ("scopes", "Pick at least one of: ingest, review, export, curate, evaluate, promote, feedback."),
    ]
    with pytest.raises(ValidationFailed) as bad:
        api_token_create(user=engineer, name="x", scopes=["ingest", "admin"])
    assert bad.value.errors == [{"index": None, "field": "scopes", "message": "Unknown scope(s): admin."}]
    assert ApiToken.objects.count() == 0


# --- schema --------------------------------------------------------------------------------------


def test_openapi_schema_documents_the_api(db, settings):
    settings.API_DOCS_PUBLIC = True  # the operator's choice; tests/security covers the default
    response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    ingest = schema["paths"]["/api/v1/projects/{slug}/items/"]["post"]
    assert ingest["operationId"] == "items_ingest"
    assert set(ingest["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
    item_schema = ingest["requestBody"]["content"]["application/json"]["schema"]["oneOf"][0]
    assert item_schema["required"] == ["request"] and item_schema["additionalProperties"] is False
    assert "/api/v1/projects/{slug}/queue/next/" in schema["paths"]
    assert set(schema["paths"]["/api/v1/reviews/{id}/"]) == {"get", "patch"}
    assert Client().get("/api/docs/").status_code == 200
