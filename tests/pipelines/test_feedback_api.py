"""End users' feedback over REST: the write-only ``feedback`` scope, batch checks, idempotency by
client id, joining to items that arrive before or after, listing, the per-item summary and the block
curators see on the adjudication page. Runs on PostgreSQL and on SQLite."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from pipelines.models import Feedback
from pipelines.sources.feedback import feedback_ingest, feedback_summary_for_items
from reviewapp.models import ApiToken, Item
from reviewapp.services.tokens import api_token_create
from tests.factories import item_row, make_items, member

FEEDBACK = "/api/v1/projects/support/feedback/"
ITEMS = "/api/v1/projects/support/items/"


def bearer(user: Any, *scopes: str, project: Any = None) -> Client:
    _, raw = api_token_create(user=user, name="app", scopes=list(scopes), project=project)
    return Client(headers={"authorization": f"Bearer {raw}"})


def session(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post(client: Client, url: str, body: Any) -> Any:
    return client.post(url, json.dumps(body), content_type="application/json")


def thumbs(client_id: str, value: str = "down", **extra: Any) -> dict[str, Any]:
    return {"client_id": client_id, "kind": "thumbs", "value": value, **extra}


@pytest.fixture
def app_client(project, engineer) -> Client:  # type: ignore[no-untyped-def]
    """What the end users' app holds: a token with the feedback scope only."""
    return bearer(engineer, "feedback")


def test_a_batch_is_stored_and_joins_the_items_that_exist(project, app_client) -> None:
    make_items(project, 2)  # ext-0 / tr-0, ext-1 / tr-1
    response = post(
        app_client,
        FEEDBACK,
        [
            thumbs("fb-1", "up", external_id="ext-0", user="u-17"),
            {"client_id": "fb-2", "kind": "rating", "value": 2, "trace_id": "tr-1", "comment": "Too vague."},
            {"client_id": "fb-3", "kind": "comment", "comment": "Where is <b>my</b> invoice?", "trace_id": "tr-9"},
        ],
    )
    assert response.status_code == 201, response.content
    body = response.json()
    first, second = Item.objects.get(external_id="ext-0"), Item.objects.get(external_id="ext-1")
    assert (body["created"], body["duplicates"]) == (3, 0)
    assert [(r["index"], r["client_id"], r["status"], r["item"], r["joined"]) for r in body["rows"]] == [
        (0, "fb-1", "created", first.pk, True),
        (1, "fb-2", "created", second.pk, True),
        (2, "fb-3", "created", None, False),  # tr-9 has no item yet: it waits
    ]
    up = Feedback.objects.get(client_id="fb-1")
    assert (up.kind, up.value, up.user_ref, up.origin, up.item_id) == ("thumbs", 1, "u-17", "api", first.pk)
    assert up.joined_at is not None and up.received_at == up.created_at
    rating = Feedback.objects.get(client_id="fb-2")
    assert (rating.value, rating.comment) == (2, "Too vague.")
    # End users' feedback is never a review or a curated label.
    assert first.reviews.count() == 0 and first.review_count == 0


def test_sending_again_creates_nothing_and_answers_the_stored_rows(project, app_client) -> None:
    batch = [thumbs("fb-1", trace_id="tr-0"), thumbs("fb-2", "up", trace_id="tr-0")]
    first = post(app_client, FEEDBACK, batch).json()

    again = post(app_client, FEEDBACK, [thumbs("fb-2", "down", trace_id="tr-0"), *batch[:1]])
    assert again.status_code == 200
    body = again.json()
    assert (body["created"], body["duplicates"]) == (0, 2)
    ids = {r["client_id"]: r["id"] for r in first["rows"]}
    assert [(r["client_id"], r["id"], r["status"]) for r in body["rows"]] == [
        ("fb-2", ids["fb-2"], "duplicate"),
        ("fb-1", ids["fb-1"], "duplicate"),
    ]
    assert Feedback.objects.count() == 2
    assert Feedback.objects.get(client_id="fb-2").value == 1  # the stored row stands

    mixed = post(app_client, FEEDBACK, [thumbs("fb-1", trace_id="tr-0"), thumbs("fb-3", trace_id="tr-0")])
    assert mixed.status_code == 201
    assert [r["status"] for r in mixed.json()["rows"]] == ["duplicate", "created"]
    assert Feedback.objects.count() == 3


