"""The demo moves: simulated end users ask the demo RAG chain, rate some answers, and the demo's MLflow
source and the monitoring refresh take it in. A real local MLflow store (tmp SQLite), the real chain."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone

from pipelines.adapters import mlflow_tracking
from pipelines.demo_traffic import (
    DOWN_SHARE,
    RATED_SHARE,
    TRAFFIC_EXPERIMENT,
    Served,
    demo_answer_log,
    demo_feedback_for,
    demo_split,
    demo_traffic_backfill,
    demo_traffic_source_ensure,
    demo_traffic_tick,
)
from pipelines.models import (
    Environment,
    Feedback,
    Granularity,
    ModelVersion,
    MonitoringBucket,
    PromotionRequest,
    Rollout,
    RolloutStep,
    SourcedItem,
)
from pipelines.sources.monitoring import THUMBS_DOWN, monitoring_refresh
from pipelines.sources.pulls import source_pull_execute, source_pull_request
from reviewapp.demo.project import PROJECT_SLUG
from reviewapp.models import Item
from tests.factories import ProjectFactory, UserFactory
from tests.pipelines.test_trace_ingest import mlflow_store  # noqa: F401 - a fixture

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

PER_VERSION = 24  # requests answered by each version in the main test


def test_feedback_is_a_function_of_the_trace_id_and_version_1_is_disliked_more() -> None:
    ids = [f"tr-{n:05d}" for n in range(4000)]
    assert [demo_feedback_for(trace_id=i, variant="v1") for i in ids[:50]] == [
        demo_feedback_for(trace_id=i, variant="v1") for i in ids[:50]
    ]
    for variant in ("v1", "v2"):
        votes = [demo_feedback_for(trace_id=i, variant=variant) for i in ids]
        rated = [v for v in votes if v is not None]
        assert abs(len(rated) / len(ids) - RATED_SHARE) < 0.03
        assert abs(rated.count(False) / len(rated) - DOWN_SHARE[variant]) < 0.04, variant


def test_traffic_is_traced_rated_pulled_and_drawn_per_item(
    settings,
    mlflow_store,  # noqa: F811
    django_capture_on_commit_callbacks,
) -> None:
    project = ProjectFactory(slug=PROJECT_SLUG)
    split = [Served("1", "v1", 50), Served("2", "v2", 50)]
    now = timezone.now()
    logged = []
    for n in range(2 * PER_VERSION * 2):  # the split is by hash: log until each version has PER_VERSION
        got = Counter(t.version for t in logged)
        if min(got["1"], got["2"]) >= PER_VERSION:
            break
        logged.append(demo_answer_log(project=project, when=now - timedelta(minutes=n), key=f"test:{n}", split=split))
    assert min(Counter(t.version for t in logged).values()) == PER_VERSION
    # The beat's task, as it runs: the demo project's fixed split (nothing live, no canary).
    ticked = [demo_traffic_tick() for _ in range(2)]
    assert all(t is not None and t.version in ("1", "2") for t in ticked)

    # In MLflow: the traces, with the version tags the reader takes and HUMAN feedback on the rated ones.
    page = mlflow_tracking.traces_search(tracking_uri=settings.MLFLOW_TRACKING_URI, experiment=TRAFFIC_EXPERIMENT)
    by_id = {t["trace_id"]: t for t in page.traces}
    assert len(by_id) == len(logged) + 2
    for trace in logged:
        read = by_id[trace.trace_id]
        assert (read["model_name"], read["model_version"]) == ("support-assistant", trace.version)
        assert read["request"] and read["response"] and read["retrieved_context"]
        thumbs = [a.value for a in read["assessments"] if a.source_type == "HUMAN" and a.name == "user_feedback"]
        assert thumbs == ([] if trace.feedback is None else [trace.feedback])
    rated = [t for t in logged if t.feedback is not None]
    assert Feedback.objects.filter(project=project, origin="mlflow").count() == len(rated) + sum(
        1 for t in ticked if t and t.feedback is not None
    )

    # The demo's source pulls them (every thumbs down, a share of the rest) and the refresh draws them.
    source, created = demo_traffic_source_ensure(project=project)
    assert created and demo_traffic_source_ensure(project=project) == (source, False)
    with django_capture_on_commit_callbacks(execute=True):  # the ingest's hook joins the waiting feedback
        pull = source_pull_execute(pull_id=source_pull_request(source=source, actor=None, enqueue=False).pk)
    assert pull is not None and pull.status == "succeeded" and pull.scanned == len(logged) + 2
    taken = set(SourcedItem.objects.filter(source=source).values_list("item__external_id", flat=True))
    disliked = {t.trace_id for t in logged if t.feedback is False}
    assert disliked and disliked <= taken  # the thumbs-down rule takes every one
    joined = Feedback.objects.filter(project=project, item__isnull=False)
    assert joined.count() == Feedback.objects.filter(project=project, trace_id__in=taken).count() > 0

    monitoring_refresh(project=project)
    # Every trace's feedback was decided by its (random) id, so the figure is checked against what was
    # decided for the traces the source took; the 55% / 15% shares themselves are checked over 4,000
    # ids in the test above, where chance plays no part.
    served = logged + [t for t in ticked if t is not None]
    for version in ("1", "2"):
        rated = [t for t in served if t.version == version and t.trace_id in taken and t.feedback is not None]
        sums = MonitoringBucket.objects.filter(
            project=project, granularity=Granularity.DAY, metric=THUMBS_DOWN, model_version=version
        ).aggregate(n=Sum("n"), total=Sum("total"))
        assert sums["n"] == len(rated) > 0, version
        assert sums["total"] == pytest.approx(sum(1 for t in rated if t.feedback is False)), version


def test_the_split_follows_production_and_its_canary_and_the_backfill_logs_the_canary_once(
    settings,
    mlflow_store,  # noqa: F811
) -> None:
    project = ProjectFactory(slug=PROJECT_SLUG)
    now = timezone.now()
    for number in ("1", "2"):
        ModelVersion.objects.create(
            project=project,
            registered_model="support-assistant",
            version=number,
            tags={"reviewdesk.demo_variant": f"v{number}"},
            synced_at=now,
        )
    assert [(s.version, s.percent) for s in demo_split(project=project)] == [("1", 50), ("2", 50)]
    v1, v2 = (ModelVersion.objects.get(project=project, version=n) for n in ("1", "2"))
    production = Environment.objects.create(project=project, name="production", alias="champion")
    production.current_version = v1
    production.save()
    assert [(s.version, s.variant, s.percent) for s in demo_split(project=project)] == [("1", "v1", 100)]

    # Version 2's canary: traffic follows the last stage the rollout applied.
    request = PromotionRequest.objects.create(
        project=project, model_version=v2, environment=production, requested_by=UserFactory()
    )
    rollout = Rollout.objects.create(
        request=request,
        environment=production,
        to_version=v2,
        from_version=v1,
        status=Rollout.Status.RUNNING,
        stages=[10, 50, 100],
    )
    steps = {
        stage: RolloutStep.objects.create(rollout=rollout, position=n, key=f"traffic_{stage}", title=f"{stage}%")
        for n, stage in enumerate((10, 50, 100))
    }
    assert [(s.version, s.percent) for s in demo_split(project=project)] == [("1", 100)]  # no stage applied yet
    RolloutStep.objects.filter(pk=steps[10].pk).update(status=RolloutStep.Status.DONE)
    assert [(s.version, s.variant, s.percent) for s in demo_split(project=project)] == [
        ("1", "v1", 90),
        ("2", "v2", 10),
    ]
    RolloutStep.objects.filter(pk=steps[50].pk).update(status=RolloutStep.Status.DONE)
    assert [(s.version, s.percent) for s in demo_split(project=project)] == [("1", 50), ("2", 50)]
    Rollout.objects.filter(pk=rollout.pk).update(status=Rollout.Status.SUCCEEDED)
    production.current_version = v2
    production.save()
    assert [(s.version, s.percent) for s in demo_split(project=project)] == [("2", 100)]

    assert demo_traffic_backfill(project=project, now=now, hours=30, per_hour=1) == 30
    assert demo_traffic_backfill(project=project, now=now, hours=30, per_hour=1) == 0  # once
    page = mlflow_tracking.traces_search(tracking_uri=settings.MLFLOW_TRACKING_URI, experiment=TRAFFIC_EXPERIMENT)
    assert len(page.traces) == 30
    first_day_ms = (now - timedelta(hours=24)).timestamp() * 1000
    early = {t["model_version"] for t in page.traces if t["timestamp_ms"] < first_day_ms}
    assert early == {"1"}  # version 2's canary starts a day ago
    assert min(t["timestamp_ms"] for t in page.traces) >= (now - timedelta(hours=30)).timestamp() * 1000
    assert Item.objects.filter(project=project).count() == 0  # items come with the source's pulls
