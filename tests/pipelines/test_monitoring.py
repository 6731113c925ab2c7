"""Monitoring buckets: per-item values against hand-computed figures, the incremental refresh, the job."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
from django.utils import timezone

from evaluations.models import Run, RunResult
from pipelines.models import Feedback, MonitoringBucket, MonitoringRefresh, MonitoringValue
from pipelines.models.feedback import THUMBS_DOWN, THUMBS_UP
from pipelines.sources.monitoring import (
    FIXED_METRICS,
    PASS_RATE,
    metric_get,
    monitoring_refresh,
    monitoring_refresh_execute,
    monitoring_refresh_queue,
    monitoring_series,
    thumbs_down_values,
)
from reviewapp import item_stats
from reviewapp.models import CuratedLabel, Item, Project, Review
from reviewapp.services.projects import question_create
from tests.factories import member
from tests.pipelines.evidence_helpers import suite

UTC = dt.UTC
DAY = dt.datetime(2026, 3, 1, tzinfo=UTC)
H10, H11 = DAY + dt.timedelta(hours=10), DAY + dt.timedelta(hours=11)
SINCE, UNTIL = DAY - dt.timedelta(days=1), DAY + dt.timedelta(days=3)


def make_item(project: Project, ext: str, version: str, *, at: dt.datetime | None, **metadata: Any) -> Item:
    if at is not None:
        metadata["trace_timestamp"] = at.isoformat()
    return Item.objects.create(
        project=project,
        external_id=ext,
        request=f"Question {ext}?",
        response=f"Answer {ext}",
        retrieved_context=[{"doc_uri": "a", "content": "x"}, {"doc_uri": "b", "content": "y"}],
        model_version=version,
        metadata=metadata,
    )


def review(project: Project, item: Item, user: Any, **answers: Any) -> Review:
    now = timezone.now()
    return Review.objects.create(
        project=project, item=item, reviewer=user, answers=answers, submitted_at=now, updated_at=now
    )


def label(project: Project, item: Item, **answers: Any) -> CuratedLabel:
    now = timezone.now()
    return CuratedLabel.objects.create(
        project=project,
        item=item,
        answers=answers,
        method="consensus",
        schema_version=1,
        created_at=now,
        updated_at=now,
    )


@pytest.fixture
def world(project, reviewer, reviewer2):  # type: ignore[no-untyped-def]
    """Version 1: A and B at 10:xx, C at 11:05; version 2: D at 10:30; E (v1) has no trace time."""
    question_create(
        project=project,
        key="chunk_relevance",
        title="Relevance of each chunk",
        kind="context_relevance",
        required=False,
        options={"min": 0, "max": 2},
    )
    a = make_item(project, "A", "1", at=H10 + dt.timedelta(minutes=15), latency_ms=100, total_tokens=50)
    b = make_item(
        project, "B", "1", at=H10 + dt.timedelta(minutes=45), latency_ms=300, token_usage={"total_tokens": 70}
    )
    c = make_item(project, "C", "1", at=H11 + dt.timedelta(minutes=5))
    d = make_item(project, "D", "2", at=H10 + dt.timedelta(minutes=30), latency_ms=80)
    e = make_item(project, "E", "1", at=None)
    Item.objects.filter(pk=e.pk).update(created_at=DAY + dt.timedelta(days=1, hours=3))
    # A: a split vote (0.5); per-chunk precision 0.5 and 1.0 -> 0.75
    review(project, a, reviewer, correct=True, chunk_relevance=[2, 0])
    review(project, a, reviewer2, correct=False, chunk_relevance=[1, 1])
    # B: the curated label (fail, chunks irrelevant) outranks the review
    review(project, b, reviewer, correct=True, chunk_relevance=[2, 2])
    label(project, b, correct=False, chunk_relevance=[0, 0])
    # C: one passing review; a review sent back does not count
    review(project, c, reviewer, correct=True)
    returned = review(project, c, reviewer2, correct=False)
    Review.objects.filter(pk=returned.pk).update(returned_at=timezone.now())
    # Scores: the newest stored-response result per item and scorer; other targets do not count.
    s = suite(project)
    first = Run.objects.create(project=project, suite_version=s.versions.get(), target={"kind": "stored"})
    second = Run.objects.create(project=project, suite_version=s.versions.get(), target={})
    other = Run.objects.create(
        project=project, suite_version=s.versions.get(), target={"kind": "mlflow_model", "model_uri": "models:/x/1"}
    )
    RunResult.objects.create(run=first, item=a, scorer="groundedness", value=0.2, number=0.2)
    RunResult.objects.create(run=second, item=a, scorer="groundedness", value=0.8, number=0.8)
    RunResult.objects.create(run=first, item=b, scorer="groundedness", value=0.4, number=0.4)
    RunResult.objects.create(run=first, item=c, scorer="groundedness", value=None, number=None, error="timeout")
    RunResult.objects.create(run=other, item=c, scorer="groundedness", value=0.0, number=0.0)
    return {"A": a, "B": b, "C": c, "D": d, "E": e}


def figures(project: Project, metric: str, granularity: str = "day") -> dict[tuple[str, dt.datetime], Any]:
    m = metric_get(metric)
    assert m is not None
    points = monitoring_series(project=project, granularity=granularity, since=SINCE, until=UNTIL, metrics=[m])
    return {(p.model_version, p.start): p for p in points[metric]}


def snapshot(project: Project) -> dict[tuple[str, str, str, dt.datetime], tuple[int, float, float]]:
    return {
        (b.granularity, b.metric, b.model_version, b.start): (b.n, round(b.total, 9), round(b.total_sq, 9))
        for b in MonitoringBucket.objects.filter(project=project)
    }


def test_bucket_values_are_per_item_with_their_n_and_intervals(project, world) -> None:
    result = monitoring_refresh(project=project)

    assert result.full and result.items == 5
    volume = figures(project, "volume")
    assert {k: p.n for k, p in volume.items()} == {("1", DAY): 3, ("2", DAY): 1, ("1", DAY + dt.timedelta(days=1)): 1}
    assert volume[("1", DAY)].value == 3 and volume[("1", DAY)].low is None
    hourly = figures(project, "volume", "hour")
    assert {k: p.n for k, p in hourly.items() if k[0] == "1"} == {
        ("1", H10): 2,
        ("1", H11): 1,
        ("1", DAY + dt.timedelta(days=1, hours=3)): 1,  # E: no trace time, counted when ingested
    }

    # Pass rate over items: A 0.5 (split vote), B 0 (curated), C 1 (the returned review is ignored).
    rate = figures(project, PASS_RATE)
    day1 = rate[("1", DAY)]
    assert (day1.n, day1.value) == (3, pytest.approx(0.5))
    low, high = item_stats.wilson(1.5, 3)  # type: ignore[misc]
    assert (day1.low, day1.high) == (pytest.approx(low), pytest.approx(high))
    assert ("2", DAY) not in rate  # D has no human answer
    hour = figures(project, PASS_RATE, "hour")
    assert (hour[("1", H10)].n, hour[("1", H10)].value) == (2, pytest.approx(0.25))
    assert (hour[("1", H11)].n, hour[("1", H11)].value) == (1, 1.0)
    assert hour[("1", H11)].low == pytest.approx(item_stats.wilson(1, 1)[0])  # type: ignore[index]

    # Retrieval precision: A mean of its reviews (0.5, 1.0) = 0.75; B its curated labels = 0.
    precision = figures(project, "retrieval_precision")[("1", DAY)]
    assert (precision.n, precision.value) == (2, pytest.approx(0.375))

    # Latency: A 100, B 300 -> mean 200, sd 141.42, normal interval 200 ± 1.96 * 141.42 / sqrt(2)
    latency = figures(project, "latency_ms")[("1", DAY)]
    half = item_stats.z_for(0.95) * math.sqrt(20000) / math.sqrt(2)
    assert (latency.n, latency.value) == (2, pytest.approx(200))
    assert (latency.low, latency.high) == (pytest.approx(200 - half), pytest.approx(200 + half))
    assert figures(project, "latency_ms")[("2", DAY)].n == 1
    tokens = figures(project, "tokens")[("1", DAY)]
    assert (tokens.n, tokens.value) == (2, pytest.approx(60))

    # Scores: A's newest result 0.8 (a target-less run is a stored one), B 0.4; C's error and other target ignored.
    score = figures(project, "score:groundedness")[("1", DAY)]
    assert (score.n, score.value) == (2, pytest.approx(0.6))

    # No end users' feedback yet: no thumbs-down buckets.
    assert thumbs_down_values(item_ids=[world["A"].pk]) == {}
    assert not MonitoringBucket.objects.filter(metric="thumbs_down_rate").exists()
    assert set(FIXED_METRICS) >= {"volume", "human_pass_rate", "thumbs_down_rate", "latency_ms", "tokens"}


def thumbs(project: Project, item: Item, *values: int) -> None:
    now = timezone.now()
    for n, value in enumerate(values):
        Feedback.objects.create(
            project=project,
            item=item,
            external_id=item.external_id,
            kind="thumbs",
            value=value,
            client_id=f"{item.external_id}-{n}-{value}",
            created_at=now,
            received_at=now,
            joined_at=now,
        )


def test_thumbs_down_rate_is_per_item_and_follows_feedback_that_arrives_later(project, world, settings) -> None:
    settings.MONITORING_REFRESH_OVERLAP_SECONDS = 0
    # A: one down of two thumbs (0.5); B: down (1.0); D (version 2): up (0.0); a rating and a comment do not count.
    thumbs(project, world["A"], THUMBS_UP, THUMBS_DOWN)
    thumbs(project, world["B"], THUMBS_DOWN)
    thumbs(project, world["D"], THUMBS_UP)
    now = timezone.now()
    Feedback.objects.create(
        project=project,
        item=world["C"],
        external_id="C",
        kind="rating",
        value=1,
        client_id="c-r",
        created_at=now,
        received_at=now,
    )
    monitoring_refresh(project=project)
    down = figures(project, "thumbs_down_rate")
    assert (down[("1", DAY)].n, down[("1", DAY)].value) == (2, pytest.approx(0.75))
    assert (down[("2", DAY)].n, down[("2", DAY)].value) == (1, 0.0)

    # Later: C gets a thumbs-down; only an incremental refresh runs, and it sees it.
    thumbs(project, world["C"], THUMBS_DOWN)
    monitoring_refresh(project=project)
    down = figures(project, "thumbs_down_rate")
    assert (down[("1", DAY)].n, down[("1", DAY)].value) == (3, pytest.approx((0.5 + 1 + 1) / 3))


def test_incremental_refresh_touches_only_changed_buckets_and_equals_a_full_recompute(project, world, settings) -> None:
    settings.MONITORING_REFRESH_OVERLAP_SECONDS = 0
    first = monitoring_refresh(project=project)
    stamps = {
        (b.granularity, b.metric, b.model_version, b.start): b.refreshed_at
        for b in MonitoringBucket.objects.filter(project=project)
    }

    review(
        project, world["C"], member(project, "reviewer", username="ray"), correct=False
    )  # C: 1 -> 0.5 (hour 11 and the day)
    moved = world["D"]
    moved.model_version = "1"  # D leaves version 2's buckets for version 1's
    moved.save()
    make_item(project, "F", "2", at=DAY + dt.timedelta(days=2, hours=1), latency_ms=10)
    second = monitoring_refresh(project=project, changed_since=first.changed_since, result_id=first.result_id)

    assert not second.full and second.items == 3
    after = {
        (b.granularity, b.metric, b.model_version, b.start): b.refreshed_at
        for b in MonitoringBucket.objects.filter(project=project)
    }
    untouched = [k for k in stamps if k in after and after[k] == stamps[k]]
    assert ("hour", PASS_RATE, "1", H10) in untouched  # A and B did not change
    assert ("day", "volume", "1", DAY + dt.timedelta(days=1)) in untouched  # E
    assert after[("hour", PASS_RATE, "1", H11)] != stamps[("hour", PASS_RATE, "1", H11)]
    assert ("hour", "volume", "2", H10) not in after  # D left it, and it was left empty
    assert figures(project, PASS_RATE, "hour")[("1", H11)].value == pytest.approx(0.5)
    assert figures(project, "volume", "hour")[("1", H10)].n == 3
    assert figures(project, "volume")[("2", DAY + dt.timedelta(days=2))].n == 1

    incremental = snapshot(project)
    again = monitoring_refresh(project=project, changed_since=second.changed_since, result_id=second.result_id)
    assert (again.items, again.buckets) == (0, 0)  # nothing changed since: nothing recomputed
    monitoring_refresh(project=project, full=True)
    assert snapshot(project) == incremental


def test_new_results_and_curated_labels_reach_their_buckets(project, world) -> None:
    first = monitoring_refresh(project=project)
    label(project, world["C"], correct=False)
    run = Run.objects.create(project=project, suite_version=RunResult.objects.first().run.suite_version, target={})  # type: ignore[union-attr]
    RunResult.objects.create(run=run, item=world["D"], scorer="groundedness", value=1.0, number=1.0)

    second = monitoring_refresh(project=project, changed_since=first.changed_since, result_id=first.result_id)

    assert second.items >= 2
    assert figures(project, PASS_RATE)[("1", DAY)].value == pytest.approx(0.5 / 3)
    assert figures(project, "score:groundedness")[("2", DAY)].value == 1.0
    assert second.result_id == RunResult.objects.order_by("-id").first().pk  # type: ignore[union-attr]


def test_the_refresh_job_is_queued_by_the_beat_runs_once_and_keeps_its_watermarks(project, world) -> None:
    sent = monitoring_refresh_queue(projects=[project])
    row = MonitoringRefresh.objects.get(project=project)
    assert sent == [row.pk] and row.status == "queued"
    assert monitoring_refresh_queue(projects=[project]) == []  # still queued: not sent twice

    result = monitoring_refresh_execute(refresh_id=row.pk)

    assert result is not None and result.full
    row.refresh_from_db()
    assert (row.status, row.last_items, row.changed_since) == ("done", 5, result.changed_since)
    assert monitoring_refresh_execute(refresh_id=row.pk) is None  # done: nothing to claim
    assert MonitoringValue.objects.filter(project=project, metric="volume").count() == 5
    # The next beat queues it again, and the worker now recomputes only what changed.
    assert monitoring_refresh_queue(projects=[project]) == [row.pk]
    again = monitoring_refresh_execute(refresh_id=row.pk)
    assert again is not None and not again.full
