"""The rollout engine against the local Databricks workspace, through the real databricks-sdk over HTTP:
every call's method, path and body; canary stages in order; failures, restore, retry, rollback."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from pipelines.models import PromotionRequest, Rollout
from pipelines.promotion import promotion_approve, promotion_request, promotion_retry, rollback_request
from pipelines.rollout import rollout_advance, rollouts_sweep
from reviewapp.models import AuditEvent
from tests.evaluations.conftest import ingest, rag_row
from tests.fakes.databricks_api import FakeDatabricks
from tests.fakes.http import Reply
from tests.pipelines import promotion_fixtures
from tests.pipelines.promotion_fixtures import (
    UC_MODEL,
    databricks_environment,
    engineers,
    serve_v1,
    versions,
)

pytestmark = pytest.mark.django_db
databricks_fake = promotion_fixtures.databricks_fake
CONFIG_PATH = "/api/2.0/serving-endpoints/support-prod/config"


def entity(version: int) -> dict[str, object]:
    return {
        "entity_name": UC_MODEL,
        "entity_version": str(version),
        "name": f"support_assistant-{version}",
        "scale_to_zero_enabled": True,
        "workload_size": "Small",
    }


def routes(**split: int) -> dict[str, object]:
    return {
        "routes": [
            {"served_model_name": f"support_assistant-{v[1:]}", "traffic_percentage": p} for v, p in split.items()
        ]
    }


@pytest.fixture
def world(project, databricks_fake: FakeDatabricks):  # type: ignore[no-untyped-def]
    serve_v1(databricks_fake)
    ingest(project, [rag_row(1, request="How do I export my notes?"), rag_row(2, request="Is SSO supported?")])
    erin, ezra, ada = engineers(project)
    v1, v2 = versions(project, 1, 2)
    env = databricks_environment(project, current_version=v1)
    return {"fake": databricks_fake, "erin": erin, "ezra": ezra, "ada": ada, "v1": v1, "v2": v2, "env": env}


def approve_v2(w) -> Rollout:  # type: ignore[no-untyped-def]
    req = promotion_request(actor=w["erin"], model_version=w["v2"], environment=w["env"], reason="v2 is better")
    promotion_approve(actor=w["ezra"], request_id=req.pk)
    return Rollout.objects.get(request=req)


def test_a_rollout_moves_traffic_in_canary_stages_and_records_every_step(world) -> None:  # type: ignore[no-untyped-def]
    fake: FakeDatabricks = world["fake"]
    rollout = approve_v2(world)

    assert rollout_advance(rollout_id=rollout.pk) == "succeeded"

    puts = fake.calls("PUT", CONFIG_PATH)
    assert [p.json for p in puts] == [
        {"served_entities": [entity(1), entity(2)], "traffic_config": routes(v1=90, v2=10)},
        {"served_entities": [entity(1), entity(2)], "traffic_config": routes(v1=50, v2=50)},
        {"served_entities": [entity(2)], "traffic_config": routes(v2=100)},
    ]
    assert all(p.bearer == fake.token for p in puts)
    alias_puts = fake.calls("PUT", f"/api/2.1/unity-catalog/models/{UC_MODEL}/aliases/champion")
    assert [a.json for a in alias_puts] == [{"version_num": 2}]
    # traffic only moved when each update completed, in order
    history = [
        {r["served_model_name"]: r["traffic_percentage"] for r in c["traffic_config"]["routes"]}
        for c in fake.config_history["support-prod"]
    ]
    assert history == [
        {"support_assistant-1": 100},
        {"support_assistant-1": 90, "support_assistant-2": 10},
        {"support_assistant-1": 50, "support_assistant-2": 50},
        {"support_assistant-2": 100},
    ]
    queries = fake.invocations()
    assert len(queries) == 6  # 2 real requests after each of the 3 stages
    assert queries[0].path == "/serving-endpoints/support-prod/invocations"
    assert queries[0].json == {"dataframe_records": [{"request": "Is SSO supported?"}]}

    rollout.refresh_from_db()
    steps = list(rollout.steps.all())
    assert all(s.status == "done" and s.attempts == 1 and s.finished_at for s in steps)
    assert steps[1].detail["action"] == "updated" and steps[1].detail["polls"] >= 2
    assert rollout.status == "succeeded" and rollout.finished_at and not rollout.lease_owner
    world["env"].refresh_from_db()
    assert (world["env"].current_version, world["env"].previous_version) == (world["v2"], world["v1"])
    assert rollout.request.status == PromotionRequest.Status.LIVE
    assert AuditEvent.objects.filter(action="promotion.rollout_succeeded").exists()


def test_running_it_again_changes_nothing_and_a_crashed_step_rechecks_real_state(world) -> None:  # type: ignore[no-untyped-def]
    fake: FakeDatabricks = world["fake"]
    rollout = approve_v2(world)
    rollout_advance(rollout_id=rollout.pk)
    calls = len(fake.requests)

    assert rollout_advance(rollout_id=rollout.pk) == ""  # a redelivered message finds nothing to claim
    assert len(fake.requests) == calls

    # A worker died in the middle of the last traffic step: lease expired, step still "running".
    Rollout.objects.filter(pk=rollout.pk).update(
        status="running", lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    rollout.steps.filter(key__in=["traffic_100", "health_100", "finish"]).update(status="pending")
    rollout.steps.filter(key="traffic_100").update(status="running")
    assert rollouts_sweep() == [rollout.pk]
    assert rollout_advance(rollout_id=rollout.pk) == "succeeded"

    assert len(fake.calls("PUT", CONFIG_PATH)) == 3  # no new config: the endpoint already served it
    assert rollout.steps.get(key="traffic_100").detail["action"] == "already serving"


def test_a_5xx_on_update_config_is_retried(world) -> None:  # type: ignore[no-untyped-def]
    fake: FakeDatabricks = world["fake"]
    fake.fail_next(1, Reply(500, {"error_code": "INTERNAL_ERROR", "message": "boom"}), path=CONFIG_PATH)
    rollout = approve_v2(world)

    assert rollout_advance(rollout_id=rollout.pk) == "succeeded"

    assert rollout.steps.get(key="traffic_10").attempts == 2


def test_persistent_5xx_fails_the_rollout_with_traffic_and_alias_on_the_old_version(world) -> None:  # type: ignore[no-untyped-def]
    fake: FakeDatabricks = world["fake"]
    rollout = approve_v2(world)
    # 10% goes fine; every update of the 50% stage fails.
    original = fake.serving_endpoint_config_put

    def put(request):  # type: ignore[no-untyped-def]
        body = request.json or {}
        pcts = [r["traffic_percentage"] for r in (body.get("traffic_config") or {}).get("routes", [])]
        if pcts == [50, 50]:
            return Reply(500, {"error_code": "INTERNAL_ERROR", "message": "capacity exhausted"})
        return original(request)

    fake.serving_endpoint_config_put = put  # type: ignore[method-assign]

    assert rollout_advance(rollout_id=rollout.pk) == "failed"

    step = rollout.steps.get(key="traffic_50")
    assert step.status == "failed" and step.attempts == 3 and "capacity exhausted" in step.error
    assert fake.routes_of("support-prod") == {"support_assistant-1": 100}
    assert fake.model_aliases[(UC_MODEL, "champion")] == 1
    rollout.refresh_from_db()
    assert "Traffic is back on v1 (100%)" in rollout.error and "capacity exhausted" in rollout.error
    assert rollout.request.status == PromotionRequest.Status.FAILED
    world["env"].refresh_from_db()
    assert world["env"].current_version == world["v1"]

    # retry resumes at the failed step (the alias is pointed again first); stages already done stay done
    fake.serving_endpoint_config_put = original  # type: ignore[method-assign]
    health_10 = rollout.steps.get(key="health_10")
    promotion_retry(actor=world["ezra"], request_id=rollout.request_id)
    assert rollout_advance(rollout_id=rollout.pk) == "succeeded"
    assert rollout.steps.get(key="health_10").finished_at == health_10.finished_at
    assert rollout.steps.get(key="traffic_50").attempts == 4
    assert rollout.steps.get(key="alias").attempts == 2
    assert fake.routes_of("support-prod") == {"support_assistant-2": 100}
    rollout.request.refresh_from_db()
    assert rollout.request.status == PromotionRequest.Status.LIVE


def test_an_endpoint_that_never_becomes_ready_times_out_and_keeps_the_old_traffic(world, settings) -> None:  # type: ignore[no-untyped-def]
    fake: FakeDatabricks = world["fake"]
    world["env"].ready_timeout_seconds = 1
    world["env"].save()
    fake.stick_next_updates = 1
    fake.update_fails_after = 1.5
    rollout = approve_v2(world)

    assert rollout_advance(rollout_id=rollout.pk) == "failed"

    step = rollout.steps.get(key="traffic_10")
    assert step.status == "failed" and "not ready in time" in step.error and step.attempts == 1
    assert fake.routes_of("support-prod") == {"support_assistant-1": 100}
    # the stuck update ended in UPDATE_FAILED; then the old config was sent again to be sure
    history = [c["traffic_config"]["routes"] for c in fake.config_history["support-prod"]]
    assert all(len(r) == 1 and r[0]["served_model_name"] == "support_assistant-1" for r in history)
    assert fake.calls("PUT", CONFIG_PATH)[-1].json == {"served_entities": [entity(1)], "traffic_config": routes(v1=100)}
    assert fake.model_aliases[(UC_MODEL, "champion")] == 1

    world["env"].ready_timeout_seconds = 5
    world["env"].save()
    promotion_retry(actor=world["erin"], request_id=rollout.request_id)
    assert rollout_advance(rollout_id=rollout.pk) == "succeeded"
    assert fake.routes_of("support-prod") == {"support_assistant-2": 100}


def test_a_failing_health_check_restores_the_old_version(world) -> None:  # type: ignore[no-untyped-def]
    fake: FakeDatabricks = world["fake"]
    fake.empty_predictions = True
    rollout = approve_v2(world)

    assert rollout_advance(rollout_id=rollout.pk) == "failed"

    step = rollout.steps.get(key="health_10")
    assert step.status == "failed" and "empty answer" in step.error
    assert fake.calls("PUT", CONFIG_PATH)[-1].json == {
        "served_entities": [entity(1)],
        "traffic_config": routes(v1=100),
    }
    assert fake.routes_of("support-prod") == {"support_assistant-1": 100}


def test_rollback_returns_alias_and_traffic_to_the_previous_version(world) -> None:  # type: ignore[no-untyped-def]
    fake: FakeDatabricks = world["fake"]
    rollout = approve_v2(world)
    rollout_advance(rollout_id=rollout.pk)

    back = rollback_request(actor=world["ezra"], request_id=rollout.request_id)
    assert list(back.steps.values_list("key", flat=True)) == ["alias", "traffic_100", "health_100", "finish"]
    assert rollout_advance(rollout_id=back.pk) == "succeeded"

    assert fake.calls("PUT", CONFIG_PATH)[-1].json == {"served_entities": [entity(1)], "traffic_config": routes(v1=100)}
    assert fake.model_aliases[(UC_MODEL, "champion")] == 1
    world["env"].refresh_from_db()
    assert (world["env"].current_version, world["env"].previous_version) == (world["v1"], world["v2"])
    back.request.refresh_from_db()
    assert back.request.status == PromotionRequest.Status.ROLLED_BACK


def test_a_first_deployment_creates_the_endpoint(world) -> None:  # type: ignore[no-untyped-def]
    fake: FakeDatabricks = world["fake"]
    env = databricks_environment(world["env"].project, name="staging", alias="staging", serving_endpoint="support-stg")
    req = promotion_request(actor=world["erin"], model_version=world["v2"], environment=env, reason="first")
    promotion_approve(actor=world["ezra"], request_id=req.pk)
    rollout = Rollout.objects.get(request=req)

    assert rollout.stages == [100]
    assert rollout_advance(rollout_id=rollout.pk) == "succeeded"
    create = fake.calls("POST", "/api/2.0/serving-endpoints")
    assert [c.json for c in create] == [
        {
            "name": "support-stg",
            "config": {"name": "support-stg", "served_entities": [entity(2)], "traffic_config": routes(v2=100)},
        }
    ]
    assert fake.routes_of("support-stg") == {"support_assistant-2": 100}


def test_one_request_per_environment_shows_as_live(world) -> None:  # type: ignore[no-untyped-def]
    """A newer promotion replaces the live one; rolling it back brings the replaced one back."""
    Status = PromotionRequest.Status
    env, v1 = world["env"], world["v1"]
    env.current_version = None
    env.save(update_fields=["current_version"])
    first = promotion_request(actor=world["erin"], model_version=v1, environment=env, reason="what runs today")
    promotion_approve(actor=world["ezra"], request_id=first.pk)
    assert rollout_advance(rollout_id=Rollout.objects.get(request=first).pk) == "succeeded"
    first.refresh_from_db()
    assert first.status == Status.LIVE

    second = approve_v2(world)
    assert rollout_advance(rollout_id=second.pk) == "succeeded"
    first.refresh_from_db()
    second.request.refresh_from_db()
    assert (first.status, second.request.status) == (Status.REPLACED, Status.LIVE)

    back = rollback_request(actor=world["ezra"], request_id=second.request_id)
    assert rollout_advance(rollout_id=back.pk) == "succeeded"
    first.refresh_from_db()
    second.request.refresh_from_db()
    assert (first.status, second.request.status) == (Status.LIVE, Status.ROLLED_BACK)
    assert PromotionRequest.objects.filter(environment=env, status=Status.LIVE).count() == 1
