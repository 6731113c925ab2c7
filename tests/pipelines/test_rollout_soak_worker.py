"""A canary soak on a real Celery worker, killed with SIGKILL half-way through the soak; the sweeper re-sends
the rollout, another worker resumes the soak where it was (same start, the samples so far, only the missing
watched seconds) and the rollout finishes. Serving is the local Databricks workspace through the real SDK."""

from __future__ import annotations

import pytest

from pipelines.models import Rollout
from pipelines.releases.promotion import promotion_approve, promotion_request
from pipelines.tasks.promotions import rollouts_sweep as rollouts_sweep_task
from tests.evaluations.conftest import ingest, rag_row
from tests.fakes.databricks_api import FakeDatabricks
from tests.pipelines import promotion_fixtures
from tests.pipelines.promotion_fixtures import databricks_environment, engineers, serve_v1, versions
from tests.workers import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
databricks_fake = promotion_fixtures.databricks_fake
SOAK = 6


def test_a_soak_killed_half_way_resumes_on_another_worker(project, cluster, databricks_fake: FakeDatabricks) -> None:  # type: ignore[no-untyped-def]
    serve_v1(databricks_fake)
    ingest(project, [rag_row(1, request="How do I export my notes?")])
    erin, ezra, _ = engineers(project)
    v1, v2 = versions(project, 1, 2)
    env = databricks_environment(project, current_version=v1, canary_stages=[10, 100], soak_seconds=SOAK)
    env.health_check_queries = 1
    env.save()
    worker_env = {
        "DATABRICKS_HOST": databricks_fake.url,
        "DATABRICKS_TOKEN": databricks_fake.token,
        "DATABRICKS_TIMEOUT_SECONDS": "5",
        "ROLLOUT_LEASE_SECONDS": "3",
        "ROLLOUT_POLL_MILLISECONDS": "50",
        "ROLLOUT_SOAK_INTERVAL_MILLISECONDS": "200",
    }
    doomed = cluster.start_worker("doomed", **worker_env)
    req = promotion_request(actor=erin, model_version=v2, environment=env, reason="v2")
    promotion_approve(actor=ezra, request_id=req.pk)
    rollout = Rollout.objects.get(request=req)

    def soaking() -> bool:
        detail = rollout.steps.get(key="health_10").detail or {}
        return float(detail.get("soak_watched_seconds") or 0) >= 2

    assert wait_for(soaking, timeout=60, interval=0.1), doomed.log[-3000:]
    doomed.kill()
    before = rollout.steps.get(key="health_10")
    assert before.status == "running" and before.detail["soak_watched_seconds"] < SOAK
    asked_before = len(databricks_fake.invocations())

    rescuer = cluster.start_worker("rescuer", **worker_env)

    def finished() -> bool:
        rollouts_sweep_task.delay()  # what beat does, here every poll (the dead worker's lease runs out in 3 s)
        return Rollout.objects.get(pk=rollout.pk).status in ("succeeded", "failed")

    assert wait_for(finished, timeout=120, interval=1.0), rescuer.log[-3000:]
    rollout.refresh_from_db()
    assert rollout.status == "succeeded", (
        rollout.error,
        rollout.steps.get(key="health_10").detail["log"],
        [(r.method, r.path) for r in databricks_fake.requests][-30:],
        doomed.log[-4000:],
    )
    after = rollout.steps.get(key="health_10")
    detail = after.detail
    assert detail["soak_resumed"] == 1 and detail["soak_started_at"] == before.detail["soak_started_at"]
    # the soak kept the samples from before the kill and watched only the seconds still missing
    assert SOAK <= detail["soak_watched_seconds"] < SOAK + 2, (before.detail, detail)
    assert detail["queries"] > before.detail["queries"]
    assert detail["log"][: before.detail["queries"]] == before.detail["log"]
    assert detail["queries"] == len(detail["log"]) == detail["served_by"]["2"]
    # every query of the stage (before and after the kill) went to v2's own served entity
    health_queries = databricks_fake.invocations()[: detail["queries"]]
    assert {q.path for q in health_queries} == {
        "/serving-endpoints/support-prod/served-models/support_assistant-2/invocations"
    }
    assert asked_before <= before.detail["queries"] + 1  # at most one query was in flight when it died
    assert "pipelines.rollout_advance" in rescuer.log
