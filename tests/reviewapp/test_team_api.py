"""Team review over REST: assignments, groups, queue settings, flags, gold, send-back, audit;
who may call what; blind review; and conflicting submissions from two tabs."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from reviewapp.models import (
    Assignment,
    AuditEvent,
    Flag,
    GoldAnswer,
    Item,
    Membership,
    Review,
    ReviewerGroup,
    ReviewRevision,
)
from reviewapp.services.gold import gold_answer_set
from reviewapp.services.queue import queue_next
from reviewapp.services.reviews import review_submit
from reviewapp.services.tokens import api_token_create
from tests.factories import make_items, member

GOOD = {"correct": True, "helpfulness": 4}
ROB = re.compile(r"\brob\b")  # reviewer2's username as a word ("problem" contains "rob")
BASE = "/api/v1/projects/support"


def bearer(user: Any, *scopes: str) -> Client:
    _, raw = api_token_create(user=user, name="test", scopes=list(scopes))
    return Client(headers={"authorization": f"Bearer {raw}"})


def session(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post(client: Client, url: str, body: Any) -> Any:
    return client.post(url, json.dumps(body), content_type="application/json")


def patch(client: Client, url: str, body: Any) -> Any:
    return client.patch(url, json.dumps(body), content_type="application/json")


@pytest.fixture
def items(project):
    make_items(project, 4)
    return list(Item.objects.filter(project=project).order_by("id"))


# --- who may call what -------------------------------------------------------------------------

CURATOR_GETS = [
    "/assignments/",
    "/groups/",
    "/queue-settings/",
    "/flags/",
    "/gold/",
    "/gold/accuracy/",
    "/audit/",
]


@pytest.mark.parametrize("path", CURATOR_GETS)
def test_curator_endpoints_are_for_curators_only(project, items, reviewer, curator, engineer, outsider, path):
    assert session(curator).get(BASE + path).status_code == 200
    assert session(reviewer).get(BASE + path).status_code == 403
    assert session(engineer).get(BASE + path).status_code == 403  # engineers export, they do not curate
    assert session(outsider).get(BASE + path).status_code == 404
    assert bearer(curator, "curate").get(BASE + path).status_code == 200
    assert bearer(curator, "review", "export").get(BASE + path).status_code == 403  # needs the curate scope


def test_reviewers_cannot_curate_anything(project, items, reviewer):
    client = session(reviewer)
    item = items[0]
    attempts = [
        post(client, f"{BASE}/assignments/", {"filter": {}, "reviewers": ["rita"]}),
        post(client, f"{BASE}/groups/", {"name": "mine"}),
        patch(client, f"{BASE}/queue-settings/", {"queue_mode": "assigned"}),
        post(client, f"{BASE}/gold/", {"item": item.pk, "answers": GOOD}),
        client.delete(f"{BASE}/gold/{item.pk}/"),
        post(client, f"{BASE}/items/{item.pk}/send-back/", {}),
    ]
    assert [r.status_code for r in attempts] == [403] * len(attempts)
    assert not ReviewerGroup.objects.exists() and not GoldAnswer.objects.exists()
    assert not Assignment.objects.filter(assigned_to__isnull=False).exists()


# --- assignments ---------------------------------------------------------------------------------


def test_bulk_assign_by_filter_then_list_the_slots(project, items, reviewer, reviewer2, curator):
    client = bearer(curator, "curate")
    make_items(project, 2, start=10, model_version="2")
    response = post(
        client,
        f"{BASE}/assignments/",
        {"filter": {"model_version": "2"}, "reviewers": ["rob"], "priority": 3},
    )
    assert response.status_code == 200, response.content
    assert response.json() == {
        "items": 2,
        "slots_to_reviewers": 2,
        "slots_to_group": 0,
        "slots_unassigned": 0,
        "priority_set": 2,
    }
    assigned = Assignment.objects.filter(assigned_to=reviewer2)
    assert assigned.count() == 2 and set(assigned.values_list("priority", flat=True)) == {3}
    listed = client.get(f"{BASE}/assignments/", {"assigned_to": "rob"}).json()["results"]
    assert [row["item"] for row in listed] == list(assigned.order_by("id").values_list("item_id", flat=True))
    assert listed[0]["state"] == "free" and listed[0]["priority"] == 3 and listed[0]["reviewer"] is None
    queue_next(project=project, user=reviewer2)
    leased = client.get(f"{BASE}/assignments/", {"state": "leased"}).json()["results"]
    assert [row["reviewer"] for row in leased] == ["rob"]
    assert len(client.get(f"{BASE}/assignments/", {"unassigned": "true"}).json()["results"]) == 4
    event = AuditEvent.objects.get(action="assignments.assign")
    assert event.actor == curator and event.data["filter"] == {"model_version": "2"}


def test_bulk_assign_reports_every_bad_field(project, items, curator, outsider):
    client = session(curator)
    response = post(
        client,
        f"{BASE}/assignments/",
        {"filter": {"metadata": {"bad key": 1}}, "reviewers": ["rita", "otto"]},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "reviewers"  # otto is not a reviewer here
    response = post(client, f"{BASE}/assignments/", {"filter": {"metadata": {"bad key": 1}}, "unassign": True})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "filter.metadata.bad key"
    response = post(client, f"{BASE}/assignments/", {"filter": {"created_from": "yesterday"}, "priority": 1})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "filter.created_from"
    response = post(client, f"{BASE}/assignments/", {"filter": {}})
    assert response.status_code == 400  # nothing to do
    response = post(client, f"{BASE}/assignments/", {"filter": {}, "group": 12345})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "group"
    assert not AuditEvent.objects.filter(action="assignments.assign").exists()


def test_groups_create_update_delete(project, items, reviewer, reviewer2, curator):
    client = session(curator)
    created = post(client, f"{BASE}/groups/", {"name": "experts", "members": ["rita"]})
    assert created.status_code == 201 and created.json()["members"] == ["rita"]
    group_id = created.json()["id"]
    assert post(client, f"{BASE}/groups/", {"name": "experts"}).status_code == 400  # names are unique
    updated = patch(client, f"{BASE}/groups/{group_id}/", {"members": ["rita", "rob"]})
    assert updated.json()["members"] == ["rita", "rob"]
    assigned = post(client, f"{BASE}/assignments/", {"filter": {}, "group": group_id})
    assert assigned.json()["slots_to_group"] == 4
    assert client.get(f"{BASE}/groups/").json()[0]["name"] == "experts"
    assert client.delete(f"{BASE}/groups/{group_id}/").status_code == 204
    assert not Assignment.objects.filter(assigned_group__isnull=False).exists()
    assert client.get(f"{BASE}/groups/{group_id}/").status_code == 404


def test_queue_settings(project, curator):
    client = session(curator)
    assert client.get(f"{BASE}/queue-settings/").json() == {
        "queue_mode": "shared",
        "gold_rate": 0.0,
        "lease_seconds": 600,
        "reviews_per_item": 1,
        "show_model_to_reviewers": False,
        "sibling_spacing": 10,
    }
    response = patch(client, f"{BASE}/queue-settings/", {"queue_mode": "assigned", "gold_rate": 0.1})
    assert response.status_code == 200 and response.json()["queue_mode"] == "assigned"
    project.refresh_from_db()
    assert (project.queue_mode, project.gold_rate) == ("assigned", 0.1)
    assert patch(client, f"{BASE}/queue-settings/", {"gold_rate": 2}).status_code == 400
    assert patch(client, f"{BASE}/queue-settings/", {"queue_mode": "chaos"}).status_code == 400


# --- flags ---------------------------------------------------------------------------------------


def test_a_reviewer_flags_the_item_they_hold_and_curators_see_it(project, items, reviewer, reviewer2, curator):
    client = bearer(reviewer, "review")
    lease = client.post(f"{BASE}/queue/next/").json()
    item_id = lease["item"]["id"]
    first = post(client, f"{BASE}/flags/", {"item": item_id, "kind": "unsafe", "note": "medical advice"})
    assert first.status_code == 201 and first.json()["kind"] == "unsafe"
    again = post(client, f"{BASE}/flags/", {"item": item_id, "kind": "unsafe", "note": "dosage"})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert Flag.objects.get().note == "dosage"
    # An item they neither hold nor reviewed is not theirs to flag (and does not leak).
    other = post(client, f"{BASE}/flags/", {"item": items[-1].pk, "kind": "unsafe"})
    assert other.status_code == 404
    assert post(client, f"{BASE}/flags/", {"item": item_id, "kind": "other"}).status_code == 400  # needs a note
    # The flag does not block the review.
    submitted = post(client, f"{BASE}/reviews/", {"assignment": lease["assignment"]["id"], "answers": GOOD})
    assert submitted.status_code == 201
    assert client.get(f"{BASE}/flags/").status_code == 403
    listed = bearer(curator, "curate").get(f"{BASE}/flags/").json()["results"]
    assert [(f["item"], f["kind"], f["created_by"]) for f in listed] == [(item_id, "unsafe", "rita")]


# --- gold ----------------------------------------------------------------------------------------


def test_gold_answers_over_the_api(project, items, curator):
    client = bearer(curator, "curate")
    item = items[0]
    created = post(client, f"{BASE}/gold/", {"item": item.pk, "answers": {"correct": "pass"}, "note": "see KB"})
    assert created.status_code == 201 and created.json()["answers"] == {"correct": True}
    replaced = post(client, f"{BASE}/gold/", {"item": item.pk, "answers": {"correct": False, "helpfulness": 2}})
    assert replaced.status_code == 200
    assert GoldAnswer.objects.get().answers == {"correct": False, "helpfulness": 2}
    bad = post(client, f"{BASE}/gold/", {"item": items[1].pk, "answers": {"helpfulness": 9}})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "answers.helpfulness"
    assert post(client, f"{BASE}/gold/", {"item": 999999, "answers": GOOD}).status_code == 404
    assert [g["item"] for g in client.get(f"{BASE}/gold/").json()["results"]] == [item.pk]
    assert client.get(f"{BASE}/gold/{item.pk}/").json()["note"] == ""
    assert client.delete(f"{BASE}/gold/{item.pk}/").status_code == 204
    assert client.get(f"{BASE}/gold/{item.pk}/").status_code == 404
    assert not GoldAnswer.objects.exists()


def test_a_reviewer_never_reads_gold_answers_and_cannot_tell_gold_from_ordinary(project, items, reviewer, curator):
    gold_answer_set(
        project=project,
        item=items[0],
        answers={"correct": False, "issue": "ungrounded"},
        actor=curator,
        note="SECRET-RATIONALE",
    )
    project.gold_rate = 1.0
    project.save(update_fields=["gold_rate"])
    client = bearer(reviewer, "review")
    gold_lease = client.post(f"{BASE}/queue/next/")
    assert gold_lease.json()["item"]["id"] == items[0].pk
    post(client, f"{BASE}/reviews/", {"assignment": gold_lease.json()["assignment"]["id"], "answers": GOOD})
    ordinary = client.post(f"{BASE}/queue/next/").json()
    assert ordinary["item"]["id"] != items[0].pk
    assert set(gold_lease.json()) == set(ordinary) and set(gold_lease.json()["item"]) == set(ordinary["item"])
    assert set(gold_lease.json()["assignment"]) == set(ordinary["assignment"])
    assert b"SECRET-RATIONALE" not in gold_lease.content and b"gold" not in gold_lease.content.lower()
    for path in (f"{BASE}/gold/", f"{BASE}/gold/{items[0].pk}/", f"{BASE}/gold/accuracy/"):
        assert client.get(path).status_code == 403
        assert session(reviewer).get(path).status_code == 403
    accuracy = bearer(curator, "curate").get(f"{BASE}/gold/accuracy/").json()
    assert accuracy == [
        {
            "reviewer": "rita",
            "n": 1,
            "correct": 0,
            "accuracy": 0.0,
            "ci_low": pytest.approx(0.0, abs=1e-9),
            "ci_high": pytest.approx(0.7935, abs=1e-3),
            "per_question": {"correct": {"correct": 0, "n": 1}, "issue": {"correct": 0, "n": 1}},
        }
    ]


# --- send back -----------------------------------------------------------------------------------


def test_send_back_over_the_api(project, items, reviewer, reviewer2, curator):
    lease = queue_next(project=project, user=reviewer)
    done = review_submit(assignment_id=lease.pk, user=reviewer, answers=GOOD)
    client = bearer(curator, "curate")
    response = post(client, f"{BASE}/items/{done.item_id}/send-back/", {"reviews": [done.pk], "reason": "too lenient"})
    assert response.status_code == 200 and response.json() == {"returned": [done.pk], "reopened": 1}
    done.refresh_from_db()
    assert done.returned_at is not None and done.return_reason == "too lenient"
    assert Assignment.objects.get(pk=lease.pk).submitted_at is None
    assert post(client, f"{BASE}/items/{done.item_id}/send-back/", {}).status_code == 400  # nothing left
    assert post(client, f"{BASE}/items/999999/send-back/", {}).status_code == 404
    # The reviewer still reads their returned review, sees it was returned, and cannot edit it.
    mine = bearer(reviewer, "review")
    detail = mine.get(f"/api/v1/reviews/{done.pk}/").json()
    assert detail["returned_at"] is not None
    edit = patch(mine, f"/api/v1/reviews/{done.pk}/", {"answers": {"correct": False, "helpfulness": 1}})
    assert edit.status_code == 409 and edit.json()["code"] == "review_returned"
    # Exporters see it, marked returned.
    exported = bearer(curator, "export").get(f"{BASE}/reviews/").json()["results"]
    assert [(r["id"], r["returned_at"] is not None) for r in exported] == [(done.pk, True)]


# --- audit ---------------------------------------------------------------------------------------


def test_audit_log_is_newest_first_filterable_and_paged(project, items, reviewer, curator):
    for _ in range(3):
        lease = queue_next(project=project, user=reviewer)
        review_submit(assignment_id=lease.pk, user=reviewer, answers=GOOD)
    client = bearer(curator, "curate")
    everything = client.get(f"{BASE}/audit/").json()["results"]
    assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)
    submits = client.get(f"{BASE}/audit/", {"action": "review.submit"}).json()
    assert len(submits["results"]) == 3 and {e["actor"] for e in submits["results"]} == {"rita"}
    first_page = client.get(f"{BASE}/audit/", {"action": "review.submit", "page_size": 2}).json()
    assert len(first_page["results"]) == 2 and first_page["next"]
    second_page = client.get(first_page["next"]).json()
    assert [e["id"] for e in first_page["results"] + second_page["results"]] == [e["id"] for e in submits["results"]]


# --- blind review --------------------------------------------------------------------------------


def test_blind_review_a_reviewer_never_sees_other_answers_or_identities(project, reviewer, reviewer2, curator):
    project.reviews_per_item = 2
    project.save(update_fields=["reviews_per_item"])
    make_items(project, 1)
    lease = queue_next(project=project, user=reviewer2)
    theirs = review_submit(
        assignment_id=lease.pk, user=reviewer2, answers={"correct": False, "helpfulness": 1}, comment="ROB-SAYS-NO"
    )
    # An export token made while rita was a curator; she is a reviewer now, so the role decides.
    Membership.objects.filter(project=project, user=reviewer).update(role="curator")
    exporter = bearer(reviewer, "review", "export")
    Membership.objects.filter(project=project, user=reviewer).update(role="reviewer")
    for client in (exporter, session(reviewer)):
        nxt = client.post(f"{BASE}/queue/next/")
        assert nxt.status_code == 200 and nxt.json()["item"]["id"] == theirs.item_id
        assert "ROB-SAYS-NO" not in nxt.content.decode() and not ROB.search(nxt.content.decode())
        assert client.get(f"{BASE}/reviews/").status_code == 403  # listing reviews is export
        assert client.get(f"{BASE}/reviews/", {"item": theirs.item_id}).status_code == 403
        assert client.get(f"/api/v1/reviews/{theirs.pk}/").status_code == 403
        assert client.get(f"{BASE}/audit/").status_code == 403
    page = session(reviewer).get(f"/projects/{project.slug}/review/")
    assert "ROB-SAYS-NO" not in page.content.decode() and not ROB.search(page.content.decode())
    assert session(reviewer).get(f"/reviews/{theirs.pk}/").status_code == 403
    # ...and not after submitting their own either: identities and answers stay with curators.
    mine = post(session(reviewer), f"{BASE}/reviews/", {"assignment": nxt.json()["assignment"]["id"], "answers": GOOD})
    assert mine.status_code == 201 and b"ROB-SAYS-NO" not in mine.content
    assert session(reviewer).get(f"/api/v1/reviews/{theirs.pk}/").status_code == 403
    # Curators see all.
    both = bearer(curator, "export").get(f"{BASE}/reviews/").json()["results"]
    assert {r["reviewer"] for r in both} == {"rita", "rob"}


# --- conflicting submissions ------------------------------------------------------------------


def test_two_tabs_share_one_lease_and_the_second_submit_is_409_and_loses_nothing(project, items, reviewer):
    tab1, tab2 = bearer(reviewer, "review"), bearer(reviewer, "review")
    a, b = tab1.post(f"{BASE}/queue/next/").json(), tab2.post(f"{BASE}/queue/next/").json()
    assert a["assignment"]["id"] == b["assignment"]["id"]  # a second tab never takes a second item
    slot = a["assignment"]["id"]
    first = post(tab1, f"{BASE}/reviews/", {"assignment": slot, "answers": GOOD, "comment": "tab one"})
    second = post(tab2, f"{BASE}/reviews/", {"assignment": slot, "answers": {"correct": False, "helpfulness": 1}})
    assert first.status_code == 201
    assert second.status_code == 409 and second.json()["code"] == "already_submitted"
    assert "already submitted" in second.json()["detail"]
    saved = Review.objects.get()
    assert saved.answers == GOOD and saved.comment == "tab one"  # the first is kept, not overwritten
    assert Item.objects.get(pk=saved.item_id).review_count == 1
    # The second tab's answers go in as an edit: the first ones stay in the history.
    edited = patch(tab2, f"/api/v1/reviews/{saved.pk}/", {"answers": {"correct": False, "helpfulness": 1}})
    assert edited.status_code == 200
    assert ReviewRevision.objects.get(review=saved).answers == GOOD


def test_two_tabs_editing_one_review_keep_every_version(project, items, reviewer):
    lease = queue_next(project=project, user=reviewer)
    done = review_submit(assignment_id=lease.pk, user=reviewer, answers=GOOD)
    tab1, tab2 = session(reviewer), session(reviewer)
    assert (
        patch(tab1, f"/api/v1/reviews/{done.pk}/", {"answers": {"correct": True, "helpfulness": 5}}).status_code == 200
    )
    assert (
        patch(tab2, f"/api/v1/reviews/{done.pk}/", {"answers": {"correct": False, "helpfulness": 2}}).status_code == 200
    )
    history = list(ReviewRevision.objects.filter(review=done).order_by("id").values_list("answers", flat=True))
    assert history == [GOOD, {"correct": True, "helpfulness": 5}]


def test_skip_in_one_tab_then_submit_in_the_other_is_409(project, items, reviewer):
    tab1, tab2 = bearer(reviewer, "review"), bearer(reviewer, "review")
    slot = tab1.post(f"{BASE}/queue/next/").json()["assignment"]["id"]
    assert post(tab1, f"/api/v1/assignments/{slot}/skip/", {"reason": "later"}).status_code == 204
    response = post(tab2, f"{BASE}/reviews/", {"assignment": slot, "answers": GOOD})
    assert response.status_code == 409 and response.json()["code"] == "lease_lost"
    assert not Review.objects.exists()


def test_a_stale_lease_someone_else_took_is_409(project, items, reviewer, reviewer2):
    mine = queue_next(project=project, user=reviewer)
    Assignment.objects.filter(pk=mine.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    theirs = queue_next(project=project, user=reviewer2)
    assert theirs.pk == mine.pk
    response = post(bearer(reviewer, "review"), f"{BASE}/reviews/", {"assignment": mine.pk, "answers": GOOD})
    assert response.status_code == 409 and response.json()["code"] == "lease_lost"
    assert not Review.objects.exists()
    assert Assignment.objects.get(pk=mine.pk).reviewer == reviewer2


# --- schema --------------------------------------------------------------------------------------


def test_the_schema_documents_the_team_endpoints(db, settings):
    settings.API_DOCS_PUBLIC = True  # the operator's choice; tests/security covers the default
    schema = Client().get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    expected = {
        "/api/v1/projects/{slug}/assignments/": {"get": "assignments_list", "post": "assignments_bulk_assign"},
        "/api/v1/projects/{slug}/groups/": {"get": "groups_list", "post": "groups_create"},
        "/api/v1/projects/{slug}/groups/{id}/": {
            "get": "groups_retrieve",
            "patch": "groups_update",
            "delete": "groups_delete",
        },
        "/api/v1/projects/{slug}/queue-settings/": {"get": "queue_settings_retrieve", "patch": "queue_settings_update"},
        "/api/v1/projects/{slug}/flags/": {"get": "flags_list", "post": "flags_create"},
        "/api/v1/projects/{slug}/gold/": {"get": "gold_list", "post": "gold_set"},
        "/api/v1/projects/{slug}/gold/{item_id}/": {"get": "gold_retrieve", "delete": "gold_delete"},
        "/api/v1/projects/{slug}/gold/accuracy/": {"get": "gold_accuracy"},
        "/api/v1/projects/{slug}/items/{id}/send-back/": {"post": "items_send_back"},
        "/api/v1/projects/{slug}/audit/": {"get": "audit_list"},
    }
    for path, operations in expected.items():
        assert {method: op["operationId"] for method, op in paths[path].items()} == operations, path
    bulk = schema["components"]["schemas"]["AssignmentBulkAssignInputRequest"]["properties"]
    assert set(bulk) == {"filter", "reviewers", "group", "priority", "unassign"}


def test_only_members_who_may_review_can_be_assigned(project, items, curator, outsider):
    member(project, "engineer", username="eve")  # engineers may review
    response = post(session(curator), f"{BASE}/assignments/", {"filter": {}, "reviewers": ["eve", "otto", "nobody"]})
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == "Not a reviewer of this project: otto, nobody."
    assert not Assignment.objects.filter(assigned_to__isnull=False).exists()