def test_client_ids_are_per_project(project, engineer, app_client) -> None:
    from tests.factories import ProjectFactory

    other = ProjectFactory(slug="other")
    member(other, "engineer", username="ed2")
    post(app_client, FEEDBACK, [thumbs("fb-1", trace_id="tr-0")])
    feedback_ingest(project=other, rows=[thumbs("fb-1", trace_id="tr-0")])
    assert Feedback.objects.filter(client_id="fb-1").count() == 2


def test_one_bad_row_writes_nothing_and_every_problem_is_listed(project, app_client) -> None:
    future = (timezone.now() + timedelta(hours=2)).isoformat()
    response = post(
        app_client,
        FEEDBACK,
        [
            thumbs("ok", trace_id="tr-0"),
            {"kind": "thumbs", "value": "up", "trace_id": "tr-0"},
            thumbs("b", "sideways", trace_id="tr-0"),
            {"client_id": "c", "kind": "rating", "value": 7, "trace_id": "tr-0"},
            thumbs("d"),
            {"client_id": "e", "kind": "comment", "value": "up", "comment": "x", "trace_id": "tr-0"},
            {"client_id": "f", "kind": "stars", "value": 5, "trace_id": "tr-0"},
            thumbs("g", trace_id="tr-0", mood="angry"),
            thumbs("ok", trace_id="tr-0"),
            thumbs("h", trace_id="tr-0", created_at=future),
            {"client_id": "i", "kind": "comment", "comment": "   ", "trace_id": "tr-0"},
            "not an object",
            thumbs("j", trace_id="tr-0", comment="x" * 5001),
        ],
    )
    assert response.status_code == 400
    errors = [(e["index"], e["field"]) for e in response.json()["errors"]]
    assert errors == [
        (1, "client_id"),
        (2, "value"),
        (3, "value"),
        (4, "trace_id"),
        (5, "value"),
        (6, "kind"),
        (7, "mood"),
        (8, "client_id"),
        (9, "created_at"),
        (10, "comment"),
        (11, ""),
        (12, "comment"),
    ]
    messages = {e["index"]: e["message"] for e in response.json()["errors"]}
    assert messages[3] == "A rating is a whole number from 1 to 5."
    assert messages[4] == "Name the answer: give its trace_id or its external_id."
    assert messages[8] == "Duplicate of row 0 in the same batch."
    assert Feedback.objects.count() == 0


def test_empty_too_large_and_scalar_bodies_are_refused(project, app_client, monkeypatch) -> None:
    from pipelines.sources import feedback

    assert post(app_client, FEEDBACK, []).status_code == 400
    assert post(app_client, FEEDBACK, 3).status_code == 400
    monkeypatch.setattr(feedback, "MAX_BATCH", 2)
    too_many = post(app_client, FEEDBACK, [thumbs(f"fb-{n}", trace_id="t") for n in range(3)])
    assert too_many.status_code == 400 and "at most 2" in too_many.json()["detail"]
    one = post(app_client, FEEDBACK, thumbs("single", trace_id="t"))  # one object is a batch of one
    assert one.status_code == 201 and Feedback.objects.count() == 1


def test_a_feedback_token_can_send_feedback_and_nothing_else(project, app_client) -> None:
    make_items(project, 1)
    for url in (
        "/api/v1/projects/",
        "/api/v1/projects/support/",
        ITEMS,
        FEEDBACK,
        "/api/v1/projects/support/feedback/summary/",
        "/api/v1/projects/support/reviews/",
        "/api/v1/projects/support/stats/",
    ):
        assert app_client.get(url).status_code == 403, url
    assert post(app_client, ITEMS, [item_row(5)]).status_code == 403
    assert app_client.post("/api/v1/projects/support/queue/next/").status_code == 403
    assert post(app_client, FEEDBACK, [thumbs("fb", trace_id="tr-0")]).status_code == 201


