"""Ingest throughput over REST: 100,000 items of ~2.4 KB in batches of 1,000 (PostgreSQL, gunicorn).

Target: >= 10,000 items/s on 2 cores. Also reports the server's peak RSS and the re-send
(update) throughput, which must create nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time

from bench.common import Client, ensure_database, make_item, print_table, server, setup_django, tree_rss_mb


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--clients", type=int, default=2, help="concurrent uploaders")
    args = parser.parse_args()

    ensure_database()
    setup_django()
    from bench.fixtures import bench_project, bench_token, bench_user

    project = bench_project("bench-ingest", reset=True)
    token = bench_token(bench_user(project, "bench-engineer", "engineer"), ["ingest"])
    rnd = random.Random(7)
    batches = []
    for start in range(0, args.items, args.batch):
        rows = [make_item(n, rnd) for n in range(start, min(start + args.batch, args.items))]
        batches.append(json.dumps(rows).encode())
    mb = sum(len(b) for b in batches) / 1e6

    def upload(port: int) -> tuple[float, int, int, float]:
        peak = [0.0]
        counts = [0, 0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], tree_rss_mb(pid))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        queue = list(batches)
        lock = threading.Lock()

        def worker() -> None:
            client = Client(port, token=token)
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                status, data = client.request("POST", f"/api/v1/projects/{project.slug}/items/", raw=body)
                if status not in (200, 201):
                    raise RuntimeError(f"ingest failed: {status} {data[:300]!r}")
                result = json.loads(data)
                with lock:
                    counts[0] += result["created"]
                    counts[1] += result["updated"]

        started = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        done.set()
        sampler.join()
        return elapsed, counts[0], counts[1], peak[0]

    with server() as (port, pid):
        base_rss = tree_rss_mb(pid)
        first, created, _, peak1 = upload(port)
        second, created2, updated2, peak2 = upload(port)
    print_table(
        f"Ingest over REST ({args.items:,} items, {mb:.0f} MB JSON, batches of {args.batch:,}, "
        f"{args.clients} uploaders, gunicorn 3x4 threads)",
        [
            ("create throughput", f"{args.items / first:,.0f} items/s", "target >= 10,000 items/s"),
            ("items created", f"{created:,}", f"expected {args.items:,}"),
            ("re-send (update) throughput", f"{args.items / second:,.0f} items/s", "idempotent"),
            ("re-send created / updated", f"{created2:,} / {updated2:,}", "expected 0 / all"),
            ("server RSS idle -> peak", f"{base_rss:,.0f} -> {max(peak1, peak2):,.0f} MB", "all workers"),
        ],
    )


if __name__ == "__main__":
    main()
