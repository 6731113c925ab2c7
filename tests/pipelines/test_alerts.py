"""Alert rules on monitoring and the production_not_worse gate, on hand-made traffic.

Items carry a latency (a mean metric: higher is worse) and a request hash; the real monitoring
refresh turns them into values; the intervals expected below are computed by hand.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import math
from typing import Any

import pytest
from django.utils import timezone

from pipelines.models import AlertEvent, AlertRule, Environment, PromotionGate, PromotionRequest, Rollout
from pipelines.releases.gates import gates_evaluate
from pipelines.releases.webhooks import webhook_deliver
from pipelines.sources.alerts import alert_rule_create, alerts_evaluate
from pipelines.sources.monitoring import monitoring_refresh
from reviewapp.celery import app
from reviewapp.errors import ValidationFailed
from reviewapp.models import AuditEvent, Item, Project
from tests.fakes.http import FakeHttpServer, Reply, Request, route
from tests.pipelines.promotion_fixtures import databricks_environment, engineers, versions

pytestmark = pytest.mark.django_db
Z = 1.959963984540054  # the two-sided 95% normal quantile
SECRET = "whsec-alerts"


def traffic(project: Project, version: str, latencies: list[float], *, shared: bool, at: dt.datetime) -> None:
    """One item per latency; with ``shared`` the n-th item asks request r<n> (shared across versions)."""
    for n, latency in enumerate(latencies):
        Item.objects.create(
            project=project,
            external_id=f"v{version}-{n}-{latency}",
            request=f"Question {n}?",
            response="Answer",
            model_version=version,
            request_hash=f"r{n}" if shared else f"v{version}-{n}",
            metadata={"trace_timestamp": at.isoformat(), "latency_ms": latency},
        )


def refresh(project: Project) -> None:
    monitoring_refresh(project=project, full=True)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[Any]]]:
    """Tasks sent to the broker (Celery's boundary): (name, args)."""
    calls: list[tuple[str, list[Any]]] = []

    def send_task(name: str, args: Any = None, *_rest: Any, **_kwargs: Any) -> None:
        calls.append((name, list(args or [])))

    monkeypatch.setattr(app, "send_task", send_task)
    return calls


def rule(project: Project, actor: Any, **values: Any) -> AlertRule:
    return alert_rule_create(project=project, actor=actor, values={"metric": "latency_ms", **values})


def test_a_threshold_rule_fires_when_above_and_resolves_when_back(project, sent, django_capture_on_commit_callbacks):
    erin, _, _ = engineers(project)
    now = timezone.now()
    traffic(project, "2", [100, 200, 300], shared=False, at=now - dt.timedelta(hours=1))
    traffic(project, "2", [900], shared=False, at=now - dt.timedelta(hours=30))  # outside the 24 h window
    refresh(project)
    r = rule(project, erin, name="slow", model_version="2", comparison="above", threshold=150, min_n=3)
    with django_capture_on_commit_callbacks(execute=True):
        alerts_evaluate(project_id=project.pk, now=now)
    r.refresh_from_db()
    assert r.state == "firing" and r.last_fired_at == now
    assert r.last_figures["n"] == 3 and r.last_figures["value"] == pytest.approx(200)
    assert AuditEvent.objects.filter(action="alert.fired", target_id=str(r.pk)).count() == 1
    alerts_evaluate(project_id=project.pk, now=now)  # again: still firing, nothing new
    assert AlertEvent.objects.filter(rule=r).count() == 1

    Item.objects.filter(project=project, model_version="2", metadata__latency_ms=300).update(
        metadata={"trace_timestamp": (now - dt.timedelta(hours=1)).isoformat(), "latency_ms": 110}
    )
    refresh(project)  # mean (100 + 200 + 110) / 3 = 136.7 < 150
    alerts_evaluate(project_id=project.pk, now=now)
    r.refresh_from_db()
    assert r.state == "ok"
    assert list(AlertEvent.objects.filter(rule=r).order_by("id").values_list("kind", flat=True)) == [
        "fired",
        "resolved",
    ]


def test_too_few_items_neither_fires_nor_resolves(project, sent):
    erin, _, _ = engineers(project)
    now = timezone.now()
    traffic(project, "2", [500, 600], shared=False, at=now - dt.timedelta(hours=1))
    refresh(project)
    r = rule(project, erin, name="slow", model_version="2", comparison="above", threshold=150, min_n=3)
    alerts_evaluate(project_id=project.pk, now=now)
    r.refresh_from_db()
    assert r.state == "ok" and r.last_figures["verdict"] is None and r.last_figures["n"] == 2
    assert "n too small" in r.last_figures["detail"]


def champion_env(project: Project) -> Environment:
    v1, _ = versions(project, 1, 2)
    return databricks_environment(project, current_version=v1)


def test_a_delta_rule_paired_on_shared_requests_fires_with_the_hand_computed_interval(project, sent):
    erin, _, _ = engineers(project)
    champion_env(project)
    now = timezone.now()
    at = now - dt.timedelta(hours=2)
    traffic(project, "1", [100, 100, 100, 100], shared=True, at=at)
    traffic(project, "2", [150, 170, 130, 150], shared=True, at=at)
    refresh(project)
    # differences 50, 70, 30, 50: mean 50, variance 800/3; half-width z·sqrt(800/3/4) = 16.003
    half = Z * math.sqrt(800 / 3 / 4)
    fires = rule(
        project, erin, name="d30", model_version="2", environment="production",
        comparison="worse_than_champion", delta=30, min_n=4,
    )  # fmt: skip
    quiet = rule(
        project, erin, name="d40", model_version="2", environment="production",
        comparison="worse_than_champion", delta=40, min_n=4,
    )  # fmt: skip
    alerts_evaluate(project_id=project.pk, now=now)
    fires.refresh_from_db()
    quiet.refresh_from_db()
    f = fires.last_figures
    assert f["method"] == "paired" and f["shared"] == 4 and (f["n_subject"], f["n_baseline"]) == (4, 4)
    assert f["worse_by"] == pytest.approx(50)
    assert f["low"] == pytest.approx(50 - half) and f["high"] == pytest.approx(50 + half)
    assert fires.state == "firing"  # 33.997 > 30
    assert quiet.state == "ok"  # 33.997 < 40: not shown to be worse by more than 40


def test_a_delta_rule_without_shared_requests_uses_two_samples(project, sent):
    erin, _, _ = engineers(project)
    champion_env(project)
    now = timezone.now()
    at = now - dt.timedelta(hours=2)
    traffic(project, "1", [100, 120, 140], shared=False, at=at)
    traffic(project, "2", [200, 220, 240], shared=False, at=at)
    refresh(project)
    r = rule(
        project, erin, name="d", model_version="2", environment="production",
        comparison="worse_than_champion", delta=50, min_n=3,
    )  # fmt: skip
    alerts_evaluate(project_id=project.pk, now=now)
    r.refresh_from_db()
    half = Z * math.sqrt(400 / 3 + 400 / 3)  # Welch: each side's variance 400 over its 3 items
    f = r.last_figures
    assert f["method"] == "two-sample" and (f["n_subject"], f["n_baseline"], f["shared"]) == (3, 3, 0)
    assert f["low"] == pytest.approx(100 - half) and f["high"] == pytest.approx(100 + half)
    assert r.state == "firing"


class Receiver(FakeHttpServer):
    @route("POST", r"/hook")
    def hook(self, request: Request) -> Reply:
        ts = request.headers["x-reviewdesk-timestamp"]
        expected = "sha256=" + hmac.new(SECRET.encode(), ts.encode() + b"." + request.raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("x-reviewdesk-signature", "")):
            return Reply(401, {"error": "bad signature"})
        return Reply(204)


def live_promotion(project: Project) -> tuple[Environment, PromotionRequest]:
    """v2 promoted over v1 on production, live at 100%."""
    erin, _, _ = engineers(project)
    v1, v2 = versions(project, 1, 2)
    env = databricks_environment(project, current_version=v2, previous_version=v1)
    request = PromotionRequest.objects.create(
        project=project, model_version=v2, environment=env, requested_by=erin, status=PromotionRequest.Status.LIVE
    )
    Rollout.objects.create(
        request=request,
        environment=env,
        to_version=v2,
        from_version=v1,
        status=Rollout.Status.SUCCEEDED,
        started_at=timezone.now() - dt.timedelta(hours=3),
        finished_at=timezone.now() - dt.timedelta(hours=2),
    )
    return env, request


def test_a_firing_rollback_rule_rolls_back_once_and_sends_the_signed_webhook(
    project, sent, settings, django_capture_on_commit_callbacks
):
    env, request = live_promotion(project)
    ada = engineers(project)[2]
    now = timezone.now()
    at = now - dt.timedelta(hours=1)
    traffic(project, "1", [100, 100, 100, 100], shared=True, at=at)
    traffic(project, "2", [150, 170, 130, 150], shared=True, at=at)
    refresh(project)
    r = rule(
        project, ada, name="latency regression", scope="candidate", environment="production",
        comparison="worse_than_champion", delta=30, min_n=4, rollback=True,
    )  # fmt: skip
    with Receiver().running() as receiver:
        settings.PROMOTION_WEBHOOK_URLS = [f"{receiver.url}/hook"]
        settings.PROMOTION_WEBHOOK_SECRET = SECRET
        with django_capture_on_commit_callbacks(execute=True):
            alerts_evaluate(project_id=project.pk, now=now)
        with django_capture_on_commit_callbacks(execute=True):
            alerts_evaluate(project_id=project.pk, now=now + dt.timedelta(minutes=1))  # still firing: once
        hooks = [args for name, args in sent if name == "pipelines.webhook_deliver"]
        alert_hooks = [a for a in hooks if a[1]["event"].startswith("alert.")]
        assert [a[1]["event"] for a in alert_hooks] == ["alert.fired"]
        url, payload, delivery = alert_hooks[0]
        assert payload["alert"]["name"] == "latency regression" and payload["alert"]["figures"]["subject"] == "2"
        assert webhook_deliver(url=url, payload=payload, delivery_id=delivery) == 204  # signed: accepted
        assert json.loads(receiver.requests[-1].raw)["event"] == "alert.fired"

    r.refresh_from_db()
    assert r.state == "firing"
    (rollback,) = Rollout.objects.filter(environment=env, kind=Rollout.Kind.ROLLBACK)
    assert rollback.to_version.version == "1" and rollback.request_id == request.pk
    assert "latency regression" in rollback.reason and f"#{r.pk}" in rollback.reason
    (audited,) = AuditEvent.objects.filter(action="promotion.rollback_requested")
    assert audited.data["reason"] == rollback.reason
    (event,) = AlertEvent.objects.filter(rule=r)
    assert event.kind == "fired" and event.rollout_id == rollback.pk


def test_rule_input_errors_name_each_field(project):
    erin, _, _ = engineers(project)
    with pytest.raises(ValidationFailed) as caught:
        alert_rule_create(
            project=project,
            actor=erin,
            values={"name": "x", "metric": "nope", "comparison": "above", "scope": "champion", "rollback": True},
        )
    fields = {e["field"] for e in caught.value.errors}
    assert {"metric", "environment", "threshold", "rollback"} <= fields
    with pytest.raises(ValidationFailed) as caught:
        alert_rule_create(project=project, actor=erin, values={"name": "x", "comparison": "sideways", "min_n": 0})
    fields = {e["field"] for e in caught.value.errors}
    assert {"comparison"} <= fields


# --- the production_not_worse gate ------------------------------------------------------------------


def canary(project: Project) -> tuple[Environment, Any]:
    """v2 in its canary beside v1 on production since two hours ago."""
    erin, _, _ = engineers(project)
    v1, v2 = versions(project, 1, 2)
    env = databricks_environment(project, current_version=v1)
    request = PromotionRequest.objects.create(
        project=project, model_version=v2, environment=env, requested_by=erin, status="rolling_out"
    )
    Rollout.objects.create(
        request=request,
        environment=env,
        to_version=v2,
        from_version=v1,
        status=Rollout.Status.RUNNING,
        started_at=timezone.now() - dt.timedelta(hours=2),
    )
    PromotionGate.objects.create(
        project=project, kind="production_not_worse", params={"metric": "latency_ms", "margin": 20, "min_n": 3}
    )
    return env, v2


def test_the_production_gate_passes_when_not_worse_by_more_than_delta(project):
    env, v2 = canary(project)
    at = timezone.now() - dt.timedelta(hours=1)
    traffic(project, "1", [100, 120, 140], shared=True, at=at)
    traffic(project, "2", [105, 120, 135], shared=True, at=at)  # differences 5, 0, -5: mean 0, sd 5
    traffic(project, "2", [900], shared=False, at=at - dt.timedelta(hours=3))  # before the canary
    refresh(project)
    (line,) = gates_evaluate(model_version=v2, environment=env).lines
    half = Z * 5 / math.sqrt(3)
    assert line.figures["verdict"] == "passed" and line.passed
    assert line.figures["method"] == "paired" and (line.figures["n_subject"], line.figures["n_baseline"]) == (3, 3)
    assert line.figures["high"] == pytest.approx(half)  # 5.66 <= 20
    assert "n = 3" in line.detail


def test_the_production_gate_fails_when_worse(project):
    env, v2 = canary(project)
    at = timezone.now() - dt.timedelta(hours=1)
    traffic(project, "1", [100, 120, 140], shared=True, at=at)
    traffic(project, "2", [130, 140, 170], shared=True, at=at)  # differences 30, 20, 30
    refresh(project)
    (line,) = gates_evaluate(model_version=v2, environment=env).lines
    assert line.figures["verdict"] == "failed" and not line.passed
    assert line.figures["worse_by"] == pytest.approx(80 / 3)


def test_the_production_gate_cannot_be_computed_with_too_few_items(project):
    env, v2 = canary(project)
    at = timezone.now() - dt.timedelta(hours=1)
    traffic(project, "1", [100, 120, 140], shared=False, at=at)
    traffic(project, "2", [105], shared=False, at=at)
    refresh(project)
    (line,) = gates_evaluate(model_version=v2, environment=env).lines
    assert line.figures["verdict"] == "cannot be computed" and not line.passed
    assert "n too small" in line.detail and "1 items of v2" in line.detail and "3 of v1" in line.detail


def test_each_finished_monitoring_refresh_sends_the_alert_evaluation(project, sent, django_capture_on_commit_callbacks):
    from pipelines.sources.monitoring import monitoring_refresh_execute, monitoring_refresh_queue

    with django_capture_on_commit_callbacks(execute=True):
        (refresh_id,) = monitoring_refresh_queue(projects=[project])
    with django_capture_on_commit_callbacks(execute=True):
        monitoring_refresh_execute(refresh_id=refresh_id)
    assert ("pipelines.alerts_evaluate", [project.pk]) in sent
