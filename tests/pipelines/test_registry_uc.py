"""Registry sync and the rollout's alias step on Unity Catalog: real MLflow (registry_uri="databricks-uc",
tracking_uri="databricks") over HTTP against the local Databricks workspace, credentials from settings."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from pipelines.adapters.errors import PermanentPipelineError, TransientPipelineError
from pipelines.models import ModelVersion, Rollout
from pipelines.releases.promotion import promotion_approve, promotion_request, rollback_request
from pipelines.releases.registry import registry_sync, registry_sync_status
from pipelines.releases.rollout import rollout_advance
from tests.evaluations.conftest import ingest, rag_row
from tests.fakes.databricks_api import FakeDatabricks
from tests.fakes.http import Reply, Request
from tests.pipelines import promotion_fixtures
from tests.pipelines.promotion_fixtures import UC_MODEL, databricks_environment, engineers, serve_v1

pytestmark = pytest.mark.django_db
databricks_fake = promotion_fixtures.databricks_fake

MODEL = "main.support.assistant"
UC = "/api/2.0/mlflow/unity-catalog"
ALIAS_PATH = f"{UC}/registered-models/alias"
T1 = "You are Lumen's support assistant.\n{context}\n{question}"
T2 = "Cite every source as [n].\n{context}\n{question}"
T3 = "Answer in one sentence. {question}"


@pytest.fixture
def uc(databricks_fake: FakeDatabricks, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDatabricks]:
    # MLflow reads its HTTP limits from the environment, which the settings publish at process start.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with override_settings(
        MLFLOW_TRACKING_URI="databricks",
        MLFLOW_REGISTRY_URI="databricks-uc",
        DATABRICKS_HOST=databricks_fake.url,
        DATABRICKS_TOKEN=databricks_fake.token,
    ):
        yield databricks_fake


def four_versions(fake: FakeDatabricks) -> None:
    """v1: template as a run param; v2: as a version tag; v3: as a run tag; v4: none at all."""
    fake.add_uc_model_version(
        MODEL,
        1,
        run_id="a" * 32,
        params={"top_k": "1", "llm_endpoint": "small", "prompt_template": T1},
        aliases=["champion"],
        tags={"team": "support"},
        description="first <b>try</b>",
        created_ms=1_700_000_000_000,
    )
    fake.add_uc_model_version(
        MODEL, 2, run_id="b" * 32, params={"top_k": "3"}, tags={"prompt_template": T2}, aliases=["challenger"]
    )
    fake.add_uc_model_version(MODEL, 3, run_id="c" * 32, params={"top_k": "5"}, run_tags={"prompt_template": T3})
    fake.add_uc_model_version(MODEL, 4, run_id="d" * 32, params={"top_k": "8"})


def api_calls(fake: FakeDatabricks) -> list[Request]:
    return [r for r in fake.requests if r.path.startswith("/api/")]


def snapshot(mv: ModelVersion) -> tuple[Any, ...]:
    return (mv.pk, mv.params, mv.prompt_template, mv.aliases, mv.tags, mv.synced_at is not None)


def query(request: Request) -> dict[str, str]:
    return {k: v[0] for k, v in request.query.items()}


def test_sync_copies_uc_versions_with_aliases_tags_params_and_templates(project, uc: FakeDatabricks) -> None:  # type: ignore[no-untyped-def]
    four_versions(uc)
    uc.uc_search_page_size = 3  # two pages: the sync must follow next_page_token
    project.mlflow_registered_model = MODEL
    project.save()

    result = registry_sync(project=project)

    assert (result.created, result.updated, result.deleted, result.missing_runs) == (["1", "2", "3", "4"], [], [], [])
    rows = {mv.version: mv for mv in ModelVersion.objects.filter(project=project, registered_model=MODEL)}
    one, two, three, four = rows["1"], rows["2"], rows["3"], rows["4"]
    assert (one.aliases, two.aliases, three.aliases, four.aliases) == (["champion"], ["challenger"], [], [])
    assert one.params == {"top_k": "1", "llm_endpoint": "small", "prompt_template": T1}
    assert (one.prompt_template, two.prompt_template, three.prompt_template, four.prompt_template) == (T1, T2, T3, "")
    assert (one.tags, two.tags) == ({"team": "support"}, {"prompt_template": T2})
    assert (one.status, one.description, one.run_id) == ("READY", "first <b>try</b>", "a" * 32)
    assert one.source == f"dbfs:/databricks/mlflow-tracking/4242424242424242/{'a' * 32}/artifacts/model"
    assert one.registered_at is not None and int(one.registered_at.timestamp() * 1000) == 1_700_000_000_000
    assert one.uri == f"models:/{MODEL}/1"
    assert registry_sync_status(project=project)["ok"] is True

    calls = api_calls(uc)
    assert all(r.method == "GET" and r.bearer == uc.token for r in calls)
    assert [(r.path, query(r)) for r in calls[:3]] == [
        (f"{UC}/registered-models/get", {"name": MODEL}),
        (f"{UC}/model-versions/search", {"filter": f"name = '{MODEL}'", "max_results": "10000"}),
        (
            f"{UC}/model-versions/search",
            {"filter": f"name = '{MODEL}'", "max_results": "10000", "page_token": query(calls[2])["page_token"]},
        ),
    ]
    # Search results carry no tags or aliases on UC, so each version is read on its own...
    gets = [query(r) for r in calls if r.path == f"{UC}/model-versions/get"]
    assert sorted(g["version"] for g in gets) == ["1", "2", "3", "4"] and {g["name"] for g in gets} == {MODEL}
    # ...then each version's run, from the Databricks tracking server; no artifact API is touched.
    runs = [query(r) for r in calls if r.path == "/api/2.0/mlflow/runs/get"]
    assert sorted(r["run_id"] for r in runs) == ["a" * 32, "b" * 32, "c" * 32, "d" * 32]
    assert len(calls) == 3 + 4 + 4
    # MLflow got the credentials from the adapter's stores, never through the environment.
    assert "DATABRICKS_TOKEN" not in os.environ and "DATABRICKS_HOST" not in os.environ


def test_a_second_sync_changes_nothing_and_an_alias_move_is_picked_up(project, uc: FakeDatabricks) -> None:  # type: ignore[no-untyped-def]
    four_versions(uc)
    project.mlflow_registered_model = MODEL
    project.save()
    registry_sync(project=project)
    before = {mv.version: snapshot(mv) for mv in ModelVersion.objects.all()}

    again = registry_sync(project=project)

    assert (again.created, again.updated, again.unchanged) == ([], [], ["1", "2", "3", "4"])
    after = {mv.version: snapshot(mv) for mv in ModelVersion.objects.all()}
    assert after == before

    uc.model_aliases[(MODEL, "champion")] = 3  # someone moved it in the workspace
    moved = registry_sync(project=project)

    assert sorted(moved.updated) == ["1", "3"]
    assert dict(ModelVersion.objects.values_list("version", "aliases")) == {
        "1": [],
        "2": ["challenger"],
        "3": ["champion"],
        "4": [],
    }


def test_a_wrong_token_fails_permanently_and_writes_nothing(project, uc: FakeDatabricks) -> None:  # type: ignore[no-untyped-def]
    four_versions(uc)
    project.mlflow_registered_model = MODEL
    project.save()

    with override_settings(DATABRICKS_TOKEN="dapi-wrong-token"), pytest.raises(PermanentPipelineError) as failed:
        registry_sync(project=project)

    assert "UNAUTHENTICATED" in failed.value.message and "dapi-wrong-token" not in failed.value.message
    assert not ModelVersion.objects.exists()
    [call] = api_calls(uc)  # a 401 is not retried
    assert (call.method, call.path, call.bearer) == ("GET", f"{UC}/registered-models/get", "dapi-wrong-token")
    status = registry_sync_status(project=project)
    assert status["ok"] is False and "dapi-wrong-token" not in status["error"]
    assert "DATABRICKS_TOKEN" not in os.environ


def test_missing_credentials_an_unknown_model_and_a_two_level_name_are_permanent(project, uc: FakeDatabricks) -> None:  # type: ignore[no-untyped-def]
    four_versions(uc)
    project.mlflow_registered_model = "main.support.nope"
    project.save()
    with pytest.raises(PermanentPipelineError, match="does not exist"):
        registry_sync(project=project)
    assert query(api_calls(uc)[-1]) == {"name": "main.support.nope"}

    project.mlflow_registered_model = "support.assistant"
    project.save()
    calls = len(uc.requests)
    with pytest.raises(PermanentPipelineError, match="three-level name"):
        registry_sync(project=project)

    project.mlflow_registered_model = MODEL
    project.save()
    with override_settings(DATABRICKS_TOKEN=""), pytest.raises(PermanentPipelineError, match="DATABRICKS_TOKEN"):
        registry_sync(project=project)
    assert len(uc.requests) == calls and not ModelVersion.objects.exists()


def test_a_503_is_transient_fails_fast_and_leaves_the_rows_as_they_were(project, uc: FakeDatabricks) -> None:  # type: ignore[no-untyped-def]
    four_versions(uc)
    project.mlflow_registered_model = MODEL
    project.save()
    registry_sync(project=project)
    before = list(ModelVersion.objects.order_by("version").values_list("version", "aliases", "synced_at"))
    uc.model_aliases[(MODEL, "champion")] = 2
    unavailable = Reply(503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "The service is unavailable."})
    uc.fail_next(10, unavailable, path=rf"{UC}/model-versions/get")
    calls = len(api_calls(uc))

    started = time.monotonic()
    with pytest.raises(TransientPipelineError):
        registry_sync(project=project)

    assert time.monotonic() - started < 5
    tried = api_calls(uc)[calls:]
    assert [r.path for r in tried] == [
        f"{UC}/registered-models/get",
        f"{UC}/model-versions/search",
        f"{UC}/model-versions/get",
        f"{UC}/model-versions/get",  # MLFLOW_HTTP_REQUEST_MAX_RETRIES=1: one retry, then give up
    ]
    after = list(ModelVersion.objects.order_by("version").values_list("version", "aliases", "synced_at"))
    assert after == before
    assert registry_sync_status(project=project)["ok"] is False


@pytest.fixture
def uc_world(project, uc: FakeDatabricks) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Versions 1 and 2 of UC_MODEL synced from the workspace; v1 serves on support-prod and is the champion."""
    uc.add_uc_model_version(UC_MODEL, 1, params={"prompt_template": T1})
    uc.add_uc_model_version(UC_MODEL, 2, params={"prompt_template": T2})
    serve_v1(uc)  # v1 at 100% on support-prod, alias champion -> 1
    project.mlflow_registered_model = UC_MODEL
    project.save()
    registry_sync(project=project)
    v1, v2 = ModelVersion.objects.filter(project=project).order_by("version")
    assert v1.aliases == ["champion"]
    ingest(project, [rag_row(1, request="How do I export my notes?"), rag_row(2, request="Is SSO supported?")])
    erin, ezra, _ = engineers(project)
    env = databricks_environment(project, current_version=v1)
    return {"fake": uc, "project": project, "erin": erin, "ezra": ezra, "v1": v1, "v2": v2, "env": env}


