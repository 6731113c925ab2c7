"""Dashboard: page server time over 100,000 items, and agreement time for 100,000 reviews.

Targets: dashboard page <= 150 ms server time; agreement (alpha + percent, with bootstrap
intervals) for 100,000 reviews <= 2 s. Prints figures, never asserts.
"""

from __future__ import annotations

import argparse
import random
import time

from bench.common import Client, ensure_database, percentiles, print_table, server, setup_django
from bench.review_page import login

REVIEWERS = 10
PREFIX = "bench-dash"
WARMUP = 6  # the first requests fill each gunicorn worker's stats cache


def seed_reviews(project: object, *, items: int, per_item: int, seed: int = 7) -> int:
    """``per_item`` reviews on each of the first ``items`` items, by bench-dash reviewers (bulk_create).

    Items' review counts and slots are left alone, so the queue benches on this project are unaffected.
    """
    from django.utils import timezone

    from bench.fixtures import bench_user
    from reviewapp.models import Item, Review

    users = [bench_user(project, f"{PREFIX}-r{i}", "reviewer") for i in range(REVIEWERS)]
    existing = Review.objects.filter(project=project, reviewer__in=users).count()
    if existing >= items * per_item:
        return existing
    Review.objects.filter(project=project, reviewer__in=users).delete()
    rnd = random.Random(seed)
    now = timezone.now()
    item_ids = list(Item.objects.filter(project=project).order_by("id").values_list("id", flat=True)[:items])
    batch = []
    for n, item_id in enumerate(item_ids):
        truth = rnd.random() < 0.7
        base = rnd.randint(2, 5)
        for reviewer in rnd.sample(users, per_item):
            correct = truth if rnd.random() < 0.85 else not truth
            rating = min(5, max(1, base + rnd.choice((-1, 0, 0, 0, 1))))
            when = now - timezone.timedelta(days=rnd.randrange(45), seconds=n % 86_400)
            batch.append(
                Review(
                    project=project,
                    item_id=item_id,
                    reviewer=reviewer,
                    answers={"correct": correct, "helpfulness": rating},
                    submitted_at=when,
                    updated_at=when,
                    time_on_task_ms=rnd.randint(5_000, 120_000),
                )
            )
        if len(batch) >= 5_000:
            Review.objects.bulk_create(batch)
            batch = []
    Review.objects.bulk_create(batch)
    from django.db import connection

    with connection.cursor() as cursor:  # what autovacuum would do after a bulk load
        cursor.execute(f"ANALYZE {Review._meta.db_table}")
    return Review.objects.filter(project=project, reviewer__in=users).count()


def agreement_timing(n_reviews: int, per_item: int = 3, seed: int = 1) -> dict[str, float]:
    from reviewapp.agreement import krippendorff_alpha, percent_agreement

    rnd = random.Random(seed)
    n_items = n_reviews // per_item
    nominal = [[rnd.random() < 0.8 for _ in range(per_item)] for _ in range(n_items)]
    ordinal = [[rnd.randint(1, 5) for _ in range(per_item)] for _ in range(n_items)]
    times = {}
    for name, units, level in (("nominal", nominal, "nominal"), ("ordinal", ordinal, "ordinal")):
        t0 = time.perf_counter()
        krippendorff_alpha(units, level=level)  # type: ignore[arg-type]
        percent_agreement(units)
        times[name] = time.perf_counter() - t0
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--items", type=int, default=10_000, help="items that get reviews")
    parser.add_argument("--per-item", type=int, default=3)
    args = parser.parse_args()
    ensure_database()
    setup_django()
    from bench.fixtures import bench_project, bench_user
    from reviewapp.models import Item
    from reviewapp.selectors.projects import questions_for_project
    from reviewapp.selectors.stats import agreement_units, project_stats

    project = bench_project("bench-queue", reviews_per_item=1)
    n_items = Item.objects.filter(project=project).count()
    t0 = time.perf_counter()
    n_reviews = seed_reviews(project, items=args.items, per_item=args.per_item)
    seed_s = time.perf_counter() - t0
    bench_user(project, f"{PREFIX}-curator", "curator")

    # In-process: the selector alone, and the agreement read.
    in_process = []
    for _ in range(5):
        t0 = time.perf_counter()
        project_stats(project=project)
        in_process.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    agreement_units(project=project, questions=questions_for_project(project=project))
    read_ms = (time.perf_counter() - t0) * 1000

    from django.core.cache import cache
    from django.utils import timezone

    from reviewapp.models import Review
    from reviewapp.selectors.stats import projects_stats_refresh

    cache.clear()
    path = f"/projects/{project.slug}/dashboard/"
    with server() as (port, _pid):
        client = Client(port, cookie=login(port, f"{PREFIX}-curator"))
        samples = []
        cold = []
        for i in range(args.requests + WARMUP):
            t0 = time.perf_counter()
            status, _ = client.request("GET", path)
            elapsed = (time.perf_counter() - t0) * 1000
            (cold if i < WARMUP else samples).append(elapsed)
            if status != 200:
                raise RuntimeError(f"dashboard answered {status}")
        # A review changes, the worker's beat task refreshes the figures, then a curator opens the page.
        Review.objects.filter(pk=Review.objects.filter(project=project).order_by("-id").values("pk")[:1]).update(
            updated_at=timezone.now()
        )
        t0 = time.perf_counter()
        refreshed = projects_stats_refresh()
        refresh_s = time.perf_counter() - t0
        # gunicorn drops an idle keep-alive connection after 2 s, and the refresh can take longer:
        # reconnect (a loopback connect, well under a millisecond) rather than die on the stale socket.
        client.conn.close()
        t0 = time.perf_counter()
        status, _ = client.request("GET", path)
        if status != 200:
            raise RuntimeError(f"dashboard answered {status} after the refresh")
        after_refresh_ms = (time.perf_counter() - t0) * 1000

    after = Review.objects.filter(project=project, returned_at__isnull=True).count()
    agreement = agreement_timing(100_000)
    p = percentiles(samples)
    ip = percentiles(in_process)
    rows = [
        ("project", f"{n_items:,} items", f"{n_reviews:,} reviews by {REVIEWERS} reviewers"),
        ("seeding (bulk_create, once)", f"{seed_s:.1f} s", f"{after:,} current reviews after the run"),
        ("dashboard server time p50/p95 (warm)", f"{p['p50']:.0f}/{p['p95']:.0f} ms", "target <= 150 ms"),
        ("dashboard first request (cold cache)", f"{cold[0]:.0f} ms", "figures computed: no worker ran yet"),
        (
            "dashboard after a change + background refresh",
            f"{after_refresh_ms:.0f} ms",
            f"target <= 150 ms; the worker's refresh took {refresh_s:.2f} s ({refreshed} project(s))",
        ),
        ("project_stats uncached, in process p50", f"{ip['p50']:.0f} ms", ""),
        ("agreement read (item, reviewer, answers->key)", f"{read_ms:.0f} ms", ""),
        ("agreement 100,000 reviews nominal", f"{agreement['nominal']:.2f} s", "target <= 2 s"),
        ("agreement 100,000 reviews ordinal", f"{agreement['ordinal']:.2f} s", "target <= 2 s"),
    ]
    print_table("dashboard (curator, gunicorn, loopback, warm)", rows)


if __name__ == "__main__":
    main()
