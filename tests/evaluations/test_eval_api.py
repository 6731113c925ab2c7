"""The evaluations REST API at its interface: HTTP in, JSON and database state out."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from evaluations.models import Run, RunChunk, Suite
from evaluations.services.chunks import run_chunk_execute
from reviewapp.models import Item
from reviewapp.services.tokens import api_token_create
from tests.evaluations.conftest import curate, ingest, rag_row
from tests.factories import ProjectFactory, member

SUITES = "/api/v1/projects/support/suites/"
RUNS = "/api/v1/runs/"


def session(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def bearer(user: Any, *scopes: str, project: Any = None) -> Client:
    _, raw = api_token_create(user=user, name="ci", scopes=list(scopes), project=project)
    return Client(headers={"authorization": f"Bearer {raw}"})


def execute(run_id: int) -> None:
    for chunk_id in RunChunk.objects.filter(run_id=run_id).values_list("pk", flat=True):
        run_chunk_execute(chunk_id=chunk_id)


@pytest.fixture
def api(engineer) -> Client:
    return session(engineer)


@pytest.fixture
def suite_id(api: Client) -> int:
    response = api.post(
        SUITES,
        {"name": "Core", "scorers": ["test_judge", "pii", {"scorer": "token_f1", "threshold": 0.4}]},
        content_type="application/json",
    )
    assert response.status_code == 201, response.json()
    return int(response.json()["id"])


def test_create_list_read_and_version_a_suite(api: Client, suite_id: int) -> None:
    listed = api.get(SUITES).json()
    assert [s["name"] for s in listed["results"]] == ["Core"] and listed["next"] is None
    suite = api.get(f"{SUITES}{suite_id}/").json()
    assert suite["project"] == "support" and [v["number"] for v in suite["versions"]] == [1]
    assert suite["versions"][0]["scorers"][2] == {
        "name": "token_f1",
        "scorer": "token_f1",
        "threshold": 0.4,
        "params": {},
        "human_question": "correct",
    }
    created = api.post(
        f"{SUITES}{suite_id}/versions/",
        {"scorers": ["pii"], "config": {"max_error_rate": 0.5}},
        content_type="application/json",
    )
    assert (
        created.status_code == 201
        and created.json()["number"] == 2
        and created.json()["config"]["max_error_rate"] == 0.5
    )
    assert [v["number"] for v in api.get(f"{SUITES}{suite_id}/").json()["versions"]] == [2, 1]


def test_bad_definitions_are_400_with_field_errors(api: Client, suite_id: int) -> None:
    response = api.post(
        SUITES,
        {"name": "Bad", "scorers": ["pii", {"scorer": "token_f1", "threshold": 7}, "bleu"]},
        content_type="application/json",
    )
    assert response.status_code == 400
    fields = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert set(fields) == {"scorers[1].threshold", "scorers[2].scorer"}
    assert not Suite.objects.filter(name="Bad").exists()
    response = api.post(
        f"{SUITES}{suite_id}/versions/",
        {"scorers": [{"scorer": "pii", "params": {"kinds": "email"}}]},
        content_type="application/json",
    )
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "scorers[0].params.kinds"


def test_start_a_run_read_its_progress_results_and_metrics(
    api: Client, suite_id: int, project, rag_questions, reviewer
) -> None:
    items = ingest(project, [rag_row(n, metadata={"verdict": n % 2 == 0}) for n in range(5)])
    curate(items[0], reviewer, {"correct": False})
    response = api.post(
        RUNS,
        {"project": "support", "suite": suite_id, "dataset": {"model_version": "1"}},
        content_type="application/json",
    )
    assert response.status_code == 201, response.json()
    run = response.json()
    assert run["status"] == "queued" and run["progress"]["items_total"] == 5 and run["progress"]["percent"] == 0
    assert run["suite_name"] == "Core" and run["suite_version"] == 1 and run["target"] == {"kind": "stored"}
    execute(run["id"])

    detail = api.get(f"{RUNS}{run['id']}/").json()
    assert (
        detail["status"] == "succeeded"
        and detail["progress"]["rows_done"] == 5
        and detail["progress"]["percent"] == 100
    )
    assert detail["duration_seconds"] >= 0 and detail["mlflow"] == {
        "logged": False,
        "run_id": "",
        "experiment_id": "",
        "error": "",
        "url": "",
    }
    judge = next(m for m in detail["metrics"] if m["scorer"] == "test_judge")
    assert judge["pass_rate"] == pytest.approx(3 / 5) and judge["n_judged"] == 5
    assert judge["alignment"]["n"] == 1 and judge["alignment"]["accuracy"] == 0.0
    assert judge["alignment"]["confusion"]["judge_pass_human_fail"] == 1

    page = api.get(f"{RUNS}{run['id']}/results/", {"page_size": 4}).json()
    seen = [r["id"] for r in page["results"]]
    while page["next"]:
        page = api.get(page["next"]).json()
        seen += [r["id"] for r in page["results"]]
    assert len(seen) == len(set(seen)) == 5 * 3
    failing = api.get(f"{RUNS}{run['id']}/results/", {"scorer": "test_judge", "passed": "false"}).json()["results"]
    assert {r["item"] for r in failing} == {items[1].pk, items[3].pk}
    assert failing[0]["source_type"] == "LLM_JUDGE" and failing[0]["value"] is False
    assert api.get(f"{RUNS}{run['id']}/results/", {"passed": "maybe"}).status_code == 400

    listed = api.get(RUNS, {"project": "support"}).json()["results"]
    assert [r["id"] for r in listed] == [run["id"]]


def test_start_refuses_bad_input(api: Client, suite_id: int, project) -> None:
    ingest(project, [rag_row(0)])
    bad = api.post(
        RUNS,
        {"project": "support", "suite": suite_id, "dataset": {"shape": "round"}, "target": {"kind": "x"}},
        content_type="application/json",
    )
    assert bad.status_code == 400
    assert {e["field"] for e in bad.json()["errors"]} == {"dataset.shape", "target.kind"}
    assert (
        api.post(
            RUNS, {"project": "support", "suite": suite_id, "version": 9}, content_type="application/json"
        ).status_code
        == 404
    )
    assert not Run.objects.exists()


def test_cancel_and_conflict(api: Client, suite_id: int, project) -> None:
    ingest(project, [rag_row(n) for n in range(3)])
    run = api.post(RUNS, {"project": "support", "suite": suite_id}, content_type="application/json").json()
    cancelled = api.post(f"{RUNS}{run['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = api.post(f"{RUNS}{run['id']}/cancel/")
    assert again.status_code == 409 and "only queued or running" in again.json()["detail"]


def test_compare_and_disagreements(api: Client, suite_id: int, project, rag_questions, reviewer) -> None:
    items = ingest(project, [rag_row(n, metadata={"verdict": True}) for n in range(3)])
    curate(items[0], reviewer, {"correct": False})
    a = api.post(RUNS, {"project": "support", "suite": suite_id}, content_type="application/json").json()["id"]
    execute(a)
    Item.objects.filter(pk=items[1].pk).update(metadata={"verdict": False})
    b = api.post(RUNS, {"project": "support", "suite": suite_id}, content_type="application/json").json()["id"]
    execute(b)
    comparison = api.get("/api/v1/runs/compare/", {"a": a, "b": b}).json()
    assert comparison["paired_by"] == "item" and comparison["n_pairs"] == 3
    assert (comparison["n_shared"], comparison["only_a"], comparison["only_b"]) == (3, 0, 0)
    assert comparison["summary"] == "compared on 3 shared items"
    judge = next(s for s in comparison["scorers"] if s["scorer"] == "test_judge")
    assert judge["regressed"] == 1 and judge["changes"][0]["item_b"] == items[1].pk
    assert judge["changes"][0]["direction"] == "regressed" and judge["pass_rate_diff"] == pytest.approx(-1 / 3)
    assert api.get("/api/v1/runs/compare/", {"a": a}).status_code == 404

    listed = api.get(f"{RUNS}{b}/disagreements/", {"scorer": "test_judge"}).json()
    assert listed == [{"item": items[0].pk, "with_humans": ["test_judge"], "between_judges": []}]
    sent = api.post(
        f"{RUNS}{b}/disagreements/", {"scorers": ["test_judge"], "priority": 7}, content_type="application/json"
    )
    assert sent.json() == {"items": 1, "prioritised": 1, "flagged": 1}
    assert Item.objects.get(pk=items[0].pk).priority == 7


def test_access_engineers_only_and_tokens_need_the_evaluate_scope(
    project, suite_id: int, reviewer, outsider, engineer
) -> None:
    assert session(reviewer).get(SUITES).status_code == 403
    assert session(outsider).get(SUITES).status_code == 404
    assert session(outsider).get(f"{RUNS}").json()["results"] == []
    assert bearer(engineer, "ingest").get(SUITES).status_code == 403
    assert bearer(engineer, "ingest").get(RUNS).status_code == 403
    token = bearer(engineer, "evaluate")
    assert token.get(SUITES).status_code == 200
    ingest(project, [rag_row(0)])
    started = token.post(RUNS, {"project": "support", "suite": suite_id}, content_type="application/json")
    assert started.status_code == 201
    other = ProjectFactory(slug="other")
    member(other, "engineer", username="eddie")
    pinned = bearer(engineer, "evaluate", project=other)
    assert pinned.get(f"{RUNS}{started.json()['id']}/").status_code == 404
    assert pinned.get(RUNS).json()["results"] == []
    # another project's suite id under this project's slug is not found
    assert session(engineer).get(f"/api/v1/projects/other/suites/{suite_id}/").status_code == 404
