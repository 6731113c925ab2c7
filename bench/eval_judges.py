"""LLM-judge scoring against the local chat stub: calls/s at concurrency 16, and the cache-hit re-run.

The stub answers every call after a fixed delay (50 ms by default), so 16 calls in flight can at
best reach 16 / 0.05 = 320 calls/s; the gap to that figure is our own overhead (prompt rendering,
the HTTP client, thread hand-offs, the cache reads and writes). A second stub with no delay shows
the ceiling of the client itself. The re-run of the same rows must make no calls at all.

Runs the real path: REVIEWDESK_ENDPOINTS -> endpoint registry -> judge_rows -> llm_client over
HTTP (the stubs run in their own processes, like a remote endpoint) -> JudgeCacheEntry on
PostgreSQL, in a throwaway database ``reviewdesk_bench_judges`` whose tables are created from the
models (so it does not depend on migrations). Prints, never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from typing import Any

from bench.common import BENCH_DB_URL, ROOT, bench_env, print_table

JUDGE_DB_URL = BENCH_DB_URL.rsplit("/", 1)[0] + "/reviewdesk_bench_judges"
KEY_ENV = "REVIEWDESK_SECRET_BENCH_JUDGE_KEY"  # endpoint keys must live in REVIEWDESK_SECRET_* variables


def fresh_database() -> None:
    import psycopg

    admin = JUDGE_DB_URL.rsplit("/", 1)[0] + "/postgres"
    name = JUDGE_DB_URL.rsplit("/", 1)[1]
    with psycopg.connect(admin.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def setup(endpoints: list[dict[str, Any]]) -> None:
    env = bench_env()
    env.update(DATABASE_URL=JUDGE_DB_URL, REVIEWDESK_ENDPOINTS=json.dumps(endpoints))
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reviewapp.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.apps import apps
    from django.conf import settings
    from django.core.management import call_command

    # Tables straight from the models: the bench measures judging, not the migration history.
    settings.MIGRATION_MODULES = {app.label: None for app in apps.get_app_configs()}
    call_command("migrate", run_syncdb=True, verbosity=0)


def build_rows(count: int) -> list[Any]:
    from evaluations.scorers.registry import ScoreInput
    from reviewapp.demo.items import CASES, item_row

    rows = []
    for n in range(count):
        case = CASES[n % len(CASES)]
        item = item_row(case, "1" if (n // len(CASES)) % 2 else "2")
        # A distinct ticket number makes every row a distinct prompt (no accidental cache hits).
        rows.append(
            ScoreInput(
                request=f"[ticket {n}] {case.request if isinstance(case.request, str) else case.request[-1][1]}",
                response=item["response"] + (" [[no]]" if n % 4 == 0 else ""),
                retrieved_context=item["retrieved_context"],
            )
        )
    return rows


def timed_judge(name: str, endpoint: str, rows: list[Any], batch: int) -> tuple[float, list[Any]]:
    from evaluations.scorers.llm_judges import judge_rows

    started = time.perf_counter()
    scores = []
    for start in range(0, len(rows), batch):
        scores += judge_rows(name=name, rows=rows[start : start + batch], params={"endpoint": endpoint})
    return time.perf_counter() - started, scores


class StubProcess:
    """The chat stub in its own process, as a real endpoint would be: it must not share our GIL."""

    def __init__(self, latency_ms: float) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.fakes.openai_chat",
                "--latency-ms",
                str(latency_ms),
                "--model",
                "bench-judge",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        self.token = "sk-test-key"  # noqa: S105 - the stub's fake key

    def stats(self) -> dict[str, int]:
        root = self.base_url.rsplit("/", 1)[0]
        with urllib.request.urlopen(f"{root}/_fake/stats", timeout=5) as response:  # noqa: S310 - our own stub
            return dict(json.load(response))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--batch", type=int, default=50, help="rows per judge_rows call, as the chunk executor does")
    args = parser.parse_args()

    slow = StubProcess(args.latency_ms)
    fast = StubProcess(0)
    os.environ[KEY_ENV] = slow.token

    def endpoint(name: str, stub: StubProcess) -> dict[str, Any]:
        return {
            "name": name,
            "kind": "openai_compatible",
            "url": stub.base_url,
            "model": "bench-judge",
            "credential_env": KEY_ENV,
            "max_concurrency": args.concurrency,
            "timeout_seconds": 10,
            "max_retries": 2,
        }

    try:
        fresh_database()
        setup([endpoint("stub-slow", slow), endpoint("stub-0ms", fast)])
        figures = measure(args, slow, fast)
    finally:
        slow.stop()
        fast.stop()
    print_table(
        f"LLM judge (groundedness), {args.rows} rows, concurrency {args.concurrency}, stub {args.latency_ms:g} ms/call",
        figures,
    )


def measure(args: argparse.Namespace, slow: StubProcess, fast: StubProcess) -> list[tuple[str, str, str]]:
    from evaluations.models import JudgeCacheEntry

    rows = build_rows(args.rows)
    ideal = args.concurrency / (args.latency_ms / 1000)
    figures: list[tuple[str, str, str]] = []
    for label, batch in (("one call", len(rows)), (f"batches of {args.batch}", args.batch)):
        JudgeCacheEntry.objects.all().delete()
        calls_before = slow.stats()["chat_calls"]
        cold, scores = timed_judge("groundedness", "stub-slow", rows, batch)
        calls = slow.stats()["chat_calls"] - calls_before
        errors = sum(1 for s in scores if s.error)
        figures.append(
            (
                f"cold, {label}: calls/s",
                f"{calls / cold:,.0f}",
                f"ideal {ideal:,.0f} (= {args.concurrency} / {args.latency_ms / 1000:g} s), "
                f"{calls / cold / ideal:.0%} of it; {calls} calls, {errors} errors, {cold:.2f} s",
            )
        )
        warm, again = timed_judge("groundedness", "stub-slow", rows, batch)
        extra = slow.stats()["chat_calls"] - calls_before - calls
        figures.append(
            (
                f"cache-hit re-run, {label}",
                f"{warm * 1000:,.0f} ms",
                f"{len(rows) / warm:,.0f} rows/s; {extra} calls; same verdicts: {again == scores}",
            )
        )
    figures.append(("max in flight at the stub", str(slow.stats()["max_in_flight"]), f"limit {args.concurrency}"))
    JudgeCacheEntry.objects.all().delete()
    ceiling, _ = timed_judge("groundedness", "stub-0ms", rows, len(rows))
    figures.append(
        (
            "no-delay stub: calls/s",
            f"{fast.stats()['chat_calls'] / ceiling:,.0f}",
            "our ceiling: prompt + HTTP client + cache write (2 cores shared with the stub)",
        )
    )
    return figures


if __name__ == "__main__":
    main()
