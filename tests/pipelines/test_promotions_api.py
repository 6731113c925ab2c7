"""The promotions REST API: access rules and refusals; then end to end on the local MLflow server with
a real Celery worker: engineer A requests, engineer B approves, the worker rolls out, the endpoint
answers on localhost, rollback."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import requests
from django.test import Client

from pipelines.demo_models import demo_models_ensure
from pipelines.models import Environment, PromotionRequest
from pipelines.releases.serving import local_serving_stop_all
from pipelines.wiring import mlflow_config
from reviewapp.services.tokens import api_token_create
from tests.evaluations.conftest import ingest, rag_row
from tests.pipelines.promotion_fixtures import databricks_environment, engineers, versions
from tests.workers import wait_for


def session(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def bearer(user: Any, *scopes: str) -> Client:
    _, raw = api_token_create(user=user, name="ci", scopes=list(scopes), project=None)
    return Client(headers={"authorization": f"Bearer {raw}"})


@pytest.fixture
def world(project):  # type: ignore[no-untyped-def]
    erin, ezra, ada = engineers(project)
    v1, _v2 = versions(project, 1, 2)
    env = databricks_environment(project, current_version=v1)
    return {"erin": erin, "ezra": ezra, "ada": ada, "env": env, "project": project}


def request_payload(**over: Any) -> dict[str, Any]:
    return {"project": "support", "model_version": "2", "environment": "production", "reason": "better", **over}


@pytest.mark.django_db
@pytest.mark.slow
def test_request_approve_refusals_and_detail(world, reviewer, outsider) -> None:  # type: ignore[no-untyped-def]
    a = bearer(world["erin"], "promote")
    response = a.post("/api/v1/promotions/", request_payload(), content_type="application/json")
    assert response.status_code == 201, response.json()
    pk = response.json()["id"]
    assert response.json()["gate_report"] == {"passed": True, "lines": []}

    own = a.post(f"/api/v1/promotions/{pk}/approve/", {}, content_type="application/json")
    assert own.status_code == 403 and "two-person rule" in own.json()["detail"]

    b = session(world["ezra"])
    b.post(f"/api/v1/promotions/{pk}/approve/", {"comment": "ok"}, content_type="application/json")
    # approving again: the request is no longer pending
    again = b.post(f"/api/v1/promotions/{pk}/approve/", {}, content_type="application/json")
    assert again.status_code == 409 and "no longer be approved" in again.json()["detail"]

    detail = b.get(f"/api/v1/promotions/{pk}/").json()
    assert detail["status"] == "approved"
    assert [x["user"] for x in detail["approvals"]] == ["ezra"]
    assert [s["key"] for s in detail["rollouts"][0]["steps"]][:3] == ["alias", "traffic_10", "health_10"]
    assert b.get("/api/v1/projects/support/promotions/").json()["results"][0]["id"] == pk

    # a second request racing for the same environment is refused at approval (409)
    versions(world["project"], 3)
    c = a.post("/api/v1/promotions/", request_payload(model_version="3"), content_type="application/json")
    refused = b.post(f"/api/v1/promotions/{c.json()['id']}/approve/", {}, content_type="application/json")
    assert refused.status_code == 409 and "one rollout per endpoint" in refused.json()["detail"]

    assert session(reviewer).get(f"/api/v1/promotions/{pk}/").status_code == 403
    assert session(reviewer).get("/api/v1/projects/support/promotions/").status_code == 403
    assert session(outsider).get(f"/api/v1/promotions/{pk}/").status_code == 404
    assert bearer(world["ezra"], "evaluate").get(f"/api/v1/promotions/{pk}/").status_code == 403


@pytest.mark.django_db
def test_bad_input_names_the_field(world) -> None:  # type: ignore[no-untyped-def]
    a = session(world["erin"])
    for payload, field in [
        (request_payload(model_version="9"), "model_version"),
        (request_payload(environment="moon"), "environment"),
        (request_payload(reason=""), "reason"),
    ]:
        response = a.post("/api/v1/promotions/", payload, content_type="application/json")
        assert response.status_code == 400 and response.json()["errors"][0]["field"] == field
    pk = a.post("/api/v1/promotions/", request_payload(), content_type="application/json").json()["id"]
    response = session(world["ezra"]).post(
        f"/api/v1/promotions/{pk}/reject/", {"reason": ""}, content_type="application/json"
    )
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "reason"
    for body in ({}, {"reason": ""}, {"reason": "   "}):  # a rollback needs a written reason, whatever the state
        response = session(world["ezra"]).post(
            f"/api/v1/promotions/{pk}/rollback/", body, content_type="application/json"
        )
        assert response.status_code == 400 and response.json()["errors"][0]["field"] == "reason", response.json()
    # environments are managed by admins only
    env = {"name": "qa", "local_port": 6100}
    assert a.post("/api/v1/projects/support/environments/", env, content_type="application/json").status_code == 403
    created = session(world["ada"]).post("/api/v1/projects/support/environments/", env, content_type="application/json")
    assert created.status_code == 201 and created.json()["canary_stages"] == [10, 50, 100]
    body = created.json()
    assert (body["soak_seconds"], body["max_error_rate"], body["max_p95_ms"]) == (60, 0.05, 10_000)
    for payload, field in [
        ({"soak_seconds": -1}, "soak_seconds"),
        ({"max_error_rate": 1.5}, "max_error_rate"),
        ({"max_p95_ms": 0}, "max_p95_ms"),
    ]:
        response = session(world["ada"]).patch(
            "/api/v1/projects/support/environments/qa/", payload, content_type="application/json"
        )
        assert response.status_code == 400 and response.json()["errors"][0]["field"] == field, response.json()
    patched = session(world["ada"]).patch(
        "/api/v1/projects/support/environments/qa/",
        {"soak_seconds": 5, "max_error_rate": 0.02, "max_p95_ms": 800},
        content_type="application/json",
    )
    assert patched.status_code == 200
    assert (patched.json()["soak_seconds"], patched.json()["max_error_rate"], patched.json()["max_p95_ms"]) == (
        5,
        0.02,
        800,
    )


@pytest.mark.django_db
def test_approving_while_gates_fail_names_them_over_the_api(world) -> None:  # type: ignore[no-untyped-def]
    from pipelines.models import PromotionGate

    PromotionGate.objects.create(project=world["project"], kind="min_reviews", params={"count": 3})
    a = bearer(world["erin"], "promote")
    pk = a.post("/api/v1/promotions/", request_payload(), content_type="application/json").json()["id"]
    response = bearer(world["ezra"], "promote").post(
        f"/api/v1/promotions/{pk}/approve/", {}, content_type="application/json"
    )
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "1 gate fails" in detail and "0 reviews of 0 items of version 2" in detail and "needs 3 items" in detail
    assert "New evidence" not in detail and "new evidence" not in detail


# --- end to end: local MLflow model server, real worker ----------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_end_to_end_on_the_local_mlflow_server(project, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.workers import Cluster

    cluster = Cluster(tmp_path)
    serving_dir = tmp_path / "serving"
    settings.MLFLOW_TRACKING_URI = cluster.mlflow_uri
    settings.MLFLOW_ARTIFACT_ROOT = cluster.artifacts
    settings.LOCAL_SERVING_DIR = serving_dir
    cluster.point_producer()
    try:
        demo_models_ensure(model_name="support-assistant")
        erin, ezra, _ = engineers(project)
        versions(project, 1, 2, name="support-assistant")
        ingest(
            project, [rag_row(1, request="How do I export my notes?"), rag_row(2, request="Does Lumen support SSO?")]
        )
        port = free_port()
        Environment.objects.create(
            project=project,
            name="production",
            alias="champion",
            local_port=port,
            canary_stages=[50, 100],
            ready_timeout_seconds=90,
            health_check_queries=2,
            soak_seconds=2,
        )
        worker = cluster.start_worker(
            "promo",
            LOCAL_SERVING_DIR=str(serving_dir),
            ROLLOUT_POLL_MILLISECONDS="200",
            ROLLOUT_SOAK_INTERVAL_MILLISECONDS="250",
        )
        a, b = bearer(erin, "promote"), bearer(ezra, "promote")

        def promote(version: str) -> dict[str, Any]:
            created = a.post(
                "/api/v1/promotions/", request_payload(model_version=version), content_type="application/json"
            )
            assert created.status_code == 201, created.json()
            pk = created.json()["id"]
            assert b.post(f"/api/v1/promotions/{pk}/approve/", {}, content_type="application/json").status_code == 200
            return wait_status(b, pk, "live", worker)

        first = promote("1")
        assert first["rollouts"][0]["stages"] == [100]
        second = promote("2")
        steps = second["rollouts"][0]["steps"]
        assert [s["key"] for s in steps] == ["alias", "traffic_50", "health_50", "traffic_100", "health_100", "finish"]
        assert all(s["status"] == "done" for s in steps)
        # At 50% every health query still went to the candidate (the proxy's pin header), and says so.
        health = steps[2]["detail"]
        assert health["target_version"] == "2" and health["verdict"] == "passed"
        assert health["served_by"] == {"2": health["queries"]} and health["queries"] >= 2 + 4
        assert {q["version"] for q in health["log"]} == {"2"} and len(health["log"]) == health["queries"]
        assert health["soak_watched_seconds"] >= 2 and health["soak_seconds"] == 2
        assert health["p95_ms"] > 0 and health["errors"] == 0

        answer = requests.post(
            f"http://127.0.0.1:{port}/invocations",
            json={"dataframe_records": [{"request": "How do I turn on two-factor authentication?"}]},
            timeout=30,
        )
        assert answer.status_code == 200 and answer.headers["X-Reviewdesk-Served-Version"] == "2"
        assert answer.json()["predictions"][0]

        pinned = requests.post(
            f"http://127.0.0.1:{port}/invocations",
            json={"dataframe_records": [{"request": "hi"}]},
            headers={"X-Reviewdesk-Version": "1"},  # v1 no longer served here: refused, never answered by v2
            timeout=30,
        )
        assert pinned.status_code == 404 and pinned.json()["error_code"] == "VERSION_NOT_ROUTED"

        for body in ({}, {"reason": "  "}):
            refused = b.post(f"/api/v1/promotions/{second['id']}/rollback/", body, content_type="application/json")
            assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "reason"
        reason = {"reason": "v2 answers SSO questions wrongly"}
        assert (
            b.post(f"/api/v1/promotions/{second['id']}/rollback/", reason, content_type="application/json").status_code
            == 202
        )
        back = wait_status(b, second["id"], "rolled_back", worker)
        assert back["rollouts"][-1]["kind"] == "rollback" and back["rollouts"][-1]["status"] == "succeeded"
        answer = requests.post(
            f"http://127.0.0.1:{port}/invocations", json={"dataframe_records": [{"request": "hi"}]}, timeout=30
        )
        assert answer.headers["X-Reviewdesk-Served-Version"] == "1"
        from pipelines.adapters import mlflow_registry

        assert (
            mlflow_registry.registered_model_alias_get(
                mlflow_config(), model_name="support-assistant", alias="champion"
            )
            == "1"
        )
        assert PromotionRequest.objects.get(pk=first["id"]).status == "live"
        assert back["rollouts"][-1]["reason"] == "v2 answers SSO questions wrongly"

        # A stage whose candidate is slower than the environment allows fails; traffic and alias go back.
        Environment.objects.filter(local_port=port).update(max_p95_ms=1)
        third = a.post("/api/v1/promotions/", request_payload(model_version="2"), content_type="application/json")
        assert third.status_code == 201, third.json()
        assert b.post(f"/api/v1/promotions/{third.json()['id']}/approve/", {}, content_type="application/json")
        failed = wait_status(b, third.json()["id"], "failed", worker)
        step = next(s for s in failed["rollouts"][-1]["steps"] if s["key"] == "health_50")
        assert step["status"] == "failed" and "p95 latency" in step["error"] and "limit of 1 ms" in step["error"]
        assert "Traffic is back on v1 (100%)" in failed["rollouts"][-1]["error"]
        answer = requests.post(
            f"http://127.0.0.1:{port}/invocations", json={"dataframe_records": [{"request": "hi"}]}, timeout=30
        )
        assert answer.headers["X-Reviewdesk-Served-Version"] == "1"
        assert (
            mlflow_registry.registered_model_alias_get(
                mlflow_config(), model_name="support-assistant", alias="champion"
            )
            == "1"
        )
    finally:
        cluster.stop()
        local_serving_stop_all()


def wait_status(client: Client, pk: int, status: str, worker: Any) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.update(client.get(f"/api/v1/promotions/{pk}/").json())
        return seen["status"] in (status, "failed") and not (
            status == "failed" and seen["rollouts"] and seen["rollouts"][-1]["status"] != "failed"
        )

    assert wait_for(done, timeout=180, interval=0.5), worker.log[-3000:]
    assert seen["status"] == status, (seen["rollouts"][-1], worker.log[-3000:])
    return seen
