"""queue/next + submit latency over REST with 1 and 16 concurrent reviewers (PostgreSQL, gunicorn).

Targets: p95 <= 25 ms at 16 clients; duplicate leases must be 0. Uses the 100,000 items that
``ingest_rest`` leaves behind (or ingests them first).
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import threading
import time

from bench.common import Client, ensure_database, make_item, percentiles, print_table, server, setup_django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=150, help="reviews per client")
    args = parser.parse_args()

    ensure_database()
    setup_django()
    from django.db.models import Count

    from bench.fixtures import bench_project, bench_token, bench_user
    from reviewapp.models import Assignment, Item, Review
    from reviewapp.services.ingest import items_ingest

    project = bench_project("bench-queue", reviews_per_item=1)
    have = Item.objects.filter(project=project).count()
    rnd = random.Random(11)
    for start in range(have, args.items, 1000):
        items_ingest(project=project, rows=[make_item(n, rnd) for n in range(start, min(start + 1000, args.items))])
    # Start from a clean queue so every run measures the same thing.
    Review.objects.filter(project=project).delete()
    Assignment.objects.filter(project=project).update(reviewer=None, leased_at=None, expires_at=None, submitted_at=None)
    Item.objects.filter(project=project).update(review_count=0)
    tokens = [bench_token(bench_user(project, f"bench-rev-{i}", "reviewer"), ["review"]) for i in range(16)]

    def run(port: int, clients: int) -> dict[str, object]:
        next_ms: list[float] = []
        submit_ms: list[float] = []
        both_ms: list[float] = []
        leases: dict[int, list[int]] = collections.defaultdict(list)
        lock = threading.Lock()
        errors: list[str] = []

        def reviewer(i: int) -> None:
            client = Client(port, token=tokens[i])
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                status, data = client.request("POST", f"/api/v1/projects/{project.slug}/queue/next/")
                t1 = time.perf_counter()
                if status != 200:
                    errors.append(f"next {status} {data[:200]!r}")
                    return
                assignment = json.loads(data)["assignment"]["id"]
                body = {"assignment": assignment, "answers": {"correct": True, "helpfulness": 4}}
                status, data = client.request("POST", f"/api/v1/projects/{project.slug}/reviews/", body)
                t2 = time.perf_counter()
                if status != 201:
                    errors.append(f"submit {status} {data[:200]!r}")
                    return
                with lock:
                    next_ms.append((t1 - t0) * 1000)
                    submit_ms.append((t2 - t1) * 1000)
                    both_ms.append((t2 - t0) * 1000)
                    leases[assignment].append(i)

        started = time.perf_counter()
        threads = [threading.Thread(target=reviewer, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        if errors:
            raise RuntimeError(errors[0])
        return {
            "next": percentiles(next_ms),
            "submit": percentiles(submit_ms),
            "both": percentiles(both_ms),
            "reviews/s": len(both_ms) / elapsed,
            "duplicate leases": sum(1 for holders in leases.values() if len(holders) > 1),
        }

    with server() as (port, _pid):
        results = {clients: run(port, clients) for clients in (1, 16)}
    over = Item.objects.filter(project=project, review_count__gt=project.reviews_per_item).count()
    twice = (
        Review.objects.filter(project=project)
        .values("item_id", "reviewer_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    rows = []
    for clients, r in results.items():
        for key in ("next", "submit", "both"):
            p = r[key]  # type: ignore[index]
            target = "target p95 <= 25 ms" if (clients == 16 and key == "both") else ""
            rows.append(
                (
                    f"{clients:>2} clients {key:<6} p50/p95/p99",
                    f"{p['p50']:.1f}/{p['p95']:.1f}/{p['p99']:.1f} ms",
                    target,
                )
            )
        rows.append((f"{clients:>2} clients throughput", f"{r['reviews/s']:,.0f} reviews/s", ""))
        rows.append((f"{clients:>2} clients duplicate leases", str(r["duplicate leases"]), "must be 0"))
    rows.append(("items over N reviews (database)", str(over), "must be 0"))
    rows.append(("reviewer twice on one item (database)", str(twice), "must be 0"))
    print_table(f"queue/next + submit over REST ({args.items:,} items, N=1, gunicorn 3x4 threads)", rows)


if __name__ == "__main__":
    main()
