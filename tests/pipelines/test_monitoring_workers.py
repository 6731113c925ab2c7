"""A monitoring refresh on a real Celery worker, SIGKILLed half-way through a full recompute.

The doomed worker reaches PostgreSQL through a delaying TCP proxy (tests/fakes/delay_proxy.py), so
its refresh of 6,000 items (three rounds of 2,000) is reliably mid-way when the first round's values
are committed and no bucket is written yet. A rescuer worker and the jobs kernel's sweeper (called
every poll, as beat would every 30 s) then finish it: the buckets equal a clean full recompute, and
the job was claimed twice (the killed attempt and the rescue).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from pipelines.models import MonitoringBucket, MonitoringRefresh, MonitoringValue
from pipelines.sources.monitoring import CHUNK, monitoring_refresh, monitoring_refresh_queue
from reviewapp.models import Item, Project, Review
from reviewapp.tasks import jobs_sweep as jobs_sweep_task
from tests.fakes.delay_proxy import delay_proxy
from tests.workers import cluster_running, database_url, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ITEMS = 3 * CHUNK
START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def traffic(project: Project, reviewer: Any) -> None:
    """Two model versions over 50 hours, with latencies and a passing or failing review on every 7th item."""
    Item.objects.bulk_create(
        [
            Item(
                project=project,
                external_id=f"t{n}",
                request=f"Question {n}?",
                response=f"Answer {n}",
                model_version="1" if n % 3 else "2",
                metadata={
                    "trace_timestamp": (START + dt.timedelta(minutes=n // 2)).isoformat(),
                    "latency_ms": 50 + n % 400,
                },
            )
            for n in range(ITEMS)
        ],
        batch_size=2000,
    )
    now = timezone.now()
    Review.objects.bulk_create(
        [
            Review(
                project=project,
                item=item,
                reviewer=reviewer,
                answers={"correct": item.pk % 2 == 0},
                submitted_at=now,
                updated_at=now,
            )
            for item in Item.objects.filter(project=project).order_by("id")[::7]
        ]
    )


def buckets(project: Project) -> dict[tuple[str, str, str, dt.datetime], tuple[int, float, float]]:
    rows = MonitoringBucket.objects.filter(project=project).values_list(
        "granularity", "metric", "model_version", "start", "n", "total", "total_sq"
    )
    return {(g, m, v, s): (n, round(t, 6), round(q, 6)) for g, m, v, s, n, t, q in rows}


def test_a_refresh_killed_half_way_is_finished_by_another_worker_and_equals_a_full_recompute(
    project: Project, reviewer: Any, tmp_path: Any
) -> None:
    traffic(project, reviewer)
    db = urlsplit(database_url())
    with cluster_running(tmp_path, MONITORING_REFRESH_LEASE_SECONDS="3", CELERY_VISIBILITY_TIMEOUT="3600") as cluster:
        with delay_proxy(db.hostname or "127.0.0.1", db.port or 5432, delay=0.3) as slow_db:
            doomed = cluster.start_worker(
                "doomed", DATABASE_URL=database_url().replace(f":{db.port}/", f":{slow_db.port}/")
            )
            (refresh_id,) = monitoring_refresh_queue(projects=[project])  # never ran: a full recompute
            # Killed once the first round of values is committed: two rounds and every bucket to go.
            assert wait_for(
                lambda: MonitoringValue.objects.filter(project=project).exists(), timeout=120, interval=0.05
            ), doomed.log[-4000:]
            doomed.kill()
        half = MonitoringRefresh.objects.get(pk=refresh_id)
        assert half.status == MonitoringRefresh.Status.RUNNING and half.changed_since is None, doomed.log[-3000:]
        valued = MonitoringValue.objects.filter(project=project, metric="volume").count()
        assert 0 < valued < ITEMS, doomed.log[-3000:]
        assert not MonitoringBucket.objects.filter(project=project).exists()

        rescuer = cluster.start_worker("rescuer")

        def finished() -> bool:
            jobs_sweep_task.delay()  # what beat does every 30 s, here every poll
            status = MonitoringRefresh.objects.values_list("status", flat=True).get(pk=refresh_id)
            return status not in (MonitoringRefresh.Status.QUEUED, MonitoringRefresh.Status.RUNNING)

        assert wait_for(finished, timeout=120, interval=1.0), rescuer.log[-4000:]
        done = MonitoringRefresh.objects.get(pk=refresh_id)
        assert done.status == MonitoringRefresh.Status.DONE, (done.error, rescuer.log[-3000:])
        assert done.attempts == 2 and done.changed_since is not None and done.last_items == ITEMS
        assert "reviewapp.jobs_sweep" in rescuer.log and "pipelines.monitoring_refresh[" in rescuer.log

    rescued = buckets(project)
    assert MonitoringValue.objects.filter(project=project, metric="volume").count() == ITEMS
    hours = {k: v for k, v in rescued.items() if k[0] == "hour" and k[1] == "volume"}
    assert sum(n for n, _, _ in hours.values()) == ITEMS  # every item counted once
    monitoring_refresh(project=project, full=True)  # a clean full recompute, here
    assert buckets(project) == rescued
