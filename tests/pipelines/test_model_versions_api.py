"""REST API: model versions (list, detail with evidence, diff and gates), sync, and gates; who may call it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from pipelines.models import Environment, ModelVersion, PromotionGate
from reviewapp.services.tokens import api_token_create
from tests.factories import ProjectFactory, member
from tests.pipelines.evidence_helpers import log_version, model_version, registry_create, reviews_for

pytestmark = [
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

BASE = "/api/v1/projects/support"
VERSIONS = f"{BASE}/model-versions/"
GATES = f"{BASE}/gates/"


def session(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def bearer(user: Any, *scopes: str, project: Any = None) -> Client:
    _, raw = api_token_create(user=user, name="ci", scopes=list(scopes), project=project)
    return Client(headers={"authorization": f"Bearer {raw}"})


@pytest.fixture
def versions(project):  # type: ignore[no-untyped-def]
    project.mlflow_registered_model = "support-bot"
    project.save()
    v1 = model_version(
        project, "1", aliases=["champion"], params={"top_k": "1", "llm": "small"}, prompt_template="Hi\n{q}\nBye"
    )
    v2 = model_version(project, "2", params={"top_k": "3", "llm": "small"}, prompt_template="Hi\n{q}\nCite [n]\nBye")
    Environment.objects.create(project=project, name="production", alias="champion", current_version=v1)
    Environment.objects.create(project=project, name="staging", alias="staging")
    return v1, v2


def test_list_pages_newest_first_with_environments_and_evidence(project, versions, engineer, reviewer) -> None:
    reviews_for(project, "2", [{"correct": True}] * 18 + [{"correct": False}] * 2, reviewer)
    client = session(engineer)

    first = client.get(VERSIONS, {"page_size": 1})

    assert first.status_code == 200
    (row,) = first.json()["results"]
    assert (row["version"], row["status"], row["environments"], row["uri"]) == (
        "2",
        "READY",
        [],
        "models:/support-bot/2",
    )
    assert row["evidence"]["reviews"] == 20 and row["evidence"]["pass_low"] == pytest.approx(0.69897, abs=1e-4)
    second = client.get(first.json()["next"]).json()
    assert [(r["version"], r["aliases"], r["environments"]) for r in second["results"]] == [
        ("1", ["champion"], ["production"])
    ]
    assert second["next"] is None


def test_detail_has_params_template_diff_evidence_and_a_gate_report_per_environment(
    project, versions, engineer, reviewer
) -> None:
    reviews_for(project, "2", [{"correct": True}] * 5, reviewer)
    staging = Environment.objects.get(name="staging")
    PromotionGate.objects.create(project=project, kind="min_reviews", params={"count": 5})
    PromotionGate.objects.create(project=project, environment=staging, kind="min_reviews", params={"count": 50})

    body = session(engineer).get(f"{VERSIONS}2/").json()

    assert body["version"] == "2" and body["champion"] == "1" and body["is_champion"] is False
    assert body["prompt_template"] == "Hi\n{q}\nCite [n]\nBye"
    diff = body["diff_against_champion"]
    assert [(r["key"], r["changed"]) for r in diff["params"]] == [("llm", False), ("top_k", True)]
    assert [(line["kind"], line["text"]) for line in diff["prompt_template"]] == [
        ("same", "Hi"),
        ("same", "{q}"),
        ("add", "Cite [n]"),
        ("same", "Bye"),
    ]
    assert body["evidence"]["candidate"]["human"]["primary"]["passes"] == 5
    assert body["evidence"]["champion"]["human"]["reviews"] == 0
    gates = {g["environment"]: (g["passed"], len(g["lines"])) for g in body["gates"]}
    assert gates == {"production": (True, 1), "staging": (False, 2)}

    champion = session(engineer).get(f"{VERSIONS}1/").json()
    assert champion["is_champion"] is True and champion["diff_against_champion"] is None
    assert session(engineer).get(f"{VERSIONS}9/").status_code == 404


def test_reviewers_curators_and_export_tokens_are_refused(project, versions, reviewer, curator, engineer, outsider):
    for client, expected in [
        (session(reviewer), 403),
        (session(curator), 403),
        (session(outsider), 404),
        (bearer(engineer, "export", "evaluate"), 403),
        (bearer(engineer, "promote"), 200),
        (Client(), 401),
    ]:
        assert client.get(VERSIONS).status_code == expected, client
        assert client.get(f"{VERSIONS}2/").status_code == expected
        assert client.get(GATES).status_code == expected
    other = ProjectFactory(slug="other")
    member(other, "engineer", username="eddie")
    assert bearer(engineer, "promote", project=other).get(VERSIONS).status_code == 404
    # another project's version is not found under its own slug
    model_version(other, "7")
    assert session(engineer).get("/api/v1/projects/other/model-versions/2/").status_code == 404
    assert session(engineer).get(f"{VERSIONS}7/").status_code == 404


def test_gates_are_read_by_engineers_and_changed_by_admins(project, versions, engineer) -> None:
    admin = member(project, "admin", username="ada")
    created = session(admin).post(
        GATES,
        {"kind": "min_reviews", "params": {"count": 5}, "environment": "staging"},
        content_type="application/json",
    )
    assert created.status_code == 201
    gate = created.json()
    # The deprecated kind name is still accepted, and stored under the new one.
    assert (gate["kind"], gate["environment"], gate["params"]) == ("min_items", "staging", {"count": 5})
    assert gate["title"].startswith("At least 5 reviewed items")

    assert session(engineer).get(GATES).json()[0]["id"] == gate["id"]
    refused = session(engineer).post(
        GATES, {"kind": "min_reviews", "params": {"count": 1}}, content_type="application/json"
    )
    assert refused.status_code == 403
    assert session(engineer).delete(f"{GATES}{gate['id']}/").status_code == 403

    bad = session(admin).post(
        GATES, {"kind": "min_pass_rate", "params": {"threshold": 2}}, content_type="application/json"
    )
    assert bad.status_code == 400
    assert {e["field"] for e in bad.json()["errors"]} == {"params.threshold"}

    patched = bearer(admin, "promote").patch(
        f"{GATES}{gate['id']}/", {"params": {"count": 9}, "enabled": False}, content_type="application/json"
    )
    assert patched.status_code == 200 and patched.json()["params"] == {"count": 9} and not patched.json()["enabled"]
    assert session(admin).delete(f"{GATES}{gate['id']}/").status_code == 204
    assert not PromotionGate.objects.exists()


@pytest.mark.slow
def test_sync_now_reads_the_registry(project, engineer, settings, tmp_path: Path, monkeypatch) -> None:
    registry = registry_create(tmp_path)
    log_version(registry, model="api-sync", params={"top_k": "2"}, prompt_template="T {q}")
    settings.MLFLOW_TRACKING_URI = registry.uri
    settings.MLFLOW_REGISTRY_URI = ""
    project.mlflow_registered_model = "api-sync"
    project.save()
    client = bearer(engineer, "promote")

    response = client.post(f"{VERSIONS}sync/")

    assert response.status_code == 200 and response.json()["created"] == ["1"]
    assert ModelVersion.objects.get().prompt_template == "T {q}"

    project.mlflow_registered_model = "missing-model"
    project.save()
    assert client.post(f"{VERSIONS}sync/").status_code == 400
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:1"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    assert client.post(f"{VERSIONS}sync/").status_code == 503
    assert bearer(engineer, "export").post(f"{VERSIONS}sync/").status_code == 403


def test_openapi_schema_documents_the_endpoints(db, settings) -> None:
    settings.API_DOCS_PUBLIC = True  # the operator's choice; tests/security covers the default
    schema = Client().get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    assert "get" in paths["/api/v1/projects/{slug}/model-versions/"]
    assert "post" in paths["/api/v1/projects/{slug}/model-versions/sync/"]
    assert "get" in paths["/api/v1/projects/{slug}/model-versions/{version}/"]
    assert set(paths["/api/v1/projects/{slug}/gates/{id}/"]) == {"get", "patch", "delete"}


def test_the_list_runs_a_fixed_number_of_queries(project, versions, engineer, reviewer) -> None:
    client = session(engineer)
    reviews_for(project, "2", [{"correct": True}] * 3, reviewer)
    client.get(VERSIONS)  # warm the session and content types

    def count() -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as ctx:
            assert client.get(VERSIONS).status_code == 200
        return len(ctx.captured_queries)

    few = count()
    for n in range(3, 9):
        model_version(project, str(n))
        reviews_for(project, str(n), [{"correct": False}], reviewer)
    assert count() == few
