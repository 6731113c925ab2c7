"""The rollout engine against the local Databricks workspace, through the real databricks-sdk over HTTP:
every call's method, path and body; canary stages in order; failures, restore, retry, rollback."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from pipelines.models import PromotionRequest, Rollout
from pipelines.releases.promotion import promotion_approve, promotion_request, promotion_retry, rollback_request
from pipelines.releases.rollout import rollout_advance, rollouts_sweep
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
V2_PATH = "/serving-endpoints/support-prod/served-models/support_assistant-2/invocations"  # v2's own entity


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
    # every health query went to the candidate's own served entity, even at 10%
    assert {q.path for q in queries} == {V2_PATH}
    assert all(q.bearer == fake.token for q in queries)
    assert queries[0].json == {"dataframe_records": [{"request": "Is SSO supported?"}]}

    rollout.refresh_from_db()
    steps = list(rollout.steps.all())
    assert all(s.status == "done" and s.attempts == 1 and s.finished_at for s in steps)
    assert steps[1].detail["action"] == "updated" and steps[1].detail["polls"] >= 2
    health_10 = rollout.steps.get(key="health_10").detail
    assert health_10["target_version"] == "2" and health_10["target_entity"] == "support_assistant-2"
    assert health_10["served_by"] == {"2": 2}  # the served-model-name header of each answer, as a version
    assert [(q["version"], q["ok"]) for q in health_10["log"]] == [("2", True), ("2", True)]
    assert health_10["queries"] == 2 and health_10["errors"] == 0 and health_10["verdict"] == "passed"
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


@pytest.mark.slow
def test_a_5xx_on_update_config_is_retried(world) -> None:  # type: ignore[no-untyped-def]
    fake: FakeDatabricks = world["fake"]
    fake.fail_next(1, Reply(500, {"error_code": "INTERNAL_ERROR", "message": "boom"}), path=CONFIG_PATH)
    rollout = approve_v2(world)

    assert rollout_advance(rollout_id=rollout.pk) == "succeeded"

    assert rollout.steps.get(key="traffic_10").attempts == 2


@pytest.mark.slow
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


@pytest.mark.slow
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
    assert step.status == "failed" and "error rate 100.0% (2 of 2 queries to v2 failed)" in step.error
    assert "empty answer" in step.error
    assert fake.calls("PUT", CONFIG_PATH)[-1].json == {
        "served_entities": [entity(1)],
        "traffic_config": routes(v1=100),
    }
    assert fake.routes_of("support-prod") == {"support_assistant-1": 100}


def test_rollback_returns_alias_and_traffic_to_the_previous_version(world) -> None:  # type: ignore[no-untyped-def]
    fake: FakeDatabricks = world["fake"]
    rollout = approve_v2(world)
    rollout_advance(rollout_id=rollout.pk)

    back = rollback_request(actor=world["ezra"], request_id=rollout.request_id, reason="v2 confuses SSO answers")
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


def test_a_failed_first_deployment_whose_alias_cannot_be_removed_says_so(world) -> None:  # type: ignore[no-untyped-def]
    """Nothing served before, so restoring means removing the alias; when that fails too, the rollout says so."""
    fake: FakeDatabricks = world["fake"]
    fake.empty_predictions = True
    env = databricks_environment(world["env"].project, name="staging", alias="staging", serving_endpoint="support-stg")
    req = promotion_request(actor=world["erin"], model_version=world["v2"], environment=env, reason="first")
    promotion_approve(actor=world["ezra"], request_id=req.pk)
    rollout = Rollout.objects.get(request=req)
    fake.alias_delete_denied = True

    assert rollout_advance(rollout_id=rollout.pk) == "failed"

    rollout.refresh_from_db()
    assert "Removing the alias failed too" in rollout.error and "no rights on this alias" in rollout.error


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

    back = rollback_request(actor=world["ezra"], request_id=second.request_id, reason="back to the first")
    assert rollout_advance(rollout_id=back.pk) == "succeeded"
    first.refresh_from_db()
    second.request.refresh_from_db()
    assert (first.status, second.request.status) == (Status.LIVE, Status.ROLLED_BACK)
    assert PromotionRequest.objects.filter(environment=env, status=Status.LIVE).count() == 1


# --- the soak: error rate and p95 latency of queries sent to the candidate ---------------------------


def soaking(world, settings, **limits: object) -> None:  # type: ignore[no-untyped-def]
    settings.ROLLOUT_SOAK_INTERVAL_SECONDS = 0.05
    for key, value in limits.items():
        setattr(world["env"], key, value)
    world["env"].save()


def test_a_candidate_that_errors_fails_its_stage_on_error_rate_and_traffic_and_alias_go_back(world, settings) -> None:  # type: ignore[no-untyped-def]
    fake: FakeDatabricks = world["fake"]
    soaking(world, settings, soak_seconds=1, max_error_rate=0.1)
    fake.entity_fail_rate["support_assistant-2"] = 0.5  # every other request to v2 answers 500
    fake.entity_fail_rate["support_assistant-1"] = 0.0
    rollout = approve_v2(world)

    assert rollout_advance(rollout_id=rollout.pk) == "failed"

    step = rollout.steps.get(key="health_10")
    detail = step.detail
    assert step.status == "failed"
    assert detail["queries"] >= 6 and detail["soak_watched_seconds"] >= 1
    assert detail["errors"] == detail["queries"] // 2  # exactly the requests the fake failed
    assert f"error rate {detail['error_rate_pct']}% ({detail['errors']} of {detail['queries']} queries to v2" in (
        step.error
    )
    assert "above the limit of 10.0%" in step.error and "InternalError" in step.error
    # every query went to v2's own entity; the failed ones have no answering version, the others say v2
    queries = fake.invocations()
    assert {q.path for q in queries} == {V2_PATH}
    assert len(queries) == detail["queries"]
    assert {q["version"] for q in detail["log"] if q["ok"]} == {"2"}
    assert {q["version"] for q in detail["log"] if not q["ok"]} == {None}
    # restored as for any failed step: traffic and alias on v1, the request failed, nothing else ran
    assert fake.routes_of("support-prod") == {"support_assistant-1": 100}
    assert fake.model_aliases[(UC_MODEL, "champion")] == 1
    rollout.refresh_from_db()
    assert "Traffic is back on v1 (100%)" in rollout.error and "Alias 'champion' points at v1 again" in rollout.error
    assert rollout.request.status == PromotionRequest.Status.FAILED
    assert rollout.steps.get(key="traffic_50").status == "pending"


def test_a_slow_candidate_fails_its_stage_on_p95_latency(world, settings) -> None:  # type: ignore[no-untyped-def]
    fake: FakeDatabricks = world["fake"]
    soaking(world, settings, soak_seconds=0, max_p95_ms=150)
    fake.entity_latency["support_assistant-2"] = 0.3
    rollout = approve_v2(world)

    assert rollout_advance(rollout_id=rollout.pk) == "failed"

    step = rollout.steps.get(key="health_10")
    assert step.status == "failed" and step.detail["errors"] == 0 and step.detail["p95_ms"] >= 300
    assert "p95 latency" in step.error and "above the limit of 150 ms" in step.error
    assert fake.routes_of("support-prod") == {"support_assistant-1": 100}
    assert fake.model_aliases[(UC_MODEL, "champion")] == 1

    # within the limit it passes: the same latency, a looser limit, the rollout retried soaks afresh
    world["env"].max_p95_ms = 2000
    world["env"].save()
    promotion_retry(actor=world["ezra"], request_id=rollout.request_id)
    assert rollout_advance(rollout_id=rollout.pk) == "succeeded"
    health = rollout.steps.get(key="health_10").detail
    assert health["verdict"] == "passed" and health["queries"] == 2 and health["soak_resumed"] == 0


@pytest.mark.slow
def test_a_soak_within_the_limits_passes_and_records_every_query(world, settings) -> None:  # type: ignore[no-untyped-def]
    fake: FakeDatabricks = world["fake"]
    soaking(world, settings, soak_seconds=1, max_error_rate=0.5)
    fake.entity_fail_rate["support_assistant-2"] = 0.25
    fake.entity_fail_rate["support_assistant-1"] = 1.0  # the old version is broken: the checks never ask it
    rollout = approve_v2(world)

    assert rollout_advance(rollout_id=rollout.pk) == "succeeded"

    detail = rollout.steps.get(key="health_10").detail
    assert detail["verdict"] == "passed" and detail["soak_watched_seconds"] >= 1
    assert 0 < detail["errors"] <= detail["queries"] // 4 + 1
    assert [q["n"] for q in detail["log"]] == list(range(1, detail["queries"] + 1))
    assert detail["served_by"] == {"2": detail["queries"] - detail["errors"]}


def test_a_rollback_with_its_reason_is_audited_and_sent_in_the_webhooks(  # type: ignore[no-untyped-def]
    world, settings, django_capture_on_commit_callbacks
) -> None:
    from reviewapp.celery import app
    from reviewapp.errors import ValidationFailed
    from tests.pipelines.test_webhooks import SECRET, Receiver

    rollout = approve_v2(world)
    rollout_advance(rollout_id=rollout.pk)
    with pytest.raises(ValidationFailed) as refused:
        rollback_request(actor=world["ezra"], request_id=rollout.request_id, reason="  ")
    assert refused.value.errors[0]["field"] == "reason"
    assert Rollout.objects.filter(kind="rollback").count() == 0

    settings.PROMOTION_WEBHOOK_SECRET = SECRET
    eager = app.conf.task_always_eager
    with Receiver().running() as receiver:
        settings.PROMOTION_WEBHOOK_URLS = [f"{receiver.url}/hook"]
        app.conf.task_always_eager = True  # deliver in this process, through the real task and signature
        try:
            with django_capture_on_commit_callbacks(execute=True):  # the rollback's rollout_advance runs too
                back = rollback_request(
                    actor=world["ezra"], request_id=rollout.request_id, reason="v2 misquotes the SSO pricing"
                )
        finally:
            app.conf.task_always_eager = eager
        import json

        payloads = [json.loads(r.raw) for r in receiver.requests]
    back.refresh_from_db()
    assert back.status == "succeeded" and back.reason == "v2 misquotes the SSO pricing"
    event = AuditEvent.objects.get(action="promotion.rollback_requested")
    assert event.data["reason"] == "v2 misquotes the SSO pricing" and event.actor == world["ezra"]
    events = {p["event"]: p for p in payloads}
    assert set(events) >= {"promotion.rollback_requested", "promotion.rolled_back"}
    for name in ("promotion.rollback_requested", "promotion.rolled_back"):
        assert events[name]["rollout"]["reason"] == "v2 misquotes the SSO pricing"
        assert events[name]["rollout"]["kind"] == "rollback"
    assert events["promotion.rollback_requested"]["reason"] == "v2 misquotes the SSO pricing"