def test_other_scopes_and_roles_cannot_send_feedback(project, engineer, curator, reviewer, outsider) -> None:
    from tests.factories import ProjectFactory

    assert post(bearer(engineer, "ingest", "export"), FEEDBACK, [thumbs("a", trace_id="t")]).status_code == 403
    assert post(session(reviewer), FEEDBACK, [thumbs("a", trace_id="t")]).status_code == 403
    assert post(session(outsider), FEEDBACK, [thumbs("a", trace_id="t")]).status_code == 404
    other = ProjectFactory(slug="other")
    member(other, "engineer", username="eddie-other")
    pinned = bearer(engineer, "feedback", project=project)
    assert post(pinned, "/api/v1/projects/other/feedback/", [thumbs("a", trace_id="t")]).status_code == 404
    # Curators and engineers may send it (their apps, their scripts); by session too.
    assert post(session(curator), FEEDBACK, [thumbs("a", trace_id="t")]).status_code == 201
    assert post(bearer(curator, "feedback"), FEEDBACK, [thumbs("b", trace_id="t")]).status_code == 201
    # A token with feedback and a reading scope reads as that scope allows.
    both = bearer(engineer, "feedback", "export")
    assert both.get(FEEDBACK).status_code == 200 and both.get(ITEMS).status_code == 200


def test_the_token_page_and_its_rest_twin_offer_the_feedback_scope(project, engineer, reviewer) -> None:
    page = session(engineer).get("/settings/tokens/")
    assert page.status_code == 200 and b'value="feedback"' in page.content
    created = post(session(engineer), "/api/v1/tokens/", {"name": "support app", "scopes": ["feedback"]})
    assert created.status_code == 201 and created.json()["scopes"] == ["feedback"]
    assert ApiToken.objects.get(pk=created.json()["id"]).scopes == ["feedback"]
    # A reviewer's role cannot send feedback, so the scope is refused to them.
    refused = post(session(reviewer), "/api/v1/tokens/", {"name": "x", "scopes": ["feedback"]})
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "scopes"
    form = session(engineer).post("/settings/tokens/", {"name": "from the page", "scopes": ["feedback"]})
    assert form.status_code == 201 and ApiToken.objects.filter(name="from the page", scopes=["feedback"]).exists()


def test_feedback_waits_for_its_item_and_joins_when_rest_ingest_brings_it(
    project, engineer, app_client, django_capture_on_commit_callbacks
) -> None:
    sent = post(
        app_client,
        FEEDBACK,
        [
            thumbs("by-trace", trace_id="tr-3"),
            thumbs("by-external", "up", external_id="ext-4"),
            thumbs("x", trace_id="zz"),
        ],
    ).json()
    assert [r["joined"] for r in sent["rows"]] == [False, False, False]

    with django_capture_on_commit_callbacks(execute=True):
        ingested = post(bearer(engineer, "ingest"), ITEMS, [item_row(3), item_row(4), item_row(5)])
    assert ingested.status_code == 201
    third, fourth = Item.objects.get(external_id="ext-3"), Item.objects.get(external_id="ext-4")
    joined = {f.client_id: f for f in Feedback.objects.all()}
    assert (joined["by-trace"].item_id, joined["by-external"].item_id, joined["x"].item_id) == (
        third.pk,
        fourth.pk,
        None,
    )
    assert joined["by-trace"].joined_at is not None

    # Feedback for an item that is there joins at once.
    late = post(app_client, FEEDBACK, [thumbs("late", trace_id="tr-5")]).json()["rows"][0]
    assert late["joined"] and late["item"] == Item.objects.get(external_id="ext-5").pk


def test_the_external_id_wins_over_the_trace_id_and_an_update_joins_too(
    project, engineer, app_client, django_capture_on_commit_callbacks
) -> None:
    make_items(project, 2)  # ext-0 / tr-0, ext-1 / tr-1
    row = post(app_client, FEEDBACK, [thumbs("both", trace_id="tr-0", external_id="ext-1")]).json()["rows"][0]
    assert row["item"] == Item.objects.get(external_id="ext-1").pk

    post(app_client, FEEDBACK, [thumbs("waiting", trace_id="tr-late")])
    # An existing item updated to carry the trace id (a late trace, say) picks the feedback up.
    with django_capture_on_commit_callbacks(execute=True):
        post(bearer(engineer, "ingest"), ITEMS, [item_row(0, trace_id="tr-late")])
    assert Feedback.objects.get(client_id="waiting").item == Item.objects.get(external_id="ext-0")


