"""Monitoring: page server time over 1,000,000 items and 90 days, and the refresh rate.

Seeds a project with ``--items`` traced items (SQL COPY) spread over 90 days and three model
versions (latency and tokens on every trace), 5% of them reviewed once and 10% scored by a code
scorer; runs the full refresh (every value and bucket), then an incremental one after a minute of
new traffic and reviews, and times the monitoring page and API on gunicorn over loopback.

Target: page server time <= 150 ms. Prints figures, never asserts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import time

from bench.common import Client, ensure_database, percentiles, print_table, server, setup_django
from bench.review_page import login

SLUG = "bench-monitoring"
DAYS = 90
WARMUP = 4


def seed(project: object, *, items: int, seed: int = 11) -> float:
    """``items`` items (COPY), 5% reviewed, 10% scored; seconds taken. Kept when already there."""
    from django.db import connection
    from django.utils import timezone

    from bench.fixtures import bench_user
    from evaluations.models import Run, RunResult, Suite, SuiteVersion
    from reviewapp.models import Item, Review

    if Item.objects.filter(project=project, source="bench").count() == items:
        return 0.0  # seeded by an earlier run (the traffic a run adds has no source)
    t0 = time.perf_counter()
    Item.objects.filter(project=project).delete()
    rnd = random.Random(seed)
    now = timezone.now()
    start = (now - dt.timedelta(days=DAYS)).replace(minute=0, second=0, microsecond=0)
    span = (now - start).total_seconds()
    table = Item._meta.db_table
    columns = (
        "project_id, external_id, request, response, retrieved_context, model_name, model_version, trace_id, "
        "source, metadata, request_hash, priority, review_count, created_at, updated_at"
    )
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for n in range(items):
            at = start + dt.timedelta(seconds=span * n / items)
            frac = n / items
            # v1 first; v2 a 30% canary from day 40, all traffic from day 60; v3 a 10% canary in the last 5 days
            version = "1" if frac < 0.45 or (frac < 0.67 and rnd.random() >= 0.3) else "2"
            if frac > 0.94 and rnd.random() < 0.1:
                version = "3"
            metadata = {
                "trace_timestamp": at.isoformat(),
                "latency_ms": round(rnd.lognormvariate(6.5 if version != "3" else 6.2, 0.4), 1),
                "total_tokens": rnd.randint(300, 1800),
            }
            copy.write_row(
                (
                    project.pk,  # type: ignore[attr-defined]
                    f"m-{n}",
                    json.dumps(f"Question {n}?"),
                    "Answer.",
                    "[]",
                    "support-assistant",
                    version,
                    f"tr-{n:08d}",
                    "bench",
                    json.dumps(metadata),
                    "",
                    0,
                    0,
                    at,
                    at,
                )
            )
    reviewer = bench_user(project, "bench-mon-reviewer", "reviewer")
    ids = list(Item.objects.filter(project=project).values_list("id", "model_version", "created_at"))
    reviews, results = [], []
    suite = Suite.objects.get_or_create(project=project, name="monitoring-bench")[0]
    version = SuiteVersion.objects.get_or_create(suite=suite, number=1, defaults={"scorers": []})[0]
    run = Run.objects.create(project=project, suite_version=version, target={"kind": "stored"}, status="succeeded")
    for item_id, model_version, at in ids:
        if rnd.random() < 0.05:
            passed = rnd.random() < (0.8 if model_version == "2" else 0.7)
            reviews.append(
                Review(
                    project=project,
                    item_id=item_id,
                    reviewer=reviewer,
                    answers={"correct": passed},
                    submitted_at=at,
                    updated_at=at,
                )
            )
        if rnd.random() < 0.10:
            score = round(rnd.random(), 3)
            results.append(RunResult(run=run, item_id=item_id, scorer="groundedness", value=score, number=score))
    Review.objects.bulk_create(reviews, batch_size=5000)
    RunResult.objects.bulk_create(results, batch_size=5000)
    with connection.cursor() as cursor:
        for model in (Item, Review, RunResult):
            cursor.execute(f"ANALYZE {model._meta.db_table}")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    ensure_database()
    setup_django()
    from django.db import connection
    from django.utils import timezone

    from bench.fixtures import bench_project, bench_user
    from pipelines.models import MonitoringBucket, MonitoringValue
    from pipelines.sources.monitoring import monitoring_refresh
    from reviewapp.models import Item, Review

    project = bench_project(SLUG)
    seed_s = seed(project, items=args.items)
    bench_user(project, "bench-mon-curator", "curator")

    full = monitoring_refresh(project=project, full=True)
    with connection.cursor() as cursor:
        for model in (MonitoringValue, MonitoringBucket):
            cursor.execute(f"ANALYZE {model._meta.db_table}")
    values = MonitoringValue.objects.filter(project=project).count()
    buckets = MonitoringBucket.objects.filter(project=project).count()

    # A minute of traffic: 1,000 new items now, and 500 reviews of older items.
    now = timezone.now()
    rnd = random.Random(5)
    Item.objects.bulk_create(
        [
            Item(
                project=project,
                external_id=f"m-new-{now.timestamp()}-{i}",
                request="New question?",
                model_version="2",
                metadata={"trace_timestamp": now.isoformat(), "latency_ms": 700.0, "total_tokens": 900},
            )
            for i in range(1000)
        ]
    )
    reviewer = bench_user(project, "bench-mon-reviewer-2", "reviewer")
    older = list(
        Item.objects.filter(project=project).exclude(reviews__reviewer=reviewer).values_list("id", flat=True)[:200_000]
    )
    Review.objects.bulk_create(
        [
            Review(
                project=project,
                item_id=item_id,
                reviewer=reviewer,
                answers={"correct": rnd.random() < 0.75},
                submitted_at=now,
                updated_at=now,
            )
            for item_id in rnd.sample(older, 500)
        ]
    )
    incremental = monitoring_refresh(project=project, changed_since=full.changed_since, result_id=full.result_id)

    paths = {
        "page: day buckets, 90 days, every version": f"/projects/{SLUG}/monitoring/?bucket=day&since="
        f"{(now - dt.timedelta(days=DAYS)).date()}&until={now.date()}",
        "page: hour buckets, 7 days, every version": f"/projects/{SLUG}/monitoring/?bucket=hour&since="
        f"{(now - dt.timedelta(days=7)).date()}&until={now.date()}",
        "API: pass rate, day buckets, 90 days": f"/api/v1/projects/{SLUG}/monitoring/?metric=human_pass_rate"
        f"&bucket=day&since={(now - dt.timedelta(days=DAYS)).date()}",
    }
    figures: dict[str, dict[str, float]] = {}
    with server() as (port, _pid):
        client = Client(port, cookie=login(port, "bench-mon-curator"))
        for name, path in paths.items():
            samples = []
            for i in range(args.requests + WARMUP):
                t0 = time.perf_counter()
                status, body = client.request("GET", path)
                elapsed = (time.perf_counter() - t0) * 1000
                if status != 200:
                    raise RuntimeError(f"{path} answered {status}: {body[:300]!r}")
                if i >= WARMUP:
                    samples.append(elapsed)
            figures[name] = percentiles(samples)

    n_items = Item.objects.filter(project=project).count()
    rows = [
        ("project", f"{n_items:,} items", f"{DAYS} days, 3 model versions, 5% reviewed, 10% scored"),
        ("seeding (COPY + bulk_create, once)", f"{seed_s:.1f} s", ""),
        ("values / buckets", f"{values:,} / {buckets:,}", "per-item values; hour and day buckets"),
        (
            "full refresh",
            f"{full.seconds:.1f} s",
            f"{full.items / max(full.seconds, 1e-9):,.0f} items/s ({full.items:,} items, {full.buckets:,} buckets)",
        ),
        (
            "incremental refresh (1,000 new items + 500 reviews)",
            f"{incremental.seconds:.2f} s",
            f"{incremental.items / max(incremental.seconds, 1e-9):,.0f} items/s "
            f"({incremental.items:,} items, {incremental.buckets:,} buckets rewritten)",
        ),
    ]
    for name, p in figures.items():
        rows.append((f"{name} p50/p95", f"{p['p50']:.0f}/{p['p95']:.0f} ms", "target <= 150 ms"))
    load = os.getloadavg()
    rows.append(
        (
            "machine load (1/5/15 min) at the end",
            f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}",
            f"{os.cpu_count()} cores",
        )
    )
    print_table("monitoring (curator, gunicorn, loopback, warm)", rows)


if __name__ == "__main__":
    main()
