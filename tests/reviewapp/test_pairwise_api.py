"""The pairwise REST API: HTTP in, JSON and database state out."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from reviewapp.models import AuditEvent, Item, PairwiseSlot, PairwiseTask, Preference
from reviewapp.services.pairwise import pairwise_next, pairwise_submit, pairwise_tasks_create
from reviewapp.services.tokens import api_token_create
from tests.factories import ProjectFactory, member
from tests.reviewapp.test_pairwise_services import CANDIDATE, CHAMPION, make_pairs, sides

BASE = "/api/v1/projects/support/pairwise"
TASKS, NEXT, PREFERENCES, RESULTS = f"{BASE}/tasks/", f"{BASE}/next/", f"{BASE}/preferences/", f"{BASE}/results/"


def bearer(user: Any, *scopes: str, project: Any = None) -> Client:
    _, raw = api_token_create(user=user, name="test", scopes=list(scopes), project=project)
    return Client(headers={"authorization": f"Bearer {raw}"})


def session(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def pairs(project):
    make_pairs(project, 3)
    pairwise_tasks_create(project=project, version_a=CHAMPION, version_b=CANDIDATE)
    return PairwiseTask.objects.filter(project=project)


# --- create ------------------------------------------------------------------------------------


def test_an_engineer_creates_pairs_and_rerunning_adds_none(project, engineer):
    make_pairs(project, 3)
    client = bearer(engineer, "ingest")
    body = {"version_a": CHAMPION, "version_b": CANDIDATE, "preferences_per_task": 2}
    response = client.post(TASKS, body, "application/json")
    assert response.status_code == 201
    assert response.json() == {"created": 3, "existing": 0, "unmatched_a": 0, "unmatched_b": 0}
    assert PairwiseTask.objects.filter(project=project, preferences_per_task=2).count() == 3
    assert PairwiseSlot.objects.filter(project=project).count() == 6
    again = client.post(TASKS, body, "application/json")
    assert again.status_code == 200
    assert again.json() == {"created": 0, "existing": 3, "unmatched_a": 0, "unmatched_b": 0}
    assert PairwiseTask.objects.count() == 3
    event = AuditEvent.objects.get(action="pairwise.tasks_create")
    assert (event.actor, event.data["created"]) == (engineer, 3)


def test_a_curator_may_create_pairs_with_a_filter(project, curator):
    make_pairs(project, 2, source="chat")
    make_pairs(project, 2, start=2, source="email")
    body = {"version_a": CHAMPION, "version_b": CANDIDATE, "source": "email"}
    response = session(curator).post(TASKS, body, "application/json")
    assert response.status_code == 201 and response.json()["created"] == 2
    assert set(PairwiseTask.objects.values_list("item_a__source", flat=True)) == {"email"}


def test_creating_pairs_checks_input_by_field(project, engineer):
    client = bearer(engineer, "ingest")
    response = client.post(TASKS, {"version_a": "7", "version_b": "7"}, "application/json")
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["version_b"]
    response = client.post(TASKS, {"version_a": "7", "preferences_per_task": 0}, "application/json")
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == {"version_b", "preferences_per_task"}
    assert not PairwiseTask.objects.exists()


def test_only_ingesters_create_pairs(project, reviewer, engineer, outsider):
    make_pairs(project, 1)
    body = {"version_a": CHAMPION, "version_b": CANDIDATE}
    assert session(reviewer).post(TASKS, body, "application/json").status_code == 403
    assert bearer(engineer, "review", "export").post(TASKS, body, "application/json").status_code == 403
    assert session(outsider).post(TASKS, body, "application/json").status_code == 404
    assert Client().post(TASKS, body, "application/json").status_code in (401, 403)
    assert not PairwiseTask.objects.exists()


# --- next --------------------------------------------------------------------------------------


def test_next_leases_a_blind_pair_then_204(project, reviewer, pairs):
    client = bearer(reviewer, "review")
    seen = []
    for _ in range(3):
        response = client.post(NEXT)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"lease", "request", "left", "right"}
        assert set(body["lease"]) == {"id", "token", "expires_at"}
        assert set(body["left"]) == set(body["right"]) == {"response", "retrieved_context"}
        raw = json.dumps(body)
        assert CHAMPION not in raw and CANDIDATE not in raw and "model" not in raw  # blind
        slot = PairwiseSlot.objects.get(pk=body["lease"]["id"])
        assert (slot.reviewer, slot.lease_token) == (reviewer, body["lease"]["token"])
        left, right = sides(slot)
        assert (body["left"]["response"], body["right"]["response"]) == (left.response, right.response)
        assert body["request"] == slot.task.item_a.request  # whatever the sides
        again = client.post(NEXT).json()  # a reload: the same pair, the same sides
        assert (again["lease"], again["left"], again["right"]) == (
            body["lease"] | {"expires_at": again["lease"]["expires_at"]},
            body["left"],
            body["right"],
        )
        seen.append(slot.task_id)
        submitted = client.post(
            PREFERENCES, {"lease": slot.pk, "token": slot.lease_token, "choice": "tie"}, "application/json"
        )
        assert submitted.status_code == 201
    assert sorted(seen) == sorted(pairs.values_list("pk", flat=True))
    assert client.post(NEXT).status_code == 204


def test_next_needs_the_review_scope(project, engineer, pairs):
    assert bearer(engineer, "ingest").post(NEXT).status_code == 403
    assert bearer(engineer, "review").post(NEXT).status_code == 200


# --- preferences -------------------------------------------------------------------------------


def lease_for(client: Client) -> dict[str, Any]:
    response = client.post(NEXT)
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("choice", ["a", "b"])
def test_a_preference_records_the_true_versions_of_the_side_chosen(project, reviewer, pairs, choice):
    client = bearer(reviewer, "review")
    for _ in range(3):
        body = lease_for(client)
        shown = body[{"a": "left", "b": "right"}[choice]]["response"]
        other = body[{"a": "right", "b": "left"}[choice]]["response"]
        payload = {
            "lease": body["lease"]["id"],
            "token": body["lease"]["token"],
            "choice": choice,
            "reason": " clearer ",
            "time_on_task_ms": 4200,
        }
        response = client.post(PREFERENCES, payload, "application/json")
        assert response.status_code == 201
        out = response.json()
        assert set(out) == {"id", "choice", "reason", "time_on_task_ms", "submitted_at"}  # still blind
        assert (out["choice"], out["reason"], out["time_on_task_ms"]) == (choice, "clearer", 4200)
        preference = Preference.objects.select_related("winner_item", "left_item", "right_item").get(pk=out["id"])
        winner = Item.objects.get(project=project, response=shown)
        loser = Item.objects.get(project=project, response=other)
        assert preference.winner_item == winner
        assert (preference.winner_model_version, preference.loser_model_version) == (
            winner.model_version,
            loser.model_version,
        )
        assert (preference.left_item.response, preference.right_item.response) == (
            body["left"]["response"],
            body["right"]["response"],
        )
        assert preference.reviewer == reviewer and preference.outcome == "win"


def test_a_bad_preference_is_400_by_field_and_saves_nothing(project, reviewer, pairs):
    client = bearer(reviewer, "review")
    body = lease_for(client)
    response = client.post(
        PREFERENCES,
        {"lease": body["lease"]["id"], "token": body["lease"]["token"], "choice": "left"},
        "application/json",
    )
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["choice"]
    response = client.post(PREFERENCES, {"choice": "a"}, "application/json")
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == {"lease", "token"}
    assert not Preference.objects.exists()


def test_a_second_submit_is_409_already_submitted(project, reviewer, pairs):
    client = bearer(reviewer, "review")
    body = lease_for(client)
    payload = {"lease": body["lease"]["id"], "token": body["lease"]["token"], "choice": "a"}
    assert client.post(PREFERENCES, payload, "application/json").status_code == 201
    response = client.post(PREFERENCES, payload | {"choice": "b"}, "application/json")
    assert response.status_code == 409 and response.json()["code"] == "already_submitted"
    assert list(Preference.objects.values_list("choice", flat=True)) == ["a"]


def test_a_lost_lease_or_a_wrong_token_is_409_lease_lost(project, reviewer, reviewer2, pairs):
    client = bearer(reviewer, "review")
    body = lease_for(client)
    wrong = {"lease": body["lease"]["id"], "token": "not-the-token", "choice": "a"}
    response = client.post(PREFERENCES, wrong, "application/json")
    assert response.status_code == 409 and response.json()["code"] == "lease_lost"
    PairwiseSlot.objects.filter(pk=body["lease"]["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert pairwise_next(project=project, user=reviewer2).pk == body["lease"]["id"]
    payload = {"lease": body["lease"]["id"], "token": body["lease"]["token"], "choice": "a"}
    response = client.post(PREFERENCES, payload, "application/json")
    assert response.status_code == 409 and response.json()["code"] == "lease_lost"
    assert not Preference.objects.exists()


def test_a_lease_of_another_project_cannot_be_submitted_through_this_one(project, reviewer):
    other = ProjectFactory(slug="other")
    member(other, "reviewer", username="rita")
    make_pairs(other, 1)
    pairwise_tasks_create(project=other, version_a=CHAMPION, version_b=CANDIDATE)
    lease = pairwise_next(project=other, user=reviewer)
    payload = {"lease": lease.pk, "token": lease.lease_token, "choice": "a"}
    response = bearer(reviewer, "review").post(PREFERENCES, payload, "application/json")
    assert response.status_code == 409 and response.json()["code"] == "item_removed"
    assert not Preference.objects.exists()


# --- results -----------------------------------------------------------------------------------


def test_results_need_export_and_count_by_version(project, reviewer, reviewer2, curator, engineer):
    make_pairs(project, 3)
    pairwise_tasks_create(project=project, version_a=CHAMPION, version_b=CANDIDATE, preferences_per_task=2)
    for user, prefer in ((reviewer, CHAMPION), (reviewer2, CANDIDATE)):
        while (lease := pairwise_next(project=project, user=user)) is not None:
            left, _right = sides(lease)
            choice = "a" if left.model_version == prefer else "b"
            pairwise_submit(slot_id=lease.pk, user=user, lease_token=lease.lease_token, choice=choice)
    assert session(reviewer).get(RESULTS).status_code == 403  # reviewers stay blind
    assert bearer(engineer, "review").get(RESULTS).status_code == 403
    response = bearer(engineer, "export").get(RESULTS)
    assert response.status_code == 200
    [row] = response.json()["results"]
    assert {k: row[k] for k in ("version_a", "version_b", "tasks", "wins", "losses", "ties", "both_bad", "n")} == {
        "version_a": CHAMPION,
        "version_b": CANDIDATE,
        "tasks": 3,
        "wins": 3,  # rita's three, from whichever side
        "losses": 3,
        "ties": 0,
        "both_bad": 0,
        "n": 3,  # pairs with a decisive judgement
    }
    assert row["decisive"] == 6
    # Each pair split 1-1 (value 0.5): the rate over pairs is 0.5 and the bootstrap over pairs has nothing to vary.
    assert (row["win_rate"], row["ci_low"], row["ci_high"]) == (0.5, 0.5, 0.5)
    assert session(curator).get(RESULTS).json() == response.json()


# --- schema ------------------------------------------------------------------------------------


def test_the_schema_documents_the_pairwise_operations(db, settings):
    settings.API_DOCS_PUBLIC = True  # the operator's choice; tests/security covers the default
    schema = Client().get("/api/schema/", {"format": "json"}).json()
    operations = {
        path: {method: op["operationId"] for method, op in ops.items()}
        for path, ops in schema["paths"].items()
        if "/pairwise/" in path
    }
    assert operations == {
        "/api/v1/projects/{slug}/pairwise/tasks/": {"post": "pairwise_tasks_create"},
        "/api/v1/projects/{slug}/pairwise/next/": {"post": "pairwise_next"},
        "/api/v1/projects/{slug}/pairwise/preferences/": {"post": "pairwise_preferences_submit"},
        "/api/v1/projects/{slug}/pairwise/results/": {"get": "pairwise_results"},
    }
    submit = schema["paths"]["/api/v1/projects/{slug}/pairwise/preferences/"]["post"]
    assert {"201", "400", "409"} <= set(submit["responses"])  # plus the 401/403/404/415 every operation has
    side = schema["components"]["schemas"]["PairwiseSide"]
    assert set(side["properties"]) == {"response", "retrieved_context"}