def test_an_ingest_that_fails_joins_nothing(project, engineer, app_client, django_capture_on_commit_callbacks) -> None:
    post(app_client, FEEDBACK, [thumbs("w", trace_id="tr-3")])
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        bad = post(bearer(engineer, "ingest"), ITEMS, [item_row(3), {"request": ""}])
    assert bad.status_code == 400 and callbacks == []
    assert Feedback.objects.get(client_id="w").item_id is None


def test_the_list_filters_by_item_trace_and_value(project, curator, engineer, reviewer, app_client) -> None:
    make_items(project, 2)
    post(
        app_client,
        FEEDBACK,
        [
            thumbs("a", "down", trace_id="tr-0"),
            thumbs("b", "up", trace_id="tr-0"),
            {"client_id": "c", "kind": "rating", "value": 5, "trace_id": "tr-1"},
            thumbs("d", "down", trace_id="tr-waiting", comment="<script>alert(1)</script>"),
        ],
    )
    client = session(curator)
    first = Item.objects.get(external_id="ext-0")
    listing = client.get(FEEDBACK).json()
    assert [r["client_id"] for r in listing["results"]] == ["a", "b", "c", "d"]
    assert listing["results"][3]["item"] is None and listing["results"][3]["comment"] == "<script>alert(1)</script>"
    assert [r["client_id"] for r in client.get(FEEDBACK, {"item": first.pk}).json()["results"]] == ["a", "b"]
    assert [r["client_id"] for r in client.get(FEEDBACK, {"value": "down"}).json()["results"]] == ["a", "d"]
    assert [r["client_id"] for r in client.get(FEEDBACK, {"value": "5"}).json()["results"]] == ["c"]
    assert [r["client_id"] for r in client.get(FEEDBACK, {"trace_id": "tr-0"}).json()["results"]] == ["a", "b"]
    row = client.get(FEEDBACK, {"trace_id": "tr-1"}).json()["results"][0]
    assert (row["kind"], row["value"], row["origin"]) == ("rating", "5", "api")
    assert client.get(FEEDBACK, {"value": "sideways"}).status_code == 400
    assert session(engineer).get(FEEDBACK).status_code == 200
    assert bearer(engineer, "export").get(FEEDBACK).status_code == 200
    assert session(reviewer).get(FEEDBACK).status_code == 403  # reviewers judge without the end users' verdict


def test_the_summary_counts_thumbs_ratings_and_the_latest_comments(
    project, app_client, django_assert_num_queries
) -> None:
    make_items(project, 3)
    now = timezone.now()
    rows = [
        thumbs("a", "up", trace_id="tr-0"),
        thumbs("b", "down", trace_id="tr-0", comment="oldest", created_at=(now - timedelta(hours=3)).isoformat()),
        {"client_id": "c", "kind": "rating", "value": 4, "trace_id": "tr-0"},
        {"client_id": "d", "kind": "rating", "value": 1, "trace_id": "tr-0", "comment": "newest"},
        {
            "client_id": "e",
            "kind": "comment",
            "comment": "middle",
            "trace_id": "tr-0",
            "created_at": (now - timedelta(hours=1)).isoformat(),
        },
        {
            "client_id": "f",
            "kind": "comment",
            "comment": "older",
            "trace_id": "tr-0",
            "created_at": (now - timedelta(hours=2)).isoformat(),
        },
        thumbs("g", "down", trace_id="tr-1"),
    ]
    post(app_client, FEEDBACK, rows)
    first, second, third = Item.objects.filter(project=project).order_by("id")
    with django_assert_num_queries(2):
        summaries = feedback_summary_for_items([first.pk, second.pk, third.pk])
    assert set(summaries) == {first.pk, second.pk}
    one = summaries[first.pk]
    assert (one.total, one.up, one.down, one.ratings, one.mean_rating, one.comments) == (6, 1, 1, 2, 2.5, 4)
    assert [c.text for c in one.latest_comments] == ["newest", "middle", "older"]
    assert (summaries[second.pk].down, summaries[second.pk].latest_comments) == (1, ())

    client = session(member(project, "curator", username="cleo"))
    api = client.get("/api/v1/projects/support/feedback/summary/", {"item": f"{first.pk},{third.pk}"}).json()
    assert list(api) == [str(first.pk)] and api[str(first.pk)]["mean_rating"] == 2.5
    assert client.get("/api/v1/projects/support/feedback/summary/", {"item": "x"}).status_code == 400


