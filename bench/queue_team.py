"""Team review at scale: queue/next + submit over REST, N=3, 32 concurrent reviewers, 100,000 items.

Target: p95 <= 30 ms for queue/next + submit at 32 clients; duplicate leases, items over N and a
reviewer twice on one item must all be 0. Each item has three review slots (300,000 slot rows);
queue_next takes the best first row of one ordered scan per partial index (slots assigned to the
reviewer, to each of their groups, to nobody), checked with EXPLAIN below. ``--gold-rate`` mixes gold
items in (``--gold-items`` of them) to measure that path too.

The machine's load average is printed before and after: on a shared box the figures move with it.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import threading
import time

from bench.common import Client, ensure_database, make_item, percentiles, print_table, server, setup_django

SLUG = "bench-team"
N = 3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=60, help="reviews per client")
    parser.add_argument("--gold-rate", type=float, default=0.0)
    parser.add_argument("--gold-items", type=int, default=20)
    args = parser.parse_args()

    ensure_database()
    setup_django()
    from django.db import connection
    from django.db.models import Count

    from bench.fixtures import bench_project, bench_token, bench_user
    from reviewapp.models import Assignment, GoldAnswer, Item, Review
    from reviewapp.models.reviews import EXTRA_SLOT_BASE
    from reviewapp.services.gold import gold_answer_set
    from reviewapp.services.ingest import items_ingest

    project = bench_project(SLUG, reviews_per_item=N)
    have = Item.objects.filter(project=project).count()
    rnd = random.Random(13)
    for start in range(have, args.items, 1000):
        items_ingest(project=project, rows=[make_item(n, rnd) for n in range(start, min(start + 1000, args.items))])
    # Start from a clean queue so every run measures the same thing.
    Review.objects.filter(project=project).delete()
    Assignment.objects.filter(project=project, slot__gte=EXTRA_SLOT_BASE).delete()
    Assignment.objects.filter(project=project).update(
        reviewer=None, leased_at=None, expires_at=None, submitted_at=None, assigned_to=None, assigned_group=None
    )
    Item.objects.filter(project=project).update(review_count=0)
    GoldAnswer.objects.filter(project=project).delete()
    Assignment.objects.filter(project=project).update(is_gold=False)
    if args.gold_rate > 0:
        curator = bench_user(project, "bench-curator", "curator")
        for item in Item.objects.filter(project=project).order_by("-id")[: args.gold_items]:
            gold_answer_set(project=project, item=item, answers={"correct": True}, actor=curator)
    project.gold_rate = args.gold_rate
    project.save(update_fields=["gold_rate"])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE reviewapp_assignment")
    users = [bench_user(project, f"bench-team-{i}", "reviewer") for i in range(args.clients)]
    tokens = [bench_token(user, ["review"]) for user in users]
    plan = _queue_plan(project, users[0])

    def run(port: int, clients: int) -> dict[str, object]:
        next_ms: list[float] = []
        submit_ms: list[float] = []
        both_ms: list[float] = []
        leases: dict[int, list[int]] = collections.defaultdict(list)
        lock = threading.Lock()
        errors: list[str] = []
        start = threading.Barrier(clients)

        def reviewer(i: int) -> None:
            client = Client(port, token=tokens[i])
            start.wait()
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                status, data = client.request("POST", f"/api/v1/projects/{SLUG}/queue/next/")
                t1 = time.perf_counter()
                if status != 200:
                    errors.append(f"next {status} {data[:200]!r}")
                    return
                assignment = json.loads(data)["assignment"]["id"]
                body = {"assignment": assignment, "answers": {"correct": True, "helpfulness": 4}}
                status, data = client.request("POST", f"/api/v1/projects/{SLUG}/reviews/", body)
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

    load_before = os.getloadavg()
    with server() as (port, _pid):
        run(port, 4)  # warm up: connections, caches (not reported)
        results = {clients: run(port, clients) for clients in (1, args.clients)}
    load_after = os.getloadavg()
    server_time = _server_time(bench_token(bench_user(project, "bench-team-inprocess", "reviewer"), ["review"]))
    counted = Review.objects.filter(project=project, assignment__slot__lt=EXTRA_SLOT_BASE)
    over = counted.values("item_id").annotate(n=Count("id")).filter(n__gt=N).count()
    twice = (
        Review.objects.filter(project=project)
        .values("item_id", "reviewer_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    gold_reviews = Review.objects.filter(project=project, item__gold_answer__isnull=False).count()
    rows = []
    for clients, r in results.items():
        for key in ("next", "submit", "both"):
            p = r[key]  # type: ignore[index]
            target = "target p95 <= 30 ms" if (clients == args.clients and key == "both") else ""
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
    if args.gold_rate > 0:
        rows.append((f"reviews of gold items (rate {args.gold_rate})", str(gold_reviews), ""))
    rows.append(("queue/next: each part an ordered index scan", "yes" if plan else "NO", ""))
    for key, (cpu, wall) in server_time.items():
        rows.append((f"server time per {key}, in-process p50", f"{cpu:.1f} CPU / {wall:.1f} wall ms", ""))
    cpus = f"{os.cpu_count()} CPUs"
    rows.append(("load average 1/5/15 min, before", " ".join(f"{x:.2f}" for x in load_before), cpus))
    rows.append(("load average 1/5/15 min, after", " ".join(f"{x:.2f}" for x in load_after), ""))
    print_table(
        f"queue/next + submit over REST ({args.items:,} items, N={N}, {args.clients} clients, gunicorn 3x4 threads)",
        rows,
    )


def _server_time(token: str, pairs: int = 60) -> dict[str, tuple[float, float]]:
    """Median CPU and wall ms of queue/next and of submit, run in this process (no HTTP, no queueing
    behind other clients): what one request costs the server, separate from how busy the machine is."""
    import statistics

    from django.test import Client as DjangoClient

    client = DjangoClient(HTTP_HOST="127.0.0.1", headers={"authorization": f"Bearer {token}"})
    samples: dict[str, list[tuple[float, float]]] = {"queue/next": [], "submit": []}
    for n in range(pairs + 5):
        c0, w0 = time.process_time(), time.perf_counter()
        response = client.post(f"/api/v1/projects/{SLUG}/queue/next/")
        c1, w1 = time.process_time(), time.perf_counter()
        body = {"assignment": response.json()["assignment"]["id"], "answers": {"correct": True, "helpfulness": 4}}
        client.post(f"/api/v1/projects/{SLUG}/reviews/", body, "application/json")
        c2, w2 = time.process_time(), time.perf_counter()
        if n >= 5:  # warm-up
            samples["queue/next"].append(((c1 - c0) * 1000, (w1 - w0) * 1000))
            samples["submit"].append(((c2 - c1) * 1000, (w2 - w1) * 1000))
    return {
        key: (statistics.median(c for c, _ in rows), statistics.median(w for _, w in rows))
        for key, rows in samples.items()
    }


def _queue_plan(project: object, user: object) -> bool:
    """Whether each of queue_next's slot queries is an ordered scan of its own partial index."""
    from django.db import connection

    from reviewapp.selectors.queue import queue_sources_for_user

    ok = True
    for query in queue_sources_for_user(project=project, user=user):  # type: ignore[arg-type]
        sql, params = query[:1].query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        ok = ok and "Index Scan using assignment_open_" in plan and "Sort" not in plan
    return ok


if __name__ == "__main__":
    main()