def test_the_rollout_points_the_uc_alias_through_mlflow_and_rollback_moves_it_back(uc_world) -> None:  # type: ignore[no-untyped-def]
    fake: FakeDatabricks = uc_world["fake"]
    req = promotion_request(
        actor=uc_world["erin"], model_version=uc_world["v2"], environment=uc_world["env"], reason="v2 cites"
    )
    promotion_approve(actor=uc_world["ezra"], request_id=req.pk)
    rollout = Rollout.objects.get(request=req)
    mark = len(fake.requests)

    assert rollout_advance(rollout_id=rollout.pk) == "succeeded"

    alias_calls = [r for r in fake.requests[mark:] if r.path == ALIAS_PATH]
    assert [(r.method, query(r), r.json) for r in alias_calls] == [
        ("GET", {"name": UC_MODEL, "alias": "champion"}, None),  # where does it point now? (v1)
        ("POST", {}, {"name": UC_MODEL, "alias": "champion", "version": "2"}),
    ]
    assert all(r.bearer == fake.token for r in alias_calls)
    assert not [r for r in fake.requests if "/api/2.1/unity-catalog/models/" in r.path]  # not the SDK's alias API
    assert fake.uc_alias_of(UC_MODEL, "champion") == "2"
    step = rollout.steps.get(key="alias")
    assert step.detail == {"alias": "champion", "version": "2", "before": "1", "registry": "unity catalog (mlflow)"}
    registry_sync(project=uc_world["project"])
    assert dict(ModelVersion.objects.values_list("version", "aliases")) == {"1": [], "2": ["champion"]}

    back = rollback_request(actor=uc_world["ezra"], request_id=req.pk, reason="uc rollback")
    mark = len(fake.requests)
    assert rollout_advance(rollout_id=back.pk) == "succeeded"

    posts = [r for r in fake.requests[mark:] if r.path == ALIAS_PATH and r.method == "POST"]
    assert [r.json for r in posts] == [{"name": UC_MODEL, "alias": "champion", "version": "1"}]
    assert fake.uc_alias_of(UC_MODEL, "champion") == "1"
    assert fake.routes_of("support-prod") == {"support_assistant-1": 100}


def test_without_a_token_the_sync_uses_the_service_principal_oauth_token(project, uc: FakeDatabricks) -> None:  # type: ignore[no-untyped-def]
    uc.add_service_principal("reviewdesk-sp", "sp-secret")
    four_versions(uc)
    project.mlflow_registered_model = MODEL
    project.save()

    with override_settings(
        DATABRICKS_TOKEN="", DATABRICKS_CLIENT_ID="reviewdesk-sp", DATABRICKS_CLIENT_SECRET="sp-secret"
    ):
        result = registry_sync(project=project)

    assert result.created == ["1", "2", "3", "4"]
    assert ModelVersion.objects.get(version="1").aliases == ["champion"]
    [issued] = uc.issued_tokens  # databricks-sdk's client_credentials token, fetched once
    calls = api_calls(uc)
    assert len(calls) == 1 + 1 + 4 + 4 and all(r.bearer == issued for r in calls)
    assert [r.method for r in uc.requests if r.path == "/oidc/v1/token"] == ["POST"]
    assert not {"DATABRICKS_CLIENT_SECRET", "DATABRICKS_CLIENT_ID", "MLFLOW_ENABLE_DB_SDK"} & set(os.environ)
