"""Code-scorer suite over 10,000 items on real Celery workers: items/s with 1 and 2 worker processes.

Target: >= 1,000 items/s in total on 2 cores, near-linear scaling. Every item is scored by the
twelve built-in code scorers (expected response and facts in its metadata, so none is "not
applicable" for free). Each worker is one ``celery worker -P solo`` process on Redis; the figure is
items / (first chunk claimed -> run closed), read from the Run row, plus the wall time from
``run_start`` (enqueue, queue wait) to the closed run. Printed, not asserted.

It uses its own PostgreSQL database, ``reviewdesk_bench_eval``, created afresh from the models on
every run (no migrations needed), and Redis at ``BENCH_REDIS_URL`` (default db 14).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

from bench.common import BENCH_DB_URL, ROOT, bench_env, celery_worker_argv, make_item, print_table

DB_URL = BENCH_DB_URL.rsplit("/", 1)[0] + "/reviewdesk_bench_eval"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
QUEUE = f"bench-eval-{uuid.uuid4().hex[:6]}"
SCORERS = [
    "exact_match",
    "normalised_match",
    "token_f1",
    "expected_facts_coverage",
    "lexical_groundedness",
    "context_relevance",
    "retrieval_precision",
    "retrieval_recall",
    "pii",
    "unsafe_content",
    "response_length",
    "latency",
]


def env() -> dict[str, str]:
    return {
        **bench_env(),
        "DATABASE_URL": DB_URL,
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_TASK_DEFAULT_QUEUE": QUEUE,
        "MLFLOW_TRACKING_URI": f"sqlite:///{ROOT / 'var' / 'bench' / 'mlflow-eval.db'}",
        "MLFLOW_ARTIFACT_ROOT": str(ROOT / "var" / "bench" / "mlartifacts"),
    }


def fresh_database() -> None:
    """Drop and create the bench database, then create every table from the models (like --no-migrations)."""
    import psycopg

    admin = DB_URL.rsplit("/", 1)[0] + "/postgres"
    name = DB_URL.rsplit("/", 1)[1]
    with psycopg.connect(admin.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ.update(env())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reviewapp.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    class NoMigrations(dict[str, Any]):
        def __contains__(self, item: object) -> bool:
            return True

        def __getitem__(self, item: str) -> None:
            return None

    settings.MIGRATION_MODULES = NoMigrations()
    call_command("migrate", run_syncdb=True, verbosity=0)


def bench_item(n: int, rnd: random.Random) -> dict[str, Any]:
    item = make_item(n, rnd)
    words = item["response"].split()
    item["metadata"] = {
        **item["metadata"],
        "latency_ms": rnd.randint(200, 4000),
        "expected_response": " ".join(words[: len(words) // 2]),
        "expected_facts": [" ".join(words[i : i + 6]) for i in (0, 20, 40)],
    }
    return item


class Workers:
    def __init__(self, count: int) -> None:
        self.procs = [
            subprocess.Popen(
                celery_worker_argv(queue=QUEUE, name=f"bench{i}-{QUEUE}", loglevel="WARNING"),
                cwd=ROOT,
                env=env(),
                start_new_session=True,
            )
            for i in range(count)
        ]

    def stop(self) -> None:
        for proc in self.procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def run_once(project: Any, version: Any, dataset: dict[str, Any], timeout: float = 900) -> dict[str, float]:
    from evaluations.models import Run
    from evaluations.services.runs import run_start

    started = time.perf_counter()
    run = run_start(project=project, suite_version=version, dataset=dataset, actor=None)
    deadline = time.monotonic() + timeout
    while True:
        run.refresh_from_db()
        if run.is_finished:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run.pk} still {run.status} after {timeout} s")
        time.sleep(0.2)
    wall = time.perf_counter() - started
    if run.status != Run.Status.SUCCEEDED:
        raise RuntimeError(f"run {run.pk} {run.status}: {run.error}")
    work = run.duration_seconds or wall
    mlflow_started = time.perf_counter()
    logged = Run.objects.filter(pk=run.pk, mlflow_log__status="done")
    while not logged.exists() and time.perf_counter() - mlflow_started < 120:
        time.sleep(0.5)  # let the workers log it before the next measurement
    return {
        "items": run.rows_done,
        "items/s": run.rows_done / work,
        "wall items/s": run.rows_done / wall,
        "seconds": work,
        "mlflow seconds": time.perf_counter() - mlflow_started,
        "results": run.rows_done * len(SCORERS),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--chunk-size", type=int, default=100)
    args = parser.parse_args()

    fresh_database()
    from django.conf import settings

    from bench.fixtures import bench_project
    from evaluations.services.suites import suite_create
    from reviewapp.services.ingest import items_ingest
    from reviewapp.services.projects import question_create

    project = bench_project("bench-eval")
    # retrieval_precision / _recall compare with per-chunk labels of this question (none here: n/a rows)
    question_create(project=project, key="chunks", title="Chunk relevance", kind="context_relevance", required=False)
    rnd = random.Random(7)
    for start in range(0, args.items, 2000):
        items_ingest(project=project, rows=[bench_item(n, rnd) for n in range(start, min(start + 2000, args.items))])
    items_ingest(project=project, rows=[{**bench_item(n, rnd), "source": "warmup"} for n in range(10**6, 10**6 + 200)])
    suite = suite_create(
        project=project,
        name="Code scorers",
        scorers=SCORERS,
        config={"chunk_size": args.chunk_size, "human_question": ""},
        actor=None,
    )
    version = suite.versions.get()
    assert settings.CELERY_BROKER_URL == REDIS_URL

    results: dict[int, dict[str, float]] = {}
    for count in args.workers:
        workers = Workers(count)
        try:
            run_once(project, version, {"source": "warmup"}, timeout=300)  # imports, connections, first claims
            results[count] = run_once(project, version, {"source": "bench"})
        finally:
            workers.stop()

    rows = []
    for count, r in results.items():
        target = "target >= 1,000 items/s on 2 cores" if count == 2 else ""
        rows.append((f"{count} worker process{'es' if count > 1 else ''}: items/s", f"{r['items/s']:,.0f}", target))
        rows.append(("  with enqueue and queue wait", f"{r['wall items/s']:,.0f}", ""))
        rows.append(("  run time / results written", f"{r['seconds']:.1f} s / {r['results']:,.0f}", ""))
        rows.append(("  MLflow log after the run", f"{r['mlflow seconds']:.1f} s", "outside the run time"))
    if 1 in results and 2 in results:
        rows.append(
            ("scaling 1 -> 2 processes", f"x{results[2]['items/s'] / results[1]['items/s']:.2f}", "near-linear: x2")
        )
    print_table(
        f"code-scorer suite ({len(SCORERS)} scorers) over {args.items:,} items, chunks of {args.chunk_size}, "
        f"{os.cpu_count()} cores",
        rows,
    )


if __name__ == "__main__":
    main()
