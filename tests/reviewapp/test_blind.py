"""Blind review at its interfaces: what each role sees of an item (REST and pages), the admins'
settings that turn it off, and the queue spacing answers to the same request apart."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.test import Client
from django.urls import reverse

from reviewapp.blind import (
    metadata_for_reviewer,
    metadata_key_identifies_version,
    request_hash,
)
from reviewapp.models import Assignment, AuditEvent, Item, Project
from reviewapp.services.ingest import items_ingest
from reviewapp.services.queue import queue_next
from reviewapp.services.reviews import review_submit
from reviewapp.services.tokens import api_token_create
from tests.factories import item_row, member

BASE = "/api/v1/projects/support"
GOOD = {"correct": True, "helpfulness": 4}
# Values that must never reach a blind reviewer, anywhere in a response body.
SECRETS = ("support-bot-secret", "v-secret-7", "tr-secret", "src-secret", "ext-secret", "ep-secret", "run-secret")
IDENTITY = {"external_id", "model_name", "model_version", "trace_id", "source"}


def identified_row(n: int, **overrides: Any) -> dict[str, Any]:
    return item_row(
        n,
        external_id=f"ext-secret-{n}",
        model_name="support-bot-secret",
        model_version="v-secret-7",
        trace_id=f"tr-secret-{n}",
        source="src-secret",
        metadata={"channel": "chat", "model_endpoint": "ep-secret", "info": {"runId": "run-secret", "lang": "en"}},
        **overrides,
    )


def bearer(user: Any, *scopes: str) -> Client:
    _, raw = api_token_create(user=user, name="test", scopes=list(scopes))
    return Client(headers={"authorization": f"Bearer {raw}"})


def session(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def patch(client: Client, url: str, body: Any) -> Any:
    return client.patch(url, json.dumps(body), content_type="application/json")


@pytest.fixture
def admin(project):  # type: ignore[no-untyped-def]
    return member(project, "admin", username="ada")


@pytest.fixture
def identified(project):  # type: ignore[no-untyped-def]
    items_ingest(project=project, rows=[identified_row(n) for n in range(3)])
    return list(Item.objects.filter(project=project).order_by("id"))


def assert_blind(body: Any) -> None:
    text = json.dumps(body)
    for secret in SECRETS:
        assert secret not in text, f"{secret} leaked to a blind reviewer"


# --- which metadata keys identify a version ---------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "model",
        "model_name",
        "modelVersion",
        "version",
        "app_versions",
        "endpoint",
        "serving_endpoint_name",
        "deployment",
        "deployment_id",
        "trace",
        "mlflow.traceRequestId",
        "run_id",
        "RUN-ID",
        "mlflow.sourceRun",
        "experiment",
        "checkpoint",
        "variant",
        "llm",
        "Models",
    ],
)
def test_keys_naming_a_model_version_endpoint_trace_or_run_identify_a_version(key):
    assert metadata_key_identifies_version(key)


@pytest.mark.parametrize(
    "key", ["channel", "lang", "runtime", "tone", "n", "topic", "user_segment", "latency_ms", "remodel", "conversion"]
)
def test_other_keys_do_not(key):
    assert not metadata_key_identifies_version(key)


def test_metadata_for_reviewer_drops_those_keys_at_any_depth():
    metadata = {"channel": "chat", "model": "m", "info": {"runId": "r", "lang": "en"}, "tags": [{"endpoint": "e"}]}
    assert metadata_for_reviewer(metadata) == {"channel": "chat", "info": {"lang": "en"}, "tags": [{}]}


# --- siblings: one request, several answers -----------------------------------------------------------


def test_the_request_hash_ignores_whitespace_and_a_lone_user_turn():
    chat = {"messages": [{"role": "user", "content": "How do I  reset?"}]}
    assert request_hash(" How do I\nreset? ") == request_hash("How do I reset?") == request_hash(chat)
    assert request_hash("How do I reset?") != request_hash("How do I reset it?")
    assert len(request_hash("x")) == 32


def test_ingest_stores_the_request_hash_and_keeps_it_in_step(project):
    items_ingest(project=project, rows=[item_row(1, request="Same?"), item_row(2, request=" Same? ")])
    first, second = Item.objects.filter(project=project).order_by("id")
    assert first.request_hash == second.request_hash == request_hash("Same?")
    items_ingest(project=project, rows=[item_row(2, request="Different now")])
    second.refresh_from_db()
    assert second.request_hash == request_hash("Different now") != first.request_hash


def test_the_migration_fills_the_hash_of_items_that_have_none(project):
    items_ingest(
        project=project, rows=[item_row(1), item_row(2, request={"messages": [{"role": "user", "content": "a"}]})]
    )
    Item.objects.update(request_hash="")
    migration = importlib.import_module("reviewapp.migrations.0006_blind_review_and_sibling_spacing")
    migration.fill_request_hash(django_apps, None)
    assert {i.request_hash for i in Item.objects.all()} == {request_hash(item_row(1)["request"]), request_hash("a")}


# --- the reviewer's REST view of an item ---------------------------------------------------------------


def test_a_reviewer_gets_blind_items_from_every_endpoint_by_default(project, identified, reviewer):
    client = bearer(reviewer, "review")
    lease = client.post(f"{BASE}/queue/next/").json()
    assert_blind(lease)
    assert IDENTITY.isdisjoint(lease["item"]) and lease["item"]["id"] == identified[0].pk
    assert lease["item"]["metadata"] == {"channel": "chat", "info": {"lang": "en"}}

    review = client.post(
        f"{BASE}/reviews/", {"assignment": lease["assignment"]["id"], "answers": GOOD}, "application/json"
    )
    assert review.status_code == 201 and "item_external_id" not in review.json()
    assert_blind(review.json())
    detail = client.get(f"/api/v1/reviews/{review.json()['id']}/")
    assert detail.status_code == 200 and "item_external_id" not in detail.json()
    edited = patch(client, f"/api/v1/reviews/{review.json()['id']}/", {"comment": "fine"})
    assert edited.status_code == 200 and "item_external_id" not in edited.json()

    flag = client.post(f"{BASE}/flags/", {"item": identified[0].pk, "kind": "unsafe"}, "application/json")
    assert flag.status_code == 201
    assert_blind(flag.json())

    listed = session(reviewer).get(f"{BASE}/items/")
    assert listed.status_code == 200 and len(listed.json()["results"]) == 3
    assert_blind(listed.json())


@pytest.mark.parametrize("field", ["model_version", "source", "external_id"])
def test_a_blind_reviewer_cannot_filter_items_on_a_hidden_field(project, identified, reviewer, field):
    response = session(reviewer).get(f"{BASE}/items/?{field}=x")
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_a_reviewer_sees_models_when_the_project_shows_them(project, identified, reviewer, admin):
    assert patch(session(admin), f"{BASE}/queue-settings/", {"show_model_to_reviewers": True}).status_code == 200
    client = bearer(reviewer, "review")
    item = client.post(f"{BASE}/queue/next/").json()["item"]
    assert item["model_version"] == "v-secret-7" and item["trace_id"] == "tr-secret-0"
    assert item["external_id"] == "ext-secret-0" and item["source"] == "src-secret"
    assert item["metadata"]["model_endpoint"] == "ep-secret"
    listed = session(reviewer).get(f"{BASE}/items/?model_version=v-secret-7").json()["results"]
    assert len(listed) == 3 and listed[0]["model_name"] == "support-bot-secret"


@pytest.mark.parametrize("role", ["curator", "engineer", "admin"])
def test_curators_engineers_and_admins_always_see_models(project, identified, role):
    user = member(project, role, username=f"someone-{role}")
    client = session(user)
    item = client.post(f"{BASE}/queue/next/").json()["item"]
    assert item["model_version"] == "v-secret-7" and item["external_id"] == "ext-secret-0"
    assert item["metadata"]["info"] == {"runId": "run-secret", "lang": "en"}
    listed = client.get(f"{BASE}/items/?model_version=v-secret-7").json()["results"]
    assert {i["trace_id"] for i in listed} == {"tr-secret-0", "tr-secret-1", "tr-secret-2"}


# --- the reviewer's pages --------------------------------------------------------------------------------


def test_the_review_page_my_reviews_and_the_review_page_are_blind(project, identified, reviewer):
    client = session(reviewer)
    page = client.get(reverse("review-page", args=["support"])).content.decode()
    assert f"item #{identified[0].pk}" in page
    assert_blind(page)
    lease = Assignment.objects.get(reviewer=reviewer)
    review = review_submit(assignment_id=lease.pk, user=reviewer, answers=GOOD)
    for url in (reverse("review-list"), reverse("review-detail", args=[review.pk])):
        html = client.get(url).content.decode()
        assert f"item #{identified[0].pk}" in html
        assert_blind(html)


def test_the_pages_show_models_to_curators_and_when_turned_on(project, identified, reviewer, curator):
    html = session(curator).get(reverse("review-page", args=["support"])).content.decode()
    assert "v-secret-7" in html and "ext-secret-0" in html
    Project.objects.filter(pk=project.pk).update(show_model_to_reviewers=True)
    client = session(reviewer)
    html = client.get(reverse("review-page", args=["support"])).content.decode()
    assert "support-bot-secret · vv-secret-7" in html and "ext-secret-1" in html
    review = review_submit(assignment_id=Assignment.objects.get(reviewer=reviewer).pk, user=reviewer, answers=GOOD)
    assert "ext-secret-1" in client.get(reverse("review-list")).content.decode()
    assert "ext-secret-1" in client.get(reverse("review-detail", args=[review.pk])).content.decode()


def test_my_reviews_decides_per_project(project, identified, reviewer, curator):
    """One reviewer, two projects: blind in one, shown in the other; the page is still one query per row set."""
    other = Project.objects.create(name="Other", slug="other", show_model_to_reviewers=True)
    from tests.factories import standard_questions

    standard_questions(other)
    member(other, "reviewer", username="rita")
    items_ingest(project=other, rows=[identified_row(9)])
    for p in (project, other):
        lease = queue_next(project=p, user=reviewer)
        review_submit(assignment_id=lease.pk, user=reviewer, answers=GOOD)
    html = session(reviewer).get(reverse("review-list")).content.decode()
    assert "ext-secret-9" in html and "ext-secret-0" not in html


# --- pairwise stays unlabeled, whatever the setting ----------------------------------------------------------


def test_the_pairwise_page_never_labels_its_sides(project, reviewer):
    from reviewapp.services.pairwise import pairwise_tasks_create

    rows = [
        item_row(n, external_id=f"{v}-{n}", request=f"Question {n}?", model_version=v, trace_id=f"tr-{v}-{n}")
        for n in range(2)
        for v in ("champion-9", "candidate-10")
    ]
    items_ingest(project=project, rows=rows)
    pairwise_tasks_create(project=project, version_a="champion-9", version_b="candidate-10")
    Project.objects.filter(pk=project.pk).update(show_model_to_reviewers=True)  # pairwise stays blind even so
    html = session(reviewer).get(reverse("pairwise-page", args=["support"])).content.decode()
    assert "Response A" in html and "Response B" in html
    for leak in ("champion", "candidate", "support-bot", "tr-"):
        assert leak not in html
    api = bearer(reviewer, "review").post(f"{BASE}/pairwise/next/").json()
    assert set(api["left"]) == set(api["right"]) == {"response", "retrieved_context"}
    assert "champion" not in json.dumps(api) and "candidate" not in json.dumps(api)


# --- settings: admins only, audited ------------------------------------------------------------------------


def test_only_admins_change_the_blind_settings_and_each_change_is_audited(project, curator, admin):
    settings_url = f"{BASE}/queue-settings/"
    shown = session(curator).get(settings_url).json()
    assert shown["show_model_to_reviewers"] is False and shown["sibling_spacing"] == 10
    refused = patch(session(curator), settings_url, {"show_model_to_reviewers": True, "gold_rate": 0.2})
    assert refused.status_code == 403 and "show_model_to_reviewers" in refused.json()["detail"]
    assert patch(bearer(curator, "curate"), settings_url, {"sibling_spacing": 3}).status_code == 403
    project.refresh_from_db()
    assert (project.show_model_to_reviewers, project.sibling_spacing, project.gold_rate) == (False, 10, 0.0)

    for bad in (-1, 1001, "many"):
        response = patch(session(admin), settings_url, {"sibling_spacing": bad})
        assert response.status_code == 400 and response.json()["errors"][0]["field"] == "sibling_spacing"
    ok = patch(session(admin), settings_url, {"show_model_to_reviewers": True, "sibling_spacing": 4})
    assert ok.status_code == 200 and ok.json()["show_model_to_reviewers"] is True and ok.json()["sibling_spacing"] == 4
    project.refresh_from_db()
    assert (project.show_model_to_reviewers, project.sibling_spacing) == (True, 4)
    event = AuditEvent.objects.filter(action="project.queue_settings").latest("id")
    assert event.data == {
        "from": {"show_model_to_reviewers": False, "sibling_spacing": 10},
        "to": {"show_model_to_reviewers": True, "sibling_spacing": 4},
    }
    assert patch(session(curator), settings_url, {"gold_rate": 0.2}).status_code == 200  # curators keep theirs


def test_the_queue_page_form_lets_admins_change_them_and_shows_curators(project, curator, admin):
    url = reverse("assignments-settings", args=["support"])
    form = {"queue_mode": "shared", "gold_rate": "0", "lease_seconds": "600", "sibling_spacing": "2"}
    assert session(curator).post(url, {**form, "show_model_to_reviewers": "on"}).status_code == 302
    project.refresh_from_db()
    assert (project.show_model_to_reviewers, project.sibling_spacing) == (False, 10)  # disabled for curators
    page = session(curator).get(reverse("assignments-page", args=["support"])).content.decode()
    assert "admins change these" in page and "blind review, siblings 10 items apart" in page
    assert session(admin).post(url, {**form, "show_model_to_reviewers": "on"}).status_code == 302
    project.refresh_from_db()
    assert (project.show_model_to_reviewers, project.sibling_spacing) == (True, 2)
    assert session(admin).post(url, {**form, "sibling_spacing": "-3"}).status_code == 422


# --- the queue spaces siblings apart -----------------------------------------------------------------------


def two_versions_per_request(project: Project, requests: int) -> None:
    """Each request answered by versions 1 and 2, ingested side by side (siblings have adjacent ids)."""
    rows = [
        item_row(n * 2 + v, request=f"Question {n}?", model_version=str(v + 1))
        for n in range(requests)
        for v in range(2)
    ]
    items_ingest(project=project, rows=rows)


def take_the_whole_queue(project: Project, user: Any) -> list[str]:
    """The reviewer takes every item over REST; the request hash of each, in the order served."""
    client = bearer(user, "review")
    order = []
    while (response := client.post(f"{BASE}/queue/next/")).status_code == 200:
        lease = response.json()
        order.append(Item.objects.get(pk=lease["item"]["id"]).request_hash)
        body = {"assignment": lease["assignment"]["id"], "answers": GOOD}
        assert client.post(f"{BASE}/reviews/", body, "application/json").status_code == 201
    assert response.status_code == 204
    return order


def too_close(order: list[str], k: int) -> list[int]:
    """Positions whose item has a sibling among the k items served just before it."""
    return [i for i, h in enumerate(order) if h in order[max(0, i - k) : i]]


@pytest.mark.parametrize(("requests", "spacing"), [(20, 3), (30, 5)])
@pytest.mark.slow
def test_siblings_come_at_least_k_items_apart(project, reviewer, admin, requests, spacing):
    assert patch(session(admin), f"{BASE}/queue-settings/", {"sibling_spacing": spacing}).status_code == 200
    two_versions_per_request(project, requests)
    order = take_the_whole_queue(project, reviewer)
    assert len(order) == 2 * requests and len(set(order)) == requests  # every answer served once
    assert too_close(order, spacing) == []


def test_without_spacing_siblings_come_back_to_back(project, reviewer, admin):
    """The same data with spacing off: the test above would fail without the rule."""
    assert patch(session(admin), f"{BASE}/queue-settings/", {"sibling_spacing": 0}).status_code == 200
    two_versions_per_request(project, 20)
    order = take_the_whole_queue(project, reviewer)
    assert len(too_close(order, 3)) == 20


def test_default_spacing_holds_until_only_siblings_are_left(project, reviewer):
    """K = 10 over 20 requests: near the end only siblings of the last items remain, and they are
    served anyway (a reviewer is never told "nothing left" while work remains); every sibling served
    closer than K was served when nothing else was open to the reviewer."""
    two_versions_per_request(project, 20)
    order = take_the_whole_queue(project, reviewer)
    assert len(order) == 40
    close = too_close(order, 10)
    assert close  # this data cannot be fully spaced: the fallback must have served something
    for i in close:
        left = order[i:]  # what was still open when position i was served
        assert set(left) <= set(order[i - 10 : i]), f"position {i} served a sibling while others were open"


def test_the_only_item_left_is_served_even_next_to_its_sibling(project, reviewer):
    items_ingest(project=project, rows=[item_row(1, request="Same?"), item_row(2, request="Same?")])
    order = take_the_whole_queue(project, reviewer)
    assert len(order) == 2 and order[0] == order[1]


def test_spacing_is_per_reviewer_and_two_reviewers_never_share_a_slot(project, reviewer, reviewer2):
    two_versions_per_request(project, 6)
    first = queue_next(project=project, user=reviewer)
    review_submit(assignment_id=first.pk, user=reviewer, answers=GOOD)
    other = queue_next(project=project, user=reviewer2)  # rita's window is not rob's
    assert other.item.request_hash == first.item.request_hash and other.item_id != first.item_id
    review_submit(assignment_id=other.pk, user=reviewer2, answers=GOOD)
    leased = [first.pk, other.pk]
    while True:
        leases = [queue_next(project=project, user=u) for u in (reviewer, reviewer2)]
        if not any(leases):
            break
        for lease in filter(None, leases):
            leased.append(lease.pk)
            review_submit(assignment_id=lease.pk, user=lease.reviewer, answers=GOOD)
    assert len(leased) == len(set(leased)) == 12