def test_the_adjudication_page_shows_the_end_users_feedback_block(project, curator, reviewer, app_client) -> None:
    make_items(project, 1)
    item = Item.objects.get(external_id="ext-0")
    post(
        app_client,
        FEEDBACK,
        [
            thumbs("a", "down", trace_id="tr-0", comment="<img src=x onerror=alert(1)> wrong plan"),
            thumbs("b", "up", trace_id="tr-0"),
            {"client_id": "c", "kind": "rating", "value": 3, "trace_id": "tr-0"},
        ],
    )
    block = session(curator).get(f"/projects/support/items/{item.pk}/feedback/")
    assert block.status_code == 200
    html = block.content.decode()
    assert "data-end-user-feedback" in html and "3.0 / 5" in html
    assert "thumbs up <strong>1</strong>" in html and "thumbs down <strong>1</strong>" in html
    assert '<span class="count">3</span>' in html
    assert "&lt;img src=x onerror=alert(1)&gt; wrong plan" in html and "<img src=x" not in html
    assert session(reviewer).get(f"/projects/support/items/{item.pk}/feedback/").status_code == 403
    assert session(curator).get("/projects/support/items/999999/feedback/").status_code == 404
    make_items(project, 1, start=1)
    quiet = Item.objects.get(external_id="ext-1")
    empty = session(curator).get(f"/projects/support/items/{quiet.pk}/feedback/")
    assert empty.status_code == 200 and b"No feedback from end users" in empty.content


def test_the_deciding_page_loads_the_block(project, reviewer, reviewer2, curator) -> None:
    from reviewapp.services.projects import project_set_reviews_per_item
    from reviewapp.services.queue import queue_next
    from reviewapp.services.reviews import review_submit

    project = project_set_reviews_per_item(project=project, reviews_per_item=2, wait=True)
    make_items(project, 1)
    for user, correct in ((reviewer, True), (reviewer2, False)):
        lease = queue_next(project=project, user=user)
        assert lease is not None
        review_submit(assignment_id=lease.pk, user=user, answers={"correct": correct, "helpfulness": 3})
    item = Item.objects.get(external_id="ext-0")
    page = session(curator).get(f"/projects/support/adjudicate/{item.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'hx-get="/projects/support/items/{item.pk}/feedback/"' in html
    # Its own target: inside the decision form it would otherwise inherit the form's (the whole panel).
    assert 'hx-target="this" hx-swap="outerHTML" data-end-user-feedback-slot' in html


def test_the_schema_documents_the_feedback_endpoints(db, settings) -> None:
    settings.API_DOCS_PUBLIC = True
    paths = Client().get("/api/schema/", {"format": "json"}).json()["paths"]
    assert set(paths["/api/v1/projects/{slug}/feedback/"]) == {"get", "post"}
    assert paths["/api/v1/projects/{slug}/feedback/"]["post"]["operationId"] == "feedback_send"
    assert "get" in paths["/api/v1/projects/{slug}/feedback/summary/"]


def test_sampling_rules_can_ask_which_traces_got_a_thumbs_down(project, app_client) -> None:
    from pipelines.sources.feedback import feedback_thumbs_down_keys

    make_items(project, 1)
    post(
        app_client,
        FEEDBACK,
        [
            thumbs("a", "down", trace_id="tr-0"),  # joined
            thumbs("b", "down", trace_id="tr-waiting"),  # still waiting: it counts too
            thumbs("c", "up", trace_id="tr-up"),
            {"client_id": "d", "kind": "rating", "value": 1, "trace_id": "tr-rated"},
        ],
    )
    asked = ["tr-0", "tr-waiting", "tr-up", "tr-rated", "tr-none"]
    assert feedback_thumbs_down_keys(project=project, trace_ids=asked) == {"tr-0", "tr-waiting"}


def test_deleting_an_item_keeps_its_feedback_waiting(project, app_client) -> None:
    make_items(project, 1)
    post(app_client, FEEDBACK, [thumbs("a", trace_id="tr-0")])
    Item.objects.filter(external_id="ext-0").delete()
    kept = Feedback.objects.get(client_id="a")
    assert kept.item_id is None and kept.trace_id == "tr-0"
